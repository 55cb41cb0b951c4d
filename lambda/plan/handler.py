"""Plan: turn a tenant's published pipeline config into one training request per trial, in S3.

Invoked by the training state machine's first step with ``{"request": <the execution's input>, "run_id",
"started_at", "execution_arn"}``. What it checks, derives and writes is ``mlops_platform.training.plan``
(docs/training-pipeline.md); this adapter builds the clients and settings once per container, plugs in
Powertools' logger and metrics, and returns the plan's location and the prepare and predict requests.
A run that cannot be planned raises a typed error whose class name Step Functions sees.
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from mlops_platform.training.plan import Planner, Settings

logger = Logger()
metrics = Metrics()
planner = Planner(boto3.client("s3"), boto3.client("dynamodb"), Settings.from_environment(os.environ), log=logger)


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = planner(event)
    logger.info(
        "planned",
        extra={"run_id": result["run_id"], "tenant": result["tenant"], "trial_count": result["trial_count"]},
    )
    metrics.add_metric("TrialsPlanned", MetricUnit.Count, result["trial_count"])
    return result
