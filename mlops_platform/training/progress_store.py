"""The progress table's writer: each event's rows written under their conditions, or the event quarantined.

An event that cannot be understood (progress_rows.py, Malformed) is quarantined: sent to the quarantine
queue with its reason, logged; retrying cannot fix it. A DynamoDB or SQS failure raises instead: Lambda
retries the event, then hands it to the function's on-failure destination (the same queue), so no event is
silently dropped.
"""

from __future__ import annotations

import json
import logging
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from mlops_platform.aws import Log, condition_failed, string_attributes, to_item
from mlops_platform.training.progress_rows import Malformed, Write, parse_event


@dataclass
class Recorder:
    """Writes one event's row, or quarantines the event; returns the outcome, raises on AWS failures."""

    dynamodb: Any
    sqs: Any
    _: KW_ONLY
    table_name: str
    quarantine_queue_url: str
    event_source: str
    job_prefix: str
    logger: Log = field(default_factory=lambda: logging.getLogger(__name__))

    def __call__(self, event: Any) -> str:
        try:
            writes = parse_event(event, event_source=self.event_source, job_prefix=self.job_prefix)
        except Malformed as problem:
            self.quarantine(event, problem)
            return "quarantined"
        # In order: a failure after the round's row raises, and the retry finds that row and
        # writes the summary it missed.
        outcomes = [self.put(write) for write in writes]
        return outcomes[0]

    def put(self, write: Write) -> str:
        """``<kind>-recorded``, or ``<kind>-skipped`` when the condition kept the stored row."""
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "Item": to_item(write.item),
            "ConditionExpression": write.condition,
        }
        if write.names:
            request["ExpressionAttributeNames"] = write.names
        if write.values:
            request["ExpressionAttributeValues"] = to_item(write.values)
        try:
            self.dynamodb.put_item(**request)
        except ClientError as error:
            if not condition_failed(error):
                raise
            self.logger.info(
                "already recorded" if write.kind == "progress" else f"stale {write.kind} ignored",
                extra={"pk": write.item["pk"], "sk": write.item["sk"]},
            )
            return f"{write.kind}-skipped"
        self.logger.info("recorded", extra={"pk": write.item["pk"], "sk": write.item["sk"]})
        return f"{write.kind}-recorded"

    def quarantine(self, event: Any, problem: Malformed) -> None:
        body = {"reason": problem.reason, "detail": problem.detail, "event": event}
        self.sqs.send_message(
            QueueUrl=self.quarantine_queue_url,
            MessageBody=json.dumps(body, default=str),
            MessageAttributes=string_attributes(reason=problem.reason),
        )
        self.logger.warning(
            "quarantined",
            extra={
                "reason": problem.reason,
                "detail": problem.detail,
                "event_id": event.get("id") if isinstance(event, dict) else None,
            },
        )
