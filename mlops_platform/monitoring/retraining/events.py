"""What an event delivered to the retrain trigger asks for: pure functions of the event.

Each parser returns a Request, an Ignored, a PackageDecision, an Arrival or a Sweep, or raises Malformed.
The kinds of invocation and the reasons of ignored and rejected events are described in
lambda/retrain_trigger/handler.py.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from mlops_platform.monitoring.retraining.model import (
    ALL_MODELS,
    DRIFT_ALARM,
    DRIFT_EVENT,
    MAX_TEXT,
    NEW_DATA,
    PACKAGE_DECISION,
    Arrival,
    Ignored,
    Malformed,
    PackageDecision,
    Request,
    Sweep,
    clipped,
    group_tenants,
)
from mlops_platform.naming import NAME_PATTERN

ALARM_SOURCE = "aws.cloudwatch"
ALARM_DETAIL_TYPE = "CloudWatch Alarm State Change"
DRIFT_DETAIL_TYPE = "Drift Summary"
S3_SOURCE = "aws.s3"
OBJECT_CREATED = "Object Created"
PACKAGE_SOURCE = "aws.sagemaker"
PACKAGE_DETAIL_TYPE = "SageMaker Model Package State Change"
DECIDED_STATUSES = ("Approved", "Rejected")
# What prepare reads from the raw zone (mlops_platform/data/readers.py SUFFIXES): ingested records and
# tenants' files. Anything else there (a marker, a partial upload) never starts a run.
DATA_SUFFIXES = (".jsonl", ".csv", ".parquet")
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
NOT_A_DATA_FILE = "not-a-data-file"
IGNORED_TENANT = "ignored-tenant"
NOT_OBJECT_CREATED = "not-object-created"
LABELS_DATASET = "labels-dataset"
NOT_TRAINED_ON = "not-a-training-dataset"
UNKNOWN_TENANT = "unknown-tenant"
NOT_DECIDED = "not-decided"
FOREIGN_GROUP = "foreign-group"


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
    detail: Any = event.get("detail")  # an object once text() has read from it
    alarm = text(detail, "alarmName", "detail")
    state: Any = detail.get("state")
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
    detail: Any = event.get("detail")  # an object once name() has read from it
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
    if not key.endswith(DATA_SUFFIXES):
        suffixes = ", ".join(DATA_SUFFIXES)
        return Ignored(NEW_DATA, NOT_A_DATA_FILE, f"key does not end with {suffixes}", tenant, evidence)
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


def rejection_of(event: Any) -> tuple[str, dict[str, Any]]:
    """The trigger kind and the evidence a malformed, directly delivered event is recorded under."""
    source = event.get("source") if isinstance(event, dict) else None
    kind = {ALARM_SOURCE: DRIFT_ALARM, PACKAGE_SOURCE: PACKAGE_DECISION}.get(str(source), DRIFT_EVENT)
    event_id = event.get("id") if isinstance(event, dict) else None
    return kind, {"event_id": clipped(event_id), "source": clipped(source)}


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

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """The function's environment, as mlops_constructs/retrain_trigger.py sets it."""
        return cls(
            raw_bucket=environ["RAW_BUCKET"],
            raw_prefix=environ.get("RAW_PREFIX", "raw/"),
            ignored_tenants=frozenset(
                t.strip() for t in environ.get("IGNORED_TENANTS", "example").split(",") if t.strip()
            ),
            alarm_prefix=environ["ALARM_NAME_PREFIX"],
            monitoring_source=environ["MONITORING_SOURCE"],
            group_prefix=environ["PACKAGE_GROUP_PREFIX"],
            labels_dataset=environ.get("LABELS_DATASET") or None,
        )
