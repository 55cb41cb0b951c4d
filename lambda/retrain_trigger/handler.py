"""Retrain trigger: drift and new data start at most one training run per tenant at a time.

Five kinds of invocation, told apart by their structure:

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
  are S3 ``Object Created`` events. Only ``raw/<tenant>/<dataset>/...`` keys of ``RAW_BUCKET`` count, and
  of those only the datasets the tenant trains on (its published pipeline config, ``dataset.name``): the
  labels dataset (``LABELS_DATASET``), other datasets, unknown tenants, the platform's other prefixes and
  the ignored tenants (the example tenant) never start a run. All objects of one batch for one tenant make
  one request: a burst of uploads starts one run.
* ``package-decision``: a ``SageMaker Model Package State Change`` of this environment's groups to
  ``Approved`` or ``Rejected``: a candidate a triggered run left awaiting review is decided, and drift may
  start runs again once none awaits.
* the sweep: an EventBridge ``Scheduled Event`` every few minutes starts the runs of uploads that arrived
  while their tenant was busy, once it is free and the cooldown has passed.

What a request does is decided on the tenant's state item with one conditional write (retraining.py): one
run per tenant at a time, the cooldown, uploads kept for the next run, drift held while a candidate awaits
review. Every decision is written to the run ledger (``started``, ``skipped-duplicate``, ``skipped-running``,
``skipped-cooldown``, ``skipped-awaiting-candidate``, ``deferred``, ``run-ended``, ``candidate-decided``,
``candidate-expired``, ``ignored``, ``rejected``) with its evidence, under ``TRIGGER#<tenant>`` /
``<decided_at>#<decision>#<id>`` and, for a known tenant, the ``ByTenant`` index (``TENANT#<tenant>`` /
``TRIGGER#<decided_at>``).

A malformed event is logged and recorded as ``rejected``, never raised: no retry can fix it. An AWS
failure raises: a directly invoked event is retried by Lambda (names and conditions keep the retry
harmless); in an SQS batch only the messages of the failed group are reported back (partial batch response).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.exceptions import ClientError
from retraining import (
    ALL_MODELS,
    CAUSES,
    DRIFT_ALARM,
    DRIFT_EVENT,
    IGNORED,
    MAX_EVIDENCE_KEYS,
    MAX_TEXT,
    METRICS,
    NAME_PATTERN,
    NEW_DATA,
    PACKAGE_DECISION,
    REJECTED,
    STARTED,
    UNROUTED,
    Decision,
    Ignored,
    Malformed,
    PackageDecision,
    Request,
    Trigger,
    clipped,
    execution_name,
    group_tenants,
    window_of,
)

__all__ = ["CAUSES", "METRICS", "execution_name", "handler", "window_of"]

ALARM_SOURCE = "aws.cloudwatch"
ALARM_DETAIL_TYPE = "CloudWatch Alarm State Change"
DRIFT_DETAIL_TYPE = "Drift Summary"
S3_SOURCE = "aws.s3"
OBJECT_CREATED = "Object Created"
PACKAGE_SOURCE = "aws.sagemaker"
PACKAGE_DETAIL_TYPE = "SageMaker Model Package State Change"
DECIDED_STATUSES = ("Approved", "Rejected")
# A scheduled rule's event (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-create-rule-schedule.html).
SCHEDULE_SOURCE = "aws.events"
SCHEDULED_DETAIL_TYPE = "Scheduled Event"

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
LABELS_DATASET = "labels-dataset"
NOT_TRAINED_ON = "not-a-training-dataset"
UNKNOWN_TENANT = "unknown-tenant"
NOT_DECIDED = "not-decided"
FOREIGN_GROUP = "foreign-group"


@dataclass(frozen=True)
class Arrival:
    """One object under ``raw/<tenant>/<dataset>/``."""

    tenant: str
    dataset: str
    key: str
    event_id: str | None


@dataclass(frozen=True)
class Sweep:
    """The scheduled rule's tick: start the runs of kept uploads."""

    event_id: str | None


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
    body: str, *, bucket: str, raw_prefix: str, ignored_tenants: frozenset[str], labels_dataset: str | None = None
) -> Arrival | Ignored:
    """One SQS body, an S3 event as EventBridge delivers it to its SQS target.

    The labels dataset (``monitoring.labels_dataset``) is the drift monitor's input, never a reason to retrain.
    """
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
    if dataset == labels_dataset:
        return Ignored(
            NEW_DATA, LABELS_DATASET, f"dataset {dataset!r} holds labels for the drift monitor", tenant, evidence
        )
    return Arrival(tenant, dataset, key, event_id)


def parse_package(event: dict[str, Any], group_prefix: str) -> PackageDecision | Ignored:
    """A ``SageMaker Model Package State Change`` (the fields of the example in "Events that Amazon SageMaker AI
    sends to Amazon EventBridge": https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html)."""
    detail = event.get("detail")
    arn = text(detail, "ModelPackageArn", "detail")
    group = text(detail, "ModelPackageGroupName", "detail")
    status = text(detail, "ModelApprovalStatus", "detail")
    evidence = {
        "event_id": clipped(event.get("id")),
        "event_time": clipped(event.get("time")),
        "package_arn": arn[:MAX_TEXT],
        "group": group[:MAX_TEXT],
        "status": status[:MAX_TEXT],
    }
    if status not in DECIDED_STATUSES:
        return Ignored(PACKAGE_DECISION, NOT_DECIDED, f"{arn} is {status}", None, evidence)
    tenants = group_tenants(group, group_prefix)
    if not tenants:
        return Ignored(
            PACKAGE_DECISION, FOREIGN_GROUP, f"group {group!r} is not <{group_prefix}>-<tenant>-<model>", None, evidence
        )
    return PackageDecision(arn, group, status, tenants, evidence)


def parse_event(
    event: Any,
    *,
    alarm_prefix: str,
    monitoring_source: str,
    ignored_tenants: frozenset[str] = frozenset(),
    group_prefix: str = "",
) -> Request | Ignored | PackageDecision | Sweep:
    """What a directly delivered EventBridge event asks for; raises Malformed for anything else.

    Drift of an ignored tenant (the example endpoint is monitored like any other) is recorded, never a run.
    """
    if not isinstance(event, dict):
        raise Malformed(INVALID_FIELD, f"the event must be an object, not {type(event).__name__}")
    kind = (event.get("source"), event.get("detail-type"))
    if kind == (PACKAGE_SOURCE, PACKAGE_DETAIL_TYPE):
        return parse_package(event, group_prefix)
    if kind == (SCHEDULE_SOURCE, SCHEDULED_DETAIL_TYPE):
        return Sweep(event_id=clipped(event.get("id")))
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
        f"{monitoring_source!r} with {DRIFT_DETAIL_TYPE!r}, {PACKAGE_SOURCE!r} with {PACKAGE_DETAIL_TYPE!r}, "
        f"{SCHEDULE_SOURCE!r} with {SCHEDULED_DETAIL_TYPE!r}, or an SQS batch",
    )


def is_sqs_batch(event: Any) -> bool:
    records = event.get("Records") if isinstance(event, dict) else None
    return isinstance(records, list) and all(
        isinstance(record, dict) and record.get("eventSource") == "aws:sqs" for record in records
    )


@dataclass(frozen=True)
class Settings:
    raw_bucket: str
    raw_prefix: str
    ignored_tenants: frozenset[str]
    alarm_prefix: str
    monitoring_source: str
    group_prefix: str
    labels_dataset: str | None


class Unpublished(Exception):
    """A tenant without a readable published pipeline config: nothing to train."""


class PublishedConfigs:
    """The datasets each tenant trains on, from the configs synth publishes (``<CONFIG_PREFIX><tenant>.json``, as
    the plan function reads them), looked up once per invocation: a tenant onboarded since is seen at once."""

    def __init__(self, s3: Any, *, bucket: str, prefix: str):
        self.s3 = s3
        self.bucket = bucket
        self.prefix = prefix
        self._datasets: dict[str, frozenset[str]] = {}

    def forget(self) -> None:
        """Read every config again: one published since the last batch counts."""
        self._datasets.clear()

    def training_datasets(self, tenant: str) -> frozenset[str]:
        if tenant not in self._datasets:
            key = f"{self.prefix}{tenant}.json"
            # Listed first: GetObject answers a missing key with NoSuchKey only to a caller allowed to list the
            # bucket unconditionally, and AccessDenied otherwise; listing under the prefix needs no more than
            # ListBucket on it (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html, Permissions).
            listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=key, MaxKeys=1).get("Contents", [])
            if not any(entry.get("Key") == key for entry in listed):
                raise Unpublished(f"tenant {tenant!r} has no published pipeline config ({key})")
            try:
                body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):  # unpublished since
                    raise Unpublished(f"tenant {tenant!r} has no published pipeline config ({key})") from None
                raise
            try:
                dataset = json.loads(body)["dataset"]["name"]
            except (ValueError, KeyError, TypeError):
                raise Unpublished(f"the published config {key} names no dataset.name") from None
            if not isinstance(dataset, str):
                raise Unpublished(f"the published config {key} names no dataset.name")
            self._datasets[tenant] = frozenset({dataset})
        return self._datasets[tenant]


def handle_event(trigger: Trigger, event: Any, settings: Settings) -> dict[str, Any]:
    """One directly delivered EventBridge event, decided and recorded."""
    try:
        parsed = parse_event(
            event,
            alarm_prefix=settings.alarm_prefix,
            monitoring_source=settings.monitoring_source,
            ignored_tenants=settings.ignored_tenants,
            group_prefix=settings.group_prefix,
        )
    except Malformed as problem:
        source = event.get("source") if isinstance(event, dict) else None
        trigger_kind = {ALARM_SOURCE: DRIFT_ALARM, PACKAGE_SOURCE: PACKAGE_DECISION}.get(str(source), DRIFT_EVENT)
        event_id = event.get("id") if isinstance(event, dict) else None
        decision = trigger.reject(trigger_kind, problem, {"event_id": clipped(event_id), "source": clipped(source)})
        return answer(decision)
    if isinstance(parsed, Sweep):
        started = trigger.sweep()
        return {"decision": "sweep", "started": [decision.execution_name for decision in started]}
    if isinstance(parsed, Ignored):
        return answer(trigger.ignore(parsed))
    if isinstance(parsed, PackageDecision):
        return answer(trigger.package_decided(parsed))
    decision = trigger.request(parsed)
    assert decision is not None  # only the sweep's requests may decide nothing
    return answer(decision)


def answer(decision: Decision) -> dict[str, Any]:
    return {"decision": decision.decision, "reason": decision.reason, "execution_name": decision.execution_name}


class Batch:
    """One SQS batch grouped before anything is decided, so that a tenant's burst is one request.

    Groups: the arrivals of one tenant; the ignored messages of one (reason, tenant); the rejected
    messages of one reason. BatchProcessor calls ``__call__`` per message; the first message of a group
    decides for the whole group, and the others share its outcome, a failure included: a transient
    error reports only that group's messages back to SQS.
    """

    def __init__(
        self, trigger: Trigger, records: Iterable[dict[str, Any]], settings: Settings, configs: PublishedConfigs
    ):
        self.trigger = trigger
        self.configs = configs
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
                    labels_dataset=settings.labels_dataset,
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
            return self.decide_arrivals([parsed for _, parsed in members if isinstance(parsed, Arrival)], message_ids)
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

    def decide_arrivals(self, arrivals: list[Arrival], message_ids: list[str]) -> Decision:
        """A tenant's uploads: those of the datasets it trains on make one request, the others are recorded."""
        tenant = arrivals[0].tenant
        try:
            trained = self.configs.training_datasets(tenant)
        except Unpublished as unpublished:
            return self.trigger.ignore(
                Ignored(NEW_DATA, UNKNOWN_TENANT, str(unpublished), tenant, arrivals_evidence(arrivals, message_ids))
            )
        others = [arrival for arrival in arrivals if arrival.dataset not in trained]
        mine = [arrival for arrival in arrivals if arrival.dataset in trained]
        ignored = None
        if others:
            detail = f"tenant {tenant!r} trains on {sorted(trained)} only"
            ignored = self.trigger.ignore(
                Ignored(NEW_DATA, NOT_TRAINED_ON, detail, tenant, arrivals_evidence(others, message_ids))
            )
        if not mine:
            assert ignored is not None
            return ignored
        decision = self.trigger.request(Request(tenant, ALL_MODELS, NEW_DATA, arrivals_evidence(mine, message_ids)))
        assert decision is not None  # only the sweep's requests may decide nothing
        return decision


def arrivals_evidence(arrivals: list[Arrival], message_ids: list[str]) -> dict[str, Any]:
    # What these uploads are, however many: a redelivered batch is the same batch, new uploads are another.
    identities = sorted(arrival.event_id or arrival.key for arrival in arrivals)
    return {
        "batch": hashlib.sha256("\n".join(identities).encode()).hexdigest()[:16],
        "object_count": len(arrivals),
        "keys": sorted({arrival.key[:MAX_TEXT] for arrival in arrivals})[:MAX_EVIDENCE_KEYS],
        "datasets": sorted({arrival.dataset for arrival in arrivals}),
        "event_ids": sorted({arrival.event_id for arrival in arrivals if arrival.event_id})[:MAX_EVIDENCE_KEYS],
        "message_ids": message_ids,
    }


logger = Logger()
metrics = Metrics()
settings = Settings(
    raw_bucket=os.environ["RAW_BUCKET"],
    raw_prefix=os.environ.get("RAW_PREFIX", "raw/"),
    ignored_tenants=frozenset(t.strip() for t in os.environ.get("IGNORED_TENANTS", "example").split(",") if t.strip()),
    alarm_prefix=os.environ["ALARM_NAME_PREFIX"],
    monitoring_source=os.environ["MONITORING_SOURCE"],
    group_prefix=os.environ["PACKAGE_GROUP_PREFIX"],
    labels_dataset=os.environ.get("LABELS_DATASET") or None,
)
trigger = Trigger(
    boto3.client("dynamodb"),
    boto3.client("stepfunctions"),
    boto3.client("sagemaker"),
    ledger_table=os.environ["LEDGER_TABLE"],
    state_machine_arn=os.environ["STATE_MACHINE_ARN"],
    cooldown_seconds=int(os.environ["COOLDOWN_SECONDS"]),
    candidate_expiry_seconds=int(os.environ["CANDIDATE_EXPIRY_SECONDS"]),
    pending_index=os.environ.get("LEDGER_INDEX", "ByTenant"),
)
configs = PublishedConfigs(
    boto3.client("s3"),
    bucket=os.environ["CONFIG_BUCKET"],
    prefix=os.environ.get("CONFIG_PREFIX", "artifacts/config/pipelines/"),
)


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if is_sqs_batch(event):
        if not event["Records"]:
            return {"batchItemFailures": []}
        configs.forget()
        batch = Batch(trigger, event["Records"], settings, configs)
        # A failed group is reported, never raised for the whole batch: the other groups stay done.
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        return process_partial_response(event=event, record_handler=batch, processor=processor, context=context)
    return handle_event(trigger, event, settings)
