"""``compute_baseline``: what the training data looked like, small enough to attach to a model package.

A baseline is a JSON document (``SCHEMA_VERSION`` 1)::

    {"schema_version": 1, "bins": 10, "rows": 569, "feature_order": ["mean_radius", ...],
     "features": {"mean_radius": {"type": "double", "count": 569, "missing_rate": 0.0,
                                  "min": 6.981, "max": 28.11,
                                  "edges": [6.981, ..., 28.11], "proportions": [0.0, ..., 0.0],
                                  "sketch": [6.981, ..., 28.11]}, ...},
     "predictions": {... the same summary, type "double" ...} | null}

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

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

SCHEMA_VERSION = 1
SKETCH_POINTS = 51
SHARE_DECIMALS = 6
SKETCH_DIGITS = 7  # significant digits of the sketch's values: enough for a CDF, a third of the bytes
TYPES = frozenset({"double", "bigint", "boolean"})


def compute_baseline(
    frame: pd.DataFrame, features: Mapping[str, str], predictions: np.ndarray | None = None, bins: int = 10
) -> dict[str, Any]:
    """The baseline of ``frame``'s declared ``features`` (name -> double, bigint or boolean) and of its predictions."""
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
        "features": {name: summarize(numeric(frame[name]), kind, bins) for name, kind in features.items()},
        "predictions": None if predictions is None else summarize(numeric(pd.Series(predictions)), "double", bins),
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
