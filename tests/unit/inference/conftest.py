"""The inference image's code, run as plain Python on models the training image's own code wrote."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

# The training image's trainers write the models served here (the serving code never imports them).
from mlops_platform.sagemaker_paths import SageMakerPaths
from mlops_platform.serving.settings import Settings
from mlops_platform.training.train import main as train
from tests.unit.training.conftest import job, small_dataset

MODELS = [("xgboost", "binary"), ("xgboost", "regression"), ("linear", "binary"), ("linear", "regression")]
# Small and quick: a few trees, a few epochs.
HYPERPARAMETERS = {"xgboost": {"num_round": "8", "max_depth": "3"}, "linear": {"epochs": "5"}}


def train_model(root: Path, algorithm: str, problem_type: str) -> Path:
    """Train with the training image's ``train`` entry point on a folder laid out like /opt/ml; the model folder."""
    paths = SageMakerPaths(root=root, checkpoints=root / "checkpoints")
    frame = small_dataset(problem_type)
    train_part, validation_part = train_test_split(frame, test_size=0.25, random_state=7)
    for channel, part in (("train", train_part), ("validation", validation_part)):
        paths.channel(channel).mkdir(parents=True, exist_ok=True)
        part.to_csv(paths.channel(channel) / "part-0.csv", index=False)
    paths.hyperparameters.parent.mkdir(parents=True, exist_ok=True)
    paths.hyperparameters.write_text(json.dumps(job(algorithm, problem_type, **HYPERPARAMETERS[algorithm])))
    assert train(paths) == 0, paths.failure.read_text() if paths.failure.exists() else "training failed"
    return paths.model


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory) -> dict[tuple[str, str], Path]:
    """One trained model folder per algorithm and problem type, shared by the whole session."""
    return {key: train_model(tmp_path_factory.mktemp("-".join(key)), *key) for key in MODELS}


@pytest.fixture(scope="session")
def xgboost_dir(model_dirs) -> Path:
    return model_dirs[("xgboost", "binary")]


def features_of(problem_type: str, rows: int | None = None) -> np.ndarray:
    frame = small_dataset(problem_type).drop(columns=["target"])
    return (frame if rows is None else frame.head(rows)).to_numpy(dtype=np.float32)


def feature_names(problem_type: str) -> list[str]:
    return [c for c in small_dataset(problem_type).columns if c != "target"]


def csv_body(features: np.ndarray) -> bytes:
    return "".join(",".join(repr(float(v)) for v in row) + "\n" for row in features).encode()


SETTINGS = Settings(port=0, workers=1, model_dir=Path("/nonexistent"), max_payload_bytes=6 * 1024 * 1024)
