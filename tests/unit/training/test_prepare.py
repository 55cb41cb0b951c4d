"""The prepare step: every raw line kept or rejected with a reason, stable splits, files the later steps can read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import pandas as pd
import pytest

from mlops_platform.data.prepare import main
from mlops_platform.data.raw_records import REASONS, split_of
from mlops_platform.sagemaker_paths import ProcessingPaths
from tests.conftest import ROOT

FEATURES = {"a": "double", "n": "bigint", "flag": "boolean"}
RUN_DAY = "2026-01-02"


def tenant_config(problem_type: str = "binary", split: str = "test", **dataset: object) -> dict:
    """A published tenant config (docs/training-pipeline.md), reduced to what prepare reads and a little more."""
    return {
        "schema_version": 1,
        "tenant": "acme",
        "dataset": {"name": "churn", "target": "y", "problem_type": problem_type, "features": FEATURES, **dataset},
        "models": [{"name": "xgboost", "algorithm": "xgboost", "grid": None, "combinations": None}],
        "batch_prediction": {"dataset": "churn", "split": split},
    }


def record(index: int, **overrides: object) -> dict:
    values = {"a": index / 10, "n": index, "flag": index % 2 == 0, "y": index % 2}
    return {**values, **overrides}


def line(record_id: str, payload: object, received_at: str = "2026-01-01T10:00:00.000Z") -> bytes:
    return json.dumps(
        {"record_id": record_id, "message_id": "m", "received_at": received_at, "record": payload}
    ).encode()


def good_lines(count: int, prefix: str = "r") -> list[bytes]:
    return [line(f"{prefix}-{i}", record(i)) for i in range(count)]


@pytest.fixture
def job(tmp_path):
    """A Processing job's folders under tmp_path, the tenant config published in them, raw days to fill."""

    class Job:
        paths = ProcessingPaths(root=tmp_path / "processing", message=tmp_path / "ml" / "output" / "message")
        config = tmp_path / "processing" / "input" / "config" / "acme.json"

        def publish(self, config: dict) -> None:
            self.config.parent.mkdir(parents=True, exist_ok=True)
            self.config.write_text(json.dumps(config))

        def raw(self, day: str, name: str, lines: list[bytes]) -> None:
            folder = self.paths.raw / f"dt={day}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(b"".join(entry + b"\n" for entry in lines))

        def run(self, run_id: str = "run-1", day: str = RUN_DAY, *extra: str) -> int:
            return main(["--config", str(self.config), "--run-id", run_id, "--day", day, *extra], self.paths)

        def report(self) -> dict:
            return json.loads((self.paths.report / "report.json").read_text())

        def rejected(self) -> list[dict]:
            text = (self.paths.report / "rejected.jsonl").read_text()
            return [json.loads(entry) for entry in text.splitlines()]

        def split(self, name: str, run_id: str = "run-1") -> pd.DataFrame:
            return pd.read_parquet(self.paths.features / f"{run_id}-{name}.parquet")

    job = Job()
    job.publish(tenant_config())
    return job


def test_valid_rows_become_curated_days_splits_and_batch_input_in_the_declared_column_order(job):
    job.raw("2026-01-01", "m1.jsonl", good_lines(120))
    job.raw("2026-01-02", "m2.jsonl", good_lines(80, prefix="s"))

    assert job.run() == 0

    for day, count in (("2026-01-01", 120), ("2026-01-02", 80)):
        curated = pd.read_parquet(job.paths.curated / f"dt={day}" / "records.parquet")
        assert list(curated.columns) == ["record_id", "received_at", "a", "n", "flag", "y"]
        assert len(curated) == count
        assert str(curated["received_at"].dtype) == "datetime64[ms, UTC]"
        assert curated["received_at"].iloc[0] == pd.Timestamp("2026-01-01T10:00:00Z")
        assert [str(t) for t in curated.dtypes.iloc[2:]] == ["float64", "int64", "bool", "int64"]
    splits = {name: job.split(name) for name in ("train", "validation", "test")}
    for name, frame in splits.items():
        assert list(frame.columns) == ["record_id", "split", "a", "n", "flag", "y"]
        assert set(frame["split"]) == {name}
        assert all(split_of(record_id) == name for record_id in frame["record_id"])
    assert sum(len(frame) for frame in splits.values()) == 200
    batch = pd.read_csv(job.paths.batch / "test.csv", header=None)
    # Features only, in the order of the test split's Parquet file; booleans as 1 and 0.
    expected = splits["test"][["a", "n", "flag"]].astype({"flag": int}).reset_index(drop=True)
    pd.testing.assert_frame_equal(batch, expected.set_axis([0, 1, 2], axis=1), check_dtype=False)
    report = job.report()
    assert report["status"] == "succeeded"
    assert (report["rows_read"], report["valid"], report["rejected"]) == (200, 200, 0)
    assert report["splits"] == {name: len(frame) for name, frame in splits.items()}
    assert report["days"]["2026-01-02"] == {"files": 1, "rows_read": 80, "valid": 80, "rejected": 0}
    assert job.rejected() == []
    assert report["warnings"] == []
    assert not job.paths.message.exists()


def test_the_batch_input_is_the_split_the_tenant_config_names(job):
    job.publish(tenant_config(split="validation"))
    job.raw("2026-01-01", "m1.jsonl", good_lines(60))

    assert job.run() == 0

    assert sorted(p.name for p in job.paths.batch.iterdir()) == ["validation.csv"]
    rows = (job.paths.batch / "validation.csv").read_text().splitlines()
    assert len(rows) == len(job.split("validation"))


BAD_LINES = [
    (b"{not json", "malformed-json"),
    (b"\xff\xfe{}", "malformed-json"),
    (b"   ", "malformed-json"),
    (b"[1, 2]", "not-an-object"),
    (line("bad", [1, 2]), "not-an-object"),
    (json.dumps({"record_id": "bad", "received_at": "2026-01-01T00:00:00Z"}).encode(), "missing-record"),
    (json.dumps({"received_at": "2026-01-01T00:00:00Z", "record": record(1)}).encode(), "invalid-record-id"),
    (line("", record(1)), "invalid-record-id"),
    (line("bad", record(1), received_at="yesterday"), "invalid-received-at"),
    (line("bad", record(1), received_at="2026-01-01T00:00:00"), "invalid-received-at"),
    (line("bad", {"a": 1.0, "n": 1, "flag": True, "y": None}), "missing-field"),
    (line("bad", {"a": 1.0, "n": 1, "flag": True}), "missing-field"),
    (line("bad", record(1, extra=3)), "unknown-field"),
    (line("bad", record(1, a="1.5")), "wrong-type"),
    (line("bad", record(1, a=True)), "wrong-type"),
    (line("bad", record(1, a=[1.5])), "wrong-type"),
    (line("bad", record(1, n=1.5)), "wrong-type"),
    (line("bad", record(1, n=2**63)), "wrong-type"),
    (line("bad", record(1, flag=1)), "wrong-type"),
    (line("bad", record(1, a=float("nan"))), "non-finite"),
    (line("bad", record(1)).replace(b'"a": 0.1', b'"a": 1e400'), "non-finite"),
    (line("bad", record(1, y=2)), "invalid-target"),
    (line("bad", record(1, y="yes")), "invalid-target"),
    (line("bad", record(1, y=0.5)), "invalid-target"),
    (line("r-3", record(3)), "duplicate-record"),
]


@pytest.mark.parametrize(("bad", "reason"), BAD_LINES)
def test_each_bad_line_is_rejected_with_its_reason_file_and_line_number(job, bad, reason):
    job.publish(tenant_config(unknown_columns="reject", max_rejected_share=0.05))
    job.raw("2026-01-01", "m1.jsonl", [*good_lines(40), bad])

    assert job.run() == 0

    [rejection] = job.rejected()
    assert rejection["reason"] == reason
    assert rejection["file"] == "dt=2026-01-01/m1.jsonl"
    assert rejection["line"] == 41
    assert rejection["detail"]
    assert rejection["record_id"] == (
        "bad" if b'"record_id": "bad"' in bad else "r-3" if reason == "duplicate-record" else None
    )
    report = job.report()
    assert (report["rows_read"], report["valid"], report["rejected"]) == (41, 40, 1)
    assert report["rejected_by_reason"] == {reason: 1}
    assert report["days"]["2026-01-01"]["rejected"] == 1
    assert len(pd.read_parquet(job.paths.curated / "dt=2026-01-01" / "records.parquet")) == 40


def test_every_reason_is_covered_by_a_bad_line():
    assert {reason for _, reason in BAD_LINES} == set(REASONS)


@pytest.mark.parametrize(
    ("target", "valid"),
    [(1.5, True), (-3, True), (True, False), ("2", False), (float("inf"), False), (None, False)],
)
def test_a_regression_target_is_any_finite_number(job, target, valid):
    job.publish(tenant_config(problem_type="regression", max_rejected_share=0.05))
    job.raw("2026-01-01", "m1.jsonl", [*good_lines(40), line("x", record(1, y=target))])

    assert job.run() == 0

    assert job.report()["valid"] == (41 if valid else 40)
    if not valid:
        assert job.rejected()[0]["reason"] == ("missing-field" if target is None else "invalid-target")
    curated = pd.read_parquet(job.paths.curated / "dt=2026-01-01" / "records.parquet")
    assert str(curated["y"].dtype) == "float64"


def test_binary_targets_may_be_booleans_or_whole_numbers_and_are_stored_as_0_and_1(job):
    lines = [line(f"t-{i}", record(i, y=value)) for i, value in enumerate([True, False, 1, 0, 1.0, 0.0] * 10)]
    job.raw("2026-01-01", "m1.jsonl", lines)

    assert job.run() == 0

    curated = pd.read_parquet(job.paths.curated / "dt=2026-01-01" / "records.parquet")
    assert curated["y"].tolist() == [1, 0, 1, 0, 1, 0] * 10


def test_a_duplicate_record_keeps_the_first_one_seen_in_day_file_and_line_order(job):
    job.raw("2026-01-01", "a.jsonl", [*good_lines(40), line("dup", record(1, a=111.0))])
    job.raw("2026-01-01", "b.jsonl", [line("dup", record(1, a=222.0))])
    job.raw("2026-01-02", "a.jsonl", [line("dup", record(1, a=333.0)), line("new", record(2))])

    assert job.run() == 0

    first_day = pd.read_parquet(job.paths.curated / "dt=2026-01-01" / "records.parquet")
    assert first_day.loc[first_day["record_id"] == "dup", "a"].tolist() == [111.0]
    assert pd.read_parquet(job.paths.curated / "dt=2026-01-02" / "records.parquet")["record_id"].tolist() == ["new"]
    assert [(r["file"], r["line"], r["reason"]) for r in job.rejected()] == [
        ("dt=2026-01-01/b.jsonl", 1, "duplicate-record"),
        ("dt=2026-01-02/a.jsonl", 1, "duplicate-record"),
    ]


def test_a_record_s_split_depends_on_its_id_alone_across_reruns_and_new_data(job, tmp_path):
    job.raw("2026-01-01", "m1.jsonl", good_lines(300))
    assert job.run("run-1") == 0
    first = pd.concat(job.split(name, "run-1") for name in ("train", "validation", "test"))

    # More data, on a later day and in the same day's new file; a later run.
    job.raw("2026-01-01", "m0.jsonl", good_lines(100, prefix="early"))
    job.raw("2026-01-02", "m2.jsonl", good_lines(300, prefix="later"))
    assert job.run("run-2") == 0
    second = pd.concat(job.split(name, "run-2") for name in ("train", "validation", "test"))

    before = dict(zip(first["record_id"], first["split"], strict=True))
    after = dict(zip(second["record_id"], second["split"], strict=True))
    assert len(after) == 700
    assert all(after[record_id] == split for record_id, split in before.items())


def test_the_split_is_a_pinned_hash_of_the_record_id_at_70_15_15():
    # Pinned: changing the hash would move records between train and test in every tenant's history.
    assert [split_of(f"example-{i:05d}") for i in range(12)] == [
        *["train"] * 4,
        "test",
        *["train"] * 3,
        "validation",
        "validation",
        "train",
        "test",
    ]
    shares = Counter(split_of(f"record-{i}") for i in range(20_000))
    assert shares["train"] / 20_000 == pytest.approx(0.70, abs=0.015)
    assert shares["validation"] / 20_000 == pytest.approx(0.15, abs=0.015)
    assert shares["test"] / 20_000 == pytest.approx(0.15, abs=0.015)


def test_a_rerun_rewrites_identical_files(job, tmp_path):
    job.publish(tenant_config(max_rejected_share=0.05))
    job.raw("2026-01-01", "m1.jsonl", good_lines(100))
    job.raw("2026-01-02", "m2.jsonl", [*good_lines(50, prefix="s"), b"oops"])
    assert job.run() == 0
    outputs = sorted(p for p in job.paths.root.joinpath("output").rglob("*") if p.is_file())
    before = {p: p.read_bytes() for p in outputs}

    assert job.run() == 0

    assert sorted(p for p in job.paths.root.joinpath("output").rglob("*") if p.is_file()) == outputs
    assert {p: p.read_bytes() for p in outputs} == before
    assert job.paths.curated.joinpath("dt=2026-01-01", "records.parquet") in before


def test_no_valid_rows_fails_with_a_one_line_reason_and_a_report(job):
    job.raw("2026-01-01", "m1.jsonl", [b"{", line("x", record(1, a="no")), line("y", record(2, a="no"))])

    assert job.run() == 1

    message = job.paths.message.read_text()
    assert message.count("\n") == 1
    assert "none of the 3 raw rows is valid: wrong-type 2 rows (a), malformed-json 1 row; see rejected.jsonl" in message
    report = job.report()
    assert report["status"] == "failed"
    assert report["failure"] == message.strip()
    assert len(job.rejected()) == 3
    # No splits for a later step to train on by mistake.
    assert not list(job.paths.features.glob("*.parquet"))
    assert not list(job.paths.batch.glob("*.csv"))


def test_an_empty_validation_split_fails(job):
    train_ids = [f"t{i}" for i in range(100) if split_of(f"t{i}") == "train"][:5]
    job.raw("2026-01-01", "m1.jsonl", [line(record_id, record(i)) for i, record_id in enumerate(train_ids)])

    assert job.run() == 1

    assert "the validation split is empty (5 valid rows in all)" in job.paths.message.read_text()


def test_an_empty_batch_split_is_a_warning_not_a_failure(job):
    ids = [f"t{i}" for i in range(200) if split_of(f"t{i}") != "test"][:20]
    job.raw("2026-01-01", "m1.jsonl", [line(record_id, record(i)) for i, record_id in enumerate(ids)])

    assert job.run() == 0

    assert job.report()["warnings"] == [
        "the batch-prediction split 'test' is empty: batch transform has nothing to score"
    ]
    assert (job.paths.batch / "test.csv").read_text() == ""


def test_no_raw_files_fails(job):
    assert job.run() == 1

    assert "no raw files under input/raw" in job.paths.message.read_text()


def test_files_outside_the_layout_and_days_after_the_run_s_day_are_skipped_and_reported(job):
    job.raw("2026-01-01", "m1.jsonl", good_lines(60))
    job.raw("2026-01-03", "m3.jsonl", good_lines(5, prefix="future"))
    job.raw("2026-13-01", "m4.jsonl", good_lines(5, prefix="bad-day"))
    job.raw("2026-01-01", "notes.txt", [b"hello"])

    assert job.run() == 0

    assert sorted(p.name for p in job.paths.curated.iterdir()) == ["dt=2026-01-01"]
    assert {entry["file"] for entry in job.report()["skipped_files"]} == {
        "dt=2026-01-01/notes.txt",
        "dt=2026-01-03/m3.jsonl",
        "dt=2026-13-01/m4.jsonl",
    }
    assert job.report()["valid"] == 60


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        (["--run-id", "r", "--day", "2026-01-01"], "the following arguments are required: --config"),
        (["--config", "{config}", "--run-id", "r", "--day", "2026-1-1"], "--day has value '2026-1-1'"),
        (["--config", "{config}", "--run-id", "r", "--day", "2026-02-30"], "--day has value '2026-02-30'"),
        (["--config", "{config}", "--run-id", "a/b", "--day", "2026-01-01"], "--run-id has value 'a/b'"),
        (["--config", "{config}.missing", "--run-id", "r", "--day", "2026-01-01"], "the tenant config is missing"),
    ],
)
def test_bad_arguments_fail_with_a_one_line_reason(job, arguments, reason):
    argv = [argument.replace("{config}", str(job.config)) for argument in arguments]

    assert main(argv, job.paths) == 1

    assert reason in job.paths.message.read_text()


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ({**tenant_config(), "schema_version": 2}, "key 'schema_version' has value 2; allowed: 1"),
        (tenant_config(features={"a": "string"}), "key 'dataset.features.a' has value 'string'"),
        (tenant_config(problem_type="ternary"), "key 'dataset.problem_type' has value 'ternary'"),
        (tenant_config(split="holdout"), "key 'batch_prediction.split' has value 'holdout'"),
        (tenant_config(features={"split": "double"}), "column 'split' clashes with a column prepare adds"),
        (tenant_config(target=""), "key 'dataset.target' has value ''"),
    ],
)
def test_a_bad_tenant_config_fails_with_the_key_and_what_is_allowed(job, config, reason):
    job.publish(config)
    job.raw("2026-01-01", "m1.jsonl", good_lines(60))

    assert job.run() == 1

    assert reason in job.paths.message.read_text()


def test_the_image_entry_point_runs_prepare_with_the_processing_job_s_arguments(job, tmp_path):
    job.raw("2026-01-01", "m1.jsonl", good_lines(60))
    environment = {
        **os.environ,
        "SM_PROCESSING_ROOT": str(job.paths.root),
        "SM_ROOT": str(tmp_path / "ml"),
        "PYTHONPATH": str(ROOT),
    }
    command = [sys.executable, "-m", "mlops_platform.training", "prepare", "--config", str(job.config)]

    done = subprocess.run(
        [*command, "--run-id", "run-9", "--day", RUN_DAY], env=environment, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert (job.paths.features / "run-9-train.parquet").is_file()

    failed = subprocess.run(
        [*command, "--run-id", "run-9", "--day", "soon"], env=environment, capture_output=True, text=True, check=False
    )
    assert failed.returncode == 1
    assert "--day has value 'soon'" in (tmp_path / "ml" / "output" / "message").read_text()
