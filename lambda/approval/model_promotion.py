"""Model promotion: what a model package must pass before a model pointer may name it, and how a promotion is recorded.

One module for both writers of model pointers (ARCHITECTURE.md, "Where models live"): the approval path
(``handler.py`` and ``deployment.py`` beside this file) and people (``scripts/promote.py``, which imports this
file by its path). It needs boto3 only, takes its clients as arguments and reads no environment, so
both load it the same way and no second copy of a check can drift.

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
6. its drift baseline (``baseline`` / ``baseline_sha256`` metadata) is the artifact's sibling
   ``baseline.json``, has the recorded sha256, and lists the schema's features in the schema's order:
   the drift monitor finds a served model's baseline by that sibling rule alone.

A pointer (``/<project>/<env>/models/<endpoint>/<variant>``) holds the artifact's S3 URI, or the sentinel
``example``; its description ``model package <ARN>`` names the package for lineage.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError

# The algorithms each flavour of variant serves. A GPU instance serves XGBoost only: a linear
# model on it pays for a GPU it never uses.
SERVED_BY: dict[str, frozenset[str]] = {
    "cpu": frozenset({"xgboost", "linear"}),
    "gpu": frozenset({"xgboost"}),
}
EXAMPLE = "example"  # the smoke-test tenant, its endpoint, and the pointer's sentinel for the shipped model
FEATURE_SCHEMA_VERSION = 1  # lambda/evaluate/handler.py: SCHEMA_VERSION of the documents it writes
BASELINE_FILE = "baseline.json"
PACKAGE_ARN = re.compile(
    r"^arn:aws[a-z-]*:sagemaker:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):model-package/(?P<group>[^/]+)/(?P<version>\d+)$"
)
S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<key>.+)$")
MODEL_ARTIFACT = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/(?:.+/)?model\.tar\.gz$")
PACKAGE_NOT_FOUND_CODES = frozenset({"ValidationException", "ResourceNotFound"})
DESCRIPTION_PREFIX = "model package "


class PromotionRefused(Exception):
    """Why a package may not be promoted to a variant, in one sentence; nothing was written."""


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


@dataclass(frozen=True)
class Pointer:
    name: str
    value: str
    description: str | None
    version: int

    @property
    def package_arn(self) -> str | None:
        """The package its description names (``model package <ARN>``), if any."""
        return package_of(self.description)


def pointer_description(package_arn: str) -> str:
    return f"{DESCRIPTION_PREFIX}{package_arn}"


def package_of(description: str | None) -> str | None:
    if description and description.startswith(DESCRIPTION_PREFIX):
        candidate = description[len(DESCRIPTION_PREFIX) :].strip()
        if PACKAGE_ARN.match(candidate):
            return candidate
    return None


def package_version(package_arn: str) -> tuple[str, int] | None:
    """(group, version) of a package version's ARN; None for anything else."""
    match = PACKAGE_ARN.match(package_arn)
    return (match["group"], int(match["version"])) if match else None


def newer_package(pointer: Pointer | None, package_arn: str) -> str | None:
    """The package a pointer names when it is a newer version of ``package_arn``'s group; else None.

    Approvals reach the approval path in any order (EventBridge retries an event for hours), and the
    deployment lock only serializes them: a package older than the one a pointer already names must
    never overwrite it. Another group's package, or a pointer that names none, is no reason to stop.
    """
    named = pointer.package_arn if pointer is not None else None
    theirs, ours = (package_version(named) if named else None), package_version(package_arn)
    if named and theirs and ours and theirs[0] == ours[0] and theirs[1] > ours[1]:
        return named
    return None


def describe_package(sagemaker: Any, package_arn: str) -> dict[str, Any]:
    """DescribeModelPackage, with "no such package" as a refusal; other AWS failures raise."""
    try:
        package: dict[str, Any] = sagemaker.describe_model_package(ModelPackageName=package_arn)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        if code in PACKAGE_NOT_FOUND_CODES:
            raise PromotionRefused(f"model package {package_arn} does not exist ({code})") from None
        raise
    return package


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
            code = error.response.get("Error", {}).get("Code")
            raise PromotionRefused(f"cannot describe model package {package_arn} ({code})") from None

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
    group = package.get("ModelPackageGroupName") or arn["group"]
    if group_prefix is not None and not group.startswith(f"{group_prefix}-{tenant}-"):
        raise PromotionRefused(
            f"model package {package_arn} is in group {group!r}, not one of this environment's groups "
            f"for tenant {tenant!r} ({group_prefix}-{tenant}-<model>); models never cross environments"
        )
    if model is not None and metadata.get("model") != model:
        raise PromotionRefused(
            f"model package {package_arn} holds model {metadata.get('model')!r}, not {model!r}, the endpoint's "
            "declared model; allowed: a package of the endpoint's model (declare another endpoint for another model)"
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
    body = read_s3(s3, uri, "the feature schema", package_arn)
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
    body = read_s3(s3, uri, "the baseline", package_arn)
    actual = hashlib.sha256(body).hexdigest()
    if actual != recorded:
        raise PromotionRefused(
            f"the baseline {uri} of model package {package_arn} has sha256 {actual}, "
            f"not {recorded} as the package records: it changed after registration"
        )
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


def pointer_history(ssm: Any, name: str) -> list[Pointer]:
    """Every kept version of a pointer, oldest first (GetParameterHistory: values and descriptions, one grant).

    Raises ClientError ``ParameterNotFound`` for a pointer that does not exist.
    """
    history: list[Pointer] = []
    paginator = ssm.get_paginator("get_parameter_history")
    for page in paginator.paginate(Name=name, MaxResults=50):
        history.extend(
            Pointer(
                name=name,
                value=entry["Value"],
                description=entry.get("Description"),
                version=int(entry.get("Version", 0)),
            )
            for entry in page.get("Parameters", [])
        )
    return sorted(history, key=lambda pointer: pointer.version)


def find_pointer(ssm: Any, name: str) -> Pointer | None:
    """A pointer's current value, description and version; None when it does not exist."""
    try:
        history = pointer_history(ssm, name)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ParameterNotFound":
            return None
        raise
    return history[-1] if history else None


def read_pointer(ssm: Any, name: str) -> Pointer:
    """A pointer's current value, description and version; ``PromotionRefused`` when it does not exist."""
    try:
        pointer = find_pointer(ssm, name)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        raise PromotionRefused(f"cannot read the model pointer {name} ({code})") from None
    if pointer is None:
        raise PromotionRefused(
            f"the model pointer {name} does not exist; the environment's Foundation stack creates it: "
            "deploy the environment first"
        )
    return pointer


def previous_version(ssm: Any, name: str) -> Pointer | None:
    """The newest earlier version of a pointer whose value differs from the current one (rollback's target)."""
    history = pointer_history(ssm, name)
    if not history:
        return None
    current = history[-1].value
    return next((pointer for pointer in reversed(history[:-1]) if pointer.value != current), None)


def ledger_item(
    *,
    endpoint: str,
    decision: str,
    decided_at: str,
    reason: str,
    sort_key: str,
    tenant: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """One promotion record of the run ledger: ``PROMOTION#<endpoint>`` / ``sort_key``, and for a known
    tenant the ``ByTenant`` index (``TENANT#<tenant>`` / ``PROMOTION#<decided_at>#<decision>``).

    Plain Python values (strings, numbers, lists, maps); None fields are left out.
    """
    item: dict[str, Any] = {
        "pk": f"PROMOTION#{endpoint}",
        "sk": sort_key,
        "kind": "promotion",
        "endpoint": endpoint,
        "decision": decision,
        "reason": reason[:1024],
        "decided_at": decided_at,
        **{key: value for key, value in fields.items() if value is not None},
    }
    if tenant:
        item["tenant"] = tenant
        item["gsi1pk"] = f"TENANT#{tenant}"
        item["gsi1sk"] = f"PROMOTION#{decided_at}#{decision}"
    return item


def put_once(dynamodb: Any, table: str, item: Mapping[str, Any]) -> bool:
    """Write a ledger item unless its key exists; True when written (False: a duplicate, or a retried write)."""
    serializer = TypeSerializer()
    try:
        dynamodb.put_item(
            TableName=table,
            Item={key: serializer.serialize(_dynamodb_value(value)) for key, value in item.items()},
            ConditionExpression="attribute_not_exists(sk)",
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        return False
    return True


def _dynamodb_value(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {key: _dynamodb_value(inner) for key, inner in value.items() if inner is not None}
    if isinstance(value, list | tuple):
        return [_dynamodb_value(inner) for inner in value]
    return value
