"""Promotion checks: what a model package must pass before a model pointer may name it.

One module for both writers of model pointers (ARCHITECTURE.md, "Where models live"): the approval path
(``approval`` and ``deployment``) and people (``mlops promote``, through ``promotion``). It needs
boto3 only, takes its clients as arguments and reads no environment, so no second copy of a check can drift.

``check_package`` runs every check, in this order, and raises ``PromotionRefused`` (one sentence) at
the first that fails:

1. the ARN is a model package version's, the package exists and is ``Approved``;
2. it belongs to the tenant (its ``tenant`` metadata, set by the evaluate Lambda) and, where the
   environment is known, to one of that environment's package groups (``<project>-<env>-<tenant>-<model>``:
   environments may share an account); where the endpoint's model is known, it holds that model;
3. its algorithm is one the variant's flavour serves (``SERVED_BY``; with no flavour yet, any flavour);
4. its feature schema (the document its ``feature_schema`` metadata points to) has the sha256 its
   ``feature_schema_sha256`` metadata records, and the same features (names, order, types) and problem
   type as the tenant's published config declares now;
5. its artifact (``InferenceSpecification.Containers[0].ModelDataUrl``) is an ``s3://`` URI ending in
   ``model.tar.gz`` under the tenant's training runs (the endpoint's model role reads only those);
   and the archive in S3 has the sha256 its ``artifact_sha256`` metadata recorded at registration
   (streamed: an archive replaced since is never promoted; ``mlops_platform.model_digest``);
6. its drift baseline (``baseline`` / ``baseline_sha256`` metadata) is the artifact's sibling
   ``baseline.json``, has the recorded sha256, and lists the schema's features in the schema's order:
   the drift monitor finds a served model's baseline by that sibling rule alone.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

# What evaluate registers with each package is what promote compares with: one definition.
from mlops_platform.evaluation.documents import feature_schema
from mlops_platform.model_digest import ARTIFACT_SHA256, SHA256, s3_sha256
from mlops_platform.registry.packages import (
    PACKAGE_ARN,
    SERVED_BY,
    PromotionRefused,
    describe_package,
    error_code,
)

BASELINE_FILE = "baseline.json"
S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<key>.+)$")
MODEL_ARTIFACT = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/(?:.+/)?model\.tar\.gz$")


@dataclass(frozen=True)
class CheckedPackage:
    """A package that passed every check, with what a pointer and a message need."""

    package_arn: str
    group: str
    version: int
    tenant: str
    model: str | None
    algorithm: str
    model_data: str
    baseline: str
    metadata: dict[str, str]


def check_package(
    *,
    sagemaker: Any,
    s3: Any,
    package_arn: str,
    tenant_config: Mapping[str, Any],
    flavour: str | None,
    group_prefix: str | None = None,
    model: str | None = None,
    package: Mapping[str, Any] | None = None,
) -> CheckedPackage:
    """Every check of the module's docstring, in order; ``PromotionRefused`` at the first that fails.

    ``tenant_config`` is the tenant's config as synth publishes it (``PipelineConfig.published()``);
    ``flavour`` the variant's (None: any flavour, for an endpoint not declared yet); ``group_prefix``
    (``mlops-dev``) confines the package to the environment's own groups; ``model`` (the endpoint's
    declared model) to that model's group. ``package`` is DescribeModelPackage's answer, if already read.
    """
    arn = PACKAGE_ARN.match(package_arn)
    if arn is None:
        raise PromotionRefused(
            f"{package_arn!r} is not a model package version ARN; "
            "allowed: arn:aws:sagemaker:<region>:<account>:model-package/<group>/<version>"
        )
    if package is None:
        try:
            package = describe_package(sagemaker, package_arn)
        except ClientError as error:
            raise PromotionRefused(f"cannot describe model package {package_arn} ({error_code(error)})") from None

    status = package.get("ModelApprovalStatus")
    if status != "Approved":
        raise PromotionRefused(
            f"model package {package_arn} is {status or 'without an approval status'}, not Approved; "
            "approve it in the model registry first"
        )

    tenant = str(tenant_config.get("tenant"))
    metadata: dict[str, str] = dict(package.get("CustomerMetadataProperties") or {})
    owner = metadata.get("tenant")
    if owner != tenant:
        raise PromotionRefused(
            f"model package {package_arn} belongs to tenant {owner!r}, not {tenant!r}, the endpoint's tenant"
        )
    if model is not None and metadata.get("model") != model:
        raise PromotionRefused(
            f"model package {package_arn} holds model {metadata.get('model')!r}, not {model!r}, the endpoint's "
            "declared model; allowed: a package of the endpoint's model (declare another endpoint for another model)"
        )
    # The group must be exactly the one its tenant and model metadata name: with hyphens in both names, a
    # prefix match would let tenant a's check pass a package of tenant a-b's groups (issue 17, point 5).
    group = package.get("ModelPackageGroupName") or arn["group"]
    expected = f"{group_prefix}-{tenant}-{metadata.get('model')}"
    if group_prefix is not None and group != expected:
        raise PromotionRefused(
            f"model package {package_arn} is in group {group!r}, not one of this environment's groups "
            f"for tenant {tenant!r} and its model {metadata.get('model')!r} ({expected}); models never cross "
            "environments or tenants"
        )

    algorithm = _algorithm(s3, package, metadata, package_arn)
    served = SERVED_BY[flavour] if flavour is not None else frozenset().union(*SERVED_BY.values())
    if algorithm not in served:
        where = f"a {flavour} variant" if flavour is not None else "any variant"
        allowed = " or ".join(sorted(served))
        raise PromotionRefused(
            f"model package {package_arn} holds a {algorithm} model, which {where} does not serve; "
            f"allowed{f' on {flavour}' if flavour else ''}: {allowed}"
        )

    features = _check_schema(s3, metadata, tenant_config, package_arn)

    containers = (package.get("InferenceSpecification") or {}).get("Containers") or [{}]
    model_data = containers[0].get("ModelDataUrl")
    if not isinstance(model_data, str) or not MODEL_ARTIFACT.match(model_data):
        raise PromotionRefused(
            f"model package {package_arn} has the artifact {model_data!r}; allowed: an s3:// URI ending in model.tar.gz"
        )
    # The endpoint's model role reads artifacts/runs/<tenant>/ only (mlops_constructs/endpoint.py).
    runs = f"/artifacts/runs/{tenant}/"
    if runs not in model_data.removeprefix("s3:/"):
        raise PromotionRefused(
            f"model package {package_arn} has the artifact {model_data!r}, outside the tenant's training runs; "
            f"allowed: an artifact under s3://<artifacts zone>{runs}, which the endpoint's model role may read"
        )

    _check_artifact(s3, metadata, model_data, package_arn)
    baseline = _check_baseline(s3, metadata, model_data, features, package_arn)
    return CheckedPackage(
        package_arn=package_arn,
        group=group,
        version=int(arn["version"]),
        tenant=tenant,
        model=metadata.get("model"),
        algorithm=algorithm,
        model_data=model_data,
        baseline=baseline,
        metadata=metadata,
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


def _check_artifact(s3: Any, metadata: Mapping[str, str], model_data: str, package_arn: str) -> None:
    """The archive in S3 is the one registration measured: streamed and compared with ``artifact_sha256``."""
    recorded = metadata.get(ARTIFACT_SHA256)
    if not recorded or not SHA256.match(recorded):
        raise PromotionRefused(
            f"model package {package_arn} has no {ARTIFACT_SHA256} metadata (the sha256 registration records of "
            "its model.tar.gz); allowed: a package this platform's evaluation registered"
        )
    location = S3_URI.match(model_data)
    assert location is not None  # MODEL_ARTIFACT matched
    try:
        actual = s3_sha256(s3, location["bucket"], location["key"])
    except ClientError as error:
        raise PromotionRefused(
            f"cannot read the artifact {model_data} of model package {package_arn} ({error_code(error)})"
        ) from None
    if actual != recorded:
        raise PromotionRefused(
            f"the artifact {model_data} of model package {package_arn} has sha256 {actual}, not {recorded} as "
            "the package records: it changed after registration"
        )


def baseline_uri(model_data: str) -> str:
    """``s3://…/output/model.tar.gz`` -> ``s3://…/output/baseline.json``: where a model's baseline lives."""
    return f"{model_data.rsplit('/', 1)[0]}/{BASELINE_FILE}"


def read_s3(s3: Any, uri: str, what: str, package_arn: str) -> bytes:
    location = S3_URI.match(uri)
    if location is None:
        raise PromotionRefused(f"model package {package_arn} names {what} {uri!r}, which is not an s3:// URI")
    try:
        body: bytes = s3.get_object(Bucket=location["bucket"], Key=location["key"])["Body"].read()
    except ClientError as error:
        raise PromotionRefused(
            f"cannot read {what} {uri} of model package {package_arn} ({error_code(error)})"
        ) from None
    return body


def read_recorded(s3: Any, uri: str, recorded: str, what: str, package_arn: str) -> bytes:
    """The document at ``uri``, once its sha256 is the one the package recorded at registration."""
    body = read_s3(s3, uri, what, package_arn)
    actual = hashlib.sha256(body).hexdigest()
    if actual != recorded:
        raise PromotionRefused(
            f"{what} {uri} of model package {package_arn} has sha256 {actual}, "
            f"not {recorded} as the package records: it changed after registration"
        )
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
        algorithm = json.loads(read_s3(s3, uri, "the evaluation document", package_arn)).get("algorithm")
    except (ValueError, AttributeError):
        algorithm = None
    if not isinstance(algorithm, str) or not algorithm:
        raise PromotionRefused(
            f"model package {package_arn} names no algorithm (its evaluation document {uri} has none), "
            "so its fit to the variant cannot be checked"
        )
    return algorithm


def _check_schema(
    s3: Any, metadata: Mapping[str, str], tenant_config: Mapping[str, Any], package_arn: str
) -> list[str]:
    """The schema's feature names in order, once it matches the tenant's config."""
    tenant = tenant_config.get("tenant")
    uri, recorded = metadata.get("feature_schema"), metadata.get("feature_schema_sha256")
    if not uri or not recorded:
        raise PromotionRefused(
            f"model package {package_arn} has no feature_schema and feature_schema_sha256 metadata, "
            "so its fit to the endpoint's schema cannot be checked"
        )
    body = read_recorded(s3, uri, recorded, "the feature schema", package_arn)
    try:
        document = json.loads(body)
        features = [(str(f["name"]), str(f["type"])) for f in document["features"]]
        problem_type = document["problem_type"]
    except (ValueError, KeyError, TypeError):
        raise PromotionRefused(f"the feature schema {uri} of model package {package_arn} is not a schema") from None
    try:
        expected_document = feature_schema(tenant_config)
    except (KeyError, TypeError, AttributeError):
        raise PromotionRefused(f"the published config of tenant {tenant!r} declares no dataset features") from None
    expected = [(f["name"], f["type"]) for f in expected_document["features"]]
    difference = first_difference(features, expected)
    if difference is not None:
        raise PromotionRefused(
            f"model package {package_arn} does not fit tenant {tenant!r}'s feature schema: {difference}"
        )
    if problem_type != expected_document["problem_type"]:
        raise PromotionRefused(
            f"model package {package_arn} is a {problem_type} model; tenant {tenant!r} "
            f"declares a {expected_document['problem_type']} problem"
        )
    return [name for name, _ in features]


def _check_baseline(
    s3: Any, metadata: Mapping[str, str], model_data: str, features: Sequence[str], package_arn: str
) -> str:
    """The baseline's URI, once it is the artifact's sibling, unchanged, and of the schema's features."""
    uri, recorded = metadata.get("baseline"), metadata.get("baseline_sha256")
    if not uri or not recorded:
        raise PromotionRefused(
            f"model package {package_arn} has no baseline and baseline_sha256 metadata, "
            "so the drift monitor could not judge the model once it serves"
        )
    sibling = baseline_uri(model_data)
    if uri != sibling:
        raise PromotionRefused(
            f"model package {package_arn} names the baseline {uri}, not {sibling} beside its artifact, "
            "where the drift monitor looks for a served model's baseline"
        )
    body = read_recorded(s3, uri, recorded, "the baseline", package_arn)
    try:
        order = json.loads(body)["feature_order"]
        if not isinstance(order, list):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise PromotionRefused(f"the baseline {uri} of model package {package_arn} is not a baseline") from None
    if [str(name) for name in order] != list(features):
        raise PromotionRefused(
            f"the baseline {uri} of model package {package_arn} describes the features {order}, "
            f"not the schema's {list(features)}"
        )
    return uri


def published_config(s3: Any, bucket: str, key: str, tenant: str) -> dict[str, Any]:
    """The tenant's config as synth publishes it (``PipelineConfig.published()``), at ``s3://bucket/key``.

    A tenant without a published config gets ``{"tenant": tenant}``: ``check_package`` then refuses its
    packages, having no dataset to compare them with.
    """
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        if error_code(error) in ("NoSuchKey", "404"):
            return {"tenant": tenant}
        raise
    config: dict[str, Any] = json.loads(body)
    return config
