"""Run outcome: record in the run ledger how each training execution ended, whatever path it took.

Invoked by an EventBridge rule on the default bus with ``Step Functions Execution Status Change`` events of
the training state machine (mlops_constructs/run_outcomes.py). What it records, ignores or quarantines is
``mlops_platform.runs`` (``outcome``, ``history``, ``recorder``); this adapter builds the clients once per
container, plugs in Powertools' logger and counts each outcome. AWS failures raise, so EventBridge's async
retries and the on-failure destination keep the event.
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from mlops_platform.environment import read_settings
from mlops_platform.runs.recorder import Recorder, Settings

METRICS = {"recorded": "RunOutcomesRecorded", "stale": "RunOutcomesStale", "quarantined": "EventsQuarantined"}
# "ignored" (a run's first RUNNING, a trial's events) is logged, not counted.

logger = Logger()
metrics = Metrics()
recorder = Recorder(
    boto3.client("dynamodb"),
    boto3.client("sqs"),
    boto3.client("stepfunctions"),
    read_settings(Settings, os.environ),
    log=logger,
)


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, str]:
    outcome = recorder(event)
    if outcome in METRICS:
        metrics.add_metric(METRICS[outcome], MetricUnit.Count, 1)
    return {"outcome": outcome}
