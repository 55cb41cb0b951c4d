"""The deployment function: each step of the deployment workflow (acquire, settle, give_up) for one promotion.

The workflow (mlops_constructs/approval_path.py) invokes ``deployment.handler`` with ``{"step",
"execution", "request"}``. The steps are ``mlops_platform.registry.deployment`` (lock, write the pointer,
judge the deploy, restore); this adapter builds its clients and settings once per container and plugs in
Powertools' logger and metrics. A malformed input raises ``InvalidRequest``, which Step Functions names.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from mlops_platform.registry.deployment import Steps
from mlops_platform.registry.deployment_settings import Settings

# Alike lambda/approval/handler.py, apart: two functions, each with its own entry point, environment and role.
logger = Logger()
metrics = Metrics()
steps = Steps.with_clients(
    settings=Settings.from_environment(os.environ),
    log=logger,
    count=lambda name: metrics.add_metric(name=name, unit=MetricUnit.Count, value=1),
)


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return steps.run(event)
