"""Request bodies to a float32 matrix, scores to response bodies: CSV, JSON and JSON Lines.

Parsing is most of a request's cost after the model itself, so each format has a fast path that
hands the whole body to C (orjson, numpy) and a careful path, taken only when the fast one
declines, that walks the cells one by one, accepts what the fast path is too strict for (``.5``,
quoted numbers) and otherwise names the first bad cell. A ``BadRequest`` carries that one line.
CSV's careful path is ``csv_rows``, which the training image's ``serve`` reads its bodies with.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from mlops_platform.data.encoding import Encoding, ValueProblem
from mlops_platform.serving.csv_rows import BadRequest, csv_cells
from mlops_platform.serving.model import BIAS, Metadata

CSV = "text/csv"
JSON = "application/json"
JSON_LINES = "application/jsonlines"
CONTENT_TYPES = (CSV, JSON, JSON_LINES)

# Bytes a CSV body of plain numbers is made of; a body with any other byte (a letter other than
# the exponent, a quote, a bracket) goes the careful way, so `true`, `null`, `"1"` or `[1]` can
# never slip through the JSON fast path as numbers.
_CSV_NUMBER_BYTES = b"0123456789.,eE+- \t\r\n"
_NO_IDS: tuple[None, ...] = ()
MAX_ID_DEPTH = 32  # levels of arrays and objects in one record's id (``_checked_id``)


@dataclass(frozen=True)
class Batch:
    """Rows to score, and the id each JSON record carried (``{"id": ..., "features": ...}``), if any."""

    features: np.ndarray
    ids: Sequence[Any] = _NO_IDS

    def id_of(self, row: int) -> Any:
        return self.ids[row] if self.ids else None


@dataclass(frozen=True)
class Scored:
    """A batch's scores and, when asked for, the contributions (a row per row: each feature, then the bias)."""

    scores: np.ndarray
    contributions: np.ndarray | None = None


# ---- parsing ---------------------------------------------------------------------------------


def parse(content_type: str, body: bytes, features: Encoding) -> Batch:
    if content_type == CSV:
        return Batch(parse_csv(body, features))
    if content_type == JSON:
        return parse_json(body, features)
    return parse_json_lines(body, features)


def parse_csv(body: bytes, features: Encoding) -> np.ndarray:
    """Rows of the model's features, no header, as a float32 matrix: empty cells and unseen categories NaN."""
    matrix = None if features.has_categories else _csv_fast(body, features.width)
    return matrix if matrix is not None else _csv_careful(body, features)


def _csv_fast(body: bytes, width: int) -> np.ndarray | None:
    """A body of plain numbers read as one JSON array of rows; None when it is anything else."""
    if body.translate(None, _CSV_NUMBER_BYTES):
        return None
    try:
        matrix = float32(orjson.loads(b"[[" + body.strip().replace(b"\n", b"],[") + b"]]"))
    except (orjson.JSONDecodeError, ValueError):  # ".5", "1,,2", a blank line, ragged rows
        return None
    if matrix.ndim != 2 or matrix.shape[1] != width or not np.isfinite(matrix).all():
        return None
    return matrix


def _csv_careful(body: bytes, features: Encoding) -> np.ndarray:
    rows = []
    for number, cells in csv_cells(body, features.width):
        row = []
        for i, cell in enumerate(cells):
            try:
                row.append(features.text(i, cell.strip()))
            except ValueProblem as problem:
                raise BadRequest(f"row {number}, column {i + 1} {problem}") from None
        rows.append(row)
    return _finite_matrix(rows, lambda row, column: f"row {row + 1}, column {column + 1}")


def float32(values: Any) -> np.ndarray:
    """``values`` as float32; what overflows becomes infinite, which the callers refuse, without a warning."""
    with np.errstate(over="ignore"):
        return np.asarray(values, dtype=np.float32)


def _finite_matrix(rows: list[list[float]], where: Callable[[int, int], str]) -> np.ndarray:
    """Rows as float32 (NaN: missing), refusing values that are finite as float64 but overflow float32 (``1e39``)."""
    matrix = float32(rows)
    if np.isinf(matrix).any():
        row, column = (int(i) for i in np.argwhere(np.isinf(matrix))[0])
        raise BadRequest(f"{where(row, column)} is outside float32's range")
    return matrix


def parse_json(body: bytes, features: Encoding) -> Batch:
    """``{"instances": [[...], ...]}`` or ``{"instances": [{"<feature>": value, ...}, ...]}``."""
    document = _json(body, "the body")
    if not isinstance(document, dict) or not isinstance(document.get("instances"), list):
        raise BadRequest('the body must be a JSON object {"instances": [...]}')
    instances = document["instances"]
    if not instances:
        raise BadRequest('"instances" is empty; send at least one row')
    matrix = rows_fast(instances, features)
    if matrix is not None:
        return Batch(matrix)
    return _records(instances, features, "instance")


def parse_json_lines(body: bytes, features: Encoding) -> Batch:
    """One array or feature-name object a line; blank lines are skipped."""
    records = []
    numbers = []
    for number, line in enumerate(body.split(b"\n"), start=1):
        if line.strip():
            records.append(_json(line, f"line {number}"))
            numbers.append(number)
    if not records:
        raise BadRequest("the body holds no lines; send one JSON array or object a line")
    matrix = rows_fast(records, features)
    if matrix is not None:
        return Batch(matrix)
    return _records(records, features, "line", numbers)


def _json(text: bytes, what: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as error:
        raise BadRequest(f"{what} is not valid JSON: {str(error).splitlines()[0]}") from None


def rows_fast(records: list[Any], encoding: Encoding) -> np.ndarray | None:
    """Records that are all arrays of the model's width, or all objects of exactly its feature names,
    holding JSON numbers (booleans count as 1 and 0), as float32; None for anything else (a null, a string)."""
    features = encoding.names
    width = len(features)
    if encoding.has_categories:
        return None
    if isinstance(records[0], dict):
        rows = []
        for record in records:
            if type(record) is not dict or len(record) != width:
                return None
            try:
                rows.append([record[name] for name in features])
            except KeyError:
                return None
        records = rows
    elif not isinstance(records[0], list):
        return None
    try:
        matrix = np.array(records)
    except ValueError:  # ragged
        return None
    if matrix.ndim != 2 or matrix.shape[1] != width or matrix.dtype.kind not in "biuf":
        return None
    matrix = float32(matrix)
    return matrix if np.isfinite(matrix).all() else None


def _records(records: list[Any], features: Encoding, noun: str, numbers: Sequence[int] = ()) -> Batch:
    """The careful path: each record checked on its own; BadRequest names the first bad one."""
    rows: list[list[float]] = []
    ids: list[Any] = []
    for index, record in enumerate(records):
        label = f"{noun} {numbers[index] if numbers else index + 1}"
        row, record_id = record_row(record, features, label)
        rows.append(row)
        ids.append(record_id)
    matrix = _finite_matrix(
        rows, lambda row, column: f"{noun} {numbers[row] if numbers else row + 1}, value {column + 1}"
    )
    return Batch(matrix, ids if any(i is not None for i in ids) else _NO_IDS)


def record_row(record: Any, features: Encoding, label: str) -> tuple[list[float], Any]:
    """One record's feature values in model order (NaN where missing), and its id: an array, an object of
    feature names (source or restricted; an absent key is missing), or ``{"id": ..., "features": ...}``."""
    record_id = None
    if isinstance(record, dict) and "features" in record and set(record) <= {"id", "features"}:
        record_id, record = _checked_id(record.get("id"), label), record["features"]
    if isinstance(record, list):
        if len(record) != features.width:
            raise BadRequest(f"{label} has {len(record)} values; the model expects {features.width}")
        return [_value(features, i, v, f"{label}, value {i + 1}") for i, v in enumerate(record)], record_id
    if isinstance(record, dict):
        unknown = [name for name in record if name not in features.index]
        if unknown:
            raise BadRequest(f"{label} has unknown feature {unknown[0]!r}; the model expects {_names(features.names)}")
        row = [float("nan")] * features.width  # an absent feature is missing
        for name, value in record.items():
            row[features.index[name]] = _value(features, features.index[name], value, f"{label}, feature {name!r}")
        return row, record_id
    raise BadRequest(f"{label} is neither an array of values nor an object of feature names")


def _checked_id(record_id: Any, label: str) -> Any:
    """An id the answer can echo: orjson reads 1,024 levels of nesting but writes 254, so a deeper id parsed
    and then failed the response (a 500); ids stay far below (the answer wraps them in three more levels)."""
    level, items = 0, [record_id]
    while items:
        level += 1
        if level > MAX_ID_DEPTH:
            raise BadRequest(f"{label}'s id is nested deeper than {MAX_ID_DEPTH} levels")
        items = [
            item
            for value in items
            if isinstance(value, list | dict)
            for item in (value.values() if isinstance(value, dict) else value)
        ]
    return record_id


def _value(features: Encoding, i: int, value: Any, where: str) -> float:
    try:
        return features.value(i, value)
    except ValueProblem as problem:
        raise BadRequest(f"{where} {problem}") from None


def _names(features: Sequence[str]) -> str:
    shown = ", ".join(features[:5])
    return f"{len(features)} features ({shown}{', ...' if len(features) > 5 else ''})"


# ---- formatting ------------------------------------------------------------------------------


def format_csv(scored: Scored, metadata: Metadata | None = None) -> bytes:
    """One line a row: the score, then with explanations each feature's contribution and the bias.

    Multiclass: the predicted label, each class's probability (in the model's class order), then with
    explanations each class's contributions and bias in turn. 9 significant digits: every float32
    score survives the round trip through text.
    """
    if scored.scores.ndim == 2:
        assert metadata is not None
        lines = []
        for row, (label, probabilities) in enumerate(
            zip(_labels(scored, metadata), scored.scores.tolist(), strict=True)
        ):
            cells = [_csv_text(label), *(f"{p:.9g}" for p in probabilities)]
            if scored.contributions is not None:
                cells += [f"{value:.9g}" for value in scored.contributions[row].reshape(-1).tolist()]
            lines.append(",".join(cells) + "\n")
        return "".join(lines).encode()
    if scored.contributions is None:
        return "".join([f"{value:.9g}\n" for value in scored.scores.tolist()]).encode()
    table = np.column_stack([scored.scores, scored.contributions]).tolist()
    return "".join([",".join([f"{value:.9g}" for value in row]) + "\n" for row in table]).encode()


def _csv_text(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n\r') else text


def _labels(scored: Scored, metadata: Metadata) -> list[str]:
    return [metadata.classes[i] for i in scored.scores.argmax(axis=1).tolist()]


def predictions(scored: Scored, batch: Batch, metadata: Metadata) -> list[dict[str, Any]]:
    """One ``{"score": s}`` a row (multiclass: ``{"label": l, "probabilities": {class: p}}``), with ``id``
    when the record carried one, and ``contributions`` when asked (multiclass: per class)."""
    names = [*metadata.features, BIAS]
    rows: list[dict[str, Any]]
    if scored.scores.ndim == 2:
        classes = metadata.classes
        rows = [
            {"label": label, "probabilities": dict(zip(classes, probabilities, strict=True))}
            for label, probabilities in zip(_labels(scored, metadata), scored.scores.tolist(), strict=True)
        ]
        if scored.contributions is not None:
            for row, per_class in zip(rows, scored.contributions.tolist(), strict=True):
                row["contributions"] = {
                    label: dict(zip(names, shares, strict=True))
                    for label, shares in zip(classes, per_class, strict=True)
                }
    else:
        rows = [{"score": score} for score in scored.scores.tolist()]
        if scored.contributions is not None:
            for row, shares in zip(rows, scored.contributions.tolist(), strict=True):
                row["contributions"] = dict(zip(names, shares, strict=True))
    if batch.ids:
        for row, record_id in zip(rows, batch.ids, strict=True):
            if record_id is not None:
                row["id"] = record_id
    return rows


def format_json(scored: Scored, batch: Batch, metadata: Metadata) -> bytes:
    return orjson.dumps({"predictions": predictions(scored, batch, metadata)})


def format_json_lines(scored: Scored, batch: Batch, metadata: Metadata) -> bytes:
    return b"".join(orjson.dumps(row) + b"\n" for row in predictions(scored, batch, metadata))


def format_body(accept: str, scored: Scored, batch: Batch, metadata: Metadata) -> bytes:
    if accept == CSV:
        return format_csv(scored, metadata)
    if accept == JSON:
        return format_json(scored, batch, metadata)
    return format_json_lines(scored, batch, metadata)
