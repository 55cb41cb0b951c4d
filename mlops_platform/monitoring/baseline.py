"""``compute_baseline``: what the training data looked like, small enough to attach to a model package.

A baseline is a JSON document (``SCHEMA_VERSION`` 1)::

    {"schema_version": 1, "bins": 10, "rows": 569, "feature_order": ["mean_radius", ...],
     "features": {"mean_radius": {"type": "double", "count": 569, "missing_rate": 0.0,
                                  "min": 6.981, "max": 28.11,
                                  "edges": [6.981, ..., 28.11], "proportions": [0.0, ..., 0.0],
                                  "sketch": [6.981, ..., 28.11]}, ...},
     "predictions": {... the same summary, type "double" ...} | null}

- A ``categorical`` feature's summary holds ``categories`` (the training values, in natural order)
  and ``proportions``: one share per category, then one for a category training never held (0 in
  the baseline; live traffic fills it). No edges and no sketch: drift compares frequencies
  (PSI and a chi-square test with the largest difference of shares, see ``drift``).
- A multiclass model's ``predictions`` are ``{"type": "multiclass", "count": n, "classes":
  {"<label>": {... the summary of that class's probability, type "double" ...}, ...}}``, the
  classes in the model's order: drift compares each class's probability on its own.

- ``edges`` are quantile bin edges of the training values: ``proportions`` has one share below
  ``edges[0]``, one per interval (the last one closed), and one above ``edges[-1]``, so live values
  outside the training range land in an overflow bin of their own. A feature with at most ``bins``
  distinct values gets one bin per value (edges halfway between them), a constant one a single bin.
- ``sketch`` holds the training values' quantiles at every 2%: KS compares live values with the CDF
  interpolated from it (see ``drift``). Keeping raw values instead would make the baseline grow
  with the training set; 51 quantiles bound the KS statistic's error to about 0.02 and keep 30
  features under 20 KB.

The same frame gives the same bytes: no sampling, no clock, shares rounded to 6 decimals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mlops_platform.data.encoding import natural_order

SCHEMA_VERSION = 1
SKETCH_POINTS = 51
SHARE_DECIMALS = 6
SKETCH_DIGITS = 7  # significant digits of the sketch's values: enough for a CDF, a third of the bytes
TYPES = frozenset({"double", "bigint", "boolean", "categorical"})
MULTICLASS = "multiclass"  # ``predictions``' type for a multiclass model


def compute_baseline(
    frame: pd.DataFrame,
    features: Mapping[str, str],
    predictions: np.ndarray | None = None,
    bins: int = 10,
    classes: Sequence[str] = (),
) -> dict[str, Any]:
    """The baseline of ``frame``'s declared ``features`` (name -> one of ``TYPES``) and of its predictions.

    ``predictions``: a score per row, or for a multiclass model a row of ``classes``' probabilities.
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, not {bins}")
    missing = [name for name in features if name not in frame.columns]
    if missing:
        raise ValueError(f"the frame lacks the declared features {missing}")
    unknown = {name: kind for name, kind in features.items() if kind not in TYPES}
    if unknown:
        raise ValueError(f"unknown feature types {unknown}; allowed: {sorted(TYPES)}")
    return {
        "schema_version": SCHEMA_VERSION,
        "bins": bins,
        "rows": len(frame),
        "feature_order": list(features),
        "features": {
            name: categories(frame[name]) if kind == "categorical" else summarize(numeric(frame[name]), kind, bins)
            for name, kind in features.items()
        },
        "predictions": None if predictions is None else prediction_summary(predictions, bins, classes),
    }


def is_baseline(document: Any) -> bool:
    """Whether ``document`` is a baseline this code reads (the drift monitor checks what it downloads)."""
    return (
        isinstance(document, dict)
        and document.get("schema_version") == SCHEMA_VERSION
        and isinstance(document.get("features"), dict)
        and isinstance(document.get("feature_order"), list)
        and list(document["features"]) == document["feature_order"]
    )


def prediction_classes(document: Mapping[str, Any] | None) -> list[str]:
    """A multiclass baseline's classes in the model's order (its answers' probabilities); none otherwise."""
    predictions = (document or {}).get("predictions") or {}
    return [str(label) for label in predictions.get("classes", {})] if predictions.get("type") == MULTICLASS else []


def categorical_features(document: Mapping[str, Any]) -> list[str]:
    """The features a baseline summarizes as categories (their live values stay text)."""
    return [name for name, summary in document["features"].items() if summary.get("type") == "categorical"]


def prediction_summary(predictions: np.ndarray, bins: int, classes: Sequence[str]) -> dict[str, Any]:
    """A score's summary, or for a matrix of class probabilities one summary per class."""
    if predictions.ndim == 1:
        return summarize(numeric(pd.Series(predictions)), "double", bins)
    if predictions.ndim != 2 or predictions.shape[1] != len(classes):
        raise ValueError(f"{predictions.shape} predictions do not hold one probability per class of {list(classes)}")
    return {
        "type": MULTICLASS,
        "count": len(predictions),
        "classes": {
            str(label): summarize(np.asarray(predictions[:, i], dtype=float), "double", bins)
            for i, label in enumerate(classes)
        },
    }


def category_text(values: pd.Series) -> pd.Series:
    """Categories as text, None where missing (null, NaN or an empty string, as prepare and serving read them)."""
    return values.map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) or v == "" else str(v))


def categories(values: pd.Series) -> dict[str, Any]:
    """A categorical feature's frequencies: one share per training category, then the share of unseen ones (0)."""
    text = category_text(values)
    present = text.dropna()
    counts = present.value_counts()
    labels = natural_order(counts.index)
    return {
        "type": "categorical",
        "count": len(text),
        "missing_rate": _share(len(text) - len(present), len(text)),
        "categories": labels,
        "proportions": [*(_share(int(counts[label]), len(present)) for label in labels), 0.0],
    }


def numeric(values: pd.Series) -> np.ndarray:
    """Float values, NaN where missing; booleans become 0 and 1 so every type bins the same way."""
    if values.dtype == bool or values.dtype == object:
        values = values.map(lambda v: float(v) if isinstance(v, bool) else v)
    return np.asarray(pd.to_numeric(values, errors="coerce"), dtype=float)


def summarize(values: np.ndarray, kind: str, bins: int) -> dict[str, Any]:
    present = np.sort(values[np.isfinite(values)])
    count = len(values)
    summary: dict[str, Any] = {
        "type": kind,
        "count": count,
        "missing_rate": _share(count - len(present), count),
    }
    if not len(present):
        # Nothing to bin: drift treats every live value of this feature as out of range.
        return {**summary, "min": None, "max": None, "edges": [], "proportions": [], "sketch": []}
    edges = bin_edges(present, bins)
    return {
        **summary,
        "min": float(present[0]),
        "max": float(present[-1]),
        "edges": edges,
        "proportions": proportions(present, edges),
        "sketch": [float(f"{v:.{SKETCH_DIGITS}g}") for v in np.quantile(present, np.linspace(0, 1, SKETCH_POINTS))],
    }


def bin_edges(present: np.ndarray, bins: int) -> list[float]:
    """Quantile edges; one bin per value where there are few distinct values, so none is merged with its neighbour."""
    distinct = np.unique(present)
    if len(distinct) == 1:
        return [float(distinct[0]), float(distinct[0])]
    if len(distinct) <= bins:
        middles = (distinct[:-1] + distinct[1:]) / 2
        return [float(distinct[0]), *(float(m) for m in middles), float(distinct[-1])]
    # Quantiles of skewed data repeat (many zeros): unique edges merge those bins.
    return [float(e) for e in np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)))]


def bin_indices(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Each finite value's bin: 0 below the edges, 1..len(edges)-1 inside (the last closed), len(edges) above."""
    bounds = np.asarray(edges, dtype=float)
    inside = 1 + np.clip(np.searchsorted(bounds, values, side="right") - 1, 0, len(bounds) - 2)
    return np.where(values < bounds[0], 0, np.where(values > bounds[-1], len(bounds), inside))


def proportions(present: np.ndarray, edges: list[float]) -> list[float]:
    counts = np.bincount(bin_indices(present, edges), minlength=len(edges) + 1)
    return [_share(int(c), len(present)) for c in counts]


def _share(part: int, whole: int) -> float:
    return round(part / whole, SHARE_DECIMALS) if whole else 0.0
