"""Ingest: land SQS messages in the raw zone as JSON Lines, quarantine what cannot land.

Each tenant has its own queue, and this function reads them all: the tenant of a message is the tenant
of the queue it came from (the record's ``eventSourceARN``, looked up in ``TENANT_QUEUES``), never what
the message says. A message body is a JSON object ``{"dataset": ..., "record": {...}}`` or, for a
batch, ``{"dataset": ..., "records": [{...}, ...]}``. Valid records land in
``raw/<tenant>/<dataset>/dt=<day>/<message id>.jsonl``; bad records (and whole messages that cannot be
routed, or that name another tenant) land in ``quarantine/<tenant>/...`` with their reasons
(mlops_platform/data/ingest.py). A message whose
writes fail is reported back to SQS alone (partial batch response) and retried; objects are written only
if absent, so a redelivered or retried message duplicates nothing.
"""

from __future__ import annotations

import json
import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from mlops_platform.data.ingest import MAX_RECORDS_PER_MESSAGE, Ingestor, sent_at

logger = Logger()
metrics = Metrics()
ingest = Ingestor(
    boto3.client("s3"),
    bucket=os.environ["RAW_BUCKET"],
    raw_prefix=os.environ.get("RAW_PREFIX", "raw/"),
    quarantine_prefix=os.environ.get("QUARANTINE_PREFIX", "quarantine/"),
    max_record_bytes=int(os.environ.get("MAX_RECORD_BYTES", "65536")),
    max_records=int(os.environ.get("MAX_RECORDS_PER_MESSAGE", str(MAX_RECORDS_PER_MESSAGE))),
    logger=logger,
)
# Queue ARN -> tenant, written at synth from the tenants' files. An SQS event record names its queue in
# eventSourceARN (https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html, "Example standard queue
# message event"); a queue missing here has its messages quarantined under _unrouted.
TENANT_QUEUES: dict[str, str] = json.loads(os.environ["TENANT_QUEUES"])


def _record_handler(record: SQSRecord) -> dict[str, int]:
    counts = ingest(
        message_id=record.message_id,
        body=record.body,
        sent=sent_at(record.attributes.sent_timestamp),
        tenant=TENANT_QUEUES.get(record.event_source_arn),
    )
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
