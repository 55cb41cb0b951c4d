"""Progress: record training rounds and training-job status in the progress table.

EventBridge invokes this function asynchronously, one event per invocation, from two rules: the
environment's progress bus (``Training Progress``, one per reported round, sent by the training
container) and the default bus (SageMaker's ``SageMaker Training Job State Change`` for the platform's
jobs). What each event writes, and the conditions that keep at-least-once, out-of-order delivery
harmless, are in mlops_platform/training/progress_rows.py.

An event that cannot be understood is quarantined: sent to the quarantine queue with its reason, logged
and counted; then the invocation succeeds, because retrying cannot fix it. A DynamoDB or SQS failure
raises instead: Lambda retries the event, then hands it to the function's on-failure destination (the
same queue), so no event is silently dropped.
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from mlops_platform.training.progress_store import Recorder

# One metric per outcome, each counted once per invocation.
METRICS = {
    "progress-recorded": "ProgressRecorded",
    "progress-skipped": "ProgressDuplicates",
    "status-recorded": "StatusRecorded",
    "status-skipped": "StatusStale",
    "quarantined": "EventsQuarantined",
}

logger = Logger()
metrics = Metrics()
recorder = Recorder(
    boto3.client("dynamodb"),
    boto3.client("sqs"),
    table_name=os.environ["TABLE_NAME"],
    quarantine_queue_url=os.environ["QUARANTINE_QUEUE_URL"],
    event_source=os.environ["EVENT_SOURCE"],
    job_prefix=os.environ["JOB_PREFIX"],
    logger=logger,
)


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, str]:
    outcome = recorder(event)
    metrics.add_metric(METRICS[outcome], MetricUnit.Count, 1)
    return {"outcome": outcome}
