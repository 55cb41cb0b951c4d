"""Scoring worker: score the queued asynchronous requests and record their outcomes.

The scoring API (``handler.py``) records each request as ``pending`` and then queues
``{"id", "endpoint", "instances", "explain"}``. SQS invokes this function with batches of those
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

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.config import Config
from scoring_common import (
    FAILED,
    REFUSED,
    SUCCEEDED,
    TERMINAL,
    InvalidRequest,
    Results,
    ScoringFailure,
    ScoringRequest,
    UnknownEndpoint,
    compact,
    invoke_endpoint,
    is_tracking_id,
    load_endpoints,
    load_variants,
    one_line,
    parse_request,
    strict_json,
)

# Quarantine codes: the message attribute "code" on the dead-letter queue.
MALFORMED_JSON = "malformed-json"
INVALID_ID = "invalid-id"
UNKNOWN_ENDPOINT = "unknown-endpoint"
INVALID_REQUEST = "invalid-request"
UNKNOWN_ID = "unknown-id"
GAVE_UP = "gave-up"
# DynamoDB's item limit is 400 KB; leave room for the other attributes.
MAX_RESULT_BYTES = 350_000
# One message's InvokeEndpoint may take the container's full 60 seconds, so one message takes at most
# about 70 seconds: the function's timeout must cover that times the batch size. Retries belong to
# SQS (its visibility timeout spaces them out, and ApproximateReceiveCount counts them), not botocore.
RUNTIME_CONFIG = Config(connect_timeout=5, read_timeout=65, retries={"mode": "standard", "max_attempts": 1})


class Malformed(Exception):
    """A message that no retry can score; ``tracking_id`` is its id when it has a valid one."""

    def __init__(self, code: str, reason: str, tracking_id: str | None = None):
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = one_line(reason)
        self.tracking_id = tracking_id


@dataclass(frozen=True)
class Job:
    tracking_id: str
    request: ScoringRequest


def parse_message(
    body: str, endpoints: dict[str, str], max_instances: int, variants: Mapping[str, Sequence[str]] | None = None
) -> Job:
    """A queued request as a Job; raises Malformed with the reason it cannot be scored."""
    try:
        payload = strict_json(body)
    except ValueError as error:
        raise Malformed(MALFORMED_JSON, f"the body is not valid JSON: {error}") from None
    if not isinstance(payload, dict):
        raise Malformed(MALFORMED_JSON, f"the body must be a JSON object, not a JSON {type(payload).__name__}")
    tracking_id = payload.get("id")
    if not isinstance(tracking_id, str) or not is_tracking_id(tracking_id):
        raise Malformed(INVALID_ID, f"'id' must be a tracking id (a UUID4), not {one_line(repr(tracking_id), 60)}")
    try:
        request = parse_request(
            {key: value for key, value in payload.items() if key != "id"}, endpoints, max_instances, variants
        )
    except UnknownEndpoint as error:
        raise Malformed(UNKNOWN_ENDPOINT, error.reason, tracking_id) from None
    except InvalidRequest as error:
        raise Malformed(INVALID_REQUEST, error.reason, tracking_id) from None
    return Job(tracking_id=tracking_id, request=request)


class Worker:
    """Handles one message and returns its outcome; raises to have SQS deliver it again."""

    def __init__(
        self,
        runtime: Any,
        results: Results,
        sqs: Any,
        *,
        endpoints: dict[str, str],
        dead_letter_queue_url: str,
        max_receive_count: int,
        max_instances: int,
        variants: Mapping[str, Sequence[str]] | None = None,
    ):
        self.runtime = runtime
        self.variants = variants
        self.results = results
        self.sqs = sqs
        self.endpoints = endpoints
        self.dead_letter_queue_url = dead_letter_queue_url
        self.max_receive_count = max_receive_count
        self.max_instances = max_instances

    def __call__(self, record: SQSRecord) -> str:
        try:
            job = parse_message(record.body, self.endpoints, self.max_instances, self.variants)
        except Malformed as problem:
            self.quarantine(record, problem)
            return "quarantined"
        stored = self.results.get(job.tracking_id)
        if stored is None:
            # Its record expired, or the message did not come from the API: nowhere to put a result.
            self.quarantine(record, Malformed(UNKNOWN_ID, f"no pending record has the id {job.tracking_id}"))
            return "quarantined"
        if stored.get("status") in TERMINAL:
            logger.info("already finished", extra={"id": job.tracking_id, "status": stored.get("status")})
            return "duplicate"
        return self.score(record, job)

    def score(self, record: SQSRecord, job: Job) -> str:
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
        if len(result.encode("utf-8")) > MAX_RESULT_BYTES:
            return self.finish_failed(
                job,
                f"the result is {len(result.encode('utf-8'))} bytes, more than the {MAX_RESULT_BYTES} a record "
                "holds: send fewer instances per request, or ask without explanations",
                "result-too-large",
            )
        if not self.results.finish(job.tracking_id, SUCCEEDED, variant=scored.variant, result=result):
            logger.info("finished meanwhile by another delivery", extra={"id": job.tracking_id})
            return "duplicate"
        logger.info("scored", extra={"id": job.tracking_id, "variant": scored.variant})
        return "scored"

    def failed(self, record: SQSRecord, job: Job, failure: ScoringFailure) -> str:
        extra = {"id": job.tracking_id, "kind": failure.kind, "reason": failure.reason, "detail": failure.detail}
        if not failure.retryable:
            logger.warning("scoring refused", extra=extra)
            return self.finish_failed(job, failure.reason, "refused" if failure.kind == REFUSED else "unreadable")
        attempt = int(record.attributes.approximate_receive_count or "1")
        if attempt < self.max_receive_count:
            logger.warning("scoring failed; SQS will retry", extra={**extra, "attempt": attempt})
            raise failure
        reason = f"gave up after {attempt} attempts: {failure.reason}"
        logger.error("scoring gave up", extra={**extra, "attempt": attempt})
        if not self.results.finish(job.tracking_id, FAILED, reason=reason):
            return "duplicate"
        self.send_to_dead_letter_queue(record, GAVE_UP, reason)
        return "gave-up"

    def finish_failed(self, job: Job, reason: str, outcome: str) -> str:
        if not self.results.finish(job.tracking_id, FAILED, reason=reason):
            return "duplicate"
        return outcome

    def quarantine(self, record: SQSRecord, problem: Malformed) -> None:
        """Mark the record failed (when there is a pending one), then keep the body on the dead-letter queue.

        In this order so that a retry after a failed copy repeats both harmlessly: the update is
        conditional on ``pending``, and a message that is malformed stays malformed.
        """
        if problem.tracking_id is not None:
            self.results.finish(problem.tracking_id, FAILED, reason=problem.reason)
        self.send_to_dead_letter_queue(record, problem.code, problem.reason)
        logger.warning(
            "quarantined",
            extra={"message_id": record.message_id, "code": problem.code, "reason": problem.reason},
        )

    def send_to_dead_letter_queue(self, record: SQSRecord, code: str, reason: str) -> None:
        # The exact body, as SQS's own redrive would move it, so one tool reads both kinds of messages.
        self.sqs.send_message(
            QueueUrl=self.dead_letter_queue_url,
            MessageBody=record.body,
            MessageAttributes={
                "reason": {"DataType": "String", "StringValue": one_line(reason)},
                "code": {"DataType": "String", "StringValue": code},
                "source_message_id": {"DataType": "String", "StringValue": record.message_id},
            },
        )


# One metric per outcome.
METRICS = {
    "scored": "Scored",
    "refused": "ScoringRefused",
    "unreadable": "ScoringUnreadable",
    "result-too-large": "ResultsTooLarge",
    "duplicate": "Duplicates",
    "quarantined": "Quarantined",
    "gave-up": "GaveUp",
}

logger = Logger()
# Traces never carry responses (capture_response=False): they hold the callers' predictions, and
# X-Ray drops a segment larger than 64 KB.
tracer = Tracer()
metrics = Metrics()
worker = Worker(
    boto3.client("sagemaker-runtime", config=RUNTIME_CONFIG),
    Results(boto3.client("dynamodb"), os.environ["RESULTS_TABLE"]),
    boto3.client("sqs"),
    endpoints=load_endpoints(os.environ["ENDPOINTS"]),
    dead_letter_queue_url=os.environ["DEAD_LETTER_QUEUE_URL"],
    max_receive_count=int(os.environ["MAX_RECEIVE_COUNT"]),
    max_instances=int(os.environ.get("MAX_INSTANCES", "1000")),
    variants=load_variants(os.environ.get("VARIANTS")),
)


@tracer.capture_method(capture_response=False)
def _record_handler(record: SQSRecord) -> str:
    try:
        outcome = worker(record)
    except ScoringFailure:
        metrics.add_metric("Retried", MetricUnit.Count, 1)
        raise
    except Exception:
        metrics.add_metric("Errors", MetricUnit.Count, 1)
        logger.exception("could not process the message", extra={"message_id": record.message_id})
        raise
    metrics.add_metric(METRICS[outcome], MetricUnit.Count, 1)
    return outcome


@metrics.log_metrics
@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # A failed message is reported, never raised for the whole batch: the others stay done.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    if not event.get("Records"):
        return {"batchItemFailures": []}
    return process_partial_response(event=event, record_handler=_record_handler, processor=processor, context=context)
