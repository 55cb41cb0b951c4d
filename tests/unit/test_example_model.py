"""The shipped example models and their drift baselines: what the script builds, byte for byte, in the training
image's format, and good enough. One per model of the example tenant, so an A/B endpoint serves two different ones."""

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

from config.example_models import EXAMPLE_MODEL_NAMES, EXAMPLE_MODELS_DIR, archive_path, baseline_path
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

DATASET = ROOT / "data" / "example" / "breast-cancer.jsonl"


@pytest.fixture(scope="module")
def example():
    [pipeline] = [p for p in load_pipelines(ROOT / "config" / "pipelines") if p.tenant == "example"]
    return pipeline


@pytest.fixture(scope="module", params=EXAMPLE_MODEL_NAMES)
def name(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def members(name) -> list[tarfile.TarInfo]:
    with tarfile.open(archive_path(name), "r:gz") as archive:
        return archive.getmembers()


@pytest.fixture(scope="module")
def model_directory(tmp_path_factory, name):
    directory = tmp_path_factory.mktemp(name)
    with tarfile.open(archive_path(name), "r:gz") as archive:
        archive.extractall(directory, filter="data")
    return directory


def test_one_example_model_per_model_of_the_example_tenant_and_nothing_else(example):
    assert {model.name: model.algorithm for model in example.models} == {
        name: example_model.RECIPES[name].algorithm for name in EXAMPLE_MODEL_NAMES
    }
    assert sorted(p.name for p in EXAMPLE_MODELS_DIR.iterdir() if p.is_dir()) == sorted(EXAMPLE_MODEL_NAMES)


def test_a_rebuild_in_a_fresh_process_gives_the_committed_bytes(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "scripts.example_model", "--check"], cwd=ROOT, capture_output=True, text=True
    )

    assert done.returncode == 0, done.stderr
    for name in EXAMPLE_MODEL_NAMES:
        assert f"{archive_path(name)}: up to date" in done.stdout
        assert f"{baseline_path(name)}: up to date" in done.stdout


def test_one_model_is_written_where_asked(tmp_path):
    output, baseline = tmp_path / "model.tar.gz", tmp_path / "baseline.json"
    command = [sys.executable, "-m", "scripts.example_model", "--model", "linear", "--output", str(output)]
    done = subprocess.run(
        [*command, "--baseline", str(baseline)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )

    assert done.returncode == 0, done.stderr
    assert output.read_bytes() == archive_path("linear").read_bytes()
    assert baseline.read_bytes() == baseline_path("linear").read_bytes()


def test_the_check_mode_fails_when_a_file_differs_and_passes_when_both_match(monkeypatch, tmp_path, capsys, name):
    artifact, baseline = archive_path(name), baseline_path(name)
    committed = {name: example_model.Built(model=artifact.read_bytes(), baseline=baseline.read_bytes())}
    monkeypatch.setattr(example_model, "build", lambda models: committed)  # the rebuild is the test above
    stale_model, stale_baseline = tmp_path / "model.tar.gz", tmp_path / "baseline.json"
    stale_model.write_bytes(artifact.read_bytes()[:-10])
    stale_baseline.write_bytes(baseline.read_bytes().replace(b'"bins": 10', b'"bins": 11'))
    check = ["--check", "--model", name]

    assert example_model.main([*check, "--output", str(stale_model), "--baseline", str(baseline)]) == 1
    assert f"{stale_model} differs from what the script builds" in capsys.readouterr().err
    assert example_model.main([*check, "--output", str(artifact), "--baseline", str(stale_baseline)]) == 1
    assert f"{stale_baseline} differs from what the script builds" in capsys.readouterr().err
    assert example_model.main([*check, "--output", str(artifact), "--baseline", str(baseline)]) == 0


def test_output_paths_name_one_model():
    with pytest.raises(SystemExit):
        example_model.main(["--output", "/tmp/m.tgz"])


def test_the_archive_holds_exactly_the_model_and_its_metadata(members, name):
    assert [member.name for member in members] == sorted(example_model.RECIPES[name].members)
    assert all(member.isreg() for member in members)


def test_the_archive_holds_no_time_owner_or_file_name(members, name):
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in members} == {(0, 0, 0, "", "", 0o644)}
    header = archive_path(name).read_bytes()[:10]
    assert header[:3] == b"\x1f\x8b\x08"  # gzip, deflate
    assert header[3] == 0  # no flags: no file name, no comment, no extra field
    assert header[4:8] == b"\0\0\0\0"  # mtime 0


def test_the_metadata_names_the_example_tenant_s_features_in_order(example, model_directory, name):
    metadata = json.loads((model_directory / "metadata.json").read_text())

    assert metadata["features"] == list(example.dataset.features)
    assert (metadata["algorithm"], metadata["problem_type"], metadata["target"]) == (name, "binary", "target")
    assert metadata["tenant"] == "example"
    if name == "xgboost":
        booster = json.loads((model_directory / "model.json").read_text())
        assert booster["learner"]["feature_names"] == list(example.dataset.features)
        assert metadata["hyperparameters"]["max_depth"] == 3
        assert int(booster["learner"]["gradient_booster"]["model"]["gbtree_model_param"]["num_trees"]) == 50
    else:
        assert metadata["hyperparameters"]["epochs"] == 50


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


def test_the_archive_unpacks_as_sagemaker_would(model_directory, name):
    """SageMaker unpacks model.tar.gz into /opt/ml/model: the files sit at the archive's root."""
    with gzip.open(archive_path(name)) as stream, tarfile.open(fileobj=io.BytesIO(stream.read())) as archive:
        assert all("/" not in member and not member.startswith(".") for member in archive.getnames())
    assert sorted(p.name for p in model_directory.iterdir()) == sorted(example_model.RECIPES[name].members)


def test_the_two_example_models_score_differently(tmp_path_factory):
    """An A/B endpoint of the two shows two models, not one twice: their scores of the same rows differ."""
    records = [json.loads(line)["record"] for line in DATASET.read_text().splitlines()][:20]
    [example] = [p for p in load_pipelines(ROOT / "config" / "pipelines") if p.tenant == "example"]
    features = np.array([[row[f] for f in example.dataset.features] for row in records], dtype=np.float32)
    scores = {}
    for name in EXAMPLE_MODEL_NAMES:
        directory = tmp_path_factory.mktemp(f"scores-{name}")
        with tarfile.open(archive_path(name), "r:gz") as archive:
            archive.extractall(directory, filter="data")
        scores[name] = load_model(directory)[1](features)

    assert not np.allclose(scores["xgboost"], scores["linear"], atol=1e-3)
    assert baseline_path("xgboost").read_bytes() != baseline_path("linear").read_bytes()


def test_the_baseline_summarizes_the_train_split_and_the_model_s_scores_of_held_out_rows(
    example, model_directory, name
):
    document = json.loads(baseline_path(name).read_text())
    records = [json.loads(line) for line in DATASET.read_text().splitlines()]
    train = [line["record"] for line in records if split_of(line["record_id"]) == "train"]
    held_out = [line["record"] for line in records if split_of(line["record_id"]) != "train"]
    features = np.array([[row[name] for name in example.dataset.features] for row in held_out], dtype=np.float32)
    _, predict = load_model(model_directory)
    scores = predict(features)

    assert document["schema_version"] == SCHEMA_VERSION
    assert document["feature_order"] == list(example.dataset.features)
    assert {name: f["type"] for name, f in document["features"].items()} == {
        name: spec.type for name, spec in example.dataset.features.items()
    }
    assert document["rows"] == len(train)
    assert document["features"]["mean_radius"]["min"] == min(row["mean_radius"] for row in train)
    predictions = document["predictions"]
    assert predictions["count"] == len(held_out)  # rows the model never trained on
    assert predictions["min"] == pytest.approx(float(scores.min()))
    assert predictions["max"] == pytest.approx(float(scores.max()))
    assert sum(predictions["proportions"]) == pytest.approx(1, abs=1e-4)


def test_records_the_model_was_not_trained_on_do_not_drift_from_the_baseline(example, model_directory, name):
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

    report = compare(json.loads(baseline_path(name).read_text()), read_capture(lines, names))

    assert report.rows == len(test)
    assert not report.drift
    assert report.drifted_share < 0.1
    assert [p.drifted for p in report.predictions] == [False]
