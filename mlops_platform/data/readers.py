"""Tenant files in the raw zone, read as a stream of rows in the form ``prepare`` checks.

A tenant delivers a dataset either as records (through ingestion) or as files, under the same key
layout: ``raw/<tenant>/<dataset>/dt=<yyyy-mm-dd>/<name>.<csv|parquet|jsonl>``. Three file kinds:

- **CSV** with a header row (UTF-8, a byte-order mark allowed): cells are typed by the tenant's
  schema (``double``, ``bigint``, ``boolean``: ``true``/``false``/``1``/``0``, ``categorical``: the
  text as is); an empty cell is a missing value; a cell that does not read as its type stays text,
  so the check rejects it as the wrong type, naming the column;
- **Parquet**: the file's own types, read one batch of ``batch_rows`` rows at a time (a row group
  is the unit pyarrow reads from disk, so row groups, not the file, must fit in memory);
- **JSON Lines**: one JSON object per line, keyed by column. A file whose first object carries a
  ``record_id`` or ``received_at`` key holds records as ingestion wrote them (those names are
  reserved: no tenant column can have them) and is read as it is.

Each row of a file becomes the line ingestion would have written for it: ``record_id`` is
``<file>#<row>`` (the file's key below the dataset's prefix and the row's number, from 1), so reruns
never move a row between splits, and ``received_at`` is midnight UTC of the file's ``dt=`` day. Rows
are produced one at a time, and nothing here holds more than one Parquet batch: a file larger than
the machine's memory streams through. Ids of file rows are unique by construction, so ``prepare``
keeps no set of them (it does for records, whose ids ingestion assigns).

A row that cannot become a line at all (a CSV row with more or fewer cells than the header) is an
``Invalid``, rejected with its reason like any other; a file that cannot be read at all (a header
that repeats a column, text that is not UTF-8, a damaged Parquet file) stops the run with a
``PrepareError`` naming the file: its rows are never silently dropped.
"""

from __future__ import annotations

import base64
import csv
import datetime
import decimal
import io
import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

# pyarrow ships no type hints (pyproject.toml lists no override for it).
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from mlops_platform.data.raw_records import Invalid, PrepareError, Row, Schema, parse_line

CSV, PARQUET, JSONL = ".csv", ".parquet", ".jsonl"
SUFFIXES = (JSONL, CSV, PARQUET)
# Rows per Parquet batch read and per chunk prepare writes: about a few MB of Python objects.
ROWS_PER_BATCH = 10_000
# Envelope keys that mark a JSON Lines file as ingestion's (both are reserved column names).
ENVELOPE_KEYS = frozenset({"record_id", "received_at"})
# How many lines ``columns_of`` reads to learn a JSON Lines file's columns.
JSONL_SAMPLE_LINES = 1_000
TARGET = "target"
BOOLEAN_TEXT = {"true": True, "false": False, "1": True, "0": False}

Item = bytes | Invalid  # a raw line for parse_line, or the reason a row could not become one


def row_id(source: str, number: int) -> str:
    """A file row's record id: its file (below the dataset's prefix) and its row number, from 1."""
    return f"{source}#{number}"


def cell_types(schema: Schema) -> dict[str, str]:
    """Column -> the type a CSV cell is read as: each feature's declared type, and the target."""
    return {**{feature.name: feature.type for feature in schema.features}, schema.target: TARGET}


def holds_records(path: Path) -> bool:
    """Whether the file holds records as ingestion writes them (their ids may repeat), not a tenant's rows."""
    if path.suffix != JSONL:
        return False
    with path.open("rb") as stream:
        for line in stream:
            try:
                first = json.loads(line)
            except (ValueError, RecursionError):
                continue
            return not isinstance(first, dict) or bool(ENVELOPE_KEYS & first.keys())
    return True


def read_rows(path: Path, source: str, schema: Schema, batch_rows: int = ROWS_PER_BATCH) -> Iterator[tuple[int, Item]]:
    """(line or row number, item) for each row of a raw file, one at a time; ``source`` is its name in reports."""
    day = path.parent.name.removeprefix("dt=")
    received_at = f"{day}T00:00:00+00:00"
    if path.suffix == CSV:
        yield from _csv_rows(path, source, received_at, cell_types(schema))
    elif path.suffix == PARQUET:
        yield from _parquet_rows(path, source, received_at, batch_rows)
    elif holds_records(path):
        with path.open("rb") as stream:
            yield from enumerate(stream, start=1)
    else:
        yield from _jsonl_rows(path, source, received_at)


def parsed(item: Item, schema: Schema) -> Row:
    """The row ``parse_line`` makes of the item, or the item's own ``Invalid``."""
    if isinstance(item, Invalid):
        raise item
    return parse_line(item, schema)


def columns_of(path: Path) -> list[str]:
    """A file's column names, in order: the CSV header, the Parquet schema, or the keys of a JSON Lines
    file's first ``JSONL_SAMPLE_LINES`` lines. Raises ``PrepareError`` when there are none to read."""
    if path.suffix == CSV:
        with _text(path) as stream:
            header = next(csv.reader(stream), None)
        if not header:
            raise PrepareError(f"{path.name}: the file has no header row")
        return _once(path.name, header)
    if path.suffix == PARQUET:
        return _once(path.name, pq.read_schema(path).names)
    if path.suffix != JSONL:
        raise PrepareError(f"{path.name}: the file's suffix must be one of {', '.join(SUFFIXES)}")
    seen: dict[str, None] = {}
    with path.open("rb") as stream:
        for number, line in enumerate(stream, start=1):
            if number > JSONL_SAMPLE_LINES:
                break
            try:
                row = json.loads(line)
            except (ValueError, RecursionError):
                raise PrepareError(f"{path.name}: line {number} is not JSON") from None
            if not isinstance(row, dict):
                raise PrepareError(f"{path.name}: line {number} is not a JSON object of column to value")
            seen.update(dict.fromkeys(row))
    if not seen:
        raise PrepareError(f"{path.name}: the file has no rows")
    return list(seen)


def _once(name: str, columns: list[str]) -> list[str]:
    repeated = sorted(column for column, count in Counter(columns).items() if count > 1)
    if repeated:
        raise PrepareError(f"{name}: the columns {', '.join(map(repr, repeated))} appear more than once")
    return columns


def _text(path: Path) -> io.TextIOWrapper:
    # utf-8-sig drops the byte-order mark spreadsheet programs write; newline="" as the csv module asks.
    return path.open("r", encoding="utf-8-sig", newline="")


def _line(source: str, number: int, received_at: str, record: Mapping[str, Any]) -> bytes:
    """The line ingestion would have written for the row: prepare checks it exactly as it checks records.

    NaN and infinities stay as JSON's ``NaN``/``Infinity`` so the check rejects them as non-finite."""
    envelope = {"record_id": row_id(source, number), "received_at": received_at, "record": record}
    return json.dumps(envelope, default=_plain, separators=(",", ":")).encode("ascii")


def _plain(value: Any) -> Any:
    """Parquet values that JSON has no type for: decimals as numbers, times as ISO text, bytes as base64."""
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return str(value)


def _csv_rows(path: Path, source: str, received_at: str, types: dict[str, str]) -> Iterator[tuple[int, Item]]:
    with _text(path) as stream:
        reader = csv.reader(stream)
        try:
            header = next(reader, None)
            if header is None:
                return
            kinds = [types.get(column) for column in _once(source, header)]
            for number, cells in enumerate(reader, start=1):
                if not cells:  # a blank line: no row at all
                    continue
                if len(cells) != len(header):
                    yield reader.line_num, _ragged(source, number, len(cells), len(header))
                    continue
                record = {column: _cell(kind, text) for column, kind, text in zip(header, kinds, cells, strict=True)}
                yield reader.line_num, _line(source, number, received_at, record)
        except UnicodeDecodeError as error:
            raise PrepareError(f"{source}: the file is not UTF-8 text (byte {error.start} of a block)") from None
        except csv.Error as error:
            raise PrepareError(f"{source}: line {reader.line_num} cannot be read as CSV ({error})") from None


def _ragged(source: str, number: int, cells: int, columns: int) -> Invalid:
    reason = "unknown-field" if cells > columns else "missing-field"
    detail = f"the row has {cells} cells and the header {columns} columns"
    return Invalid(reason, detail, row_id(source, number))


def _cell(kind: str | None, text: str) -> Any:
    """A CSV cell as the JSON value a record would carry for its column's type; text where it does not read as one."""
    if text == "":
        return None
    if kind == "double":
        return _number(text, float)
    if kind == "bigint":
        return _whole(text)
    if kind == "boolean":
        return BOOLEAN_TEXT.get(text.strip().lower(), text)
    if kind == TARGET:
        return _target(text)
    return text  # categorical, and columns the schema does not declare


def _number(text: str, kind: type) -> Any:
    try:
        return kind(text)
    except ValueError:
        return text


def _whole(text: str) -> Any:
    """``7`` and ``7.0`` (a pandas export of a whole-number column with gaps) are 7; anything else stays as it is."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = decimal.Decimal(text.strip())
    except decimal.InvalidOperation:
        return text
    if number.is_finite() and number == number.to_integral_value():
        return int(number)
    return float(number) if number.is_finite() else text


def _target(text: str) -> Any:
    """The target as a JSON producer would send it: a number, true or false, or the label's text."""
    for kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            continue
        return value if not isinstance(value, float) or math.isfinite(value) else text
    return {"true": True, "false": False}.get(text.strip().lower(), text)


def _parquet_rows(path: Path, source: str, received_at: str, batch_rows: int) -> Iterator[tuple[int, Item]]:
    try:
        parquet = pq.ParquetFile(path)
        _once(source, parquet.schema_arrow.names)
        number = 0
        for batch in parquet.iter_batches(batch_size=batch_rows):
            for record in batch.to_pylist():
                number += 1
                yield number, _line(source, number, received_at, record)
    except (pa.ArrowException, OSError) as error:
        raise PrepareError(f"{source}: the file cannot be read as Parquet ({error})") from None


def _jsonl_rows(path: Path, source: str, received_at: str) -> Iterator[tuple[int, Item]]:
    with path.open("rb") as stream:
        for number, line in enumerate(stream, start=1):
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                record = None
            # A line that is not a JSON object goes to the check as it is, which rejects it with its reason.
            yield number, _line(source, number, received_at, record) if isinstance(record, dict) else line


def chunks(rows: Iterable[Row], size: int) -> Iterator[list[Row]]:
    """Rows in lists of at most ``size``: what prepare holds in memory at once."""
    chunk: list[Row] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
