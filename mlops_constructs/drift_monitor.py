"""The drift monitor: per endpoint with data capture, a schedule that compares captured traffic with baselines.

Per endpoint, an EventBridge schedule rule starts the environment's one small state machine with the
endpoint's static arguments and the event's time. The state machine runs ``python -m mlops_platform.training
monitor`` from the training image as a Processing job (``createProcessingJob.sync``) on a small CPU
instance. Its settings (the thresholds, however many features they name) are one JSON document per
environment, an asset of this stack, passed by URI: SageMaker caps each job argument at 256
characters. The window ends ``monitoring.window_lag_minutes`` before the scheduled time, so capture
files SageMaker writes minutes after their requests are in place. The job reads the window's capture
files, compares them with each variant's baseline (the sibling ``baseline.json`` of the model
pointer's ``model.tar.gz``, or the example model's baseline, an asset of this stack), writes a JSON
and HTML report to the artifacts zone, publishes ``<project>/<env>/Drift`` metrics and a ``Drift
Summary`` event on the default bus. The job's name is derived from the endpoint and the event's time,
so a redelivered event finds its name taken (``ResourceInUse``) and counts as done instead of starting
a second job. Each endpoint's job has a role of its own: its capture prefix, its pointers, its report
prefix, the example baseline, the settings, and nothing of another tenant. With
``monitoring.labels_dataset`` the job also gets ``--labels-uri s3://<raw zone>/raw/<tenant>/<dataset>/``
(model quality from the labels the tenant sends through ingestion as that dataset) and may list and
read that prefix only.

The parts: the job's names, arguments and settings document (mlops_constructs/drift_job.py), its
role per endpoint (mlops_constructs/drift_roles.py), the alarms (mlops_constructs/drift_alarms.py);
here the schedules and the state machine.

SageMaker Model Monitor is not an engine here: README.md (Monitoring and retraining) says why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from config.instance_types import has_local_storage
from config.naming import Names
from config.schema import EnvironmentConfig
from config.serving import EndpointConfig
from mlops_constructs.drift_alarms import drift_alarm, failure_alarm
from mlops_constructs.drift_job import job_arguments, job_stem, settings_file
from mlops_constructs.drift_roles import drift_job_role
from mlops_constructs.log_retention import retention_days
from mlops_constructs.model_pointers import construct_id
from mlops_constructs.nag import acknowledge, acknowledge_wildcard_resource, ignore_redundant_dependency
from mlops_constructs.sagemaker_sync import grant_run_job

VOLUME_SIZE_GB = 20
# Step Functions waits for the job, plus time to start it and to stop it on its runtime limit.
STATE_MACHINE_MARGIN_SECONDS = 900
SAGEMAKER_ERROR = "SageMaker.AmazonSageMakerException"


@dataclass(frozen=True)
class DriftMonitorZones:
    capture: s3.IBucket
    artifacts: s3.IBucket
    # Where labels are ingested; needed only with monitoring.labels_dataset.
    raw: s3.IBucket | None = None


class DriftMonitor(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        names: Names,
        environment: EnvironmentConfig,
        key: kms.IKey,
        topic: sns.ITopic,
        zones: DriftMonitorZones,
        image: ecr_assets.DockerImageAsset,
        example_baselines: Mapping[str, s3_assets.Asset],
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, id)
        self._names = names
        self._environment = environment
        self._monitoring = environment.monitoring
        self._key = key
        self._topic = topic
        self._zones = zones
        stack = Stack.of(self)
        self._partition, self._region, self._account = stack.partition, stack.region, stack.account
        self.instance_type = self._monitoring.instance_type or environment.instance_types.processing
        serving = environment.serving
        # Only captured traffic can be compared; without capture there is nothing to schedule.
        self.endpoints: dict[str, EndpointConfig] = dict(serving.endpoints) if serving.data_capture_percentage else {}
        self.job_roles: dict[str, iam.Role] = {}
        self.rules: dict[str, events.Rule] = {}
        self.drift_alarms: dict[str, cloudwatch.Alarm] = {}
        self.state_machine: sfn.StateMachine | None = None
        self.settings: s3_assets.Asset | None = None
        if not self.endpoints:
            return
        if self._monitoring.labels_dataset is not None and zones.raw is None:
            raise ValueError(
                f"monitoring.labels_dataset {self._monitoring.labels_dataset!r} needs the raw zone: "
                "pass DriftMonitorZones(raw=...)"
            )
        self._platform(image, example_baselines, removal_policy)

    # -- schedules, state machine and jobs ----------------------------------------------------------

    def _platform(
        self,
        image: ecr_assets.DockerImageAsset,
        example_baselines: Mapping[str, s3_assets.Asset],
        removal_policy: RemovalPolicy,
    ) -> None:
        # One document per environment: the thresholds are the environment's.
        self.settings = s3_assets.Asset(self, "Settings", path=str(settings_file(self._monitoring)))
        for endpoint_key, endpoint in self.endpoints.items():
            self.job_roles[endpoint_key] = drift_job_role(
                self,
                names=self._names,
                monitoring=self._monitoring,
                key=self._key,
                endpoint_key=endpoint_key,
                endpoint=endpoint,
                capture=self._zones.capture,
                artifacts=self._zones.artifacts,
                raw=self._zones.raw,
                image=image,
                example_baselines=example_baselines,
                settings=self.settings,
            )
        log_group = logs.LogGroup(
            self,
            "StateMachineLogs",
            retention=retention_days(self._environment.retention.log_retention_days),
            encryption_key=self._key,
            removal_policy=removal_policy,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            comment=(
                f"Runs one drift monitoring job for an endpoint of {self._names.environment}: input from its "
                "schedule rule (endpoint, job_stem, role_arn, time, arguments)"
            ),
            definition_body=sfn.DefinitionBody.from_chainable(self._definition(image)),
            timeout=Duration.seconds(self._monitoring.max_runtime_seconds + STATE_MACHINE_MARGIN_SECONDS),
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
        )
        ignore_redundant_dependency(self.state_machine)
        self._grant_state_machine()
        for endpoint_key, endpoint in self.endpoints.items():
            self.rules[endpoint_key] = self._schedule_rule(endpoint_key, endpoint, example_baselines)
            self.drift_alarms[endpoint_key] = drift_alarm(
                self,
                names=self._names,
                topic=self._topic,
                window_minutes=self._monitoring.window_minutes,
                key=endpoint_key,
                endpoint=endpoint,
            )
        failure_alarm(
            self, names=self._names, topic=self._topic, state_machine=self.state_machine, rules=self.rules.values()
        )

    def _definition(self, image: ecr_assets.DockerImageAsset) -> sfn.IChainable:
        window = sfn.Pass(
            self,
            "SplitEventTime",
            comment="2026-11-24T23:00:00Z -> [2026, 11, 24, 23, 00, 00]",
            parameters={"parts": sfn.JsonPath.string_split(sfn.JsonPath.string_at("$.time"), "-:TZ")},
            result_path="$.window",
        )
        parts = [sfn.JsonPath.array_get_item(sfn.JsonPath.list_at("$.window.parts"), index) for index in range(5)]
        name = sfn.Pass(
            self,
            "NameJob",
            comment="<job_stem>-YYYYMMDDHHMM: one name per endpoint and window, so a redelivered event starts nothing",
            parameters={"name": sfn.JsonPath.format("{}-{}{}{}{}{}", sfn.JsonPath.string_at("$.job_stem"), *parts)},
            result_path="$.job",
        )
        cluster: dict[str, Any] = {
            "InstanceCount": 1,
            "InstanceType": self.instance_type,
            "VolumeSizeInGB": VOLUME_SIZE_GB,
        }
        if not has_local_storage(self.instance_type):
            # Instance types with local NVMe storage reject a volume key (their disks are hardware-encrypted).
            cluster["VolumeKmsKeyId"] = self._key.key_arn
        monitor = sfn.CustomState(
            self,
            "Monitor",
            state_json={
                "Type": "Task",
                "Resource": f"arn:{self._partition}:states:::sagemaker:createProcessingJob.sync",
                "Parameters": {
                    "ProcessingJobName.$": "$.job.name",
                    "RoleArn.$": "$.role_arn",
                    "AppSpecification": {"ImageUri": image.image_uri, "ContainerArguments.$": "$.arguments"},
                    "ProcessingResources": {"ClusterConfig": cluster},
                    "StoppingCondition": {"MaxRuntimeInSeconds": self._monitoring.max_runtime_seconds},
                    "Environment": {"AWS_DEFAULT_REGION": self._region},
                },
                "ResultPath": sfn.JsonPath.DISCARD,
            },
        )
        done = sfn.Succeed(self, "Monitored")
        why_not_started = (
            sfn.Choice(self, "WhyNotStarted")
            .when(
                sfn.Condition.string_matches("$.error.Cause", "*ResourceInUse*"),
                sfn.Succeed(
                    self, "AlreadyStarted", comment="This endpoint's job for this window exists: a redelivered event"
                ),
            )
            .otherwise(
                sfn.Fail(self, "MonitoringJobRejected", error="MonitoringJobRejected", cause_path="$.error.Cause")
            )
        )
        monitor.add_catch(why_not_started, errors=[SAGEMAKER_ERROR], result_path="$.error")
        monitor.add_catch(
            sfn.Fail(self, "MonitoringJobFailed", error="MonitoringJobFailed", cause_path="$.error.Cause"),
            errors=["States.ALL"],
            result_path="$.error",
        )
        return window.next(name).next(monitor).next(done)

    def _schedule_rule(
        self, key: str, endpoint: EndpointConfig, example_baselines: Mapping[str, s3_assets.Asset]
    ) -> events.Rule:
        names, monitoring = self._names, self._monitoring
        endpoint_name = names.resource(key)
        time = events.EventField.time
        arguments = job_arguments(
            names=self._names,
            monitoring=self._monitoring,
            key=key,
            endpoint=endpoint,
            capture=self._zones.capture,
            artifacts=self._zones.artifacts,
            raw=self._zones.raw,
            time=time,
            example_baselines=example_baselines,
            settings=self._settings,
        )
        return events.Rule(
            self,
            construct_id(key, "Schedule"),
            description=f"Runs the drift monitor of endpoint {endpoint_name} on {monitoring.schedule}",
            schedule=events.Schedule.expression(monitoring.schedule),
            targets=[
                targets.SfnStateMachine(
                    self.state_machine,  # type: ignore[arg-type]
                    input=events.RuleTargetInput.from_object(
                        {
                            "endpoint": key,
                            "job_stem": job_stem(names, key),
                            "role_arn": self.job_roles[key].role_arn,
                            "time": time,
                            "arguments": arguments,
                        }
                    ),
                )
            ],
        )

    def _grant_state_machine(self) -> None:
        """What the hand-written ``.sync`` state needs: AWS's policy for it, on this environment's drift jobs.

        CDK has no Processing job task; mlops_constructs/sagemaker_sync.py holds the documented statements
        (https://docs.aws.amazon.com/step-functions/latest/dg/sagemaker-iam.html).
        """
        assert self.state_machine is not None
        role = self.state_machine.role
        jobs = self._sagemaker_arn("processing-job", f"{self._names.resource('drift')}-*")
        grant_run_job(self, role, job="ProcessingJob", jobs=[jobs], job_roles=list(self.job_roles.values()))
        policy = role.node.find_child("DefaultPolicy")
        acknowledge_wildcard_resource(
            policy, jobs, "Drift job names are derived per endpoint and window; the grant stops at their prefix."
        )
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray tracing and CloudWatch Logs delivery of the state machine support no resource-level permissions; "
            "sagemaker:ListTags on * is AWS's policy for the SageMaker .sync integration.",
        )

    @property
    def _settings(self) -> s3_assets.Asset:
        assert self.settings is not None  # made first in _platform
        return self.settings

    def _sagemaker_arn(self, resource: str, name: str) -> str:
        return f"arn:{self._partition}:sagemaker:{self._region}:{self._account}:{resource}/{name}"
