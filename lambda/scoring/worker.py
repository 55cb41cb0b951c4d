"""Scoring worker: score the queued asynchronous requests and record their outcomes.

SQS invokes this function with batches of the messages the scoring API (``handler.py``) queues, with
ReportBatchItemFailures, so each message succeeds or fails alone: scored, refused, quarantined to the
dead-letter queue with its reason, skipped as a duplicate, or reported failed so that SQS retries it until
the last attempt gives up (mlops_platform/serving/api/worker.py says which, and why).
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.config import Config

from mlops_platform.serving.api.endpoint import REFUSED, UNREADABLE, ScoringFailure
from mlops_platform.serving.api.request import load_endpoints, load_variants
from mlops_platform.serving.api.results import Results
from mlops_platform.serving.api.worker import (
    DUPLICATE,
    GAVE_UP,
    QUARANTINED,
    RESULT_TOO_LARGE,
    SCORED,
    QueuedMessage,
    Worker,
)

# One message's InvokeEndpoint may take the container's full 60 seconds, so one message takes at most
# about 70 seconds: the function's timeout must cover that times the batch size. Retries belong to
# SQS (its visibility timeout spaces them out, and ApproximateReceiveCount counts them), not botocore.
RUNTIME_CONFIG = Config(connect_timeout=5, read_timeout=65, retries={"mode": "standard", "max_attempts": 1})
# One metric per outcome.
METRICS = {
    SCORED: "Scored",
    REFUSED: "ScoringRefused",
    UNREADABLE: "ScoringUnreadable",
    RESULT_TOO_LARGE: "ResultsTooLarge",
    DUPLICATE: "Duplicates",
    QUARANTINED: "Quarantined",
    GAVE_UP: "GaveUp",
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
    logger=logger,
)


@tracer.capture_method(capture_response=False)
def _record_handler(record: SQSRecord) -> str:
    message = QueuedMessage(
        message_id=record.message_id,
        body=record.body,
        receive_count=int(record.attributes.approximate_receive_count or "1"),
    )
    try:
        outcome = worker(message)
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
