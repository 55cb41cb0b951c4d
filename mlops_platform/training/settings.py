"""Hyperparameters: the platform's settings under a reserved prefix, the model's own apart from them.

Training jobs take no environment variables from the platform (seed 001), so the event bus, the
region and the run's identity travel as hyperparameters named ``mlops_*``. SageMaker passes every
value as a string; each is parsed here, and a wrong one is a ``SettingsError`` with one sentence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_platform.training.objective import OBJECTIVES

PREFIX = "mlops_"
ALGORITHMS = ("xgboost", "linear")  # the keys of hyperparameters.json
PROBLEM_TYPES = ("binary", "multiclass", "regression")

# Model hyperparameters each algorithm accepts, with bounds and defaults. A data file, because
# config/pipelines validates tenants' grids against the same table at synth.
SCHEMA_FILE = Path(__file__).with_name("hyperparameters.json")
MODEL_HYPERPARAMETERS: dict[str, dict[str, dict[str, Any]]] = json.loads(SCHEMA_FILE.read_text())
TYPES: dict[str, type] = {"int": int, "float": float}


class SettingsError(ValueError):
    """A bad hyperparameter, in one sentence."""


@dataclass(frozen=True)
class PlatformSettings:
    """Who is training and where progress goes; none of it reaches the model."""

    algorithm: str
    problem_type: str
    target: str
    # The validation metric that picks each trial's kept round (objective.py): the tenant's objective.
    objective: str | None = None
    tenant: str = "local"
    model: str = "model"
    run_id: str = "local"
    trial: str = "0"
    event_bus: str | None = None
    event_source: str = "mlops.training"  # <project>.training: the bus rules match on it
    region: str | None = None
    progress_interval_seconds: float = 10.0
    # A progress event every this many rounds as well (progress_events.py); 0: about 50 in all (train.py).
    progress_every_rounds: int = 0
    device: str = "auto"
    checkpoint_every: int = 10


@dataclass(frozen=True)
class Settings:
    platform: PlatformSettings
    model: dict[str, Any] = field(default_factory=dict)


def load(path: Path) -> Settings:
    raw = json.loads(path.read_text()) if path.is_file() else {}
    if not isinstance(raw, dict):
        raise SettingsError(f"{path}: hyperparameters must be a JSON object of strings")
    return parse({str(key): str(value) for key, value in raw.items()})


def parse(raw: dict[str, str]) -> Settings:
    platform_raw = {key.removeprefix(PREFIX): value for key, value in raw.items() if key.startswith(PREFIX)}
    model_raw = {key: value for key, value in raw.items() if not key.startswith(PREFIX)}

    known = set(PlatformSettings.__dataclass_fields__)
    unknown = sorted(set(platform_raw) - known)
    if unknown:
        raise SettingsError(
            f"unknown platform setting {PREFIX}{unknown[0]}; allowed: {sorted(PREFIX + k for k in known)}"
        )
    for required in ("algorithm", "problem_type", "target"):
        if not platform_raw.get(required):
            raise SettingsError(f"hyperparameter {PREFIX}{required} is missing")
    algorithm = platform_raw["algorithm"]
    if algorithm not in ALGORITHMS:
        raise SettingsError(f"{PREFIX}algorithm has value {algorithm!r}; allowed: one of {', '.join(ALGORITHMS)}")
    problem_type = platform_raw["problem_type"]
    if problem_type not in PROBLEM_TYPES:
        raise SettingsError(
            f"{PREFIX}problem_type has value {problem_type!r}; allowed: one of {', '.join(PROBLEM_TYPES)}"
        )
    objective = platform_raw.get("objective") or None
    if objective is not None and objective not in OBJECTIVES[problem_type]:
        raise SettingsError(
            f"{PREFIX}objective has value {objective!r}; allowed for a {problem_type} problem: "
            f"one of {', '.join(OBJECTIVES[problem_type])}"
        )
    source = platform_raw.get("event_source", "mlops.training")
    if not source or source.startswith("aws."):
        raise SettingsError(
            f"{PREFIX}event_source has value {source!r}; allowed: a non-empty source not starting with 'aws.'"
        )
    if platform_raw.get("device", "auto") not in ("auto", "cpu", "cuda"):
        raise SettingsError(f"{PREFIX}device has value {platform_raw['device']!r}; allowed: auto, cpu or cuda")
    platform = PlatformSettings(
        **{
            **platform_raw,
            "objective": objective,
            "progress_interval_seconds": _number(
                PREFIX + "progress_interval_seconds",
                platform_raw.get("progress_interval_seconds", "10"),
                float,
                0,
                3600,
            ),
            "progress_every_rounds": _number(
                PREFIX + "progress_every_rounds", platform_raw.get("progress_every_rounds", "0"), int, 0, 10**6
            ),
            "checkpoint_every": _number(
                PREFIX + "checkpoint_every", platform_raw.get("checkpoint_every", "10"), int, 1, 10**6
            ),
        }
    )
    return Settings(platform=platform, model=_model_hyperparameters(algorithm, model_raw))


def _model_hyperparameters(algorithm: str, raw: dict[str, str]) -> dict[str, Any]:
    schema = MODEL_HYPERPARAMETERS[algorithm]
    parsed = {name: spec["default"] for name, spec in schema.items() if "default" in spec}
    for name, value in raw.items():
        if name not in schema:
            raise SettingsError(f"unknown {algorithm} hyperparameter {name!r}; allowed: {', '.join(sorted(schema))}")
        spec = schema[name]
        parsed[name] = _number(name, value, TYPES[spec["type"]], spec["min"], spec["max"])
    return parsed


def _number(name: str, value: str, kind: type, low: float, high: float) -> Any:
    try:
        number = kind(float(value)) if kind is int and float(value).is_integer() else kind(value)
    except (TypeError, ValueError):
        raise SettingsError(f"hyperparameter {name} has value {value!r}; allowed: a {kind.__name__}") from None
    if not low <= number <= high:
        raise SettingsError(f"hyperparameter {name} has value {value!r}; allowed: from {low} to {high}")
    return number
