"""Approval path: a model package's approval in the registry becomes its endpoint's Challenger, or a notice.

The approval function (lambda/approval/handler.py) is invoked by an EventBridge rule on the default bus:
``SageMaker Model Package State Change`` events of this environment's package groups (``<project>-<env>-``)
whose ``ModelApprovalStatus`` is ``Approved`` or ``PendingManualApproval``. SageMaker sends such an event
for every change of a package (its metadata, its life-cycle stage) and may send one more than once, so every
effect below is idempotent and keyed on the package ARN. The package is described again, and an event whose
status is no longer the package's is stale and ignored.

* **Pending**: the people subscribed to the environment's topic get the package's metrics and the exact
  ``aws sagemaker update-model-package`` commands that approve or reject it (once per package).
* **Approved**, for each endpoint the environment's config declares for the package's tenant and model:

  - the package is checked (``checks.check_package``: tenant, group, model, flavour, feature
    schema, artifact, baseline) against the endpoint's ``Challenger`` variant; a refusal is recorded and
    notified, and no pointer is written;
  - an endpoint with a ``Challenger`` gets a deployment: the deployment workflow (a Step Functions state
    machine, ``deployment``) is started under a name derived from the endpoint and the package ARN,
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

**Who approved.** The same function gets CloudTrail's record of every successful ``UpdateModelPackage`` call that
approves a package of this environment (``AWS API Call via CloudTrail``, a second rule). It records the caller
(``approved-by``, with ``approver`` the caller's ARN and ``approver_role`` the IAM role behind it) under every
endpoint the package would reach. Where ``approval.approver_role_arns`` is set (required in prod):

  - a caller whose role is not listed is ``approver-refused``: recorded with the approver, notified, never
    promoted;
  - the state change of an Approved package promotes nothing (``awaiting-approver``): **the CloudTrail record
    of a listed approver drives the promotion**. SageMaker's state change and CloudTrail's record reach
    EventBridge independently, in either order, so the promotion cannot wait for "the other one" without a
    store and a timer; CloudTrail's record alone is enough: it is delivered only for a call that succeeded,
    so the package was Approved by that caller, and it is described again here (as for a state change, a
    package no longer Approved is stale and ignored). Whichever event comes first, exactly one path
    promotes, and its records say who approved.
  - A package created Approved (``CreateModelPackage``, no ``UpdateModelPackage`` call) is never promoted
    there: it stays ``awaiting-approver`` until a listed role approves it with ``UpdateModelPackage``.

Without approvers configured (dev, staging), the state change promotes as described above and the
CloudTrail record only adds the approver to the ledger.

Every decision is a ledger record ``PROMOTION#<endpoint>`` / ``PACKAGE#<group>/<version>#<decision>``
(``ledger.ledger_item``), written once: a duplicate event finds it and notifies nobody again. A
malformed event is logged and recorded under ``PROMOTION#_unrouted``, never raised; an AWS failure
raises, and Lambda retries the event (the names and records keep retries harmless).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from mlops_platform.registry.approval_messages import (
    no_challenger_message,
    pending_message,
    prepared_message,
    refusal_message,
)
from mlops_platform.registry.approval_settings import (
    APPROVED,
    CHALLENGER,
    CHAMPION,
    ENDPOINT_KEY,
    PENDING,
    Endpoint,
    Malformed,
    Settings,
    StateChange,
    execution_name,
    is_api_call,
    parse_api_call,
    parse_event,
)
from mlops_platform.registry.approvers import APPROVED_BY, APPROVER_REFUSED, ApproverRecords, stale
from mlops_platform.registry.checks import CheckedPackage, check_package, published_config
from mlops_platform.registry.ledger import iso, ledger_item, put_once
from mlops_platform.registry.notices import Recorder, publish
from mlops_platform.registry.packages import PromotionRefused, describe_package, error_code, package_version
from mlops_platform.registry.pointers import prepare_pointer

UNROUTED = "_unrouted"
# Decisions: the last part of a record's sort key.
DEPLOYING = "deploying"
SKIPPED_DUPLICATE = "skipped-duplicate"
REJECTED = "rejected"
RECORDED = "recorded"
PREPARED = "pointer-prepared"
PENDING_NOTIFIED = "pending-notified"
IGNORED = "ignored"
AWAITING_APPROVER = "awaiting-approver"
METRICS = {
    APPROVED_BY: "ApproversRecorded",
    APPROVER_REFUSED: "ApproversRefused",
    AWAITING_APPROVER: "ApprovalsAwaitingApprover",
    DEPLOYING: "PromotionsStarted",
    SKIPPED_DUPLICATE: "PromotionDuplicates",
    REJECTED: "PromotionsRejected",
    RECORDED: "ApprovalsWithoutChallenger",
    PREPARED: "PointersPrepared",
    PENDING_NOTIFIED: "PendingApprovalsNotified",
    IGNORED: "ApprovalEventsIgnored",
}


@dataclass(kw_only=True)
class Approvals(ApproverRecords, Recorder):
    """Decides, acts and records; raises only on AWS failures, so a retry repeats a harmless decision."""

    CLIENTS = (*Recorder.CLIENTS, "sagemaker", "s3", "ssm", "stepfunctions")

    sagemaker: Any
    s3: Any
    ssm: Any
    stepfunctions: Any
    settings: Settings

    def handle(self, event: Any) -> list[dict[str, Any]]:
        try:
            change = parse_api_call(event) if is_api_call(event) else parse_event(event)
        except Malformed as problem:
            self.log.warning("malformed event", extra={"problem": str(problem)})
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
        if change.approver is not None:
            return self.approved_by(change, package, metadata, endpoints, keys)
        if status != change.status:
            return [self.ignore(key, change, stale(change, status), tenant) for key in keys]
        if status == PENDING:
            return self.pending(change, package, metadata, endpoints, keys)
        if status != APPROVED:
            return [self.ignore(key, change, f"status {status} asks for nothing", tenant) for key in keys]
        if self.settings.approvers_restricted:
            reason = (
                "only a listed approver's UpdateModelPackage call (its CloudTrail record) promotes in "
                f"{self.settings.environment}"
            )
            return [
                self.record(key, AWAITING_APPROVER, reason, change=change, tenant=tenant, model=model) for key in keys
            ]
        return self.promote(change, package, tenant, model, endpoints)

    def promote(
        self, change: StateChange, package: Mapping[str, Any], tenant: str, model: str, endpoints: list[Endpoint]
    ) -> list[dict[str, Any]]:
        config = self.tenant_config(tenant)
        if not endpoints:
            return [self.prepare_new_endpoint(change, package, config, tenant, model)]
        return [self.approve(endpoint, change, package, config) for endpoint in endpoints]

    # -- who approved ---------------------------------------------------------------------------

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
        self.notify(*pending_message(self.settings, change.package_arn, metadata, endpoints, keys, self.s3, package))
        return decisions

    # -- approved -------------------------------------------------------------------------------

    def tenant_config(self, tenant: str) -> dict[str, Any]:
        key = f"{self.settings.config_prefix}{tenant}.json"
        return published_config(self.s3, self.settings.config_bucket, key, tenant)

    def approve(
        self, endpoint: Endpoint, change: StateChange, package: Mapping[str, Any], config: Mapping[str, Any]
    ) -> dict[str, Any]:
        challenger = endpoint.variant(CHALLENGER)
        # Without a Challenger, the flavour a suggested one would have: the first variant's.
        flavour = (challenger or endpoint.variants[0]).flavour
        checked = self.check(endpoint.key, change, package, config, flavour, endpoint.tenant, endpoint.model)
        if not isinstance(checked, CheckedPackage):
            return checked
        if challenger is None:
            return self.without_challenger(endpoint, change, checked)
        return self.deploy(endpoint, change, checked)

    def check(
        self,
        key: str,
        change: StateChange,
        package: Mapping[str, Any],
        config: Mapping[str, Any],
        flavour: str | None,
        tenant: str,
        model: str,
    ) -> CheckedPackage | dict[str, Any]:
        """The package, checked for the endpoint ``key``; when refused, the rejection's decision instead."""
        try:
            return check_package(
                sagemaker=self.sagemaker,
                s3=self.s3,
                package_arn=change.package_arn,
                tenant_config=config,
                flavour=flavour,
                group_prefix=self.settings.group_prefix,
                model=model,
                package=package,
            )
        except PromotionRefused as refusal:
            return self.reject(key, change, tenant, model, str(refusal))

    def reject(self, key: str, change: StateChange, tenant: str, model: str, reason: str) -> dict[str, Any]:
        decision = self.record(key, REJECTED, reason, change=change, tenant=tenant, model=model)
        if decision["written"]:
            self.notify(*refusal_message(self.settings, key, change.package_arn, tenant, model, reason))
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
        common: dict[str, Any] = {
            "change": change,
            "tenant": endpoint.tenant,
            "model": endpoint.model,
            "execution_name": name,
        }
        try:
            response = self.stepfunctions.start_execution(
                stateMachineArn=self.settings.state_machine_arn,
                name=name,
                input=json.dumps(request, sort_keys=True),
            )
        except ClientError as error:
            if error_code(error) != "ExecutionAlreadyExists":
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
            self.notify(*no_challenger_message(self.settings, endpoint, change.package_arn, checked, pointer, prepared))
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
                "letters, digits or hyphens, starting with a letter); declare one, then run mlops promote",
            )
        checked = self.check(key, change, package, config, None, tenant, model)
        if not isinstance(checked, CheckedPackage):
            return checked
        outcomes = {
            variant: self.prepare_pointer(self.settings.pointer(key, variant), checked)
            for variant in (CHAMPION, CHALLENGER)
        }
        reason = "; ".join(f"{variant}: {outcome}" for variant, outcome in outcomes.items())
        decision = self.record(
            key, PREPARED, reason, change=change, tenant=tenant, model=model, model_data=checked.model_data
        )
        if decision["written"]:
            self.notify(*prepared_message(self.settings, key, tenant, model, change.package_arn, checked, outcomes))
        return decision

    def prepare_pointer(self, name: str, checked: CheckedPackage) -> str:
        return prepare_pointer(self.ssm, name, checked.package_arn, checked.model_data)

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
        approver = change.approver if change else None
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
            approver=approver.arn if approver else None,
            **fields,
        )
        written = put_once(self.dynamodb, self.settings.ledger_table, item)
        self.log.info(
            decision, extra={"pk": item["pk"], "sk": item["sk"], "reason": item["reason"], "written": written}
        )
        if written:
            self.count(METRICS[decision])
        return {"endpoint": key, "decision": decision, "reason": item["reason"], "written": written}

    def notify(self, title: str, lines: Sequence[str]) -> None:
        publish(self.sns, self.settings.topic_arn, self.settings.group_prefix, title, lines)
