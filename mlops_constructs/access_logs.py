"""Buckets that receive S3 server access logs (the data lake's, the delivery pipeline's artifact bucket's)."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

from mlops_constructs.nag import acknowledge


def access_log_bucket(
    scope: Construct,
    id: str,
    *,
    lifecycle_rules: list[s3.LifecycleRule],
    removal_policy: RemovalPolicy,
    why_not_logged: str,
) -> s3.Bucket:
    """A private, versioned, TLS-only bucket for access logs; its own access is not logged (``why_not_logged``)."""
    # S3 server access logging delivers only to buckets encrypted with S3-managed keys (SSE-S3).
    bucket = s3.Bucket(
        scope,
        id,
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        minimum_tls_version=1.2,
        versioned=True,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        lifecycle_rules=lifecycle_rules,
        removal_policy=removal_policy,
    )
    acknowledge(bucket, "AwsSolutions-S1", why_not_logged)
    return bucket
