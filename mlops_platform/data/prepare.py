"""``prepare``: a tenant's raw JSON lines become curated Parquet, the run's splits and the batch input.

It runs as a SageMaker Processing job on a small CPU instance, before any training job, so the
expensive instances read ready-made Parquet and a schema problem costs minutes of ``ml.t3``, not
a grid of failed training jobs. ``python -m mlops_platform.training prepare --config <tenant>.json
--run-id <run_id> --day <yyyy-mm-dd>``; the folders are SageMaker Processing's, under
``SM_PROCESSING_ROOT`` (default ``/opt/ml/processing``), so it runs as plain Python too:

- ``input/config/<tenant>.json``: the published tenant config (docs/training-pipeline.md);
- ``input/raw/dt=<day>/<id>.jsonl``: the tenant dataset's raw prefix, as ingestion wrote it, and the
  tenant's own files there (``.csv``, ``.parquet``, ``.jsonl``; ``readers``);
- ``output/curated/dt=<day>/records.parquet``: each raw day's valid records, rewritten whole;
- ``output/features/<run_id>-<split>.parquet``: every valid record, in its split;
- ``output/batch/<split>.csv``: the batch-prediction split's features, in the order of its Parquet file;
- ``output/report/report.json`` and ``rejected.jsonl``: what was read, kept and rejected, and why.

Every raw line is checked against the declared schema (``raw_records``); a bad one is written to
``rejected.jsonl`` with its file, line number and reason, never dropped silently. A record's split
comes from a hash of its ``record_id``, so reruns and new data never move a record between train
and test. Files are read a row at a time and written in chunks of ``readers.ROWS_PER_BATCH`` rows:
memory holds one chunk and the ids of ingested records (to refuse duplicates), never a whole file.
On failure the reason goes, in one line, to ``/opt/ml/output/message`` (the job's ExitMessage).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import re
import traceback
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import date
from pathlib import Path
from typing import IO, Any

# pyarrow ships no type hints (pyproject.toml lists no override for it).
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from mlops_platform.data import readers
from mlops_platform.data.prepare_report import Report
from mlops_platform.data.published_config import load_schema
from mlops_platform.data.raw_records import SPLITS, Invalid, PrepareError, Row, Schema, parse_line
from mlops_platform.sagemaker_paths import ProcessingPaths, write_exit_reason

log = logging.getLogger(__name__)

RUN_ID = re.compile(r"^[^\s/\\.][^\s/\\]{0,79}$")
DAY_FOLDER = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")
USAGE = "prepare --config PATH --run-id ID --day YYYY-MM-DD"
SCORING_FILE = "score.csv"  # the batch input when the tenant names a dataset for scoring
SCORING_IDS_FILE = "score-ids.csv"  # the record_id of each line of score.csv, in the report folder


def raw_days(raw: Path, run_day: date) -> tuple[dict[str, list[Path]], list[dict[str, str]]]:
    """The raw files by day (``dt=<day>/<id>.<jsonl|csv|parquet>``), in order, and the files that do not fit."""
    days: dict[str, list[Path]] = {}
    skipped: list[dict[str, str]] = []
    for path in sorted(p for p in raw.rglob("*") if p.is_file()) if raw.is_dir() else []:
        relative = path.relative_to(raw)
        match = DAY_FOLDER.match(relative.parts[0]) if len(relative.parts) == 2 else None
        day = _day(match.group(1)) if match else None
        if day is None or path.suffix not in readers.SUFFIXES:
            skipped.append({"file": relative.as_posix(), "reason": "not dt=<yyyy-mm-dd>/<id>.<jsonl|csv|parquet>"})
        elif day > run_day:
            skipped.append({"file": relative.as_posix(), "reason": f"a day after the run's day {run_day}"})
        else:
            days.setdefault(day.isoformat(), []).append(path)
    return dict(sorted(days.items())), skipped


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


class Outputs:
    """The run's output files, written a raw day at a time so memory holds one day."""

    def __init__(self, paths: ProcessingPaths, schema: Schema, run_id: str) -> None:
        self.paths = paths
        self.schema = schema
        for folder in (paths.curated, paths.features, paths.batch):
            folder.mkdir(parents=True, exist_ok=True)
        self.split_files = {split: paths.features / f"{run_id}-{split}.parquet" for split in SPLITS}
        self.writers = {
            split: pq.ParquetWriter(path, schema.features_schema(), compression="snappy")
            for split, path in self.split_files.items()
        }
        self.batch_file = paths.batch / (SCORING_FILE if schema.scoring_dataset else f"{schema.batch_split}.csv")
        self.batch: IO[str] = self.batch_file.open("w", newline="", encoding="utf-8")
        self.batch_csv = csv.writer(self.batch, lineterminator="\n")

    def write_day(self, day: str, rows: Iterable[Row]) -> int:
        """Write the day's rows ``readers.ROWS_PER_BATCH`` at a time (a curated row group each); how many there were."""
        folder = self.paths.curated / f"dt={day}"
        folder.mkdir(parents=True, exist_ok=True)
        count = 0
        curated = self.schema.curated_schema()
        with pq.ParquetWriter(folder / "records.parquet", curated, compression="snappy") as day_file:
            for chunk in readers.chunks(rows, readers.ROWS_PER_BATCH):
                self._write_chunk(day_file, chunk)
                count += len(chunk)
        return count

    def _write_chunk(self, day_file: Any, rows: list[Row]) -> None:
        schema = self.schema
        columns = list(zip(*(row.values for row in rows), strict=True))
        received = pa.array([row.received_at_ms for row in rows], pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
        curated = pa.Table.from_arrays(
            [pa.array([row.record_id for row in rows], pa.string()), received]
            + [pa.array(list(values), f.type) for values, f in zip(columns, schema.arrow_fields(), strict=True)],
            schema=schema.curated_schema(),
        )
        day_file.write_table(curated)

        splits = pa.array([row.split for row in rows], pa.string())
        features = curated.drop_columns(["received_at"]).add_column(1, "split", splits)
        for split, writer in self.writers.items():
            part = features.filter(pc.equal(splits, split))
            if part.num_rows:
                writer.write_table(part)
        if not schema.scoring_dataset:
            self.write_batch(row for row in rows if row.split == schema.batch_split)

    def write_batch(self, rows: Iterable[Row]) -> None:
        width = len(self.schema.features)
        self.batch_csv.writerows([_csv_value(value) for value in row.values[:width]] for row in rows)

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
        self.batch.close()

    def discard(self) -> None:
        """A failed run leaves no splits for a later step to pick up by mistake."""
        for path in (*self.split_files.values(), self.batch_file):
            path.unlink(missing_ok=True)


def _csv_value(value: Any) -> str:
    """What ``serve`` and the model read: booleans as 1 and 0, doubles with every digit (repr round-trips),
    a missing value as an empty cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return repr(value) if isinstance(value, float) else str(value)


def prepare(paths: ProcessingPaths, config: Path, run_id: str, run_day: date) -> Report:
    """Read, check, write; raise PrepareError (after writing the report) when the run cannot train."""
    schema = load_schema(config)
    days, skipped = raw_days(paths.raw, run_day)
    report = Report(
        tenant=schema.tenant,
        dataset=schema.dataset,
        run_id=run_id,
        day=run_day.isoformat(),
        batch_split=schema.batch_split,
        skipped_files=skipped,
        max_rejected_share=schema.max_rejected_share,
    )
    paths.report.mkdir(parents=True, exist_ok=True)
    outputs = Outputs(paths, schema, run_id)
    kept: set[str] = set()
    try:
        with (paths.report / "rejected.jsonl").open("w", encoding="utf-8") as rejected:
            for day, files in days.items():
                read_before = report.rows_read
                valid = outputs.write_day(day, _read_day(files, paths.raw, schema, kept, report, rejected))
                read = report.rows_read - read_before
                report.days[day] = {
                    "files": len(files),
                    "rows_read": read,
                    "valid": valid,
                    "rejected": read - valid,
                }
                log.info("day %s: %d rows read, %d valid", day, read, valid)
            if schema.scoring_dataset:
                report.scoring = _score_rows(paths, schema, outputs, run_day, rejected)
    finally:
        outputs.close()
    problem = report.problem()
    if problem:
        report.status, report.failure = "failed", problem
        outputs.discard()
    (paths.report / "report.json").write_text(json.dumps(report.as_json(), indent=2) + "\n", encoding="utf-8")
    if problem:
        raise PrepareError(problem)
    return report


def _read_day(
    files: list[Path], raw: Path, schema: Schema, kept: set[str], report: Report, rejected: IO[str]
) -> Iterator[Row]:
    for path in files:
        source = path.relative_to(raw).as_posix()
        records = readers.holds_records(path)  # ids of a tenant file's rows are unique by construction
        for number, line in readers.read_rows(path, source, schema):
            report.rows_read += 1
            row = _checked(line, schema, kept if records else None, rejected, source, number)
            if isinstance(row, Invalid):
                report.rejected[row.reason] += 1
                report.rejected_columns.update((row.reason, column) for column in row.columns)
                continue
            report.unknown_columns.update(row.unknown)
            report.valid += 1
            report.splits[row.split] += 1
            yield row


def _checked(
    line: readers.Item,
    schema: Schema,
    kept: set[str] | None,
    rejected: IO[str],
    source: str,
    number: int,
    *,
    with_target: bool = True,
) -> Row | Invalid:
    """The line's row, or its problem (written to ``rejected.jsonl`` with the file and line).

    ``kept`` holds the ids of ingested records kept so far (their ids may repeat); ``None`` for a tenant
    file's rows, whose ids are unique by construction (``readers.row_id``)."""
    try:
        if isinstance(line, Invalid):
            raise line
        row = parse_line(line, schema, with_target=with_target)
        if kept is not None and row.record_id in kept:
            raise Invalid("duplicate-record", "a record with this record_id was kept earlier", row.record_id)
    except Invalid as problem:
        entry = {
            "file": source,
            "line": number,
            "record_id": problem.record_id,
            "reason": problem.reason,
            "detail": problem.detail,
        }
        rejected.write(json.dumps(entry) + "\n")
        return problem
    if kept is not None:
        kept.add(row.record_id)
    return row


def _score_rows(
    paths: ProcessingPaths, schema: Schema, outputs: Outputs, run_day: date, rejected: IO[str]
) -> dict[str, Any]:
    """The scoring dataset's rows (features, no target) into the batch input, with their record ids in order.

    Batch transform answers line n of ``score.csv`` with line n of its output; ``score-ids.csv`` in the
    report folder names the record of each line. Its bad rows are rejected like training rows.
    """
    days, _ = raw_days(paths.score, run_day)
    counts: Counter[str] = Counter()
    kept: set[str] = set()
    with (paths.report / SCORING_IDS_FILE).open("w", encoding="utf-8", newline="") as ids:
        for files in days.values():
            for path in files:
                source = f"score/{path.relative_to(paths.score).as_posix()}"
                records = readers.holds_records(path)
                for number, line in readers.read_rows(path, source, schema):
                    row = _checked(line, schema, kept if records else None, rejected, source, number, with_target=False)
                    if isinstance(row, Invalid):
                        counts[row.reason] += 1
                        continue
                    outputs.write_batch([row])
                    ids.write(row.record_id + "\n")
                    counts["scored"] += 1
    return {
        "dataset": schema.scoring_dataset,
        "rows": counts.pop("scored", 0),
        "rejected": sum(counts.values()),
        "rejected_by_reason": dict(sorted(counts.items())),
    }


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would exit 2 without a failure reason
        raise PrepareError(f"{message}; usage: {USAGE}")


def parse_arguments(argv: list[str]) -> tuple[Path, str, date]:
    parser = _Parser(prog="prepare", description="Raw records to curated Parquet, splits and batch input.")
    parser.add_argument("--config", required=True, type=Path, help="the published tenant config (JSON)")
    parser.add_argument("--run-id", required=True, help="the run's id: the execution's name")
    parser.add_argument("--day", required=True, help="the run's day, yyyy-mm-dd (UTC)")
    arguments = parser.parse_args(argv)
    if not RUN_ID.match(arguments.run_id):
        raise PrepareError(
            f"--run-id has value {arguments.run_id!r}; allowed: 1 to 80 characters, no whitespace, slash or leading dot"
        )
    day = _day(arguments.day) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", arguments.day) else None
    if day is None:
        raise PrepareError(f"--day has value {arguments.day!r}; allowed: a date as yyyy-mm-dd")
    return arguments.config, arguments.run_id, day


def main(argv: list[str], paths: ProcessingPaths | None = None) -> int:
    paths = paths or ProcessingPaths.from_environment()
    try:
        config, run_id, run_day = parse_arguments(argv)
        report = prepare(paths, config, run_id, run_day)
    except PrepareError as error:
        return write_exit_reason(paths.message, "prepare", str(error))
    except Exception as error:
        traceback.print_exc()
        return write_exit_reason(paths.message, "prepare", f"{type(error).__name__}: {error}")
    log.info(
        "prepared %d valid of %d rows: %s; rejected %s",
        report.valid,
        report.rows_read,
        dict(report.splits),
        dict(report.rejected) or "none",
    )
    return 0
