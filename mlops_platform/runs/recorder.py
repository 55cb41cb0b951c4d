"""The run's record in the ledger (``RUN#<run_id>`` / ``RUN``), updated by each status change of its execution.

Each write is conditional on ``redrive_count``: an end of redrive *n* never overwrites redrive *n+1*, and a
late ``RUNNING`` never overwrites the end of its own attempt (mlops_platform/runs/outcome.py says why).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from mlops_platform.aws import Log, condition_failed, string_attributes, to_item
from mlops_platform.runs.history import short_cause, where_it_ended
from mlops_platform.runs.outcome import FINAL, RUNNING, Malformed, StatusChange, is_map_child, parse_event

HISTORY_PAGE = 100


@dataclass(frozen=True)
class Settings:
    """The run-outcome function's environment (mlops_constructs/run_outcomes.py sets it), read by
    ``mlops_platform.environment.read_settings``."""

    ledger_table: str
    quarantine_queue_url: str
    state_machine_arn: str


class Recorder:
    def __init__(self, dynamodb: Any, sqs: Any, stepfunctions: Any, settings: Settings, *, log: Log):
        self.dynamodb = dynamodb
        self.sqs = sqs
        self.stepfunctions = stepfunctions
        self.table = settings.ledger_table
        self.queue_url = settings.quarantine_queue_url
        self.machine = settings.state_machine_arn
        self.log = log

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
                ExpressionAttributeValues=to_item(attribute_values),
            )
        except ClientError as error:
            if not condition_failed(error):
                raise
            self.log.info("a later attempt is already recorded", extra={"run_id": change.run_id})
            return "stale"
        self.log.info("recorded", extra={"run_id": change.run_id, "status": values["status"]})
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
            MessageAttributes=string_attributes(reason="not-a-run-status-change"),
        )
        self.log.warning("quarantined", extra={"reason": reason})
