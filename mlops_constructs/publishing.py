"""Tenant pipelines as data, and the example tenant's records in the raw zone.

Each validated ``config/pipelines/<tenant>.yaml`` is published as JSON to the artifacts zone
(``artifacts/config/pipelines/<tenant>.json``), where the plan Lambda reads it: onboarding the
hundredth tenant changes these objects, never the state machine. Deleting a file unpublishes the
tenant (the prefix is pruned).

The example tenant's dataset (``data/example/``, built from scikit-learn's breast cancer set) is
seeded into ``raw/example/<dataset>/`` of every environment, where ingestion would have put it, so
the example model, the serving issue's example endpoint and the delivery pipeline's smoke test
train from the same records everywhere. The seed is never pruned and stays when the stack goes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from aws_cdk import DefaultStackSynthesizer, Stack
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3_deployment
from constructs import Construct

from config.tenants import PipelineConfig
from mlops_constructs.nag import acknowledge, acknowledge_wildcard_resource, ignore_redundant_dependency

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_DATA = ROOT / "data" / "example"
EXAMPLE_TENANT = "example"
EXAMPLE_DAY = "2026-01-01"  # the dt= partition of the seed: fixed, so synth stays deterministic
CONFIG_PREFIX = "artifacts/config/pipelines/"


def config_key(tenant: str) -> str:
    return f"{CONFIG_PREFIX}{tenant}.json"


def example_seed_prefix(dataset: str) -> str:
    return f"raw/{EXAMPLE_TENANT}/{dataset}/dt={EXAMPLE_DAY}/"


class PipelinePublishing(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        pipelines: Sequence[PipelineConfig],
        artifacts_bucket: s3.IBucket,
        raw_bucket: s3.IBucket,
    ) -> None:
        super().__init__(scope, id)
        documents = [
            s3_deployment.Source.data(
                f"{pipeline.tenant}.json", json.dumps(pipeline.published(), indent=2, sort_keys=True) + "\n"
            )
            for pipeline in sorted(pipelines, key=lambda p: p.tenant)
        ]
        # An empty placeholder keeps the deployment valid (and prunes stale tenants) with no tenant at all.
        self.configs = s3_deployment.BucketDeployment(
            self,
            "TenantConfigs",
            sources=documents or [s3_deployment.Source.data(".keep", "")],
            destination_bucket=artifacts_bucket,
            destination_key_prefix=CONFIG_PREFIX,
            prune=True,
            retain_on_delete=False,
            content_type="application/json",
            memory_limit=256,
        )
        example = next((pipeline for pipeline in pipelines if pipeline.tenant == EXAMPLE_TENANT), None)
        self.seed = None
        if example is not None:
            self.seed = s3_deployment.BucketDeployment(
                self,
                "ExampleSeed",
                sources=[s3_deployment.Source.asset(str(EXAMPLE_DATA))],
                destination_bucket=raw_bucket,
                destination_key_prefix=example_seed_prefix(example.dataset.name),
                prune=False,
                retain_on_delete=True,
                content_type="application/x-ndjson",
                memory_limit=256,
            )
        self._acknowledge_provider([artifacts_bucket, raw_bucket])

    def _acknowledge_provider(self, destinations: list[s3.IBucket]) -> None:
        """The findings of aws-cdk-lib's own BucketDeployment provider (a stack-level singleton), there only."""
        stack = Stack.of(self)
        [provider] = [c for c in stack.node.children if c.node.id.startswith("Custom::CDKBucketDeployment")]
        ignore_redundant_dependency(provider)
        role = provider.node.find_child("ServiceRole")
        acknowledge(
            role,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            "aws-cdk-lib's BucketDeployment provider runs with AWSLambdaBasicExecutionRole (its own logs only).",
        )
        policy = role.node.find_child("DefaultPolicy")
        for action in ("s3:GetBucket*", "s3:GetObject*", "s3:List*", "s3:Abort*", "s3:DeleteObject*"):
            acknowledge(
                policy,
                f"AwsSolutions-IAM5[Action::{action}]",
                "aws-cdk-lib's BucketDeployment grants read on the CDK asset bucket and read-write on its "
                "destination buckets (pruning deletes stale tenant configs).",
            )
        for action in ("kms:GenerateDataKey*", "kms:ReEncrypt*"):
            acknowledge(
                policy,
                f"AwsSolutions-IAM5[Action::{action}]",
                "aws-cdk-lib's BucketDeployment grants encrypt actions on the platform key of its destinations.",
            )
        for bucket in {id(b): b for b in destinations}.values():
            acknowledge_wildcard_resource(
                policy, bucket.arn_for_objects("*"), "The deployment writes objects below its destination prefix."
            )
        asset_bucket = (
            f"arn:{stack.partition}:s3:::cdk-{DefaultStackSynthesizer.DEFAULT_QUALIFIER}-assets-"
            f"{stack.account}-{stack.region}/*"
        )
        acknowledge_wildcard_resource(
            policy, asset_bucket, "The deployment reads its source zips from the CDK bootstrap asset bucket."
        )
        acknowledge(
            provider,
            "AwsSolutions-L1",
            "aws-cdk-lib pins the BucketDeployment provider's runtime; it runs only at deploy time.",
        )
