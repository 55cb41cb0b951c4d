"""The training image's code, run as plain Python on a folder laid out like /opt/ml.

Besides the fixtures, helpers that run the example tenant through the real prepare and train entry
points (``example_run``): the baseline job's tests and the state machine's integration test use them.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.model_selection import train_test_split

from mlops_platform.sagemaker_paths import ProcessingPaths, SageMakerPaths
from tests.conftest import ROOT


def small_dataset(problem_type: str) -> pd.DataFrame:
    """Datasets scikit-learn ships: no download, the same rows on every machine."""
    loader = {"binary": load_breast_cancer, "multiclass": load_wine, "regression": load_diabetes}[problem_type]
    frame = loader(as_frame=True).frame
    frame.columns = [str(c).replace(" ", "_") for c in frame.columns]
    return frame


@pytest.fixture
def sagemaker_root(tmp_path):
    """A fresh /opt/ml, and a function that lays out a job's hyperparameters and channels in it."""

    def lay_out(problem_type: str, hyperparameters: dict[str, str], *, fmt: str = "csv") -> SageMakerPaths:
        paths = SageMakerPaths(root=tmp_path / "opt" / "ml", checkpoints=tmp_path / "opt" / "ml" / "checkpoints")
        frame = small_dataset(problem_type)
        train, validation = train_test_split(frame, test_size=0.25, random_state=7)
        for channel, part in (("train", train), ("validation", validation)):
            directory = paths.channel(channel)
            directory.mkdir(parents=True, exist_ok=True)
            if fmt == "parquet":
                part.to_parquet(directory / "part-0.parquet", index=False)
            else:
                part.to_csv(directory / "part-0.csv", index=False)
        paths.hyperparameters.parent.mkdir(parents=True, exist_ok=True)
        paths.hyperparameters.write_text(json.dumps(hyperparameters))
        return paths

    return lay_out


def job(algorithm: str, problem_type: str, **extra: str) -> dict[str, str]:
    target = "target"
    return {
        "mlops_algorithm": algorithm,
        "mlops_problem_type": problem_type,
        "mlops_target": target,
        **extra,
    }


# -- the example tenant's run, as the state machine's jobs leave it ----------------------------

EXAMPLE_DATASET = ROOT / "data" / "example" / "breast-cancer.jsonl"
EXAMPLE_DAY = "2026-01-01"  # the day the shipped records were received
EXAMPLE_ALGORITHMS = {"xgboost": {"num_round": "20"}, "linear": {}}


def example_config() -> dict:
    """The example tenant's published config (artifacts/config/pipelines/example.json)."""
    from config.loader import load_pipelines

    [example] = [p for p in load_pipelines(ROOT / "config" / "pipelines") if p.tenant == "example"]
    return example.published()


def feature_schema(config: dict) -> dict:
    """The run's feature-schema.json as lambda/evaluate writes it (the contract the baseline job reads)."""
    dataset = config["dataset"]
    return {
        "schema_version": 1,
        "tenant": config["tenant"],
        "dataset": dataset["name"],
        "features": [{"name": name, "type": kind} for name, kind in dataset["features"].items()],
        "target": dataset["target"],
        "problem_type": dataset["problem_type"],
    }


def prepare_example(root: Path, run_id: str = "run-1") -> ProcessingPaths:
    """The shipped dataset, laid out as ingestion writes it, through the real prepare job."""
    from mlops_platform.data.prepare import main as prepare

    paths = ProcessingPaths(root=root / "processing", message=root / "ml" / "output" / "message")
    raw = paths.raw / f"dt={EXAMPLE_DAY}"
    raw.mkdir(parents=True)
    shutil.copyfile(EXAMPLE_DATASET, raw / "example.jsonl")
    config = paths.root / "input" / "config" / "example.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps(example_config()))
    assert prepare(["--config", str(config), "--run-id", run_id, "--day", EXAMPLE_DAY], paths) == 0
    return paths


def train_example(features: Path, algorithm: str, root: Path, run_id: str = "run-1") -> Path:
    """A model trained by the real train entry point on the prepared splits, packed as SageMaker packs it."""

    paths = SageMakerPaths(root=root / "ml", checkpoints=root / "ml" / "checkpoints")
    for channel in ("train", "validation"):
        paths.channel(channel).mkdir(parents=True)
        shutil.copyfile(features / f"{run_id}-{channel}.parquet", paths.channel(channel) / f"{channel}.parquet")
    paths.hyperparameters.parent.mkdir(parents=True)
    hyperparameters = {
        **EXAMPLE_ALGORITHMS[algorithm],
        "mlops_algorithm": algorithm,
        "mlops_problem_type": "binary",
        "mlops_target": "target",
        "mlops_tenant": "example",
        "mlops_model": algorithm,
        "mlops_run_id": run_id,
    }
    paths.hyperparameters.write_text(json.dumps(hyperparameters))
    return trained_archive(paths, root)


def trained_archive(paths: SageMakerPaths, root: Path) -> Path:
    """Run the real train entry point over ``paths``; its model as SageMaker packs it, ``root/model.tar.gz``."""
    from mlops_platform.training.train import main as train

    assert train(paths) == 0
    archive = root / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as bundle:
        for file in sorted(paths.model.iterdir()):
            bundle.add(file, arcname=file.name)
    return archive


@dataclass(frozen=True)
class ExampleRun:
    """What a run of the example tenant leaves before its baselines: splits, a schema, one model per algorithm."""

    features: Path
    schema: Path
    models: dict[str, Path]
    holdout: Path  # the validation and test splits, as the baseline job's holdout input lays them out

    def training_data(self, run_id: str = "run-1") -> Path:
        return self.features / f"{run_id}-train.parquet"

    def holdout_data(self) -> Path:
        return self.holdout


def holdout_folder(features: Path, into: Path, run_id: str = "run-1") -> Path:
    """``input/holdout/<split>/<run_id>-<split>.parquet``: evaluate's holdout inputs, from prepare's split files."""
    for split in ("validation", "test"):
        (into / split).mkdir(parents=True)
        shutil.copyfile(features / f"{run_id}-{split}.parquet", into / split / f"{run_id}-{split}.parquet")
    return into


@pytest.fixture(scope="session")
def example_run(tmp_path_factory) -> ExampleRun:
    root = tmp_path_factory.mktemp("example-run")
    prepared = prepare_example(root)
    schema = root / "feature-schema.json"
    schema.write_text(json.dumps(feature_schema(example_config())))
    models = {
        algorithm: train_example(prepared.features, algorithm, root / algorithm) for algorithm in EXAMPLE_ALGORITHMS
    }
    holdout = holdout_folder(prepared.features, root / "holdout")
    return ExampleRun(features=prepared.features, schema=schema, models=models, holdout=holdout)
