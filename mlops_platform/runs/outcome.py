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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlops_platform.aws import iso
from mlops_platform.naming import NAME_PATTERN as TENANT_PATTERN
from mlops_platform.runs.names import RUN_ID_PATTERN

DETAIL_TYPE = "Step Functions Execution Status Change"
SOURCE = "aws.states"
FINAL = {"SUCCEEDED": "succeeded", "FAILED": "failed", "TIMED_OUT": "timed-out", "ABORTED": "aborted"}
RUNNING = "RUNNING"


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
    return iso(datetime.fromtimestamp(milliseconds / 1000, tz=UTC))


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
