"""The training image's code, run as plain Python on a folder laid out like /opt/ml."""

from __future__ import annotations

import json
import sys

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.model_selection import train_test_split

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "containers" / "training"))

from mlops_training.paths import SageMakerPaths


def small_dataset(problem_type: str) -> pd.DataFrame:
    """Datasets scikit-learn ships: no download, the same rows on every machine."""
    loader = load_breast_cancer if problem_type == "binary" else load_diabetes
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
