"""A tenant's pipeline config as synth publishes it (docs/training-pipeline.md), for the tests that read one."""

from __future__ import annotations

from typing import Any


def published_config(
    dataset: dict[str, Any], models: list[dict[str, Any]], *, approval_threshold: float = 0.9, spot: bool = True
) -> dict[str, Any]:
    """Tenant ``acme``'s published config: AUC to maximize, trials on one ml.m5.large, batch predictions of the
    dataset's test split."""
    return {
        "schema_version": 1,
        "tenant": "acme",
        "dataset": dataset,
        "models": models,
        "objective": {"metric": "validation:auc", "direction": "maximize", "approval_threshold": approval_threshold},
        "training": {
            "instance_type": "ml.m5.large",
            "spot": spot,
            "max_runtime_seconds": 1800,
            "max_wait_seconds": 3600,
            "gpu": False,
            "local_storage": False,
        },
        "batch_prediction": {"dataset": dataset["name"], "split": "test"},
        "metrics": ["validation:auc", "validation:accuracy", "validation:logloss"],
    }
