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

The lock is released when the run is seen ended (``DescribeExecution``), by whichever invocation next finds
it held, under the condition ``lock_run = <that run>``. Releasing reads the run's ``PACKAGE#`` records in the
ledger (written by lambda/evaluate's ``register``), adds those left for manual approval to the hold, and only
then asks SageMaker whether each is still pending: a decision taken while the run was still going (its batch
predictions run after registration) is not missed, whichever comes first.

Execution names stay deterministic (tenant, model, cause, cooldown window), so Step Functions' name check
still dedupes a start that two invocations race to (``ExecutionAlreadyExists``).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

# Tenant, model and dataset names as config/tenants.py allows them.
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
ALL_MODELS = "all"
UNROUTED = "_unrouted"
STATE_SK = "STATE"
# The ByTenant entry of a state item with uploads waiting: the sweep's query.
PENDING_MARKER = "RETRAIN#pending"
# Evidence stays well under DynamoDB's 400 KB item limit however large the burst.
MAX_EVIDENCE_KEYS = 20
MAX_TEXT = 1024

# Trigger kinds: recorded in the ledger.
DRIFT_ALARM = "drift-alarm"
DRIFT_EVENT = "drift-event"
NEW_DATA = "new-data"
PACKAGE_DECISION = "package-decision"
# The cause each kind names in the execution name: one drift monitor run publishes both DriftDetected (the
# alarm) and a Drift Summary, and the two must ask for the same execution.
DRIFT = "drift"
CAUSES = {DRIFT_ALARM: DRIFT, DRIFT_EVENT: DRIFT, NEW_DATA: NEW_DATA}

# Decisions: part of the ledger's sort key.
STARTED = "started"
SKIPPED_DUPLICATE = "skipped-duplicate"
SKIPPED_RUNNING = "skipped-running"
SKIPPED_COOLDOWN = "skipped-cooldown"
SKIPPED_AWAITING_CANDIDATE = "skipped-awaiting-candidate"
DEFERRED = "deferred"
RUN_ENDED = "run-ended"
CANDIDATE_DECIDED = "candidate-decided"
CANDIDATE_EXPIRED = "candidate-expired"
IGNORED = "ignored"
REJECTED = "rejected"
# One metric per decision (mlops_constructs/retrain_trigger.py, DECISION_METRICS: the dashboard graphs them).
METRICS = {
    STARTED: "RetrainingStarted",
    SKIPPED_DUPLICATE: "RetrainingDuplicates",
    SKIPPED_RUNNING: "RetrainingRunningSkips",
    SKIPPED_COOLDOWN: "RetrainingCooldownSkips",
    SKIPPED_AWAITING_CANDIDATE: "RetrainingAwaitingCandidate",
    DEFERRED: "RetrainingDeferred",
    RUN_ENDED: "RetrainingRunsEnded",
    CANDIDATE_DECIDED: "RetrainingCandidatesDecided",
    CANDIDATE_EXPIRED: "RetrainingCandidatesExpired",
    IGNORED: "TriggerEventsIgnored",
    REJECTED: "TriggerEventsRejected",
}

# Why a start did not happen, read from the state item as it was.
_DUPLICATE, _RUNNING, _AWAITING, _COOLDOWN = "duplicate", "running", "awaiting", "cooldown"
# DescribeExecution statuses of a run that may still train (a redrive is about to run it again).
LIVE_STATUSES = frozenset({"RUNNING", "PENDING_REDRIVE"})
# DescribeExecution is eventually consistent: a run started this recently may not be visible yet.
# https://docs.aws.amazon.com/step-functions/latest/apireference/API_DescribeExecution.html
START_GRACE_SECONDS = 900
NOT_STARTED = "NOT_STARTED"
PENDING_APPROVAL = "PendingManualApproval"
# Conditional writes that lost to another writer are tried again, with the item's new state, this often.
MAX_ATTEMPTS = 4
SWEEP_LIMIT = 100  # tenants a sweep starts at most; the next sweep takes the rest

logger = Logger(child=True)
metrics = Metrics()
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class Malformed(Exception):
    """An event that no retry can act on; ``reason`` is one of the rejection reasons of the handler."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class StateKeptChanging(Exception):
    """The tenant's state changed under every attempt; raised so the event is retried."""


@dataclass(frozen=True)
class Request:
    """One reason to retrain a tenant, with what shows it."""

    tenant: str
    model: str
    trigger: str
    evidence: dict[str, Any]


@dataclass(frozen=True)
class Ignored:
    """An event understood and deliberately left alone; recorded so "why did nothing run" has an answer."""

    trigger: str
    reason: str
    detail: str
    tenant: str | None
    evidence: dict[str, Any]


@dataclass(frozen=True)
class PackageDecision:
    """A model package of this environment approved or rejected (SageMaker Model Package State Change)."""

    package_arn: str
    group: str
    status: str
    tenants: tuple[str, ...]  # the tenants the group's name may belong to (names may hold hyphens)
    evidence: dict[str, Any]


@dataclass(frozen=True)
class Decision:
    tenant: str | None
    trigger: str
    decision: str
    reason: str
    decided_at: str
    model: str | None = None
    execution_name: str | None = None
    execution_arn: str | None = None
    window: int | None = None
    evidence: dict[str, Any] = field(default_factory=dict)


def window_of(now: datetime, cooldown_seconds: int) -> int:
    return math.floor(now.timestamp()) // cooldown_seconds


def execution_name(tenant: str, model: str, trigger: str, window: int) -> str:
    """``<tenant[:24]>-<cause>-<model[:16]>-w<window>-<h>``, ``cause`` the trigger's entry in ``CAUSES`` (both
    drift kinds give ``drift``), ``h`` the first 8 hex digits of sha256 of the untruncated parts: readable,
    unique, at most 80 characters of ``[a-z0-9-]`` as Step Functions allows, and a valid ``run_id`` (the
    execution's name) for the plan."""
    cause = CAUSES[trigger]
    digest = hashlib.sha256(f"{tenant}\n{model}\n{cause}\n{window}".encode()).hexdigest()[:8]
    return f"{tenant[:24].rstrip('-')}-{cause}-{model[:16].rstrip('-')}-w{window}-{digest}"


def group_tenants(group: str, prefix: str) -> tuple[str, ...]:
    """Every tenant that ``<prefix>-<tenant>-<model>`` (lambda/evaluate, ``group_name``) can name, shortest first."""
    rest = group.removeprefix(f"{prefix}-") if group.startswith(f"{prefix}-") else ""
    parts = rest.split("-")
    candidates = ("-".join(parts[:index]) for index in range(1, len(parts)))
    return tuple(tenant for tenant in candidates if NAME_PATTERN.fullmatch(tenant))


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch(moment: datetime) -> int:
    return math.floor(moment.timestamp())


def iso_of(seconds: Any) -> str:
    return iso(datetime.fromtimestamp(int(seconds), UTC))


def utc_now() -> datetime:
    return datetime.now(UTC)


def clipped(value: Any) -> Any:
    return value[:MAX_TEXT] if isinstance(value, str) else None


def _values(values: dict[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(value) for name, value in values.items()}


def _plain(item: dict[str, Any] | None) -> dict[str, Any]:
    return {name: _deserializer.deserialize(value) for name, value in (item or {}).items()}


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


@dataclass(frozen=True)
class _Blocked:
    """A start refused by its condition, with the state item as it was."""

    item: dict[str, Any]


class Trigger:
    """Decides, starts and records; raises only on AWS failures, so a retry repeats a harmless decision."""

    def __init__(
        self,
        dynamodb: Any,
        stepfunctions: Any,
        sagemaker: Any,
        *,
        ledger_table: str,
        state_machine_arn: str,
        cooldown_seconds: int,
        candidate_expiry_seconds: int,
        pending_index: str = "ByTenant",
        clock: Callable[[], datetime] = utc_now,
    ):
        if cooldown_seconds < 1:
            raise ValueError(f"COOLDOWN_SECONDS must be a whole number of seconds from 1, not {cooldown_seconds}")
        if candidate_expiry_seconds < 1:
            raise ValueError(
                f"CANDIDATE_EXPIRY_SECONDS must be a whole number of seconds from 1, not {candidate_expiry_seconds}"
            )
        self.dynamodb = dynamodb
        self.stepfunctions = stepfunctions
        self.sagemaker = sagemaker
        self.ledger_table = ledger_table
        self.state_machine_arn = state_machine_arn
        self.cooldown_seconds = cooldown_seconds
        self.candidate_expiry_seconds = candidate_expiry_seconds
        self.pending_index = pending_index
        self.clock = clock

    # Requests: drift, new data, uploads pending.

    def request(self, request: Request, *, pending: bool = False) -> Decision | None:
        """Start the tenant's run, or record why not. ``pending``: the sweep's start of uploads kept while the
        tenant was busy; it records nothing while the tenant still is (a sweep every few minutes would
        otherwise flood the ledger) and returns None."""
        for _ in range(MAX_ATTEMPTS):
            now = self.clock()
            name = execution_name(request.tenant, request.model, request.trigger, window_of(now, self.cooldown_seconds))
            outcome = self._acquire(request, name, now, pending=pending)
            if not isinstance(outcome, _Blocked):
                return self._start(request, name, now, before=outcome)
            before = outcome.item
            blocker = self._blocker(before, request, name, now)
            if blocker == _RUNNING:
                ended = self._run_ended(before, now)
                if ended is None:
                    pass  # still training: the lock holds
                else:
                    self._release(request.tenant, before, ended)
                    continue
            elif blocker is None:
                if pending and "pending_since" not in before:
                    return None  # another invocation started the uploads' run
                continue  # the state changed between the write and its answer: decide again
            if pending:
                return None
            decision = self._refused(request, name, now, before, blocker)
            if decision is not None:
                return decision
        raise StateKeptChanging(f"the retraining state of tenant {request.tenant!r} changed under {MAX_ATTEMPTS} tries")

    def _acquire(self, request: Request, name: str, now: datetime, *, pending: bool) -> dict[str, Any] | _Blocked:
        """Take the tenant's lock and start its cooldown in one conditional write; the item as it was."""
        free = "attribute_not_exists(lock_run) AND (attribute_not_exists(cooldown_until) OR cooldown_until <= :now)"
        remove = ["run_arn", "run_outcome", "pending_since", "pending_last", "pending_objects", "pending_datasets"]
        remove += ["gsi1pk", "gsi1sk"]
        drift = CAUSES[request.trigger] == DRIFT
        if drift:
            # A candidate awaiting review holds drift; an expired hold ends with this start.
            free += " AND (attribute_not_exists(held_packages) OR held_until <= :now)"
            remove += ["held_packages", "held_until", "held_run"]
        if pending:
            free += " AND attribute_exists(pending_since)"
        # The same name again, before its start was recorded: a retry of a start that failed, or its twin racing.
        condition = f"({free}) OR (lock_run = :name AND attribute_not_exists(run_arn))"
        try:
            response = self.dynamodb.update_item(
                TableName=self.ledger_table,
                Key=self._key(request.tenant),
                UpdateExpression=(
                    "SET tenant = :tenant, lock_run = :name, run_name = :name, run_cause = :cause, "
                    "run_trigger = :trigger, run_model = :model, run_started_at = :now, cooldown_until = :until, "
                    f"run_batch = :batch REMOVE {', '.join(remove)}"
                ),
                ConditionExpression=condition,
                ExpressionAttributeValues=_values(
                    {
                        ":tenant": request.tenant,
                        ":name": name,
                        ":cause": CAUSES[request.trigger],
                        ":trigger": request.trigger,
                        ":model": request.model,
                        ":now": epoch(now),
                        ":until": epoch(now) + self.cooldown_seconds,
                        ":batch": str(request.evidence.get("batch") or "-"),
                    }
                ),
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if _code(error) != "ConditionalCheckFailedException":
                raise
            return _Blocked(_plain(error.response.get("Item")))
        return _plain(response.get("Attributes"))

    def _blocker(self, before: dict[str, Any], request: Request, name: str, now: datetime) -> str | None:
        at = epoch(now)
        # The same name within its window: the same trigger again, except for other uploads of a tenant whose
        # new-data run already started (those are kept for the next run).
        if before.get("run_name") == name and (
            request.trigger != NEW_DATA or before.get("run_batch") == request.evidence.get("batch")
        ):
            return _DUPLICATE
        if "lock_run" in before:
            return _RUNNING
        held = before.get("held_packages")
        if CAUSES[request.trigger] == DRIFT and held and int(before.get("held_until", 0)) > at:
            return _AWAITING
        if int(before.get("cooldown_until", 0)) > at:
            return _COOLDOWN
        return None

    def _refused(
        self, request: Request, name: str, now: datetime, before: dict[str, Any], blocker: str
    ) -> Decision | None:
        """Record why the request starts nothing; None if the tenant was freed meanwhile (decide again)."""
        common = self._common(request, name, now)
        if blocker == _DUPLICATE:
            return self.record(
                Decision(
                    decision=SKIPPED_DUPLICATE,
                    reason="already started in this window",
                    execution_arn=before.get("run_arn") or self._execution_arn(name),
                    **common,
                )
            )
        if blocker == _AWAITING:
            held = sorted(before.get("held_packages", ()))
            return self.record(
                Decision(
                    decision=SKIPPED_AWAITING_CANDIDATE,
                    reason=f"{len(held)} candidate(s) of {before.get('held_run')} await approval or rejection "
                    f"until {iso_of(before['held_until'])}",
                    **{**common, "evidence": {**request.evidence, "held_packages": held[:MAX_EVIDENCE_KEYS]}},
                )
            )
        if blocker == _RUNNING:
            why = f"{before['lock_run']} is running"
        else:
            why = (
                f"{before.get('run_name')} started at {iso_of(before.get('run_started_at', 0))}, within the cooldown "
                f"of {self.cooldown_seconds} s (until {iso_of(before.get('cooldown_until', 0))})"
            )
        if request.trigger == NEW_DATA:
            if not self._defer(request, now):
                return None
            return self.record(
                Decision(
                    decision=DEFERRED,
                    reason=f"{why}: the uploads start the next run once it has ended and the cooldown has passed",
                    **common,
                )
            )
        return self.record(
            Decision(
                decision=SKIPPED_RUNNING if blocker == _RUNNING else SKIPPED_COOLDOWN,
                reason=why,
                **common,
            )
        )

    def _defer(self, request: Request, now: datetime) -> bool:
        """Keep the uploads for the next run, if the tenant is still busy; False if it was freed meanwhile."""
        datasets = set(request.evidence.get("datasets") or ()) or {"unknown"}
        try:
            self.dynamodb.update_item(
                TableName=self.ledger_table,
                Key=self._key(request.tenant),
                UpdateExpression=(
                    "SET tenant = :tenant, pending_since = if_not_exists(pending_since, :now), pending_last = :now, "
                    "gsi1pk = :marker, gsi1sk = if_not_exists(gsi1sk, :order) "
                    "ADD pending_objects :objects, pending_datasets :datasets"
                ),
                ConditionExpression="attribute_exists(lock_run) OR cooldown_until > :now",
                ExpressionAttributeValues=_values(
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
            if _code(error) != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def _start(self, request: Request, name: str, now: datetime, *, before: dict[str, Any]) -> Decision:
        common = self._common(request, name, now)
        if CAUSES[request.trigger] == DRIFT and before.get("held_packages"):
            expired = sorted(before["held_packages"])
            self.record(
                Decision(
                    tenant=request.tenant,
                    trigger=request.trigger,
                    decision=CANDIDATE_EXPIRED,
                    reason=f"{len(expired)} candidate(s) of {before.get('held_run')} were neither approved nor "
                    f"rejected by {iso_of(before.get('held_until', 0))}: drift may start runs again",
                    decided_at=iso(now),
                    evidence={"held_packages": expired[:MAX_EVIDENCE_KEYS], "held_run": before.get("held_run")},
                )
            )
        if "pending_since" in before:
            common["evidence"] = {
                **request.evidence,
                "pending_since": iso_of(before["pending_since"]),
                "pending_objects": int(before.get("pending_objects", 0)),
                "pending_datasets": sorted(before.get("pending_datasets", ())),
            }
        try:
            response = self.stepfunctions.start_execution(
                stateMachineArn=self.state_machine_arn, name=name, input=json.dumps({"tenant": request.tenant})
            )
            arn, reason = response["executionArn"], request.trigger
        except ClientError as error:
            if _code(error) != "ExecutionAlreadyExists":
                raise
            # Started by an earlier attempt whose records were lost, and closed since.
            arn, reason = self._execution_arn(name), "ExecutionAlreadyExists"
        claimed = self._claim(request.tenant, name, arn)
        if reason == request.trigger and not claimed:
            reason = "started concurrently"  # the same name's twin recorded the start
        return self.record(
            Decision(
                decision=STARTED if reason == request.trigger else SKIPPED_DUPLICATE,
                reason=reason,
                execution_arn=arn,
                **common,
            )
        )

    def _claim(self, tenant: str, name: str, arn: str) -> bool:
        """Record the start on the state item; False if another invocation recorded it first."""
        try:
            self.dynamodb.update_item(
                TableName=self.ledger_table,
                Key=self._key(tenant),
                UpdateExpression="SET run_arn = :arn",
                ConditionExpression="run_name = :name AND attribute_not_exists(run_arn)",
                ExpressionAttributeValues=_values({":arn": arn, ":name": name}),
            )
        except ClientError as error:
            if _code(error) != "ConditionalCheckFailedException":
                raise
            return False
        return True

    # The lock's run: ended or not, and what it left for review.

    def _run_ended(self, before: dict[str, Any], now: datetime) -> str | None:
        """The lock's run's final status, or None while it may still train."""
        name = before["lock_run"]
        try:
            status = self.stepfunctions.describe_execution(executionArn=self._execution_arn(name))["status"]
        except ClientError as error:
            if _code(error) != "ExecutionDoesNotExist":
                raise
            # Locked, but the start failed and no retry came (or is not visible yet).
            started = int(before.get("run_started_at", 0))
            return NOT_STARTED if epoch(now) - started >= START_GRACE_SECONDS else None
        return None if status in LIVE_STATUSES else str(status)

    def _release(self, tenant: str, before: dict[str, Any], outcome: str) -> Decision | None:
        """Free the lock of an ended run and hold the candidates it left for manual approval."""
        name = before["lock_run"]
        now = self.clock()
        candidates = self._candidates(name)
        values: dict[str, Any] = {":name": name, ":outcome": outcome}
        update = "SET run_outcome = :outcome REMOVE lock_run"
        if candidates:
            update = "SET run_outcome = :outcome, held_until = :until, held_run = :name REMOVE lock_run "
            update += "ADD held_packages :candidates"
            values |= {":until": epoch(now) + self.candidate_expiry_seconds, ":candidates": set(candidates)}
        try:
            self.dynamodb.update_item(
                TableName=self.ledger_table,
                Key=self._key(tenant),
                UpdateExpression=update,
                ConditionExpression="lock_run = :name",
                ExpressionAttributeValues=_values(values),
            )
        except ClientError as error:
            if _code(error) != "ConditionalCheckFailedException":
                raise
            return None  # released by another invocation
        # Held first, verified after: a decision taken before the hold existed is found here.
        decided = {arn: status for arn in candidates if (status := self._approval_status(arn)) != PENDING_APPROVAL}
        if decided:
            self.dynamodb.update_item(
                TableName=self.ledger_table,
                Key=self._key(tenant),
                UpdateExpression="DELETE held_packages :decided",
                ExpressionAttributeValues=_values({":decided": set(decided)}),
            )
        awaiting = sorted(set(candidates) - set(decided))
        reason = f"{name} ended {outcome}"
        if awaiting:
            reason += f"; {len(awaiting)} candidate(s) await review: drift starts nothing until they are decided"
        return self.record(
            Decision(
                tenant=tenant,
                trigger=str(before.get("run_trigger") or NEW_DATA),
                decision=RUN_ENDED,
                reason=reason,
                decided_at=iso(now),
                model=before.get("run_model"),
                execution_name=name,
                execution_arn=self._execution_arn(name),
                evidence={"outcome": outcome, "awaiting": awaiting, "decided": decided},
            )
        )

    def _candidates(self, run_name: str) -> list[str]:
        """The packages the run registered for manual approval (its ``RUN#<run>`` / ``PACKAGE#<model>`` records)."""
        paginator = self.dynamodb.get_paginator("query")
        found = []
        for page in paginator.paginate(
            TableName=self.ledger_table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :package)",
            ExpressionAttributeValues=_values({":pk": f"RUN#{run_name}", ":package": "PACKAGE#"}),
            ConsistentRead=True,
        ):
            for item in map(_plain, page.get("Items", [])):
                if item.get("approval_status") == PENDING_APPROVAL and item.get("model_package_arn"):
                    found.append(str(item["model_package_arn"]))
        return sorted(found)

    def _approval_status(self, package_arn: str) -> str:
        try:
            return str(self.sagemaker.describe_model_package(ModelPackageName=package_arn)["ModelApprovalStatus"])
        except ClientError as error:
            if _code(error) not in ("ValidationException", "ResourceNotFound"):
                raise
            return "Deleted"  # gone: nothing left to wait for

    # Package decisions and the sweep.

    def package_decided(self, event: PackageDecision) -> Decision:
        """Release a held candidate that was approved or rejected; record it either way."""
        now = self.clock()
        for tenant in event.tenants:
            try:
                response = self.dynamodb.update_item(
                    TableName=self.ledger_table,
                    Key=self._key(tenant),
                    UpdateExpression="DELETE held_packages :package",
                    ConditionExpression="contains(held_packages, :arn)",
                    ExpressionAttributeValues=_values({":package": {event.package_arn}, ":arn": event.package_arn}),
                    ReturnValues="ALL_NEW",
                )
            except ClientError as error:
                if _code(error) != "ConditionalCheckFailedException":
                    raise
                continue
            remaining = sorted(_plain(response.get("Attributes")).get("held_packages", ()))
            reason = f"{event.status}: " + (
                f"{len(remaining)} other candidate(s) still await review"
                if remaining
                else "no candidate awaits review any more: drift may start runs again"
            )
            return self.record(
                Decision(
                    tenant=tenant,
                    trigger=PACKAGE_DECISION,
                    decision=CANDIDATE_DECIDED,
                    reason=reason,
                    decided_at=iso(now),
                    evidence={**event.evidence, "remaining": remaining[:MAX_EVIDENCE_KEYS]},
                )
            )
        return self.ignore(
            Ignored(
                PACKAGE_DECISION,
                "not-held",
                f"{event.package_arn} is no candidate a triggered run left awaiting review",
                None,
                event.evidence,
            )
        )

    def sweep(self) -> list[Decision]:
        """Start the runs of uploads kept while their tenant was busy, once it is free and its cooldown passed."""
        response = self.dynamodb.query(
            TableName=self.ledger_table,
            IndexName=self.pending_index,
            KeyConditionExpression="gsi1pk = :marker",
            ExpressionAttributeValues=_values({":marker": PENDING_MARKER}),
            Limit=SWEEP_LIMIT,
        )
        decisions = []
        for item in map(_plain, response.get("Items", [])):
            tenant = item.get("tenant")
            if not isinstance(tenant, str) or not NAME_PATTERN.fullmatch(tenant):
                logger.warning("a pending entry without a tenant", extra={"item": str(item)[:MAX_TEXT]})
                continue
            evidence = {"pending_since": iso_of(item.get("pending_since", 0))}
            decision = self.request(Request(tenant, ALL_MODELS, NEW_DATA, evidence), pending=True)
            if decision is not None:
                decisions.append(decision)
        return decisions

    # Records.

    def ignore(self, ignored: Ignored) -> Decision:
        return self.record(
            Decision(
                tenant=ignored.tenant,
                trigger=ignored.trigger,
                decision=IGNORED,
                reason=f"{ignored.reason}: {ignored.detail}",
                decided_at=iso(self.clock()),
                evidence=ignored.evidence,
            )
        )

    def reject(self, trigger: str, problem: Malformed, evidence: dict[str, Any]) -> Decision:
        logger.warning("rejected", extra={"reason": problem.reason, "detail": problem.detail, **evidence})
        return self.record(
            Decision(
                tenant=None,
                trigger=trigger,
                decision=REJECTED,
                reason=f"{problem.reason}: {problem.detail}",
                decided_at=iso(self.clock()),
                evidence=evidence,
            )
        )

    def record(self, decision: Decision) -> Decision:
        """One ledger item per decision, written if absent: a retried write of the same decision is a no-op."""
        evidence = {key: value for key, value in decision.evidence.items() if value is not None}
        identity = hashlib.sha256(json.dumps(evidence, sort_keys=True, default=str).encode()).hexdigest()[:12]
        tenant = decision.tenant or UNROUTED
        item: dict[str, Any] = {
            "pk": f"TRIGGER#{tenant}",
            "sk": f"{decision.decided_at}#{decision.decision}#{identity}",
            "kind": "trigger",
            "tenant": tenant,
            "trigger": decision.trigger,
            "decision": decision.decision,
            "reason": decision.reason[:MAX_TEXT],
            "decided_at": decision.decided_at,
            "evidence": evidence,
        }
        if decision.tenant is not None:
            item["gsi1pk"] = f"TENANT#{decision.tenant}"
            item["gsi1sk"] = f"TRIGGER#{decision.decided_at}#{decision.decision}"
        for optional in ("model", "execution_name", "execution_arn", "window"):
            value = getattr(decision, optional)
            if value is not None:
                item[optional] = value
        try:
            self.dynamodb.put_item(
                TableName=self.ledger_table,
                Item=_values(item),
                ConditionExpression="attribute_not_exists(sk)",
            )
        except ClientError as error:
            if _code(error) != "ConditionalCheckFailedException":
                raise
        logger.info(
            decision.decision,
            extra={"pk": item["pk"], "sk": item["sk"], "reason": item["reason"], "execution": decision.execution_name},
        )
        metrics.add_metric(METRICS[decision.decision], MetricUnit.Count, 1)
        return decision

    # Helpers.

    def _key(self, tenant: str) -> dict[str, Any]:
        return _values({"pk": f"TRIGGER#{tenant}", "sk": STATE_SK})

    def _execution_arn(self, name: str) -> str:
        return self.state_machine_arn.replace(":stateMachine:", ":execution:", 1) + f":{name}"

    def _common(self, request: Request, name: str, now: datetime) -> dict[str, Any]:
        return {
            "tenant": request.tenant,
            "trigger": request.trigger,
            "model": request.model,
            "execution_name": name,
            "window": window_of(now, self.cooldown_seconds),
            "decided_at": iso(now),
            "evidence": request.evidence,
        }
