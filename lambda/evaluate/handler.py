"""Evaluate and register: pick each model's best trial, then, once its baseline exists, register it.

Invoked twice per run by the training state machine (mlops_constructs/training_definition.py), the state's
``action`` choosing the entry: ``evaluate`` (the default) after the training Map, ``register`` after the
``Baselines`` Map. What each does, reads and writes is ``mlops_platform.evaluation`` (docs/training-pipeline.md);
this adapter builds its clients and settings once per container, plugs in Powertools' logger and metrics, and
logs the answer. Step Functions sees an ``mlops_platform.evaluation.errors`` class's name as the error.
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from mlops_platform.environment import read_settings
from mlops_platform.evaluation.evaluator import Evaluator
from mlops_platform.evaluation.ledger import Ledger
from mlops_platform.evaluation.settings import Settings

# The best trial's objective per tenant and model (mlops_constructs/dashboard.py graphs it).
BEST_OBJECTIVE_METRIC = "BestObjective"


def publish_best_objective(tenant: str, model: str, objective_metric: str, value: float | None) -> None:
    """``BestObjective`` of one model in this run, by Tenant, Model and Metric: the dashboard's line per tenant."""
    if value is None:
        return
    with single_metric(name=BEST_OBJECTIVE_METRIC, unit=MetricUnit.NoUnit, value=value) as emitted:
        emitted.add_dimension(name="Tenant", value=tenant)
        emitted.add_dimension(name="Model", value=model)
        emitted.add_dimension(name="Metric", value=objective_metric)


logger = Logger()
metrics = Metrics()
_settings = read_settings(Settings, os.environ)
evaluator = Evaluator(
    boto3.client("s3"),
    boto3.client("sagemaker"),
    Ledger(boto3.client("dynamodb"), _settings.ledger_table),
    _settings,
    log=logger,
    count=lambda name, value: metrics.add_metric(name, MetricUnit.Count, value),
    publish_objective=publish_best_objective,
)


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = evaluator(event)
    if "selected" in result:
        logger.info(
            "evaluated",
            extra={
                "run_id": result["run_id"],
                "trials": result["trials"],
                "selected": [e["model"] for e in result["selected"]],
            },
        )
    else:
        logger.info("registered", extra={"run_id": result["run_id"], "best": result["best"]})
    return result
