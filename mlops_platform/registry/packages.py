"""Model package versions in the registry: their ARNs, how they are read, and which variants serve them."""

from __future__ import annotations

import re
from typing import Any

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

# The algorithms each flavour of variant serves. A GPU instance serves XGBoost only: a linear
# model on it pays for a GPU it never uses.
SERVED_BY: dict[str, frozenset[str]] = {
    "cpu": frozenset({"xgboost", "linear"}),
    "gpu": frozenset({"xgboost"}),
}
EXAMPLE = "example"  # the smoke-test tenant, its endpoint, and the pointer's sentinel for the shipped model
PACKAGE_ARN = re.compile(
    r"^arn:aws[a-z-]*:sagemaker:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):model-package/(?P<group>[^/]+)/(?P<version>\d+)$"
)
PACKAGE_NOT_FOUND_CODES = frozenset({"ValidationException", "ResourceNotFound"})


class PromotionRefused(Exception):
    """Why a package may not be promoted to a variant, in one sentence; nothing was written."""


def error_code(error: ClientError) -> str | None:
    """The AWS error code of a failed call (``ParameterNotFound``, ``ConditionalCheckFailedException``...)."""
    code = error.response.get("Error", {}).get("Code")
    return str(code) if code is not None else None


def package_version(package_arn: str) -> tuple[str, int] | None:
    """(group, version) of a package version's ARN; None for anything else."""
    match = PACKAGE_ARN.match(package_arn)
    return (match["group"], int(match["version"])) if match else None


def describe_package(sagemaker: Any, package_arn: str) -> dict[str, Any]:
    """DescribeModelPackage, with "no such package" as a refusal; other AWS failures raise."""
    try:
        package: dict[str, Any] = sagemaker.describe_model_package(ModelPackageName=package_arn)
    except ClientError as error:
        code = error_code(error)
        if code in PACKAGE_NOT_FOUND_CODES:
            raise PromotionRefused(f"model package {package_arn} does not exist ({code})") from None
        raise
    return package
