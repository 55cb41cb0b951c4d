"""Run outcome: record in the run ledger how each training execution ended, whatever path it took.

EventBridge invokes this function with Step Functions' ``Step Functions Execution Status Change``
events of the training state machine (default bus; the rule passes that state machine's executions
only). The execution's name is the run id, so the record is the run's ``RUN#<run_id>`` / ``RUN``:

* ``SUCCEEDED``, ``FAILED``, ``TIMED_OUT``, ``ABORTED``: ``status`` becomes ``succeeded``, ``failed``,
  ``timed-out`` or ``aborted``, with ``finished_at`` (the execution's stop time) and, unless it
  succeeded, ``failed_state`` (the state whose failure ended it, else the last state entered, from its history),
  ``error`` and ``cause`` (SageMaker's ``FailureReason`` when the cause is a job description);
* ``RUNNING`` after a redrive (``redriveCount`` > 0): ``status`` is ``running`` again and the last
  attempt's end is removed. The first ``RUNNING`` is left to the plan step, which writes the record.

Failures a redrive can fix are not caught in the state machine, so the execution's own end is the
only place every path meets, timeouts and aborts included; hence this function rather than a last
state in the definition. EventBridge delivers at least once and in no particular order, so each
write is conditional on ``redrive_count``: an end of redrive *n* never overwrites redrive *n+1*,
and a late ``RUNNING`` never overwrites the end of its own attempt. A run whose plan never wrote
its record (the plan step failed) gets one here, with the tenant from the execution's input; the
plan step replaces such a record when a redrive plans the run after all.

The Distributed Map's child executions (trials, ``...:execution:<machine>/<label>:<id>``) are not
runs and are ignored. An event that is not such a status change (a missing or malformed field) is
quarantined with its reason in the dead-letter queue; AWS failures raise, so EventBridge's async
retries and the on-failure destination keep the event.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError

DETAIL_TYPE = "Step Functions Execution Status Change"
SOURCE = "aws.states"
FINAL = {"SUCCEEDED": "succeeded", "FAILED": "failed", "TIMED_OUT": "timed-out", "ABORTED": "aborted"}
RUNNING = "RUNNING"
# The execution-level events of GetExecutionHistory that say how it ended, and where their details are.
END_EVENTS = {
    "ExecutionFailed": "executionFailedEventDetails",
    "ExecutionTimedOut": "executionTimedOutEventDetails",
    "ExecutionAborted": "executionAbortedEventDetails",
}
HISTORY_PAGE = 100
CAUSE_MAX = 1000
# Execution names become the run id: the plan's rule (lambda/plan/handler.py RUN_ID_PATTERN).
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,80}")
TENANT_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


class Malformed(Exception):
    """An event no retry can record."""


@dataclass(frozen=True)
class StatusChange:
    execution_arn: str
    run_id: str
    status: str
    redrive_count: int
    started_at: str | None
    stopped_at: str | None
    tenant: str | None
    error: str | None
    cause: str | None


def _time(milliseconds: Any) -> str | None:
    """Step Functions' epoch milliseconds as the ledger's ISO 8601 (``2026-11-24T12:00:00.000Z``)."""
    if isinstance(milliseconds, bool) or not isinstance(milliseconds, int | float):
        return None
    moment = datetime.fromtimestamp(milliseconds / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _tenant(execution_input: Any) -> str | None:
    try:
        document = json.loads(execution_input) if isinstance(execution_input, str) else None
    except ValueError:
        return None
    tenant = document.get("tenant") if isinstance(document, dict) else None
    return tenant if isinstance(tenant, str) and TENANT_PATTERN.fullmatch(tenant) else None


def parse_event(event: Any, state_machine_arn: str) -> StatusChange:
    if not isinstance(event, dict) or event.get("source") != SOURCE or event.get("detail-type") != DETAIL_TYPE:
        raise Malformed(f"not a {DETAIL_TYPE!r} event of {SOURCE}")
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise Malformed("the event has no detail")
    if detail.get("stateMachineArn") != state_machine_arn:
        raise Malformed(f"state machine {detail.get('stateMachineArn')!r} is not {state_machine_arn!r}")
    arn, name, status = detail.get("executionArn"), detail.get("name"), detail.get("status")
    if not isinstance(arn, str) or not isinstance(name, str) or not RUN_ID_PATTERN.fullmatch(name):
        raise Malformed(f"execution {arn!r} named {name!r} is not a training run")
    if status not in FINAL and status != RUNNING:
        raise Malformed(f"status {status!r} is not one of {', '.join([*FINAL, RUNNING])}")
    redrive_count = detail.get("redriveCount") or 0
    if isinstance(redrive_count, bool) or not isinstance(redrive_count, int) or redrive_count < 0:
        raise Malformed(f"redriveCount {redrive_count!r} is not a whole number")
    return StatusChange(
        execution_arn=arn,
        run_id=name,
        status=status,
        redrive_count=redrive_count,
        started_at=_time(detail.get("startDate")),
        stopped_at=_time(detail.get("stopDate")),
        tenant=_tenant(detail.get("input")),
        error=detail.get("error") if isinstance(detail.get("error"), str) else None,
        cause=detail.get("cause") if isinstance(detail.get("cause"), str) else None,
    )


def is_map_child(event: Any, state_machine_arn: str) -> bool:
    """A Distributed Map's child execution: ``...:execution:<machine>/<map run label>:<id>``."""
    detail = event.get("detail") if isinstance(event, dict) else None
    arn = detail.get("executionArn") if isinstance(detail, dict) else None
    machine = state_machine_arn.rsplit(":", 1)[-1]
    return isinstance(arn, str) and f":execution:{machine}/" in arn


def short_cause(cause: str | None) -> str | None:
    """The cause as a person reads it: SageMaker's ``FailureReason`` out of a job description, at most 1000 chars."""
    if not cause:
        return None
    try:
        document = json.loads(cause)
    except ValueError:
        document = None
    if isinstance(document, dict):
        cause = str(document.get("FailureReason") or document.get("errorMessage") or cause)
    return " ".join(cause.split())[:CAUSE_MAX]


# Events that mark where a state failed; in a Map, other iterations go on entering states after it.
FAILURE_EVENTS = frozenset(
    f"{kind}{outcome}"
    for kind in ("Task", "LambdaFunction", "Activity")
    for outcome in ("Failed", "TimedOut", "StartFailed", "SubmitFailed", "ScheduleFailed")
)


def _failed_state(newest_first: list[dict[str, Any]]) -> str | None:
    """The Fail state the execution entered last; else the state of the newest failure event (the
    StateEntered its previousEventId chain leads back to). Caught failures lead to a Fail state."""
    for event in newest_first:
        if event.get("type") == "FailStateEntered":
            return event.get("stateEnteredEventDetails", {}).get("name")
    by_id = {event.get("id"): event for event in newest_first}
    for event in newest_first:
        if str(event.get("type", "")) in FAILURE_EVENTS:
            previous = by_id.get(event.get("previousEventId"))
            while previous is not None:
                if str(previous.get("type", "")).endswith("StateEntered"):
                    return previous.get("stateEnteredEventDetails", {}).get("name")
                previous = by_id.get(previous.get("previousEventId"))
    return None


def where_it_ended(events: list[dict[str, Any]]) -> tuple[str | None, str | None, str | None]:
    """(the state that failed, else the last state entered; the execution's error; its cause) from history
    events in any order."""
    newest_first = sorted(events, key=lambda event: event.get("id", 0), reverse=True)
    state = _failed_state(newest_first) or next(
        (
            event.get("stateEnteredEventDetails", {}).get("name")
            for event in newest_first
            if str(event.get("type", "")).endswith("StateEntered")
        ),
        None,
    )
    for event in newest_first:
        details_key = END_EVENTS.get(str(event.get("type")))
        if details_key:
            details = event.get(details_key) or {}
            return state, details.get("error"), details.get("cause")
    return state, None, None


class Recorder:
    def __init__(self, dynamodb: Any, sqs: Any, stepfunctions: Any, *, table: str, queue_url: str, machine: str):
        self.dynamodb = dynamodb
        self.sqs = sqs
        self.stepfunctions = stepfunctions
        self.table = table
        self.queue_url = queue_url
        self.machine = machine
        self.serializer = TypeSerializer()

    def __call__(self, event: Any) -> str:
        if is_map_child(event, self.machine):
            return "ignored"  # a trial: the Map and evaluation account for it
        try:
            change = parse_event(event, self.machine)
        except Malformed as problem:
            self.quarantine(event, str(problem))
            return "quarantined"
        if change.status == RUNNING and change.redrive_count == 0:
            return "ignored"  # the plan step records the run when it starts
        return self.record(change)

    def record(self, change: StatusChange) -> str:
        values: dict[str, Any] = {
            "execution_arn": change.execution_arn,
            "redrive_count": change.redrive_count,
            "status": FINAL.get(change.status, "running"),
        }
        removed: list[str] = []
        if change.status == RUNNING:
            removed = ["finished_at", "failed_state", "error", "cause"]
        else:
            values["finished_at"] = change.stopped_at
            if change.status != "SUCCEEDED":
                state, error, cause = self.ending(change.execution_arn)
                values |= {
                    "failed_state": state,
                    "error": error or change.error,
                    "cause": short_cause(cause or change.cause),
                }
            else:
                removed = ["failed_state", "error", "cause"]
        # A record the plan never wrote (the plan step failed) still says whose run it was.
        created = {"kind": "run", "run_id": change.run_id, "started_at": change.started_at, "tenant": change.tenant}
        if change.tenant and change.started_at:
            created |= {"gsi1pk": f"TENANT#{change.tenant}", "gsi1sk": f"RUN#{change.started_at}#{change.run_id}"}
        created = {name: value for name, value in created.items() if value is not None}
        values = {name: value for name, value in values.items() if value is not None}
        names = {f"#s{index}": name for index, name in enumerate(values)}
        names |= {f"#c{index}": name for index, name in enumerate(created)}
        names |= {f"#r{index}": name for index, name in enumerate(removed)}
        names["#count"] = "redrive_count"
        expression = "SET " + ", ".join(
            [f"#s{index} = :s{index}" for index in range(len(values))]
            + [f"#c{index} = if_not_exists(#c{index}, :c{index})" for index in range(len(created))]
        )
        if removed:
            expression += " REMOVE " + ", ".join(f"#r{index}" for index in range(len(removed)))
        attribute_values = {f":s{index}": value for index, value in enumerate(values.values())}
        attribute_values |= {f":c{index}": value for index, value in enumerate(created.values())}
        attribute_values[":count"] = change.redrive_count
        # The end of attempt n may overwrite anything up to attempt n; RUNNING of attempt n only attempts before it.
        newer = "<=" if change.status != RUNNING else "<"
        try:
            self.dynamodb.update_item(
                TableName=self.table,
                Key={"pk": {"S": f"RUN#{change.run_id}"}, "sk": {"S": "RUN"}},
                UpdateExpression=expression,
                ConditionExpression=f"attribute_not_exists(#count) OR #count {newer} :count",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={
                    name: self.serializer.serialize(value) for name, value in attribute_values.items()
                },
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            logger.info("a later attempt is already recorded", extra={"run_id": change.run_id})
            return "stale"
        logger.info("recorded", extra={"run_id": change.run_id, "status": values["status"]})
        return "recorded"

    def ending(self, execution_arn: str) -> tuple[str | None, str | None, str | None]:
        """Where and why the execution ended: the newest page of its history (newest first)."""
        response = self.stepfunctions.get_execution_history(
            executionArn=execution_arn, reverseOrder=True, maxResults=HISTORY_PAGE, includeExecutionData=True
        )
        return where_it_ended(response.get("events", []))

    def quarantine(self, event: Any, reason: str) -> None:
        self.sqs.send_message(
            QueueUrl=self.queue_url,
            MessageBody=json.dumps({"reason": reason, "event": event}, default=str),
            MessageAttributes={"reason": {"DataType": "String", "StringValue": "not-a-run-status-change"}},
        )
        logger.warning("quarantined", extra={"reason": reason})


METRICS = {"recorded": "RunOutcomesRecorded", "stale": "RunOutcomesStale", "quarantined": "EventsQuarantined"}
# "ignored" (a run's first RUNNING, a trial's events) is logged, not counted.

logger = Logger()
metrics = Metrics()
recorder = Recorder(
    boto3.client("dynamodb"),
    boto3.client("sqs"),
    boto3.client("stepfunctions"),
    table=os.environ["LEDGER_TABLE"],
    queue_url=os.environ["QUARANTINE_QUEUE_URL"],
    machine=os.environ["STATE_MACHINE_ARN"],
)


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, str]:
    outcome = recorder(event)
    if outcome in METRICS:
        metrics.add_metric(METRICS[outcome], MetricUnit.Count, 1)
    return {"outcome": outcome}
