"""``baseline``: the Processing job that computes a model's drift baseline before the model is registered.

The training state machine runs it once per model it is about to register (docs/training-pipeline.md),
on a small CPU instance with the training image: ``python -m mlops_platform.training baseline [--model PATH]
[--training-data PATH] [--holdout-data PATH] [--schema PATH] [--output DIR] [--bins N]``. Each path defaults to its
Processing folder under ``SM_PROCESSING_ROOT`` (default ``/opt/ml/processing``), so the job runs as
plain Python on any folder too:

- ``input/model/model.tar.gz``: the model artifact, as the training job wrote it; it is unpacked and
  loaded the way ``serve`` loads it (``serve.Model``), so the baseline's predictions are the ones the
  served model makes;
- ``input/training/``: the run's training split, ``<run_id>-train.parquet`` as ``prepare`` wrote it
  (a Parquet file, or a folder of them): the features' distributions;
- ``input/holdout/``: rows the model never trained on, the run's validation and test splits
  (``<run_id>-validation.parquet``, ``<run_id>-test.parquet``): the predictions' distribution. A
  model scores its own training rows more confidently than anything it serves, so a baseline of
  those scores would show drift on the first day of unshifted traffic. A row whose ``split``
  column (``prepare`` writes one) says ``train`` is refused;
- ``input/schema/feature-schema.json``: the run's feature schema (names and types, in the order the
  model reads them), as evaluate wrote it and the package links it;
- ``output/baseline/baseline.json``: the baseline, the only file written there. SageMaker uploads it
  next to ``model.tar.gz`` (``.../output/baseline.json``): the drift monitor finds a model's baseline
  from its artifact's URI by that rule alone.

The document is ``compute_baseline``'s (per-feature binned distributions, missing rates, ranges and
types of the training rows, category frequencies of a categorical one; the distribution of the
model's predictions on the held-out rows, each class's probability for a multiclass model) plus
``model``: who the model is (its metadata.json's identity), so a baseline can be checked against the
model it sits beside. The same inputs give the same bytes.

On failure nothing is written to ``output/baseline`` (so nothing is uploaded), the reason goes, in one
line, to ``/opt/ml/output/message`` (the job's ExitMessage, which the state machine's cause carries),
and the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import tarfile
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# pyarrow ships no type hints (pyproject.toml lists no override for it).
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from mlops_platform.monitoring.baseline import TYPES, compute_baseline
from mlops_platform.sagemaker_paths import ProcessingPaths, write_exit_reason
from mlops_platform.schema.columns import restricted_name
from mlops_platform.training.serve import Model, ServeError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1  # of feature-schema.json (lambda/evaluate)
BASELINE_FILE = "baseline.json"
MODEL_ARCHIVE = "model.tar.gz"
DEFAULT_BINS = 10
MAX_BINS = 100
# The model's identity in metadata.json (train.py), copied into the baseline.
MODEL_IDENTITY = ("tenant", "model", "run_id", "trial", "algorithm", "problem_type")
USAGE = "baseline [--model PATH] [--training-data PATH] [--holdout-data PATH] [--schema PATH] [--output DIR] [--bins N]"
TRAINING_SPLIT = "train"  # prepare's name for the rows a model trains on (the ``split`` column)


class BaselineError(Exception):
    """A problem with the job's inputs, stated in one line."""


@dataclass(frozen=True)
class Arguments:
    model: Path
    training_data: Path
    holdout_data: Path
    schema: Path
    output: Path
    bins: int


def load_schema(path: Path) -> dict[str, str]:
    """The schema's features, name -> type, in the schema's order."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BaselineError(f"{path}: the feature schema is missing; expected the run's feature-schema.json") from None
    except (UnicodeDecodeError, ValueError) as error:
        raise BaselineError(f"{path}: the feature schema is not JSON ({error})") from None
    features = document.get("features") if isinstance(document, dict) else None
    if not isinstance(document, dict) or document.get("schema_version") != SCHEMA_VERSION:
        raise BaselineError(f"{path}: the feature schema is not a schema_version {SCHEMA_VERSION} JSON object")
    if (
        not isinstance(features, list)
        or not features
        or not all(isinstance(f, dict) and isinstance(f.get("name"), str) for f in features)
    ):
        raise BaselineError(f"{path}: key 'features' must be a non-empty list of {{name, type}}")
    declared = {f["name"]: f.get("type") for f in features}
    if len(declared) != len(features):
        raise BaselineError(f"{path}: key 'features' names a feature twice")
    unknown = {name: kind for name, kind in declared.items() if kind not in TYPES}
    if unknown:
        raise BaselineError(f"{path}: unknown feature types {unknown}; allowed: {', '.join(sorted(TYPES))}")
    return declared


def read_training_data(path: Path, features: list[str], what: str = "training data") -> pd.DataFrame:
    """The declared feature columns of every Parquet file at ``path`` (a file or a folder), in file-name order,
    named by the schema's (source) names.

    ``split`` comes along where a file has it (``prepare``'s column), for ``read_holdout_data``'s check.
    """
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.rglob("*.parquet") if p.is_file())
    else:
        files = []
    if not files:
        raise BaselineError(f"no {what}: {path} is not a .parquet file or a folder holding one")
    frames = []
    for file in files:
        try:
            columns = pq.ParquetFile(file).schema_arrow.names
        except Exception as error:  # pyarrow raises several types for a file that is not Parquet
            raise BaselineError(f"{file}: not a Parquet file ({type(error).__name__}: {error})") from None
        # prepare writes each feature under its restricted name (``schema.columns``); older files under the source name.
        names = {name: name if name in columns else restricted_name(name) for name in features}
        missing = [name for name, column in names.items() if column not in columns]
        if missing:
            raise BaselineError(f"{file}: the {what} lacks the schema's features {missing[:5]}")
        read = pd.read_parquet(file, columns=[*names.values(), *(["split"] if "split" in columns else [])])
        frames.append(read.rename(columns={column: name for name, column in names.items()}))
    frame = pd.concat(frames, ignore_index=True)
    if frame.empty:
        raise BaselineError(f"the {what} under {path} has no rows")
    return frame


def read_holdout_data(path: Path, features: list[str]) -> pd.DataFrame:
    """Rows the model did not train on: the validation and test splits, never a training row."""
    frame = read_training_data(path, features, "held-out data")
    if "split" in frame.columns:
        trained_on = int((frame["split"] == TRAINING_SPLIT).sum())
        if trained_on:
            raise BaselineError(
                f"the held-out data under {path} holds {trained_on} rows of the {TRAINING_SPLIT!r} split; "
                "the predictions' baseline needs rows the model did not train on (validation or test)"
            )
    return frame


def load_model(archive: Path, into: Path) -> Model:
    """``model.tar.gz`` unpacked into ``into`` and loaded as ``serve`` loads it."""
    if not archive.is_file():
        raise BaselineError(f"{archive}: the model artifact is missing; expected the training job's {MODEL_ARCHIVE}")
    try:
        with tarfile.open(archive, "r:gz") as bundle:
            # The "data" filter refuses absolute paths, links out of the folder and device files.
            bundle.extractall(into, filter="data")
    except (tarfile.TarError, OSError, EOFError) as error:
        raise BaselineError(f"{archive}: not a readable {MODEL_ARCHIVE} ({type(error).__name__}: {error})") from None
    try:
        return Model.load(into)
    except ServeError as error:
        raise BaselineError(f"{archive}: {error}") from None


def predictions(model: Model, frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    """The model's scores of ``frame``'s rows, with the features in the order it was trained on."""
    trained_on = [str(name) for name in model.metadata.get("features", [])]
    if trained_on != features:
        raise BaselineError(
            f"the model was trained on {len(trained_on)} features {trained_on[:5]}, "
            f"the schema declares {len(features)}: {features[:5]} (the same names, in the same order, are needed)"
        )
    # Encoded as serving encodes a request: categories by the model's codes, an unseen one missing.
    encoding = model.served.encoding
    matrix = encoding.frame_matrix(frame.rename(columns=dict(zip(encoding.names, encoding.columns, strict=True))))
    scores = np.asarray(model.predict(matrix), dtype=float)
    classes = model.served.classes if model.served.problem_type == "multiclass" else ()
    expected = (len(frame), len(classes)) if classes else (len(frame),)
    if scores.shape != expected:
        raise BaselineError(f"the model returned {scores.shape} scores for {len(frame)} rows; expected {expected}")
    return scores


def baseline(arguments: Arguments, scratch: Path) -> dict[str, Any]:
    declared = load_schema(arguments.schema)
    features = list(declared)
    frame = read_training_data(arguments.training_data, features)[features]
    holdout = read_holdout_data(arguments.holdout_data, features)
    model = load_model(arguments.model, scratch)
    scores = predictions(model, holdout, features)
    classes = model.served.classes if scores.ndim == 2 else ()
    document = compute_baseline(frame, declared, scores, arguments.bins, classes)
    document["model"] = {key: model.metadata.get(key) for key in MODEL_IDENTITY}
    return document


def encode(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, sort_keys=True, allow_nan=False, separators=(",", ":")) + "\n").encode("utf-8")


def write(output: Path, body: bytes) -> Path:
    """``output/baseline.json``, whole or not at all: a failed write leaves nothing for SageMaker to upload."""
    output.mkdir(parents=True, exist_ok=True)
    target = output / BASELINE_FILE
    partial = output.parent / f".{BASELINE_FILE}.partial"  # outside the uploaded folder
    partial.write_bytes(body)
    partial.replace(target)
    return target


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would exit 2 without a failure reason
        raise BaselineError(f"{message}; usage: {USAGE}")


def parse_arguments(argv: list[str], paths: ProcessingPaths) -> Arguments:
    inputs, outputs = paths.root / "input", paths.root / "output"
    parser = _Parser(prog="baseline", description="A model's drift baseline from its training data.")
    parser.add_argument("--model", type=Path, default=inputs / "model" / MODEL_ARCHIVE, help="model.tar.gz")
    parser.add_argument("--training-data", type=Path, default=inputs / "training", help="Parquet file or folder")
    parser.add_argument(
        "--holdout-data", type=Path, default=inputs / "holdout", help="Parquet file or folder: validation and test"
    )
    parser.add_argument("--schema", type=Path, default=inputs / "schema" / "feature-schema.json")
    parser.add_argument("--output", type=Path, default=outputs / "baseline", help="where baseline.json goes")
    parser.add_argument("--bins", default=str(DEFAULT_BINS), help=f"bins per feature, 1 to {MAX_BINS}")
    parsed = parser.parse_args(argv)
    if not parsed.bins.isdigit() or not 1 <= int(parsed.bins) <= MAX_BINS:
        raise BaselineError(f"--bins has value {parsed.bins!r}; allowed: a whole number from 1 to {MAX_BINS}")
    return Arguments(
        parsed.model, parsed.training_data, parsed.holdout_data, parsed.schema, parsed.output, int(parsed.bins)
    )


def main(argv: list[str], paths: ProcessingPaths | None = None) -> int:
    paths = paths or ProcessingPaths.from_environment()
    try:
        arguments = parse_arguments(argv, paths)
        with tempfile.TemporaryDirectory(prefix="model-") as scratch:
            document = baseline(arguments, Path(scratch))
        target = write(arguments.output, encode(document))
    except BaselineError as error:
        return write_exit_reason(paths.message, "baseline", str(error))
    except Exception as error:
        traceback.print_exc()
        return write_exit_reason(paths.message, "baseline", f"{type(error).__name__}: {error}")
    log.info(
        "baseline of %d training rows, %d features and the predictions of %d held-out rows written to %s",
        document["rows"],
        len(document["features"]),
        document["predictions"]["count"],
        target,
    )
    return 0
