"""Training job: decide what a trial does when its job name is already taken (``ResourceInUse``).

Invoked by the training state machine's trial workflow with ``{"item": <the plan item>, "current"?: {"job_name",
"attempt"}, "error"?}`` after ``CreateTrainingJob`` failed with ``ResourceInUse``. The decision (``wait``,
``reuse``, ``retry`` or ``give-up``) is ``mlops_platform.runs.attempts``; this adapter builds the SageMaker
client once per container, reads ``MAX_ATTEMPTS``, plugs in Powertools' logger and counts each action.
A name that cannot be resolved raises a typed error whose class name Step Functions sees.
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from mlops_platform.runs.attempts import Resolver

logger = Logger()
metrics = Metrics()
resolver = Resolver(boto3.client("sagemaker"), max_attempts=int(os.environ.get("MAX_ATTEMPTS", "3")), log=logger)


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = resolver(event)
    logger.info("resolved", extra={"action": result["action"], "job_name": result["job_name"]})
    metrics.add_metric(f"TakenJobName{result['action'].title().replace('-', '')}", MetricUnit.Count, 1)
    return result
