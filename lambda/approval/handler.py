"""The approval function: a model package's approval in the registry becomes its endpoint's Challenger, or a notice.

Invoked by an EventBridge rule on the default bus with ``SageMaker Model Package State Change`` events of
this environment's package groups (mlops_constructs/approval_path.py). What it decides, does and records
is ``mlops_platform.registry.approval`` (docs/approval-path.md); this adapter builds its clients and
settings once per container, plugs in Powertools' logger and metrics, and shapes the answer.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from mlops_platform.registry.approval import Approvals
from mlops_platform.registry.approval_settings import Settings

logger = Logger()
metrics = Metrics()
approvals = Approvals.with_clients(
    settings=Settings.from_environment(os.environ),
    log=logger,
    count=lambda name: metrics.add_metric(name=name, unit=MetricUnit.Count, value=1),
)


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"decisions": approvals.handle(event)}
