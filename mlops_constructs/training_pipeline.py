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
or not at all. Any baseline job that fails ends the run in ``BaselineFailed`` before anything is
registered. A baseline job is named after its trial (``<prefix>-<h>-<trial>-bl``), so a redriven
run finds the jobs it already ran: a create refused by SageMaker is followed by a describe of the
job by that name, and a completed one counts (its ``baseline.json`` is in place; register checks).

The trial loop (``_trial``) is where SageMaker's errors are told apart. Step Functions reports
every SageMaker error as ``SageMaker.AmazonSageMakerException`` with the code only in the cause,
so a Choice on the cause sends quota and throttling errors to a back-off loop (trials wait for
capacity, they never fail the run for it), ``ResourceInUse`` (a retried or redriven execution
finding its own job) to a Lambda that reuses, waits for or supersedes the job, and anything else
to a Fail state with the cause.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import Aws, Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from config.instance_types import has_local_storage
from config.naming import Names
from config.schema import EnvironmentConfig
from mlops_constructs.functions import PlatformFunction, platform_function
from mlops_constructs.log_retention import retention_days
from mlops_constructs.nag import acknowledge, acknowledge_wildcard_resource, ignore_redundant_dependency
from mlops_constructs.progress_tracking import event_source
from mlops_constructs.publishing import CONFIG_PREFIX
from mlops_constructs.sagemaker_roles import grant_logs_and_metrics

RUNS_PREFIX = "artifacts/runs/"
MAP_RESULTS_PREFIX = "artifacts/map-results"
FEATURES_PREFIX = "features/"
BATCH_INPUT_PREFIX = "batch-input/"
# Quota back-off: the first wait, doubled after each ResourceLimitExceeded up to the cap.
FIRST_CAPACITY_WAIT_SECONDS = 60
MAX_CAPACITY_WAIT_SECONDS = 1800
EXISTING_JOB_POLL_SECONDS = 120
QUOTA_OR_THROTTLING = ("*ResourceLimitExceeded*", "*ThrottlingException*", "*Rate exceeded*")
SAGEMAKER_ERROR = "SageMaker.AmazonSageMakerException"
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
        self.transform_role = self._job_role(
            "TransformRole",
            "Batch transform jobs: read model artifacts and the batch input, write predictions",
            kind="TransformJobs",
            images=images,
            reads=[(zones.artifacts, f"{RUNS_PREFIX}*"), (zones.features, f"{BATCH_INPUT_PREFIX}*")],
            writes=[(zones.predictions, "predictions/*")],
        )
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
            },
            timeout_seconds=900,
            memory_size=2048,
            **common,  # type: ignore[arg-type]
        )
        self._read(self.evaluate_function, zones.artifacts, CONFIG_PREFIX)
        self._read(self.evaluate_function, zones.artifacts, MAP_RESULTS_PREFIX + "/")
        self._read(self.evaluate_function, zones.artifacts, RUNS_PREFIX)
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

    # -- definition -----------------------------------------------------------------------------

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
                }
            ),
            payload_response_only=True,
            result_path="$.plan",
        )
        prepare = self._sagemaker_sync(
            "Prepare",
            "createProcessingJob",
            {
                "ProcessingJobName.$": "$.plan.prepare.ProcessingJobName",
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
                "wait_seconds": FIRST_CAPACITY_WAIT_SECONDS,
            },
            result_writer_v2=sfn.ResultWriterV2(bucket=self._zones.artifacts, prefix=MAP_RESULTS_PREFIX),
            max_concurrency=environment.capacities.training_max_concurrency,
            tolerated_failure_percentage=environment.training.tolerated_failure_percentage,
            label="Trials",
            result_path="$.training",
        )
        train.item_processor(self._trial())
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
            parameters={
                "ModelName": sfn.JsonPath.string_at("$.plan.predict.ModelName"),
                "ExecutionRoleArn": self.transform_role.role_arn,
                "Containers": [
                    {"ModelPackageName": sfn.JsonPath.string_at("$.registration.predict.model_package_arn")}
                ],
            },
            iam_resources=[self._sagemaker_arn("model")],
            result_path=sfn.JsonPath.DISCARD,
        )
        predict = self._sagemaker_sync(
            "Predict",
            "createTransformJob",
            {
                "TransformJobName.$": "$.plan.predict.TransformJobName",
                "ModelName.$": "$.plan.predict.ModelName",
                **_copied("$.plan.predict", "TransformInput", "TransformOutput", "TransformResources"),
                **_copied("$.plan.predict", "BatchStrategy", "MaxPayloadInMB"),
            },
            result_path=sfn.JsonPath.DISCARD,
        )
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

        for state, name in (
            (plan, "PlanFailed"),
            (prepare, "PrepareFailed"),
            (train, "TrainingFailed"),
            (create_model, "PredictionFailed"),
            (predict, "PredictionFailed"),
        ):
            state.add_catch(self._fail(name), errors=["States.ALL"], result_path="$.error")
        evaluate.add_catch(self._fail("NoUsableTrial"), errors=["NoUsableTrial"], result_path="$.error")
        evaluate.add_catch(self._fail("EvaluationFailed"), errors=["States.ALL"], result_path="$.error")
        # Nothing is registered unless every chosen model has its baseline.
        baselines.add_catch(self._fail("BaselineFailed"), errors=["States.ALL"], result_path="$.error")
        register.add_catch(self._fail("BaselineFailed"), errors=["BaselineMissing"], result_path="$.error")
        register.add_catch(self._fail("RegistrationFailed"), errors=["States.ALL"], result_path="$.error")

        anything_approved = (
            sfn.Choice(self, "AnythingApproved")
            .when(sfn.Condition.is_null("$.registration.predict"), without_predictions.next(done))
            .otherwise(create_model.next(predict).next(with_predictions).next(done))
        )
        return plan.next(prepare).next(train).next(evaluate).next(baselines).next(register).next(anything_approved)

    def _baseline(self) -> sfn.IChainable:
        """One chosen model's baseline job (.sync); a name already in use is a redriven run's own completed job."""
        start = self._sagemaker_sync(
            "StartBaseline",
            "createProcessingJob",
            {
                "ProcessingJobName.$": "$.job.ProcessingJobName",
                "RoleArn": self.baseline_role.role_arn,
                **_copied("$.job", "AppSpecification", "ProcessingInputs", "ProcessingOutputConfig"),
                **_copied("$.job", "ProcessingResources", "StoppingCondition"),
            },
            result_path=sfn.JsonPath.DISCARD,
        )
        baseline_done = sfn.Pass(self, "BaselineDone", parameters={"model": sfn.JsonPath.string_at("$.model")})
        find_existing = tasks.CallAwsService(
            self,
            "FindBaselineJob",
            service="sagemaker",
            action="describeProcessingJob",
            iam_action="sagemaker:DescribeProcessingJob",
            parameters={"ProcessingJobName": sfn.JsonPath.string_at("$.job.ProcessingJobName")},
            iam_resources=[self._sagemaker_arn("processing-job")],
            result_selector={"status": sfn.JsonPath.string_at("$.ProcessingJobStatus")},
            result_path="$.existing",
        )
        rejected = self._fail("BaselineRequestRejected")
        # The lookup's own error is kept apart: the cause reported is the create's.
        find_existing.add_catch(rejected, errors=["States.ALL"], result_path="$.lookup")
        earlier_job = (
            sfn.Choice(self, "EarlierBaselineJob")
            .when(sfn.Condition.string_equals("$.existing.status", "Completed"), baseline_done)
            .otherwise(rejected)
        )
        start.add_catch(find_existing.next(earlier_job), errors=[SAGEMAKER_ERROR], result_path="$.error")
        start.add_catch(self._fail("BaselineJobFailed"), errors=["States.ALL"], result_path="$.error")
        return start.next(baseline_done)

    def _trial(self) -> sfn.IChainable:
        """One trial: start its job (.sync), or wait for capacity, or resolve a name already in use."""
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
        wait_for_capacity = sfn.Wait(self, "WaitForCapacity", time=sfn.WaitTime.seconds_path("$.wait_seconds"))
        back_off = sfn.Pass(
            self,
            "BackOff",
            parameters={
                "seconds": sfn.JsonPath.math_add(
                    sfn.JsonPath.number_at("$.wait_seconds"), sfn.JsonPath.number_at("$.wait_seconds")
                )
            },
            result_path="$.backoff",
        )
        cap = (
            sfn.Choice(self, "CapBackOff")
            .when(
                sfn.Condition.number_greater_than("$.backoff.seconds", MAX_CAPACITY_WAIT_SECONDS),
                sfn.Pass(
                    self,
                    "UseLongestWait",
                    result=sfn.Result.from_number(MAX_CAPACITY_WAIT_SECONDS),
                    result_path="$.wait_seconds",
                ).next(start),
            )
            .otherwise(
                sfn.Pass(self, "UseDoubledWait", input_path="$.backoff.seconds", result_path="$.wait_seconds").next(
                    start
                )
            )
        )
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
        wait_for_existing = sfn.Wait(
            self, "WaitForExistingJob", time=sfn.WaitTime.duration(Duration.seconds(EXISTING_JOB_POLL_SECONDS))
        )
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
            .when(sfn.Condition.string_equals("$.resolution.action", "wait"), wait_for_existing.next(find_existing))
            .when(sfn.Condition.string_equals("$.resolution.action", "reuse"), reuse)
            .when(sfn.Condition.string_equals("$.resolution.action", "retry"), next_attempt.next(start))
            .otherwise(
                sfn.Fail(self, "GaveUp", error="TrainingAttemptsExhausted", cause="Every attempt of this trial failed")
            )
        )
        why_not_started = (
            sfn.Choice(self, "WhyNotStarted")
            .when(
                sfn.Condition.or_(*(sfn.Condition.string_matches("$.error.Cause", p) for p in QUOTA_OR_THROTTLING)),
                wait_for_capacity.next(back_off).next(cap),
            )
            .when(sfn.Condition.string_matches("$.error.Cause", "*ResourceInUse*"), find_existing.next(existing))
            .otherwise(self._fail("TrainingRequestRejected"))
        )
        find_existing.add_catch(self._fail("ExistingJobUnresolved"), errors=["States.ALL"], result_path="$.error")
        start.add_catch(why_not_started, errors=[SAGEMAKER_ERROR], result_path="$.error")
        start.add_catch(self._fail("TrainingJobFailed"), errors=["States.ALL"], result_path="$.error")
        return start.next(trial_done)

    def _sagemaker_sync(self, id: str, action: str, parameters: dict[str, Any], result_path: str) -> sfn.CustomState:
        """A ``.sync`` SageMaker task whose request fields come from the plan (no L2 task has them all)."""
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

    def _grant_state_machine(self) -> None:
        """What the custom ``.sync`` states need (the L2 tasks add their own), and no more."""
        stack = Stack.of(self)
        role = self.state_machine.role
        for kind, noun in (
            ("ProcessingJob", "processing-job"),
            ("TrainingJob", "training-job"),
            ("TransformJob", "transform-job"),
        ):
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=[f"sagemaker:Create{kind}", f"sagemaker:Describe{kind}", f"sagemaker:Stop{kind}"],
                    resources=[self._sagemaker_arn(noun)],
                )
            )
            # .sync waits through a managed EventBridge rule per job type.
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                    resources=[
                        f"arn:{stack.partition}:events:{stack.region}:{stack.account}:rule/"
                        f"StepFunctionsGetEventsForSageMaker{kind}sRule"
                    ],
                )
            )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="PassJobRolesToSageMakerOnly",
                actions=["iam:PassRole"],
                resources=[
                    self.prepare_role.role_arn,
                    self.train_role.role_arn,
                    self.transform_role.role_arn,
                    self.baseline_role.role_arn,
                ],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="UseModelPackagesForPredictions",
                actions=["sagemaker:DescribeModelPackage"],
                resources=[self._sagemaker_arn("model-package", "/*")],
            )
        )
        self._grant_key_through(role, "s3")
        policy = role.node.find_child("DefaultPolicy")
        self._acknowledge_prefix(
            policy,
            [self._sagemaker_arn(noun) for noun in ("processing-job", "training-job", "transform-job", "model")]
            + [self._sagemaker_arn("model-package", "/*")],
            "Job and model names are derived per run and trial; every grant stops at this environment's prefix.",
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
            "X-Ray tracing and CloudWatch Logs delivery of the state machine support no resource-level permissions.",
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


def _copied(path: str, *fields: str) -> dict[str, str]:
    """``{"Field.$": "<path>.Field"}``: API fields taken verbatim from the plan."""
    return {f"{field}.$": f"{path}.{field}" for field in fields}


def _flag(value: bool) -> str:
    return "true" if value else "false"
