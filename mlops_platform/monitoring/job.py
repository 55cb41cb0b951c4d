"""``monitor``: the scheduled drift monitor's Processing job, one endpoint and one window per run.

The monitoring schedule's state machine runs it on a small CPU instance with the training image,
passing everything as ContainerArguments (``python -m mlops_platform.training monitor ...``)::

    --environment dev --tenant T --model M --endpoint-name mlops-dev-<key>
    --capture-uri s3://<lake bucket>/capture/<tenant>/<key>/
    --scheduled-time 2026-11-24T23:00:00Z --window-minutes 60 [--lag-minutes 15]
    --pointer Champion=/<project>/dev/models/<key>/Champion [--pointer Challenger=...]
    --example-baseline [Variant=]s3://<bucket>/<key of an example model's baseline.json> [--example-baseline ...]
    [--settings s3://<bucket>/<key of the environment's settings.json>]
    --report-uri s3://<artifacts bucket>/artifacts/monitoring/<tenant>/<endpoint-name>/
    --metrics-namespace mlops/dev/Drift --event-source mlops.monitoring
    [--labels-uri s3://<lake bucket>/<prefix>/]

Inputs:

- **Window**: ``[end - window-minutes, end)`` with ``end = scheduled-time - lag-minutes``.
  ``--scheduled-time`` is ISO-8601 (the scheduled event's ``time``; without an offset it is read as
  UTC). SageMaker writes a capture file minutes after its requests
  (``<capture-uri><endpoint-name>/<variant>/yyyy/mm/dd/hh/<file>.jsonl``), so a window that ended at
  the scheduled time would miss the requests of its last minutes, and the next window would skip
  them as not its own. The lag (``monitoring.window_lag_minutes``, default 15) lets their files land
  first; consecutive runs still read consecutive windows. The job lists (paginated) the hour folders
  from the window's start to the scheduled time's hour (a late file lands in a later hour's folder),
  streams each file and keeps the lines whose ``eventMetadata.inferenceTime`` lies in the window. A
  line without a readable time belongs to the window whose span holds its folder's hour, so
  consecutive windows count it once; ``read_capture`` counts it if it is malformed.
- **Baselines**: each ``--pointer Variant=<SSM parameter>`` is read with ssm:GetParameter. Its value
  is a ``model.tar.gz`` S3 URI, whose baseline is its sibling (``s3://B/a/output/model.tar.gz`` ->
  ``s3://B/a/output/baseline.json``, see ``baseline_job``), or the sentinel ``example``, whose
  baseline is the ``--example-baseline`` given for that variant (``Champion=s3://...``), else the
  one given without a variant. A variant whose pointer or baseline is missing or unreadable is reported
  (``variants`` in the report, ``BaselineMissing`` per variant, ``variants_without_baseline`` in the
  event); the other variants go on. If no variant has a baseline, the job exits 1.
- **Settings**: ``--settings`` names the settings document (``monitoring.settings``: the
  thresholds), read with s3:GetObject; without it, ``drift``'s default thresholds apply. A document
  that cannot be read as settings exits 2.
- **Labels** (optional): what the platform's ingestion wrote for the tenant's labels dataset under
  ``--labels-uri`` (``monitoring.labels``: the ingest envelope, ``dt=`` day folders), only the days
  from the window's start to the scheduled time; joined on the capture's ``eventMetadata.inferenceId``
  (a request of several rows shares one id and is left out of the join). Model quality per variant
  of a binary model: labelled rows, AUC (when both classes occur) and accuracy at a 0.5 score.

Comparison (``drift.compare``): features over every variant's rows together against the feature
baseline (the Champion's, or else the first variant's by name that has one; its categorical features
read as text); predictions of each variant against that variant's own baseline, per class for a
multiclass one. The window drifts as ``compare`` decides for the features, or when a variant's
predictions drift.

Outputs, in this order (a consumer of the event finds the report already there):

- **Report**: ``<report-uri><the window's end as YYYY-MM-DDTHH-MM>/report.json`` and ``report.html``.
  report.json: ``{"schema_version": 1, "environment", "tenant", "model", "endpoint",
  "window": {"start", "end", "minutes", "lag_minutes"}, "feature_baseline": {"variant", "uri"},
  "variants": [{"variant", "pointer", "model_uri", "baseline_uri", "error", "lines", "rows"}],
  "drift": <DriftReport.to_json()>, "model_quality": null | {"labels_uri", "days", "label_lines",
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
arguments or settings, in one line naming the argument or key. The same inputs give the same report, metrics and event.
``job_arguments`` parses the arguments; ``job_report`` makes the report, the metrics and the event's detail.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

# botocore ships no type hints (pyproject.toml lists no override for it).
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from mlops_platform.monitoring.baseline import SCHEMA_VERSION, categorical_features, is_baseline, prediction_classes
from mlops_platform.monitoring.capture import CaptureWindow, read_capture
from mlops_platform.monitoring.drift import DriftReport, Metric, Thresholds, compare
from mlops_platform.monitoring.job_arguments import S3_URI, Arguments, S3Location, UsageError, parse_arguments
from mlops_platform.monitoring.job_report import Variant, job_metrics, report_document, report_html, summary
from mlops_platform.monitoring.labels import ModelQuality, label_days, model_quality
from mlops_platform.monitoring.settings import SettingsError, parse_settings

log = logging.getLogger(__name__)

EXIT_DONE, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXAMPLE = "example"  # a pointer's sentinel for the shipped example model
CHAMPION = "Champion"
BASELINE_FILE = "baseline.json"
MODEL_ARCHIVE = "model.tar.gz"
DETAIL_TYPE = "Drift Summary"
# PutMetricData takes up to 1,000 metrics and 1 MB a request; ours are ~200 bytes each.
METRICS_PER_REQUEST = 500

# Baseline problems of a variant (``variants[].error`` in the report).
POINTER_MISSING = "pointer-missing"
POINTER_INVALID = "pointer-invalid"
BASELINE_MISSING = "baseline-missing"
BASELINE_UNREADABLE = "baseline-unreadable"


# ---------------------------------------------------------------- clients and settings


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


def load_settings(arguments: Arguments, s3: Any) -> Thresholds:
    """The thresholds of ``--settings`` (``settings.parse_settings``), or the defaults without it."""
    if arguments.settings is None:
        return Thresholds()
    location = arguments.settings
    try:
        body = s3.get_object(Bucket=location.bucket, Key=location.key)["Body"].read()
    except ClientError as error:
        if _code(error) not in ("NoSuchKey", "404"):
            raise
        raise UsageError(f"argument --settings: {location.uri} does not exist") from None
    try:
        return parse_settings(body)
    except SettingsError as error:
        raise UsageError(f"argument --settings: {location.uri}: {error}") from None


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
        location = arguments.example_baseline(name)
        if location is None:
            variant.error = BASELINE_MISSING
            return variant
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
    if not is_baseline(document):
        variant.error = BASELINE_UNREADABLE
        return variant
    variant.baseline = document
    return variant


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


# ---------------------------------------------------------------- capture


def hour_prefixes(arguments: Arguments, variant: str) -> Iterator[tuple[str, bool]]:
    """Each hour folder to list, and whether its hour starts inside the window (for lines without a time)."""
    hour = arguments.window_start.replace(minute=0, second=0, microsecond=0)
    base = f"{arguments.capture.key}{arguments.endpoint}/{variant}/"
    # Up to the run's own hour: a file written during the lag can land in a later hour's folder.
    while hour <= arguments.scheduled_time:
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


def quality_of(arguments: Arguments, labels: S3Location, window: CaptureWindow, s3: Any) -> ModelQuality:
    """Model quality from the labels ingested on the days a label of this window can have arrived."""
    days = label_days(arguments.window_start, arguments.scheduled_time)

    def lines() -> Iterator[bytes]:
        for day in days:
            for key in list_keys(s3, labels.bucket, f"{labels.key}dt={day:%Y-%m-%d}/"):
                yield from stream_lines(s3, labels.bucket, key)

    return model_quality(labels.uri, days, lines(), window)


# ---------------------------------------------------------------- outputs (made by job_report)


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


def publish_metrics(namespace: str, metrics: Sequence[Metric], cloudwatch: Any) -> None:
    data = [metric.datum() for metric in metrics]
    for start in range(0, len(data), METRICS_PER_REQUEST):
        cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[start : start + METRICS_PER_REQUEST])


class EventNotDelivered(Exception):
    """PutEvents answered with a failed entry."""


def publish_event(source: str, detail: Mapping[str, Any], events: Any) -> None:
    answer = events.put_events(
        Entries=[{"Source": source, "DetailType": DETAIL_TYPE, "Detail": json.dumps(detail, allow_nan=False)}]
    )
    if answer.get("FailedEntryCount", 0):
        failed: dict[str, Any] = next((e for e in answer.get("Entries", []) if e.get("ErrorCode")), {})
        raise EventNotDelivered(f"{failed.get('ErrorCode')}: {failed.get('ErrorMessage')}")


# ---------------------------------------------------------------- the job


def run(arguments: Arguments, aws: Clients) -> int:
    thresholds = load_settings(arguments, aws.s3)
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
    unknown = sorted(set(thresholds.features) - set(names))
    if unknown:
        log.warning("the settings name features the baseline does not have, which nothing checks: %s", unknown)
    outside: Counter[str] = Counter()
    categorical = categorical_features(feature_variant.baseline)
    for variant in variants:  # a multiclass answer is read per class, in the classes' order of the baseline
        classes = prediction_classes(variant.baseline or feature_variant.baseline)
        lines = window_lines(arguments, variant.name, aws.s3, outside)
        variant.window = read_capture(lines, names, variant=variant.name, categorical=categorical, classes=classes)
    window = CaptureWindow.combine([v.window for v in variants if v.window is not None])
    drift = compare_window(feature_variant.baseline, variants, window, thresholds)
    # Labels are 0 or 1 (``labels``): model quality is a binary model's.
    binary = window.predictions.ndim == 1
    quality = (
        None if arguments.labels is None or not binary else quality_of(arguments, arguments.labels, window, aws.s3)
    )

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
        return run(parse_arguments(argv), clients())
    except UsageError as error:
        print(f"monitor: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (BotoCoreError, ClientError, EventNotDelivered) as error:
        print(f"monitor: AWS failed: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_FAILED
