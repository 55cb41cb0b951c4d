"""Feature values as the models read them: one float32 matrix, NaN where a value is missing.

Every model of the platform reads the same matrix, in training, serving, batch predictions and the
drift baseline, so a value means one thing everywhere:

- ``double`` and ``bigint``: the number;
- ``boolean``: 1 and 0;
- ``categorical``: the category's position among the categories the training split held (sorted),
  which XGBoost reads natively as a categorical feature (``feature_types`` ``c``) and the linear model
  one-hot encodes;
- missing (JSON null, an absent key, an empty CSV cell) and a category training never saw: NaN,
  which XGBoost treats as missing and the linear model imputes.

The categories are fixed from the training split and stored in the model's metadata
(``Encoding.to_json``), so serving encodes a request exactly as training encoded its rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

FEATURE_TYPES = ("double", "bigint", "boolean", "categorical")
MISSING = float("nan")
_TRUE = frozenset({"1", "true", "True", "TRUE"})
_FALSE = frozenset({"0", "false", "False", "FALSE"})


class ValueProblem(ValueError):
    """Why a value cannot be a feature's: a sentence's end, after the caller's where ("is not a number")."""


@dataclass(frozen=True)
class Feature:
    name: str  # the source column name, as the tenant's data has it
    column: str  # the restricted name: Parquet's column, XGBoost's feature name
    type: str
    categories: tuple[str, ...] = ()  # categorical only: the training split's, sorted

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"name": self.name, "column": self.column, "type": self.type}
        if self.type == "categorical":
            document["categories"] = list(self.categories)
        return document


def natural_order(labels: Iterable[str]) -> list[str]:
    """Whole numbers by value, then text: "2" before "10"; the order classes and categories take."""
    return sorted(set(labels), key=lambda label: (0, int(label), "") if _is_integer(label) else (1, 0, label))


def _is_integer(text: str) -> bool:
    return text.lstrip("-").isdigit() and text.strip() == text


class Encoding:
    """The features in model order and how each value becomes a float."""

    def __init__(self, features: Sequence[Feature]) -> None:
        self.features = tuple(features)
        self._codes = [
            {category: float(i) for i, category in enumerate(f.categories)} if f.type == "categorical" else None
            for f in self.features
        ]
        # Requests may key a feature by its source name or its restricted name.
        self.index = {f.column: i for i, f in enumerate(self.features)} | {
            f.name: i for i, f in enumerate(self.features)
        }

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def columns(self) -> list[str]:
        return [f.column for f in self.features]

    @property
    def width(self) -> int:
        return len(self.features)

    @property
    def xgboost_types(self) -> list[str]:
        return ["c" if f.type == "categorical" else "q" for f in self.features]

    @property
    def has_categories(self) -> bool:
        return any(f.type == "categorical" for f in self.features)

    def to_json(self) -> list[dict[str, Any]]:
        return [f.to_json() for f in self.features]

    @classmethod
    def from_json(cls, document: Iterable[Mapping[str, Any]]) -> Encoding:
        features = []
        for entry in document:
            kind = str(entry.get("type", "double"))
            if kind not in FEATURE_TYPES:
                raise ValueError(
                    f"feature {entry.get('name')!r} has type {kind!r}; allowed: {', '.join(FEATURE_TYPES)}"
                )
            name = str(entry["name"])
            features.append(
                Feature(
                    name, str(entry.get("column", name)), kind, tuple(str(c) for c in entry.get("categories") or ())
                )
            )
        return cls(features)

    @classmethod
    def fit(cls, frame: Any, declared: Sequence[Mapping[str, Any]]) -> Encoding:
        """Each declared feature (``name``, ``column``, ``type``) with the categories ``frame`` (training) holds."""
        features = []
        for entry in declared:
            categories: tuple[str, ...] = ()
            if entry["type"] == "categorical":
                values = frame[entry["column"]].dropna()
                categories = tuple(natural_order(str(v) for v in values if str(v) != ""))
            features.append(Feature(str(entry["name"]), str(entry["column"]), str(entry["type"]), categories))
        return cls(features)

    def frame_matrix(self, frame: Any) -> np.ndarray:
        """A frame with the restricted columns (prepare's Parquet) as the float32 matrix, NaN where missing."""
        import pandas as pd

        matrix = np.full((len(frame), self.width), np.nan, dtype=np.float32)
        for i, feature in enumerate(self.features):
            values = frame[feature.column]
            if feature.type == "categorical":
                text = values.astype("string").replace("", pd.NA)
                codes = pd.Categorical(text, categories=list(feature.categories)).codes.astype(np.float32)
                matrix[:, i] = np.where(codes < 0, np.nan, codes)  # -1: missing, or a category training never saw
            else:
                matrix[:, i] = pd.to_numeric(values.astype(object).where(values.notna(), None), errors="coerce")
        return matrix

    def value(self, i: int, value: Any) -> float:
        """A JSON value of feature ``i``: null and unseen categories are NaN; ValueProblem for a wrong type."""
        if value is None:
            return MISSING
        feature = self.features[i]
        if feature.type == "categorical":
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise ValueProblem("is not a string (a categorical feature)")
            return (self._codes[i] or {}).get(str(value), MISSING)
        if isinstance(value, bool):
            return 1.0 if value else 0.0
        if not isinstance(value, int | float):
            raise ValueProblem("is not a number")
        number = float(value)
        if not math.isfinite(number):
            raise ValueProblem("is not a finite number")
        return number

    def text(self, i: int, cell: str) -> float:
        """A CSV cell of feature ``i``: empty is missing; categories by their text; booleans 1/0 or true/false."""
        if cell == "":
            return MISSING
        feature = self.features[i]
        if feature.type == "categorical":
            return (self._codes[i] or {}).get(cell, MISSING)
        if feature.type == "boolean" and (cell in _TRUE or cell in _FALSE):
            return 1.0 if cell in _TRUE else 0.0
        try:
            number = float(cell)
        except ValueError:
            raise ValueProblem("is not a number") from None
        if not math.isfinite(number):
            raise ValueProblem("is not a finite number")
        return number


def plain_encoding(names: Sequence[str]) -> Encoding:
    """Models saved before types existed: every feature a double, named as its column."""
    return Encoding([Feature(name, name, "double") for name in names])
