"""The shipped example model: what the script builds, byte for byte, in the training image's format, and good enough."""

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
from mlops_training.algorithms import load_model
from mlops_training.prepare import split_of
from mlops_training.serve import Model, handle

ARTIFACT = ROOT / "models" / "example" / "model.tar.gz"
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
    output = tmp_path / "model.tar.gz"
    done = subprocess.run(
        [sys.executable, "-m", "scripts.example_model", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )

    assert done.returncode == 0, done.stderr
    assert output.read_bytes() == ARTIFACT.read_bytes(), (
        "models/example/model.tar.gz is not what the script builds; run: python -m scripts.example_model"
    )


def test_the_check_mode_fails_when_the_file_differs_and_passes_when_it_matches(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(example_model, "build", ARTIFACT.read_bytes)  # the rebuild is the test above
    stale = tmp_path / "model.tar.gz"
    stale.write_bytes(ARTIFACT.read_bytes()[:-10])

    assert example_model.main(["--check", "--output", str(stale)]) == 1
    assert "differs from what the script builds" in capsys.readouterr().err
    assert example_model.main(["--check", "--output", str(ARTIFACT)]) == 0


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
