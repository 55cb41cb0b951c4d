"""Where and why an execution ended, from its history (GetExecutionHistory events) and its status change."""

from __future__ import annotations

import json
from typing import Any

# The execution-level events of GetExecutionHistory that say how it ended, and where their details are.
END_EVENTS = {
    "ExecutionFailed": "executionFailedEventDetails",
    "ExecutionTimedOut": "executionTimedOutEventDetails",
    "ExecutionAborted": "executionAbortedEventDetails",
}
CAUSE_MAX = 1000


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
