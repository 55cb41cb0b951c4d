"""Retrain trigger: turn drift and new data into at most one training execution per tenant and window.

Three kinds of invocation, told apart by their structure:

* ``drift-alarm``: an EventBridge ``CloudWatch Alarm State Change`` (source ``aws.cloudwatch``). Only a
  change to ``ALARM`` counts, and only for an alarm whose name starts with ``ALARM_NAME_PREFIX``
  (``<project>-<env>-drift-``). The tenant and model come from the alarm's metric dimensions
  ``Tenant`` and ``Model`` (``Model`` optional: "all"), not from its name: tenant and model names
  may both contain hyphens, so ``<prefix><tenant>-<model>`` cannot be split back reliably. For a
  metric-math alarm every metric that names a tenant must name the same one.
* ``drift-event``: the drift monitor's ``Drift Summary`` (source ``MONITORING_SOURCE``), whose detail
  carries ``tenant``, ``model``, ``endpoint``, ``drift`` (bool), ``max_psi`` and ``report_uri``.
  A summary without drift changes nothing.
* ``new-data``: an SQS batch (raw bucket -> EventBridge -> SQS with a batching window) whose bodies
  are S3 ``Object Created`` events. Only ``raw/<tenant>/<dataset>/...`` keys of ``RAW_BUCKET`` count;
  the platform's other prefixes and the ignored tenants (the example tenant) never start a run.
  All objects of one batch for one tenant make one trigger: a burst of uploads starts one run.

Each (tenant, trigger) starts the training state machine with ``{"tenant": <tenant>}`` under a
deterministic name (see ``execution_name``) built from the tenant, the model, the trigger's cause
(``drift`` for both drift kinds, ``new-data``) and the window ``floor(now / COOLDOWN_SECONDS)``: a
duplicate alarm, a redelivered message, or the alarm and the summary of one drift monitor run in the
same window ask for the same name, and Step Functions starts a name once (``ExecutionAlreadyExists``
dedupes even when two invocations race past the ledger). The ledger still records the trigger kind
itself (``drift-alarm`` or ``drift-event``). Before starting, the ledger is read: a start of the same
name is a duplicate; a start of another name for the tenant within ``COOLDOWN_SECONDS`` is a cooldown.
Both are skipped.

Every decision is written to the run ledger (``started``, ``skipped-duplicate``, ``skipped-cooldown``,
``ignored``, ``rejected``) with its evidence, under ``TRIGGER#<tenant>`` / ``<decided_at>#<decision>#<id>``
and, for a known tenant, the ``ByTenant`` index (``TENANT#<tenant>`` / ``TRIGGER#<decided_at>``).

A malformed event is logged and recorded as ``rejected``, never raised: no retry can fix it. An AWS
failure raises: a directly invoked event is retried by Lambda (the name keeps the retry harmless);
in an SQS batch only the messages of the failed group are reported back (partial batch response).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError

ALARM_SOURCE = "aws.cloudwatch"
ALARM_DETAIL_TYPE = "CloudWatch Alarm State Change"
DRIFT_DETAIL_TYPE = "Drift Summary"
S3_SOURCE = "aws.s3"
OBJECT_CREATED = "Object Created"
# Tenant, model and dataset names as config/tenants.py allows them.
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
ALL_MODELS = "all"
UNROUTED = "_unrouted"
# Evidence stays well under DynamoDB's 400 KB item limit however large the burst.
MAX_EVIDENCE_KEYS = 20
MAX_TEXT = 1024

# Trigger kinds: recorded in the ledger.
DRIFT_ALARM = "drift-alarm"
DRIFT_EVENT = "drift-event"
NEW_DATA = "new-data"
# The cause each kind names in the execution name: one drift monitor run publishes both DriftDetected (the
# alarm) and a Drift Summary, and the two must ask for the same execution.
DRIFT = "drift"
CAUSES = {DRIFT_ALARM: DRIFT, DRIFT_EVENT: DRIFT, NEW_DATA: NEW_DATA}

# Decisions: part of the ledger's sort key.
STARTED = "started"
SKIPPED_DUPLICATE = "skipped-duplicate"
SKIPPED_COOLDOWN = "skipped-cooldown"
IGNORED = "ignored"
REJECTED = "rejected"
# Decisions that mean an execution of the trigger exists: what the cooldown looks for.
EXECUTION_EXISTS = (STARTED, SKIPPED_DUPLICATE)

# Reasons of rejected events.
UNKNOWN_EVENT = "unknown-event"
MISSING_FIELD = "missing-field"
INVALID_FIELD = "invalid-field"
# Reasons of ignored events.
NOT_IN_ALARM = "not-in-alarm"
FOREIGN_ALARM = "foreign-alarm"
NO_DRIFT = "no-drift"
FOREIGN_BUCKET = "foreign-bucket"
OUTSIDE_RAW = "outside-raw"
IGNORED_TENANT = "ignored-tenant"
NOT_OBJECT_CREATED = "not-object-created"


class Malformed(Exception):
    """An event that no retry can act on; ``reason`` is one of the rejection reasons above."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


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
class Arrival:
    """One object under ``raw/<tenant>/<dataset>/``."""

    tenant: str
    dataset: str
    key: str
    event_id: str | None


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


# Parsing: pure functions of the event. Each returns a Request or an Ignored, or raises Malformed.


def text(container: Any, name: str, where: str) -> str:
    if not isinstance(container, dict):
        raise Malformed(INVALID_FIELD, f"{where} must be an object, not {type(container).__name__}")
    value = container.get(name)
    if value is None:
        raise Malformed(MISSING_FIELD, f"{where}.{name} is missing")
    if not isinstance(value, str) or not value.strip():
        raise Malformed(INVALID_FIELD, f"{where}.{name} must be a non-empty string")
    return value


def name(container: Any, key: str, where: str) -> str:
    value = text(container, key, where)
    if not NAME_PATTERN.fullmatch(value):
        raise Malformed(INVALID_FIELD, f"{where}.{key} {value!r} must be 1-63 lowercase letters, digits or hyphens")
    return value


def clipped(value: Any) -> Any:
    return value[:MAX_TEXT] if isinstance(value, str) else None


def alarm_dimensions(detail: dict[str, Any]) -> tuple[str, str]:
    """(tenant, model) from the ``Tenant`` and ``Model`` dimensions of the alarm's metrics."""
    configuration = detail.get("configuration")
    metrics = configuration.get("metrics") if isinstance(configuration, dict) else None
    if not isinstance(metrics, list):
        raise Malformed(MISSING_FIELD, "detail.configuration.metrics is missing (a composite alarm names no tenant)")
    tenants: set[str] = set()
    models: set[str] = set()
    for metric in metrics:
        stat = metric.get("metricStat") if isinstance(metric, dict) else None
        described = stat.get("metric") if isinstance(stat, dict) else None
        dimensions = described.get("dimensions") if isinstance(described, dict) else None
        if not isinstance(dimensions, dict):
            continue
        if "Tenant" in dimensions:
            tenants.add(name(dimensions, "Tenant", "dimensions"))
        if "Model" in dimensions:
            models.add(name(dimensions, "Model", "dimensions"))
    if not tenants:
        raise Malformed(MISSING_FIELD, "no metric of the alarm has a Tenant dimension")
    if len(tenants) > 1 or len(models) > 1:
        raise Malformed(
            INVALID_FIELD, f"the alarm's metrics name several tenants {sorted(tenants)} or models {sorted(models)}"
        )
    return tenants.pop(), models.pop() if models else ALL_MODELS


def parse_alarm(event: dict[str, Any], alarm_prefix: str) -> Request | Ignored:
    detail = event.get("detail")
    alarm = text(detail, "alarmName", "detail")
    state = detail.get("state")
    value = text(state, "value", "detail.state")
    evidence = {
        "event_id": clipped(event.get("id")),
        "alarm_name": alarm,
        "state": value,
        "state_reason": clipped(state.get("reason")),
        "state_timestamp": clipped(state.get("timestamp")),
        "previous_state": clipped((detail.get("previousState") or {}).get("value"))
        if isinstance(detail.get("previousState"), dict)
        else None,
    }
    if not alarm.startswith(alarm_prefix):
        return Ignored(
            DRIFT_ALARM, FOREIGN_ALARM, f"alarm {alarm!r} does not start with {alarm_prefix!r}", None, evidence
        )
    tenant, model = alarm_dimensions(detail)
    if value != "ALARM":
        return Ignored(DRIFT_ALARM, NOT_IN_ALARM, f"alarm {alarm!r} went to {value}", tenant, evidence)
    return Request(tenant, model, DRIFT_ALARM, evidence)


def parse_drift(event: dict[str, Any]) -> Request | Ignored:
    detail = event.get("detail")
    tenant = name(detail, "tenant", "detail")
    model = name(detail, "model", "detail")
    endpoint = text(detail, "endpoint", "detail")
    report_uri = text(detail, "report_uri", "detail")
    drift = detail.get("drift")
    if not isinstance(drift, bool):
        raise Malformed(INVALID_FIELD, "detail.drift must be true or false")
    max_psi = detail.get("max_psi")
    if isinstance(max_psi, bool) or not isinstance(max_psi, int | float) or not math.isfinite(max_psi):
        raise Malformed(INVALID_FIELD, "detail.max_psi must be a finite number")
    evidence = {
        "event_id": clipped(event.get("id")),
        "event_time": clipped(event.get("time")),
        "endpoint": endpoint,
        "drift": drift,
        "max_psi": Decimal(str(max_psi)),
        "report_uri": report_uri[:MAX_TEXT],
    }
    if not drift:
        return Ignored(DRIFT_EVENT, NO_DRIFT, f"the summary of {endpoint!r} reports no drift", tenant, evidence)
    return Request(tenant, model, DRIFT_EVENT, evidence)


def parse_object_created(
    body: str, *, bucket: str, raw_prefix: str, ignored_tenants: frozenset[str]
) -> Arrival | Ignored:
    """One SQS body, an S3 event as EventBridge delivers it to its SQS target."""
    try:
        event = json.loads(body)
    except ValueError:
        raise Malformed(INVALID_FIELD, "the message body is not JSON") from None
    if not isinstance(event, dict) or event.get("source") != S3_SOURCE:
        raise Malformed(UNKNOWN_EVENT, "the message body is not an S3 event from EventBridge")
    event_id = clipped(event.get("id"))
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise Malformed(INVALID_FIELD, "detail must be an object")
    bucket_name = text(detail.get("bucket"), "name", "detail.bucket")
    key = text(detail.get("object"), "key", "detail.object")
    evidence = {"event_ids": [event_id], "keys": [key[:MAX_TEXT]]}
    if event.get("detail-type") != OBJECT_CREATED:
        detail_type = event.get("detail-type")
        return Ignored(NEW_DATA, NOT_OBJECT_CREATED, f"detail-type {detail_type!r}", None, evidence)
    if bucket_name != bucket:
        return Ignored(NEW_DATA, FOREIGN_BUCKET, f"bucket {bucket_name!r} is not {bucket!r}", None, evidence)
    parts = key[len(raw_prefix) :].split("/", 2) if key.startswith(raw_prefix) else []
    if len(parts) < 3 or not parts[2] or not all(NAME_PATTERN.fullmatch(part) for part in parts[:2]):
        return Ignored(NEW_DATA, OUTSIDE_RAW, f"key is not under {raw_prefix}<tenant>/<dataset>/", None, evidence)
    tenant, dataset = parts[0], parts[1]
    if tenant in ignored_tenants:
        return Ignored(NEW_DATA, IGNORED_TENANT, f"tenant {tenant!r} never triggers retraining", tenant, evidence)
    return Arrival(tenant, dataset, key, event_id)


def parse_event(
    event: Any, *, alarm_prefix: str, monitoring_source: str, ignored_tenants: frozenset[str] = frozenset()
) -> Request | Ignored:
    """What a directly delivered EventBridge event asks for; raises Malformed for anything else.

    Drift of an ignored tenant (the example endpoint is monitored like any other) is recorded, never a run.
    """
    if not isinstance(event, dict):
        raise Malformed(INVALID_FIELD, f"the event must be an object, not {type(event).__name__}")
    kind = (event.get("source"), event.get("detail-type"))
    parsed: Request | Ignored | None = None
    if kind == (ALARM_SOURCE, ALARM_DETAIL_TYPE):
        parsed = parse_alarm(event, alarm_prefix)
    elif kind == (monitoring_source, DRIFT_DETAIL_TYPE):
        parsed = parse_drift(event)
    if isinstance(parsed, Request) and parsed.tenant in ignored_tenants:
        return Ignored(
            parsed.trigger, IGNORED_TENANT, f"tenant {parsed.tenant!r} never triggers retraining", parsed.tenant,
            parsed.evidence,
        )  # fmt: skip
    if parsed is not None:
        return parsed
    raise Malformed(
        UNKNOWN_EVENT,
        f"source {kind[0]!r} with detail-type {kind[1]!r}; expected {ALARM_SOURCE!r} with {ALARM_DETAIL_TYPE!r}, "
        f"{monitoring_source!r} with {DRIFT_DETAIL_TYPE!r}, or an SQS batch",
    )


def is_sqs_batch(event: Any) -> bool:
    records = event.get("Records") if isinstance(event, dict) else None
    return isinstance(records, list) and all(
        isinstance(record, dict) and record.get("eventSource") == "aws:sqs" for record in records
    )


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


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_now() -> datetime:
    return datetime.now(UTC)


# Effects.


@dataclass(frozen=True)
class Settings:
    raw_bucket: str
    raw_prefix: str
    ignored_tenants: frozenset[str]
    alarm_prefix: str
    monitoring_source: str


class Trigger:
    """Decides, starts and records; raises only on AWS failures, so a retry repeats a harmless decision."""

    def __init__(
        self,
        dynamodb: Any,
        stepfunctions: Any,
        *,
        ledger_table: str,
        state_machine_arn: str,
        cooldown_seconds: int,
        clock: Callable[[], datetime] = utc_now,
    ):
        if cooldown_seconds < 1:
            raise ValueError(f"COOLDOWN_SECONDS must be a whole number of seconds from 1, not {cooldown_seconds}")
        self.dynamodb = dynamodb
        self.stepfunctions = stepfunctions
        self.ledger_table = ledger_table
        self.state_machine_arn = state_machine_arn
        self.cooldown_seconds = cooldown_seconds
        self.clock = clock
        self._serializer = TypeSerializer()

    def request(self, request: Request) -> Decision:
        """Start the tenant's training unless this window's execution or the cooldown already covers it."""
        now = self.clock()
        window = window_of(now, self.cooldown_seconds)
        name = execution_name(request.tenant, request.model, request.trigger, window)
        common = {
            "tenant": request.tenant,
            "trigger": request.trigger,
            "model": request.model,
            "execution_name": name,
            "window": window,
            "evidence": request.evidence,
        }
        recent = self.recent_execution(request.tenant, now)
        if recent is not None:
            recent_name = recent.get("execution_name", {}).get("S")
            if recent_name == name:
                return self.record(
                    Decision(
                        decision=SKIPPED_DUPLICATE,
                        reason="already started in this window",
                        decided_at=iso(now),
                        execution_arn=recent.get("execution_arn", {}).get("S"),
                        **common,
                    )
                )
            return self.record(
                Decision(
                    decision=SKIPPED_COOLDOWN,
                    reason=f"{recent_name} started at {recent.get('decided_at', {}).get('S')}, "
                    f"within the cooldown of {self.cooldown_seconds} s",
                    decided_at=iso(now),
                    **common,
                )
            )
        try:
            response = self.stepfunctions.start_execution(
                stateMachineArn=self.state_machine_arn, name=name, input=json.dumps({"tenant": request.tenant})
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
                raise
            # Started by an earlier attempt whose ledger write was lost, and closed since.
            arn = self.state_machine_arn.replace(":stateMachine:", ":execution:", 1) + f":{name}"
            return self.record(
                Decision(
                    decision=SKIPPED_DUPLICATE,
                    reason="ExecutionAlreadyExists",
                    decided_at=iso(now),
                    execution_arn=arn,
                    **common,
                )
            )
        return self.record(
            Decision(
                decision=STARTED,
                reason=request.trigger,
                decided_at=iso(now),
                execution_arn=response["executionArn"],
                **common,
            )
        )

    def recent_execution(self, tenant: str, now: datetime) -> dict[str, Any] | None:
        """The newest decision for ``tenant`` within the cooldown that means an execution exists."""
        since = iso(now - timedelta(seconds=self.cooldown_seconds))
        paginator = self.dynamodb.get_paginator("query")
        newest = None
        for page in paginator.paginate(
            TableName=self.ledger_table,
            KeyConditionExpression="pk = :pk AND sk >= :since",
            FilterExpression="decision IN (:started, :duplicate)",
            ExpressionAttributeValues={
                ":pk": {"S": f"TRIGGER#{tenant}"},
                ":since": {"S": since},
                ":started": {"S": EXECUTION_EXISTS[0]},
                ":duplicate": {"S": EXECUTION_EXISTS[1]},
            },
            ConsistentRead=True,
        ):
            for item in page.get("Items", []):
                newest = item  # ascending sort key: the last one is the newest
        return newest

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
                Item={key: self._serializer.serialize(value) for key, value in item.items()},
                ConditionExpression="attribute_not_exists(sk)",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
        logger.info(
            decision.decision,
            extra={"pk": item["pk"], "sk": item["sk"], "reason": item["reason"], "execution": decision.execution_name},
        )
        metrics.add_metric(METRICS[decision.decision], MetricUnit.Count, 1)
        return decision

    # The two invocation shapes.

    def handle_event(
        self, event: Any, *, alarm_prefix: str, monitoring_source: str, ignored_tenants: frozenset[str] = frozenset()
    ) -> Decision:
        try:
            parsed = parse_event(
                event, alarm_prefix=alarm_prefix, monitoring_source=monitoring_source, ignored_tenants=ignored_tenants
            )
        except Malformed as problem:
            source = event.get("source") if isinstance(event, dict) else None
            trigger = DRIFT_ALARM if source == ALARM_SOURCE else DRIFT_EVENT
            event_id = event.get("id") if isinstance(event, dict) else None
            return self.reject(trigger, problem, {"event_id": clipped(event_id), "source": clipped(source)})
        if isinstance(parsed, Ignored):
            return self.ignore(parsed)
        return self.request(parsed)


class Batch:
    """One SQS batch grouped before anything is decided, so that a tenant's burst is one request.

    Groups: the arrivals of one tenant; the ignored messages of one (reason, tenant); the rejected
    messages of one reason. BatchProcessor calls ``__call__`` per message; the first message of a group
    decides for the whole group, and the others share its outcome, a failure included: a transient
    error reports only that group's messages back to SQS.
    """

    def __init__(self, trigger: Trigger, records: Iterable[dict[str, Any]], settings: Settings):
        self.trigger = trigger
        self.group_of: dict[str, tuple[str, ...]] = {}
        self.members: dict[tuple[str, ...], list[tuple[str, Arrival | Ignored | Malformed]]] = {}
        self.outcomes: dict[tuple[str, ...], Decision | Exception] = {}
        for record in records:
            message_id = str(record.get("messageId"))
            try:
                parsed: Arrival | Ignored | Malformed = parse_object_created(
                    str(record.get("body", "")),
                    bucket=settings.raw_bucket,
                    raw_prefix=settings.raw_prefix,
                    ignored_tenants=settings.ignored_tenants,
                )
            except Malformed as problem:
                parsed = problem
            if isinstance(parsed, Arrival):
                group: tuple[str, ...] = (STARTED, parsed.tenant)
            elif isinstance(parsed, Ignored):
                group = (IGNORED, parsed.reason.split(":")[0], parsed.tenant or UNROUTED)
            else:
                group = (REJECTED, parsed.reason)
            self.group_of[message_id] = group
            self.members.setdefault(group, []).append((message_id, parsed))

    def __call__(self, record: SQSRecord) -> str:
        group = self.group_of[record.message_id]
        if group not in self.outcomes:
            try:
                self.outcomes[group] = self.decide(group)
            except Exception as error:  # shared by the group's messages, each reported back
                self.outcomes[group] = error
        outcome = self.outcomes[group]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome.decision

    def decide(self, group: tuple[str, ...]) -> Decision:
        members = self.members[group]
        message_ids = [message_id for message_id, _ in members][:MAX_EVIDENCE_KEYS]
        if group[0] == STARTED:
            arrivals = [parsed for _, parsed in members if isinstance(parsed, Arrival)]
            evidence = {
                "object_count": len(arrivals),
                "keys": sorted({arrival.key[:MAX_TEXT] for arrival in arrivals})[:MAX_EVIDENCE_KEYS],
                "datasets": sorted({arrival.dataset for arrival in arrivals}),
                "event_ids": sorted({arrival.event_id for arrival in arrivals if arrival.event_id})[:MAX_EVIDENCE_KEYS],
                "message_ids": message_ids,
            }
            return self.trigger.request(Request(arrivals[0].tenant, ALL_MODELS, NEW_DATA, evidence))
        if group[0] == IGNORED:
            ignored = [parsed for _, parsed in members if isinstance(parsed, Ignored)]
            first = ignored[0]
            evidence = {
                "object_count": len(ignored),
                "keys": sorted({key for one in ignored for key in one.evidence["keys"]})[:MAX_EVIDENCE_KEYS],
                "event_ids": sorted({i for one in ignored for i in one.evidence["event_ids"] if i})[:MAX_EVIDENCE_KEYS],
                "message_ids": message_ids,
            }
            return self.trigger.ignore(Ignored(NEW_DATA, first.reason, first.detail, first.tenant, evidence))
        problems = [parsed for _, parsed in members if isinstance(parsed, Malformed)]
        evidence = {"message_count": len(problems), "message_ids": message_ids}
        return self.trigger.reject(NEW_DATA, problems[0], evidence)


# One metric per decision.
METRICS = {
    STARTED: "RetrainingStarted",
    SKIPPED_DUPLICATE: "RetrainingDuplicates",
    SKIPPED_COOLDOWN: "RetrainingCooldownSkips",
    IGNORED: "TriggerEventsIgnored",
    REJECTED: "TriggerEventsRejected",
}

logger = Logger()
metrics = Metrics()
settings = Settings(
    raw_bucket=os.environ["RAW_BUCKET"],
    raw_prefix=os.environ.get("RAW_PREFIX", "raw/"),
    ignored_tenants=frozenset(t.strip() for t in os.environ.get("IGNORED_TENANTS", "example").split(",") if t.strip()),
    alarm_prefix=os.environ["ALARM_NAME_PREFIX"],
    monitoring_source=os.environ["MONITORING_SOURCE"],
)
trigger = Trigger(
    boto3.client("dynamodb"),
    boto3.client("stepfunctions"),
    ledger_table=os.environ["LEDGER_TABLE"],
    state_machine_arn=os.environ["STATE_MACHINE_ARN"],
    cooldown_seconds=int(os.environ["COOLDOWN_SECONDS"]),
)


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if is_sqs_batch(event):
        if not event["Records"]:
            return {"batchItemFailures": []}
        batch = Batch(trigger, event["Records"], settings)
        # A failed group is reported, never raised for the whole batch: the other groups stay done.
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        return process_partial_response(event=event, record_handler=batch, processor=processor, context=context)
    decision = trigger.handle_event(
        event,
        alarm_prefix=settings.alarm_prefix,
        monitoring_source=settings.monitoring_source,
        ignored_tenants=settings.ignored_tenants,
    )
    return {"decision": decision.decision, "reason": decision.reason, "execution_name": decision.execution_name}
