"""Build the example models, ``models/example/<model>/model.tar.gz``, which the ``example`` endpoints serve, and
their drift baselines.

The example tenant's endpoint serves them from the day an environment is deployed, before anything
has been trained there (each variant's model pointer holds the sentinel ``example``, and the
variant's ``example_model`` names which of these it serves). One per model of the example tenant
(``config/pipelines/example.yaml``): ``xgboost`` (XGBoost, 50 trees of depth 3) and ``linear``
(logistic regression by SGD, 50 epochs), so an A/B endpoint serves two different models out of the
box. They are trained here, on the shipped dataset (``data/example/``), by the training image's own
code: ``prepare`` splits the raw records as the Processing job does, ``train`` writes the model
directory (the model and ``metadata.json``) as a training job does. So each artifact is exactly
what a real run of the example tenant would produce, only smaller.

An archive is a CDK file asset, so its bytes decide the asset hash: the same inputs must give the
same bytes on every build. Training is deterministic (XGBoost: one thread, no row or column
sampling, so its seed, left at its default 0, draws nothing, and the CPU device even where a GPU
exists; the linear model: scikit-learn's SGD with ``random_state=0``), and the archive has no time
or owner in it (entries sorted, mtime 0, uid and gid 0, no user names; the gzip header has mtime 0
and no file name).

``models/example/<model>/baseline.json`` is the model's drift baseline, what the drift monitor
compares the traffic of a variant serving it with (``mlops_platform.monitoring.baseline.compute_baseline``):
the train split's declared features, and the model's scores on the rows it never trained on (the
validation and test splits, as the baseline job scores them), computed as the serving container
scores them (float32). It holds no time, and its JSON is written with fixed indentation and key
order, so it is as byte-stable as the archive. ``--check`` keeps the committed files equal to a
rebuild.

    python -m scripts.example_model                       # write every example model and its baseline
    python -m scripts.example_model --model linear        # only one of them
    python -m scripts.example_model --model linear --output /tmp/m.tgz --baseline /tmp/baseline.json
    python -m scripts.example_model --check               # exit 1 if a committed file differs
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import shutil
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import xgboost as xgb

from config.example_models import EXAMPLE_MODEL_NAMES, archive_path, baseline_path
from config.loader import load_pipelines
from config.tenants import PipelineConfig
from mlops_platform.data.prepare import prepare
from mlops_platform.monitoring.baseline import compute_baseline
from mlops_platform.sagemaker_paths import ProcessingPaths, SageMakerPaths
from mlops_platform.training.algorithms import load_model
from mlops_platform.training.train import metric_line, train

ROOT = Path(__file__).resolve().parent.parent

DATASET = ROOT / "data" / "example" / "breast-cancer.jsonl"
PIPELINES = ROOT / "config" / "pipelines"
TENANT = "example"
RUN_ID = "example"
# The dataset's records were all received on 2026-01-01 (scripts/example_dataset.py).
RAW_DAY = "2026-01-01"
RUN_DAY = date(2026, 1, 1)
HOLDOUT_SPLITS = ("validation", "test")  # rows the model never trained on, as the baseline job scores them
GZIP_LEVEL = 9


@dataclass(frozen=True)
class Recipe:
    """How one example model is trained: its algorithm, fixed hyperparameters and the files its archive holds."""

    algorithm: str
    hyperparameters: dict[str, str]
    members: tuple[str, ...]


# Each a fixed size whatever the validation curve does: every round kept (no early stopping).
RECIPES: dict[str, Recipe] = {
    # 50 trees of depth 3.
    "xgboost": Recipe(
        algorithm="xgboost",
        hyperparameters={"num_round": "50", "max_depth": "3", "eta": "0.3", "early_stopping_rounds": "0"},
        members=("manifest.sha256", "metadata.json", "model.json"),
    ),
    # Logistic regression, 50 SGD epochs on standardized features (the tenant's first combination).
    "linear": Recipe(
        algorithm="linear",
        hyperparameters={"epochs": "50", "alpha": "0.0001", "eta0": "0.01", "early_stopping_rounds": "0"},
        members=("manifest.sha256", "metadata.json", "linear.json"),
    ),
}


def example_tenant() -> PipelineConfig:
    [tenant] = [pipeline for pipeline in load_pipelines(PIPELINES) if pipeline.tenant == TENANT]
    return tenant


def prepare_splits(tenant: PipelineConfig, work: Path) -> ProcessingPaths:
    """The shipped dataset prepared as the pipeline's Processing job prepares it: train/validation/test splits."""
    processing = ProcessingPaths(root=work / "processing", message=work / "ml" / "output" / "message")
    raw_day = processing.raw / f"dt={RAW_DAY}"
    raw_day.mkdir(parents=True)
    shutil.copy(DATASET, raw_day / f"{TENANT}.jsonl")
    config = processing.root / "input" / "config" / f"{TENANT}.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps(tenant.published()))  # what synth publishes and the Processing job reads
    prepare(processing, config, RUN_ID, RUN_DAY)
    return processing


def train_model(tenant: PipelineConfig, model: str, processing: ProcessingPaths, work: Path) -> Path:
    """Train one example model on the prepared splits as a training job does; the model directory."""
    recipe = RECIPES[model]
    job = SageMakerPaths(root=work / model, checkpoints=work / model / "checkpoints")
    for channel in ("train", "validation"):
        job.channel(channel).mkdir(parents=True)
        shutil.copy(processing.features / f"{RUN_ID}-{channel}.parquet", job.channel(channel))
    job.hyperparameters.parent.mkdir(parents=True, exist_ok=True)
    job.hyperparameters.write_text(
        json.dumps(
            {
                "mlops_algorithm": recipe.algorithm,
                "mlops_problem_type": tenant.dataset.problem_type,
                "mlops_target": tenant.dataset.target,
                "mlops_tenant": TENANT,
                "mlops_model": model,
                "mlops_run_id": RUN_ID,
                "mlops_trial": "0",
                "mlops_device": "cpu",  # the same trees on a machine with a GPU
                **recipe.hyperparameters,
            }
        )
    )
    # One thread: a histogram summed in another order may round differently, and change a split.
    with xgb.config_context(nthread=1), contextlib.redirect_stdout(io.StringIO()):  # one metric line a round
        result = train(job)
    print(metric_line(f"{model}: kept round {result.kept_round} of {result.rounds_run}", result.kept_metrics))
    return job.model


def archive(directory: Path, members: tuple[str, ...]) -> bytes:
    """``model.tar.gz`` as SageMaker unpacks it into /opt/ml/model, with nothing in it that varies."""
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(members):
            content = (directory / name).read_bytes()
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(content))
    compressed = io.BytesIO()
    # filename="" leaves the header's FNAME out; mtime=0 leaves the time out.
    with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, compresslevel=GZIP_LEVEL, mtime=0) as stream:
        stream.write(tar_bytes.getvalue())
    return compressed.getvalue()


def baseline(tenant: PipelineConfig, model: Path, splits: Path) -> bytes:
    """``baseline.json``: the train split's declared features, the model's scores on the held-out splits (float32)."""
    features = {name: spec.type for name, spec in tenant.dataset.features.items()}
    frame = pd.read_parquet(splits / f"{RUN_ID}-train.parquet")[list(features)]
    held_out = pd.concat(
        [pd.read_parquet(splits / f"{RUN_ID}-{split}.parquet")[list(features)] for split in HOLDOUT_SPLITS],
        ignore_index=True,
    )
    _, predict = load_model(model)
    with xgb.config_context(nthread=1):
        scores = predict(held_out.to_numpy(dtype="float32"))
    document = compute_baseline(frame, features, scores)
    return (json.dumps(document, indent=2, allow_nan=False) + "\n").encode()


@dataclass(frozen=True)
class Built:
    model: bytes  # model.tar.gz
    baseline: bytes  # baseline.json


def build(models: tuple[str, ...] = EXAMPLE_MODEL_NAMES) -> dict[str, Built]:
    """Each model's archive and baseline bytes, trained, packed and summarized in a temporary folder."""
    tenant = example_tenant()
    built: dict[str, Built] = {}
    with tempfile.TemporaryDirectory(prefix="example-model-") as folder:
        work = Path(folder)
        processing = prepare_splits(tenant, work)
        for model in models:
            directory = train_model(tenant, model, processing, work)
            built[model] = Built(
                model=archive(directory, RECIPES[model].members),
                baseline=baseline(tenant, directory, processing.features),
            )
    return built


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.example_model", description="Build the example models.")
    parser.add_argument(
        "--model", choices=EXAMPLE_MODEL_NAMES, help="build only this example model (default: every one)"
    )
    parser.add_argument("--output", type=Path, help="where to write the archive (with --model; default: its folder)")
    parser.add_argument("--baseline", type=Path, help="where to write the baseline (with --model; default: its folder)")
    parser.add_argument("--check", action="store_true", help="exit 1 if a file differs from what the script builds")
    arguments = parser.parse_args(argv)
    if (arguments.output or arguments.baseline) and not arguments.model:
        parser.error("--output and --baseline name one model's files: give --model too")
    models = (arguments.model,) if arguments.model else EXAMPLE_MODEL_NAMES
    built = build(models)
    files: list[tuple[Path, bytes]] = []
    for model in models:
        files.append((arguments.output or archive_path(model), built[model].model))
        files.append((arguments.baseline or baseline_path(model), built[model].baseline))
    if arguments.check:
        stale = [path for path, content in files if not path.is_file() or path.read_bytes() != content]
        for path in stale:
            print(f"{path} differs from what the script builds; run: python -m scripts.example_model", file=sys.stderr)
        if stale:
            return 1
        for path, content in files:
            print(f"{path}: up to date ({len(content)} bytes)")
        return 0
    for path, content in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        print(f"wrote {path} ({len(content)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
