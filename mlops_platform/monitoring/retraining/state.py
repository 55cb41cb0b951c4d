"""A tenant's retraining state: one run at a time, uploads kept for the next run, a drift candidate awaited.

Each tenant has one state item in the run ledger, ``TRIGGER#<tenant>`` / ``STATE`` (after the tenant's decision
records, which sort by time under the same key). Every change to it is ONE conditional ``UpdateItem``; nothing
reads it first and then writes, so two invocations that race (a drift alarm and a new-data batch, a redelivery,
two SQS pollers) cannot both start a run. A write that loses its condition gets the item as it was
(``ReturnValuesOnConditionCheckFailure: ALL_OLD``) and says why from that.

The item (attributes; absent means "no"):

* ``lock_run``: the execution that holds the tenant's lock, from the start until it is seen ended;
* ``run_name``, ``run_arn``, ``run_cause``, ``run_trigger``, ``run_model``, ``run_started_at``, ``run_outcome``,
  ``run_batch``: the latest run (``run_arn`` once its start is recorded, so exactly one invocation records
  ``started``; ``run_batch`` the identity of the uploads that started it, so their redelivery is a duplicate
  and other uploads of the same window are kept for the next run);
* ``cooldown_until``: epoch seconds before which no other run starts;
* ``pending_since``, ``pending_last``, ``pending_objects``, ``pending_datasets``: uploads that arrived while the
  lock or the cooldown held, with ``gsi1pk = RETRAIN#pending`` so the sweep finds the tenant in the ledger's
  ``ByTenant`` index (a sparse entry, removed in the write that starts the next run);
* ``held_packages``, ``held_until``, ``held_run``: candidates a run registered for manual approval. While one
  is pending and not expired, drift starts nothing: drift is measured against the Champion's baseline, which
  changes only on promotion, so a lasting shift would otherwise start a run every cooldown and pile up
  packages. New data still starts runs: it is a reason of its own.

The lock is released when the run is seen ended, under the condition ``lock_run = <that run>``
(trigger.py decides when, and what the run left for review).
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from mlops_platform.aws import condition_failed, epoch, from_item, iso, to_item
from mlops_platform.monitoring.retraining.model import CAUSES, DRIFT, NEW_DATA, Request

STATE_SK = "STATE"
# The ByTenant entry of a state item with uploads waiting: the sweep's query.
PENDING_MARKER = "RETRAIN#pending"
# Why a start did not happen, read from the state item as it was.
DUPLICATE, RUNNING, AWAITING, COOLDOWN = "duplicate", "running", "awaiting", "cooldown"


@dataclass(frozen=True)
class Blocked:
    """A start refused by its condition, with the state item as it was."""

    item: dict[str, Any]


def blocker(before: dict[str, Any], request: Request, name: str, now: datetime) -> str | None:
    """What in the state item as it was keeps ``request`` from starting ``name`` now; None if nothing does."""
    at = epoch(now)
    # The same name within its window: the same trigger again, except for other uploads of a tenant whose
    # new-data run already started (those are kept for the next run).
    if before.get("run_name") == name and (
        request.trigger != NEW_DATA or before.get("run_batch") == request.evidence.get("batch")
    ):
        return DUPLICATE
    if "lock_run" in before:
        return RUNNING
    held = before.get("held_packages")
    if CAUSES[request.trigger] == DRIFT and held and int(before.get("held_until", 0)) > at:
        return AWAITING
    if int(before.get("cooldown_until", 0)) > at:
        return COOLDOWN
    return None


@dataclass
class TenantState:
    """The state items of one ledger table; every method is one conditional write (or the sweep's query)."""

    dynamodb: Any
    _: KW_ONLY
    table: str
    pending_index: str = "ByTenant"

    def acquire(
        self, request: Request, name: str, now: datetime, *, cooldown_seconds: int, pending: bool
    ) -> dict[str, Any] | Blocked:
        """Take the tenant's lock and start its cooldown in one conditional write; the item as it was."""
        free = "attribute_not_exists(lock_run) AND (attribute_not_exists(cooldown_until) OR cooldown_until <= :now)"
        remove = ["run_arn", "run_outcome", "pending_since", "pending_last", "pending_objects", "pending_datasets"]
        remove += ["gsi1pk", "gsi1sk"]
        if CAUSES[request.trigger] == DRIFT:
            # A candidate awaiting review holds drift; an expired hold ends with this start.
            free += " AND (attribute_not_exists(held_packages) OR held_until <= :now)"
            remove += ["held_packages", "held_until", "held_run"]
        if pending:
            free += " AND attribute_exists(pending_since)"
        # The same name again, before its start was recorded: a retry of a start that failed, or its twin racing.
        condition = f"({free}) OR (lock_run = :name AND attribute_not_exists(run_arn))"
        try:
            response = self.dynamodb.update_item(
                TableName=self.table,
                Key=self.key(request.tenant),
                UpdateExpression=(
                    "SET tenant = :tenant, lock_run = :name, run_name = :name, run_cause = :cause, "
                    "run_trigger = :trigger, run_model = :model, run_started_at = :now, cooldown_until = :until, "
                    f"run_batch = :batch REMOVE {', '.join(remove)}"
                ),
                ConditionExpression=condition,
                ExpressionAttributeValues=to_item(
                    {
                        ":tenant": request.tenant,
                        ":name": name,
                        ":cause": CAUSES[request.trigger],
                        ":trigger": request.trigger,
                        ":model": request.model,
                        ":now": epoch(now),
                        ":until": epoch(now) + cooldown_seconds,
                        ":batch": str(request.evidence.get("batch") or "-"),
                    }
                ),
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not condition_failed(error):
                raise
            return Blocked(from_item(error.response.get("Item")))
        return from_item(response.get("Attributes"))

    def claim(self, tenant: str, name: str, arn: str) -> bool:
        """Record the start on the state item; False if another invocation recorded it first."""
        try:
            self.dynamodb.update_item(
                TableName=self.table,
                Key=self.key(tenant),
                UpdateExpression="SET run_arn = :arn",
                ConditionExpression="run_name = :name AND attribute_not_exists(run_arn)",
                ExpressionAttributeValues=to_item({":arn": arn, ":name": name}),
            )
        except ClientError as error:
            if not condition_failed(error):
                raise
            return False
        return True

    def defer(self, request: Request, now: datetime) -> bool:
        """Keep the uploads for the next run, if the tenant is still busy; False if it was freed meanwhile."""
        datasets = set(request.evidence.get("datasets") or ()) or {"unknown"}
        try:
            self.dynamodb.update_item(
                TableName=self.table,
                Key=self.key(request.tenant),
                UpdateExpression=(
                    "SET tenant = :tenant, pending_since = if_not_exists(pending_since, :now), pending_last = :now, "
                    "gsi1pk = :marker, gsi1sk = if_not_exists(gsi1sk, :order) "
                    "ADD pending_objects :objects, pending_datasets :datasets"
                ),
                ConditionExpression="attribute_exists(lock_run) OR cooldown_until > :now",
                ExpressionAttributeValues=to_item(
                    {
                        ":tenant": request.tenant,
                        ":now": epoch(now),
                        ":marker": PENDING_MARKER,
                        ":order": f"{iso(now)}#{request.tenant}",
                        ":objects": int(request.evidence.get("object_count") or 1),
                        ":datasets": datasets,
                    }
                ),
            )
        except ClientError as error:
            if not condition_failed(error):
                raise
            return False
        return True

    def release(self, tenant: str, name: str, outcome: str, candidates: list[str], *, held_until: int) -> bool:
        """Free the lock of the ended run ``name`` and hold its ``candidates`` until ``held_until``; False if
        another invocation released it first."""
        values: dict[str, Any] = {":name": name, ":outcome": outcome}
        update = "SET run_outcome = :outcome REMOVE lock_run"
        if candidates:
            update = "SET run_outcome = :outcome, held_until = :until, held_run = :name REMOVE lock_run "
            update += "ADD held_packages :candidates"
            values |= {":until": held_until, ":candidates": set(candidates)}
        try:
            self.dynamodb.update_item(
                TableName=self.table,
                Key=self.key(tenant),
                UpdateExpression=update,
                ConditionExpression="lock_run = :name",
                ExpressionAttributeValues=to_item(values),
            )
        except ClientError as error:
            if not condition_failed(error):
                raise
            return False
        return True

    def unhold(self, tenant: str, packages: set[str]) -> None:
        """Take decided packages out of the hold."""
        self.dynamodb.update_item(
            TableName=self.table,
            Key=self.key(tenant),
            UpdateExpression="DELETE held_packages :decided",
            ExpressionAttributeValues=to_item({":decided": packages}),
        )

    def unhold_decided(self, tenant: str, package_arn: str) -> list[str] | None:
        """Take a package that was approved or rejected out of the tenant's hold; the packages still held, or
        None when the tenant held no such package."""
        try:
            response = self.dynamodb.update_item(
                TableName=self.table,
                Key=self.key(tenant),
                UpdateExpression="DELETE held_packages :package",
                ConditionExpression="contains(held_packages, :arn)",
                ExpressionAttributeValues=to_item({":package": {package_arn}, ":arn": package_arn}),
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if not condition_failed(error):
                raise
            return None
        return sorted(from_item(response.get("Attributes")).get("held_packages", ()))

    def pending(self, limit: int) -> list[dict[str, Any]]:
        """The state items with uploads waiting (the ``ByTenant`` index's sparse entry), at most ``limit``."""
        response = self.dynamodb.query(
            TableName=self.table,
            IndexName=self.pending_index,
            KeyConditionExpression="gsi1pk = :marker",
            ExpressionAttributeValues=to_item({":marker": PENDING_MARKER}),
            Limit=limit,
        )
        return [from_item(item) for item in response.get("Items", [])]

    def key(self, tenant: str) -> dict[str, Any]:
        return to_item({"pk": f"TRIGGER#{tenant}", "sk": STATE_SK})
