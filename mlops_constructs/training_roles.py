"""The roles the training pipeline's SageMaker jobs run as, and the S3 and KMS grants its roles share.

Per tenant, each job kind (prepare, train, transform, baseline) has a role of its own that reads and
writes only the zone prefixes its job touches, of that tenant only (``raw/<tenant>/``,
``artifacts/runs/<tenant>/``, ...), pulls the training images, writes its job's logs and metrics,
and uses the platform key through S3 (``kms:ViaService``). The state machine may pass exactly these
roles (mlops_constructs/tenant_job_roles.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from mlops_constructs.drift_job import BASELINE_FILE
from mlops_constructs.encryption import key_used_through
from mlops_constructs.nag import acknowledge, acknowledge_wildcard_resource
from mlops_constructs.publishing import config_key
from mlops_constructs.sagemaker_roles import grant_logs_and_metrics, grant_volume_encryption

RUNS_PREFIX = "artifacts/runs/"
FEATURES_PREFIX = "features/"
BATCH_INPUT_PREFIX = "batch-input/"


@dataclass(frozen=True)
class Zones:
    raw: s3.IBucket
    curated: s3.IBucket
    features: s3.IBucket
    artifacts: s3.IBucket
    predictions: s3.IBucket


@dataclass(frozen=True)
class JobRoles:
    prepare: iam.Role
    train: iam.Role
    transform: iam.Role
    baseline: iam.Role


def acknowledge_prefix(policy: Any, resources: Sequence[str], reason: str) -> None:
    """The wildcard of each grant that stops at a prefix, acknowledged once per resource."""
    for resource in dict.fromkeys(resources):
        acknowledge_wildcard_resource(policy, resource, reason)


class KeyGrants:
    """Object reads and the platform key through one service, for the roles of one construct."""

    def __init__(self, scope: Construct, key: kms.IKey) -> None:
        self._scope = scope
        self._key = key

    def read(self, grantee: iam.IGrantable, bucket: s3.IBucket, objects: str) -> None:
        """GetObject on the objects of a key pattern, and listing the prefix before its first wildcard (or the key)."""
        listed = objects[: objects.index("*") + 1] if "*" in objects else objects
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[bucket.arn_for_objects(objects)])
        )
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [listed]}},
            )
        )

    def key_through(self, grantee: iam.IGrantable, service: str) -> None:
        actions = ["kms:Decrypt", "kms:GenerateDataKey"]
        if service == "dynamodb":
            actions += ["kms:Encrypt", "kms:DescribeKey"]
        grantee.grant_principal.add_to_principal_policy(key_used_through(self._scope, self._key, service, actions))

    def output_encryption(self, role: iam.Role, field: str) -> None:
        """``kms:Encrypt`` on the platform key: required of the job's role when the request's output KMS key is set.

        CreateTrainingJob's OutputDataConfig.KmsKeyId and CreateTransformJob's TransformOutput.KmsKeyId:
        "If you use a KMS key ID or an alias of your KMS key, the SageMaker execution role must include
        permissions to call kms:Encrypt" (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_OutputDataConfig.html,
        https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_TransformOutput.html). ProcessingOutputConfig
        says no such thing; Processing jobs write through S3 with the role's GenerateDataKey. No kms:ViaService
        condition here: those pages do not say through which service SageMaker makes the call, and a condition
        on the wrong one would fail every training and transform job at its upload.
        """
        role.add_to_policy(
            iam.PolicyStatement(sid=f"EncryptWith{field}Key", actions=["kms:Encrypt"], resources=[self._key.key_arn])
        )


def job_roles(
    scope: Construct,
    *,
    tenant: str,
    key: kms.IKey,
    grants: KeyGrants,
    zones: Zones,
    progress_bus: events.IEventBus,
    cpu_image: ecr_assets.DockerImageAsset,
    gpu_image: ecr_assets.DockerImageAsset | None,
) -> JobRoles:
    """The four job roles of ``tenant``, made in ``scope``: each reads and writes that tenant's prefixes only."""
    # The GPU image exists only where a tenant trains on a GPU instance type (training_images.py).
    images = [cpu_image] if gpu_image is None else [cpu_image, gpu_image]
    role = _JobRoleFactory(scope, key, grants)
    raw, curated, features = f"raw/{tenant}/", f"curated/{tenant}/", f"{FEATURES_PREFIX}{tenant}/"
    batch_input, runs = f"{BATCH_INPUT_PREFIX}{tenant}/", f"{RUNS_PREFIX}{tenant}/"
    prepare = role(
        "PrepareRole",
        f"Tenant {tenant}'s prepare (Processing) jobs: read its raw records and config, write its curated, "
        "features, reports",
        kind="ProcessingJobs",
        images=images,
        reads=[(zones.raw, f"{raw}*"), (zones.artifacts, config_key(tenant))],
        writes=[
            (zones.curated, f"{curated}*"),
            (zones.features, f"{features}*"),
            (zones.features, f"{batch_input}*"),
            (zones.artifacts, f"{runs}*"),
        ],
    )
    train = role(
        "TrainRole",
        f"Tenant {tenant}'s training jobs: read its features, write its model artifacts and checkpoints, "
        "put progress events",
        kind="TrainingJobs",
        images=images,
        # Checkpoints are read back when a spot job resumes.
        reads=[(zones.features, f"{features}*"), (zones.artifacts, f"{runs}*")],
        writes=[(zones.artifacts, f"{runs}*")],
    )
    train.add_to_policy(
        iam.PolicyStatement(
            sid="PutProgressEvents", actions=["events:PutEvents"], resources=[progress_bus.event_bus_arn]
        )
    )
    # The job keeps its latest two checkpoints and deletes older ones; SageMaker deletes from S3
    # what the job deletes from its checkpoint folder, as the job's role, so resuming downloads
    # two files, not one per checkpointed round.
    # https://docs.aws.amazon.com/sagemaker/latest/dg/model-checkpoints.html
    checkpoints = zones.artifacts.arn_for_objects(f"{runs}*/checkpoints/*")
    train.add_to_policy(
        iam.PolicyStatement(sid="PruneCheckpoints", actions=["s3:DeleteObject"], resources=[checkpoints])
    )
    acknowledge_wildcard_resource(
        train.node.find_child("DefaultPolicy"),
        checkpoints,
        f"Training jobs delete their own older checkpoints, keyed by run and trial under a run's checkpoints/ "
        f"folder of tenant {tenant}; no other object of the zone can be deleted.",
    )
    grants.output_encryption(train, "OutputDataConfig")
    transform = role(
        "TransformRole",
        f"Tenant {tenant}'s batch transform jobs: read its model artifacts and batch input, write its predictions",
        kind="TransformJobs",
        images=images,
        reads=[(zones.artifacts, f"{runs}*"), (zones.features, f"{batch_input}*")],
        writes=[(zones.predictions, f"predictions/{tenant}/*")],
    )
    grants.output_encryption(transform, "TransformOutput")
    baseline = role(
        "BaselineRole",
        f"Tenant {tenant}'s baseline (Processing) jobs: read its training splits, model artifacts and feature "
        "schemas, write baselines",
        kind="ProcessingJobs",
        images=[cpu_image],
        reads=[
            (zones.features, f"{features}*"),
            (zones.artifacts, f"{runs}*/model.tar.gz"),
            (zones.artifacts, f"{runs}*/feature-schema.json"),
        ],
        writes=[(zones.artifacts, f"{runs}*/{BASELINE_FILE}")],
        objects_reason=f"Baseline jobs read a run's training split, model artifact and feature schema, and "
        f"write only baseline.json objects, keyed by run and training job under tenant {tenant}'s runs prefix.",
    )
    return JobRoles(prepare=prepare, train=train, transform=transform, baseline=baseline)


class _JobRoleFactory:
    def __init__(self, scope: Construct, key: kms.IKey, grants: KeyGrants) -> None:
        self._scope, self._key, self._grants = scope, key, grants

    def __call__(
        self,
        id: str,
        description: str,
        *,
        kind: str,
        images: list[ecr_assets.DockerImageAsset],
        reads: list[tuple[s3.IBucket, str]],
        writes: list[tuple[s3.IBucket, str]],
        objects_reason: str = "Jobs read and write objects keyed by dataset and run; "
        "each grant stops at its tenant's prefix of the zone.",
    ) -> iam.Role:
        """A role SageMaker jobs run as; ``reads`` and ``writes`` are object-key patterns (``raw/*``)."""
        role = iam.Role(
            self._scope,
            id,
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=description,
        )
        for image in images:
            image.repository.grant_pull(role)
        for bucket, objects in reads:
            self._grants.read(role, bucket, objects)
        for bucket, objects in writes:
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["s3:PutObject", "s3:AbortMultipartUpload"],
                    resources=[bucket.arn_for_objects(objects)],
                )
            )
        self._grants.key_through(role, "s3")
        grant_volume_encryption(role, self._key)
        log_group = grant_logs_and_metrics(
            role,
            log_group_name=f"/aws/sagemaker/{kind}",
            namespaces=[f"/aws/sagemaker/{kind}"],
            sids=("WriteJobLogs", "PutJobMetrics"),
        )
        policy = role.node.find_child("DefaultPolicy")
        acknowledge_prefix(
            policy,
            [bucket.arn_for_objects(objects) for bucket, objects in [*reads, *writes] if "*" in objects],
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
