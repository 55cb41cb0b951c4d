"""The baseline job as plain Python: the example tenant's prepared data and trained models, a baseline.json out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_platform.monitoring.baseline import compute_baseline
from mlops_platform.monitoring.baseline_job import main
from mlops_platform.monitoring.capture import read_capture
from mlops_platform.monitoring.drift import compare
from mlops_platform.sagemaker_paths import ProcessingPaths
from mlops_platform.training.serve import Model
from tests.conftest import ROOT
from tests.unit.training.conftest import EXAMPLE_ALGORITHMS, ExampleRun, example_config
from tests.unit.training.test_monitor_job import capture_line

CAPTURED_AT = datetime(2026, 1, 2, tzinfo=UTC)


class Job:
    """One baseline job's folders under tmp_path; its inputs are the example run's files unless replaced."""

    def __init__(self, root: Path, run: ExampleRun, algorithm: str = "xgboost") -> None:
        self.paths = ProcessingPaths(root=root / "processing", message=root / "ml" / "output" / "message")
        self.model = run.models[algorithm]
        self.training_data = run.training_data()
        self.holdout_data = run.holdout_data()
        self.schema = run.schema
        self.output = self.paths.root / "output" / "baseline"

    def run(self, *extra: str) -> int:
        arguments = ["--model", str(self.model), "--training-data", str(self.training_data)]
        arguments += ["--holdout-data", str(self.holdout_data)]
        arguments += ["--schema", str(self.schema), "--output", str(self.output), *extra]
        return main(arguments, self.paths)

    def baseline(self) -> dict:
        return json.loads((self.output / "baseline.json").read_text())

    def failure(self) -> str:
        return self.paths.message.read_text()


@pytest.fixture
def job(tmp_path, example_run):
    return Job(tmp_path, example_run)


@pytest.mark.parametrize("algorithm", list(EXAMPLE_ALGORITHMS))
def test_the_baseline_holds_every_features_distribution_and_the_models_predictions(tmp_path, example_run, algorithm):
    job = Job(tmp_path, example_run, algorithm)
    training = pd.read_parquet(example_run.training_data())
    features = example_config()["dataset"]["features"]

    assert job.run() == 0

    baseline = job.baseline()
    assert baseline["schema_version"] == 1
    assert baseline["rows"] == len(training)
    assert baseline["feature_order"] == list(features)
    assert set(baseline["features"]) == set(features)
    radius = baseline["features"]["mean_radius"]
    assert (radius["type"], radius["missing_rate"]) == ("double", 0.0)
    assert (radius["min"], radius["max"]) == (training["mean_radius"].min(), training["mean_radius"].max())
    assert len(radius["edges"]) == 11  # ten quantile bins
    assert sum(radius["proportions"]) == pytest.approx(1.0, abs=1e-5)  # shares rounded to 6 decimals
    predictions = baseline["predictions"]
    held_out = sum(len(pd.read_parquet(file)) for file in example_run.holdout_data().rglob("*.parquet"))
    assert predictions["count"] == held_out  # the validation and test rows, scored
    assert 0.0 <= predictions["min"] < predictions["max"] <= 1.0  # probabilities of class 1
    assert baseline["model"] == {
        "tenant": "example",
        "model": algorithm,
        "run_id": "run-1",
        "trial": "0",
        "algorithm": algorithm,
        "problem_type": "binary",
    }
    assert sorted(path.name for path in job.output.iterdir()) == ["baseline.json"]  # nothing else is uploaded


@pytest.mark.parametrize("algorithm", list(EXAMPLE_ALGORITHMS))
def test_the_predictions_are_the_served_models_scores_of_the_rows_prepare_held_out(tmp_path, example_run, algorithm):
    """prepare's validation and test splits, never its train split: what the model scores on rows it never saw."""
    job = Job(tmp_path, example_run, algorithm)
    assert job.run() == 0
    with tarfile.open(example_run.models[algorithm]) as bundle:
        bundle.extractall(tmp_path / "model", filter="data")
    model = Model.load(tmp_path / "model")
    features = list(example_config()["dataset"]["features"])
    splits = {
        split: pd.read_parquet(example_run.features / f"run-1-{split}.parquet")
        for split in ("train", "validation", "test")
    }
    held_out = pd.concat([splits["validation"], splits["test"]], ignore_index=True)
    assert set(held_out["split"]) == {"validation", "test"}
    assert not set(held_out["record_id"]) & set(splits["train"]["record_id"])

    def predictions_of(rows: pd.DataFrame) -> dict:
        scores = model.predict(rows[features].to_numpy(dtype=np.float32))
        return json.loads(json.dumps(compute_baseline(rows, dict.fromkeys(features, "double"), scores)["predictions"]))

    baseline = job.baseline()
    assert baseline["predictions"] == predictions_of(held_out)
    assert baseline["predictions"] != predictions_of(splits["train"])
    # The features' distributions stay the training rows': what the model learned from.
    assert baseline["rows"] == len(splits["train"])


def test_held_out_data_holding_training_rows_is_refused(tmp_path, example_run, job):
    job.holdout_data = example_run.features  # prepare's whole output: train, validation and test

    assert job.run() == 1
    assert "holds" in job.failure()
    assert "rows of the 'train' split" in job.failure()
    assert not (job.output / "baseline.json").exists()


def test_the_same_inputs_give_the_same_bytes(tmp_path, example_run, job):
    assert job.run() == 0
    first = (job.output / "baseline.json").read_bytes()
    again = Job(tmp_path / "again", example_run)
    assert again.run() == 0

    assert (again.output / "baseline.json").read_bytes() == first


def test_the_baseline_is_one_the_drift_monitor_reads(job):
    """The training rows, replayed as captured traffic, do not drift from their own baseline."""
    assert job.run() == 0
    baseline = job.baseline()
    training = pd.read_parquet(job.training_data)[baseline["feature_order"]]
    lines = [
        capture_line(list(row), 0.5, CAPTURED_AT, str(index))
        for index, row in enumerate(training.itertuples(index=False))
    ]

    report = compare(baseline, read_capture(lines, baseline["feature_order"]))

    assert report.drifted_features == []
    assert report.rows == len(training)


def test_the_bins_argument_sets_the_number_of_bins(job):
    assert job.run("--bins", "4") == 0

    baseline = job.baseline()
    assert baseline["bins"] == 4
    assert len(baseline["features"]["mean_radius"]["edges"]) == 5


def test_without_arguments_the_processing_folders_are_read(tmp_path, example_run):
    paths = ProcessingPaths(root=tmp_path / "processing", message=tmp_path / "ml" / "output" / "message")
    for folder, source in (
        ("model", example_run.models["linear"]),
        ("training", example_run.training_data()),
        ("schema", example_run.schema),
        *((f"holdout/{path.parent.name}", path) for path in example_run.holdout_data().rglob("*.parquet")),
    ):
        (paths.root / "input" / folder).mkdir(parents=True)
        (paths.root / "input" / folder / source.name).write_bytes(source.read_bytes())

    assert main([], paths) == 0
    assert json.loads((paths.root / "output" / "baseline" / "baseline.json").read_text())["model"]["model"] == "linear"


def test_the_entry_point_runs_as_the_image_runs_it(tmp_path, example_run):
    """``python -m mlops_platform.training baseline`` with SM_PROCESSING_ROOT and SM_ROOT, as in the container."""
    root = tmp_path / "processing"
    (root / "input" / "model").mkdir(parents=True)
    (root / "input" / "model" / "model.tar.gz").write_bytes(example_run.models["xgboost"].read_bytes())
    environment = {
        **os.environ,
        "SM_PROCESSING_ROOT": str(root),
        "SM_ROOT": str(tmp_path / "ml"),
        "PYTHONPATH": str(ROOT),
    }
    arguments = ["--training-data", str(example_run.training_data()), "--schema", str(example_run.schema)]
    arguments += ["--holdout-data", str(example_run.holdout_data())]

    done = subprocess.run(
        [sys.executable, "-m", "mlops_platform.training", "baseline", *arguments],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert (root / "output" / "baseline" / "baseline.json").is_file()


# -- failures: one line, exit 1, no baseline.json


def corrupt(path: Path) -> Path:
    path.write_bytes(b"not a tarball")
    return path


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda job, tmp: setattr(job, "model", tmp / "absent.tar.gz"), "the model artifact is missing"),
        (lambda job, tmp: setattr(job, "model", corrupt(tmp / "model.tar.gz")), "not a readable model.tar.gz"),
        (lambda job, tmp: setattr(job, "training_data", tmp / "nothing"), "no training data"),
        (lambda job, tmp: setattr(job, "holdout_data", tmp / "nothing"), "no held-out data"),
        (lambda job, tmp: setattr(job, "schema", tmp / "absent.json"), "the feature schema is missing"),
    ],
)
def test_a_missing_or_unreadable_input_fails_with_one_line_and_no_baseline(tmp_path, job, change, reason):
    change(job, tmp_path)

    assert job.run() == 1
    assert reason in job.failure()
    assert job.failure().count("\n") == 1
    assert not (job.output / "baseline.json").exists()


def test_a_schema_that_does_not_match_the_model_fails_and_says_so(tmp_path, example_run, job):
    schema = json.loads(example_run.schema.read_text())
    schema["features"] = list(reversed(schema["features"]))
    job.schema = tmp_path / "reordered.json"
    job.schema.write_text(json.dumps(schema))

    assert job.run() == 1
    assert "the model was trained on 30 features ['mean_radius'" in job.failure()
    assert "the same names, in the same order, are needed" in job.failure()
    assert not (job.output / "baseline.json").exists()


def test_training_data_without_a_declared_feature_fails_naming_it(tmp_path, job):
    frame = pd.read_parquet(job.training_data).drop(columns=["worst_symmetry"])
    job.training_data = tmp_path / "train.parquet"
    frame.to_parquet(job.training_data, index=False)

    assert job.run() == 1
    assert "the training data lacks the schema's features ['worst_symmetry']" in job.failure()


def test_an_unknown_feature_type_fails_before_anything_is_read(tmp_path, example_run, job):
    schema = json.loads(example_run.schema.read_text())
    schema["features"][0]["type"] = "string"
    job.schema = tmp_path / "schema.json"
    job.schema.write_text(json.dumps(schema))

    assert job.run() == 1
    assert "unknown feature types {'mean_radius': 'string'}" in job.failure()


@pytest.mark.parametrize("bins", ["0", "x", "101"])
def test_a_bad_bins_argument_is_refused(job, bins):
    assert job.run("--bins", bins) == 1
    assert f"--bins has value {bins!r}" in job.failure()


def test_an_unknown_argument_is_refused_with_the_usage(job):
    assert job.run("--window", "7") == 1
    assert "usage: baseline [--model PATH]" in job.failure()
