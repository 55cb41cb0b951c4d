"""The published tenant config (docs/training-pipeline.md) as prepare reads it: a ``Schema``, or a PrepareError
naming the key, its value and what is allowed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlops_platform.data.raw_records import (
    ARROW_TYPES,
    METADATA_COLUMNS,
    SCHEMA_VERSION,
    SPLITS,
    TARGET_TYPES,
    UNKNOWN_COLUMNS,
    Column,
    PrepareError,
    Schema,
)
from mlops_platform.schema.columns import restricted_name, restricted_names


def load_schema(path: Path) -> Schema:
    """The published tenant config's dataset and batch prediction, or a PrepareError naming the key."""
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
            f"{path}: key 'dataset.problem_type' has value {problem_type!r}; allowed: binary, multiclass or regression"
        )
    if split not in SPLITS:
        raise PrepareError(f"{path}: key 'batch_prediction.split' has value {split!r}; allowed: {', '.join(SPLITS)}")
    if not features:
        raise PrepareError(f"{path}: key 'dataset.features' is empty; allowed: a mapping of column to type")
    columns = _columns(path, dataset, features)
    target = _key(path, dataset, "target", str, "dataset.")
    for name in (*(c.column for c in columns), restricted_name(target)):
        if name in METADATA_COLUMNS:
            raise PrepareError(f"{path}: column {name!r} clashes with a column prepare adds ({METADATA_COLUMNS})")
    if target in features:
        raise PrepareError(f"{path}: the target {target!r} is also a feature")
    unknown_columns = dataset.get("unknown_columns", "ignore")
    if unknown_columns not in UNKNOWN_COLUMNS:
        raise PrepareError(
            f"{path}: key 'dataset.unknown_columns' has value {unknown_columns!r}; allowed: ignore or reject"
        )
    share = dataset.get("max_rejected_share", 0.01)
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
        raise PrepareError(f"{path}: key 'dataset.max_rejected_share' has value {share!r}; allowed: from 0 to 1")
    classes = dataset.get("classes")
    if classes is not None and (not isinstance(classes, list) or not all(isinstance(c, str) for c in classes)):
        raise PrepareError(f"{path}: key 'dataset.classes' has value {classes!r}; allowed: a list of labels as text")
    name = _key(path, dataset, "name", str, "dataset.")
    scoring = batch.get("dataset") if batch.get("dataset") not in (None, name) else None
    return Schema(
        tenant=str(config.get("tenant", path.stem)),
        dataset=name,
        target=target,
        problem_type=problem_type,
        features=tuple(columns),
        batch_split=split,
        classes=tuple(classes) if classes else None,
        max_rejected_share=float(share),
        unknown_columns=unknown_columns,
        scoring_dataset=scoring,
    )


def _columns(path: Path, dataset: dict[str, Any], features: dict[str, Any]) -> list[Column]:
    """Declared features with their restricted names: ``dataset.columns`` where published, else derived."""
    listed = dataset.get("columns")
    if isinstance(listed, list):
        columns = [
            Column(str(c["name"]), str(c["column"]), str(c["type"]), bool(c.get("required", False)))
            for c in listed
            if isinstance(c, dict)
        ]
    else:
        columns = [Column(name, restricted_name(name), kind) for name, kind in features.items()]
    for column in columns:
        if column.type not in ARROW_TYPES:
            raise PrepareError(
                f"{path}: key 'dataset.features.{column.name}' has value {column.type!r}; "
                "allowed: double, bigint, boolean or categorical"
            )
    try:
        restricted_names(c.name for c in columns)
    except ValueError as error:
        raise PrepareError(f"{path}: {error}") from None
    return columns


def _key(path: Path, mapping: dict[str, Any], key: str, kind: type, prefix: str = "") -> Any:
    value = mapping.get(key)
    if not isinstance(value, kind) or (kind is str and not value):
        allowed = "a JSON object" if kind is dict else "a non-empty string"
        raise PrepareError(f"{path}: key '{prefix}{key}' has value {value!r}; allowed: {allowed}")
    return value
