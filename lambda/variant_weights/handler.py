"""Variant weights: apply an endpoint's effective A/B weights in place, as a CloudFormation custom resource.

The CDK Provider framework (mlops_constructs/variant_weights.py) invokes ``on_event`` and polls
``is_complete``. What they do (``UpdateEndpointWeightsAndCapacities``, then the weight metrics) is
``mlops_platform.serving.weights``; this adapter builds the clients once per container and plugs in
Powertools' logger.
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger

from mlops_platform.serving.weights import WeightsApplier

logger = Logger()
applier = WeightsApplier(
    boto3.client("sagemaker"), boto3.client("cloudwatch"), os.environ["METRICS_NAMESPACE"], log=logger
)


@logger.inject_lambda_context
def on_event(event: dict[str, Any], context: Any) -> dict[str, Any] | None:
    return applier.on_event(event)


@logger.inject_lambda_context
def is_complete(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return applier.is_complete(event)
