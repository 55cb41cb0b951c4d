"""``read_capture``: SageMaker data-capture JSON Lines, as the capture zone holds them, become rows.

Each line is one invocation::

    {"captureData": {"endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                                       "data": "1.0,2.0", "encoding": "CSV"},
                     "endpointOutput": {"observedContentType": "text/csv", "mode": "OUTPUT",
                                        "data": "0.93", "encoding": "CSV"}},
     "eventMetadata": {"eventId": "...", "inferenceId": "...", "inferenceTime": "2026-..."},
     "eventVersion": "0"}

Inputs are CSV rows or our scoring API's ``{"instances": [[...], ...]}``; outputs CSV scores or
``{"predictions": [{"score": s}, ...]}``; ``encoding`` is CSV, JSON or BASE64. The line does not
name its variant: SageMaker writes it in the S3 key (``<endpoint>/<variant>/yyyy/mm/dd/hh/``), so
the caller reads each variant's files with ``variant=`` and joins the windows with ``combine``.

Live traffic is outside input: a bad line is counted under one of ``MALFORMED_REASONS`` and
skipped whole (a partial line would misalign inputs and predictions), never raised. A value of the
wrong type (a string where a number belongs) keeps its row: it becomes missing and is counted as
a type mismatch of its feature, which the report shows as data quality.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

MALFORMED_REASONS = (
    "malformed-json",  # not UTF-8 or not JSON
    "missing-field",  # captureData.endpointInput, its data or encoding absent or not a string
    "unsupported-encoding",  # encoding other than CSV, JSON or BASE64
    "undecodable",  # BASE64 that does not decode to UTF-8 text
    "unsupported-content-type",  # neither text/csv nor application/json
    "malformed-body",  # a body that is not CSV rows or {"instances": [[...]]} / {"predictions": [...]}
    "wrong-column-count",  # a row whose length differs from the features'
    "prediction-count-mismatch",  # a different number of predictions than input rows
)
ENCODINGS = frozenset({"CSV", "JSON", "BASE64"})
DEFAULT_VARIANT = "AllTraffic"
MISSING_CELLS = frozenset({"", "nan"})  # how CSV writers (pandas among them) spell a missing value


class Malformed(Exception):
    """A capture line that cannot be read; its argument is one of ``MALFORMED_REASONS``."""


@dataclass
class CaptureWindow:
    """Captured rows: features (NaN where missing or mistyped), each row's prediction (NaN if none) and variant."""

    feature_names: tuple[str, ...]
    features: pd.DataFrame
    predictions: np.ndarray
    variants: np.ndarray
    inference_ids: list[str | None]
    lines: int = 0
    malformed: Counter[str] = field(default_factory=Counter)
    type_mismatches: Counter[str] = field(default_factory=Counter)

    @property
    def rows(self) -> int:
        return len(self.features)

    @classmethod
    def combine(cls, windows: Sequence[CaptureWindow]) -> CaptureWindow:
        """One window from several (one per variant or per file), for a single comparison."""
        if not windows:
            raise ValueError("combine needs at least one window")
        names = windows[0].feature_names
        if any(w.feature_names != names for w in windows):
            raise ValueError("windows of different features cannot be combined")
        return cls(
            feature_names=names,
            features=pd.concat([w.features for w in windows], ignore_index=True),
            predictions=np.concatenate([w.predictions for w in windows]),
            variants=np.concatenate([w.variants for w in windows]),
            inference_ids=[i for w in windows for i in w.inference_ids],
            lines=sum(w.lines for w in windows),
            malformed=sum((w.malformed for w in windows), Counter()),
            type_mismatches=sum((w.type_mismatches for w in windows), Counter()),
        )


def read_capture(
    lines: Iterable[str | bytes], feature_names: Sequence[str], *, variant: str = DEFAULT_VARIANT
) -> CaptureWindow:
    """Every captured row of ``lines`` (one variant's capture files), with the malformed lines counted."""
    names = tuple(feature_names)
    rows: list[list[float]] = []
    predictions: list[float] = []
    ids: list[str | None] = []
    read = 0
    malformed: Counter[str] = Counter()
    mismatches: Counter[str] = Counter()
    for line in lines:
        if not line.strip():
            continue  # the newline after the last record
        read += 1
        try:
            inputs, scores, inference_id, line_mismatches = parse_line(line, names)
        except Malformed as problem:
            malformed[str(problem)] += 1
            continue
        rows.extend(inputs)
        predictions.extend(scores)
        ids.extend([inference_id] * len(inputs))
        mismatches.update(line_mismatches)
    return CaptureWindow(
        feature_names=names,
        features=pd.DataFrame(np.array(rows, dtype=float).reshape(len(rows), len(names)), columns=list(names)),
        predictions=np.array(predictions, dtype=float),
        variants=np.full(len(rows), variant, dtype=object),
        inference_ids=ids,
        lines=read,
        malformed=malformed,
        type_mismatches=mismatches,
    )


def parse_line(
    line: str | bytes, names: tuple[str, ...]
) -> tuple[list[list[float]], list[float], str | None, Counter[str]]:
    """One line's input rows, one prediction per row, its inference id and its type mismatches per feature."""
    try:
        event = json.loads(line)
    except (UnicodeDecodeError, ValueError) as error:
        raise Malformed("malformed-json") from error
    capture = event.get("captureData") if isinstance(event, dict) else None
    if not isinstance(capture, dict):
        raise Malformed("missing-field")
    content_type, body = _body(capture.get("endpointInput"))
    mismatches: Counter[str] = Counter()
    rows = [_row(cells, names, mismatches) for cells in _input_rows(content_type, body)]
    output = capture.get("endpointOutput")
    if output is None:
        # Capture configured for requests only: drift still runs, prediction shift has nothing to compare.
        scores = [math.nan] * len(rows)
    else:
        scores = _scores(*_body(output))
        if len(scores) != len(rows):
            raise Malformed("prediction-count-mismatch")
    metadata = event.get("eventMetadata")
    inference_id = metadata.get("inferenceId") if isinstance(metadata, dict) else None
    return rows, scores, inference_id if isinstance(inference_id, str) else None, mismatches


def _body(section: Any) -> tuple[str, str]:
    """The content type and the decoded text of an ``endpointInput`` or ``endpointOutput``."""
    if not isinstance(section, dict):
        raise Malformed("missing-field")
    data, encoding = section.get("data"), section.get("encoding")
    content_type = section.get("observedContentType")
    if not isinstance(data, str) or not isinstance(encoding, str) or not isinstance(content_type, str):
        raise Malformed("missing-field")
    if encoding.upper() not in ENCODINGS:
        raise Malformed("unsupported-encoding")
    if encoding.upper() == "BASE64":
        try:
            data = base64.b64decode(data, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as error:
            raise Malformed("undecodable") from error
    return content_type.split(";", 1)[0].strip().lower(), data


def _input_rows(content_type: str, body: str) -> list[list[Any]]:
    if content_type == "text/csv":
        return [cells for cells in csv.reader(io.StringIO(body)) if cells]
    if content_type == "application/json":
        instances = _json_body(body, "instances")
        if not instances or not all(isinstance(row, list) for row in instances):
            raise Malformed("malformed-body")
        return instances
    raise Malformed("unsupported-content-type")


def _scores(content_type: str, body: str) -> list[float]:
    if content_type == "text/csv":
        # Built-in algorithms answer one score per line or comma-separated on one line.
        cells = [cell for row in csv.reader(io.StringIO(body)) for cell in row]
        values = [_number(cell) for cell in cells]
    elif content_type == "application/json":
        values = [_number(p.get("score") if isinstance(p, dict) else p) for p in _json_body(body, "predictions")]
    else:
        raise Malformed("unsupported-content-type")
    if any(v is None for v in values):
        raise Malformed("malformed-body")
    return [float(v) for v in values if v is not None]


def _json_body(body: str, key: str) -> list[Any]:
    try:
        parsed = json.loads(body)
    except ValueError as error:
        raise Malformed("malformed-body") from error
    items = parsed.get(key) if isinstance(parsed, dict) else None
    if not isinstance(items, list):
        raise Malformed("malformed-body")
    return items


def _row(cells: list[Any], names: tuple[str, ...], mismatches: Counter[str]) -> list[float]:
    if len(cells) != len(names):
        raise Malformed("wrong-column-count")
    values = []
    for name, cell in zip(names, cells, strict=True):
        if cell is None or (isinstance(cell, str) and cell.strip().lower() in MISSING_CELLS):
            values.append(math.nan)
            continue
        value = _number(cell)
        if value is None:
            mismatches[name] += 1
        values.append(math.nan if value is None else value)
    return values


def _number(cell: Any) -> float | None:
    """A finite number from a CSV cell or a JSON value (true/false as 1/0), else None."""
    if isinstance(cell, bool):
        return float(cell)
    if isinstance(cell, int | float):
        value = float(cell)
    elif isinstance(cell, str):
        try:
            value = float(cell)
        except ValueError:
            return None
    else:
        return None
    return value if math.isfinite(value) else None
