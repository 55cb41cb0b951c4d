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
from pathlib import Path
from typing import Any

# pyarrow ships no type hints (pyproject.toml lists no override for it).
import pyarrow as pa  # type: ignore[import-untyped]

SCHEMA_VERSION = 1
SPLITS = ("train", "validation", "test")
# Share of records per split, in percent of the hash's range: 70/15/15.
SPLIT_BOUNDS = (("train", 70), ("validation", 85), ("test", 100))
# Columns prepare adds to the tenant's own; a tenant column of the same name would be ambiguous.
METADATA_COLUMNS = ("record_id", "received_at", "split")
ARROW_TYPES = {"double": pa.float64(), "bigint": pa.int64(), "boolean": pa.bool_()}
TARGET_TYPES = {"binary": pa.int64(), "regression": pa.float64()}
BIGINT_RANGE = (-(2**63), 2**63 - 1)

# Why a raw line is rejected, in the order the checks run.
REASONS = (
    "malformed-json",  # not UTF-8, not JSON, or an empty line
    "not-an-object",  # the line, or its record, is not a JSON object
    "invalid-record-id",  # record_id missing, not a non-empty string, or not UTF-8
    "invalid-received-at",  # received_at missing or not an ISO-8601 time with its offset
    "missing-record",  # no "record" key
    "missing-field",  # a declared feature or the target is absent
    "unknown-field",  # a key the schema does not declare
    "non-finite",  # a feature is NaN or infinite
    "wrong-type",  # a feature's JSON type does not match its declared type
    "invalid-target",  # binary: 0/1 or true/false; regression: a finite number
    "duplicate-record",  # the record_id of a record already kept (the first one is kept)
)


class PrepareError(Exception):
    """A problem with the job's configuration or data, stated in one line."""


class Invalid(Exception):
    """One raw line's problem: a reason from REASONS and a detail that names no values."""

    def __init__(self, reason: str, detail: str, record_id: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.record_id = record_id


@dataclass(frozen=True)
class Schema:
    """What prepare needs from the published tenant config."""

    tenant: str
    dataset: str
    target: str
    problem_type: str
    features: tuple[tuple[str, str], ...]  # (column, double | bigint | boolean), in declared order
    batch_split: str

    @property
    def feature_names(self) -> list[str]:
        return [name for name, _ in self.features]

    def arrow_fields(self) -> list[pa.Field]:
        return [pa.field(name, ARROW_TYPES[kind]) for name, kind in self.features] + [
            pa.field(self.target, TARGET_TYPES[self.problem_type])
        ]

    def curated_schema(self) -> pa.Schema:
        return pa.schema(
            [
                pa.field("record_id", pa.string()),
                pa.field("received_at", pa.timestamp("ms", tz="UTC")),
                *self.arrow_fields(),
            ]
        )

    def features_schema(self) -> pa.Schema:
        return pa.schema([pa.field("record_id", pa.string()), pa.field("split", pa.string()), *self.arrow_fields()])


@dataclass(frozen=True)
class Row:
    record_id: str
    received_at_ms: int
    values: tuple[Any, ...]  # features in schema order, then the target
    split: str


def load_schema(path: Path) -> Schema:
    """The published tenant config's dataset and batch split, or a PrepareError naming the key."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PrepareError(f"{path}: the tenant config is missing; allowed: the published <tenant>.json") from None
    except (UnicodeDecodeError, ValueError) as error:
        raise PrepareError(f"{path}: the tenant config is not JSON ({error})") from None
    if not isinstance(config, dict):
        raise PrepareError(f"{path}: the tenant config is not a JSON object")
    if config.get("schema_version") != SCHEMA_VERSION:
        raise PrepareError(
            f"{path}: key 'schema_version' has value {config.get('schema_version')!r}; allowed: {SCHEMA_VERSION}"
        )
    dataset = _key(path, config, "dataset", dict)
    batch = _key(path, config, "batch_prediction", dict)
    features = _key(path, dataset, "features", dict, "dataset.")
    problem_type = _key(path, dataset, "problem_type", str, "dataset.")
    split = batch.get("split", "test")
    if problem_type not in TARGET_TYPES:
        raise PrepareError(
            f"{path}: key 'dataset.problem_type' has value {problem_type!r}; allowed: binary or regression"
        )
    if split not in SPLITS:
        raise PrepareError(f"{path}: key 'batch_prediction.split' has value {split!r}; allowed: {', '.join(SPLITS)}")
    if not features:
        raise PrepareError(f"{path}: key 'dataset.features' is empty; allowed: a mapping of column to type")
    for name, kind in features.items():
        if kind not in ARROW_TYPES:
            raise PrepareError(
                f"{path}: key 'dataset.features.{name}' has value {kind!r}; allowed: double, bigint or boolean"
            )
    target = _key(path, dataset, "target", str, "dataset.")
    for column in (*features, target):
        if column in METADATA_COLUMNS:
            raise PrepareError(f"{path}: column {column!r} clashes with a column prepare adds ({METADATA_COLUMNS})")
    if target in features:
        raise PrepareError(f"{path}: the target {target!r} is also a feature")
    return Schema(
        tenant=str(config.get("tenant", path.stem)),
        dataset=_key(path, dataset, "name", str, "dataset."),
        target=target,
        problem_type=problem_type,
        features=tuple(features.items()),
        batch_split=split,
    )


def _key(path: Path, mapping: dict[str, Any], key: str, kind: type, prefix: str = "") -> Any:
    value = mapping.get(key)
    if not isinstance(value, kind) or (kind is str and not value):
        allowed = "a JSON object" if kind is dict else "a non-empty string"
        raise PrepareError(f"{path}: key '{prefix}{key}' has value {value!r}; allowed: {allowed}")
    return value


def split_of(record_id: str) -> str:
    """The record's split: a function of its id alone, so no rerun or new data ever moves it."""
    digest = hashlib.sha256(record_id.encode("utf-8")).digest()
    bucket = int.from_bytes(digest[:8], "big") % 100
    return next(name for name, bound in SPLIT_BOUNDS if bucket < bound)


def parse_line(line: bytes, schema: Schema) -> Row:
    """One raw line as a typed row, or Invalid with the first problem found."""
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
    declared = [*schema.feature_names, schema.target]
    missing = [name for name in declared if name not in record]
    if missing:
        raise Invalid("missing-field", _listed("the record lacks the declared fields", missing), record_id)
    unknown = sorted(set(record) - set(declared))
    if unknown:
        raise Invalid(
            "unknown-field", _listed("the record has fields the schema does not declare:", unknown), record_id
        )
    values = [_feature(name, kind, record[name], record_id) for name, kind in schema.features]
    values.append(_target(schema, record[schema.target], record_id))
    return Row(record_id=record_id, received_at_ms=received_at, values=tuple(values), split=split_of(record_id))


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
    if isinstance(value, float) and not math.isfinite(value):
        raise Invalid("non-finite", f"{name} is NaN or infinite", record_id)
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        raise Invalid("wrong-type", f"{name} is {_json_type(value)}; expected boolean (true or false)", record_id)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid("wrong-type", f"{name} is {_json_type(value)}; expected {kind} (a JSON number)", record_id)
    if kind == "bigint":
        if not isinstance(value, int):
            raise Invalid("wrong-type", f"{name} is a number with a fraction or exponent; expected bigint", record_id)
        if not BIGINT_RANGE[0] <= value <= BIGINT_RANGE[1]:
            raise Invalid("wrong-type", f"{name} is outside bigint's range (64-bit signed)", record_id)
        return value
    try:
        return float(value)
    except OverflowError:
        raise Invalid("non-finite", f"{name} is too large for a double", record_id) from None


def _target(schema: Schema, value: Any, record_id: str) -> Any:
    name = schema.target
    if schema.problem_type == "binary":
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int | float) and value in (0, 1):
            return int(value)
        raise Invalid("invalid-target", f"{name} is not 0, 1, true or false (a binary target)", record_id)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid("invalid-target", f"{name} is {_json_type(value)}; expected a finite number", record_id)
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise Invalid("invalid-target", f"{name} is NaN or infinite; expected a finite number", record_id)
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
