"""What a monitor run leaves: report.json, report.html, the metrics and the summary event's detail.

Pure functions of the run's arguments, variants, drift report and model quality; ``job`` writes and
publishes what they return (its docstring describes each document).
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlops_platform.monitoring.capture import CaptureWindow
from mlops_platform.monitoring.drift import DriftReport, Metric
from mlops_platform.monitoring.job_arguments import Arguments
from mlops_platform.monitoring.labels import ModelQuality

REPORT_VERSION = 1


@dataclass
class Variant:
    """One variant: where its model and baseline are, or why it has no baseline, and its captured rows."""

    name: str
    pointer: str
    model_uri: str | None = None
    baseline_uri: str | None = None
    baseline: dict[str, Any] | None = None
    error: str | None = None
    window: CaptureWindow | None = None

    def described(self) -> dict[str, Any]:
        return {
            "variant": self.name,
            "pointer": self.pointer,
            "model_uri": self.model_uri,
            "baseline_uri": self.baseline_uri,
            "error": self.error,
            "lines": self.window.lines if self.window else 0,
            "rows": self.window.rows if self.window else 0,
        }


def report_document(
    arguments: Arguments,
    variants: Sequence[Variant],
    feature_variant: Variant | None,
    drift: DriftReport | None,
    quality: ModelQuality | None,
) -> dict[str, Any]:
    return {
        "schema_version": REPORT_VERSION,
        "environment": arguments.environment,
        "tenant": arguments.tenant,
        "model": arguments.model,
        "endpoint": arguments.endpoint,
        "window": {
            "start": _iso(arguments.window_start),
            "end": _iso(arguments.window_end),
            "minutes": arguments.window_minutes,
            "lag_minutes": arguments.lag_minutes,
        },
        "feature_baseline": None
        if feature_variant is None
        else {"variant": feature_variant.name, "uri": feature_variant.baseline_uri},
        "variants": [v.described() for v in variants],
        "drift": None if drift is None else json.loads(drift.to_json()),
        "model_quality": None if quality is None else _quality_document(quality),
    }


def _quality_document(quality: ModelQuality) -> dict[str, Any]:
    return {
        "labels_uri": quality.labels_uri,
        "days": quality.days,
        "label_lines": quality.label_lines,
        "malformed_labels": quality.malformed_labels,
        "ambiguous_rows": quality.ambiguous_rows,
        "variants": [vars(v) for v in quality.variants],
    }


def report_html(document: Mapping[str, Any], drift: DriftReport | None) -> str:
    """``DriftReport.to_html`` with the run's context, its variants and the model quality added."""
    window = document["window"]
    context = (
        f"<h2>Endpoint</h2><p>{_text(document['endpoint'])} (tenant {_text(document['tenant'])}, "
        f"model {_text(document['model'])}, environment {_text(document['environment'])}); "
        f"window {_text(window['start'])} to {_text(window['end'])} ({window['minutes']} minutes, "
        f"read {window['lag_minutes']} minutes after its end)</p>"
    )
    variant_rows = [
        [v["variant"], v["model_uri"], v["baseline_uri"], v["lines"], v["rows"], v["error"] or "ok"]
        for v in document["variants"]
    ]
    sections = [
        context,
        "<h2>Variants</h2>",
        _table(["variant", "model", "baseline", "lines", "rows", "baseline status"], variant_rows),
    ]
    quality = document["model_quality"]
    if quality is not None:
        sections += [
            "<h2>Model quality</h2>",
            f"<p>labels from {_text(quality['labels_uri'])}, days {_text(', '.join(quality['days']))}: "
            f"{quality['label_lines']} lines, "
            f"{quality['malformed_labels']} malformed; {quality['ambiguous_rows']} rows of multi-row requests "
            "left out of the join</p>",
            _table(
                ["variant", "labelled", "AUC", "accuracy"],
                [[q["variant"], q["labelled"], q["auc"], q["accuracy"]] for q in quality["variants"]],
            ),
        ]
    page = (
        drift.to_html()
        if drift is not None
        else '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Drift report</title></head><body>\n'
        "<h1>Drift report: no variant has a readable baseline</h1>\n</body></html>"
    )
    closing = "</body></html>"
    assert page.endswith(closing)
    return page[: -len(closing)] + "\n".join(sections) + "\n" + closing


def _text(value: Any) -> str:
    return "&ndash;" if value is None else html.escape(str(value))


def _table(columns: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_text(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_text(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def job_metrics(
    arguments: Arguments, variants: Sequence[Variant], drift: DriftReport | None, quality: ModelQuality | None
) -> list[Metric]:
    base = arguments.dimensions
    found = [] if drift is None else drift.metrics(base)
    missing = [v for v in variants if v.baseline is None]
    found.append(Metric("VariantsWithoutBaseline", base, float(len(missing)), "Count"))
    found.extend(Metric("BaselineMissing", {**base, "Variant": v.name}, float(v.baseline is None)) for v in variants)
    for variant in quality.variants if quality else []:
        where = {**base, "Variant": variant.variant}
        found.append(Metric("LabelledRecords", where, float(variant.labelled), "Count"))
        if variant.auc is not None:
            found.append(Metric("ModelAUC", where, variant.auc))
        if variant.accuracy is not None:
            found.append(Metric("ModelAccuracy", where, variant.accuracy))
    return found


def summary(arguments: Arguments, variants: Sequence[Variant], drift: DriftReport, report_uri: str) -> dict[str, Any]:
    return {
        "environment": arguments.environment,
        "tenant": arguments.tenant,
        "model": arguments.model,
        "endpoint": arguments.endpoint,
        "drift": drift.drift,
        "max_psi": drift.max_psi if drift.max_psi is not None else 0.0,
        "drifted_features": drift.drifted_features,
        "drifted_variants": [p.variant for p in drift.predictions if p.drifted],
        "variants_without_baseline": [v.name for v in variants if v.baseline is None],
        "rows": drift.rows,
        "malformed": sum(drift.malformed.values()),
        "window_start": _iso(arguments.window_start),
        "window_end": _iso(arguments.window_end),
        "report_uri": report_uri,
    }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
