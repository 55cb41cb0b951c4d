"""Training progress as rows of the progress table: what each event writes, and under which condition.

EventBridge brings two kinds of event (progress_store.py writes them; lambda/progress adapts it):

* the environment's progress bus: ``Training Progress`` events, one per reported round, sent by the
  training container (mlops_training/progress.py). Each becomes two rows under ``RUN#<run_id>``:

  - the round, ``CURVE#<trial>#<attempt>#<epoch, 7 digits>``: one attempt's curve, in epoch order;
  - the attempt's summary, ``TRIAL#<trial>#ATTEMPT#<attempt>``: its latest round and the round its
    model would keep (``kept``), rewritten by each later round.

  The *attempt* is one run of the trial's container (its start time, ``20261124T235930.123Z``): a
  spot restart or a Step Functions retry starts a new one, so a retried trial's curve never merges
  with the first one's. An event without one (an image before attempts) counts as the attempt of
  its training job. The summaries and the statuses share the ``TRIAL#`` prefix and the curves sit
  apart, so ``mlops progress`` reads a run of 10,000 trials' standings in one small
  query and fetches only the curves it draws.
* the default bus: SageMaker's ``SageMaker Training Job State Change`` for the platform's jobs. Each
  updates the trial's row ``RUN#<run_id>`` / ``TRIAL#<trial>#STATUS``; the identity comes from the
  job's ``mlops_*`` hyperparameters.

EventBridge delivers at least once and in no particular order, so every write is conditional:

* a round is written only if its row is absent: a redelivered event finds the row and changes nothing;
* an attempt's summary is written only over one of an earlier round: a late event never moves it back;
* a status overwrites the stored one only if it is newer: ordered by the event's ``time``, then (events
  of the same second) the job's ``LastModifiedTime``, then the status itself (InProgress, Stopping,
  then a terminal status). A late or repeated event never moves a trial's status backwards.

An event that cannot be understood (an unknown kind, a missing or wrongly typed field, a job outside
the platform's prefix or without its ``mlops_*`` hyperparameters) raises Malformed with its reason.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

PROGRESS_DETAIL_TYPE = "Training Progress"
SAGEMAKER_SOURCE = "aws.sagemaker"
STATE_CHANGE_DETAIL_TYPE = "SageMaker Training Job State Change"
EPOCH_DIGITS = 7
MAX_EPOCH = 10**EPOCH_DIGITS - 1
CURVE_PREFIX = "CURVE#"
TRIAL_PREFIX = "TRIAL#"
# Primary status order for events of the same moment: a terminal status comes last.
STATUS_RANK = {"InProgress": 0, "Stopping": 1, "Completed": 2, "Failed": 2, "Stopped": 2}
IDENTITY_HYPERPARAMETERS = {
    "run_id": "mlops_run_id",
    "tenant": "mlops_tenant",
    "model": "mlops_model",
    "trial": "mlops_trial",
}
# run_id and trial are parts of the table's keys, where "#" separates the parts.
KEY_PART_PATTERN = re.compile(r"[^#\s]{1,128}")
# What a DynamoDB number can hold: 38 significant digits, magnitude 1E-130 to below 1E+126.
DYNAMODB_MIN = Decimal("1E-130")
DYNAMODB_LIMIT = Decimal("1E+126")
DYNAMODB_DIGITS = 38

# Quarantine reasons: the message attribute "reason" on the quarantine queue.
UNKNOWN_EVENT = "unknown-event"
MISSING_FIELD = "missing-field"
INVALID_FIELD = "invalid-field"
FOREIGN_JOB = "foreign-job"
MISSING_HYPERPARAMETERS = "missing-hyperparameters"


class Malformed(Exception):
    """An event that no retry can record; ``reason`` is one of the quarantine reasons above."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Write:
    """One conditional put: the row, and the condition that keeps a retry or a late event harmless."""

    kind: str  # "progress", "attempt" or "status"
    item: dict[str, Any]
    condition: str
    names: dict[str, str] | None = None
    values: dict[str, Any] | None = None


def field(container: dict[str, Any], name: str, kind: type, where: str = "detail") -> Any:
    """``container[name]``, which must be present and a ``kind`` (a boolean is not an int)."""
    value = container.get(name)
    if value is None:
        raise Malformed(MISSING_FIELD, f"{where}.{name} is missing")
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise Malformed(INVALID_FIELD, f"{where}.{name} must be a {kind.__name__}, not {type(value).__name__}")
    return value


def text(container: dict[str, Any], name: str, where: str = "detail") -> str:
    value = field(container, name, str, where)
    if not value.strip():
        raise Malformed(INVALID_FIELD, f"{where}.{name} is empty")
    return value


def key_part(container: dict[str, Any], name: str, where: str = "detail") -> str:
    value = text(container, name, where)
    if not KEY_PART_PATTERN.fullmatch(value):
        raise Malformed(INVALID_FIELD, f"{where}.{name} {value!r} must be 1-128 characters without '#' or spaces")
    return value


def timestamp(container: dict[str, Any], name: str, where: str = "detail") -> datetime:
    """An ISO 8601 moment with its time zone, such as ``2026-11-24T23:59:30.123Z``."""
    value = text(container, name, where)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Malformed(INVALID_FIELD, f"{where}.{name} {value!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise Malformed(INVALID_FIELD, f"{where}.{name} {value!r} has no time zone")
    return moment


def metric_value(name: str, value: Any) -> Decimal | None:
    """A metric as DynamoDB stores it: a Decimal, or None for a round where it was not finite."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Malformed(INVALID_FIELD, f"detail.metrics[{name!r}] must be a number or null, not {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise Malformed(INVALID_FIELD, f"detail.metrics[{name!r}] is {value}; send null for a non-finite value")
    number = Decimal(str(value))  # str: the shortest decimal that reads back as the same float
    magnitude = abs(number)
    digits = len(number.as_tuple().digits)
    if magnitude and not (DYNAMODB_MIN <= magnitude < DYNAMODB_LIMIT and digits <= DYNAMODB_DIGITS):
        raise Malformed(INVALID_FIELD, f"detail.metrics[{name!r}] = {value} is beyond what DynamoDB can store")
    return number


def metrics_of(detail: dict[str, Any], where: str = "detail") -> dict[str, Decimal | None]:
    metrics = field(detail, "metrics", dict, where)
    converted = {}
    for name, value in metrics.items():
        if not name.strip():
            raise Malformed(INVALID_FIELD, f"{where}.metrics has an empty metric name")
        converted[name] = metric_value(name, value)
    return converted


def epoch_of(container: dict[str, Any], where: str = "detail") -> int:
    epoch = field(container, "epoch", int, where)
    if not 0 <= epoch <= MAX_EPOCH:
        raise Malformed(INVALID_FIELD, f"{where}.epoch {epoch} must be between 0 and {MAX_EPOCH}")
    return epoch


def check_job_name(name: str, job_prefix: str, where: str) -> None:
    if not name.startswith(f"{job_prefix}-"):
        raise Malformed(FOREIGN_JOB, f"{where} {name!r} does not start with {job_prefix + '-'!r}")


def progress_writes(detail: Any, job_prefix: str) -> list[Write]:
    """A ``Training Progress`` detail as its round's row (written only if absent) and its attempt's summary."""
    if not isinstance(detail, dict):
        raise Malformed(INVALID_FIELD, f"detail must be an object, not {type(detail).__name__}")
    run_id = key_part(detail, "run_id")
    trial = key_part(detail, "trial")
    tenant = text(detail, "tenant")
    model = text(detail, "model")
    job_name = text(detail, "training_job_name")
    check_job_name(job_name, job_prefix, "detail.training_job_name")
    attempt = key_part(detail, "attempt") if detail.get("attempt") is not None else job_name
    epoch = epoch_of(detail)
    metrics = metrics_of(detail)
    kept = detail.get("kept")
    if kept is None:  # an image before kept rounds: the round itself
        kept_epoch, kept_metrics = epoch, metrics
    elif isinstance(kept, dict):
        kept_epoch, kept_metrics = epoch_of(kept, "detail.kept"), metrics_of(kept, "detail.kept")
    else:
        raise Malformed(INVALID_FIELD, f"detail.kept must be an object, not {type(kept).__name__}")
    objective = text(detail, "objective") if detail.get("objective") is not None else None
    timestamp(detail, "time")
    identity = {
        "run_id": run_id,
        "tenant": tenant,
        "model": model,
        "trial": trial,
        "attempt": attempt,
        "training_job_name": job_name,
    }
    round_row = Write(
        kind="progress",
        item={
            "pk": f"RUN#{run_id}",
            "sk": f"{CURVE_PREFIX}{trial}#{attempt}#{epoch:0{EPOCH_DIGITS}d}",
            "kind": "progress",
            **identity,
            "epoch": epoch,
            "metrics": metrics,
            "time": detail["time"],
        },
        condition="attribute_not_exists(sk)",
    )
    summary = Write(
        kind="attempt",
        item={
            "pk": f"RUN#{run_id}",
            "sk": f"{TRIAL_PREFIX}{trial}#ATTEMPT#{attempt}",
            "kind": "attempt",
            **identity,
            "objective": objective,
            "epoch": epoch,
            "metrics": metrics,
            "kept_epoch": kept_epoch,
            "kept_metrics": kept_metrics,
            "time": detail["time"],
        },
        condition="attribute_not_exists(sk) OR #epoch < :epoch",
        names={"#epoch": "epoch"},
        values={":epoch": epoch},
    )
    return [round_row, summary]


def epoch_milliseconds(value: Any) -> int:
    """SageMaker's ``LastModifiedTime``: epoch milliseconds, a number or (in AWS's sample) a string.

    It only breaks ties between events of the same second, so a value in another form counts as 0
    rather than quarantining a real status change.
    """
    if isinstance(value, bool):
        return 0
    if isinstance(value, int | float) and math.isfinite(value) and value >= 0:
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return 0


def sequence(moment: datetime, last_modified_ms: int, status: str) -> str:
    """A string that sorts status events oldest first: the event's time, then the job's, then the status."""
    instant = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{instant}#{min(last_modified_ms, 10**15 - 1):015d}#{STATUS_RANK[status]}"


def status_write(event: dict[str, Any], job_prefix: str) -> Write:
    """A ``SageMaker Training Job State Change`` as its trial's status row, written only over an older one."""
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise Malformed(INVALID_FIELD, f"detail must be an object, not {type(detail).__name__}")
    job_name = text(detail, "TrainingJobName")
    check_job_name(job_name, job_prefix, "detail.TrainingJobName")
    status = text(detail, "TrainingJobStatus")
    if status not in STATUS_RANK:
        raise Malformed(INVALID_FIELD, f"detail.TrainingJobStatus {status!r} is not one of {sorted(STATUS_RANK)}")
    hyperparameters = detail.get("HyperParameters")
    if not isinstance(hyperparameters, dict):
        raise Malformed(MISSING_HYPERPARAMETERS, f"job {job_name!r} has no HyperParameters")
    absent = sorted(
        key
        for key in IDENTITY_HYPERPARAMETERS.values()
        if not isinstance(hyperparameters.get(key), str) or not hyperparameters[key].strip()
    )
    if absent:
        raise Malformed(MISSING_HYPERPARAMETERS, f"job {job_name!r} lacks the hyperparameters {absent}")
    identity = {
        name: key_part(hyperparameters, key, "detail.HyperParameters")
        if name in ("run_id", "trial")
        else text(hyperparameters, key, "detail.HyperParameters")
        for name, key in IDENTITY_HYPERPARAMETERS.items()
    }
    moment = timestamp(event, "time", "event")
    secondary = detail.get("SecondaryStatus")
    failure = detail.get("FailureReason")
    order = sequence(moment, epoch_milliseconds(detail.get("LastModifiedTime")), status)
    return Write(
        kind="status",
        item={
            "pk": f"RUN#{identity['run_id']}",
            "sk": f"{TRIAL_PREFIX}{identity['trial']}#STATUS",
            "kind": "status",
            **identity,
            "training_job_name": job_name,
            "status": status,
            "secondary_status": secondary if isinstance(secondary, str) else None,
            "failure_reason": failure if isinstance(failure, str) else None,
            "updated_at": event["time"],
            "sequence": order,
        },
        condition="attribute_not_exists(sk) OR #sequence < :sequence",
        names={"#sequence": "sequence"},
        values={":sequence": order},
    )


def parse_event(event: Any, *, event_source: str, job_prefix: str) -> list[Write]:
    """What an EventBridge event asks to write, the row that names its outcome first; raises Malformed otherwise."""
    if not isinstance(event, dict):
        raise Malformed(INVALID_FIELD, f"the event must be an object, not {type(event).__name__}")
    kind = (event.get("source"), event.get("detail-type"))
    if kind == (event_source, PROGRESS_DETAIL_TYPE):
        return progress_writes(event.get("detail"), job_prefix)
    if kind == (SAGEMAKER_SOURCE, STATE_CHANGE_DETAIL_TYPE):
        return [status_write(event, job_prefix)]
    raise Malformed(
        UNKNOWN_EVENT,
        f"source {kind[0]!r} with detail-type {kind[1]!r}; expected {event_source!r} with "
        f"{PROGRESS_DETAIL_TYPE!r} or {SAGEMAKER_SOURCE!r} with {STATE_CHANGE_DETAIL_TYPE!r}",
    )
