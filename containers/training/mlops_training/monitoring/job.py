"""``monitor``: the scheduled drift monitor's Processing job, one endpoint and one window per run.

The monitoring schedule's state machine runs it on a small CPU instance with the training image,
passing everything as ContainerArguments (``python -m mlops_training monitor ...``)::

    --environment dev --tenant T --model M --endpoint-name mlops-dev-<key>
    --capture-uri s3://<lake bucket>/capture/<tenant>/<key>/
    --window-end 2026-11-24T23:00:00Z --window-minutes 60
    --pointer Champion=/<project>/dev/models/<key>/Champion [--pointer Challenger=...]
    --example-baseline [Variant=]s3://<bucket>/<key of an example model's baseline.json> [--example-baseline ...]
    [--thresholds '{"default": {"psi": 0.2, "ks_statistic": 0.1, "ks_p_value": 0.01},
                    "features": {"<name>": {...}}, "drifted_share": 0.5, "prediction_psi": 0.2, "min_rows": 30}']
    --report-uri s3://<artifacts bucket>/artifacts/monitoring/<tenant>/<endpoint-name>/
    --metrics-namespace mlops/dev/Drift --event-source mlops.monitoring
    [--labels-uri s3://<lake bucket>/<prefix>/]

Inputs:

- **Window**: ``[window-end - window-minutes, window-end)``. ``--window-end`` is ISO-8601 (the
  scheduled event's ``time``; without an offset it is read as UTC). SageMaker writes
  ``<capture-uri><endpoint-name>/<variant>/yyyy/mm/dd/hh/<file>.jsonl``; the job lists (paginated)
  the hour folders from the window's start to its end, the end's hour included (a capture file is
  written a little after its requests: on an hourly schedule it can land in the next hour's
  folder), streams each file and keeps the lines whose ``eventMetadata.inferenceTime`` lies in the
  window. A line without a readable time belongs to the window whose span holds its folder's hour,
  so consecutive windows count it once; ``read_capture`` counts it if it is malformed.
- **Baselines**: each ``--pointer Variant=<SSM parameter>`` is read with ssm:GetParameter. Its value
  is a ``model.tar.gz`` S3 URI, whose baseline is its sibling (``s3://B/a/output/model.tar.gz`` ->
  ``s3://B/a/output/baseline.json``, see ``baseline_job``), or the sentinel ``example``, whose
  baseline is the ``--example-baseline`` given for that variant (``Champion=s3://...``: variants
  serve different example models), else the one given without a variant. A variant whose pointer
  or baseline is missing or unreadable
  is reported (``variants`` in the report, ``BaselineMissing`` per variant, ``variants_without_baseline``
  in the event); the other variants go on. If no variant has a baseline, the job exits 1.
- **Thresholds**: ``--thresholds`` maps onto ``drift.Thresholds``; every key is optional, a
  feature's missing keys come from ``default``, and the rest from ``drift``'s defaults.
- **Labels** (optional): JSON Lines ``{"inference_id": "...", "label": 0|1}`` under ``--labels-uri``,
  joined on the capture's ``eventMetadata.inferenceId`` (a request of several rows shares one id
  and is left out of the join). Model quality per variant: labelled rows, AUC (when both classes
  occur) and accuracy at a 0.5 score, with scikit-learn.

Comparison (``drift.compare``): features over every variant's rows together against the feature
baseline (the Champion's, or else the first variant's by name that has one); predictions of each
variant against that variant's own baseline. The window drifts as ``compare`` decides for the
features, or when a variant's predictions drift.

Outputs, in this order (a consumer of the event finds the report already there):

- **Report**: ``<report-uri><window-end as YYYY-MM-DDTHH-MM>/report.json`` and ``report.html``.
  report.json: ``{"schema_version": 1, "environment", "tenant", "model", "endpoint",
  "window": {"start", "end", "minutes"}, "feature_baseline": {"variant", "uri"},
  "variants": [{"variant", "pointer", "model_uri", "baseline_uri", "error", "lines", "rows"}],
  "drift": <DriftReport.to_json()>, "model_quality": null | {"labels_uri", "label_lines",
  "malformed_labels", "ambiguous_rows", "variants": [{"variant", "labelled", "auc", "accuracy"}]}}``.
- **Metrics**: PutMetricData to ``--metrics-namespace``, in batches of at most ``METRICS_PER_REQUEST``;
  every metric has the dimensions ``Endpoint``, ``Tenant`` and ``Model``. ``DriftReport.metrics``
  (``DriftDetected`` 0 or 1 and ``CapturedRecords``, published for an empty window too, with
  ``DriftedFeatureShare``, ``MalformedRecords``, ``MaxPSI``; per ``Feature``: ``FeaturePSI``,
  ``FeatureKS``, ``FeatureMissingRate``, ``FeatureOutOfRangeShare``, ``FeatureTypeMismatchShare``;
  per ``Variant``: ``PredictionPSI``), then ``VariantsWithoutBaseline`` and, per ``Variant``,
  ``BaselineMissing`` (0 or 1); with labels, per ``Variant``: ``LabelledRecords``, ``ModelAUC``,
  ``ModelAccuracy``. The drift alarm is ``DriftDetected >= 1`` on (Endpoint, Tenant, Model).
- **Event**: PutEvents on the default bus, source ``--event-source``, detail-type ``Drift Summary``,
  detail ``{"environment", "tenant", "model", "endpoint", "drift", "max_psi", "drifted_features",
  "drifted_variants", "variants_without_baseline", "rows", "malformed", "window_start",
  "window_end", "report_uri"}`` (``max_psi`` is 0.0 when no feature had values to compare, so it is
  always a number; ``report_uri`` is report.json's URI). A failed entry fails the job.

Exit status: 0 done, drift or not; 1 an AWS failure, or no variant with a readable baseline; 2 bad
arguments, in one line naming the argument. The same inputs give the same report, metrics and event.
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import math
import os
import re
import sys
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import numpy as np

# botocore ships no type hints (pyproject.toml lists no override for it).
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]
from sklearn.metrics import accuracy_score, roc_auc_score

from mlops_training.monitoring.baseline import SCHEMA_VERSION
from mlops_training.monitoring.capture import CaptureWindow, read_capture
from mlops_training.monitoring.drift import DriftReport, FeatureThresholds, Metric, Thresholds, compare

log = logging.getLogger(__name__)

EXIT_DONE, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
REPORT_VERSION = 1
EXAMPLE = "example"  # a pointer's sentinel for the shipped example model
CHAMPION = "Champion"
BASELINE_FILE = "baseline.json"
MODEL_ARCHIVE = "model.tar.gz"
DETAIL_TYPE = "Drift Summary"
# PutMetricData takes up to 1,000 metrics and 1 MB a request; ours are ~200 bytes each.
METRICS_PER_REQUEST = 500
MAX_WINDOW_MINUTES = 7 * 24 * 60
DECIMALS = 6
# Names as SageMaker (endpoints, variants) and config/tenants.py (tenants, models) allow them.
ENDPOINT_NAME = re.compile(r"[A-Za-z0-9](-*[A-Za-z0-9]){0,62}")
VARIANT_NAME = ENDPOINT_NAME
TENANT_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
S3_URI = re.compile(r"s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<key>.*)")
FEATURE_KEYS = ("psi", "ks_statistic", "ks_p_value")
THRESHOLD_KEYS = ("default", "features", "drifted_share", "prediction_psi", "min_rows")

# Baseline problems of a variant (``variants[].error`` in the report).
POINTER_MISSING = "pointer-missing"
POINTER_INVALID = "pointer-invalid"
BASELINE_MISSING = "baseline-missing"
BASELINE_UNREADABLE = "baseline-unreadable"


class UsageError(Exception):
    """A bad argument, in one line that names it."""


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class Arguments:
    environment: str
    tenant: str
    model: str
    endpoint: str
    capture: S3Location  # a prefix, ending in /
    window_start: datetime
    window_end: datetime
    pointers: tuple[tuple[str, str], ...]  # (variant, SSM parameter name), sorted by variant
    example_baselines: tuple[tuple[str, S3Location], ...]  # (variant, or "" for every other variant; location)
    thresholds: Thresholds
    report: S3Location  # a prefix, ending in /
    metrics_namespace: str
    event_source: str
    labels: S3Location | None  # a prefix, ending in /

    @property
    def window_minutes(self) -> int:
        return int((self.window_end - self.window_start).total_seconds() // 60)

    @property
    def dimensions(self) -> dict[str, str]:
        return {"Endpoint": self.endpoint, "Tenant": self.tenant, "Model": self.model}

    def example_baseline(self, variant: str) -> S3Location | None:
        """The baseline of the example model the variant serves while its pointer holds the sentinel."""
        baselines = dict(self.example_baselines)
        return baselines.get(variant) or baselines.get("")

    def report_key(self, name: str) -> S3Location:
        return S3Location(self.report.bucket, f"{self.report.key}{self.window_end:%Y-%m-%dT%H-%M}/{name}")


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


@dataclass(frozen=True)
class VariantQuality:
    variant: str
    labelled: int
    auc: float | None
    accuracy: float | None


@dataclass(frozen=True)
class ModelQuality:
    labels_uri: str
    label_lines: int
    malformed_labels: int
    ambiguous_rows: int
    variants: list[VariantQuality] = field(default_factory=list)


@dataclass(frozen=True)
class Clients:
    s3: Any
    ssm: Any
    cloudwatch: Any
    events: Any


def clients() -> Clients:
    """The job's AWS clients, in the Processing job's region and role (tests replace this function)."""
    # botocore reads AWS_DEFAULT_REGION; SageMaker's containers are given AWS_REGION.
    region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
    return Clients(*(boto3.client(service, region_name=region) for service in ("s3", "ssm", "cloudwatch", "events")))


# ---------------------------------------------------------------- arguments


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would print its usage and exit 2 itself
        raise UsageError(message)


def parse_arguments(argv: Sequence[str]) -> Arguments:
    parser = _Parser(
        prog="monitor", description="Compare an endpoint's captured traffic with its baselines.", allow_abbrev=False
    )
    for name in (
        "--environment",
        "--tenant",
        "--model",
        "--endpoint-name",
        "--capture-uri",
        "--window-end",
        "--window-minutes",
        "--report-uri",
        "--metrics-namespace",
        "--event-source",
    ):
        parser.add_argument(name, required=True)
    parser.add_argument("--pointer", action="append", required=True, help="Variant=<SSM parameter name>, repeated")
    parser.add_argument(
        "--example-baseline",
        action="append",
        required=True,
        help="[Variant=]<S3 URI of an example model's baseline.json>, repeated; without a variant: every other one",
    )
    parser.add_argument("--thresholds", default="{}")
    parser.add_argument("--labels-uri")
    parsed = parser.parse_args(list(argv))

    for argument, value in (
        ("--environment", parsed.environment),
        ("--tenant", parsed.tenant),
        ("--model", parsed.model),
    ):
        _check(TENANT_NAME.fullmatch(value), argument, value, "lowercase letters, digits and hyphens")
    _check(
        ENDPOINT_NAME.fullmatch(parsed.endpoint_name),
        "--endpoint-name",
        parsed.endpoint_name,
        "a SageMaker endpoint name",
    )
    _check(parsed.metrics_namespace.strip(), "--metrics-namespace", parsed.metrics_namespace, "a CloudWatch namespace")
    _check(parsed.event_source.strip(), "--event-source", parsed.event_source, "an event source")
    end = _time(parsed.window_end, "--window-end")
    minutes = parsed.window_minutes
    _check(
        minutes.isdigit() and 1 <= int(minutes) <= MAX_WINDOW_MINUTES,
        "--window-minutes",
        minutes,
        f"a whole number from 1 to {MAX_WINDOW_MINUTES}",
    )
    return Arguments(
        environment=parsed.environment,
        tenant=parsed.tenant,
        model=parsed.model,
        endpoint=parsed.endpoint_name,
        capture=_s3(parsed.capture_uri, "--capture-uri", prefix=True),
        window_start=end - timedelta(minutes=int(minutes)),
        window_end=end,
        pointers=_pointers(parsed.pointer),
        example_baselines=_example_baselines(parsed.example_baseline),
        thresholds=parse_thresholds(parsed.thresholds),
        report=_s3(parsed.report_uri, "--report-uri", prefix=True),
        metrics_namespace=parsed.metrics_namespace,
        event_source=parsed.event_source,
        labels=None if parsed.labels_uri is None else _s3(parsed.labels_uri, "--labels-uri", prefix=True),
    )


def _check(condition: Any, argument: str, value: Any, allowed: str) -> None:
    if not condition:
        raise UsageError(f"argument {argument}: {value!r} is not allowed; allowed: {allowed}")


def _s3(value: str, argument: str, *, prefix: bool = False) -> S3Location:
    match = S3_URI.fullmatch(value)
    _check(match, argument, value, "an s3://bucket/key URI")
    assert match is not None
    key = match["key"]
    if prefix and key and not key.endswith("/"):
        key += "/"  # a prefix names a folder: capture/acme must not also list capture/acme-two
    return S3Location(match["bucket"], key)


def _time(value: str, argument: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"argument {argument}: {value!r} is not allowed; allowed: an ISO-8601 time such as 2026-11-24T23:00:00Z"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _pointers(values: list[str]) -> tuple[tuple[str, str], ...]:
    found: dict[str, str] = {}
    for value in values:
        variant, _, parameter = value.partition("=")
        _check(
            VARIANT_NAME.fullmatch(variant) and parameter.strip(),
            "--pointer",
            value,
            "Variant=<SSM parameter name>, such as Champion=/mlops/dev/models/acme/Champion",
        )
        _check(variant not in found, "--pointer", value, "each variant once")
        found[variant] = parameter
    return tuple(sorted(found.items()))


def _example_baselines(values: list[str]) -> tuple[tuple[str, S3Location], ...]:
    """``Variant=s3://...`` or a bare ``s3://...`` (every variant not named), each at most once."""
    found: dict[str, S3Location] = {}
    for value in values:
        head, _, tail = value.partition("=")
        # An S3 key may hold "=" (dt=...): only a variant name before the first "=" makes it the named form.
        variant, uri = (head, tail) if VARIANT_NAME.fullmatch(head) else ("", value)
        location = _s3(uri, "--example-baseline")
        _check(location.key and not location.key.endswith("/"), "--example-baseline", value, "the URI of a file")
        _check(variant not in found, "--example-baseline", value, "each variant once, and one without a variant")
        found[variant] = location
    return tuple(sorted(found.items()))


def parse_thresholds(text: str) -> Thresholds:
    """``--thresholds`` as ``drift.Thresholds``; UsageError names the first bad key."""
    try:
        raw = json.loads(text)
    except ValueError:
        raise UsageError(f"argument --thresholds: {text[:80]!r} is not JSON") from None
    _thresholds_check(isinstance(raw, dict), "", raw, "a JSON object")
    _unknown(raw, THRESHOLD_KEYS, "")
    default = _feature_thresholds(raw.get("default", {}), FeatureThresholds(), "default")
    features = raw.get("features", {})
    _thresholds_check(isinstance(features, dict), "features", features, "an object of feature names to thresholds")
    fallback = Thresholds()
    drifted_share = raw.get("drifted_share", fallback.drifted_share)
    prediction_psi = raw.get("prediction_psi", fallback.prediction_psi)
    min_rows = raw.get("min_rows", fallback.min_rows)
    _thresholds_check(_number(drifted_share) and 0 <= drifted_share <= 1, "drifted_share", drifted_share, "0 to 1")
    _thresholds_check(_number(prediction_psi) and prediction_psi > 0, "prediction_psi", prediction_psi, "above 0")
    _thresholds_check(
        isinstance(min_rows, int) and not isinstance(min_rows, bool) and min_rows >= 1,
        "min_rows",
        min_rows,
        "a whole number, at least 1",
    )
    return Thresholds(
        default=default,
        features={
            str(name): _feature_thresholds(limits, default, f"features.{name}")
            for name, limits in sorted(features.items())
        },
        drifted_share=float(drifted_share),
        prediction_psi=float(prediction_psi),
        min_rows=min_rows,
    )


def _feature_thresholds(raw: Any, fallback: FeatureThresholds, where: str) -> FeatureThresholds:
    _thresholds_check(isinstance(raw, dict), where, raw, f"an object with {', '.join(FEATURE_KEYS)}")
    _unknown(raw, FEATURE_KEYS, f"{where}.")
    psi = raw.get("psi", fallback.psi)
    ks_statistic = raw.get("ks_statistic", fallback.ks_statistic)
    ks_p_value = raw.get("ks_p_value", fallback.ks_p_value)
    _thresholds_check(_number(psi) and psi > 0, f"{where}.psi", psi, "above 0")
    _thresholds_check(_number(ks_statistic) and 0 < ks_statistic <= 1, f"{where}.ks_statistic", ks_statistic, "(0, 1]")
    _thresholds_check(_number(ks_p_value) and 0 < ks_p_value < 1, f"{where}.ks_p_value", ks_p_value, "(0, 1)")
    return FeatureThresholds(psi=float(psi), ks_statistic=float(ks_statistic), ks_p_value=float(ks_p_value))


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _unknown(raw: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    unknown = sorted(str(key) for key in raw if key not in allowed)
    if unknown:
        raise UsageError(f"argument --thresholds: unknown key {where}{unknown[0]!r}; allowed: {', '.join(allowed)}")


def _thresholds_check(condition: Any, key: str, value: Any, allowed: str) -> None:
    if not condition:
        where = f"key {key!r} has value {value!r}" if key else f"{value!r} is not allowed"
        raise UsageError(f"argument --thresholds: {where}; allowed: {allowed}")


# ---------------------------------------------------------------- baselines


def load_variant(name: str, parameter: str, arguments: Arguments, aws: Clients) -> Variant:
    """A variant's model pointer and baseline; a missing or bad one is the variant's error, never raised."""
    variant = Variant(name=name, pointer=parameter)
    try:
        value = aws.ssm.get_parameter(Name=parameter)["Parameter"]["Value"].strip()
    except ClientError as error:
        if _code(error) != "ParameterNotFound":
            raise
        variant.error = POINTER_MISSING
        return variant
    variant.model_uri = value
    if value == EXAMPLE:
        example = arguments.example_baseline(name)
        if example is None:
            variant.error = BASELINE_MISSING
            return variant
        location = example
    else:
        match = S3_URI.fullmatch(value)
        if match is None or not match["key"].endswith(f"/{MODEL_ARCHIVE}"):
            variant.error = POINTER_INVALID
            return variant
        location = S3Location(match["bucket"], match["key"][: -len(MODEL_ARCHIVE)] + BASELINE_FILE)
    variant.baseline_uri = location.uri
    try:
        body = aws.s3.get_object(Bucket=location.bucket, Key=location.key)["Body"].read()
    except ClientError as error:
        if _code(error) not in ("NoSuchKey", "404"):
            raise
        variant.error = BASELINE_MISSING
        return variant
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        document = None
    if not _is_baseline(document):
        variant.error = BASELINE_UNREADABLE
        return variant
    variant.baseline = document
    return variant


def _is_baseline(document: Any) -> bool:
    return (
        isinstance(document, dict)
        and document.get("schema_version") == SCHEMA_VERSION
        and isinstance(document.get("features"), dict)
        and isinstance(document.get("feature_order"), list)
        and list(document["features"]) == document["feature_order"]
    )


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


# ---------------------------------------------------------------- capture


def hour_prefixes(arguments: Arguments, variant: str) -> Iterator[tuple[str, bool]]:
    """Each hour folder to list, and whether its hour starts inside the window (see ``in_window``)."""
    hour = arguments.window_start.replace(minute=0, second=0, microsecond=0)
    base = f"{arguments.capture.key}{arguments.endpoint}/{variant}/"
    while hour <= arguments.window_end:
        yield f"{base}{hour:%Y/%m/%d/%H}/", arguments.window_start <= hour < arguments.window_end
        hour += timedelta(hours=1)


def list_keys(s3: Any, bucket: str, prefix: str) -> Iterator[str]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            yield item["Key"]


def stream_lines(s3: Any, bucket: str, key: str) -> Iterator[bytes]:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    try:
        yield from body.iter_lines()
    finally:
        body.close()


def inference_time(line: bytes) -> datetime | None:
    """The line's ``eventMetadata.inferenceTime`` in UTC, or None where it has none readable."""
    try:
        event = json.loads(line)
        moment = datetime.fromisoformat(event["eventMetadata"]["inferenceTime"])
    except (UnicodeDecodeError, ValueError, TypeError, KeyError):
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def window_lines(arguments: Arguments, variant: str, s3: Any, outside: Counter[str]) -> Iterator[bytes]:
    """The variant's captured lines of the window, streamed file by file in key order."""
    for prefix, folder_in_window in hour_prefixes(arguments, variant):
        for key in list_keys(s3, arguments.capture.bucket, prefix):
            for line in stream_lines(s3, arguments.capture.bucket, key):
                if not line.strip():
                    continue
                moment = inference_time(line)
                inside = folder_in_window if moment is None else arguments.window_start <= moment < arguments.window_end
                if inside:
                    yield line
                else:
                    outside[variant] += 1


# ---------------------------------------------------------------- comparison


def compare_window(
    feature_baseline: Mapping[str, Any], variants: Sequence[Variant], window: CaptureWindow, thresholds: Thresholds
) -> DriftReport:
    """Features of every row against ``feature_baseline``, each variant's predictions against its own baseline."""
    features = compare({**feature_baseline, "predictions": None}, window, thresholds)
    predictions = []
    for variant in variants:
        if variant.baseline is None or variant.window is None:
            continue
        # A baseline of no features: compare judges this variant's predictions alone.
        only_predictions: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "features": {},
            "predictions": variant.baseline.get("predictions"),
        }
        predictions.extend(compare(only_predictions, variant.window, thresholds).predictions)
    return replace(features, predictions=predictions, drift=features.drift or any(p.drifted for p in predictions))


def model_quality(labels: S3Location, window: CaptureWindow, s3: Any) -> ModelQuality:
    """Labels joined to the window's rows by inference id, and AUC and accuracy per variant."""
    counts = Counter(i for i in window.inference_ids if i is not None)
    wanted = {i for i, n in counts.items() if n == 1}
    found: dict[str, int] = {}
    lines = malformed = 0
    for key in list_keys(s3, labels.bucket, labels.key):
        for line in stream_lines(s3, labels.bucket, key):
            if not line.strip():
                continue
            lines += 1
            try:
                record = json.loads(line)
                inference_id, label = record["inference_id"], record["label"]
            except (UnicodeDecodeError, ValueError, TypeError, KeyError):
                malformed += 1
                continue
            if not isinstance(inference_id, str) or label not in (0, 1):
                malformed += 1
                continue
            if inference_id in wanted:
                found[inference_id] = int(label)  # a later label corrects an earlier one
    qualities = []
    for variant in sorted({str(v) for v in window.variants}):
        rows = [
            (found[i], score)
            for i, v, score in zip(window.inference_ids, window.variants, window.predictions, strict=True)
            if v == variant and i in found and math.isfinite(score)
        ]
        truth = np.array([label for label, _ in rows], dtype=int)
        scores = np.array([score for _, score in rows], dtype=float)
        both_classes = len(set(truth.tolist())) == 2
        qualities.append(
            VariantQuality(
                variant=variant,
                labelled=len(rows),
                auc=_round(float(roc_auc_score(truth, scores))) if both_classes else None,
                accuracy=_round(float(accuracy_score(truth, scores >= 0.5))) if rows else None,
            )
        )
    return ModelQuality(
        labels_uri=labels.uri,
        label_lines=lines,
        malformed_labels=malformed,
        ambiguous_rows=sum(n for n in counts.values() if n > 1),
        variants=qualities,
    )


def _round(value: float) -> float:
    return round(value, DECIMALS)


# ---------------------------------------------------------------- outputs


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
        f"window {_text(window['start'])} to {_text(window['end'])} ({window['minutes']} minutes)</p>"
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
            f"<p>labels from {_text(quality['labels_uri'])}: {quality['label_lines']} lines, "
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


def write_report(arguments: Arguments, document: Mapping[str, Any], page: str, s3: Any) -> str:
    """report.json and report.html under the window's folder; report.json's URI."""
    target = arguments.report_key("report.json")
    s3.put_object(
        Bucket=target.bucket,
        Key=target.key,
        Body=(json.dumps(document, sort_keys=True, indent=2, allow_nan=False) + "\n").encode("utf-8"),
        ContentType="application/json",
    )
    page_target = arguments.report_key("report.html")
    s3.put_object(
        Bucket=page_target.bucket,
        Key=page_target.key,
        Body=page.encode("utf-8"),
        ContentType="text/html; charset=utf-8",
    )
    return target.uri


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


def publish_metrics(namespace: str, metrics: Sequence[Metric], cloudwatch: Any) -> None:
    data = [metric.datum() for metric in metrics]
    for start in range(0, len(data), METRICS_PER_REQUEST):
        cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[start : start + METRICS_PER_REQUEST])


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


class EventNotDelivered(Exception):
    """PutEvents answered with a failed entry."""


def publish_event(source: str, detail: Mapping[str, Any], events: Any) -> None:
    answer = events.put_events(
        Entries=[{"Source": source, "DetailType": DETAIL_TYPE, "Detail": json.dumps(detail, allow_nan=False)}]
    )
    if answer.get("FailedEntryCount", 0):
        failed: dict[str, Any] = next((e for e in answer.get("Entries", []) if e.get("ErrorCode")), {})
        raise EventNotDelivered(f"{failed.get('ErrorCode')}: {failed.get('ErrorMessage')}")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- the job


def run(arguments: Arguments, aws: Clients) -> int:
    variants = [load_variant(name, parameter, arguments, aws) for name, parameter in arguments.pointers]
    for variant in variants:
        if variant.error:
            log.warning("variant %s has no baseline: %s (%s)", variant.name, variant.error, variant.baseline_uri)
    with_baseline = [v for v in variants if v.baseline is not None]
    feature_variant = next(
        (v for v in with_baseline if v.name == CHAMPION), with_baseline[0] if with_baseline else None
    )
    if feature_variant is None or feature_variant.baseline is None:
        document = report_document(arguments, variants, None, None, None)
        write_report(arguments, document, report_html(document, None), aws.s3)
        publish_metrics(arguments.metrics_namespace, job_metrics(arguments, variants, None, None), aws.cloudwatch)
        print(f"monitor: no variant of {arguments.endpoint} has a readable baseline", file=sys.stderr)
        return EXIT_FAILED

    names = [str(name) for name in feature_variant.baseline["feature_order"]]
    unknown = sorted(set(arguments.thresholds.features) - set(names))
    if unknown:
        log.warning("--thresholds names features the baseline does not have, which nothing checks: %s", unknown)
    outside: Counter[str] = Counter()
    for variant in variants:
        variant.window = read_capture(
            window_lines(arguments, variant.name, aws.s3, outside), names, variant=variant.name
        )
    window = CaptureWindow.combine([v.window for v in variants if v.window is not None])
    drift = compare_window(feature_variant.baseline, variants, window, arguments.thresholds)
    quality = None if arguments.labels is None else model_quality(arguments.labels, window, aws.s3)

    document = report_document(arguments, variants, feature_variant, drift, quality)
    report_uri = write_report(arguments, document, report_html(document, drift), aws.s3)
    publish_metrics(arguments.metrics_namespace, job_metrics(arguments, variants, drift, quality), aws.cloudwatch)
    detail = summary(arguments, variants, drift, report_uri)
    publish_event(arguments.event_source, detail, aws.events)
    log.info(
        "%s: %s; %d rows from %d lines (%d malformed, %d outside the window); drifted features %s; report %s",
        arguments.endpoint,
        "drift" if drift.drift else "no drift",
        drift.rows,
        drift.lines,
        detail["malformed"],
        sum(outside.values()),
        drift.drifted_features,
        report_uri,
    )
    return EXIT_DONE


def main(argv: list[str]) -> int:
    try:
        arguments = parse_arguments(argv)
    except UsageError as error:
        print(f"monitor: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return run(arguments, clients())
    except (BotoCoreError, ClientError, EventNotDelivered) as error:
        print(f"monitor: AWS failed: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_FAILED
