"""A tenant's raw records, checked one line at a time against the published tenant config's schema.

``prepare`` reads each raw JSON line with ``parse_line``: a typed ``Row`` (features in declared
order, then the target, and the record's split), or ``Invalid`` with one reason from ``REASONS``
and a detail that names no values. A record's split is a function of its ``record_id`` alone
(``split_of``), so reruns and new data never move a record between train and test.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

# pyarrow ships no type hints (pyproject.toml lists no override for it).
import pyarrow as pa  # type: ignore[import-untyped]

from mlops_platform.schema.columns import restricted_name

SCHEMA_VERSION = 1
SPLITS = ("train", "validation", "test")
# Share of records per split, in percent of the hash's range: 70/15/15.
SPLIT_BOUNDS = (("train", 70), ("validation", 85), ("test", 100))
# Columns prepare adds to the tenant's own; a tenant column of the same name would be ambiguous.
METADATA_COLUMNS = ("record_id", "received_at", "split")
# Missing values are nulls in every type; a categorical value is its text.
ARROW_TYPES = {"double": pa.float64(), "bigint": pa.int64(), "boolean": pa.bool_(), "categorical": pa.string()}
# binary: the class's index (0 or 1, in ``classes`` order); multiclass: the label's text.
TARGET_TYPES = {"binary": pa.int64(), "multiclass": pa.string(), "regression": pa.float64()}
BIGINT_RANGE = (-(2**63), 2**63 - 1)
BINARY_LABELS = ("0", "1")  # a binary target without declared classes: 0/false and 1/true
UNKNOWN_COLUMNS = ("ignore", "reject")
# Keys of the Parquet files' schema metadata that carry the tenant schema to training.
PARQUET_METADATA_KEY = b"mlops.schema"

# Why a raw line is rejected, in the order the checks run.
REASONS = (
    "malformed-json",  # not UTF-8, not JSON, or an empty line
    "not-an-object",  # the line, or its record, is not a JSON object
    "invalid-record-id",  # record_id missing, not a non-empty string, or not UTF-8
    "invalid-received-at",  # received_at missing or not an ISO-8601 time with its offset
    "missing-record",  # no "record" key
    "missing-field",  # a required feature, or the target, is absent or null
    "unknown-field",  # a key the schema does not declare (unknown_columns: reject only)
    "non-finite",  # a feature is NaN or infinite
    "wrong-type",  # a feature's JSON type does not match its declared type
    "invalid-target",  # not a value of the problem type (a third class in a binary problem, say)
    "duplicate-record",  # the record_id of a record already kept (the first one is kept)
)


class PrepareError(Exception):
    """A problem with the job's configuration or data, stated in one line."""


class Invalid(Exception):
    """One raw line's problem: a reason from REASONS, a detail that names no values, and the columns involved."""

    def __init__(self, reason: str, detail: str, record_id: str | None = None, columns: tuple[str, ...] = ()) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.record_id = record_id
        self.columns = columns


@dataclass(frozen=True)
class Column:
    """A declared feature: its source name (as in the data), its restricted name (Parquet's column), its type."""

    name: str
    column: str
    type: str
    required: bool = False


@dataclass(frozen=True)
class Schema:
    """What prepare needs from the published tenant config."""

    tenant: str
    dataset: str
    target: str
    problem_type: str
    features: tuple[Column, ...]  # in declared order
    batch_split: str
    classes: tuple[str, ...] | None = None  # declared labels; binary defaults to 0 and 1
    max_rejected_share: float = 0.01
    unknown_columns: str = "ignore"
    scoring_dataset: str | None = None  # a dataset of new rows to score instead of a split

    @property
    def feature_names(self) -> list[str]:
        return [feature.name for feature in self.features]

    @property
    def target_column(self) -> str:
        return restricted_name(self.target)

    def arrow_fields(self) -> list[pa.Field]:
        return [pa.field(f.column, ARROW_TYPES[f.type]) for f in self.features] + [
            pa.field(self.target_column, TARGET_TYPES[self.problem_type])
        ]

    def metadata(self) -> dict[bytes, bytes]:
        """The schema as training reads it from the Parquet files: names, types, classes."""
        document = {
            "features": [
                {"name": f.name, "column": f.column, "type": f.type, "required": f.required} for f in self.features
            ],
            "target": self.target,
            "target_column": self.target_column,
            "problem_type": self.problem_type,
            "classes": list(self.labels) if self.labels else None,
        }
        return {PARQUET_METADATA_KEY: json.dumps(document).encode("utf-8")}

    @property
    def labels(self) -> tuple[str, ...] | None:
        """The classes in the model's order, when known before training: declared, or binary's 0 and 1."""
        if self.classes:
            return self.classes
        return BINARY_LABELS if self.problem_type == "binary" else None

    def curated_schema(self) -> pa.Schema:
        return pa.schema(
            [
                pa.field("record_id", pa.string()),
                pa.field("received_at", pa.timestamp("ms", tz="UTC")),
                *self.arrow_fields(),
            ],
            metadata=self.metadata(),
        )

    def features_schema(self) -> pa.Schema:
        return pa.schema(
            [pa.field("record_id", pa.string()), pa.field("split", pa.string()), *self.arrow_fields()],
            metadata=self.metadata(),
        )


@dataclass(frozen=True)
class Row:
    record_id: str
    received_at_ms: int
    values: tuple[Any, ...]  # features in schema order (None where missing), then the target
    split: str
    unknown: tuple[str, ...] = ()  # keys the schema does not declare, ignored (unknown_columns: ignore)


def split_of(record_id: str) -> str:
    """The record's split: a function of its id alone, so no rerun or new data ever moves it."""
    digest = hashlib.sha256(record_id.encode("utf-8")).digest()
    bucket = int.from_bytes(digest[:8], "big") % 100
    return next(name for name, bound in SPLIT_BOUNDS if bucket < bound)


def parse_line(line: bytes, schema: Schema, *, with_target: bool = True) -> Row:
    """One raw line as a typed row, or Invalid with the first problem found.

    ``with_target`` False: a row to score (a scoring dataset), whose target, if any, is ignored.
    """
    try:
        document = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        raise Invalid("malformed-json", "the line is not UTF-8 text") from None
    except (ValueError, RecursionError) as error:
        detail = "an empty line" if not line.strip() else f"not JSON ({str(error).split(':')[0]})"
        raise Invalid("malformed-json", detail) from None
    if not isinstance(document, dict):
        raise Invalid("not-an-object", f"the line is {_json_type(document)}, not an object")
    record_id = _record_id(document.get("record_id"))
    received_at = _received_at(document.get("received_at"), record_id)
    if "record" not in document:
        raise Invalid("missing-record", "the line has no 'record' key", record_id)
    record = document["record"]
    if not isinstance(record, dict):
        raise Invalid("not-an-object", f"the record is {_json_type(record)}, not an object", record_id)
    declared = {*schema.feature_names, schema.target}
    unknown = tuple(sorted(set(record) - declared))
    if unknown and schema.unknown_columns == "reject":
        raise Invalid(
            "unknown-field",
            _listed("the record has fields the schema does not declare:", list(unknown)),
            record_id,
            unknown,
        )
    missing = [f.name for f in schema.features if f.required and record.get(f.name) is None]
    if with_target and record.get(schema.target) is None:
        missing.append(schema.target)
    if missing:
        raise Invalid("missing-field", _listed("the record lacks required fields", missing), record_id, tuple(missing))
    values = [_feature(f.name, f.type, record.get(f.name), record_id) for f in schema.features]
    values.append(_target(schema, record[schema.target], record_id) if with_target else None)
    return Row(
        record_id=record_id,
        received_at_ms=received_at,
        values=tuple(values),
        split=split_of(record_id),
        unknown=unknown,
    )


def _record_id(value: Any) -> str:
    if not isinstance(value, str) or not value:
        found = "an empty string" if value == "" else _json_type(value)
        raise Invalid("invalid-record-id", f"record_id is {found}, not a non-empty string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise Invalid("invalid-record-id", "record_id is not valid UTF-8 (a lone surrogate)") from None
    return value


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _received_at(value: Any, record_id: str) -> int:
    """Milliseconds since the epoch: Parquet's timestamp, which Athena reads as the table's ``timestamp``."""
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise Invalid("invalid-received-at", "received_at is not an ISO-8601 time with an offset", record_id)
    return (moment - EPOCH) // timedelta(milliseconds=1)


def _feature(name: str, kind: str, value: Any, record_id: str) -> Any:
    """The value as its declared type; None (missing) for null, an absent key or an empty categorical."""
    if value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        raise Invalid("non-finite", f"{name} is NaN or infinite", record_id, (name,))
    if kind == "categorical":
        if isinstance(value, str):
            return value or None
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)  # a code sent as a JSON number: 7 and "7" are one category
        raise Invalid(
            "wrong-type", f"{name} is {_json_type(value)}; expected categorical (a string)", record_id, (name,)
        )
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        raise Invalid(
            "wrong-type", f"{name} is {_json_type(value)}; expected boolean (true or false)", record_id, (name,)
        )
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid(
            "wrong-type", f"{name} is {_json_type(value)}; expected {kind} (a JSON number)", record_id, (name,)
        )
    if kind == "bigint":
        if not isinstance(value, int):
            raise Invalid(
                "wrong-type", f"{name} is a number with a fraction or exponent; expected bigint", record_id, (name,)
            )
        if not BIGINT_RANGE[0] <= value <= BIGINT_RANGE[1]:
            raise Invalid("wrong-type", f"{name} is outside bigint's range (64-bit signed)", record_id, (name,))
        return value
    try:
        return float(value)
    except OverflowError:
        raise Invalid("non-finite", f"{name} is too large for a double", record_id, (name,)) from None


def label_of(value: Any) -> str | None:
    """A class label's text: strings as they are, whole numbers as digits, booleans as 1 and 0; None otherwise."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return value if isinstance(value, str) and value.strip() else None


def _target(schema: Schema, value: Any, record_id: str) -> Any:
    name = schema.target
    if schema.problem_type in ("binary", "multiclass"):
        label = label_of(value)
        labels = schema.labels
        if label is None or (labels is not None and label not in labels):
            allowed = f"one of {_listed('', list(labels)).strip()}" if labels else "a label (a string or whole number)"
            raise Invalid(
                "invalid-target",
                f"{name} is not a class of this {schema.problem_type} problem; expected {allowed}",
                record_id,
                (name,),
            )
        return labels.index(label) if schema.problem_type == "binary" and labels else label
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid("invalid-target", f"{name} is {_json_type(value)}; expected a finite number", record_id, (name,))
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise Invalid("invalid-target", f"{name} is NaN or infinite; expected a finite number", record_id, (name,))
    return number


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _listed(prefix: str, names: list[str]) -> str:
    shown = ", ".join(names[:5])
    return f"{prefix} {shown}" + (f" and {len(names) - 5} more" if len(names) > 5 else "")
