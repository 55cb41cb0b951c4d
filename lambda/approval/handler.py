"""Approval path: a model package's approval in the registry becomes its endpoint's Challenger, or a notice.

Invoked by an EventBridge rule on the default bus: ``SageMaker Model Package State Change`` events of this
environment's package groups (``<project>-<env>-``) whose ``ModelApprovalStatus`` is ``Approved`` or
``PendingManualApproval``. SageMaker sends such an event for every change of a package (its metadata,
its life-cycle stage) and may send one more than once, so every effect below is idempotent and keyed on
the package ARN. The package is described again, and an event whose status is no longer the package's
is stale and ignored.

* **Pending**: the people subscribed to the environment's topic get the package's metrics and the exact
  ``aws sagemaker update-model-package`` commands that approve or reject it (once per package).
* **Approved**, for each endpoint the environment's config declares for the package's tenant and model:

  - the package is checked (``model_promotion.check_package``: tenant, group, model, flavour, feature
    schema, artifact, baseline) against the endpoint's ``Challenger`` variant; a refusal is recorded and
    notified, and no pointer is written;
  - an endpoint with a ``Challenger`` gets a deployment: the deployment workflow (a Step Functions state
    machine, ``deployment.py``) is started under a name derived from the endpoint and the package ARN,
    so a duplicate event finds the name taken (``ExecutionAlreadyExists``, or the same running
    execution) and is recorded as ``skipped-duplicate``: one deploy per package and endpoint. The
    workflow, not this function, writes the pointer, under a lock;
  - an endpoint without a ``Challenger`` is not changed: the approval is recorded, the pointer the
    Challenger would read is prepared (created, never over a newer or a foreign promotion), and people
    get the config change that serves it.

* **Approved**, with no endpoint declared for the tenant and model: the pointers of the endpoint
  ``<tenant>-<model>`` (``Champion`` and ``Challenger``) are prepared with the package, so the endpoint
  serves it from its first deploy once declared, never the example model; people get its config.
* The smoke-test tenant (``IGNORED_TENANTS``, ``example``) is never promoted: its events are recorded as
  ``ignored`` and nobody is notified.

Every decision is a ledger record ``PROMOTION#<endpoint>`` / ``PACKAGE#<group>/<version>#<decision>``
(``model_promotion.ledger_item``), written once: a duplicate event finds it and notifies nobody again. A
malformed event is logged and recorded under ``PROMOTION#_unrouted``, never raised; an AWS failure
raises, and Lambda retries the event (the names and records keep retries harmless).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError
from model_promotion import (
    EXAMPLE,
    SERVED_BY,
    CheckedPackage,
    PromotionRefused,
    check_package,
    describe_package,
    find_pointer,
    ledger_item,
    package_version,
    pointer_description,
    put_once,
)

SOURCE = "aws.sagemaker"
DETAIL_TYPE = "SageMaker Model Package State Change"
APPROVED = "Approved"
PENDING = "PendingManualApproval"
CHAMPION = "Champion"
CHALLENGER = "Challenger"
# config/serving.py: ENDPOINT_KEY.
ENDPOINT_KEY = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")
UNROUTED = "_unrouted"
SUBJECT_MAX = 100  # SNS: at most 100 printable ASCII characters
CHALLENGER_SHARE = 10  # percent: the share a suggested Challenger gets (the shipped config's)

# Decisions: the last part of a record's sort key.
DEPLOYING = "deploying"
SKIPPED_DUPLICATE = "skipped-duplicate"
REJECTED = "rejected"
RECORDED = "recorded"
PREPARED = "pointer-prepared"
PENDING_NOTIFIED = "pending-notified"
IGNORED = "ignored"
METRICS = {
    DEPLOYING: "PromotionsStarted",
    SKIPPED_DUPLICATE: "PromotionDuplicates",
    REJECTED: "PromotionsRejected",
    RECORDED: "ApprovalsWithoutChallenger",
    PREPARED: "PointersPrepared",
    PENDING_NOTIFIED: "PendingApprovalsNotified",
    IGNORED: "ApprovalEventsIgnored",
}


class Malformed(Exception):
    """An event that no retry can act on."""


@dataclass(frozen=True)
class Variant:
    name: str
    flavour: str
    instance_type: str
    min_capacity: int
    max_capacity: int
    initial_instance_count: int
    weight: float


@dataclass(frozen=True)
class Endpoint:
    key: str
    tenant: str
    model: str
    variants: tuple[Variant, ...]

    def variant(self, name: str) -> Variant | None:
        return next((variant for variant in self.variants if variant.name == name), None)

    def share(self, name: str) -> float:
        """The percentage of traffic a variant gets: SageMaker routes weight / sum(weights) to it."""
        total = sum(variant.weight for variant in self.variants)
        variant = self.variant(name)
        return round(100 * variant.weight / total, 2) if variant and total else 0.0


def load_variant(name: str, entry: list[Any]) -> Variant:
    flavour, instance_type, min_capacity, max_capacity, initial_instance_count, weight = entry
    return Variant(name, flavour, instance_type, min_capacity, max_capacity, initial_instance_count, float(weight))


def load_endpoints(text: str) -> dict[str, Endpoint]:
    """``ENDPOINTS``, the environment's ``serving.endpoints`` as synth writes it (mlops_constructs/approval_path.py),
    positional to fit Lambda's 4 KB of environment: ``{"<key>": ["<tenant>", "<model>", [["<variant>", "<flavour>",
    "<instance type>", <min>, <max>, <initial count>, <weight>], ...]]}``."""
    return {
        key: Endpoint(key, tenant, model, tuple(load_variant(entry[0], entry[1:]) for entry in variants))
        for key, (tenant, model, variants) in json.loads(text).items()
    }


@dataclass(frozen=True)
class Settings:
    environment: str
    region: str
    group_prefix: str
    pointer_prefix: str
    endpoints: dict[str, Endpoint]
    new_variant: Variant
    config_bucket: str
    config_prefix: str
    ledger_table: str
    topic_arn: str
    state_machine_arn: str
    ignored_tenants: frozenset[str]

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Settings:
        return cls(
            environment=environ["ENVIRONMENT"],
            region=environ.get("AWS_REGION", "eu-west-1"),
            group_prefix=environ["PACKAGE_GROUP_PREFIX"],
            pointer_prefix=environ["POINTER_PREFIX"],
            endpoints=load_endpoints(environ["ENDPOINTS"]),
            # ["<flavour>", "<instance type>", <min>, <max>, <initial count>]: a new variant's defaults.
            new_variant=load_variant(CHAMPION, [*json.loads(environ["NEW_VARIANT"]), 100]),
            config_bucket=environ["CONFIG_BUCKET"],
            config_prefix=environ.get("CONFIG_PREFIX", "artifacts/config/pipelines/"),
            ledger_table=environ["LEDGER_TABLE"],
            topic_arn=environ["TOPIC_ARN"],
            state_machine_arn=environ["STATE_MACHINE_ARN"],
            ignored_tenants=frozenset(
                t.strip() for t in environ.get("IGNORED_TENANTS", EXAMPLE).split(",") if t.strip()
            ),
        )

    def pointer(self, endpoint: str, variant: str) -> str:
        return f"{self.pointer_prefix}{endpoint}/{variant}"


@dataclass(frozen=True)
class StateChange:
    package_arn: str
    group: str
    status: str
    event_id: str | None


def parse_event(event: Any) -> StateChange:
    if not isinstance(event, dict) or (event.get("source"), event.get("detail-type")) != (SOURCE, DETAIL_TYPE):
        raise Malformed(f"not a {DETAIL_TYPE!r} event from {SOURCE}")
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise Malformed("detail must be an object")
    values = {name: detail.get(name) for name in ("ModelPackageArn", "ModelPackageGroupName", "ModelApprovalStatus")}
    missing = sorted(name for name, value in values.items() if not isinstance(value, str) or not value)
    if missing:
        raise Malformed(f"detail lacks {', '.join(missing)}")
    if package_version(str(values["ModelPackageArn"])) is None:
        raise Malformed(f"detail.ModelPackageArn {values['ModelPackageArn']!r} is not a model package version ARN")
    return StateChange(
        package_arn=str(values["ModelPackageArn"]),
        group=str(values["ModelPackageGroupName"]),
        status=str(values["ModelApprovalStatus"]),
        event_id=event.get("id") if isinstance(event.get("id"), str) else None,
    )


def execution_name(endpoint: str, package_arn: str) -> str:
    """``<endpoint>-v<version>-<h>``, ``h`` 12 hex digits of sha256 of endpoint and ARN: unique per package and
    endpoint, at most 80 characters of ``[a-z0-9-]`` (Step Functions), starting with a letter (the change set's
    name is derived from it)."""
    parsed = package_version(package_arn)
    version = parsed[1] if parsed else 0
    digest = hashlib.sha256(f"{endpoint}\n{package_arn}".encode()).hexdigest()[:12]
    return f"{endpoint}-v{version}-{digest}"


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- messages (pure) ------------------------------------------------------------------------------


def subject(settings: Settings, text: str) -> str:
    line = f"[{settings.group_prefix}] {text}".replace("\n", " ")
    line = line.encode("ascii", "replace").decode("ascii")
    return line if len(line) <= SUBJECT_MAX else line[: SUBJECT_MAX - 3] + "..."


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


# -- effects --------------------------------------------------------------------------------------


class Approvals:
    """Decides, acts and records; raises only on AWS failures, so a retry repeats a harmless decision."""

    def __init__(
        self,
        *,
        sagemaker: Any,
        s3: Any,
        ssm: Any,
        dynamodb: Any,
        stepfunctions: Any,
        sns: Any,
        settings: Settings,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.sagemaker = sagemaker
        self.s3 = s3
        self.ssm = ssm
        self.dynamodb = dynamodb
        self.stepfunctions = stepfunctions
        self.sns = sns
        self.settings = settings
        self.clock = clock

    def handle(self, event: Any) -> list[dict[str, Any]]:
        try:
            change = parse_event(event)
        except Malformed as problem:
            logger.warning("malformed event", extra={"problem": str(problem)})
            now = iso(self.clock())
            event_id = event.get("id") if isinstance(event, dict) else None
            return [self.record(UNROUTED, IGNORED, f"malformed: {problem}", sort_key=f"{now}#{IGNORED}#{event_id}")]

        if not change.group.startswith(f"{self.settings.group_prefix}-"):
            foreign = f"group {change.group!r} is not one of {self.settings.group_prefix}'s"
            return [self.ignore(UNROUTED, change, foreign)]
        try:
            package = describe_package(self.sagemaker, change.package_arn)
        except PromotionRefused as refusal:
            return [self.ignore(UNROUTED, change, str(refusal))]
        metadata: dict[str, str] = dict(package.get("CustomerMetadataProperties") or {})
        tenant, model = metadata.get("tenant"), metadata.get("model")
        status = package.get("ModelApprovalStatus")
        if not tenant or not model:
            return [self.ignore(UNROUTED, change, "the package has no tenant and model metadata")]
        endpoints = [e for e in self.settings.endpoints.values() if e.tenant == tenant and e.model == model]
        keys = [endpoint.key for endpoint in endpoints] or [self.new_endpoint_key(tenant, model)]
        if tenant in self.settings.ignored_tenants:
            return [self.ignore(key, change, f"tenant {tenant!r} is never promoted", tenant) for key in keys]
        if status != change.status:
            reason = f"the event says {change.status}, the package is {status} now (a stale or reordered event)"
            return [self.ignore(key, change, reason, tenant) for key in keys]
        if status == PENDING:
            return self.pending(change, package, metadata, endpoints, keys)
        if status != APPROVED:
            return [self.ignore(key, change, f"status {status} asks for nothing", tenant) for key in keys]
        config = self.tenant_config(tenant)
        if not endpoints:
            return [self.prepare_new_endpoint(change, package, config, tenant, model)]
        return [self.approve(endpoint, change, package, config) for endpoint in endpoints]

    # -- pending --------------------------------------------------------------------------------

    def pending(
        self,
        change: StateChange,
        package: Mapping[str, Any],
        metadata: Mapping[str, str],
        endpoints: list[Endpoint],
        keys: list[str],
    ) -> list[dict[str, Any]]:
        tenant = metadata["tenant"]
        model = metadata["model"]
        decisions = [
            self.record(key, PENDING_NOTIFIED, "awaiting approval", change=change, tenant=tenant, model=model)
            for key in keys
        ]
        if not any(decision["written"] for decision in decisions):
            return decisions  # a duplicate event: the people were told already
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
            outcome = [f"- no endpoint serves {tenant}/{metadata['model']} yet: the pointers of {keys[0]} are prepared"]
        lines = [
            f"A model package of {tenant}/{metadata['model']} in {self.settings.environment} awaits approval.",
            "",
            *package_lines(None, change.package_arn, metadata),
            *self.evaluation_lines(package),
            "",
            "Approve it (or reject it) with:",
            *approval_commands(self.settings, change.package_arn),
            "",
            "Once approved:",
            *outcome,
        ]
        version = package_version(change.package_arn)
        self.notify(f"{tenant}/{metadata['model']} v{version[1] if version else '?'} awaits approval", lines)
        return decisions

    def evaluation_lines(self, package: Mapping[str, Any]) -> list[str]:
        """The metrics of the package's evaluation document (its model-quality statistics), if readable."""
        statistics = ((package.get("ModelMetrics") or {}).get("ModelQuality") or {}).get("Statistics") or {}
        uri = statistics.get("S3Uri")
        match = re.match(r"^s3://([^/]+)/(.+)$", uri) if isinstance(uri, str) else None
        if match is None:
            return []
        try:
            document = json.loads(self.s3.get_object(Bucket=match[1], Key=match[2])["Body"].read())
        except (ClientError, ValueError):
            return [f"Evaluation: {uri} (unreadable)"]
        lines = [f"Evaluation: {uri}"]
        if isinstance(document, dict):
            if "threshold" in document:
                lines.append(
                    f"Approval threshold: {document.get('threshold')} (met: {document.get('meets_threshold')})"
                )
            for section, values in sorted(document.items()):
                if section.endswith("_metrics") and isinstance(values, dict):
                    for name, value in sorted(values.items()):
                        shown = value.get("value") if isinstance(value, dict) else value
                        lines.append(f"  {name}: {shown}")
        return lines

    # -- approved -------------------------------------------------------------------------------

    def tenant_config(self, tenant: str) -> dict[str, Any]:
        key = f"{self.settings.config_prefix}{tenant}.json"
        try:
            body = self.s3.get_object(Bucket=self.settings.config_bucket, Key=key)["Body"].read()
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return {"tenant": tenant}  # refused by the checks: no dataset to compare with
            raise
        config: dict[str, Any] = json.loads(body)
        return config

    def approve(
        self, endpoint: Endpoint, change: StateChange, package: Mapping[str, Any], config: Mapping[str, Any]
    ) -> dict[str, Any]:
        challenger = endpoint.variant(CHALLENGER)
        # Without a Challenger, the flavour a suggested one would have: the first variant's.
        flavour = (challenger or endpoint.variants[0]).flavour
        try:
            checked = check_package(
                sagemaker=self.sagemaker,
                s3=self.s3,
                package_arn=change.package_arn,
                tenant_config=config,
                flavour=flavour,
                group_prefix=self.settings.group_prefix,
                model=endpoint.model,
                package=package,
            )
        except PromotionRefused as refusal:
            return self.reject(endpoint.key, change, endpoint.tenant, endpoint.model, str(refusal))
        if challenger is None:
            return self.without_challenger(endpoint, change, checked)
        return self.deploy(endpoint, change, checked)

    def reject(self, key: str, change: StateChange, tenant: str, model: str, reason: str) -> dict[str, Any]:
        decision = self.record(key, REJECTED, reason, change=change, tenant=tenant, model=model)
        if decision["written"]:
            self.notify(
                f"{tenant}/{model} not promoted to {key}: refused",
                [
                    f"The approved model package {change.package_arn} is not promoted to endpoint {key} "
                    f"in {self.settings.environment}: nothing was written.",
                    "",
                    f"Why: {reason}",
                    "",
                    "Fix the package (or the endpoint's config) and approve a new version; the checks are "
                    "those of scripts/promote.py (docs/approval-path.md).",
                ],
            )
        return decision

    def deploy(self, endpoint: Endpoint, change: StateChange, checked: CheckedPackage) -> dict[str, Any]:
        name = execution_name(endpoint.key, change.package_arn)
        request = {
            "package_arn": change.package_arn,
            "endpoint": endpoint.key,
            "variant": CHALLENGER,
            "pointer": self.settings.pointer(endpoint.key, CHALLENGER),
            "model_data": checked.model_data,
            "tenant": endpoint.tenant,
            "model": endpoint.model,
            "share": endpoint.share(CHALLENGER),
        }
        common = {"change": change, "tenant": endpoint.tenant, "model": endpoint.model, "execution_name": name}
        try:
            response = self.stepfunctions.start_execution(
                stateMachineArn=self.settings.state_machine_arn,
                name=name,
                input=json.dumps(request, sort_keys=True),
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
                raise
            return self.record(endpoint.key, SKIPPED_DUPLICATE, "ExecutionAlreadyExists", **common)
        decision = self.record(
            endpoint.key,
            DEPLOYING,
            f"the Challenger of {endpoint.key} is deployed with {checked.model_data}",
            execution_arn=response["executionArn"],
            model_data=checked.model_data,
            **common,
        )
        if not decision["written"]:
            # Step Functions answers a repeated start of a running execution (same name and input) with
            # that execution: the record of the first start is there.
            return self.record(endpoint.key, SKIPPED_DUPLICATE, "the execution is already running", **common)
        return decision

    def without_challenger(self, endpoint: Endpoint, change: StateChange, checked: CheckedPackage) -> dict[str, Any]:
        pointer = self.settings.pointer(endpoint.key, CHALLENGER)
        prepared = self.prepare_pointer(pointer, checked)
        decision = self.record(
            endpoint.key,
            RECORDED,
            f"endpoint {endpoint.key} has no {CHALLENGER} variant; {prepared}",
            change=change,
            tenant=endpoint.tenant,
            model=endpoint.model,
            pointer=pointer,
            model_data=checked.model_data,
        )
        if decision["written"]:
            variants = with_challenger(endpoint.variants, endpoint.variants[0])
            self.notify(
                f"{endpoint.tenant}/{endpoint.model} approved; {endpoint.key} has no Challenger",
                [
                    f"Endpoint {endpoint.key} in {self.settings.environment} has no {CHALLENGER} variant, so the "
                    "approved model package below changes nothing there. It was recorded.",
                    "",
                    *package_lines(checked, change.package_arn, checked.metadata),
                    "",
                    f"Pointer {pointer}: {prepared}.",
                    f"To serve it to {CHALLENGER_SHARE}% of the traffic, declare a {CHALLENGER} like this, then "
                    f"deploy the environment (make deploy ENV={self.settings.environment}, or the delivery "
                    "pipeline) and run make record-variants:",
                    "",
                    endpoint_yaml(self.settings, endpoint.key, endpoint.tenant, endpoint.model, variants),
                ],
            )
        return decision

    def new_endpoint_key(self, tenant: str, model: str) -> str:
        """``<tenant>-<model>``: the key an endpoint not declared yet is expected under (docs/approval-path.md)."""
        return f"{tenant}-{model}"

    def prepare_new_endpoint(
        self, change: StateChange, package: Mapping[str, Any], config: Mapping[str, Any], tenant: str, model: str
    ) -> dict[str, Any]:
        key = self.new_endpoint_key(tenant, model)
        if not ENDPOINT_KEY.match(key):
            return self.reject(
                key,
                change,
                tenant,
                model,
                f"no endpoint is declared for {tenant}/{model} and {key!r} is no endpoint key (2-32 lowercase "
                "letters, digits or hyphens, starting with a letter); declare one, then run scripts/promote.py",
            )
        try:
            checked = check_package(
                sagemaker=self.sagemaker,
                s3=self.s3,
                package_arn=change.package_arn,
                tenant_config=config,
                flavour=None,
                group_prefix=self.settings.group_prefix,
                model=model,
                package=package,
            )
        except PromotionRefused as refusal:
            return self.reject(key, change, tenant, model, str(refusal))
        outcomes = {
            variant: self.prepare_pointer(self.settings.pointer(key, variant), checked)
            for variant in (CHAMPION, CHALLENGER)
        }
        reason = "; ".join(f"{variant}: {outcome}" for variant, outcome in outcomes.items())
        decision = self.record(
            key, PREPARED, reason, change=change, tenant=tenant, model=model, model_data=checked.model_data
        )
        if decision["written"]:
            template = self.settings.new_variant
            if checked.algorithm not in SERVED_BY.get(template.flavour, frozenset()):
                template = replace(template, flavour="cpu")
            variants = with_challenger((template,), template)
            self.notify(
                f"{tenant}/{model} approved; endpoint {key} prepared",
                [
                    f"No endpoint of {self.settings.environment} serves {tenant}/{model} yet. The pointers of "
                    f"endpoint {key} now name the approved model package below, so once the endpoint is "
                    "declared it serves this model from its first deploy, never the example model.",
                    "",
                    *package_lines(checked, change.package_arn, checked.metadata),
                    "",
                    *(f"Pointer {self.settings.pointer(key, v)}: {outcome}." for v, outcome in outcomes.items()),
                    "",
                    "Declare it (instance types and capacities are this environment's defaults; in prod every "
                    "variant needs at least 2 instances), then deploy the environment:",
                    "",
                    endpoint_yaml(self.settings, key, tenant, model, variants),
                ],
            )
        return decision

    def prepare_pointer(self, name: str, checked: CheckedPackage) -> str:
        """Point a pointer no endpoint reads yet at the package, unless it names a newer or another promotion.

        Written when absent, when it holds Foundation's sentinel, or when it names an older version of
        the same group; a newer version (a reordered event) or another group's package (a person's
        promotion) is kept. Says what happened.
        """
        current = find_pointer(self.ssm, name)
        if current is not None:
            if current.value == checked.model_data:
                return "already names it"
            named = current.package_arn
            if named is not None:
                theirs, ours = package_version(named), package_version(checked.package_arn)
                if theirs and ours and (theirs[0] != ours[0] or theirs[1] > ours[1]):
                    return f"kept, it names {named}"
            elif current.value != EXAMPLE:
                return f"kept, it holds {current.value} without a package"
        try:
            self.ssm.put_parameter(
                Name=name,
                Value=checked.model_data,
                Type="String",
                Overwrite=current is not None,
                Description=pointer_description(checked.package_arn),
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ParameterAlreadyExists":
                raise
            return "kept, created by someone else a moment ago"
        return "created" if current is None else f"written (it held {current.value})"

    # -- records and notices --------------------------------------------------------------------

    def ignore(self, key: str, change: StateChange, reason: str, tenant: str | None = None) -> dict[str, Any]:
        return self.record(key, IGNORED, reason, change=change, tenant=tenant)

    def record(
        self,
        key: str,
        decision: str,
        reason: str,
        *,
        change: StateChange | None = None,
        sort_key: str | None = None,
        tenant: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """One ledger record per package, endpoint and decision; ``written`` is False for a duplicate."""
        decided_at = iso(self.clock())
        if sort_key is None:
            assert change is not None
            parsed = package_version(change.package_arn)
            sort_key = f"PACKAGE#{parsed[0]}/{parsed[1]}#{decision}" if parsed else f"{decided_at}#{decision}"
        item = ledger_item(
            endpoint=key,
            decision=decision,
            decided_at=decided_at,
            reason=reason,
            sort_key=sort_key,
            tenant=tenant,
            package_arn=change.package_arn if change else None,
            status=change.status if change else None,
            event_id=change.event_id if change else None,
            **fields,
        )
        written = put_once(self.dynamodb, self.settings.ledger_table, item)
        logger.info(decision, extra={"pk": item["pk"], "sk": item["sk"], "reason": item["reason"], "written": written})
        if written:
            metrics.add_metric(METRICS[decision], MetricUnit.Count, 1)
        return {"endpoint": key, "decision": decision, "reason": item["reason"], "written": written}

    def notify(self, title: str, lines: list[str]) -> None:
        self.sns.publish(
            TopicArn=self.settings.topic_arn, Subject=subject(self.settings, title), Message="\n".join(lines)
        )


logger = Logger()
metrics = Metrics()
approvals = Approvals(
    sagemaker=boto3.client("sagemaker"),
    s3=boto3.client("s3"),
    ssm=boto3.client("ssm"),
    dynamodb=boto3.client("dynamodb"),
    stepfunctions=boto3.client("stepfunctions"),
    sns=boto3.client("sns"),
    settings=Settings.from_environment(os.environ),
)


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"decisions": approvals.handle(event)}
