"""Checkpoints: a long run leaves the latest two, never a file a round, and resumes from the latest."""

from __future__ import annotations

import json

import pytest

from mlops_platform.training.checkpoints import KEEP, Checkpoints
from mlops_platform.training.train import main
from tests.unit.training.conftest import job
from tests.unit.training.test_train import metric_lines

ROUNDS = {"xgboost": "num_round", "linear": "epochs"}
SMALL = {"xgboost": {"max_depth": "2"}, "linear": {}}  # small trees: a checkpoint a round stays cheap


class SpotInterruption(Exception):
    pass


def checkpoint_files(paths) -> list[str]:
    return sorted(path.name for path in paths.checkpoints.iterdir())


@pytest.mark.parametrize("algorithm", list(ROUNDS))
def test_a_long_run_checkpointing_every_round_holds_at_most_two_files_and_resumes(
    sagemaker_root, capsys, monkeypatch, algorithm
):
    settings = {
        "mlops_checkpoint_every": "1",
        "early_stopping_rounds": "0",
        ROUNDS[algorithm]: "150",
        **SMALL[algorithm],
    }
    paths = sagemaker_root("binary", job(algorithm, "binary", **settings))
    seen: list[int] = []

    def count_files_then_stop_at_round_100(line: str) -> str:
        # Called once a round, before the round's checkpoint: the folder as the round found it.
        if line.startswith("[round "):
            seen.append(len(list(paths.checkpoints.iterdir())) if paths.checkpoints.is_dir() else 0)
            if line.startswith("[round 100]"):
                raise SpotInterruption
        return line

    import mlops_platform.training.train as train_module

    original = train_module.metric_line
    monkeypatch.setattr(train_module, "metric_line", lambda *a: count_files_then_stop_at_round_100(original(*a)))
    assert main(paths) == 1  # the interruption, as the job sees it
    monkeypatch.setattr(train_module, "metric_line", original)
    capsys.readouterr()

    assert max(seen) <= KEEP
    suffix = ".json" if algorithm == "xgboost" else ".joblib"
    assert checkpoint_files(paths) == [f"{algorithm}-000098{suffix}", f"{algorithm}-000099{suffix}"]

    # The job comes back on a new instance with the checkpoints SageMaker copied back: it resumes.
    paths.failure.unlink()
    assert main(paths) == 0

    rounds = [number for kind, number, _ in metric_lines(capsys.readouterr().out) if kind == "round"]
    assert rounds == list(range(100, 151))
    assert checkpoint_files(paths) == [f"{algorithm}-000149{suffix}", f"{algorithm}-000150{suffix}"]
    assert json.loads((paths.model / "metadata.json").read_text())["round"] == 150


def test_a_partial_file_an_interrupted_write_left_is_neither_resumed_from_nor_kept(sagemaker_root, capsys):
    paths = sagemaker_root("binary", job("xgboost", "binary", num_round="12", mlops_checkpoint_every="5"))
    paths.checkpoints.mkdir(parents=True)
    (paths.checkpoints / ".xgboost-000040.partial.json").write_text('{"learner": ')  # torn mid-write

    assert main(paths) == 0

    rounds = [number for kind, number, _ in metric_lines(capsys.readouterr().out) if kind == "round"]
    assert rounds[0] == 1
    assert checkpoint_files(paths) == ["xgboost-000010.json", "xgboost-000012.json"]


def test_the_store_keeps_the_newest_files_by_round_not_by_name(tmp_path):
    store = Checkpoints(tmp_path, "xgboost", ".json", keep=2)
    for number in (9, 10, 99, 100, 1000):
        store.save(number, lambda path, n=number: path.write_text(str(n)))

    assert [path.name for _, path in store.files()] == ["xgboost-000100.json", "xgboost-001000.json"]
    assert store.latest() == (1000, tmp_path / "xgboost-001000.json")
    assert (tmp_path / "xgboost-001000.json").read_text() == "1000"
