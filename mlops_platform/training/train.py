"""``train``: SageMaker's training contract around the algorithms.

Reads ``input/config/hyperparameters.json`` and the ``train`` and ``validation`` channels (CSV
with a header, or Parquet; the ``record_id`` and ``split`` columns ``prepare`` writes are ignored),
trains, writes the model and its metadata to ``model/``, prints one metric line per round and the
kept round's line last (SageMaker keeps the last value a metric definition matches). On error it
writes a one-line reason to ``output/failure`` and exits 1.

The last line and ``metadata.json`` hold the saved model's own metrics: the model is read back
from ``model/`` and scored on both channels, so what evaluate ranks trials by, what is registered
and what the baseline job scores are one model, whatever early stopping did (objective.py).
"""

from __future__ import annotations

import json
import math
import os
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# pyarrow ships no type hints (pyproject.toml lists no override for it).
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from mlops_platform.data.encoding import Encoding, natural_order
from mlops_platform.data.raw_records import PARQUET_METADATA_KEY, label_of
from mlops_platform.model_digest import write_manifest
from mlops_platform.sagemaker_paths import SageMakerPaths, write_exit_reason
from mlops_platform.schema.columns import restricted_name
from mlops_platform.training import settings as settings_module
from mlops_platform.training.algorithms import TRAINERS, Dataset, TrainingResult, load_predictor, measure
from mlops_platform.training.objective import Objective
from mlops_platform.training.progress_events import Kept, NullReporter, ProgressReporter

DATA_SUFFIXES = (".csv", ".parquet")
# Columns that feature files carry to trace rows back (docs/training-pipeline.md); never features.
METADATA_COLUMNS = ("record_id", "split")
# Points of a trial's progress curve sent by round count (besides those sent by time): mlops_progress_every_rounds=0.
CURVE_POINTS = 50


class TrainingError(Exception):
    """A problem with the job's input, stated in one line."""


def metric_line(label: str, metrics: dict[str, float]) -> str:
    """``[round 12] train:logloss=0.1; validation:logloss=0.2``: what the job's metric definitions parse."""
    return f"[{label}] " + "; ".join(f"{name}={value:.6g}" for name, value in sorted(metrics.items()))


@dataclass(frozen=True)
class Channel:
    """A channel's rows, and the schema ``prepare`` wrote into its Parquet files (None for plain CSV)."""

    frame: pd.DataFrame
    schema: dict[str, Any] | None


def read_channel(directory: Path, target: str) -> Channel:
    files = sorted(p for p in directory.rglob("*") if p.suffix in DATA_SUFFIXES) if directory.is_dir() else []
    if not files:
        raise TrainingError(f"channel {directory.name!r} holds no .csv or .parquet file under {directory}")
    frames = [pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p) for p in files]
    frame = pd.concat(frames, ignore_index=True)
    schema = next((s for s in (parquet_schema(p) for p in files if p.suffix == ".parquet") if s), None)
    column = target_column(frame, target, schema)
    if column is None:
        raise TrainingError(f"channel {directory.name!r} has no target column {target!r}")
    return Channel(frame.rename(columns={column: TARGET}) if column != TARGET else frame, schema)


TARGET = "__target__"


def parquet_schema(path: Path) -> dict[str, Any] | None:
    metadata = pq.read_schema(path).metadata or {}
    raw = metadata.get(PARQUET_METADATA_KEY)
    return json.loads(raw) if raw else None


def target_column(frame: pd.DataFrame, target: str, schema: dict[str, Any] | None) -> str | None:
    """The target's column: the source name, or its restricted name (prepare's Parquet)."""
    for candidate in (target, (schema or {}).get("target_column"), restricted_name(target)):
        if candidate and candidate in frame.columns:
            return str(candidate)
    return None


def declared_features(channel: Channel) -> list[dict[str, Any]]:
    """(name, column, type) of each feature: prepare's schema, or every other column typed by its values."""
    if channel.schema:
        return list(channel.schema["features"])
    frame = channel.frame
    columns = [c for c in frame.columns if c != TARGET and c not in METADATA_COLUMNS]
    declared = []
    for column in columns:
        values = frame[column]
        if pd.api.types.is_bool_dtype(values):
            kind = "boolean"
        elif pd.api.types.is_numeric_dtype(values):
            kind = "double"
        else:
            kind = "categorical"
        declared.append({"name": str(column), "column": str(column), "type": kind})
    return declared


def datasets(train: Channel, validation: Channel, problem_type: str) -> tuple[Dataset, Dataset]:
    """Both channels encoded with the categories of the training channel; targets as class indexes."""
    declared = declared_features(train)
    missing = [f["column"] for f in declared if f["column"] not in validation.frame.columns]
    if missing or len(declared_features(validation)) != len(declared):
        raise TrainingError("the train and validation channels have different feature columns")
    encoding = Encoding.fit(train.frame, declared)
    classes = class_labels(train, validation, problem_type)

    def dataset(channel: Channel) -> Dataset:
        target = channel.frame[TARGET]
        if problem_type == "multiclass":
            assert classes is not None
            index = {label: i for i, label in enumerate(classes)}
            labels = [label_of(v) for v in target]
            unknown = sorted({str(label) for label in labels if label not in index})
            if unknown:
                raise TrainingError(f"the target holds labels outside the declared classes: {unknown[:5]}")
            values = np.asarray([index[str(label)] for label in labels], dtype=np.float32)
        else:
            values = target.to_numpy(dtype=np.float32)
        return Dataset(encoding.frame_matrix(channel.frame), values, encoding.columns, encoding, classes)

    return dataset(train), dataset(validation)


def class_labels(train: Channel, validation: Channel, problem_type: str) -> list[str] | None:
    """Declared classes (prepare's schema), binary's 0 and 1, or the labels both channels hold in natural order."""
    if problem_type == "regression":
        return None
    declared = (train.schema or {}).get("classes")
    if declared:
        return [str(label) for label in declared]
    if problem_type == "binary":
        return ["0", "1"]
    labels = {label_of(v) for channel in (train, validation) for v in channel.frame[TARGET]}
    classes = natural_order(label for label in labels if label is not None)
    if len(classes) < 2:
        raise TrainingError(f"a multiclass target needs at least 2 classes in the data; found {classes}")
    return classes


def attempt_of(started: datetime) -> str:
    """This container's start, ``20261124T235930.123Z``: one attempt of a trial.

    A trial's job runs again after a spot interruption (same job name) or a Step Functions retry (a
    new job name); each run is an attempt with a curve of its own. The start time tells them apart
    and sorts them in the order they ran.
    """
    return started.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%f")[:-3] + "Z"


def progress_reporter(
    platform: settings_module.PlatformSettings,
    job_name: str,
    *,
    attempt: str,
    objective: str,
    every_rounds: int,
    client: Any = None,
    **options: Any,
) -> ProgressReporter | NullReporter:
    """The job's progress events, sent with ``client`` (default: EventBridge's); ``options`` go to the reporter."""
    if not platform.event_bus:
        return NullReporter()
    if client is None:
        import boto3  # only where a bus is configured: laptop runs need no AWS SDK setup

        client = boto3.client("events", region_name=platform.region)
    return ProgressReporter(
        client,
        bus=platform.event_bus,
        source=platform.event_source,
        identity={
            "run_id": platform.run_id,
            "tenant": platform.tenant,
            "model": platform.model,
            "trial": platform.trial,
            "training_job_name": job_name,
            "attempt": attempt,
            "objective": objective,
        },
        interval_seconds=platform.progress_interval_seconds,
        every_rounds=every_rounds,
        **options,
    )


def train(paths: SageMakerPaths, *, started: datetime | None = None) -> TrainingResult:
    config = settings_module.load(paths.hyperparameters)
    platform = config.platform
    train_set, validation_set = datasets(
        read_channel(paths.channel("train"), platform.target),
        read_channel(paths.channel("validation"), platform.target),
        platform.problem_type,
    )
    objective = Objective.of(platform.problem_type, platform.objective)
    trainer_type = TRAINERS[platform.algorithm]
    trainer = trainer_type(platform.problem_type, config.model, device=platform.device, objective=objective)
    rounds = int(config.model[trainer_type.rounds_hyperparameter])
    reporter = progress_reporter(
        platform,
        os.environ.get("TRAINING_JOB_NAME", "local"),
        attempt=attempt_of(started or datetime.now(UTC)),
        objective=objective.metric,
        every_rounds=platform.progress_every_rounds or max(1, math.ceil(rounds / CURVE_POINTS)),
    )

    def on_round(epoch: int, metrics: dict[str, float], kept: Kept) -> None:
        print(metric_line(f"round {epoch}", metrics), flush=True)
        reporter.report(epoch, metrics, kept)

    try:
        result = trainer.fit(
            train_set,
            validation_set,
            on_round=on_round,
            checkpoints=paths.checkpoints,
            checkpoint_every=platform.checkpoint_every,
        )
    finally:
        reporter.close()
    paths.model.mkdir(parents=True, exist_ok=True)
    trainer.save(result.model, paths.model)
    # The metrics of the model as saved, read back from its file: the numbers evaluate ranks it by.
    saved = load_predictor(paths.model, platform.algorithm, platform.problem_type)
    metrics = measure(platform.problem_type, saved, {"train": train_set, "validation": validation_set})
    metadata = {
        "algorithm": platform.algorithm,
        "problem_type": platform.problem_type,
        "target": platform.target,
        # Source names in model order; schema: each one's restricted name, type and categories.
        "features": train_set.encoding.names if train_set.encoding else train_set.feature_names,
        "schema": train_set.encoding.to_json() if train_set.encoding else None,
        "classes": train_set.classes,
        "hyperparameters": config.model,
        "objective": objective.metric,
        "round": result.kept_round,
        "metrics": metrics,
        "tenant": platform.tenant,
        "model": platform.model,
        "run_id": platform.run_id,
        "trial": platform.trial,
    }
    (paths.model / "metadata.json").write_text(json.dumps(metadata, indent=2, sort_keys=True))
    # Last: the digest of every file above, which the inference server checks before it loads any of them.
    write_manifest(paths.model)
    # Last, so SageMaker's final metric values are the saved model's.
    print(metric_line(f"kept round {result.kept_round}", metrics), flush=True)
    return result


def main(paths: SageMakerPaths | None = None) -> int:
    paths = paths or SageMakerPaths.from_environment()
    try:
        train(paths)
    except (settings_module.SettingsError, TrainingError) as error:
        return write_exit_reason(paths.failure, "training", str(error))
    except Exception as error:
        traceback.print_exc()
        return write_exit_reason(paths.failure, "training", f"{type(error).__name__}: {error}")
    return 0
