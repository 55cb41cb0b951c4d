"""The platform's Lambda functions: one handler folder each, the same runtime, logging and encryption.

Every function runs ``lambda/<folder>/handler.py`` on Python 3.14 (arm64) with the AWS-managed
Powertools layer pinned by ARN, JSON logs in a KMS-encrypted log group of its own, X-Ray tracing and a
role of its own that callers extend with least-privilege statements.

Each function's asset is its folder plus the runtime package ``mlops_platform/``, which the handler
imports (Lambda puts the asset's root on ``sys.path``). Both are copied at synth by CDK local bundling
(``PackageBundling``): plain file copies, no Docker and no pip, so synth stays offline. The asset's hash
is its output's (``AssetHashType.OUTPUT``): a change to the package changes every function's hash, and
so its deployed code; the same files give the same hash.
"""

from __future__ import annotations

import fnmatch
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, Duration, ILocalBundling, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from config.naming import Names
from mlops_constructs.log_retention import retention_days
from mlops_constructs.nag import acknowledge, acknowledge_wildcard_resource, ignore_redundant_dependency

LAMBDA_ROOT = Path(__file__).resolve().parent.parent / "lambda"
PACKAGE_ROOT = Path(__file__).resolve().parent.parent / "mlops_platform"
# Files that tests and editors leave beside the code, and the test-only requirements; excluded so the
# asset hash (and the template) stays the same whatever ran before synth.
ASSET_EXCLUDES = ["__pycache__", "*.pyc", ".pytest_cache", ".mypy_cache", ".ruff_cache", "requirements.txt"]
# Local bundling never runs a container, but BundlingOptions requires an image: a name nobody can pull,
# so a bundling that fell back to Docker would fail at once rather than run something.
NEVER_PULLED = DockerImage.from_registry("placeholder-never-pulled")

# The AWS-managed Powertools layer, pinned: dependencies come from AWS, not from a pip run at synth.
# lambda/*/requirements.txt pin the same major version for the tests.
POWERTOOLS_LAYER_ACCOUNT = "017000801446"
POWERTOOLS_LAYER_VERSION = 27
RUNTIME = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE = lambda_.Architecture.ARM_64


def copy_tree(source: Path, target: Path) -> None:
    """Copy ``source`` into ``target`` in sorted order, leaving out ``ASSET_EXCLUDES`` at any depth.

    Contents and permission bits only: the asset's hash depends on what the files hold, not on when
    they were written.
    """
    target.mkdir(parents=True, exist_ok=True)
    for entry in sorted(source.iterdir(), key=lambda path: path.name):
        if any(fnmatch.fnmatch(entry.name, pattern) for pattern in ASSET_EXCLUDES):
            continue
        if entry.is_dir():
            copy_tree(entry, target / entry.name)
        else:
            shutil.copyfile(entry, target / entry.name)
            shutil.copymode(entry, target / entry.name)


@jsii.implements(ILocalBundling)
class PackageBundling:
    """Local bundling of a function's asset: its folder's files, and ``mlops_platform/`` beside them."""

    def __init__(self, folder: Path, package: Path) -> None:
        self.folder = folder
        self.package = package

    def try_bundle(self, output_dir: str, *args: Any, **kwargs: Any) -> bool:
        """Fill ``output_dir``; True tells CDK it is done (it never falls back to Docker)."""
        copy_tree(self.folder, Path(output_dir))
        copy_tree(self.package, Path(output_dir) / self.package.name)
        return True


def function_code(folder: str) -> lambda_.Code:
    """The asset of ``lambda/<folder>``: the folder and the runtime package, hashed by what they hold."""
    source = LAMBDA_ROOT / folder
    return lambda_.Code.from_asset(
        str(source),
        asset_hash_type=AssetHashType.OUTPUT,
        bundling=BundlingOptions(image=NEVER_PULLED, local=PackageBundling(source, PACKAGE_ROOT)),
    )


def powertools_layer(scope: Construct, id: str) -> lambda_.ILayerVersion:
    stack = Stack.of(scope)
    python = RUNTIME.name.replace(".", "")  # python3.14 -> python314
    arn = (
        f"arn:{stack.partition}:lambda:{stack.region}:{POWERTOOLS_LAYER_ACCOUNT}:layer:"
        f"AWSLambdaPowertoolsPythonV3-{python}-arm64:{POWERTOOLS_LAYER_VERSION}"
    )
    return lambda_.LayerVersion.from_layer_version_arn(scope, id, arn)


@dataclass(frozen=True)
class PlatformFunction:
    function: lambda_.Function
    role: iam.Role
    log_group: logs.LogGroup

    @property
    def policy(self) -> iam.Policy:
        """The role's default policy (exists once a statement was added)."""
        policy = self.role.node.find_child("DefaultPolicy")
        assert isinstance(policy, iam.Policy)
        return policy


def platform_function(
    scope: Construct,
    id: str,
    *,
    folder: str,
    description: str,
    role_description: str,
    names: Names,
    key: kms.IKey,
    environment: dict[str, str],
    log_retention_days: int,
    removal_policy: RemovalPolicy,
    timeout_seconds: int = 60,
    memory_size: int = 512,
    handler: str = "handler.handler",
) -> PlatformFunction:
    """``<id>``, ``<id>Role`` and ``<id>Logs`` in ``scope`` (flat, so existing logical IDs stay put)."""
    log_group = logs.LogGroup(
        scope,
        f"{id}Logs",
        retention=retention_days(log_retention_days),
        encryption_key=key,
        removal_policy=removal_policy,
    )
    role = iam.Role(
        scope, f"{id}Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description=role_description
    )
    function = lambda_.Function(
        scope,
        id,
        description=description,
        runtime=RUNTIME,
        architecture=ARCHITECTURE,
        handler=handler,
        code=function_code(folder),
        layers=[powertools_layer(scope, f"{id}PowertoolsLayer")],
        role=role,
        log_group=log_group,
        logging_format=lambda_.LoggingFormat.JSON,
        timeout=Duration.seconds(timeout_seconds),
        memory_size=memory_size,
        tracing=lambda_.Tracing.ACTIVE,
        environment_encryption=key,
        environment={
            **environment,
            "POWERTOOLS_SERVICE_NAME": folder.replace("_", "-"),
            "POWERTOOLS_METRICS_NAMESPACE": names.metrics_namespace,
        },
    )
    ignore_redundant_dependency(function)
    log_group.grant_write(role)
    parts = PlatformFunction(function=function, role=role, log_group=log_group)
    acknowledge_wildcard_resource(
        parts.policy,
        f"{log_group.log_group_arn}:*",
        "Log streams are created at run time inside this function's own log group.",
    )
    acknowledge(
        parts.policy,
        "AwsSolutions-IAM5[Resource::*]",
        "X-Ray's PutTraceSegments and PutTelemetryRecords support no resource-level permissions.",
    )
    return parts
