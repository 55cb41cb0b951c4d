"""The example tenant's committed dataset: what the script builds, what the tenant declares, and enough to train on."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from config.loader import load_pipelines
from scripts import example_dataset
from tests.conftest import ROOT
from tests.unit.training.conftest import job

# isort: split
# After tests.unit.training.conftest, which puts the training image's code on the path.
from mlops_platform.data.prepare import main as prepare
from mlops_platform.sagemaker_paths import ProcessingPaths, SageMakerPaths
from mlops_platform.training.algorithms import load_model
from mlops_platform.training.serve import Model, handle
from mlops_platform.training.train import main as train

DATASET = ROOT / "data" / "example" / "breast-cancer.jsonl"


@pytest.fixture(scope="module")
def example():
    [pipeline] = [p for p in load_pipelines(ROOT / "config" / "pipelines") if p.tenant == "example"]
    return pipeline


def test_the_committed_file_is_what_the_script_builds():
    assert DATASET.read_bytes() == example_dataset.build()


def test_the_script_s_check_mode_passes_on_the_committed_file():
    done = subprocess.run(
        [sys.executable, "-m", "scripts.example_dataset", "--check"], cwd=ROOT, capture_output=True, text=True
    )

    assert done.returncode == 0, done.stderr


def test_the_check_mode_fails_when_the_file_differs(monkeypatch, tmp_path, capsys):
    stale = tmp_path / "breast-cancer.jsonl"
    stale.write_bytes(DATASET.read_bytes()[:-10])
    monkeypatch.setattr(example_dataset, "OUTPUT", stale)

    assert example_dataset.main(["--check"]) == 1
    assert "differs from what the script builds" in capsys.readouterr().err


def test_each_line_is_a_raw_record_with_the_example_tenant_s_columns(example):
    lines = [json.loads(line) for line in DATASET.read_text().splitlines()]

    assert len(lines) == 569
    assert lines[0]["record_id"] == "example-00000"
    assert len({line["record_id"] for line in lines}) == 569
    assert {tuple(line) for line in lines} == {("record_id", "message_id", "received_at", "record")}
    expected = [*example.dataset.features, example.dataset.target]
    assert all(list(line["record"]) == expected for line in lines)
    assert {line["record"]["target"] for line in lines} == {0, 1}


def test_prepare_then_train_on_the_example_dataset_gives_a_model_that_predicts(example, tmp_path):
    processing = ProcessingPaths(root=tmp_path / "processing", message=tmp_path / "ml" / "output" / "message")
    raw_day = processing.raw / "dt=2026-01-01"
    raw_day.mkdir(parents=True)
    shutil.copy(DATASET, raw_day / "example.jsonl")
    config = processing.root / "input" / "config" / "example.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps(example.published()))  # what synth publishes

    assert prepare(["--config", str(config), "--run-id", "run-1", "--day", "2026-01-02"], processing) == 0

    report = json.loads((processing.report / "report.json").read_text())
    assert (report["valid"], report["rejected"]) == (569, 0)
    training = SageMakerPaths(root=tmp_path / "ml", checkpoints=tmp_path / "ml" / "checkpoints")
    for channel in ("train", "validation"):
        training.channel(channel).mkdir(parents=True)
        shutil.copy(processing.features / f"run-1-{channel}.parquet", training.channel(channel))
    training.hyperparameters.parent.mkdir(parents=True, exist_ok=True)
    training.hyperparameters.write_text(json.dumps(job("xgboost", "binary", num_round="50", max_depth="3")))

    assert train(training) == 0

    metadata, predict = load_model(training.model)
    assert metadata["features"] == list(example.dataset.features)
    test = pd.read_parquet(processing.features / "run-1-test.parquet")
    batch = np.loadtxt(processing.batch / "test.csv", delimiter=",", dtype=np.float32, ndmin=2)
    assert batch.shape == (len(test), 30)
    predictions = predict(batch)
    assert roc_auc_score(test["target"], predictions) > example.objective.approval_threshold
    # The serve entry point scores the batch input as batch transform would send it.
    response = handle(
        "POST", "/invocations", "text/csv", (processing.batch / "test.csv").read_bytes(), Model.load(training.model)
    )
    assert response.status == 200
    assert [float(v) for v in response.body.splitlines()] == pytest.approx(predictions.tolist(), rel=1e-6)
