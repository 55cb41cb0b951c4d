"""``compare``: a capture window against its model's baseline, as a ``DriftReport``.

Per feature:

- **PSI** on the baseline's bins, overflow bins included, each share floored at ``EPSILON`` so an
  empty bin does not make it infinite (scipy's ``rel_entr`` both ways: PSI is symmetric KL);
- **KS**, one sample, that holds for repeated values: the live values' empirical CDF against the
  baseline's CDF read from its quantile sketch (the baseline keeps no raw values, see ``baseline``).
  A value the sketch repeats (the zeros of a zero-heavy feature, the counts of an integer one, both
  values of a boolean, a constant) is a jump of the baseline's CDF, so the distance is taken on both
  sides of every live value, ``F(x)`` against the share ``<= x`` and ``F(x-)`` against the share
  ``< x``; between distinct sketch values the CDF is linear. scipy's ``kstest`` compares a
  continuous CDF with the sample's ranks instead, which reads a tie as a jump of the sample alone:
  40% zeros give D = 0.4 on data that has not moved. The sketch's quantiles are 2% apart, so the
  statistic is within about 0.02 of the distance to the training data itself. The p-value is
  scipy's ``kstwo`` (the exact distribution of the statistic for a continuous CDF), which is
  conservative where the CDF has jumps, and treats the baseline as the true distribution, fair for
  a training set much larger than one window's sample;
- **categorical features**: PSI on the category frequencies (each training category, then one share
  for categories training never held), and a chi-square goodness-of-fit test of the live counts
  against the baseline's shares, with their largest difference (L-infinity) as its effect size, the
  categorical counterpart of KS (``chi2_p_value`` against ``ks_p_value``, ``linf`` against
  ``ks_statistic``). The out-of-range share is the share of unseen categories;
- **data quality**: missing rate (next to the baseline's), the share of values outside the
  training range, and the share of type mismatches (unparseable values, non-integers for a bigint,
  anything but 0 and 1 for a boolean).

A feature drifts when its PSI passes its threshold, or when KS both rejects (p-value below its
threshold) and moves far enough (statistic above its threshold): on large windows a p-value alone
flags shifts too small to matter. Features with fewer than ``min_rows`` live values are reported
but never flagged. The window drifts when the share of drifted features reaches ``drifted_share``,
when a feature given thresholds of its own drifts (a feature people chose to watch flags alone),
or when any variant's prediction PSI passes ``prediction_psi``; for a multiclass model each class's
probability is compared on its own (``PredictionDrift.label``), and any class drifting is the variant's
prediction drift.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import numpy as np

from mlops_platform.monitoring.baseline import MULTICLASS, SCHEMA_VERSION
from mlops_platform.monitoring.capture import CaptureWindow
from mlops_platform.monitoring.distances import (
    DECIMALS,
    EPSILON,
    category_distances,
    kolmogorov_smirnov,
    population_stability,
    sketch_cdf,
)

__all__ = [  # the distances, long imported from here
    "DECIMALS", "EPSILON", "kolmogorov_smirnov", "population_stability", "sketch_cdf",
]  # fmt: skip


@dataclass(frozen=True)
class FeatureThresholds:
    psi: float = 0.2
    ks_statistic: float = 0.1
    ks_p_value: float = 0.01


@dataclass(frozen=True)
class Thresholds:
    default: FeatureThresholds = FeatureThresholds()
    features: Mapping[str, FeatureThresholds] = field(default_factory=dict)
    drifted_share: float = 0.5
    prediction_psi: float = 0.2
    min_rows: int = 30

    def of(self, feature: str) -> FeatureThresholds:
        return self.features.get(feature, self.default)


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    type: str
    rows: int
    psi: float | None
    ks_statistic: float | None
    ks_p_value: float | None
    missing_rate: float
    baseline_missing_rate: float
    out_of_range_share: float
    type_mismatch_share: float
    drifted: bool
    reasons: list[str]
    linf: float | None = None  # categorical: the largest difference of category shares
    chi2_p_value: float | None = None  # categorical: the chi-square test's p-value


@dataclass(frozen=True)
class PredictionDrift:
    variant: str
    rows: int
    psi: float | None
    mean: float | None
    drifted: bool
    label: str | None = None  # multiclass: the class whose probability this is


class Metric(NamedTuple):
    """One CloudWatch value; ``datum()`` is PutMetricData's ``MetricData`` entry."""

    name: str
    dimensions: dict[str, str]
    value: float
    unit: str = "None"

    def datum(self) -> dict[str, Any]:
        return {
            "MetricName": self.name,
            "Dimensions": [{"Name": k, "Value": v} for k, v in sorted(self.dimensions.items())],
            "Value": self.value,
            "Unit": self.unit,
        }


@dataclass(frozen=True)
class DriftReport:
    lines: int
    rows: int
    malformed: dict[str, int]
    drift: bool
    drifted_share: float
    max_psi: float | None
    features: list[FeatureDrift]
    predictions: list[PredictionDrift]
    schema_version: int = SCHEMA_VERSION

    @property
    def drifted_features(self) -> list[str]:
        return [f.name for f in self.features if f.drifted]

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, indent=2, allow_nan=False)

    def metrics(self, dimensions: Mapping[str, str] | None = None) -> list[Metric]:
        """Per-feature and summary metrics, ``dimensions`` (endpoint, tenant) added to each; None values left out."""
        base = dict(dimensions or {})
        found = [
            Metric("DriftDetected", base, float(self.drift)),
            Metric("DriftedFeatureShare", base, self.drifted_share),
            Metric("MalformedRecords", base, float(sum(self.malformed.values())), "Count"),
            Metric("CapturedRecords", base, float(self.rows), "Count"),
        ]
        if self.max_psi is not None:
            found.append(Metric("MaxPSI", base, self.max_psi))
        for feature in self.features:
            where = {**base, "Feature": feature.name}
            values = {
                "FeaturePSI": feature.psi,
                "FeatureKS": feature.ks_statistic,
                "FeatureLInf": feature.linf,
                "FeatureMissingRate": feature.missing_rate,
                "FeatureOutOfRangeShare": feature.out_of_range_share,
                "FeatureTypeMismatchShare": feature.type_mismatch_share,
            }
            found.extend(Metric(name, where, value) for name, value in values.items() if value is not None)
        for prediction in self.predictions:
            if prediction.psi is not None:
                where = {**base, "Variant": prediction.variant}
                where |= {"Class": prediction.label} if prediction.label is not None else {}
                found.append(Metric("PredictionPSI", where, prediction.psi))
        return found

    def to_html(self) -> str:
        """A self-contained page: a summary and two tables, every value escaped (names come from tenants' configs)."""
        feature_columns = [
            "feature", "type", "rows", "PSI", "KS statistic", "KS p-value", "missing", "baseline missing",
            "out of range", "type mismatches", "drifted",
        ]  # fmt: skip
        feature_rows = [
            [f.name, f.type, f.rows, f.psi, f.ks_statistic, f.ks_p_value, f.missing_rate, f.baseline_missing_rate,
             f.out_of_range_share, f.type_mismatch_share, ", ".join(f.reasons) if f.drifted else "no"]
            for f in self.features
        ]  # fmt: skip
        prediction_rows = [
            [p.variant, p.label or "", p.rows, p.psi, p.mean, "yes" if p.drifted else "no"] for p in self.predictions
        ]
        malformed = ", ".join(f"{reason}: {count}" for reason, count in sorted(self.malformed.items())) or "none"
        return "\n".join(
            [
                "<!DOCTYPE html>",
                '<html><head><meta charset="utf-8"><title>Drift report</title>',
                "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
                "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
                "tr.drifted{background:#fdd}</style></head><body>",
                f"<h1>Drift report: {'drift' if self.drift else 'no drift'}</h1>",
                f"<p>{self.rows} rows from {self.lines} lines; malformed lines: {_cell(malformed)}; "
                f"drifted features: {_cell(self.drifted_share)}; max PSI: {_cell(self.max_psi)}</p>",
                "<h2>Features</h2>",
                _table(feature_columns, feature_rows),
                "<h2>Predictions per variant</h2>",
                _table(["variant", "class", "rows", "PSI", "mean", "drifted"], prediction_rows),
                "</body></html>",
            ]
        )


def compare(baseline: Mapping[str, Any], window: CaptureWindow, thresholds: Thresholds | None = None) -> DriftReport:
    """How far ``window`` has moved from ``baseline`` (a ``compute_baseline`` document)."""
    if baseline.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(
            f"baseline schema_version {baseline.get('schema_version')!r}; this code reads {SCHEMA_VERSION}"
        )
    limits = thresholds or Thresholds()
    missing = [name for name in baseline["features"] if name not in window.features.columns]
    if missing:
        raise ValueError(f"the capture window lacks the baseline's features {missing}")
    features = [
        _feature(name, summary, window, limits.of(name), limits.min_rows)
        for name, summary in baseline["features"].items()
    ]
    predictions = _predictions(baseline.get("predictions"), window, limits)
    drifted = [f for f in features if f.drifted]
    share = _round(len(drifted) / len(features)) if features else 0.0
    psis = [f.psi for f in features if f.psi is not None]
    return DriftReport(
        lines=window.lines,
        rows=window.rows,
        malformed=dict(sorted(window.malformed.items())),
        drift=bool(
            (features and share >= limits.drifted_share)
            or any(f.name in limits.features for f in drifted)
            or any(p.drifted for p in predictions)
        ),
        drifted_share=share,
        max_psi=max(psis) if psis else None,
        features=features,
        predictions=predictions,
    )


def _feature(
    name: str, summary: Mapping[str, Any], window: CaptureWindow, limits: FeatureThresholds, min_rows: int
) -> FeatureDrift:
    if summary["type"] == "categorical":
        return _categorical(name, summary, window, limits, min_rows)
    values = window.features[name].to_numpy(dtype=float)
    present = values[np.isfinite(values)]
    rows = len(values)
    mismatches = window.type_mismatches.get(name, 0) + int(np.count_nonzero(~_fits(present, summary["type"])))
    psi = ks_statistic = ks_p_value = None
    if len(present) and summary["edges"]:
        psi = population_stability(summary["proportions"], present, summary["edges"])
        ks_statistic, ks_p_value = kolmogorov_smirnov(present, summary["sketch"])
    reasons = []
    if len(present) >= min_rows:
        if psi is not None and psi > limits.psi:
            reasons.append("psi")
        rejected = ks_p_value is not None and ks_p_value < limits.ks_p_value
        if rejected and ks_statistic is not None and ks_statistic > limits.ks_statistic:
            reasons.append("ks")
    return FeatureDrift(
        name=name,
        type=summary["type"],
        rows=rows,
        psi=psi,
        ks_statistic=ks_statistic,
        ks_p_value=ks_p_value,
        missing_rate=_round((rows - len(present)) / rows) if rows else 0.0,
        baseline_missing_rate=summary["missing_rate"],
        out_of_range_share=_out_of_range(present, summary),
        type_mismatch_share=_round(mismatches / rows) if rows else 0.0,
        drifted=bool(reasons),
        reasons=reasons,
    )


def _categorical(
    name: str, summary: Mapping[str, Any], window: CaptureWindow, limits: FeatureThresholds, min_rows: int
) -> FeatureDrift:
    """Category frequencies against the baseline's: PSI, and chi-square with the largest difference of shares."""
    values = window.features[name]
    present = [str(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    rows = len(values)
    known = {category: i for i, category in enumerate(summary["categories"])}
    unseen = len(known)
    counts = np.bincount([known.get(v, unseen) for v in present], minlength=unseen + 1)
    psi = linf = chi2_p_value = None
    if present:
        psi, linf, chi2_p_value = category_distances(summary["proportions"], counts)
    reasons = []
    if len(present) >= min_rows:
        if psi is not None and psi > limits.psi:
            reasons.append("psi")
        if (
            chi2_p_value is not None
            and chi2_p_value < limits.ks_p_value
            and linf is not None
            and linf > limits.ks_statistic
        ):
            reasons.append("chi2")
    return FeatureDrift(
        name=name,
        type="categorical",
        rows=rows,
        psi=psi,
        ks_statistic=None,
        ks_p_value=None,
        missing_rate=_round((rows - len(present)) / rows) if rows else 0.0,
        baseline_missing_rate=summary["missing_rate"],
        out_of_range_share=_round(int(counts[unseen]) / len(present)) if present else 0.0,
        type_mismatch_share=_round(window.type_mismatches.get(name, 0) / rows) if rows else 0.0,
        drifted=bool(reasons),
        reasons=reasons,
        linf=linf,
        chi2_p_value=chi2_p_value,
    )


def _predictions(summary: Mapping[str, Any] | None, window: CaptureWindow, limits: Thresholds) -> list[PredictionDrift]:
    """Prediction shift per variant (per class for multiclass): a challenger that scores differently shows here
    before its labels arrive."""
    if summary is None:
        return []
    if summary.get("type") == MULTICLASS:
        per_class = list(summary["classes"].items())
        scores = window.predictions
        if scores.ndim != 2 or scores.shape[1] != len(per_class):
            scores = np.full((len(window.variants), len(per_class)), np.nan)  # answers not read per class
        return [
            drifted
            for i, (label, part) in enumerate(per_class)
            for drifted in _variant_shift(part, scores[:, i], window, limits, label)
        ]
    return _variant_shift(summary, window.predictions, window, limits)


def _variant_shift(
    summary: Mapping[str, Any], values: np.ndarray, window: CaptureWindow, limits: Thresholds, label: str | None = None
) -> list[PredictionDrift]:
    if not summary["edges"]:
        return []
    found = []
    for variant in sorted({str(v) for v in window.variants}):
        scores = values[(window.variants == variant) & np.isfinite(values)]
        psi = population_stability(summary["proportions"], scores, summary["edges"]) if len(scores) else None
        found.append(
            PredictionDrift(
                variant=variant,
                rows=len(scores),
                psi=psi,
                mean=_round(float(np.mean(scores))) if len(scores) else None,
                drifted=psi is not None and len(scores) >= limits.min_rows and psi > limits.prediction_psi,
                label=label,
            )
        )
    return found


def _fits(values: np.ndarray, kind: str) -> np.ndarray:
    if kind == "bigint":
        return np.equal(np.mod(values, 1), 0)
    if kind == "boolean":
        return np.isin(values, (0.0, 1.0))
    return np.ones(len(values), dtype=bool)


def _out_of_range(present: np.ndarray, summary: Mapping[str, Any]) -> float:
    if not len(present):
        return 0.0
    if summary["min"] is None:
        return 1.0
    outside = np.count_nonzero((present < summary["min"]) | (present > summary["max"]))
    return _round(outside / len(present))


def _round(value: float) -> float:
    return round(value, DECIMALS)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "&ndash;"
    return html.escape(str(value))


def _table(columns: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        ("<tr>" if row[-1] == "no" else '<tr class="drifted">') + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
