"""The training state machine: plan, prepare, train thousands of trials, evaluate, baseline, register, predict.

One state machine per environment trains any tenant: its input names the tenant, and everything
tenant-specific comes from the tenant's published configuration, read by the plan Lambda at run
time. Adding a tenant therefore never changes this definition (tests/infra/test_training.py
synthesizes with 1 and with 50 tenants and compares).

    plan λ ─▶ prepare (Processing job) ─▶ train (Distributed Map, one createTrainingJob.sync per
    trial) ─▶ evaluate λ (best trial per model) ─▶ baselines (Map, one createProcessingJob.sync per
    chosen model) ─▶ register (the evaluate λ's second entry: model registry) ─▶ predict (batch
    transform with the best approved model)

Registration waits for the baselines: a model package is created with its drift baseline linked,
or not at all. When more trials fail than the environment tolerates, the Map stops and evaluation
decides: each model with a usable trial is still chosen (its package then awaits a person), and
with none the run ends in ``NoUsableTrial`` saying how many failed and why.

The parts, each in a module of its own:
- each tenant's job roles (mlops_constructs/tenant_job_roles.py), what each may touch and the grants
  they share (mlops_constructs/training_roles.py)
- the Lambda functions: mlops_constructs/training_functions.py
- the definition (mlops_constructs/training_definition.py), one trial of the Map with SageMaker's
  errors told apart and the capacity back-off (mlops_constructs/training_trial.py), and how
  failures end and what a redrive reruns (mlops_constructs/training_states.py)
- here: the state machine, its role's grants, its run outcomes and the capacity alarm. The run
  ledger learns how every execution ended from Step Functions' own status events (``RunOutcomes``),
  whatever path it took, timeouts and aborts included.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Aws, Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_events as events
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from config.naming import Names
from config.schema import EnvironmentConfig
from mlops_constructs.alarms import alarm_above_zero
from mlops_constructs.log_retention import retention_days
from mlops_constructs.nag import acknowledge, acknowledge_wildcard_resource, ignore_redundant_dependency
from mlops_constructs.run_outcomes import RunOutcomes
from mlops_constructs.sagemaker_sync import grant_run_job
from mlops_constructs.tenant_job_roles import JOB_ROLES_PREFIX, TenantJobRoles
from mlops_constructs.training_definition import definition
from mlops_constructs.training_functions import sagemaker_arn, training_functions
from mlops_constructs.training_roles import KeyGrants, Zones, acknowledge_prefix
from mlops_constructs.training_trial import CAPACITY_GAVE_UP_METRIC

__all__ = ["TrainingPipeline", "Zones"]


class TrainingPipeline(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        names: Names,
        environment: EnvironmentConfig,
        tenants: Sequence[str],
        key: kms.IKey,
        zones: Zones,
        ledger: dynamodb.ITableV2,
        progress_bus: events.IEventBus,
        cpu_image: ecr_assets.DockerImageAsset,
        gpu_image: ecr_assets.DockerImageAsset | None,
        alarm_topic: sns.ITopic,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, id)
        self._names = names
        self._zones = zones
        self._grants = KeyGrants(self, key)
        self.job_roles = TenantJobRoles(
            self,
            "TenantJobRoles",
            tenants=tenants,
            key=key,
            grants=self._grants,
            zones=zones,
            progress_bus=progress_bus,
            cpu_image=cpu_image,
            gpu_image=gpu_image,
        )
        self.functions = training_functions(
            self,
            names=names,
            environment=environment,
            key=key,
            grants=self._grants,
            zones=zones,
            ledger=ledger,
            progress_bus=progress_bus,
            cpu_image=cpu_image,
            gpu_image=gpu_image,
            removal_policy=removal_policy,
        )

        log_group = logs.LogGroup(
            self,
            "StateMachineLogs",
            retention=retention_days(environment.retention.log_retention_days),
            encryption_key=key,
            removal_policy=removal_policy,
        )
        chain = definition(
            self,
            names=names,
            environment=environment,
            key=key,
            zones=zones,
            job_roles=self.job_roles.passable,
            functions=self.functions,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            comment=f'Trains a tenant\'s models in {names.environment}: input {{"tenant": "<name>"}}',
            definition_body=sfn.DefinitionBody.from_chainable(chain),
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
        )
        ignore_redundant_dependency(self.state_machine)
        self._grant_state_machine()
        self.outcomes = RunOutcomes(
            self,
            "Outcomes",
            names=names,
            key=key,
            ledger=ledger,
            state_machine=self.state_machine,
            alarm_topic=alarm_topic,
            log_retention_days=environment.retention.log_retention_days,
            removal_policy=removal_policy,
        )
        self._capacity_alarm(alarm_topic, environment.training.capacity_wait_limit_seconds)

    def _capacity_alarm(self, topic: sns.ITopic, limit_seconds: int) -> None:
        alarm_above_zero(
            self,
            topic,
            {
                "CapacityAlarm": (
                    f"A training trial of {self._names.environment} gave up after waiting {limit_seconds} seconds for "
                    "SageMaker capacity (ResourceLimitExceeded or throttling): raise the training instance quota "
                    "(Service Quotas, SageMaker) or lower the Map's concurrency",
                    cloudwatch.Metric(
                        namespace=self._names.metrics_namespace,
                        metric_name=CAPACITY_GAVE_UP_METRIC,
                        statistic="Sum",
                        period=Duration.minutes(5),
                    ),
                )
            },
        )

    def _sagemaker_arn(self, resource: str, suffix: str = "") -> str:
        return sagemaker_arn(self, self._names, resource, suffix)

    def _grant_state_machine(self) -> None:
        """What the hand-written ``.sync`` states need (the CDK tasks add their own), and no more."""
        stack = Stack.of(self)
        role = self.state_machine.role
        grant_run_job(
            self,
            role,
            job="ProcessingJob",
            jobs=[self._sagemaker_arn("processing-job")],
            job_roles=[self.job_roles.passable],
        )
        grant_run_job(
            self,
            role,
            job="TrainingJob",
            jobs=[self._sagemaker_arn("training-job")],
            job_roles=[self.job_roles.passable],
        )
        self._grants.key_through(role, "s3")
        policy = role.node.find_child("DefaultPolicy")
        acknowledge_prefix(
            policy,
            [self._sagemaker_arn(noun) for noun in ("processing-job", "training-job", "model")]
            + [self._sagemaker_arn("model-package", "/*")],
            "Job and model names are derived per run and trial; every grant stops at this environment's prefix.",
        )
        acknowledge_wildcard_resource(
            policy,
            stack.format_arn(service="sagemaker", resource="transform-job", resource_name="*"),
            "CDK's SageMakerCreateTransformJob grants the account's transform jobs when the job is named at run "
            "time; the state machine names its jobs <prefix>-<run hash>-pred-r<redrive>.",
        )
        acknowledge_wildcard_resource(
            policy,
            self.job_roles.passable.role_arn,
            "The state machine passes a tenant's job role to SageMaker only; the grant stops at the generated names "
            "of this stack's tenant job roles, which no other role has (mlops_constructs/tenant_job_roles.py).",
        )
        acknowledge_wildcard_resource(
            policy,
            self._zones.artifacts.arn_for_objects(f"{JOB_ROLES_PREFIX}*"),
            "The state machine reads the running tenant's job roles, one object per tenant.",
        )
        acknowledge_prefix(
            policy,
            [f"arn:{Aws.PARTITION}:s3:::{self._zones.artifacts.bucket_name}/*"],
            "The Distributed Map reads each run's plan and writes its results; their keys are per run "
            "(CDK's item reader and result writer grant the bucket's objects).",
        )
        for function in (self.functions.plan, self.functions.evaluate, self.functions.job):
            acknowledge_wildcard_resource(
                policy,
                f"{function.function.function_arn}:*",
                "CDK's LambdaInvoke grants the function's versions and aliases as well as the function.",
            )
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray tracing, CloudWatch Logs delivery and cloudwatch:PutMetricData support no resource-level "
            "permissions; sagemaker:ListTags on * is AWS's policy for the SageMaker .sync integration.",
        )
        distributed_map_policy = self.state_machine.node.find_child("DistributedMapPolicy")
        execution = f"arn:{stack.partition}:states:{stack.region}:{stack.account}:execution:"
        name = Fn.select(6, Fn.split(":", self.state_machine.state_machine_arn))
        for resource in (f"{execution}{name}:*", f"{execution}{name}/Trials:*"):
            acknowledge_wildcard_resource(
                distributed_map_policy,
                resource,
                "A Distributed Map starts and stops child executions of its own state machine, named at run time.",
            )
