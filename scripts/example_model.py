"""Build the example model, ``models/example/model.tar.gz``, which every ``example`` endpoint serves, and its baseline.

The example tenant's endpoint serves it from the day an environment is deployed, before anything
has been trained there (its model pointer holds the sentinel ``example``). It is trained here, on
the shipped dataset (``data/example/``, ``config/pipelines/example.yaml``), by the training image's
own code: ``prepare`` splits the raw records as the Processing job does, ``train`` writes the model
directory (``model.json`` and ``metadata.json``) as a training job does. So the artifact is exactly
what a real run of the example tenant would produce, only smaller: XGBoost, 50 trees of depth 3.

The archive is a CDK file asset, so its bytes decide the asset hash: the same inputs must give the
same bytes on every build. Training is deterministic (one thread, no row or column sampling, so
XGBoost's seed, left at its default 0, draws nothing; the CPU device, even where a GPU exists), and
the archive has no time or owner in it (entries sorted, mtime 0, uid and gid 0, no user names; the
gzip header has mtime 0 and no file name).

``models/example/baseline.json`` is the model's drift baseline, what the drift monitor compares the
``example`` endpoint's traffic with (``mlops_platform.monitoring.baseline.compute_baseline``): the train
split's declared features, and the model's scores on the rows it never trained on (the validation
and test splits, as the baseline job scores them), computed as the serving container scores them
(float32). It holds no time, and its JSON is written with fixed indentation and
key order, so it is as byte-stable as the archive. ``--check`` keeps both committed files equal to
a rebuild.

    python -m scripts.example_model                       # write models/example/model.tar.gz and baseline.json
    python -m scripts.example_model --output /tmp/m.tgz --baseline /tmp/baseline.json   # write elsewhere
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

from config.loader import load_pipelines
from config.tenants import PipelineConfig
from mlops_platform.data.prepare import prepare
from mlops_platform.monitoring.baseline import compute_baseline
from mlops_platform.sagemaker_paths import ProcessingPaths, SageMakerPaths
from mlops_platform.training.algorithms import load_model
from mlops_platform.training.train import metric_line, train

ROOT = Path(__file__).resolve().parent.parent

OUTPUT = ROOT / "models" / "example" / "model.tar.gz"
BASELINE = ROOT / "models" / "example" / "baseline.json"
DATASET = ROOT / "data" / "example" / "breast-cancer.jsonl"
PIPELINES = ROOT / "config" / "pipelines"
TENANT = "example"
MODEL = "xgboost"  # the example tenant's model of that algorithm (config/pipelines/example.yaml)
RUN_ID = "example"
# The dataset's records were all received on 2026-01-01 (scripts/example_dataset.py).
RAW_DAY = "2026-01-01"
RUN_DAY = date(2026, 1, 1)
# num_round trees, every one kept (no early stopping): a fixed size, whatever the validation curve does.
HYPERPARAMETERS = {"num_round": "50", "max_depth": "3", "eta": "0.3", "early_stopping_rounds": "0"}
MEMBERS = ("metadata.json", "model.json")
HOLDOUT_SPLITS = ("validation", "test")  # rows the model never trained on, as the baseline job scores them
GZIP_LEVEL = 9


def example_tenant() -> PipelineConfig:
    [tenant] = [pipeline for pipeline in load_pipelines(PIPELINES) if pipeline.tenant == TENANT]
    return tenant


def train_model(tenant: PipelineConfig, work: Path) -> Path:
    """Prepare the shipped dataset and train on its splits as the pipeline does; the model directory."""
    processing = ProcessingPaths(root=work / "processing", message=work / "ml" / "output" / "message")
    raw_day = processing.raw / f"dt={RAW_DAY}"
    raw_day.mkdir(parents=True)
    shutil.copy(DATASET, raw_day / f"{TENANT}.jsonl")
    config = processing.root / "input" / "config" / f"{TENANT}.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps(tenant.published()))  # what synth publishes and the Processing job reads
    prepare(processing, config, RUN_ID, RUN_DAY)

    job = SageMakerPaths(root=work / "ml", checkpoints=work / "ml" / "checkpoints")
    for channel in ("train", "validation"):
        job.channel(channel).mkdir(parents=True)
        shutil.copy(processing.features / f"{RUN_ID}-{channel}.parquet", job.channel(channel))
    job.hyperparameters.parent.mkdir(parents=True, exist_ok=True)
    job.hyperparameters.write_text(
        json.dumps(
            {
                "mlops_algorithm": "xgboost",
                "mlops_problem_type": tenant.dataset.problem_type,
                "mlops_target": tenant.dataset.target,
                "mlops_tenant": TENANT,
                "mlops_model": MODEL,
                "mlops_run_id": RUN_ID,
                "mlops_trial": "0",
                "mlops_device": "cpu",  # the same trees on a machine with a GPU
                **HYPERPARAMETERS,
            }
        )
    )
    # One thread: a histogram summed in another order may round differently, and change a split.
    with xgb.config_context(nthread=1), contextlib.redirect_stdout(io.StringIO()):  # one metric line a round
        result = train(job)
    print(metric_line(f"kept round {result.kept_round} of {result.rounds_run}", result.kept_metrics))
    return job.model


def archive(directory: Path) -> bytes:
    """``model.tar.gz`` as SageMaker unpacks it into /opt/ml/model, with nothing in it that varies."""
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(MEMBERS):
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
    features = dict(tenant.dataset.features)
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


def build() -> Built:
    """The archive's and the baseline's bytes, trained, packed and summarized in a temporary folder."""
    tenant = example_tenant()
    with tempfile.TemporaryDirectory(prefix="example-model-") as work:
        model = train_model(tenant, Path(work))
        splits = Path(work) / "processing" / "output" / "features"
        return Built(model=archive(model), baseline=baseline(tenant, model, splits))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.example_model", description="Build the example model.")
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"where to write the archive (default: {OUTPUT})")
    parser.add_argument(
        "--baseline", type=Path, default=BASELINE, help=f"where to write the drift baseline (default: {BASELINE})"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if a file at --output or --baseline differs")
    arguments = parser.parse_args(argv)
    built = build()
    files: list[tuple[Path, bytes]] = [(arguments.output, built.model), (arguments.baseline, built.baseline)]
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
