"""Files as well as records: CSV, Parquet and JSON Lines files in the raw zone, read by prepare as a stream."""

from __future__ import annotations

import csv
import json
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops_platform.data import readers
from mlops_platform.data.ingest import ParsedMessage, raw_lines
from mlops_platform.data.prepare import main
from mlops_platform.data.raw_records import Column, PrepareError, Schema, split_of
from mlops_platform.sagemaker_paths import ProcessingPaths
from mlops_platform.schema.columns import restricted_name

FEATURES = {"a": "double", "n": "bigint", "flag": "boolean"}
DAY = "2026-01-01"
SCHEMA = Schema(
    tenant="acme",
    dataset="churn",
    target="y",
    problem_type="binary",
    features=tuple(Column(name, restricted_name(name), kind) for name, kind in FEATURES.items()),
    batch_split="test",
)


def frame(count: int) -> pd.DataFrame:
    """Rows with a fraction, a whole number, a flag and a 0/1 target, as a tenant's export would hold them."""
    index = np.arange(count)
    return pd.DataFrame({"a": index / 8, "n": index * 3, "flag": index % 3 == 0, "y": index % 2})


def write(folder: Path, name: str, data: pd.DataFrame) -> Path:
    """The file as pandas writes it: the shapes tenants deliver."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if path.suffix == ".csv":
        data.to_csv(path, index=False)
    elif path.suffix == ".parquet":
        data.to_parquet(path, index=False)
    else:
        data.to_json(path, orient="records", lines=True)
    return path


class Job:
    def __init__(self, root: Path) -> None:
        self.paths = ProcessingPaths(root=root / "processing", message=root / "ml" / "output" / "message")
        self.config = root / "processing" / "input" / "config" / "acme.json"
        self.config.parent.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            json.dumps(
                {
                    "schema_version": 1,
                    "tenant": "acme",
                    "dataset": {
                        "name": "churn",
                        "target": "y",
                        "problem_type": "binary",
                        "features": FEATURES,
                        # These tests plant bad rows to see each one's reason; the ceiling has tests of its own.
                        "max_rejected_share": 0.5,
                    },
                    "batch_prediction": {"dataset": "churn", "split": "test"},
                }
            )
        )

    def folder(self, day: str = DAY) -> Path:
        return self.paths.raw / f"dt={day}"

    def run(self, run_id: str = "run-1") -> int:
        return main(["--config", str(self.config), "--run-id", run_id, "--day", "2026-01-02"], self.paths)

    def curated(self, day: str = DAY) -> pd.DataFrame:
        return pd.read_parquet(self.paths.curated / f"dt={day}" / "records.parquet")

    def report(self) -> dict:
        return json.loads((self.paths.report / "report.json").read_text())

    def rejected(self) -> list[dict]:
        return [json.loads(line) for line in (self.paths.report / "rejected.jsonl").read_text().splitlines()]


@pytest.fixture
def job(tmp_path: Path) -> Job:
    return Job(tmp_path)


def values(curated: pd.DataFrame) -> list[tuple]:
    return sorted(curated[["a", "n", "flag", "y"]].itertuples(index=False, name=None))


# -- the same rows, whichever way they arrive -----------------------------------------------------


@pytest.mark.parametrize("name", ["delivery.csv", "delivery.parquet", "delivery.jsonl"])
def test_a_file_s_rows_become_the_same_curated_rows_as_the_same_records_sent_through_ingestion(job, tmp_path, name):
    data = frame(300)
    # The records path: ingestion's own writer makes the raw object.
    records = data.astype(object).to_dict(orient="records")
    parsed = ParsedMessage(tenant="acme", dataset="churn", records=list(enumerate(records)))
    ingested = Job(tmp_path / "ingested")
    ingested.folder().mkdir(parents=True)
    (ingested.folder() / "m-1.jsonl").write_bytes(raw_lines(parsed, "m-1", f"{DAY}T09:00:00.000Z"))
    write(job.folder(), name, data)

    assert ingested.run() == 0
    assert job.run() == 0

    curated = job.curated()
    assert values(curated) == values(ingested.curated())
    assert [str(t) for t in curated.dtypes.iloc[2:]] == ["float64", "int64", "bool", "int64"]
    # Row ids name the file and the row; the day's midnight is when the rows were received.
    assert curated["record_id"].tolist()[:2] == [f"dt={DAY}/{name}#1", f"dt={DAY}/{name}#2"]
    assert (curated["received_at"] == pd.Timestamp(f"{DAY}T00:00:00Z")).all()
    report = job.report()
    assert (report["rows_read"], report["valid"], report["rejected"]) == (300, 300, 0)
    assert report["skipped_files"] == []


def test_a_row_keeps_its_split_across_reruns_and_new_files(job):
    write(job.folder(), "first.csv", frame(200))
    assert job.run("run-1") == 0
    before = pd.concat(pd.read_parquet(job.paths.features / f"run-1-{s}.parquet") for s in readers_splits())
    write(job.folder("2026-01-02"), "second.parquet", frame(150))

    assert job.run("run-2") == 0

    after = pd.concat(pd.read_parquet(job.paths.features / f"run-2-{s}.parquet") for s in readers_splits())
    kept = dict(zip(after["record_id"], after["split"], strict=True))
    assert all(kept[rid] == split for rid, split in zip(before["record_id"], before["split"], strict=True))
    assert all(split_of(rid) == split for rid, split in kept.items())
    assert len(after) == 350


def readers_splits() -> tuple[str, ...]:
    return ("train", "validation", "test")


def test_ingested_records_and_tenant_files_of_one_day_are_read_together(job):
    write(job.folder(), "upload.csv", frame(100))
    line = {"record_id": "m-1-0", "received_at": f"{DAY}T09:00:00Z", "record": {"a": 1.0, "n": 1, "flag": True, "y": 1}}
    (job.folder() / "m-1.jsonl").write_text(json.dumps(line) + "\n" + json.dumps(line) + "\n")

    assert job.run() == 0

    report = job.report()
    # The ingested duplicate is refused as before; the file's rows are all kept.
    assert (report["rows_read"], report["valid"], report["rejected_by_reason"]) == (102, 101, {"duplicate-record": 1})


# -- CSV cells: typed by the schema, never silently changed ---------------------------------------


def lines_of(path: Path, schema: Schema = SCHEMA, source: str = "dt=2026-01-01/x.csv") -> list[tuple[int, object]]:
    decoded: list[tuple[int, object]] = []
    for number, item in readers.read_rows(path, source, schema):
        decoded.append((number, json.loads(item)["record"] if isinstance(item, bytes) else item))
    return decoded


def test_csv_cells_are_read_as_their_declared_types_and_empty_cells_as_missing(tmp_path):
    path = tmp_path / f"dt={DAY}" / "x.csv"
    path.parent.mkdir()
    # A byte-order mark (spreadsheet export), a whole number written as 7.0 (pandas with gaps), TRUE,
    # empty cells, a column the schema does not declare, and a text label as the target.
    path.write_bytes('\ufeffa,n,flag,y,note\n0.5,7.0,TRUE,1,x\n,,,0,\n1e3,-2,0,yes,"a, b"\n'.encode())

    assert lines_of(path) == [
        (2, {"a": 0.5, "n": 7, "flag": True, "y": 1, "note": "x"}),
        (3, {"a": None, "n": None, "flag": None, "y": 0, "note": None}),
        (4, {"a": 1000.0, "n": -2, "flag": False, "y": "yes", "note": "a, b"}),
    ]


def test_a_csv_cell_that_does_not_read_as_its_type_is_rejected_naming_the_column(job):
    job.folder().mkdir(parents=True)
    good = "".join(f"{i / 2},{i},true,{i % 2}\n" for i in range(60))
    (job.folder() / "x.csv").write_text("a,n,flag,y\n" + good + "1.5,2.5,true,1\nabc,1,yes,0\n")

    assert job.run() == 0

    rejections = job.rejected()
    assert [(r["line"], r["reason"], r["record_id"]) for r in rejections] == [
        (62, "wrong-type", f"dt={DAY}/x.csv#61"),
        (63, "wrong-type", f"dt={DAY}/x.csv#62"),
    ]
    assert "n" in rejections[0]["detail"]
    assert "a" in rejections[1]["detail"]
    assert job.report()["valid"] == 60


def test_a_csv_row_with_more_or_fewer_cells_than_the_header_is_rejected_with_its_line(job):
    job.folder().mkdir(parents=True)
    good = "".join(f"{i / 2},{i},true,{i % 2}\n" for i in range(60))
    (job.folder() / "x.csv").write_text("a,n,flag,y\n" + good + "1,2,true,1,9\n1,2,true\n")

    assert job.run() == 0

    assert [(r["line"], r["reason"]) for r in job.rejected()] == [(62, "unknown-field"), (63, "missing-field")]
    assert job.report()["rows_read"] == 62


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"a,n,a,y\n1,2,3,1\n", "dt=2026-01-01/x.csv: the columns 'a' appear more than once"),
        (b"a,n,flag,y\n1,2,\xff,1\n", "dt=2026-01-01/x.csv: the file is not UTF-8 text"),
    ],
)
def test_a_csv_file_that_cannot_be_read_fails_the_run_naming_the_file(job, content, reason):
    job.folder().mkdir(parents=True)
    (job.folder() / "x.csv").write_bytes(content)

    assert job.run() == 1

    message = job.paths.message.read_text()
    assert reason in message
    assert "\n" not in message.strip()


# -- Parquet and JSON Lines -----------------------------------------------------------------------


def test_parquet_nulls_are_missing_and_nan_is_rejected_as_non_finite(tmp_path):
    path = tmp_path / f"dt={DAY}" / "x.parquet"
    path.parent.mkdir()
    table = pa.table(
        {
            "a": pa.array([1.5, None, float("nan")], pa.float64()),
            "n": pa.array([1, 2, None], pa.int64()),
            "flag": pa.array([True, None, False]),
            "y": pa.array([1, 0, 1], pa.int8()),
        }
    )
    pq.write_table(table, path)

    decoded = lines_of(path, source=f"dt={DAY}/x.parquet")

    assert [record for _, record in decoded[:2]] == [
        {"a": 1.5, "n": 1, "flag": True, "y": 1},
        {"a": None, "n": 2, "flag": None, "y": 0},
    ]
    [(_, line)] = list(readers.read_rows(path, f"dt={DAY}/x.parquet", SCHEMA))[2:]
    with pytest.raises(readers.Invalid, match="non-finite"):
        readers.parsed(line, SCHEMA)


def test_a_plain_rows_json_lines_file_keeps_its_bad_lines_reasons(job):
    write(job.folder(), "rows.jsonl", frame(50))
    with (job.folder() / "rows.jsonl").open("ab") as stream:
        stream.write(b"{not json\n[1, 2]\n\n")

    assert job.run() == 0

    assert [(r["line"], r["reason"]) for r in job.rejected()] == [
        (51, "malformed-json"),
        (52, "not-an-object"),
        (53, "malformed-json"),
    ]
    assert job.report()["valid"] == 50


def test_a_json_lines_file_is_ingestion_s_when_its_first_object_has_a_record_id(tmp_path):
    ingested = tmp_path / "m-1.jsonl"
    ingested.write_text(json.dumps({"record_id": "r", "received_at": "x", "record": {}}) + "\n")
    rows = tmp_path / "rows.jsonl"
    rows.write_text("{not json\n" + json.dumps({"a": 1}) + "\n")

    assert readers.holds_records(ingested)
    assert not readers.holds_records(rows)
    assert not readers.holds_records(tmp_path / "x.csv")


@pytest.mark.parametrize("name", ["x.csv", "x.parquet", "x.jsonl"])
def test_columns_of_a_file_are_its_header_schema_or_keys(tmp_path, name):
    data = frame(3).rename(columns={"a": "mean radius", "n": "od280/od315"})
    path = write(tmp_path, name, data)

    assert readers.columns_of(path) == ["mean radius", "od280/od315", "flag", "y"]


def test_columns_of_refuses_a_file_it_cannot_name_the_columns_of(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "x.txt").write_text("a\n")

    with pytest.raises(PrepareError, match="no header row"):
        readers.columns_of(tmp_path / "empty.csv")
    with pytest.raises(PrepareError, match="suffix must be one of"):
        readers.columns_of(tmp_path / "x.txt")


# -- memory: a file larger than the machine's memory streams through ------------------------------


def peak_while(consume) -> int:
    """The most memory Python objects took at once while ``consume`` ran, in bytes."""
    tracemalloc.start()
    try:
        consume()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_reading_a_large_csv_holds_one_row_at_a_time(tmp_path):
    path = tmp_path / f"dt={DAY}" / "big.csv"
    path.parent.mkdir()
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["a", "n", "flag", "y"])
        writer.writerows((i / 7, i, i % 2 == 0, i % 2) for i in range(20_000))
    rows = 0

    def consume() -> None:
        nonlocal rows
        for _ in readers.read_rows(path, "big.csv", SCHEMA):
            rows += 1

    peak = peak_while(consume)

    assert rows == 20_000
    # The rows as Python objects would take about 10 MB; one at a time stays far below 1 MB.
    assert peak < 1_000_000, peak


def test_reading_a_large_parquet_file_holds_one_batch_at_a_time(tmp_path):
    path = tmp_path / f"dt={DAY}" / "big.parquet"
    path.parent.mkdir()
    pq.write_table(pa.Table.from_pandas(frame(20_000)), path, row_group_size=2_000)

    def consume(batch_rows: int):
        return lambda: sum(1 for _ in readers.read_rows(path, "big.parquet", SCHEMA, batch_rows=batch_rows))

    bounded = peak_while(consume(200))
    whole = peak_while(consume(20_000))

    assert bounded < 1_000_000, bounded
    assert whole > 10 * bounded  # what the bound guards against: a batch as large as the file


def test_prepare_holds_a_chunk_of_a_file_s_rows_not_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "ROWS_PER_BATCH", 250)
    peaks = {}
    for count in (2_000, 8_000):
        job = Job(tmp_path / str(count))
        write(job.folder(), "big.csv", frame(count))
        peaks[count] = peak_while(lambda job=job: job.run())
        assert job.report()["valid"] == count
        curated = pq.ParquetFile(job.paths.curated / f"dt={DAY}" / "records.parquet")
        assert curated.metadata.num_row_groups == count // 250

    # Four times the rows, about the same memory: nothing grows with the file.
    assert peaks[8_000] < 1.3 * peaks[2_000], peaks
