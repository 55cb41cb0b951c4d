"""The run's request as the plan reads it: the execution's input (or a flat request), checked, as a ``RunRequest``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from mlops_platform.naming import NAME_PATTERN as TENANT_PATTERN
from mlops_platform.runs.names import RUN_ID_PATTERN
from mlops_platform.training.plan.errors import InvalidRunRequest

DAY_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}")
EXECUTION_ARN = re.compile(r"arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:execution:[A-Za-z0-9_.-]+:[A-Za-z0-9_-]{1,80}")
REQUEST_KEYS = ("tenant", "run_id", "day", "models", "started_at")
WRAPPER_KEYS = ("request", "run_id", "started_at", "execution_arn")
EXECUTION_INPUT_KEYS = ("tenant", "models")
EXAMPLE_INPUT = '{"tenant": "example", "models": ["xgboost"]}'


@dataclass(frozen=True)
class RunRequest:
    tenant: str
    run_id: str
    day: str
    started_at: str
    models: tuple[str, ...] | None
    execution_arn: str | None = None


def parse_request(event: Any) -> RunRequest:
    """The run's request, checked; raises ``InvalidRunRequest`` with one sentence.

    Two shapes: the state machine's ``{"request": <the execution's input>, "run_id": <its name>,
    "started_at": <its start time>}``, where the execution's input is ``{"tenant", "models"?}``; or
    a flat ``{"tenant", "run_id", "day", "models"?, "started_at"?}``.
    """
    if not isinstance(event, dict):
        raise InvalidRunRequest(f"the input must be a JSON object, not {type(event).__name__}")
    if "request" in event:
        unknown = sorted(set(event) - set(WRAPPER_KEYS))
        if unknown:
            raise InvalidRunRequest(f"unexpected keys {unknown} in the input; allowed: {list(WRAPPER_KEYS)}")
        execution_input = event["request"]
        if not isinstance(execution_input, dict):
            raise InvalidRunRequest(f"the execution's input must be a JSON object such as {EXAMPLE_INPUT}")
        unknown = sorted(set(execution_input) - set(EXECUTION_INPUT_KEYS))
        if unknown:
            raise InvalidRunRequest(
                f"unexpected keys {unknown} in the execution's input; allowed: {list(EXECUTION_INPUT_KEYS)}"
            )
        execution_arn = event.get("execution_arn")
        if execution_arn is not None and not (
            isinstance(execution_arn, str) and EXECUTION_ARN.fullmatch(execution_arn)
        ):
            raise InvalidRunRequest(f"execution_arn {execution_arn!r} must be a Step Functions execution ARN")
        event = {
            **execution_input,
            "run_id": event.get("run_id"),
            "started_at": event.get("started_at"),
            "execution_arn": execution_arn,
        }
    else:
        unknown = sorted(set(event) - set(REQUEST_KEYS))
        if unknown:
            raise InvalidRunRequest(f"unexpected keys {unknown} in the input; allowed: {list(REQUEST_KEYS)}")
    tenant = event.get("tenant")
    if not isinstance(tenant, str) or not TENANT_PATTERN.fullmatch(tenant):
        raise InvalidRunRequest(f"tenant {tenant!r} must be 1-63 lowercase letters, digits or hyphens")
    run_id = event.get("run_id")
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.fullmatch(run_id):
        raise InvalidRunRequest(f"run_id {run_id!r} must be 1-80 letters, digits, hyphens or underscores")
    started_at = event.get("started_at")
    if started_at is not None and not _is_timestamp(started_at):
        raise InvalidRunRequest(f"started_at {started_at!r} must be an ISO 8601 time such as 2026-01-31T12:00:00Z")
    day = event.get("day", started_at[:10] if isinstance(started_at, str) else None)
    if not isinstance(day, str) or not _is_day(day):
        raise InvalidRunRequest(f"day {day!r} must be a date written yyyy-mm-dd (the execution's start date)")
    models = event.get("models")
    if models is not None:
        if (
            not isinstance(models, list)
            or not models
            or not all(isinstance(name, str) for name in models)
            or len(set(models)) != len(models)
        ):
            raise InvalidRunRequest(f"models {models!r} must be a non-empty list of distinct model names")
        models = tuple(models)
    return RunRequest(
        tenant=tenant,
        run_id=run_id,
        day=day,
        started_at=started_at if isinstance(started_at, str) else day,
        models=models,
        execution_arn=event.get("execution_arn"),
    )


def _is_day(value: Any) -> bool:
    if not isinstance(value, str) or not DAY_PATTERN.fullmatch(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_timestamp(value: Any) -> bool:
    if not isinstance(value, str) or not _is_day(value[:10]):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True
