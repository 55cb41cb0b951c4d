"""Ingest: land SQS messages in the raw zone as JSON Lines, quarantine what cannot land.

A message body is a JSON object ``{"tenant": ..., "dataset": ..., "record": {...}}`` or, for a
batch, ``{"tenant": ..., "dataset": ..., "records": [{...}, ...]}``. Valid records land in
``raw/<tenant>/<dataset>/dt=<day>/<message id>.jsonl``; bad records (and whole messages that cannot be
routed) land in ``quarantine/...`` with their reasons (mlops_platform/data/ingest.py). A message whose
writes fail is reported back to SQS alone (partial batch response) and retried; objects are written only
if absent, so a redelivered or retried message duplicates nothing.
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from mlops_platform.data.ingest import Ingestor, sent_at

logger = Logger()
metrics = Metrics()
ingest = Ingestor(
    boto3.client("s3"),
    bucket=os.environ["RAW_BUCKET"],
    raw_prefix=os.environ.get("RAW_PREFIX", "raw/"),
    quarantine_prefix=os.environ.get("QUARANTINE_PREFIX", "quarantine/"),
    max_record_bytes=int(os.environ.get("MAX_RECORD_BYTES", "65536")),
    logger=logger,
)


def _record_handler(record: SQSRecord) -> dict[str, int]:
    counts = ingest(message_id=record.message_id, body=record.body, sent=sent_at(record.attributes.sent_timestamp))
    metrics.add_metric("RecordsLanded", MetricUnit.Count, counts["landed"])
    metrics.add_metric("RecordsQuarantined", MetricUnit.Count, counts["quarantined"])
    return counts


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # A failed message is reported, never raised for the whole batch: the others stay done.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    if not event.get("Records"):
        return {"batchItemFailures": []}
    return process_partial_response(event=event, record_handler=_record_handler, processor=processor, context=context)
