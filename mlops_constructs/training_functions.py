"""The training pipeline's Lambda functions: plan, evaluate (and register), and the training-job resolver.

Each reads and writes only the prefixes its handler touches, and acts on this environment's
prefixed SageMaker resources only.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from config.instance_types import has_local_storage
from config.naming import Names
from config.schema import EnvironmentConfig
from mlops_constructs.functions import PlatformFunction, platform_function
from mlops_constructs.progress_tracking import event_source
from mlops_constructs.publishing import CONFIG_PREFIX
from mlops_constructs.training_roles import RUNS_PREFIX, KeyGrants, Zones, acknowledge_prefix

TRAINING_JOB_NAMES = "Training job names are derived per run and trial; the grant stops at this environment's prefix."


@dataclass(frozen=True)
class TrainingFunctions:
    plan: PlatformFunction
    evaluate: PlatformFunction
    job: PlatformFunction


def sagemaker_arn(scope: Construct, names: Names, resource: str, suffix: str = "") -> str:
    """This environment's SageMaker resources of one kind: ``<resource>/<prefix>-*<suffix>``."""
    stack = Stack.of(scope)
    return f"arn:{stack.partition}:sagemaker:{stack.region}:{stack.account}:{resource}/{names.prefix}-*{suffix}"


def training_functions(
    scope: Construct,
    *,
    names: Names,
    environment: EnvironmentConfig,
    key: kms.IKey,
    grants: KeyGrants,
    zones: Zones,
    ledger: dynamodb.ITableV2,
    progress_bus: events.IEventBus,
    cpu_image: ecr_assets.DockerImageAsset,
    gpu_image: ecr_assets.DockerImageAsset | None,
    removal_policy: RemovalPolicy,
) -> TrainingFunctions:
    """The three functions, made in ``scope`` with their grants."""
    access = _Access(grants)
    common = {
        "names": names,
        "key": key,
        "log_retention_days": environment.retention.log_retention_days,
        "removal_policy": removal_policy,
    }
    instance_types = environment.instance_types
    plan = platform_function(
        scope,
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
    access.read(plan, zones.artifacts, CONFIG_PREFIX)
    access.write(plan, zones.artifacts, RUNS_PREFIX)
    access.ledger(plan, ledger, ["dynamodb:PutItem"])

    evaluate = platform_function(
        scope,
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
    access.read(evaluate, zones.artifacts, CONFIG_PREFIX)
    access.read(evaluate, zones.artifacts, RUNS_PREFIX)
    # Results of executions started before the Map wrote under the run (a redrive keeps its definition).
    access.read(evaluate, zones.artifacts, "artifacts/map-results/")
    access.write(evaluate, zones.artifacts, RUNS_PREFIX)
    access.ledger(evaluate, ledger, ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"])
    _grant_sagemaker(
        evaluate,
        "RegisterModelPackages",
        [
            "sagemaker:CreateModelPackageGroup",
            "sagemaker:DescribeModelPackageGroup",
            "sagemaker:CreateModelPackage",
            "sagemaker:DescribeModelPackage",
            "sagemaker:ListModelPackages",
        ],
        [sagemaker_arn(scope, names, "model-package-group"), sagemaker_arn(scope, names, "model-package", "/*")],
        "Model package groups are data, one per tenant and model (<prefix>-<tenant>-<model>); "
        "the grant stops at this environment's prefix.",
    )
    # Trials the Map's results do not account for (a redrive, moto) are looked up by job name.
    _grant_sagemaker(
        evaluate,
        "DescribeUnreportedTrials",
        ["sagemaker:DescribeTrainingJob"],
        [sagemaker_arn(scope, names, "training-job")],
        TRAINING_JOB_NAMES,
    )

    job = platform_function(
        scope,
        "TrainingJobFunction",
        folder="training_job",
        description="Resolves a training job name already in use: wait for it, reuse it, or take the next attempt",
        role_description="Training job function: describes this environment's training jobs",
        environment={"MAX_ATTEMPTS": "3"},
        timeout_seconds=30,
        memory_size=256,
        **common,  # type: ignore[arg-type]
    )
    _grant_sagemaker(
        job,
        "DescribeTrainingJobs",
        ["sagemaker:DescribeTrainingJob"],
        [sagemaker_arn(scope, names, "training-job")],
        TRAINING_JOB_NAMES,
    )
    return TrainingFunctions(plan=plan, evaluate=evaluate, job=job)


class _Access:
    """A function's reads and writes of one prefix and its ledger actions, each through the platform key."""

    def __init__(self, grants: KeyGrants) -> None:
        self._grants = grants

    def read(self, function: PlatformFunction, bucket: s3.IBucket, prefix: str) -> None:
        self._grants.read(function.role, bucket, f"{prefix}*")
        self._grants.key_through(function.role, "s3")
        acknowledge_prefix(
            function.policy, [bucket.arn_for_objects(f"{prefix}*")], f"Reads stop at the {prefix} prefix."
        )

    def write(self, function: PlatformFunction, bucket: s3.IBucket, prefix: str) -> None:
        function.role.add_to_policy(
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[bucket.arn_for_objects(f"{prefix}*")])
        )
        self._grants.key_through(function.role, "s3")
        acknowledge_prefix(
            function.policy, [bucket.arn_for_objects(f"{prefix}*")], f"Writes stop at the {prefix} prefix."
        )

    def ledger(self, function: PlatformFunction, ledger: dynamodb.ITableV2, actions: list[str]) -> None:
        function.role.add_to_policy(iam.PolicyStatement(actions=actions, resources=[ledger.table_arn]))
        self._grants.key_through(function.role, "dynamodb")


def _grant_sagemaker(
    function: PlatformFunction, sid: str, actions: list[str], resources: list[str], reason: str
) -> None:
    """SageMaker actions on this environment's prefixed resources, with the prefix wildcard acknowledged."""
    function.role.add_to_policy(iam.PolicyStatement(sid=sid, actions=actions, resources=resources))
    acknowledge_prefix(function.policy, resources, reason)


def _flag(value: bool) -> str:
    return "true" if value else "false"
