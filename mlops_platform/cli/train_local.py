"""Train a tenant's models on this machine with the images' own code: prepare, then every trial of the grid.

    mlops train-local --tenant config/pipelines/<tenant>.yaml --data FILE [--output DIR] [--day YYYY-MM-DD]

The tenant file is read and checked as synth reads it (``config.loader``) and published as synth
publishes it (``PipelineConfig.published()``). FILE is a CSV file with a header row, a Parquet file
or a JSON Lines file, with the columns the tenant file declares; its columns are checked first, as
``mlops upload`` checks them. Then, in a temporary folder laid out as SageMaker lays out its jobs:

1. ``prepare`` (the Processing job's code, with the arguments the plan gives it) reads FILE from
   ``input/raw/dt=<day>/`` and writes the train, validation and test splits and its report; rejected
   rows above the tenant's ``max_rejected_share`` stop here with prepare's own sentence;
2. ``train`` (the training job's code) trains each trial of each model, one at a time, with the
   hyperparameters the plan would send (``mlops_platform.training.plan.trials.build_items``);
3. each model's best trial by the tenant's objective is scored on the test split and packed as
   SageMaker packs it, ``model.tar.gz``.

The output folder (default ``local-runs/<tenant>/<run id>``) receives each model's
``<model>/model.tar.gz`` (``mlops serve-local --model`` serves it), prepare's ``report.json`` and
``rejected.jsonl``, and ``summary.json``. Progress goes to standard error; the last line of standard
output is the summary as one JSON object, the same as ``summary.json``:

    {"tenant": "wine", "rows": {"valid": 178, "rejected": 0},
     "models": {"xgboost": {"metric": "validation:mlogloss", "validation": 0.08, "test": 0.11,
                            "artifact": "/abs/path/xgboost/model.tar.gz"}}}

A record's split comes from a hash of the file's name, the day and the row's number, so the same
file, name and ``--day`` (default: today, UTC) give the same splits. Exit status 0, or 2 with one
sentence for bad input: a missing file, a tenant file synth would refuse, columns that do not match
the schema, rejected rows above the ceiling, a trial whose data cannot train.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shutil
import sys
import tarfile
import tempfile
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from mlops_platform.cli import CommandError

HELP = "Run prepare and every model of a tenant's grid on this machine; print one JSON summary line"

RUN_ID = "local"
OUTPUT_ROOT = Path("local-runs")
SPLITS = ("train", "validation", "test")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenant", required=True, type=Path, help="the tenant file, config/pipelines/<tenant>.yaml")
    parser.add_argument("--data", required=True, type=Path, help="the dataset: a .csv, .parquet or .jsonl file")
    parser.add_argument("--output", type=Path, help="a new or empty folder (default: local-runs/<tenant>/<run id>)")
    parser.add_argument("--day", help="the raw day the file is delivered on, yyyy-mm-dd (default: today, UTC)")


def run(args: Any) -> int:
    data: Path = args.data
    _check_data(data)
    day = _day(args.day)
    pipeline = _pipeline(args.tenant)
    published = pipeline.published()
    from mlops_platform.cli.upload import check_columns

    for note in check_columns(data, published, pipeline.dataset.name):
        print(f"mlops train-local: {note}", file=sys.stderr)
    output = _output(args.output, pipeline.tenant)
    with tempfile.TemporaryDirectory(prefix="mlops-train-local-") as folder:
        summary = train_local(published, data, day, Path(folder), output)
    (output / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(summary))
    return 0


def _check_data(path: Path) -> None:
    from mlops_platform.data.readers import SUFFIXES

    if not path.is_file():
        raise CommandError(f"--data {path} is not a file")
    if path.suffix not in SUFFIXES:
        raise CommandError(f"--data {path.name} must be a .csv, .parquet or .jsonl file")


def _day(text: str | None) -> date:
    if text is None:
        return datetime.now(UTC).date()
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise CommandError(f"--day has value {text!r}; allowed: a date as yyyy-mm-dd")


def _pipeline(path: Path) -> Any:
    from config.files import ConfigError
    from config.loader import load_pipeline

    try:
        return load_pipeline(path)
    except ConfigError as error:
        raise CommandError(str(error).rstrip(".")) from None


def _output(chosen: Path | None, tenant: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    output = (chosen or OUTPUT_ROOT / tenant / f"{RUN_ID}-{stamp}").resolve()
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise CommandError(f"--output {output} is not an empty folder; name a new one")
    output.mkdir(parents=True, exist_ok=True)
    return output


def train_local(published: dict[str, Any], data: Path, day: date, work: Path, output: Path) -> dict[str, Any]:
    """Prepare, train every trial, keep each model's best; the summary (see the module's docstring)."""
    from mlops_platform.training.plan.request import RunRequest

    tenant = published["tenant"]
    request = RunRequest(tenant=tenant, run_id=RUN_ID, day=day.isoformat(), started_at=f"{day}T00:00:00Z", models=None)
    report = _prepare(published, request, data, work)
    shutil.copytree(work / "processing" / "output" / "report", output / "prepare")
    features = work / "processing" / "output" / "features"
    test_split = work / "test"
    test_split.mkdir()
    shutil.copyfile(features / f"{RUN_ID}-test.parquet", test_split / "test.parquet")
    objective = published["objective"]["metric"]
    best: dict[str, tuple[float | None, Path]] = {}
    for item in _trials(published, request):
        value, model_dir = _train(item, features, work / "trials" / item["trial"], objective)
        incumbent = best.get(item["model"])
        if incumbent is None or _better(value, incumbent[0], published["objective"]["direction"]):
            best[item["model"]] = (value, model_dir)
    models = {}
    for model, (value, model_dir) in best.items():
        archive = output / model / "model.tar.gz"
        _pack(model_dir, archive)
        models[model] = {
            "metric": objective,
            "validation": value,
            "test": holdout_metric(model_dir, model_dir.parent / "input" / "data" / "train", test_split, objective),
            "artifact": str(archive),
        }
    return {"tenant": tenant, "rows": {"valid": report["valid"], "rejected": report["rejected"]}, "models": models}


def _prepare(published: dict[str, Any], request: Any, data: Path, work: Path) -> dict[str, Any]:
    """The Processing job, with the arguments the plan gives it, on FILE laid out as the raw zone holds it."""
    from mlops_platform.data import prepare
    from mlops_platform.data.raw_records import PrepareError
    from mlops_platform.sagemaker_paths import ProcessingPaths
    from mlops_platform.training.plan.jobs import PROCESSING_ROOT, prepare_request

    paths = ProcessingPaths(root=work / "processing", message=work / "ml" / "output" / "message")
    raw = paths.raw / f"dt={request.day}"
    raw.mkdir(parents=True)
    shutil.copyfile(data, raw / data.name)
    config = paths.root / "input" / "config" / f"{request.tenant}.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps(published), encoding="utf-8")
    arguments = prepare_request(_settings(), published, request)["AppSpecification"]["ContainerArguments"]
    try:
        config_path, run_id, run_day = prepare.parse_arguments(
            [argument.replace(PROCESSING_ROOT, str(paths.root)) for argument in arguments[1:]]
        )
        report = prepare.prepare(paths, config_path, run_id, run_day)
    except PrepareError as error:
        raise CommandError(f"prepare refused {data.name}: {error}") from None
    document = report.as_json()
    splits = ", ".join(f"{split} {count}" for split, count in document["splits"].items())
    print(f"prepare: {document['valid']} valid rows ({splits}), {document['rejected']} rejected", file=sys.stderr)
    return dict(document)


def _settings() -> Any:
    """The plan's settings for jobs that run here: no buckets, images or progress bus (train sends no events)."""
    from mlops_platform.training.plan.settings import Settings

    here = "local"
    return Settings(
        config_bucket=here,
        artifacts_bucket=here,
        raw_bucket=here,
        curated_bucket=here,
        features_bucket=here,
        predictions_bucket=here,
        ledger_table=here,
        job_prefix=here,
        progress_bus_name="",
        event_source=here,
        training_image_uri=here,
        gpu_training_image_uri=here,
        kms_key_arn=here,
        processing_instance_type="ml.t3.medium",
        processing_local_storage=False,
        batch_transform_instance_type="ml.m5.large",
        batch_transform_local_storage=False,
        progress_interval_seconds="60",
        region=here,
    )


def _trials(published: dict[str, Any], request: Any) -> list[dict[str, Any]]:
    """The plan's items: each trial's model, id and ``HyperParameters``, exactly as the training jobs get them."""
    from mlops_platform.training.plan.errors import PlanError
    from mlops_platform.training.plan.trials import build_items

    try:
        return build_items(_settings(), published, request)
    except PlanError as error:
        raise CommandError(str(error)) from None


def _train(item: dict[str, Any], features: Path, root: Path, objective: str) -> tuple[float | None, Path]:
    """One trial, as its training job runs it on /opt/ml; (its objective value, its model folder)."""
    from mlops_platform.sagemaker_paths import SageMakerPaths
    from mlops_platform.training import settings as training_settings
    from mlops_platform.training.train import TrainingError, train

    paths = SageMakerPaths(root=root, checkpoints=root / "checkpoints")
    for channel in ("train", "validation"):
        paths.channel(channel).mkdir(parents=True)
        shutil.copyfile(features / f"{RUN_ID}-{channel}.parquet", paths.channel(channel) / f"{channel}.parquet")
    paths.hyperparameters.parent.mkdir(parents=True)
    paths.hyperparameters.write_text(json.dumps(item["request"]["HyperParameters"]), encoding="utf-8")
    log = root / "output" / "train.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        with log.open("w", encoding="utf-8") as stream, contextlib.redirect_stdout(stream):
            train(paths)
    except (training_settings.SettingsError, TrainingError) as error:
        raise CommandError(f"trial {item['trial']} of model {item['model']!r} cannot train: {error}") from None
    metrics = json.loads((paths.model / "metadata.json").read_text(encoding="utf-8"))["metrics"]
    value = _finite(metrics.get(objective))
    print(f"trial {item['trial']} {item['model']} {item['hyperparameters']}: {objective}={value}", file=sys.stderr)
    return value, paths.model


def _better(value: float | None, incumbent: float | None, direction: str) -> bool:
    """Strictly better by the objective; a tie keeps the earlier trial, as evaluate ranks them."""
    if value is None:
        return False
    if incumbent is None:
        return True
    return value > incumbent if direction == "maximize" else value < incumbent


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def holdout_metric(model_dir: Path, train_split: Path, test_split: Path, objective: str) -> float | None:
    """The objective's metric on the test split, of the model as saved, encoded as training encoded its rows.

    None when the test split is empty or the metric is undefined there (AUC with one class present).
    """
    from mlops_platform.training.algorithms import load_model, measure
    from mlops_platform.training.train import datasets, read_channel

    metadata, predict = load_model(model_dir)
    train_channel = read_channel(train_split, metadata["target"])
    test_channel = read_channel(test_split, metadata["target"])
    if test_channel.frame.empty:
        return None
    # The model's own classes (its output order), whatever labels the test split holds.
    schema = {**(train_channel.schema or {}), "classes": metadata["classes"]}
    _, test = datasets(replace(train_channel, schema=schema), test_channel, metadata["problem_type"])
    metrics = measure(metadata["problem_type"], predict, {"test": test})
    return _finite(metrics.get("test:" + objective.split(":", 1)[1]))


def _pack(model_dir: Path, archive: Path) -> None:
    """``model.tar.gz`` as SageMaker packs ``/opt/ml/model``: its files at the archive's root."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as bundle:
        for file in sorted(model_dir.iterdir()):
            bundle.add(file, arcname=file.name)
