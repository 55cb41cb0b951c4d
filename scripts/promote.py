"""Promote an approved model package to an endpoint variant: write the variant's model pointer.

    python -m scripts.promote --environment dev --endpoint churn --variant Champion \\
        --model-package arn:aws:sagemaker:eu-west-1:111111111111:model-package/mlops-dev-churn-xgboost/3 [--dry-run]

Each endpoint variant reads its model at deploy time from its model pointer, the SSM String
parameter ``/<project>/<env>/models/<endpoint>/<variant>``: the model artifact's S3 URI (or the
sentinel ``example``, the shipped example model), with ``model package <ARN>`` as its description
for lineage. CloudFormation creates it once and never writes it again; the approval path and this
command write it afterwards. The endpoint picks the new model up at the next deploy of the
environment's Serving stack (``make deploy ENV=<env>``, or the delivery pipeline).

Nothing is written unless every check passes, in this order (``promote``):

1. the package exists and is ``Approved``;
2. it belongs to the endpoint's tenant (its ``tenant`` metadata, set by the evaluate Lambda), and,
   where the environment is known, to one of that environment's package groups
   (``<project>-<env>-<tenant>-<model>``: environments may share an account);
3. its algorithm is one the variant's flavour serves (``SERVED_BY``);
4. its feature schema, the document its ``feature_schema`` metadata points to, has the sha256 its
   ``feature_schema_sha256`` metadata records, and the same features (names, order, types) and
   problem type as the tenant's config declares now;
5. its artifact (``InferenceSpecification.Containers[0].ModelDataUrl``) is an ``s3://`` URI ending
   in ``model.tar.gz``;
6. the pointer exists (the Foundation stack creates it).

The ``example`` endpoint serves the shipped example model and is never promoted.

Exit status: 0 promoted (or, with ``--dry-run``, would be), 1 refused or AWS failed, 2 a bad
command line or configuration.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from config.loader import ConfigError, load_config
from config.naming import Names
from config.schema import ENVIRONMENT_NAMES, PlatformConfig
from config.tenants import PipelineConfig

ROOT = Path(__file__).resolve().parent.parent
Flavour = Literal["cpu", "gpu"]

# The algorithms each flavour of variant serves. A GPU instance serves XGBoost only: a linear
# model on it pays for a GPU it never uses.
SERVED_BY: dict[str, frozenset[str]] = {
    "cpu": frozenset({"xgboost", "linear"}),
    "gpu": frozenset({"xgboost"}),
}
EXAMPLE = "example"  # the example tenant's endpoint, and the pointer's sentinel for the shipped model
FEATURE_SCHEMA_VERSION = 1  # lambda/evaluate/handler.py: SCHEMA_VERSION of the documents it writes
PACKAGE_ARN = re.compile(
    r"^arn:aws[a-z-]*:sagemaker:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):model-package/(?P<group>[^/]+)/(?P<version>\d+)$"
)
S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<key>.+)$")
MODEL_ARTIFACT = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/(?:.+/)?model\.tar\.gz$")
PACKAGE_NOT_FOUND_CODES = frozenset({"ValidationException", "ResourceNotFound"})


class PromotionRefused(Exception):
    """Why a package may not be promoted to a variant, in one sentence; nothing was written."""


@dataclass(frozen=True)
class Promotion:
    """What ``promote`` wrote (or, on a dry run, would write)."""

    pointer: str
    package_arn: str
    model_data: str
    description: str
    previous: str
    tenant: str
    model: str | None
    algorithm: str
    flavour: Flavour
    written: bool

    @property
    def unchanged(self) -> bool:
        return self.previous == self.model_data


def feature_schema(config: Mapping[str, Any]) -> dict[str, Any]:
    """The feature schema document evaluate registers with a package, from a published tenant config.

    The same function as ``feature_schema`` in lambda/evaluate/handler.py (a test keeps them equal):
    that module builds its clients and reads its environment at import, so it is no library.
    """
    dataset = config["dataset"]
    return {
        "schema_version": FEATURE_SCHEMA_VERSION,
        "tenant": config.get("tenant"),
        "dataset": dataset["name"],
        "features": [{"name": name, "type": kind} for name, kind in dataset["features"].items()],
        "target": dataset["target"],
        "problem_type": dataset["problem_type"],
    }


def promote(
    *,
    sagemaker: Any,
    s3: Any,
    ssm: Any,
    package_arn: str,
    pointer: str,
    tenant: PipelineConfig,
    flavour: Flavour,
    group_prefix: str | None = None,
    model: str | None = None,
    dry_run: bool = False,
) -> Promotion:
    """Check the package against the variant, then point the variant at the package's artifact.

    ``group_prefix`` (``Names.prefix``, such as ``mlops-dev``) confines the package to the
    environment's own groups; ``model`` (the endpoint's declared model) to that model's group. Raises
    ``PromotionRefused`` before writing anything.
    """
    arn = PACKAGE_ARN.match(package_arn)
    if arn is None:
        raise PromotionRefused(
            f"{package_arn!r} is not a model package version ARN; "
            "allowed: arn:aws:sagemaker:<region>:<account>:model-package/<group>/<version>"
        )
    package = _describe_package(sagemaker, package_arn)

    status = package.get("ModelApprovalStatus")
    if status != "Approved":
        raise PromotionRefused(
            f"model package {package_arn} is {status or 'without an approval status'}, not Approved; "
            "approve it in the model registry first"
        )

    metadata: dict[str, str] = package.get("CustomerMetadataProperties") or {}
    owner = metadata.get("tenant")
    if owner != tenant.tenant:
        raise PromotionRefused(
            f"model package {package_arn} belongs to tenant {owner!r}, not {tenant.tenant!r}, the endpoint's tenant"
        )
    group = package.get("ModelPackageGroupName") or arn["group"]
    if group_prefix is not None and not group.startswith(f"{group_prefix}-{tenant.tenant}-"):
        raise PromotionRefused(
            f"model package {package_arn} is in group {group!r}, not one of this environment's groups "
            f"for tenant {tenant.tenant!r} ({group_prefix}-{tenant.tenant}-<model>); models never cross environments"
        )

    if model is not None and metadata.get("model") != model:
        raise PromotionRefused(
            f"model package {package_arn} holds model {metadata.get('model')!r}, not {model!r}, the endpoint's "
            "declared model; allowed: a package of the endpoint's model (declare another endpoint for another model)"
        )

    algorithm = _algorithm(s3, package, metadata, package_arn)
    if algorithm not in SERVED_BY[flavour]:
        served = " or ".join(sorted(SERVED_BY[flavour]))
        raise PromotionRefused(
            f"model package {package_arn} holds a {algorithm} model, which a {flavour} variant does not serve; "
            f"allowed on {flavour}: {served}"
        )

    _check_schema(s3, metadata, tenant, package_arn)

    containers = (package.get("InferenceSpecification") or {}).get("Containers") or [{}]
    model_data = containers[0].get("ModelDataUrl")
    if not isinstance(model_data, str) or not MODEL_ARTIFACT.match(model_data):
        raise PromotionRefused(
            f"model package {package_arn} has the artifact {model_data!r}; allowed: an s3:// URI ending in model.tar.gz"
        )
    # The endpoint's model role reads artifacts/runs/<tenant>/ only (mlops_constructs/endpoint.py).
    runs = f"/artifacts/runs/{tenant.tenant}/"
    if runs not in model_data.removeprefix("s3:/"):
        raise PromotionRefused(
            f"model package {package_arn} has the artifact {model_data!r}, outside the tenant's training runs; "
            f"allowed: an artifact under s3://<artifacts zone>{runs}, which the endpoint's model role may read"
        )

    previous = _read_pointer(ssm, pointer)
    description = f"model package {package_arn}"
    if not dry_run:
        ssm.put_parameter(Name=pointer, Value=model_data, Type="String", Overwrite=True, Description=description)
    return Promotion(
        pointer=pointer,
        package_arn=package_arn,
        model_data=model_data,
        description=description,
        previous=previous,
        tenant=tenant.tenant,
        model=metadata.get("model"),
        algorithm=algorithm,
        flavour=flavour,
        written=not dry_run,
    )


def _describe_package(sagemaker: Any, package_arn: str) -> dict[str, Any]:
    try:
        package: dict[str, Any] = sagemaker.describe_model_package(ModelPackageName=package_arn)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        if code in PACKAGE_NOT_FOUND_CODES:
            raise PromotionRefused(f"model package {package_arn} does not exist ({code})") from None
        raise PromotionRefused(f"cannot describe model package {package_arn} ({code})") from None
    return package


def _read_s3(s3: Any, uri: str, what: str, package_arn: str) -> bytes:
    location = S3_URI.match(uri)
    if location is None:
        raise PromotionRefused(f"model package {package_arn} names {what} {uri!r}, which is not an s3:// URI")
    try:
        body: bytes = s3.get_object(Bucket=location["bucket"], Key=location["key"])["Body"].read()
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        raise PromotionRefused(f"cannot read {what} {uri} of model package {package_arn} ({code})") from None
    return body


def _algorithm(s3: Any, package: Mapping[str, Any], metadata: Mapping[str, str], package_arn: str) -> str:
    """The package's ``algorithm`` metadata, else the ``algorithm`` of its evaluation document.

    Evaluate registers the evaluation document as the package's model-quality statistics; it names
    the best trial's algorithm.
    """
    if metadata.get("algorithm"):
        return metadata["algorithm"]
    statistics = ((package.get("ModelMetrics") or {}).get("ModelQuality") or {}).get("Statistics") or {}
    uri = statistics.get("S3Uri")
    if not isinstance(uri, str):
        raise PromotionRefused(
            f"model package {package_arn} names no algorithm (no 'algorithm' metadata, no evaluation document), "
            "so its fit to the variant cannot be checked"
        )
    try:
        algorithm = json.loads(_read_s3(s3, uri, "the evaluation document", package_arn)).get("algorithm")
    except (ValueError, AttributeError):
        algorithm = None
    if not isinstance(algorithm, str) or not algorithm:
        raise PromotionRefused(
            f"model package {package_arn} names no algorithm (its evaluation document {uri} has none), "
            "so its fit to the variant cannot be checked"
        )
    return algorithm


def _check_schema(s3: Any, metadata: Mapping[str, str], tenant: PipelineConfig, package_arn: str) -> None:
    uri, recorded = metadata.get("feature_schema"), metadata.get("feature_schema_sha256")
    if not uri or not recorded:
        raise PromotionRefused(
            f"model package {package_arn} has no feature_schema and feature_schema_sha256 metadata, "
            "so its fit to the endpoint's schema cannot be checked"
        )
    body = _read_s3(s3, uri, "the feature schema", package_arn)
    actual = hashlib.sha256(body).hexdigest()
    if actual != recorded:
        raise PromotionRefused(
            f"the feature schema {uri} of model package {package_arn} has sha256 {actual}, "
            f"not {recorded} as the package records: it changed after registration"
        )
    try:
        document = json.loads(body)
        features = [(str(f["name"]), str(f["type"])) for f in document["features"]]
        problem_type = document["problem_type"]
    except (ValueError, KeyError, TypeError):
        raise PromotionRefused(f"the feature schema {uri} of model package {package_arn} is not a schema") from None
    expected_document = feature_schema(tenant.published())
    expected = [(f["name"], f["type"]) for f in expected_document["features"]]
    difference = first_difference(features, expected)
    if difference is not None:
        raise PromotionRefused(
            f"model package {package_arn} does not fit tenant {tenant.tenant!r}'s feature schema: {difference}"
        )
    if problem_type != expected_document["problem_type"]:
        raise PromotionRefused(
            f"model package {package_arn} is a {problem_type} model; tenant {tenant.tenant!r} "
            f"declares a {expected_document['problem_type']} problem"
        )


def first_difference(model: Sequence[tuple[str, str]], endpoint: Sequence[tuple[str, str]]) -> str | None:
    """The first feature, by position, where the model's schema and the endpoint's differ; None when equal."""
    for position, (ours, theirs) in enumerate(zip(model, endpoint, strict=False), start=1):
        if ours != theirs:
            return (
                f"feature {position} is {ours[0]} ({ours[1]}) in the model, "
                f"{theirs[0]} ({theirs[1]}) in the endpoint's schema"
            )
    if len(model) > len(endpoint):
        name, kind = model[len(endpoint)]
        return f"feature {len(endpoint) + 1}, {name} ({kind}), is in the model but not in the endpoint's schema"
    if len(endpoint) > len(model):
        name, kind = endpoint[len(model)]
        return f"feature {len(model) + 1}, {name} ({kind}), is in the endpoint's schema but not in the model"
    return None


def _read_pointer(ssm: Any, pointer: str) -> str:
    try:
        value: str = ssm.get_parameter(Name=pointer)["Parameter"]["Value"]
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        if code == "ParameterNotFound":
            raise PromotionRefused(
                f"the model pointer {pointer} does not exist; the environment's Foundation stack creates it: "
                "deploy the environment first"
            ) from None
        raise PromotionRefused(f"cannot read the model pointer {pointer} ({code})") from None
    return value


# ---------------------------------------------------------------------------------------------
# The command


@dataclass(frozen=True)
class Clients:
    sagemaker: Any
    s3: Any
    ssm: Any
    sts: Any

    @classmethod
    def in_region(cls, region: str) -> Clients:
        import boto3  # the command's only: promote() takes any clients

        session = boto3.Session(region_name=region)
        return cls(*(session.client(name) for name in ("sagemaker", "s3", "ssm", "sts")))


class UsageError(Exception):
    """A bad command line or configuration, in one sentence (exit 2)."""


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.promote",
        description="Point an endpoint variant at an approved model package (its model pointer in SSM).",
    )
    parser.add_argument("--environment", required=True, choices=ENVIRONMENT_NAMES, help="the environment")
    parser.add_argument("--endpoint", required=True, help="an endpoint of the environment's serving.endpoints")
    parser.add_argument("--variant", required=True, help="one of the endpoint's variants, such as Champion")
    parser.add_argument("--model-package", required=True, help="the approved model package version's ARN")
    parser.add_argument("--dry-run", action="store_true", help="check everything, write nothing")
    return parser.parse_args(argv)


def main(argv: Sequence[str], *, config: PlatformConfig | None = None, clients: Clients | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.endpoint == EXAMPLE:
            raise UsageError(
                "the example endpoint serves the example model shipped with the repository and is never promoted; "
                "allowed: a tenant's own endpoint"
            )
        config = config or load_config(ROOT / "config", selected_environments=args.environment)
        environment = config.environment(args.environment)
        endpoints = environment.serving.endpoints
        endpoint = endpoints.get(args.endpoint)
        if endpoint is None:
            raise UsageError(
                f"environment {args.environment} has no endpoint {args.endpoint!r}; "
                f"allowed: {', '.join(sorted(set(endpoints) - {EXAMPLE})) or 'none declared'}"
            )
        if endpoint.tenant == EXAMPLE:
            raise UsageError(f"endpoint {args.endpoint!r} serves the example tenant, which is never promoted")
        variant = next((v for v in endpoint.variants if v.name == args.variant), None)
        if variant is None:
            raise UsageError(
                f"endpoint {args.endpoint!r} has no variant {args.variant!r}; "
                f"allowed: {', '.join(v.name for v in endpoint.variants)}"
            )
        tenant = next((p for p in config.pipelines if p.tenant == endpoint.tenant), None)
        if tenant is None:
            raise UsageError(
                f"endpoint {args.endpoint!r} serves tenant {endpoint.tenant!r}, "
                f"which has no config/pipelines/{endpoint.tenant}.yaml"
            )
    except (UsageError, ConfigError) as error:
        print(f"promote: {error}", file=sys.stderr)
        return 2

    names = Names(project=config.project.name, environment=environment.name)
    pointer = names.parameter("models", args.endpoint, variant.name)
    try:
        clients = clients or Clients.in_region(environment.region)
        account = clients.sts.get_caller_identity()["Account"]
        if account != environment.account:
            raise PromotionRefused(
                f"the AWS credentials are for account {account}; {environment.name} deploys to {environment.account}"
            )
        promotion = promote(
            sagemaker=clients.sagemaker,
            s3=clients.s3,
            ssm=clients.ssm,
            package_arn=args.model_package,
            pointer=pointer,
            tenant=tenant,
            flavour=variant.flavour,
            group_prefix=names.prefix,
            model=endpoint.model,
            dry_run=args.dry_run,
        )
    except PromotionRefused as refusal:
        print(f"promote: refused: {refusal}", file=sys.stderr)
        return 1
    except (BotoCoreError, ClientError) as error:
        print(f"promote: AWS failed: {error}", file=sys.stderr)
        return 1

    verb = "would point" if args.dry_run else "pointed"
    print(f"{verb} {args.endpoint}/{variant.name} ({variant.flavour}) in {environment.name} at {promotion.model_data}")
    print(f"  pointer:       {promotion.pointer}")
    print(f"  model package: {promotion.package_arn} ({promotion.algorithm}, tenant {promotion.tenant})")
    print(f"  previous:      {promotion.previous}" + (" (unchanged)" if promotion.unchanged else ""))
    if args.dry_run:
        print("dry run: nothing written")
    else:
        print(
            f"the endpoint picks the new model up at the next deploy of {environment.name}'s Serving stack: "
            f"make deploy ENV={environment.name}, or the delivery pipeline"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
