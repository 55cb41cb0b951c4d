"""What the approval function tells people: a package's facts, the commands that decide it, the config that serves it.

Each ``*_message`` is a notice's (title, lines). Pure text, but for ``evaluation_lines``, which reads the
package's evaluation document from S3.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from mlops_platform.registry.approval_settings import CHALLENGER, Endpoint, Settings, Variant
from mlops_platform.registry.checks import CheckedPackage
from mlops_platform.registry.packages import SERVED_BY, package_version
from mlops_platform.runs.prepared import data_lines

CHALLENGER_SHARE = 10  # percent: the share a suggested Challenger gets (the shipped config's)
Message = tuple[str, list[str]]  # a notice's title and lines


def variant_lines(variant: Variant, indent: str) -> list[str]:
    weight = f"{variant.weight:g}"
    return [
        f"{indent}- name: {variant.name}",
        f"{indent}  flavour: {variant.flavour}",
        f"{indent}  instance_type: {variant.instance_type}",
        f"{indent}  min_capacity: {variant.min_capacity}",
        f"{indent}  max_capacity: {variant.max_capacity}",
        f"{indent}  initial_instance_count: {variant.initial_instance_count}",
        f"{indent}  weight: {weight}",
    ]


def with_challenger(variants: tuple[Variant, ...], template: Variant) -> list[Variant]:
    """The variants plus a Challenger like ``template`` at ``CHALLENGER_SHARE`` percent of the traffic.

    A lone Champion goes to 90 and the Challenger to 10, the shipped config's split; beside several
    variants the Challenger's weight is a ninth of theirs together, the others unchanged.
    """
    if len(variants) == 1:
        [only] = variants
        kept = [replace(only, weight=float(100 - CHALLENGER_SHARE))]
        weight = float(CHALLENGER_SHARE)
    else:
        kept = list(variants)
        weight = round(sum(v.weight for v in variants) * CHALLENGER_SHARE / (100 - CHALLENGER_SHARE), 2)
    return [*kept, replace(template, name=CHALLENGER, weight=weight)]


def endpoint_yaml(settings: Settings, key: str, tenant: str, model: str, variants: list[Variant]) -> str:
    lines = [
        f"# config/environments/{settings.environment}.yaml",
        "serving:",
        "  endpoints:",
        f"    {key}:",
        f"      tenant: {tenant}",
        f"      model: {model}",
        "      variants:",
    ]
    for variant in variants:
        lines.extend(variant_lines(variant, "        "))
    return "\n".join(lines)


def package_lines(checked: CheckedPackage | None, package_arn: str, metadata: Mapping[str, str]) -> list[str]:
    lines = [f"Model package: {package_arn}"]
    for label, name in (
        ("Tenant", "tenant"),
        ("Model", "model"),
        ("Algorithm", "algorithm"),
        ("Run", "run_id"),
        ("Trial", "trial"),
        ("Training job", "training_job_name"),
    ):
        if metadata.get(name):
            lines.append(f"{label}: {metadata[name]}")
    if metadata.get("objective_metric"):
        lines.append(f"Objective: {metadata['objective_metric']} = {metadata.get('objective_value', '?')}")
    if checked is not None:
        lines.append(f"Artifact: {checked.model_data}")
        lines.append(f"Baseline: {checked.baseline}")
    return lines


def approval_commands(settings: Settings, package_arn: str) -> list[str]:
    return [
        f"aws sagemaker update-model-package --region {settings.region} --model-package-arn {package_arn} "
        f'--model-approval-status {status} --approval-description "{why}"'
        for status, why in (("Approved", "<why it may serve>"), ("Rejected", "<why it may not>"))
    ]


def evaluation_lines(s3: Any, package: Mapping[str, Any]) -> list[str]:
    """The metrics of the package's evaluation document (its model-quality statistics), if readable."""
    statistics = ((package.get("ModelMetrics") or {}).get("ModelQuality") or {}).get("Statistics") or {}
    uri = statistics.get("S3Uri")
    match = re.match(r"^s3://([^/]+)/(.+)$", uri) if isinstance(uri, str) else None
    if match is None:
        return []
    try:
        document = json.loads(s3.get_object(Bucket=match[1], Key=match[2])["Body"].read())
    except (ClientError, ValueError):
        return [f"Evaluation: {uri} (unreadable)"]
    lines = [f"Evaluation: {uri}"]
    if isinstance(document, dict):
        if "threshold" in document:
            lines.append(f"Approval threshold: {document.get('threshold')} (met: {document.get('meets_threshold')})")
        for section, values in sorted(document.items()):
            if section.endswith("_metrics") and isinstance(values, dict):
                for name, value in sorted(values.items()):
                    shown = value.get("value") if isinstance(value, dict) else value
                    lines.append(f"  {name}: {shown}")
        # What the run's prepare step kept and rejected (runs.prepared): rejected rows are never silent.
        data = data_lines(document.get("data") if isinstance(document.get("data"), dict) else None)
        lines.extend([f"Training data: {data[0]}", *(f"  {line}" for line in data[1:])] if data else [])
    return lines


def pending_message(
    settings: Settings,
    package_arn: str,
    metadata: Mapping[str, str],
    endpoints: Sequence[Endpoint],
    keys: Sequence[str],
    s3: Any,
    package: Mapping[str, Any],
) -> Message:
    tenant, model = metadata["tenant"], metadata["model"]
    if endpoints:
        outcome = [
            f"- endpoint {e.key}: "
            + (
                f"it becomes the Challenger ({e.share(CHALLENGER):g}% of the traffic) and is deployed"
                if e.variant(CHALLENGER)
                else "it is recorded and its Challenger pointer prepared (the endpoint has no Challenger variant)"
            )
            for e in endpoints
        ]
    else:
        outcome = [f"- no endpoint serves {tenant}/{model} yet: the pointers of {keys[0]} are prepared"]
    lines = [
        f"A model package of {tenant}/{model} in {settings.environment} awaits approval.",
        "",
        *package_lines(None, package_arn, metadata),
        *evaluation_lines(s3, package),
        "",
        "Approve it (or reject it) with:",
        *approval_commands(settings, package_arn),
        "",
        "Once approved:",
        *outcome,
    ]
    version = package_version(package_arn)
    return f"{tenant}/{model} v{version[1] if version else '?'} awaits approval", lines


def refusal_message(settings: Settings, key: str, package_arn: str, tenant: str, model: str, reason: str) -> Message:
    return f"{tenant}/{model} not promoted to {key}: refused", [
        f"The approved model package {package_arn} is not promoted to endpoint {key} "
        f"in {settings.environment}: nothing was written.",
        "",
        f"Why: {reason}",
        "",
        "Fix the package (or the endpoint's config) and approve a new version; the checks are "
        "those of mlops promote (docs/approval-path.md).",
    ]


def approver_refusal_message(
    settings: Settings, keys: Sequence[str], package_arn: str, tenant: str, model: str, approver: str, role: str
) -> Message:
    return f"{tenant}/{model} approved by an unlisted principal: not promoted", [
        f"The model package {package_arn} was approved by {approver} (as {role}), which is not one of "
        f"{settings.environment}'s approvers (approval.approver_role_arns), so it is not promoted to "
        f"{', '.join(keys)}: nothing was written.",
        "",
        "Approvers: " + ", ".join(sorted(settings.approver_role_arns)),
        "",
        "If the approval is legitimate, set the package back to PendingManualApproval and have one of these "
        "roles approve it; otherwise reject it and review who may call sagemaker:UpdateModelPackage.",
    ]


def no_challenger_message(
    settings: Settings, endpoint: Endpoint, package_arn: str, checked: CheckedPackage, pointer: str, prepared: str
) -> Message:
    variants = with_challenger(endpoint.variants, endpoint.variants[0])
    return f"{endpoint.tenant}/{endpoint.model} approved; {endpoint.key} has no Challenger", [
        f"Endpoint {endpoint.key} in {settings.environment} has no {CHALLENGER} variant, so the "
        "approved model package below changes nothing there. It was recorded.",
        "",
        *package_lines(checked, package_arn, checked.metadata),
        "",
        f"Pointer {pointer}: {prepared}.",
        f"To serve it to {CHALLENGER_SHARE}% of the traffic, declare a {CHALLENGER} like this, then "
        f"deploy the environment (make deploy ENV={settings.environment}, or the delivery "
        "pipeline) and run make record-variants:",
        "",
        endpoint_yaml(settings, endpoint.key, endpoint.tenant, endpoint.model, variants),
    ]


def prepared_message(
    settings: Settings,
    key: str,
    tenant: str,
    model: str,
    package_arn: str,
    checked: CheckedPackage,
    outcomes: Mapping[str, str],
) -> Message:
    """The config of a new endpoint ``key`` whose pointers were prepared, with this environment's defaults."""
    template = settings.new_variant
    if checked.algorithm not in SERVED_BY.get(template.flavour, frozenset()):
        template = replace(template, flavour="cpu")
    variants = with_challenger((template,), template)
    return f"{tenant}/{model} approved; endpoint {key} prepared", [
        f"No endpoint of {settings.environment} serves {tenant}/{model} yet. The pointers of "
        f"endpoint {key} now name the approved model package below, so once the endpoint is "
        "declared it serves this model from its first deploy, never the example model.",
        "",
        *package_lines(checked, package_arn, checked.metadata),
        "",
        *(f"Pointer {settings.pointer(key, v)}: {outcome}." for v, outcome in outcomes.items()),
        "",
        "Declare it (instance types and capacities are this environment's defaults; in prod every "
        "variant needs at least 2 instances), then deploy the environment:",
        "",
        endpoint_yaml(settings, key, tenant, model, variants),
    ]
