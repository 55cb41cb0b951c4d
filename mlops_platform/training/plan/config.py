"""The tenant's published pipeline config, as the plan reads it: checked, its models picked, their grids expanded."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from mlops_platform.training.plan.errors import InvalidConfig, UnknownModel
from mlops_platform.training.plan.request import RunRequest

SCHEMA_VERSION = 1
CONFIG_PREFIX = "artifacts/config/pipelines/"


def config_key(tenant: str) -> str:
    return f"{CONFIG_PREFIX}{tenant}.json"


def check_config(config: Any, tenant: str) -> dict[str, Any]:
    """The fields the plan reads, with their types; synth validated the rest."""
    if not isinstance(config, dict):
        raise InvalidConfig(f"the published config of tenant {tenant!r} is not a JSON object")
    if config.get("schema_version") != SCHEMA_VERSION:
        raise InvalidConfig(
            f"the published config of tenant {tenant!r} has schema_version {config.get('schema_version')!r}; "
            f"allowed: {SCHEMA_VERSION} (redeploy to republish it)"
        )
    expected: list[tuple[str, type | tuple[type, ...]]] = [
        ("tenant", str),
        ("dataset", dict),
        ("dataset.name", str),
        ("dataset.target", str),
        ("dataset.problem_type", str),
        ("dataset.features", dict),
        ("models", list),
        ("objective", dict),
        ("objective.metric", str),
        ("training", dict),
        ("training.instance_type", str),
        ("training.spot", bool),
        ("training.max_runtime_seconds", int),
        ("training.max_wait_seconds", int),
        ("training.gpu", bool),
        ("training.local_storage", bool),
        ("batch_prediction", dict),
        ("batch_prediction.dataset", str),
        ("batch_prediction.split", str),
        ("metrics", list),
    ]
    for path, kind in expected:
        value: Any = config
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise InvalidConfig(f"the published config of tenant {tenant!r} has no valid {path!r}")
    if config["tenant"] != tenant:
        raise InvalidConfig(f"the published config for tenant {tenant!r} names tenant {config['tenant']!r}")
    if not config["models"] or not all(_valid_model(model) for model in config["models"]):
        raise InvalidConfig(
            f"the published config of tenant {tenant!r} needs a non-empty list of models, each with a name, "
            "an algorithm and a grid or combinations of numbers"
        )
    if not config["metrics"] or not all(isinstance(metric, str) and metric for metric in config["metrics"]):
        raise InvalidConfig(f"the published config of tenant {tenant!r} needs a non-empty list of metric names")
    return config


def _valid_model(model: Any) -> bool:
    if not isinstance(model, dict) or not isinstance(model.get("name"), str) or not model["name"]:
        return False
    if not isinstance(model.get("algorithm"), str):
        return False
    grid, combinations = model.get("grid"), model.get("combinations")
    if grid is not None and not (
        isinstance(grid, dict) and all(isinstance(values, list) and values for values in grid.values())
    ):
        return False
    return combinations is None or (
        isinstance(combinations, list) and all(isinstance(combination, dict) for combination in combinations)
    )


def expand(model: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A model's trials in the contract's order (the same as ``config.tenants.ModelSpec.trials``).

    ``combinations`` as given; else the grid's names sorted and ``itertools.product`` of their value
    lists; a model with neither trains once with the image's defaults.
    """
    combinations = model.get("combinations")
    if combinations is not None:
        return [dict(combination) for combination in combinations] or [{}]
    grid = model.get("grid")
    if not grid:
        return [{}]
    names = sorted(grid)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*(grid[name] for name in names))]


def selected_models(config: Mapping[str, Any], request: RunRequest) -> list[dict[str, Any]]:
    models = config["models"]
    if request.models is None:
        return list(models)
    known = [model["name"] for model in models]
    unknown = [name for name in request.models if name not in known]
    if unknown:
        raise UnknownModel(
            f"tenant {request.tenant!r} has no model {unknown[0]!r}; allowed: a subset of {', '.join(known)}"
        )
    # The config's order, whatever the request's: trial numbers must not depend on how a subset is written.
    return [model for model in models if model["name"] in request.models]
