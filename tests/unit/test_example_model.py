"""The shipped example model and its drift baseline: what the script builds, byte for byte, in the training image's
format, and good enough."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
import tarfile

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from config.loader import load_pipelines
from scripts import example_model
from tests.conftest import ROOT

# isort: split
# After scripts.example_model, which puts the training image's code on the path.
from mlops_platform.data.raw_records import split_of
from mlops_platform.monitoring.baseline import SCHEMA_VERSION
from mlops_platform.monitoring.capture import read_capture
from mlops_platform.monitoring.drift import compare
from mlops_platform.training.algorithms import load_model
from mlops_platform.training.serve import Model, handle

ARTIFACT = ROOT / "models" / "example" / "model.tar.gz"
BASELINE = ROOT / "models" / "example" / "baseline.json"
DATASET = ROOT / "data" / "example" / "breast-cancer.jsonl"


@pytest.fixture(scope="module")
def example():
    [pipeline] = [p for p in load_pipelines(ROOT / "config" / "pipelines") if p.tenant == "example"]
    return pipeline


@pytest.fixture(scope="module")
def members() -> list[tarfile.TarInfo]:
    with tarfile.open(ARTIFACT, "r:gz") as archive:
        return archive.getmembers()


@pytest.fixture(scope="module")
def model_directory(tmp_path_factory):
    directory = tmp_path_factory.mktemp("model")
    with tarfile.open(ARTIFACT, "r:gz") as archive:
        archive.extractall(directory, filter="data")
    return directory


def test_a_rebuild_in_a_fresh_process_gives_the_committed_bytes(tmp_path):
    output, baseline = tmp_path / "model.tar.gz", tmp_path / "baseline.json"
    done = subprocess.run(
        [sys.executable, "-m", "scripts.example_model", "--output", str(output), "--baseline", str(baseline)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )

    assert done.returncode == 0, done.stderr
    assert output.read_bytes() == ARTIFACT.read_bytes(), (
        "models/example/model.tar.gz is not what the script builds; run: python -m scripts.example_model"
    )
    assert baseline.read_bytes() == BASELINE.read_bytes(), (
        "models/example/baseline.json is not what the script builds; run: python -m scripts.example_model"
    )


def test_the_check_mode_fails_when_a_file_differs_and_passes_when_both_match(monkeypatch, tmp_path, capsys):
    committed = example_model.Built(model=ARTIFACT.read_bytes(), baseline=BASELINE.read_bytes())
    monkeypatch.setattr(example_model, "build", lambda: committed)  # the rebuild is the test above
    stale_model, stale_baseline = tmp_path / "model.tar.gz", tmp_path / "baseline.json"
    stale_model.write_bytes(ARTIFACT.read_bytes()[:-10])
    stale_baseline.write_bytes(BASELINE.read_bytes().replace(b'"bins": 10', b'"bins": 11'))

    assert example_model.main(["--check", "--output", str(stale_model), "--baseline", str(BASELINE)]) == 1
    assert f"{stale_model} differs from what the script builds" in capsys.readouterr().err
    assert example_model.main(["--check", "--output", str(ARTIFACT), "--baseline", str(stale_baseline)]) == 1
    assert f"{stale_baseline} differs from what the script builds" in capsys.readouterr().err
    assert example_model.main(["--check", "--output", str(ARTIFACT), "--baseline", str(BASELINE)]) == 0


def test_the_archive_holds_exactly_the_model_and_its_metadata(members):
    assert [member.name for member in members] == ["metadata.json", "model.json"]
    assert all(member.isreg() for member in members)


def test_the_archive_holds_no_time_owner_or_file_name(members):
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in members} == {(0, 0, 0, "", "", 0o644)}
    header = ARTIFACT.read_bytes()[:10]
    assert header[:3] == b"\x1f\x8b\x08"  # gzip, deflate
    assert header[3] == 0  # no flags: no file name, no comment, no extra field
    assert header[4:8] == b"\0\0\0\0"  # mtime 0


def test_the_metadata_names_the_example_tenant_s_features_in_order(example, model_directory):
    metadata = json.loads((model_directory / "metadata.json").read_text())
    booster = json.loads((model_directory / "model.json").read_text())

    assert metadata["features"] == list(example.dataset.features)
    assert booster["learner"]["feature_names"] == list(example.dataset.features)
    assert (metadata["algorithm"], metadata["problem_type"], metadata["target"]) == ("xgboost", "binary", "target")
    assert metadata["tenant"] == "example"
    assert metadata["hyperparameters"]["max_depth"] == 3
    assert int(booster["learner"]["gradient_booster"]["model"]["gbtree_model_param"]["num_trees"]) == 50


def test_the_model_loads_and_separates_the_test_split(example, model_directory):
    records = [json.loads(line) for line in DATASET.read_text().splitlines()]
    test = [line["record"] for line in records if split_of(line["record_id"]) == "test"]
    features = np.array([[row[name] for name in example.dataset.features] for row in test], dtype=np.float32)
    target = np.array([row["target"] for row in test])

    metadata, predict = load_model(model_directory)
    probabilities = predict(features)

    assert metadata["features"] == list(example.dataset.features)
    assert len(test) > 50
    assert roc_auc_score(target, probabilities) > 0.95
    assert roc_auc_score(target, probabilities) >= example.objective.approval_threshold
    # The serve entry point scores it as batch transform would.
    body = "\n".join(",".join(repr(float(v)) for v in row) for row in features[:5]).encode()
    response = handle("POST", "/invocations", "text/csv", body, Model.load(model_directory))
    assert response.status == 200
    assert [float(v) for v in response.body.splitlines()] == pytest.approx(probabilities[:5].tolist(), rel=1e-6)


def test_the_archive_unpacks_as_sagemaker_would(model_directory):
    """SageMaker unpacks model.tar.gz into /opt/ml/model: the files sit at the archive's root."""
    with gzip.open(ARTIFACT) as stream, tarfile.open(fileobj=io.BytesIO(stream.read())) as archive:
        assert all("/" not in name and not name.startswith(".") for name in archive.getnames())
    assert sorted(p.name for p in model_directory.iterdir()) == ["metadata.json", "model.json"]


def test_the_baseline_summarizes_the_train_split_and_the_model_s_scores_of_held_out_rows(example, model_directory):
    document = json.loads(BASELINE.read_text())
    records = [json.loads(line) for line in DATASET.read_text().splitlines()]
    train = [line["record"] for line in records if split_of(line["record_id"]) == "train"]
    held_out = [line["record"] for line in records if split_of(line["record_id"]) != "train"]
    features = np.array([[row[name] for name in example.dataset.features] for row in held_out], dtype=np.float32)
    _, predict = load_model(model_directory)
    scores = predict(features)

    assert document["schema_version"] == SCHEMA_VERSION
    assert document["feature_order"] == list(example.dataset.features)
    assert {name: f["type"] for name, f in document["features"].items()} == dict(example.dataset.features)
    assert document["rows"] == len(train)
    assert document["features"]["mean_radius"]["min"] == min(row["mean_radius"] for row in train)
    predictions = document["predictions"]
    assert predictions["count"] == len(held_out)  # rows the model never trained on
    assert predictions["min"] == pytest.approx(float(scores.min()))
    assert predictions["max"] == pytest.approx(float(scores.max()))
    assert sum(predictions["proportions"]) == pytest.approx(1, abs=1e-4)


def test_records_the_model_was_not_trained_on_do_not_drift_from_the_baseline(example, model_directory):
    """The drift monitor's view of the example endpoint serving its own kind of traffic: the held-out splits."""
    records = [json.loads(line) for line in DATASET.read_text().splitlines()]
    test = [line["record"] for line in records if split_of(line["record_id"]) != "train"]
    names = list(example.dataset.features)
    features = np.array([[row[name] for name in names] for row in test], dtype=np.float32)
    _, predict = load_model(model_directory)
    lines = [
        json.dumps(
            {
                "captureData": {
                    "endpointInput": {
                        "observedContentType": "text/csv",
                        "data": ",".join(map(str, row)),
                        "encoding": "CSV",
                    },
                    "endpointOutput": {"observedContentType": "text/csv", "data": str(score), "encoding": "CSV"},
                },
                "eventMetadata": {"inferenceId": str(i), "inferenceTime": "2026-11-24T22:00:00Z"},
            }
        )
        for i, (row, score) in enumerate(zip(features.tolist(), predict(features).tolist(), strict=True))
    ]

    report = compare(json.loads(BASELINE.read_text()), read_capture(lines, names))

    assert report.rows == len(test)
    assert not report.drift
    assert report.drifted_share < 0.1
    assert [p.drifted for p in report.predictions] == [False]
