"""Scoring worker: score the queued asynchronous requests and record their outcomes.

The scoring API (service.py) records each request as ``pending`` and then queues
``{"id", "endpoint", "instances", "explain"}``. SQS invokes lambda/scoring/worker.py with batches of those
messages and ReportBatchItemFailures, so each message succeeds or fails alone. For each message:

* **malformed** (not JSON, no valid id, an unknown endpoint, bad instances, or an id with no record):
  no retry can fix it. Its record, when there is one, is marked ``failed`` with the reason; then the
  exact body is copied to the dead-letter queue with the message attributes ``reason`` (one line)
  and ``code``, and the message counts as processed. Never dropped silently.
* **already finished** (``succeeded`` or ``failed``): skipped. SQS delivers at least once; a
  redelivery must not score into the table twice.
* **scored**: the record becomes ``succeeded`` with ``result`` (the predictions as a JSON string),
  ``variant`` and ``finished_at``, on condition that it is still pending: a duplicate delivery that
  raced this one loses and changes nothing.
* **refused by the model** (the container's 4xx) or **answered outside its contract**: ``failed``
  with the reason; the same input would fail again.
* **transient** (throttling, the container's 5xx, the endpoint missing or not InService, timeouts):
  the message is reported failed so that SQS retries it after its visibility timeout, until its
  ``ApproximateReceiveCount`` reaches ``MAX_RECEIVE_COUNT`` (the queue's redrive maxReceiveCount).

Giving up, on that last attempt: the record is marked ``failed`` with ``gave up after N attempts:
<reason>``, the body is copied to the dead-letter queue (``code`` ``gave-up``), and the message counts
as processed, so SQS deletes it. Raising instead would let the redrive policy move it to the
dead-letter queue, but without a reason, and a later redrive of it would only find a finished record
and skip it: the record, not the queue, is the source of truth for the caller. Raising stays the
fallback: if marking the record or copying the message fails, the error is raised, SQS retries, and
at the limit its redrive moves the message to the dead-letter queue unchanged.

What remains: a message whose every attempt fails before its record can be marked (DynamoDB
unavailable throughout, or the function timing out) reaches the dead-letter queue through the
redrive while its record stays ``pending`` until its TTL. The ``Errors`` metric and the dead-letter
queue's depth show it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from mlops_platform import strict_json
from mlops_platform.aws import Log, string_attributes
from mlops_platform.serving.api.endpoint import REFUSED, UNREADABLE, ScoringFailure, invoke_endpoint
from mlops_platform.serving.api.request import (
    InvalidRequest,
    ScoringRequest,
    UnknownEndpoint,
    compact,
    is_tracking_id,
    one_line,
    parse_request,
)
from mlops_platform.serving.api.results import FAILED, SUCCEEDED, TERMINAL, Results

# Quarantine codes: the message attribute "code" on the dead-letter queue.
MALFORMED_JSON = "malformed-json"
INVALID_ID = "invalid-id"
UNKNOWN_ENDPOINT = "unknown-endpoint"
INVALID_REQUEST = "invalid-request"
UNKNOWN_ID = "unknown-id"
GAVE_UP = "gave-up"
# What became of a message (besides REFUSED, UNREADABLE and GAVE_UP): the handler counts each in its metric.
SCORED = "scored"
DUPLICATE = "duplicate"
QUARANTINED = "quarantined"
RESULT_TOO_LARGE = "result-too-large"
# DynamoDB's item limit is 400 KB; leave room for the other attributes.
MAX_RESULT_BYTES = 350_000


class Malformed(Exception):
    """A message that no retry can score; ``tracking_id`` is its id when it has a valid one."""

    def __init__(self, code: str, reason: str, tracking_id: str | None = None):
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = one_line(reason)
        self.tracking_id = tracking_id


@dataclass(frozen=True)
class QueuedMessage:
    """What the worker reads of one SQS message."""

    message_id: str
    body: str
    receive_count: int  # ApproximateReceiveCount: this delivery's attempt, from 1


@dataclass(frozen=True)
class Job:
    tracking_id: str
    request: ScoringRequest


def parse_message(
    body: str, endpoints: dict[str, str], max_instances: int, variants: Mapping[str, Sequence[str]] | None = None
) -> Job:
    """A queued request as a Job; raises Malformed with the reason it cannot be scored."""
    try:
        payload = strict_json.decode(body)
    except ValueError as error:
        raise Malformed(MALFORMED_JSON, f"the body is not valid JSON: {error}") from None
    if not isinstance(payload, dict):
        raise Malformed(MALFORMED_JSON, f"the body must be a JSON object, not a JSON {type(payload).__name__}")
    tracking_id = payload.get("id")
    if not isinstance(tracking_id, str) or not is_tracking_id(tracking_id):
        raise Malformed(INVALID_ID, f"'id' must be a tracking id (a UUID4), not {one_line(repr(tracking_id), 60)}")
    try:
        request = parse_request(
            {key: value for key, value in payload.items() if key not in ("id", "endpoint")},
            payload.get("endpoint"),
            endpoints,
            max_instances,
            variants,
        )
    except UnknownEndpoint as error:
        raise Malformed(UNKNOWN_ENDPOINT, error.reason, tracking_id) from None
    except InvalidRequest as error:
        raise Malformed(INVALID_REQUEST, error.reason, tracking_id) from None
    return Job(tracking_id=tracking_id, request=request)


@dataclass
class Worker:
    """Handles one message and returns its outcome; raises to have SQS deliver it again."""

    runtime: Any
    results: Results
    sqs: Any
    _: KW_ONLY
    endpoints: dict[str, str]
    dead_letter_queue_url: str
    max_receive_count: int
    max_instances: int
    variants: Mapping[str, Sequence[str]] | None = None
    max_result_bytes: int = MAX_RESULT_BYTES
    logger: Log = field(default_factory=lambda: logging.getLogger(__name__))

    def __call__(self, record: QueuedMessage) -> str:
        try:
            job = parse_message(record.body, self.endpoints, self.max_instances, self.variants)
        except Malformed as problem:
            self.quarantine(record, problem)
            return QUARANTINED
        stored = self.results.get(job.tracking_id)
        if stored is None:
            # Its record expired, or the message did not come from the API: nowhere to put a result.
            self.quarantine(record, Malformed(UNKNOWN_ID, f"no pending record has the id {job.tracking_id}"))
            return QUARANTINED
        if stored.get("status") in TERMINAL:
            self.logger.info("already finished", extra={"id": job.tracking_id, "status": stored.get("status")})
            return DUPLICATE
        return self.score(record, job)

    def score(self, record: QueuedMessage, job: Job) -> str:
        try:
            scored = invoke_endpoint(
                self.runtime,
                endpoint_name=self.endpoints[job.request.endpoint],
                request=job.request,
                inference_id=job.tracking_id,
            )
        except ScoringFailure as failure:
            return self.failed(record, job, failure)
        result = compact(scored.predictions)
        if len(result.encode("utf-8")) > self.max_result_bytes:
            return self.finish_failed(
                job,
                f"the result is {len(result.encode('utf-8'))} bytes, more than the {self.max_result_bytes} a record "
                "holds: send fewer instances per request, or ask without explanations",
                RESULT_TOO_LARGE,
            )
        if not self.results.finish(job.tracking_id, SUCCEEDED, variant=scored.variant, result=result):
            self.logger.info("finished meanwhile by another delivery", extra={"id": job.tracking_id})
            return DUPLICATE
        self.logger.info("scored", extra={"id": job.tracking_id, "variant": scored.variant})
        return SCORED

    def failed(self, record: QueuedMessage, job: Job, failure: ScoringFailure) -> str:
        extra = {"id": job.tracking_id, "kind": failure.kind, "reason": failure.reason, "detail": failure.detail}
        if not failure.retryable:
            self.logger.warning("scoring refused", extra=extra)
            return self.finish_failed(job, failure.reason, REFUSED if failure.kind == REFUSED else UNREADABLE)
        attempt = record.receive_count
        if attempt < self.max_receive_count:
            self.logger.warning("scoring failed; SQS will retry", extra={**extra, "attempt": attempt})
            raise failure
        reason = f"gave up after {attempt} attempts: {failure.reason}"
        self.logger.error("scoring gave up", extra={**extra, "attempt": attempt})
        if not self.results.finish(job.tracking_id, FAILED, reason=reason):
            return DUPLICATE
        self.send_to_dead_letter_queue(record, GAVE_UP, reason)
        return GAVE_UP

    def finish_failed(self, job: Job, reason: str, outcome: str) -> str:
        if not self.results.finish(job.tracking_id, FAILED, reason=reason):
            return DUPLICATE
        return outcome

    def quarantine(self, record: QueuedMessage, problem: Malformed) -> None:
        """Mark the record failed (when there is a pending one), then keep the body on the dead-letter queue.

        In this order so that a retry after a failed copy repeats both harmlessly: the update is
        conditional on ``pending``, and a message that is malformed stays malformed.
        """
        if problem.tracking_id is not None:
            self.results.finish(problem.tracking_id, FAILED, reason=problem.reason)
        self.send_to_dead_letter_queue(record, problem.code, problem.reason)
        self.logger.warning(
            "quarantined",
            extra={"message_id": record.message_id, "code": problem.code, "reason": problem.reason},
        )

    def send_to_dead_letter_queue(self, record: QueuedMessage, code: str, reason: str) -> None:
        # The exact body, as SQS's own redrive would move it, so one tool reads both kinds of messages.
        self.sqs.send_message(
            QueueUrl=self.dead_letter_queue_url,
            MessageBody=record.body,
            MessageAttributes=string_attributes(
                reason=one_line(reason), code=code, source_message_id=record.message_id
            ),
        )
