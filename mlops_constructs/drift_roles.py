"""The role of one endpoint's drift monitoring job: that endpoint's data and nothing of another tenant.

It reads the endpoint's capture prefix, its model pointers, its tenant's baselines, the example
baselines of its variants and the settings document; it writes the endpoint's reports, the drift
metrics and ``Drift Summary`` events. With ``monitoring.labels_dataset`` it may also list and read
the tenant's labels prefix in the raw zone.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Stack
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from config.monitoring import Monitoring
from config.naming import Names
from config.serving import EndpointConfig
from mlops_constructs.drift_job import BASELINE_FILE, SUMMARY_DETAIL_TYPE, capture_prefix, labels_prefix, report_prefix
from mlops_constructs.encryption import key_used_through
from mlops_constructs.model_pointers import construct_id, pointer_name
from mlops_constructs.nag import acknowledge, acknowledge_wildcard_resource
from mlops_constructs.sagemaker_roles import grant_logs_and_metrics, grant_volume_encryption
from mlops_constructs.training_roles import RUNS_PREFIX


def drift_job_role(
    scope: Construct,
    *,
    names: Names,
    monitoring: Monitoring,
    key: kms.IKey,
    endpoint_key: str,
    endpoint: EndpointConfig,
    capture: s3.IBucket,
    artifacts: s3.IBucket,
    raw: s3.IBucket | None,
    image: ecr_assets.DockerImageAsset,
    example_baselines: Mapping[str, s3_assets.Asset],
    settings: s3_assets.Asset,
) -> iam.Role:
    """The job of one endpoint: its capture, its pointers and baselines, its reports, its metrics and events."""
    stack = Stack.of(scope)
    endpoint_name = names.resource(endpoint_key)
    tenant = endpoint.tenant
    role = iam.Role(
        scope,
        construct_id(endpoint_key, "JobRole"),
        assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
        description=f"Drift monitor jobs of endpoint {endpoint_name}: read capture and baselines, write reports",
    )
    image.repository.grant_pull(role)
    capture_objects = capture_prefix(endpoint, endpoint_key)
    baselines = f"{RUNS_PREFIX}{tenant}/"
    reports = report_prefix(endpoint, endpoint_name)
    _read(role, "ReadCapture", capture, capture_objects)
    # ListBucket makes a missing baseline.json a NoSuchKey (a variant without baseline), not AccessDenied.
    _read(role, "ReadBaselines", artifacts, baselines, objects=f"{baselines}*/{BASELINE_FILE}")
    role.add_to_policy(
        iam.PolicyStatement(
            sid="ReadExampleBaseline",
            actions=["s3:GetObject"],
            resources=[
                example_baselines[name].bucket.arn_for_objects(example_baselines[name].s3_object_key)
                for name in sorted({variant.example_model for variant in endpoint.variants})
            ],
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="ReadSettings",
            actions=["s3:GetObject"],
            resources=[settings.bucket.arn_for_objects(settings.s3_object_key)],
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="WriteReports", actions=["s3:PutObject"], resources=[artifacts.arn_for_objects(f"{reports}*")]
        )
    )
    role.add_to_policy(
        key_used_through(scope, key, "s3", ["kms:Decrypt", "kms:GenerateDataKey"], sid="UsePlatformKeyThroughS3")
    )
    if (labels := labels_prefix(monitoring, endpoint)) is not None:
        assert raw is not None  # DriftMonitor refuses labels without the raw zone
        _read(role, "ReadLabels", raw, labels)
        acknowledge_wildcard_resource(
            role.node.find_child("DefaultPolicy"),
            raw.arn_for_objects(f"{labels}*"),
            "Labels are ingested as objects named per upload; the grant stops at the tenant's labels dataset.",
        )
    grant_volume_encryption(role, key)
    role.add_to_policy(
        iam.PolicyStatement(
            sid="ReadModelPointers",
            actions=["ssm:GetParameter"],
            resources=[
                f"arn:{stack.partition}:ssm:{stack.region}:{stack.account}:parameter"
                f"{pointer_name(names, endpoint_key, variant.name)}"
                for variant in endpoint.variants
            ],
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="PutDriftMetrics",
            actions=["cloudwatch:PutMetricData"],
            resources=["*"],  # PutMetricData has no resource-level permissions: the namespace condition limits it
            conditions={"StringEquals": {"cloudwatch:namespace": names.drift_namespace}},
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="PutDriftSummaries",
            actions=["events:PutEvents"],
            resources=[f"arn:{stack.partition}:events:{stack.region}:{stack.account}:event-bus/default"],
            conditions={
                "StringEquals": {
                    "events:source": names.monitoring_source,
                    "events:detail-type": SUMMARY_DETAIL_TYPE,
                }
            },
        )
    )
    log_group = grant_logs_and_metrics(
        role,
        log_group_name="/aws/sagemaker/ProcessingJobs",
        namespaces=["/aws/sagemaker/ProcessingJobs"],
        sids=("WriteJobLogs", "PutJobMetrics"),
    )
    policy = role.node.find_child("DefaultPolicy")
    acknowledge_wildcard_resource(
        policy,
        capture.arn_for_objects(f"{capture_objects}*"),
        "SageMaker names capture files by endpoint, variant and hour; the grant stops at this endpoint's prefix.",
    )
    acknowledge_wildcard_resource(
        policy,
        artifacts.arn_for_objects(f"{baselines}*/{BASELINE_FILE}"),
        f"Baselines sit beside model artifacts named per training run; the grant stops at tenant {tenant}'s "
        "baseline.json objects.",
    )
    acknowledge_wildcard_resource(
        policy,
        artifacts.arn_for_objects(f"{reports}*"),
        "Reports are named per window; the grant stops at this endpoint's report prefix.",
    )
    acknowledge_wildcard_resource(
        policy,
        f"{log_group}:*",
        "SageMaker writes job logs to streams of its own log group /aws/sagemaker/ProcessingJobs, named per job.",
    )
    acknowledge(
        policy,
        "AwsSolutions-IAM5[Resource::*]",
        "ecr:GetAuthorizationToken and cloudwatch:PutMetricData support no resource-level permissions; "
        "metrics are limited to the drift and Processing job namespaces by condition.",
    )
    return role


def _read(role: iam.Role, sid: str, bucket: s3.IBucket, prefix: str, objects: str | None = None) -> None:
    """GetObject on ``objects`` (default: everything under ``prefix``) and ListBucket under ``prefix`` only."""
    role.add_to_policy(
        iam.PolicyStatement(
            sid=sid, actions=["s3:GetObject"], resources=[bucket.arn_for_objects(objects or f"{prefix}*")]
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid=f"List{sid.removeprefix('Read')}",
            actions=["s3:ListBucket"],
            resources=[bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{prefix}*"]}},
        )
    )
