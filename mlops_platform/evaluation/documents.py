"""The documents evaluation writes under the run: the feature schema and each model's evaluation.

Both are pretty-printed, key-sorted, ASCII JSON; the feature schema's sha256 is recorded with each package, so
its bytes are part of the contract (promote and the baseline job read it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mlops_platform.evaluation.trials import Objective, Trial

if TYPE_CHECKING:
    from mlops_platform.evaluation.request import Request

SCHEMA_VERSION = 1
# The model-quality section of each problem type, as SageMaker's model-quality statistics name them:
# https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-model-quality-metrics.html
QUALITY_SECTION = {
    "binary": "binary_classification_metrics",
    "multiclass": "multiclass_classification_metrics",
    "regression": "regression_metrics",
}


def encode(document: Any) -> bytes:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=True, allow_nan=False).encode("ascii")


def feature_schema(config: Mapping[str, Any]) -> dict[str, Any]:
    dataset = config["dataset"]
    return {
        "schema_version": SCHEMA_VERSION,
        "tenant": config.get("tenant"),
        "dataset": dataset["name"],
        # In schema order: the batch-prediction CSV has these columns, in this order, without a header.
        "features": _features_in_schema_order(dataset),
        "target": dataset["target"],
        "problem_type": dataset["problem_type"],
    }


def _features_in_schema_order(dataset: Mapping[str, Any]) -> list[dict[str, str]]:
    """``dataset.columns`` in its declared order where published: the order prepare and train use.

    ``dataset.features`` is a mapping, and the published config is written with sorted keys
    (mlops_constructs/publishing.py), so its order is alphabetical, not the schema's.
    """
    columns = dataset.get("columns")
    if isinstance(columns, list):
        return [{"name": str(column["name"]), "type": str(column["type"])} for column in columns]
    return [{"name": name, "type": kind} for name, kind in dataset["features"].items()]


def evaluation_document(
    request: Request, config: Mapping[str, Any], objective: Objective, model: str, trials: list[Trial], best: Trial
) -> dict[str, Any]:
    """The model's evaluation: all its trials, the best one, the objective and the threshold.

    Also given to the package as its model-quality statistics; the ``*_metrics`` section follows
    SageMaker's model-quality layout (``{"auc": {"value": ...}}``) so Studio can show it.
    """
    assert best.value is not None
    section = QUALITY_SECTION.get(config["dataset"]["problem_type"], "metrics")
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": request.run_id,
        "tenant": request.tenant,
        "model": model,
        "algorithm": best.algorithm,
        "objective": {"metric": objective.metric, "direction": objective.direction},
        "threshold": objective.threshold,
        "meets_threshold": objective.meets(best.value),
        "best": best.summary(),
        "trials": [trial.summary() for trial in sorted(trials, key=lambda t: t.trial)],
        section: {name.split(":", 1)[-1]: {"value": value} for name, value in sorted(best.metrics.items())},
    }


def sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()
