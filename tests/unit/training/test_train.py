"""The training entry point trains each algorithm, writes a loadable model, and fails with a reason."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from mlops_platform.training.algorithms import load_model
from mlops_platform.training.train import main
from tests.unit.training.conftest import job, small_dataset

METRIC_LINE = re.compile(r"^\[(round|kept round) (\d+)\] (.+)$")


def metric_lines(output: str) -> list[tuple[str, int, dict[str, float]]]:
    lines = []
    for line in output.splitlines():
        match = METRIC_LINE.match(line)
        if match:
            pairs = dict(pair.split("=") for pair in match.group(3).split("; "))
            lines.append((match.group(1), int(match.group(2)), {k: float(v) for k, v in pairs.items()}))
    return lines


@pytest.mark.parametrize(
    ("algorithm", "problem_type", "metric", "bound"),
    [
        ("xgboost", "binary", "validation:auc", 0.95),
        ("linear", "binary", "validation:auc", 0.95),
        ("xgboost", "regression", "validation:rmse", 80.0),
        ("linear", "regression", "validation:rmse", 80.0),
    ],
)
def test_each_algorithm_trains_and_writes_a_model_that_loads_and_predicts(
    sagemaker_root, capsys, algorithm, problem_type, metric, bound
):
    paths = sagemaker_root(problem_type, job(algorithm, problem_type))

    assert main(paths) == 0

    metadata, predict = load_model(paths.model)
    assert metadata["algorithm"] == algorithm
    frame = small_dataset(problem_type)
    predictions = predict(frame.drop(columns=["target"]).to_numpy(dtype=np.float32))
    assert predictions.shape == (len(frame),)
    if problem_type == "binary":
        assert ((predictions >= 0) & (predictions <= 1)).all()
    # Better than a constant guess: the model learnt something.
    best = metadata["metrics"][metric]
    assert best >= bound if metric.endswith("auc") else best <= bound
    assert not paths.failure.exists()


def test_metric_lines_come_every_round_and_the_kept_round_comes_last(sagemaker_root, capsys):
    paths = sagemaker_root("binary", job("xgboost", "binary", num_round="60", early_stopping_rounds="5"))

    assert main(paths) == 0

    lines = metric_lines(capsys.readouterr().out)
    rounds = [number for kind, number, _ in lines if kind == "round"]
    assert rounds == list(range(1, len(rounds) + 1))
    kind, kept_round, kept = lines[-1]
    assert kind == "kept round"
    # Early stopping: training stopped after `patience` rounds without improvement on the best.
    assert len(rounds) == kept_round + 5 or len(rounds) == 60
    per_round = {number: metrics for kind, number, metrics in lines if kind == "round"}
    assert kept == pytest.approx(per_round[kept_round], rel=1e-5)
    assert kept["validation:logloss"] == pytest.approx(
        min(m["validation:logloss"] for m in per_round.values()), rel=1e-5
    )
    assert json.loads(paths.model.joinpath("metadata.json").read_text())["round"] == kept_round


def test_parquet_channels_train_too(sagemaker_root):
    paths = sagemaker_root("regression", job("linear", "regression"), fmt="parquet")

    assert main(paths) == 0


def test_an_interrupted_job_resumes_from_its_last_checkpoint(sagemaker_root, capsys):
    first = sagemaker_root(
        "binary", job("xgboost", "binary", mlops_checkpoint_every="5", num_round="12", early_stopping_rounds="0")
    )
    assert main(first) == 0
    # Every 5 rounds and the last one; the two latest are kept (checkpoints.KEEP).
    assert sorted(p.name for p in first.checkpoints.iterdir()) == ["xgboost-000010.json", "xgboost-000012.json"]
    capsys.readouterr()

    # The spot instance came back: same checkpoint folder, the job asks for 30 rounds in all.
    first.hyperparameters.write_text(
        json.dumps(job("xgboost", "binary", mlops_checkpoint_every="5", num_round="30", early_stopping_rounds="0"))
    )
    assert main(first) == 0

    rounds = [number for kind, number, _ in metric_lines(capsys.readouterr().out) if kind == "round"]
    assert rounds == list(range(13, 31))
    booster_rounds = json.loads(first.model.joinpath("model.json").read_text())["learner"]["gradient_booster"]
    assert int(booster_rounds["model"]["gbtree_model_param"]["num_trees"]) == 30


def test_the_linear_model_resumes_from_its_checkpoint(sagemaker_root, capsys):
    paths = sagemaker_root(
        "binary", job("linear", "binary", mlops_checkpoint_every="1", epochs="4", early_stopping_rounds="0")
    )
    assert main(paths) == 0
    capsys.readouterr()
    paths.hyperparameters.write_text(
        json.dumps(job("linear", "binary", mlops_checkpoint_every="1", epochs="7", early_stopping_rounds="0"))
    )

    assert main(paths) == 0

    rounds = [number for kind, number, _ in metric_lines(capsys.readouterr().out) if kind == "round"]
    assert rounds == [5, 6, 7]


@pytest.mark.parametrize(
    ("hyperparameters", "reason"),
    [
        (job("xgboost", "binary", max_depth="-3"), "hyperparameter max_depth has value '-3'; allowed: from 1 to 64"),
        (job("xgboost", "binary", learning_rate="0.1"), "unknown xgboost hyperparameter 'learning_rate'"),
        (job("forest", "binary"), "mlops_algorithm has value 'forest'"),
        ({"mlops_algorithm": "xgboost", "mlops_problem_type": "binary"}, "hyperparameter mlops_target is missing"),
        (job("xgboost", "binary", mlops_target="label"), "no target column 'label'"),
    ],
)
def test_bad_input_writes_a_one_line_failure_reason_and_exits_non_zero(sagemaker_root, hyperparameters, reason):
    paths = sagemaker_root("binary", hyperparameters)

    assert main(paths) == 1

    failure = paths.failure.read_text()
    assert reason in failure
    assert failure.count("\n") == 1
    assert not paths.model.joinpath("metadata.json").exists()


def test_an_empty_channel_is_a_failure_with_a_reason(sagemaker_root):
    paths = sagemaker_root("binary", job("xgboost", "binary"))
    for file in paths.channel("validation").iterdir():
        file.unlink()

    assert main(paths) == 1
    assert "channel 'validation' holds no .csv or .parquet file" in paths.failure.read_text()


def test_the_record_id_and_split_columns_of_feature_files_are_not_features(sagemaker_root):
    paths = sagemaker_root("binary", job("xgboost", "binary", num_round="5"), fmt="parquet")
    for channel in ("train", "validation"):
        file = paths.channel(channel) / "part-0.parquet"
        frame = pd.read_parquet(file)
        frame.insert(0, "split", channel)
        frame.insert(0, "record_id", [f"r-{i}" for i in range(len(frame))])
        frame.to_parquet(file, index=False)

    assert main(paths) == 0

    features = json.loads(paths.model.joinpath("metadata.json").read_text())["features"]
    assert features == [c for c in small_dataset("binary").columns if c != "target"]


def test_progress_events_carry_the_source_the_job_names(sagemaker_root, monkeypatch):
    sent: list[dict] = []

    class Client:
        def put_events(self, Entries):
            sent.extend(Entries)
            return {"FailedEntryCount": 0}

    monkeypatch.setattr("boto3.client", lambda *args, **kwargs: Client())
    paths = sagemaker_root(
        "binary",
        job("xgboost", "binary", num_round="3", mlops_event_bus="bus", mlops_event_source="acme-ml.training"),
    )

    assert main(paths) == 0

    assert sent
    assert {entry["Source"] for entry in sent} == {"acme-ml.training"}


@pytest.mark.parametrize("source", ["", "aws.sagemaker"])
def test_an_event_source_that_eventbridge_would_refuse_is_a_failure(sagemaker_root, source):
    paths = sagemaker_root("binary", job("xgboost", "binary", mlops_event_source=source))

    assert main(paths) == 1
    assert f"mlops_event_source has value {source!r}" in paths.failure.read_text()
