"""``read_capture``: SageMaker data-capture JSON Lines, as the capture zone holds them, become rows.

Each line is one invocation::

    {"captureData": {"endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                                       "data": "1.0,2.0", "encoding": "CSV"},
                     "endpointOutput": {"observedContentType": "text/csv", "mode": "OUTPUT",
                                        "data": "0.93", "encoding": "CSV"}},
     "eventMetadata": {"eventId": "...", "inferenceId": "...", "inferenceTime": "2026-..."},
     "eventVersion": "0"}

Inputs are what the inference server reads (``serving.codec``): CSV rows, ``{"instances": [...]}``
or JSON Lines, a row an array of values or an object of feature names (source or restricted; an
absent key is missing; ``{"id", "features"}`` unwrapped). Outputs are what it answers: CSV scores
or ``{"predictions": [{"score": s}, ...]}`` (JSON Lines: one object a line); for a multiclass model
(``classes`` given) a CSV line ``label,p_1,...,p_k[,contributions]`` or ``{"label": l,
"probabilities": {class: p}}``, read as a row of each class's probability in ``classes``' order.
A ``categorical`` feature keeps its text (None where missing); the others become floats.
``encoding`` is CSV, JSON or BASE64. The line does not
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
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlops_platform.schema.columns import restricted_name

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
JSON_TYPES = ("application/json", "application/jsonlines")


class Malformed(Exception):
    """A capture line that cannot be read; its argument is one of ``MALFORMED_REASONS``."""


@dataclass
class CaptureWindow:
    """Captured rows: features (NaN where missing or mistyped; a categorical one's text, None where missing),
    each row's prediction (NaN if none; multiclass: a row of each class's probability) and variant."""

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


@dataclass(frozen=True)
class Layout:
    """What a line's rows and answers hold: the features in order, the categorical ones, the model's classes."""

    names: tuple[str, ...]
    categorical: frozenset[str] = frozenset()
    classes: tuple[str, ...] = ()  # multiclass only
    index: dict[str, int] = field(default_factory=dict)  # source and restricted names to positions

    @classmethod
    def of(cls, names: Sequence[str], categorical: Collection[str], classes: Sequence[str]) -> Layout:
        index = {restricted_name(n): i for i, n in enumerate(names)} | {n: i for i, n in enumerate(names)}
        return cls(tuple(names), frozenset(categorical), tuple(classes), index)


def read_capture(
    lines: Iterable[str | bytes],
    feature_names: Sequence[str],
    *,
    variant: str = DEFAULT_VARIANT,
    categorical: Collection[str] = (),
    classes: Sequence[str] = (),
) -> CaptureWindow:
    """Every captured row of ``lines`` (one variant's capture files), with the malformed lines counted.

    ``categorical``: the features whose values are text; ``classes``: a multiclass model's labels, in its order.
    """
    layout = Layout.of(feature_names, categorical, classes)
    names = layout.names
    rows: list[list[Any]] = []
    predictions: list[Any] = []
    ids: list[str | None] = []
    read = 0
    malformed: Counter[str] = Counter()
    mismatches: Counter[str] = Counter()
    for line in lines:
        if not line.strip():
            continue  # the newline after the last record
        read += 1
        try:
            inputs, scores, inference_id, line_mismatches = parse_line(line, layout)
        except Malformed as problem:
            malformed[str(problem)] += 1
            continue
        rows.extend(inputs)
        predictions.extend(scores)
        ids.extend([inference_id] * len(inputs))
        mismatches.update(line_mismatches)
    features = pd.DataFrame(rows, columns=list(names), dtype=object) if rows else pd.DataFrame(columns=list(names))
    for name in names:
        if name not in layout.categorical:
            features[name] = features[name].astype(float)
    return CaptureWindow(
        feature_names=names,
        features=features,
        predictions=np.array(predictions, dtype=float).reshape(len(rows), *([len(classes)] if classes else [])),
        variants=np.full(len(rows), variant, dtype=object),
        inference_ids=ids,
        lines=read,
        malformed=malformed,
        type_mismatches=mismatches,
    )


def parse_line(line: str | bytes, layout: Layout) -> tuple[list[list[Any]], list[Any], str | None, Counter[str]]:
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
    rows = [_row(cells, layout, mismatches) for cells in _input_rows(content_type, body)]
    output = capture.get("endpointOutput")
    if output is None:
        # Capture configured for requests only: drift still runs, prediction shift has nothing to compare.
        nothing = [math.nan] * len(layout.classes) if layout.classes else math.nan
        scores: list[Any] = [nothing] * len(rows)
    else:
        scores = _scores(*_body(output), layout.classes)
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


def _input_rows(content_type: str, body: str) -> list[Any]:
    if content_type == "text/csv":
        return [cells for cells in csv.reader(io.StringIO(body)) if cells]
    if content_type in JSON_TYPES:
        instances = _json_items(content_type, body, "instances")
        if not instances or not all(isinstance(row, list | dict) for row in instances):
            raise Malformed("malformed-body")
        return instances
    raise Malformed("unsupported-content-type")


def _scores(content_type: str, body: str, classes: tuple[str, ...]) -> list[Any]:
    if content_type == "text/csv":
        rows = [row for row in csv.reader(io.StringIO(body)) if row]
        if classes:  # the label, each class's probability, then contributions if asked
            values: list[Any] = [[_number(c) for c in row[1 : 1 + len(classes)]] for row in rows]
        else:  # Built-in algorithms answer one score per line or comma-separated on one line.
            values = [_number(cell) for row in rows for cell in row]
    elif content_type in JSON_TYPES:
        values = [_prediction(p, classes) for p in _json_items(content_type, body, "predictions")]
    else:
        raise Malformed("unsupported-content-type")
    if classes:
        if any(len(v) != len(classes) or any(p is None for p in v) for v in values):
            raise Malformed("malformed-body")
        return [[float(p) for p in v] for v in values]
    if any(v is None for v in values):
        raise Malformed("malformed-body")
    return [float(v) for v in values]


def _prediction(item: Any, classes: tuple[str, ...]) -> Any:
    if not classes:
        return _number(item.get("score") if isinstance(item, dict) else item)
    probabilities = item.get("probabilities") if isinstance(item, dict) else None
    if not isinstance(probabilities, dict):
        return []
    return [_number(probabilities.get(label)) for label in classes]


def _json_items(content_type: str, body: str, key: str) -> list[Any]:
    """``{key: [...]}``'s list, or a JSON Lines body's values (one a line)."""
    if content_type == "application/json":
        return _json_body(body, key)
    try:
        return [json.loads(line) for line in body.splitlines() if line.strip()]
    except ValueError as error:
        raise Malformed("malformed-body") from error


def _json_body(body: str, key: str) -> list[Any]:
    try:
        parsed = json.loads(body)
    except ValueError as error:
        raise Malformed("malformed-body") from error
    items = parsed.get(key) if isinstance(parsed, dict) else None
    if not isinstance(items, list):
        raise Malformed("malformed-body")
    return items


def _row(cells: Any, layout: Layout, mismatches: Counter[str]) -> list[Any]:
    names = layout.names
    if isinstance(cells, dict) and "features" in cells and set(cells) <= {"id", "features"}:
        cells = cells["features"]
    if isinstance(cells, dict):  # an object of feature names: an absent one is missing
        if any(name not in layout.index for name in cells):
            raise Malformed("wrong-column-count")
        by_position: list[Any] = [None] * len(names)
        for name, value in cells.items():
            by_position[layout.index[name]] = value
        cells = by_position
    if len(cells) != len(names):
        raise Malformed("wrong-column-count")
    values: list[Any] = []
    for name, cell in zip(names, cells, strict=True):
        if cell is None or (isinstance(cell, str) and cell.strip().lower() in MISSING_CELLS):
            values.append(None if name in layout.categorical else math.nan)
            continue
        if name in layout.categorical:
            # Serving reads a category as text (a JSON whole number as its digits); anything else is refused.
            text = cell.strip() if isinstance(cell, str) else str(cell) if type(cell) is int else None
            if text is None:
                mismatches[name] += 1
            values.append(text)
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
