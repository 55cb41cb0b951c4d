"""Prepare on real tabular data: missing values, categories, column names as tenants have them, classes,
a ceiling on rejected rows, new upstream columns and a dataset named for scoring (issue 16)."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow.parquet as pq

from mlops_platform.data.raw_records import PARQUET_METADATA_KEY
from tests.unit.training import test_prepare
from tests.unit.training.test_prepare import line, tenant_config

job = test_prepare.job  # the Processing job's folders, as test_prepare lays them out

TYPED = {"mean radius": "double", "n/count": "bigint", "flag": "boolean", "carrier": "categorical"}


def typed_record(index: int, **overrides: object) -> dict:
    values = {"mean radius": index / 10, "n/count": index, "flag": index % 2 == 0, "carrier": f"c{index % 3}", "y": 1}
    return {**values, **overrides}


def typed_config(**dataset: object) -> dict:
    return tenant_config(**{"features": TYPED, "target": "y", **dataset})


def test_missing_cells_are_nulls_and_categories_strings_under_the_restricted_column_names(job):
    job.publish(typed_config())
    lines = [line(f"r-{i}", typed_record(i)) for i in range(60)]
    # A null, an absent key, an empty category: all missing, none rejected.
    lines += [
        line("gap-1", typed_record(1, **{"mean radius": None})),
        line("gap-2", {k: v for k, v in typed_record(2).items() if k != "n/count"}),
        line("gap-3", typed_record(3, carrier="")),
        line("code", typed_record(4, carrier=7)),
    ]
    job.raw("2026-01-01", "m1.jsonl", lines)

    assert job.run() == 0

    curated = pd.read_parquet(job.paths.curated / "dt=2026-01-01" / "records.parquet").set_index("record_id")
    assert list(curated.columns) == ["received_at", "mean_radius", "n_count", "flag", "carrier", "y"]
    assert pd.isna(curated.loc["gap-1", "mean_radius"])
    assert pd.isna(curated.loc["gap-2", "n_count"])
    assert pd.isna(curated.loc["gap-3", "carrier"])
    assert curated.loc["code", "carrier"] == "7"
    assert job.report()["rejected"] == 0
    # The Parquet files carry the schema for training: source names, types, classes.
    schema = json.loads(pq.read_schema(job.paths.features / "run-1-train.parquet").metadata[PARQUET_METADATA_KEY])
    assert [(f["name"], f["column"], f["type"]) for f in schema["features"]] == [
        ("mean radius", "mean_radius", "double"),
        ("n/count", "n_count", "bigint"),
        ("flag", "flag", "boolean"),
        ("carrier", "carrier", "categorical"),
    ]
    assert schema["classes"] == ["0", "1"]
    # The batch input: an empty cell where a value is missing, categories as text.
    batch = (job.paths.batch / "test.csv").read_text()
    assert batch.count("\n") == len(pd.read_parquet(job.paths.features / "run-1-test.parquet"))


def test_a_required_feature_missing_is_a_rejection_naming_its_column(job):
    config = typed_config()
    config["dataset"]["columns"] = [
        {"name": name, "column": name.replace(" ", "_").replace("/", "_"), "type": kind, "required": name == "flag"}
        for name, kind in TYPED.items()
    ]
    job.publish({**config, "dataset": {**config["dataset"], "max_rejected_share": 0.5}})
    job.raw(
        "2026-01-01",
        "m1.jsonl",
        [*[line(f"r-{i}", typed_record(i)) for i in range(40)], line("x", typed_record(1, flag=None))],
    )

    assert job.run() == 0

    assert job.report()["top_rejections"] == [{"reason": "missing-field", "rows": 1, "columns": ["flag"]}]


def test_rejections_above_the_ceiling_fail_the_run_with_the_top_reasons_and_columns(job):
    job.publish(typed_config())
    lines = [line(f"r-{i}", typed_record(i)) for i in range(90)]
    lines += [line(f"bad-{i}", typed_record(i, **{"mean radius": "wide"})) for i in range(6)]
    lines += [line(f"third-{i}", typed_record(i, y=2)) for i in range(4)]  # a third class in a binary tenant
    job.raw("2026-01-01", "m1.jsonl", lines)

    assert job.run() == 1

    message = job.paths.message.read_text()
    assert message.count("\n") == 1
    assert (
        "10 of 100 raw rows were rejected (10.00%), above the tenant's max_rejected_share of 0.01: "
        "wrong-type 6 rows (mean radius), invalid-target 4 rows (y); see rejected.jsonl"
    ) in message
    assert job.report()["status"] == "failed"
    assert not list(job.paths.features.glob("*.parquet"))


def test_rejections_within_the_ceiling_are_counted_with_their_reasons_in_the_report(job):
    job.publish(typed_config(max_rejected_share=0.05))
    lines = [line(f"r-{i}", typed_record(i)) for i in range(99)] + [line("bad", typed_record(1, flag="yes"))]
    job.raw("2026-01-01", "m1.jsonl", lines)

    assert job.run() == 0

    report = job.report()
    assert (report["rejected"], report["rejected_share"]) == (1, 0.01)
    assert report["top_rejections"] == [{"reason": "wrong-type", "rows": 1, "columns": ["flag"]}]
    assert any(
        "1 of 100 rows rejected" in warning and "wrong-type 1 row (flag)" in warning for warning in report["warnings"]
    )


def test_a_new_upstream_column_is_recorded_and_ignored_by_default_and_rejected_when_asked(job):
    job.publish(typed_config())
    job.raw("2026-01-01", "m1.jsonl", [line(f"r-{i}", typed_record(i, region="eu")) for i in range(60)])

    assert job.run() == 0
    report = job.report()
    assert (report["valid"], report["unknown_columns"]) == (60, {"region": 60})
    assert "records carry columns the schema does not declare, ignored: region" in report["warnings"]

    job.publish(typed_config(unknown_columns="reject"))
    assert job.run() == 1
    assert "unknown-field 60 rows (region)" in job.paths.message.read_text()


def test_multiclass_labels_are_text_and_declared_classes_refuse_others(job):
    job.publish(typed_config(problem_type="multiclass", classes=["1", "2", "3"], max_rejected_share=0.05))
    lines = [line(f"r-{i}", typed_record(i, y=[1, 2, "3"][i % 3])) for i in range(60)] + [
        line("x", typed_record(0, y=4))
    ]
    job.raw("2026-01-01", "m1.jsonl", lines)

    assert job.run() == 0

    curated = pd.read_parquet(job.paths.curated / "dt=2026-01-01" / "records.parquet")
    assert sorted(set(curated["y"])) == ["1", "2", "3"]
    assert job.rejected()[0]["reason"] == "invalid-target"


def test_binary_declared_classes_map_labels_to_their_index(job):
    job.publish(typed_config(classes=["benign", "malignant"]))
    lines = [line(f"r-{i}", typed_record(i, y=["benign", "malignant"][i % 2])) for i in range(60)]
    job.raw("2026-01-01", "m1.jsonl", lines)

    assert job.run() == 0

    curated = pd.read_parquet(job.paths.curated / "dt=2026-01-01" / "records.parquet")
    assert curated["y"].tolist() == [i % 2 for i in range(60)]


def test_a_dataset_named_for_scoring_is_the_batch_input_whole_without_a_target(job):
    config = typed_config()
    job.publish({**config, "batch_prediction": {"dataset": "churn-new", "split": "test"}})
    job.raw("2026-01-01", "m1.jsonl", [line(f"r-{i}", typed_record(i)) for i in range(60)])
    new_rows = [{k: v for k, v in typed_record(i).items() if k != "y"} for i in range(7)]
    new_rows[3]["carrier"] = None
    folder = job.paths.score / "dt=2026-01-02"
    folder.mkdir(parents=True)
    (folder / "new.jsonl").write_bytes(b"".join(line(f"new-{i}", row) + b"\n" for i, row in enumerate(new_rows)))

    assert job.run() == 0

    assert sorted(p.name for p in job.paths.batch.iterdir()) == ["score.csv"]
    rows = (job.paths.batch / "score.csv").read_text().splitlines()
    assert len(rows) == 7
    assert rows[3].endswith(",")  # the missing category: an empty cell
    assert (job.paths.report / "score-ids.csv").read_text().split() == [f"new-{i}" for i in range(7)]
    assert job.report()["scoring"] == {"dataset": "churn-new", "rows": 7, "rejected": 0, "rejected_by_reason": {}}
