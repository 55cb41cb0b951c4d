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

How failures end (see ``_definition``): a failure that a redrive can fix fails the execution in
the state that failed, and a redrive reruns it under a new job name; only failures no redrive can
fix end in named Fail states. SageMaker's throttling, 5xx and quota refusals are retried; a trial
waits for capacity (doubling waits) up to ``training.capacity_wait_limit_seconds``, then gives up
and raises the capacity alarm. The run ledger learns how every execution ended from Step
Functions' own status events (``RunOutcomes``), whatever path it took, timeouts and aborts included.

The trial loop (``_trial``) is where SageMaker's errors are told apart. Step Functions reports
every SageMaker error as ``SageMaker.AmazonSageMakerException`` with the code only in the cause,
so a Choice on the cause sends quota, throttling and 5xx errors to the back-off loop,
``ResourceInUse`` (a redriven trial finding its own job) to a Lambda that reuses, waits for or
supersedes the job, and anything else to a Fail state with the cause.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import Aws, Duration, Fn, RemovalPolicy, Size, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from config.instance_types import has_local_storage
from config.naming import Names
from config.schema import EnvironmentConfig
from mlops_constructs.alarms import alarm_above_zero
from mlops_constructs.functions import PlatformFunction, platform_function
from mlops_constructs.log_retention import retention_days
from mlops_constructs.nag import acknowledge, acknowledge_wildcard_resource, ignore_redundant_dependency
from mlops_constructs.progress_tracking import event_source
from mlops_constructs.publishing import CONFIG_PREFIX
from mlops_constructs.run_outcomes import RunOutcomes
from mlops_constructs.sagemaker_roles import grant_logs_and_metrics
from mlops_constructs.sagemaker_sync import grant_run_job

RUNS_PREFIX = "artifacts/runs/"
FEATURES_PREFIX = "features/"
BATCH_INPUT_PREFIX = "batch-input/"
# Capacity back-off: the first wait, doubled after each refusal up to the cap.
FIRST_CAPACITY_WAIT_SECONDS = 60
MAX_CAPACITY_WAIT_SECONDS = 1800
# Polls of a job from an earlier attempt that is still running: doubling from the first to the cap.
FIRST_POLL_SECONDS = 60
MAX_POLL_SECONDS = 7200
# Refusals that clear with time, as the cause of SageMaker.AmazonSageMakerException words them: the
# optimized integration reports the SDK's message, "... (Service: AmazonSageMaker; Status Code: 400;
# Error Code: ThrottlingException; ...)", so a 5xx is "Status Code: 5..".
TRANSIENT_CAUSES = ("*ResourceLimitExceeded*", "*ThrottlingException*", "*Rate exceeded*", "*Status Code: 5*")
SAGEMAKER_ERROR = "SageMaker.AmazonSageMakerException"
SDK_SAGEMAKER_ERROR = "SageMaker.SageMakerException"
SAGEMAKER_RETRY_SECONDS = 20
SAGEMAKER_RETRY_ATTEMPTS = 5
SAGEMAKER_RETRY_MAX_DELAY_SECONDS = 300
# A trial that gave up waiting for capacity puts one data point; the capacity alarm watches it.
CAPACITY_GAVE_UP_METRIC = "TrialsGaveUpOnCapacity"
# Baselines are next to their model artifact (.../output/baseline.json): a contract with the drift monitor.
BASELINE_OBJECTS = RUNS_PREFIX + "*/baseline.json"
# Baseline jobs of one run at a time: a run chooses one model per tenant model, and Processing
# quotas per instance type are small.
BASELINE_MAX_CONCURRENCY = 2
TRAINING_JOB_NAMES = "Training job names are derived per run and trial; the grant stops at this environment's prefix."


@dataclass(frozen=True)
class Zones:
    raw: s3.IBucket
    curated: s3.IBucket
    features: s3.IBucket
    artifacts: s3.IBucket
    predictions: s3.IBucket


class TrainingPipeline(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        names: Names,
        environment: EnvironmentConfig,
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
        self._key = key
        self._zones = zones
        self._region = Stack.of(self).region
        # The GPU image exists only where a tenant trains on a GPU instance type (training_images.py).
        images = [cpu_image] if gpu_image is None else [cpu_image, gpu_image]
        self.prepare_role = self._job_role(
            "PrepareRole",
            "Prepare (Processing) jobs: read raw records and tenant configs, write curated, features, reports",
            kind="ProcessingJobs",
            images=images,
            reads=[(zones.raw, "raw/*"), (zones.artifacts, f"{CONFIG_PREFIX}*")],
            writes=[
                (zones.curated, "curated/*"),
                (zones.features, f"{FEATURES_PREFIX}*"),
                (zones.features, f"{BATCH_INPUT_PREFIX}*"),
                (zones.artifacts, f"{RUNS_PREFIX}*"),
            ],
        )
        self.train_role = self._job_role(
            "TrainRole",
            "Training jobs: read features, write model artifacts and checkpoints, put progress events",
            kind="TrainingJobs",
            images=images,
            # Checkpoints are read back when a spot job resumes.
            reads=[(zones.features, f"{FEATURES_PREFIX}*"), (zones.artifacts, f"{RUNS_PREFIX}*")],
            writes=[(zones.artifacts, f"{RUNS_PREFIX}*")],
        )
        self.train_role.add_to_policy(
            iam.PolicyStatement(
                sid="PutProgressEvents", actions=["events:PutEvents"], resources=[progress_bus.event_bus_arn]
            )
        )
        # The job keeps its latest two checkpoints and deletes older ones; SageMaker deletes from S3
        # what the job deletes from its checkpoint folder, as the job's role, so resuming downloads
        # two files, not one per checkpointed round.
        # https://docs.aws.amazon.com/sagemaker/latest/dg/model-checkpoints.html
        checkpoints = zones.artifacts.arn_for_objects(f"{RUNS_PREFIX}*/checkpoints/*")
        self.train_role.add_to_policy(
            iam.PolicyStatement(sid="PruneCheckpoints", actions=["s3:DeleteObject"], resources=[checkpoints])
        )
        acknowledge_wildcard_resource(
            self.train_role.node.find_child("DefaultPolicy"),
            checkpoints,
            "Training jobs delete their own older checkpoints, keyed by tenant, run and trial under a run's "
            "checkpoints/ folder; no other object of the zone can be deleted.",
        )
        self._grant_output_encryption(self.train_role, "OutputDataConfig")
        self.transform_role = self._job_role(
            "TransformRole",
            "Batch transform jobs: read model artifacts and the batch input, write predictions",
            kind="TransformJobs",
            images=images,
            reads=[(zones.artifacts, f"{RUNS_PREFIX}*"), (zones.features, f"{BATCH_INPUT_PREFIX}*")],
            writes=[(zones.predictions, "predictions/*")],
        )
        self._grant_output_encryption(self.transform_role, "TransformOutput")
        self.baseline_role = self._job_role(
            "BaselineRole",
            "Baseline (Processing) jobs: read training splits, model artifacts and feature schemas, write baselines",
            kind="ProcessingJobs",
            images=[cpu_image],
            reads=[
                (zones.features, f"{FEATURES_PREFIX}*"),
                (zones.artifacts, f"{RUNS_PREFIX}*/model.tar.gz"),
                (zones.artifacts, f"{RUNS_PREFIX}*/feature-schema.json"),
            ],
            writes=[(zones.artifacts, BASELINE_OBJECTS)],
            objects_reason="Baseline jobs read a run's training split, model artifact and feature schema, and "
            "write only baseline.json objects, keyed by tenant, run and training job under the runs prefix.",
        )

        common = {
            "names": names,
            "key": key,
            "log_retention_days": environment.retention.log_retention_days,
            "removal_policy": removal_policy,
        }
        instance_types = environment.instance_types
        self.plan_function = platform_function(
            self,
            "PlanFunction",
            folder="plan",
            description="Expands a tenant's published pipeline into one training request per trial",
            role_description="Plan function: reads tenant configs, writes plans, records runs in the ledger",
            environment={
                "CONFIG_BUCKET": zones.artifacts.bucket_name,
                "ARTIFACTS_BUCKET": zones.artifacts.bucket_name,
                "RAW_BUCKET": zones.raw.bucket_name,
                "CURATED_BUCKET": zones.curated.bucket_name,
                "FEATURES_BUCKET": zones.features.bucket_name,
                "PREDICTIONS_BUCKET": zones.predictions.bucket_name,
                "LEDGER_TABLE": ledger.table_name,
                "JOB_PREFIX": names.prefix,
                "PROGRESS_BUS_NAME": progress_bus.event_bus_name,
                "EVENT_SOURCE": event_source(names),
                "TRAINING_IMAGE_URI": cpu_image.image_uri,
                "GPU_TRAINING_IMAGE_URI": gpu_image.image_uri if gpu_image else "",
                "KMS_KEY_ARN": key.key_arn,
                "PROCESSING_INSTANCE_TYPE": instance_types.processing,
                "PROCESSING_LOCAL_STORAGE": _flag(has_local_storage(instance_types.processing)),
                "BATCH_TRANSFORM_INSTANCE_TYPE": instance_types.batch_transform,
                "BATCH_TRANSFORM_LOCAL_STORAGE": _flag(has_local_storage(instance_types.batch_transform)),
                "PROGRESS_INTERVAL_SECONDS": str(environment.training.progress_interval_seconds),
            },
            timeout_seconds=300,
            memory_size=1024,
            **common,  # type: ignore[arg-type]
        )
        self._read(self.plan_function, zones.artifacts, CONFIG_PREFIX)
        self._write(self.plan_function, zones.artifacts, RUNS_PREFIX)
        self._ledger(self.plan_function, ledger, ["dynamodb:PutItem"])

        self.evaluate_function = platform_function(
            self,
            "EvaluateFunction",
            folder="evaluate",
            description="Picks each model's best trial and records all trials; registers it once its baseline exists",
            role_description="Evaluate function: reads results and baselines, writes evaluations, registers packages",
            environment={
                "CONFIG_BUCKET": zones.artifacts.bucket_name,
                "ARTIFACTS_BUCKET": zones.artifacts.bucket_name,
                "FEATURES_BUCKET": zones.features.bucket_name,
                "LEDGER_TABLE": ledger.table_name,
                "JOB_PREFIX": names.prefix,
                "AUTO_APPROVE": _flag(environment.training.auto_approve),
                "SERVING_IMAGE_URI": cpu_image.image_uri,
                "INFERENCE_INSTANCE_TYPE": instance_types.inference,
                "BATCH_TRANSFORM_INSTANCE_TYPE": instance_types.batch_transform,
                "KMS_KEY_ARN": key.key_arn,
                # The baseline jobs it describes for the state machine: the training image, a small CPU.
                "BASELINE_IMAGE_URI": cpu_image.image_uri,
                "PROCESSING_INSTANCE_TYPE": instance_types.processing,
                "PROCESSING_LOCAL_STORAGE": _flag(has_local_storage(instance_types.processing)),
                "TOLERATED_FAILURE_PERCENTAGE": str(environment.training.tolerated_failure_percentage),
            },
            timeout_seconds=900,
            memory_size=2048,
            **common,  # type: ignore[arg-type]
        )
        self._read(self.evaluate_function, zones.artifacts, CONFIG_PREFIX)
        self._read(self.evaluate_function, zones.artifacts, RUNS_PREFIX)
        # Results of executions started before the Map wrote under the run (a redrive keeps its definition).
        self._read(self.evaluate_function, zones.artifacts, "artifacts/map-results/")
        self._write(self.evaluate_function, zones.artifacts, RUNS_PREFIX)
        self._ledger(self.evaluate_function, ledger, ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"])
        self._grant_sagemaker(
            self.evaluate_function,
            "RegisterModelPackages",
            [
                "sagemaker:CreateModelPackageGroup",
                "sagemaker:DescribeModelPackageGroup",
                "sagemaker:CreateModelPackage",
                "sagemaker:DescribeModelPackage",
                "sagemaker:ListModelPackages",
            ],
            [self._sagemaker_arn("model-package-group"), self._sagemaker_arn("model-package", "/*")],
            "Model package groups are data, one per tenant and model (<prefix>-<tenant>-<model>); "
            "the grant stops at this environment's prefix.",
        )
        # Trials the Map's results do not account for (a redrive, moto) are looked up by job name.
        self._grant_sagemaker(
            self.evaluate_function,
            "DescribeUnreportedTrials",
            ["sagemaker:DescribeTrainingJob"],
            [self._sagemaker_arn("training-job")],
            TRAINING_JOB_NAMES,
        )

        self.job_function = platform_function(
            self,
            "TrainingJobFunction",
            folder="training_job",
            description="Resolves a training job name already in use: wait for it, reuse it, or take the next attempt",
            role_description="Training job function: describes this environment's training jobs",
            environment={"MAX_ATTEMPTS": "3"},
            timeout_seconds=30,
            memory_size=256,
            **common,  # type: ignore[arg-type]
        )
        self._grant_sagemaker(
            self.job_function,
            "DescribeTrainingJobs",
            ["sagemaker:DescribeTrainingJob"],
            [self._sagemaker_arn("training-job")],
            TRAINING_JOB_NAMES,
        )

        log_group = logs.LogGroup(
            self,
            "StateMachineLogs",
            retention=retention_days(environment.retention.log_retention_days),
            encryption_key=key,
            removal_policy=removal_policy,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            comment=f'Trains a tenant\'s models in {names.environment}: input {{"tenant": "<name>"}}',
            definition_body=sfn.DefinitionBody.from_chainable(self._definition(environment)),
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

    # -- definition -----------------------------------------------------------------------------
    #
    # Failures that a redrive can fix (a job that failed, SageMaker or Lambda errors that outlived
    # their retries) are not caught: the execution fails in the state that failed, and a redrive
    # reruns that state. A redrive restarts an execution at the state that was entered and never
    # left (https://docs.aws.amazon.com/step-functions/latest/dg/redrive-executions.html,
    # https://docs.aws.amazon.com/step-functions/latest/dg/redrive-map-run.html); for a failure
    # caught into a Fail state that is the Fail state itself, which fails again at once. So only
    # failures that no redrive can fix (a request the plan refuses, no usable trial, a missing
    # baseline) end in named Fail states. Jobs a redrive starts again are named with
    # $$.Execution.RedriveCount, so they never collide with the failed attempt's job. The ledger
    # learns how every execution ended from Step Functions' status events (RunOutcomes).

    def _definition(self, environment: EnvironmentConfig) -> sfn.IChainable:
        plan = tasks.LambdaInvoke(
            self,
            "Plan",
            lambda_function=self.plan_function.function,
            payload=sfn.TaskInput.from_object(
                {
                    "request": sfn.JsonPath.entire_payload,
                    "run_id": sfn.JsonPath.execution_name,
                    "started_at": sfn.JsonPath.execution_start_time,
                    "execution_arn": sfn.JsonPath.execution_id,
                }
            ),
            payload_response_only=True,
            result_path="$.plan",
        )
        prepare = self._sagemaker_sync(
            "Prepare",
            "createProcessingJob",
            {
                "ProcessingJobName.$": _attempt_name("$.plan.prepare.ProcessingJobName"),
                "RoleArn": self.prepare_role.role_arn,
                **_copied("$.plan.prepare", "AppSpecification", "ProcessingInputs", "ProcessingOutputConfig"),
                **_copied("$.plan.prepare", "ProcessingResources", "StoppingCondition"),
            },
            result_path=sfn.JsonPath.DISCARD,
        )
        train = sfn.DistributedMap(
            self,
            "Train",
            item_reader=sfn.S3JsonItemReader(
                bucket=self._zones.artifacts, key=sfn.JsonPath.string_at("$.plan.plan.Key")
            ),
            item_selector={
                "item": sfn.JsonPath.string_at("$$.Map.Item.Value"),
                "current": {
                    "job_name": sfn.JsonPath.string_at("$$.Map.Item.Value.job_name"),
                    "attempt": sfn.JsonPath.number_at("$$.Map.Item.Value.attempt"),
                },
                # The next wait for capacity and the seconds waited so far; the next poll of a job in use.
                "wait": {"seconds": FIRST_CAPACITY_WAIT_SECONDS, "waited": 0},
                "poll": {"seconds": FIRST_POLL_SECONDS},
            },
            # Per run (the plan's results prefix), so evaluation finds them even when the Map failed.
            result_writer_v2=sfn.ResultWriterV2(
                bucket=self._zones.artifacts, prefix=sfn.JsonPath.string_at("$.plan.results.Prefix")
            ),
            max_concurrency=environment.capacities.training_max_concurrency,
            tolerated_failure_percentage=environment.training.tolerated_failure_percentage,
            label="Trials",
            result_path="$.training",
        )
        train.item_processor(self._trial(environment.training.capacity_wait_limit_seconds))
        evaluate = tasks.LambdaInvoke(
            self,
            "Evaluate",
            lambda_function=self.evaluate_function.function,
            payload=sfn.TaskInput.from_object(
                {
                    "action": "evaluate",
                    "run_id": sfn.JsonPath.string_at("$.plan.run_id"),
                    "tenant": sfn.JsonPath.string_at("$.plan.tenant"),
                    "plan": sfn.JsonPath.object_at("$.plan"),
                    # The Map's output, or its error when more trials failed than it tolerates.
                    "results": sfn.JsonPath.object_at("$.training"),
                }
            ),
            payload_response_only=True,
            result_path="$.evaluation",
        )
        baselines = sfn.Map(
            self,
            "Baselines",
            items_path="$.evaluation.selected",
            item_selector={
                "model": sfn.JsonPath.string_at("$$.Map.Item.Value.model"),
                "job": sfn.JsonPath.object_at("$$.Map.Item.Value.baseline_job"),
            },
            max_concurrency=BASELINE_MAX_CONCURRENCY,
            result_path=sfn.JsonPath.DISCARD,
        )
        baselines.item_processor(self._baseline())
        register = tasks.LambdaInvoke(
            self,
            "Register",
            lambda_function=self.evaluate_function.function,
            payload=sfn.TaskInput.from_object(
                {
                    "action": "register",
                    "run_id": sfn.JsonPath.string_at("$.plan.run_id"),
                    "tenant": sfn.JsonPath.string_at("$.plan.tenant"),
                    "evaluation": sfn.JsonPath.object_at("$.evaluation"),
                }
            ),
            payload_response_only=True,
            result_path="$.registration",
        )
        create_model = tasks.CallAwsService(
            self,
            "CreatePredictionModel",
            service="sagemaker",
            action="createModel",
            iam_action="sagemaker:CreateModel",
            parameters={
                "ModelName": _attempt_name_token("$.plan.predict.ModelName"),
                "ExecutionRoleArn": self.transform_role.role_arn,
                "Containers": [
                    {"ModelPackageName": sfn.JsonPath.string_at("$.registration.predict.model_package_arn")}
                ],
            },
            iam_resources=[self._sagemaker_arn("model")],
            additional_iam_statements=[
                # A model made from a package reads the package.
                iam.PolicyStatement(
                    actions=["sagemaker:DescribeModelPackage"], resources=[self._sagemaker_arn("model-package", "/*")]
                )
            ],
            # Predict names the model it created, even after a redrive of Predict alone.
            result_selector={
                "model_name": sfn.JsonPath.array_get_item(
                    sfn.JsonPath.string_split(sfn.JsonPath.string_at("$.ModelArn"), "/"), 1
                )
            },
            result_path="$.prediction",
        )
        predict = self._predict(environment)
        report = {
            "run_id": sfn.JsonPath.string_at("$.plan.run_id"),
            "tenant": sfn.JsonPath.string_at("$.plan.tenant"),
            "trials": sfn.JsonPath.object_at("$.evaluation.trials"),
            "best": sfn.JsonPath.list_at("$.registration.best"),
        }
        with_predictions = sfn.Pass(
            self,
            "Report",
            parameters={
                **report,
                "predictions": sfn.JsonPath.string_at("$.plan.predict.TransformOutput.S3OutputPath"),
            },
        )
        without_predictions = sfn.Pass(
            self,
            "ReportWithoutPredictions",
            # $.registration.predict is null on this path: the output keeps its shape, predictions null.
            parameters={**report, "predictions": sfn.JsonPath.string_at("$.registration.predict")},
        )
        done = sfn.Succeed(self, "Done")

        # Only failures no redrive can fix end in Fail states (see above).
        plan.add_catch(self._fail("PlanFailed"), errors=list(PLAN_ERRORS), result_path="$.error")
        evaluate.add_catch(self._fail("NoUsableTrial"), errors=["NoUsableTrial"], result_path="$.error")
        register.add_catch(self._fail("BaselineFailed"), errors=["BaselineMissing"], result_path="$.error")
        # More failed trials than tolerated stops the Map; evaluation decides whether what succeeded is enough.
        train.add_catch(evaluate, errors=["States.ExceedToleratedFailureThreshold"], result_path="$.training")
        for lambda_task in (plan, evaluate, register):
            _retry_lambda_throttling(lambda_task)
        for sagemaker_task in (prepare, predict):
            _retry_sagemaker(sagemaker_task)
        create_model.add_retry(
            # AWS SDK integrations name SageMaker's unmodelled errors (throttling, 5xx) SageMaker.SageMakerException.
            errors=[SDK_SAGEMAKER_ERROR],
            interval=Duration.seconds(SAGEMAKER_RETRY_SECONDS),
            max_attempts=SAGEMAKER_RETRY_ATTEMPTS,
            backoff_rate=2,
            max_delay=Duration.seconds(SAGEMAKER_RETRY_MAX_DELAY_SECONDS),
            jitter_strategy=sfn.JitterType.FULL,
        )

        anything_approved = (
            sfn.Choice(self, "AnythingApproved")
            .when(sfn.Condition.is_null("$.registration.predict"), without_predictions.next(done))
            .otherwise(create_model.next(predict).next(with_predictions).next(done))
        )
        return plan.next(prepare).next(train).next(evaluate).next(baselines).next(register).next(anything_approved)

    def _predict(self, environment: EnvironmentConfig) -> tasks.SageMakerCreateTransformJob:
        """Batch transform with CDK's task (it grants what the integration needs); the plan names the job and paths.

        The fixed fields are the plan's (lambda/plan/handler.py ``predict_request``); the integration test
        compares the job SageMaker receives with the plan's request.
        """
        volume_key = None if has_local_storage(environment.instance_types.batch_transform) else self._key
        return tasks.SageMakerCreateTransformJob(
            self,
            "Predict",
            integration_pattern=sfn.IntegrationPattern.RUN_JOB,
            transform_job_name=_attempt_name_token("$.plan.predict.TransformJobName"),
            model_name=sfn.JsonPath.string_at("$.prediction.model_name"),
            role=self.transform_role,
            transform_input=tasks.TransformInput(
                transform_data_source=tasks.TransformDataSource(
                    s3_data_source=tasks.TransformS3DataSource(
                        s3_uri=sfn.JsonPath.string_at("$.plan.predict.TransformInput.DataSource.S3DataSource.S3Uri"),
                        s3_data_type=tasks.S3DataType.S3_PREFIX,
                    )
                ),
                content_type="text/csv",
                split_type=tasks.SplitType.LINE,
            ),
            transform_output=tasks.TransformOutput(
                s3_output_path=sfn.JsonPath.string_at("$.plan.predict.TransformOutput.S3OutputPath"),
                encryption_key=self._key,
                accept="text/csv",
                assemble_with=tasks.AssembleWith.LINE,
            ),
            transform_resources=tasks.TransformResources(
                instance_count=1,
                instance_type=ec2.InstanceType(
                    sfn.JsonPath.string_at("$.plan.predict.TransformResources.InstanceType")
                ),
                volume_encryption_key=volume_key,
            ),
            batch_strategy=tasks.BatchStrategy.MULTI_RECORD,
            max_payload=Size.mebibytes(6),
            result_path=sfn.JsonPath.DISCARD,
        )

    def _baseline(self) -> sfn.IChainable:
        """One chosen model's baseline job (.sync); a redrive reruns a failed one under the next name."""
        start = self._sagemaker_sync(
            "StartBaseline",
            "createProcessingJob",
            {
                "ProcessingJobName.$": _attempt_name("$.job.ProcessingJobName"),
                "RoleArn": self.baseline_role.role_arn,
                **_copied("$.job", "AppSpecification", "ProcessingInputs", "ProcessingOutputConfig"),
                **_copied("$.job", "ProcessingResources", "StoppingCondition"),
            },
            result_path=sfn.JsonPath.DISCARD,
        )
        _retry_sagemaker(start)
        return start.next(sfn.Pass(self, "BaselineDone", parameters={"model": sfn.JsonPath.string_at("$.model")}))

    def _trial(self, capacity_wait_limit_seconds: int) -> sfn.IChainable:
        """One trial: start its job (.sync), or wait for capacity, or resolve a name already in use.

        Waits back off (doubling to a cap), so a trial's history stays well inside a child execution's
        25,000 events for the longest wait and job the configuration allows (tests/infra/test_training.py).
        """
        start = self._sagemaker_sync(
            "StartTraining",
            "createTrainingJob",
            {
                "TrainingJobName.$": "$.current.job_name",
                "RoleArn": self.train_role.role_arn,
                **_copied("$.item.request", "AlgorithmSpecification", "HyperParameters", "InputDataConfig"),
                **_copied("$.item.request", "OutputDataConfig", "ResourceConfig", "StoppingCondition"),
                **_copied("$.item.request", "EnableManagedSpotTraining", "CheckpointConfig"),
                # Jobs must reach EventBridge to report progress.
                "EnableNetworkIsolation": False,
            },
            result_path="$.job",
        )
        trial_done = sfn.Pass(
            self,
            "TrialDone",
            parameters={"item": sfn.JsonPath.object_at("$.item"), "job": sfn.JsonPath.object_at("$.job")},
        )

        # Quota, throttling and SageMaker's 5xx: wait (doubling, at most MAX_CAPACITY_WAIT_SECONDS a time),
        # until the trial has waited capacity_wait_limit_seconds in all; then it gives up and says so.
        give_up = tasks.CallAwsService(
            self,
            "ReportCapacityWait",
            comment="One data point per trial that gives up; an alarm on the metric notifies once",
            service="cloudwatch",
            action="putMetricData",
            iam_action="cloudwatch:PutMetricData",
            iam_resources=["*"],
            parameters={
                "Namespace": self._names.metrics_namespace,
                "MetricData": [{"MetricName": CAPACITY_GAVE_UP_METRIC, "Value": 1, "Unit": "Count"}],
            },
            result_path=sfn.JsonPath.DISCARD,
        ).next(
            sfn.Fail(
                self,
                "CapacityUnavailable",
                error="CapacityUnavailable",
                cause=(
                    f"SageMaker refused this trial's job for {capacity_wait_limit_seconds} seconds "
                    "(quota, throttling or service errors): raise the quota or start a new run later"
                ),
            )
        )
        wait_for_capacity = sfn.Wait(self, "WaitForCapacity", time=sfn.WaitTime.seconds_path("$.wait.seconds"))
        back_off = sfn.Pass(
            self,
            "BackOff",
            parameters={
                "seconds": sfn.JsonPath.math_add(
                    sfn.JsonPath.number_at("$.wait.seconds"), sfn.JsonPath.number_at("$.wait.seconds")
                ),
                "waited": sfn.JsonPath.math_add(
                    sfn.JsonPath.number_at("$.wait.waited"), sfn.JsonPath.number_at("$.wait.seconds")
                ),
            },
            result_path="$.wait",
        )
        cap_back_off = (
            sfn.Choice(self, "CapBackOff")
            .when(
                sfn.Condition.number_greater_than("$.wait.seconds", MAX_CAPACITY_WAIT_SECONDS),
                sfn.Pass(
                    self,
                    "UseLongestWait",
                    parameters={
                        "seconds": MAX_CAPACITY_WAIT_SECONDS,
                        "waited": sfn.JsonPath.number_at("$.wait.waited"),
                    },
                    result_path="$.wait",
                ).next(start),
            )
            .otherwise(start)
        )
        waited_long_enough = (
            sfn.Choice(self, "WaitedTooLong")
            .when(sfn.Condition.number_greater_than_equals("$.wait.waited", capacity_wait_limit_seconds), give_up)
            .otherwise(wait_for_capacity.next(back_off).next(cap_back_off))
        )

        # ResourceInUse: this trial's own earlier attempt (a redrive, or a create whose answer was lost).
        find_existing = tasks.LambdaInvoke(
            self,
            "FindExistingJob",
            lambda_function=self.job_function.function,
            payload=sfn.TaskInput.from_object(
                {"item": sfn.JsonPath.object_at("$.item"), "current": sfn.JsonPath.object_at("$.current")}
            ),
            payload_response_only=True,
            result_path="$.resolution",
        )
        _retry_lambda_throttling(find_existing)
        next_poll = sfn.Pass(
            self,
            "NextPoll",
            parameters={
                "seconds": sfn.JsonPath.math_add(
                    sfn.JsonPath.number_at("$.poll.seconds"), sfn.JsonPath.number_at("$.poll.seconds")
                )
            },
            result_path="$.poll",
        )
        cap_poll = (
            sfn.Choice(self, "CapPoll")
            .when(
                sfn.Condition.number_greater_than("$.poll.seconds", MAX_POLL_SECONDS),
                sfn.Pass(
                    self,
                    "UseLongestPoll",
                    result=sfn.Result.from_number(MAX_POLL_SECONDS),
                    result_path="$.poll.seconds",
                ).next(find_existing),
            )
            .otherwise(find_existing)
        )
        wait_for_existing = sfn.Wait(self, "WaitForExistingJob", time=sfn.WaitTime.seconds_path("$.poll.seconds"))
        reuse = sfn.Pass(
            self,
            "ReuseJob",
            parameters={"item": sfn.JsonPath.object_at("$.item"), "job": sfn.JsonPath.object_at("$.resolution.job")},
        )
        next_attempt = sfn.Pass(
            self,
            "NextAttempt",
            parameters={
                "job_name": sfn.JsonPath.string_at("$.resolution.job_name"),
                "attempt": sfn.JsonPath.number_at("$.resolution.attempt"),
            },
            result_path="$.current",
        )
        existing = (
            sfn.Choice(self, "ExistingJob")
            .when(
                sfn.Condition.string_equals("$.resolution.action", "wait"),
                wait_for_existing.next(next_poll).next(cap_poll),
            )
            .when(sfn.Condition.string_equals("$.resolution.action", "reuse"), reuse)
            .when(sfn.Condition.string_equals("$.resolution.action", "retry"), next_attempt.next(start))
            .otherwise(
                sfn.Fail(self, "GaveUp", error="TrainingAttemptsExhausted", cause="Every attempt of this trial failed")
            )
        )
        why_not_started = (
            sfn.Choice(self, "WhyNotStarted")
            .when(
                sfn.Condition.or_(*(sfn.Condition.string_matches("$.error.Cause", p) for p in TRANSIENT_CAUSES)),
                waited_long_enough,
            )
            .when(sfn.Condition.string_matches("$.error.Cause", "*ResourceInUse*"), find_existing.next(existing))
            .otherwise(self._fail("TrainingRequestRejected"))
        )
        find_existing.add_catch(
            self._fail("ExistingJobUnresolved"), errors=list(RESOLVER_ERRORS), result_path="$.error"
        )
        # Only the create call's errors are caught; a job that failed fails the trial in StartTraining,
        # so a redrive of the Map Run starts it again (ResourceInUse, then the next attempt).
        start.add_catch(why_not_started, errors=[SAGEMAKER_ERROR], result_path="$.error")
        return start.next(trial_done)

    def _sagemaker_sync(self, id: str, action: str, parameters: dict[str, Any], result_path: str) -> sfn.CustomState:
        """A ``.sync`` SageMaker task whose request fields come from the state (no CDK task takes them all)."""
        return sfn.CustomState(
            self,
            id,
            state_json={
                "Type": "Task",
                "Resource": f"arn:{Stack.of(self).partition}:states:::sagemaker:{action}.sync",
                "Parameters": parameters,
                "ResultPath": result_path,
            },
        )

    def _fail(self, error: str) -> sfn.Fail:
        """A Fail state per failure path, with the cause that led there (a failed state's ``$.error``)."""
        existing = self.node.try_find_child(error)
        if isinstance(existing, sfn.Fail):
            return existing
        return sfn.Fail(self, error, error=error, cause_path="$.error.Cause")

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

    # -- permissions ----------------------------------------------------------------------------

    def _sagemaker_arn(self, resource: str, suffix: str = "") -> str:
        stack = Stack.of(self)
        return (
            f"arn:{stack.partition}:sagemaker:{stack.region}:{stack.account}:{resource}/{self._names.prefix}-*{suffix}"
        )

    def _job_role(
        self,
        id: str,
        description: str,
        *,
        kind: str,
        images: list[ecr_assets.DockerImageAsset],
        reads: list[tuple[s3.IBucket, str]],
        writes: list[tuple[s3.IBucket, str]],
        objects_reason: str = "Jobs read and write objects keyed by tenant, dataset and run; "
        "each grant stops at its zone prefix.",
    ) -> iam.Role:
        """A role SageMaker jobs run as; ``reads`` and ``writes`` are object-key patterns (``raw/*``)."""
        role = iam.Role(self, id, assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"), description=description)
        for image in images:
            image.repository.grant_pull(role)
        for bucket, objects in reads:
            self._grant_read(role, bucket, objects)
        for bucket, objects in writes:
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["s3:PutObject", "s3:AbortMultipartUpload"],
                    resources=[bucket.arn_for_objects(objects)],
                )
            )
        self._grant_key_through(role, "s3")
        # Volumes are encrypted with the platform key where the instance type allows it.
        role.add_to_policy(
            iam.PolicyStatement(
                sid="EncryptVolumes",
                actions=["kms:CreateGrant", "kms:DescribeKey"],
                resources=[self._key.key_arn],
                conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
            )
        )
        log_group = grant_logs_and_metrics(
            role,
            log_group_name=f"/aws/sagemaker/{kind}",
            namespaces=[f"/aws/sagemaker/{kind}"],
            sids=("WriteJobLogs", "PutJobMetrics"),
        )
        policy = role.node.find_child("DefaultPolicy")
        self._acknowledge_prefix(
            policy,
            [bucket.arn_for_objects(objects) for bucket, objects in [*reads, *writes]],
            objects_reason,
        )
        acknowledge_wildcard_resource(
            policy,
            f"{log_group}:*",
            f"SageMaker writes job logs to streams of its own log group /aws/sagemaker/{kind}, named per job.",
        )
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::*]",
            "ecr:GetAuthorizationToken and cloudwatch:PutMetricData support no resource-level permissions; "
            "metrics are limited to SageMaker's job namespace by condition.",
        )
        return role

    def _grant_read(self, grantee: iam.IGrantable, bucket: s3.IBucket, objects: str) -> None:
        """GetObject on the objects of a key pattern, and listing the prefix before its first wildcard."""
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[bucket.arn_for_objects(objects)])
        )
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [objects[: objects.index("*") + 1]]}},
            )
        )

    def _grant_key_through(self, grantee: iam.IGrantable, service: str) -> None:
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["kms:Decrypt", "kms:GenerateDataKey"]
                + (["kms:Encrypt", "kms:DescribeKey"] if service == "dynamodb" else []),
                resources=[self._key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"{service}.{self._region}.amazonaws.com"}},
            )
        )

    def _read(self, function: PlatformFunction, bucket: s3.IBucket, prefix: str) -> None:
        self._grant_read(function.role, bucket, f"{prefix}*")
        self._grant_key_through(function.role, "s3")
        self._acknowledge_prefix(
            function.policy, [bucket.arn_for_objects(f"{prefix}*")], f"Reads stop at the {prefix} prefix."
        )

    def _write(self, function: PlatformFunction, bucket: s3.IBucket, prefix: str) -> None:
        function.role.add_to_policy(
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[bucket.arn_for_objects(f"{prefix}*")])
        )
        self._grant_key_through(function.role, "s3")
        self._acknowledge_prefix(
            function.policy, [bucket.arn_for_objects(f"{prefix}*")], f"Writes stop at the {prefix} prefix."
        )

    def _ledger(self, function: PlatformFunction, ledger: dynamodb.ITableV2, actions: list[str]) -> None:
        function.role.add_to_policy(iam.PolicyStatement(actions=actions, resources=[ledger.table_arn]))
        self._grant_key_through(function.role, "dynamodb")

    def _grant_sagemaker(
        self, function: PlatformFunction, sid: str, actions: list[str], resources: list[str], reason: str
    ) -> None:
        """SageMaker actions on this environment's prefixed resources, with the prefix wildcard acknowledged."""
        function.role.add_to_policy(iam.PolicyStatement(sid=sid, actions=actions, resources=resources))
        self._acknowledge_prefix(function.policy, resources, reason)

    def _acknowledge_prefix(self, policy: Any, resources: list[str], reason: str) -> None:
        for resource in dict.fromkeys(resources):
            acknowledge_wildcard_resource(policy, resource, reason)

    def _grant_output_encryption(self, role: iam.Role, field: str) -> None:
        """``kms:Encrypt`` on the platform key: required of the job's role when the request's output KMS key is set.

        CreateTrainingJob's OutputDataConfig.KmsKeyId and CreateTransformJob's TransformOutput.KmsKeyId:
        "If you use a KMS key ID or an alias of your KMS key, the SageMaker execution role must include
        permissions to call kms:Encrypt" (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_OutputDataConfig.html,
        https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_TransformOutput.html). ProcessingOutputConfig
        says no such thing; Processing jobs write through S3 with the role's GenerateDataKey.
        """
        role.add_to_policy(
            iam.PolicyStatement(sid=f"EncryptWith{field}Key", actions=["kms:Encrypt"], resources=[self._key.key_arn])
        )

    def _grant_state_machine(self) -> None:
        """What the hand-written ``.sync`` states need (the CDK tasks add their own), and no more."""
        stack = Stack.of(self)
        role = self.state_machine.role
        grant_run_job(
            self,
            role,
            job="ProcessingJob",
            jobs=[self._sagemaker_arn("processing-job")],
            job_roles=[self.prepare_role, self.baseline_role],
        )
        grant_run_job(
            self, role, job="TrainingJob", jobs=[self._sagemaker_arn("training-job")], job_roles=[self.train_role]
        )
        self._grant_key_through(role, "s3")
        policy = role.node.find_child("DefaultPolicy")
        self._acknowledge_prefix(
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
        self._acknowledge_prefix(
            policy,
            [f"arn:{Aws.PARTITION}:s3:::{self._zones.artifacts.bucket_name}/*"],
            "The Distributed Map reads each run's plan and writes its results; their keys are per run "
            "(CDK's item reader and result writer grant the bucket's objects).",
        )
        for function in (self.plan_function, self.evaluate_function, self.job_function):
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


# The plan's typed errors (lambda/plan/handler.py): the request or the config is wrong; a redrive cannot help.
PLAN_ERRORS = ("InvalidRunRequest", "UnknownTenant", "UnknownModel", "InvalidConfig", "InvalidName", "PlanConflict")
# The training-job λ's typed errors (lambda/training_job/handler.py).
RESOLVER_ERRORS = ("InvalidResolverInput", "TrainingJobNotFound", "JobNameCollision", "InvalidName", "ResolverError")
REDRIVE_COUNT = "$$.Execution.RedriveCount"


def _attempt_name(path: str) -> str:
    """``<name at path>-r<redrive count>``: a redrive's job never collides with the failed attempt's."""
    return f"States.Format('{{}}-r{{}}', {path}, {REDRIVE_COUNT})"


def _attempt_name_token(path: str) -> str:
    """The same name, as a token for CDK's tasks."""
    return sfn.JsonPath.format("{}-r{}", sfn.JsonPath.string_at(path), sfn.JsonPath.string_at(REDRIVE_COUNT))


def _retry_sagemaker(task: sfn.TaskStateBase | sfn.CustomState) -> None:
    """Retry a refused create call: throttling, SageMaker's 5xx and quota clear with time.

    The optimized integration reports every refusal as SageMaker.AmazonSageMakerException with the code
    only in the cause, so a request SageMaker rejects as invalid is retried too, for about ten minutes,
    before the execution fails in this state (these requests are the platform's own, not tenants').
    """
    task.add_retry(
        errors=[SAGEMAKER_ERROR],
        interval=Duration.seconds(SAGEMAKER_RETRY_SECONDS),
        max_attempts=SAGEMAKER_RETRY_ATTEMPTS,
        backoff_rate=2,
        max_delay=Duration.seconds(SAGEMAKER_RETRY_MAX_DELAY_SECONDS),
        jitter_strategy=sfn.JitterType.FULL,
    )


def _retry_lambda_throttling(task: tasks.LambdaInvoke) -> None:
    """CDK's LambdaInvoke retries Lambda's service errors; throttling (TooManyRequests) is not among them."""
    task.add_retry(
        errors=["Lambda.TooManyRequestsException"],
        interval=Duration.seconds(2),
        max_attempts=6,
        backoff_rate=2,
        jitter_strategy=sfn.JitterType.FULL,
    )


def _copied(path: str, *fields: str) -> dict[str, str]:
    """``{"Field.$": "<path>.Field"}``: API fields taken verbatim from the plan."""
    return {f"{field}.$": f"{path}.{field}" for field in fields}


def _flag(value: bool) -> str:
    return "true" if value else "false"
