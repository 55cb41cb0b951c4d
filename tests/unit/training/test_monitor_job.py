"""The drift monitor's job, run as plain Python against moto: S3 capture and reports, SSM pointers, metrics, events.

Traffic is the shipped dataset scored by the shipped example model, compared with the shipped
example baseline (models/example/xgboost/baseline.json), as the ``example`` endpoint would see it. Settings
are the documents config/monitoring.py makes; labels are what the ingest function writes.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import boto3
import numpy as np
import pandas as pd
import pytest
from moto import mock_aws

from config import load_config
from config.example_models import archive_path, baseline_path
from tests.conftest import ROOT, load_handler

# isort: split
# After tests.unit.training.conftest, which puts the training image's code on the path.
from mlops_platform.monitoring import job, settings
from mlops_platform.monitoring.baseline import compute_baseline
from mlops_platform.training.algorithms import load_model

DATASET = ROOT / "data" / "example" / "breast-cancer.jsonl"
EXAMPLE_BASELINE = baseline_path("xgboost")
EXAMPLE_MODEL = archive_path("xgboost")
SAMPLE_EVENT = json.loads((ROOT / "tests" / "unit" / "events" / "drift_summary.json").read_text())

LAKE = "mlops-dev-lake"
ARTIFACTS = "mlops-dev-artifacts"
ENDPOINT = "mlops-dev-example"
TENANT = "example"
MODEL = "xgboost"
NAMESPACE = "mlops/dev/Drift"
SOURCE = "mlops.monitoring"
CAPTURE_PREFIX = "capture/example/example/"
REPORT_PREFIX = f"artifacts/monitoring/example/{ENDPOINT}/"
EXAMPLE_BASELINE_KEY = "assets/example/baseline.json"
SETTINGS_KEY = "assets/settings/{}.json"
CHALLENGER_MODEL_KEY = "models/example/run-7/output/model.tar.gz"
POINTER = "/mlops/dev/models/example/{}"
END = datetime(2026, 11, 24, 23, 0, tzinfo=UTC)
START = END - timedelta(minutes=60)
REPORT_KEY = f"{REPORT_PREFIX}2026-11-24T23-00/report.json"
SHIFTED = ["mean_radius", "worst_texture", "area_error"]
DIMENSIONS = {"Endpoint": ENDPOINT, "Tenant": TENANT, "Model": MODEL}


@pytest.fixture(scope="module")
def dataset() -> pd.DataFrame:
    records = [json.loads(line)["record"] for line in DATASET.read_text().splitlines()]
    return pd.DataFrame(records)


@pytest.fixture(scope="module")
def train_split(tmp_path_factory) -> pd.DataFrame:
    """The example model's train split, prepared from the shipped dataset as scripts/example_model.py does."""
    from mlops_platform.data.prepare import prepare
    from mlops_platform.sagemaker_paths import ProcessingPaths
    from scripts import example_model

    work = tmp_path_factory.mktemp("example-split")
    processing = ProcessingPaths(root=work / "processing", message=work / "message")
    raw_day = processing.raw / f"dt={example_model.RAW_DAY}"
    raw_day.mkdir(parents=True)
    shutil.copy(DATASET, raw_day / f"{TENANT}.jsonl")
    config = processing.root / "input" / "config" / f"{TENANT}.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps(example_model.example_tenant().published()))
    prepare(processing, config, example_model.RUN_ID, example_model.RUN_DAY)
    return pd.read_parquet(processing.features / f"{example_model.RUN_ID}-train.parquet")


@pytest.fixture(scope="module")
def shipped_settings() -> dict[str, Any]:
    """dev's settings document, as the Monitoring stack writes it for the job (mlops_constructs/drift_job.py)."""
    return load_config(ROOT / "config", selected_environments="dev").environment("dev").monitoring.settings_document()


def settings_document(**thresholds: Any) -> dict[str, Any]:
    """A settings document with these thresholds, the rest left to the job's defaults."""
    return {"schema_version": 1, "thresholds": thresholds}


@pytest.fixture(scope="module")
def features() -> list[str]:
    return json.loads(EXAMPLE_BASELINE.read_text())["feature_order"]


@pytest.fixture(scope="module")
def predict(tmp_path_factory, features):
    directory = tmp_path_factory.mktemp("example-model")
    with tarfile.open(EXAMPLE_MODEL, "r:gz") as archive:
        archive.extractall(directory, filter="data")
    _, predict = load_model(directory)
    return lambda frame: np.asarray(predict(frame[features].to_numpy(dtype=np.float32)), dtype=float)


def capture_line(row: list[float], score: float, at: datetime | None, inference_id: str) -> str:
    """One request of one row, as SageMaker data capture writes it (CSV in, CSV out)."""
    metadata: dict[str, str] = {"eventId": f"e-{inference_id}", "inferenceId": inference_id}
    if at is not None:
        metadata["inferenceTime"] = at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return json.dumps(
        {
            "captureData": {
                "endpointInput": {
                    "observedContentType": "text/csv",
                    "mode": "INPUT",
                    "data": ",".join(repr(float(v)) for v in row),
                    "encoding": "CSV",
                },
                "endpointOutput": {
                    "observedContentType": "text/csv; charset=utf-8",
                    "mode": "OUTPUT",
                    "data": repr(float(score)),
                    "encoding": "CSV",
                },
            },
            "eventMetadata": metadata,
            "eventVersion": "0",
        }
    )


def traffic(
    frame: pd.DataFrame, features: list[str], scores: np.ndarray, *, prefix: str = "i", start: datetime = START
) -> list[str]:
    """One line per row, spread evenly over the hour from ``start``; inference ids ``<prefix>-<row>``."""
    step = timedelta(seconds=3600 / max(len(frame), 1))
    rows = frame[features].to_numpy().tolist()
    return [
        capture_line(row, score, start + i * step, f"{prefix}-{i}")
        for i, (row, score) in enumerate(zip(rows, scores, strict=True))
    ]


class Harness(SimpleNamespace):
    """moto's S3, SSM, CloudWatch and EventBridge, with helpers to lay out inputs and read outputs back."""

    def put_capture(self, variant: str, hour: datetime, lines: list[str], name: str = "part-0.jsonl") -> None:
        key = f"{CAPTURE_PREFIX}{ENDPOINT}/{variant}/{hour:%Y/%m/%d/%H}/{name}"
        self.s3.put_object(Bucket=LAKE, Key=key, Body=("\n".join(lines) + "\n").encode())

    def settings(self, document: dict[str, Any], name: str = "settings") -> str:
        """The URI of ``document``, put where the stack's settings asset would be."""
        key = SETTINGS_KEY.format(name)
        self.s3.put_object(Bucket=ARTIFACTS, Key=key, Body=json.dumps(document).encode())
        return f"s3://{ARTIFACTS}/{key}"

    def point(self, variant: str, value: str) -> None:
        self.ssm.put_parameter(Name=POINTER.format(variant), Value=value, Type="String", Overwrite=True)

    def report(self, key: str = REPORT_KEY) -> dict[str, Any]:
        return json.loads(self.s3.get_object(Bucket=ARTIFACTS, Key=key)["Body"].read())

    def events(self) -> list[dict[str, Any]]:
        messages = self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages]

    def metric_names(self, **dimensions: str) -> set[str]:
        wanted = [{"Name": k, "Value": v} for k, v in {**DIMENSIONS, **dimensions}.items()]
        listed = self.cloudwatch.list_metrics(Namespace=NAMESPACE, Dimensions=wanted)["Metrics"]
        return {m["MetricName"] for m in listed if len(m["Dimensions"]) == len(wanted)}

    def metric(self, name: str, **dimensions: str) -> float:
        """The one value published under ``name`` and exactly these dimensions."""
        now = datetime.now(UTC)
        answer = self.cloudwatch.get_metric_statistics(
            Namespace=NAMESPACE,
            MetricName=name,
            Dimensions=[{"Name": k, "Value": v} for k, v in {**DIMENSIONS, **dimensions}.items()],
            StartTime=now - timedelta(hours=1),
            EndTime=now + timedelta(hours=1),
            Period=7200,
            Statistics=["Maximum", "SampleCount"],
        )
        [point] = answer["Datapoints"]
        assert point["SampleCount"] == 1, f"{name} {dimensions} published {point['SampleCount']} times"
        return point["Maximum"]


@pytest.fixture
def aws() -> Iterator[Harness]:
    with mock_aws():
        region = "eu-west-1"
        s3 = boto3.client("s3", region_name=region)
        for bucket in (LAKE, ARTIFACTS):
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
        s3.put_object(Bucket=ARTIFACTS, Key=EXAMPLE_BASELINE_KEY, Body=EXAMPLE_BASELINE.read_bytes())
        sqs = boto3.client("sqs", region_name=region)
        queue = sqs.create_queue(QueueName="drift-summaries")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events = boto3.client("events", region_name=region)
        events.put_rule(Name="drift-summaries", EventPattern=json.dumps({"source": [SOURCE]}))
        events.put_targets(Rule="drift-summaries", Targets=[{"Id": "queue", "Arn": queue_arn}])
        ssm, cloudwatch = boto3.client("ssm", region_name=region), boto3.client("cloudwatch", region_name=region)
        harness = Harness(s3=s3, ssm=ssm, cloudwatch=cloudwatch, sqs=sqs, queue=queue)
        harness.point("Champion", "example")
        yield harness


def arguments(*variants: str, **overrides: str | None) -> list[str]:
    """The job's command line as the state machine passes it; ``None`` leaves an argument out."""
    values: dict[str, str | None] = {
        "--environment": "dev",
        "--tenant": TENANT,
        "--model": MODEL,
        "--endpoint-name": ENDPOINT,
        "--capture-uri": f"s3://{LAKE}/{CAPTURE_PREFIX}",
        "--scheduled-time": "2026-11-24T23:00:00Z",
        "--window-minutes": "60",
        "--example-baseline": f"s3://{ARTIFACTS}/{EXAMPLE_BASELINE_KEY}",
        "--report-uri": f"s3://{ARTIFACTS}/{REPORT_PREFIX}",
        "--metrics-namespace": NAMESPACE,
        "--event-source": SOURCE,
    }
    values.update({f"--{k.replace('_', '-')}": v for k, v in overrides.items()})
    argv = [item for name, value in values.items() if value is not None for item in (name, value)]
    for variant in variants or ("Champion",):
        argv += ["--pointer", f"{variant}={POINTER.format(variant)}"]
    return argv


def test_training_like_traffic_does_not_drift_and_everything_is_published(
    aws, train_split, features, predict, shipped_settings
):
    # A bootstrap resample of the train split: traffic like training's, not training's own rows.
    dataset = train_split.sample(frac=1, replace=True, random_state=20261124).reset_index(drop=True)
    aws.put_capture("Champion", START, traffic(dataset, features, predict(dataset)))

    assert job.main(arguments(settings=aws.settings(shipped_settings))) == 0

    report = aws.report()
    assert report["drift"]["drift"] is False
    assert not [f["name"] for f in report["drift"]["features"] if f["drifted"]]
    assert report["drift"]["rows"] == len(dataset)
    assert report["drift"]["malformed"] == {}
    [prediction] = report["drift"]["predictions"]
    assert (prediction["variant"], prediction["rows"], prediction["drifted"]) == ("Champion", len(dataset), False)
    assert report["feature_baseline"] == {"variant": "Champion", "uri": f"s3://{ARTIFACTS}/{EXAMPLE_BASELINE_KEY}"}
    assert report["window"] == {
        "start": "2026-11-24T22:00:00Z",
        "end": "2026-11-24T23:00:00Z",
        "minutes": 60,
        "lag_minutes": 0,
    }
    assert report["model_quality"] is None

    assert aws.metric("DriftDetected") == 0
    assert aws.metric("CapturedRecords") == len(dataset)
    assert aws.metric("MalformedRecords") == 0
    assert aws.metric("VariantsWithoutBaseline") == 0
    assert aws.metric("BaselineMissing", Variant="Champion") == 0
    assert 0 < aws.metric("FeaturePSI", Feature="mean_radius") < 0.2
    assert aws.metric("PredictionPSI", Variant="Champion") < 0.2
    assert {"DriftDetected", "DriftedFeatureShare", "MaxPSI", "CapturedRecords"} <= aws.metric_names()
    assert aws.metric_names(Feature="worst_area") == {
        "FeaturePSI", "FeatureKS", "FeatureMissingRate", "FeatureOutOfRangeShare", "FeatureTypeMismatchShare",
    }  # fmt: skip

    [event] = aws.events()
    assert (event["source"], event["detail-type"]) == (SOURCE, "Drift Summary")
    detail = event["detail"]
    assert set(detail) == set(SAMPLE_EVENT["detail"]), "tests/unit/events/drift_summary.json has other fields"
    assert detail == {
        "environment": "dev",
        "tenant": TENANT,
        "model": MODEL,
        "endpoint": ENDPOINT,
        "drift": False,
        "max_psi": report["drift"]["max_psi"],
        "drifted_features": [],
        "drifted_variants": [],
        "variants_without_baseline": [],
        "rows": len(dataset),
        "malformed": 0,
        "window_start": "2026-11-24T22:00:00Z",
        "window_end": "2026-11-24T23:00:00Z",
        "report_uri": f"s3://{ARTIFACTS}/{REPORT_KEY}",
    }
    assert 0 < detail["max_psi"] < 0.2


def test_shifted_traffic_drifts_and_names_the_shifted_features(aws, dataset, features, predict):
    shifted = dataset.copy()
    shifted[SHIFTED] = shifted[SHIFTED] * 1.6
    aws.put_capture("Champion", START, traffic(shifted, features, predict(shifted)))

    assert job.main(arguments(settings=aws.settings(settings_document(drifted_share=0.1)))) == 0

    report = aws.report()
    drifted = {f["name"] for f in report["drift"]["features"] if f["drifted"]}
    assert drifted == set(SHIFTED)
    assert report["drift"]["drift"] is True
    assert aws.metric("DriftDetected") == 1
    assert aws.metric("FeaturePSI", Feature="mean_radius") > 0.2
    assert aws.metric("FeatureOutOfRangeShare", Feature="area_error") > 0
    [event] = aws.events()
    assert event["detail"]["drift"] is True
    assert set(event["detail"]["drifted_features"]) == set(SHIFTED)
    assert event["detail"]["max_psi"] == max(f["psi"] for f in report["drift"]["features"])


def test_thresholds_decide_drift_default_share_and_a_watched_feature(aws, dataset, features, predict):
    shifted = dataset.copy()
    shifted["mean_radius"] = shifted["mean_radius"] * 1.6
    aws.put_capture("Champion", START, traffic(shifted, features, np.full(len(shifted), 0.01)))
    # A constant score near the baseline's low mode would drift the predictions: give them a lax threshold.
    lax = {"prediction_psi": 100}

    assert job.main(arguments(settings=aws.settings(settings_document(**lax)))) == 0
    assert aws.report()["drift"]["drift"] is False  # one feature of 30 is below the default share of 0.5

    watched = {**lax, "features": {"mean_radius": {"psi": 0.5}}, "default": {"psi": 50, "ks_statistic": 1}}
    assert job.main(arguments(settings=aws.settings(settings_document(**watched), "watched"))) == 0
    report = aws.report()
    assert report["drift"]["drift"] is True  # a feature given its own thresholds drifts alone
    assert [f["name"] for f in report["drift"]["features"] if f["drifted"]] == ["mean_radius"]


def test_malformed_lines_are_counted_not_fatal(aws, dataset, features, predict):
    lines = traffic(dataset.head(100), features, predict(dataset.head(100)))
    at = START + timedelta(minutes=30)
    bad = [
        "not json at all",
        json.dumps({"captureData": {}, "eventMetadata": {"inferenceTime": "2026-11-24T22:30:00Z"}}),
        capture_line([1.0, 2.0], 0.5, at, "short"),  # two columns, not thirty
        json.dumps({"eventMetadata": {"inferenceId": "x"}}),  # no time: its folder's hour is in the window
    ]
    aws.put_capture("Champion", START, lines[:50] + bad + lines[50:])

    assert job.main(arguments()) == 0

    report = aws.report()
    assert report["drift"]["rows"] == 100
    assert report["drift"]["malformed"] == {"malformed-json": 1, "missing-field": 2, "wrong-column-count": 1}
    assert aws.metric("MalformedRecords") == 4
    assert aws.events()[0]["detail"]["malformed"] == 4


def test_only_the_window_s_hour_folders_are_read_and_lines_are_filtered_by_inference_time(
    aws, dataset, features, predict
):
    frame = dataset.head(40)
    scores = predict(frame)
    rows = frame[features].to_numpy().tolist()

    def line(i: int, at: datetime | None) -> str:
        return capture_line(rows[i], scores[i], at, f"i-{i}")

    before, inside, late, after = (
        START - timedelta(seconds=1),
        START + timedelta(minutes=5),
        END - timedelta(seconds=2),
        END,
    )
    aws.put_capture("Champion", START, [line(i, inside) for i in range(10)] + [line(10, before)])
    # Written after the hour: the end's folder holds the window's last requests and the next window's first.
    aws.put_capture("Champion", END, [line(11, late), line(12, after), "not json (the next window's folder)"])
    # A folder before the window is never listed, whatever its lines say.
    aws.put_capture("Champion", START - timedelta(hours=1), [line(i, inside) for i in range(13, 20)] + ["not json"])
    aws.put_capture("Champion", END + timedelta(hours=1), [line(i, inside) for i in range(20, 30)])

    assert job.main(arguments()) == 0

    report = aws.report()
    assert report["drift"]["rows"] == 11  # rows 0-9 and 11
    assert report["drift"]["malformed"] == {}
    assert report["variants"][0]["lines"] == 11


def test_a_line_written_after_its_window_closed_is_read_by_the_next_run_once(aws, dataset, features, predict):
    """Hourly runs with the default lag: SageMaker writes each capture file up to 12 minutes after its requests."""
    frame = dataset.head(240)
    scores = predict(frame)
    rows = frame[features].to_numpy().tolist()
    # Two hours of requests, one every 30 s from 22:00; each file holds one request, written `delay` later.
    requests = [(START + timedelta(seconds=30 * i), timedelta(minutes=(i * 7) % 13)) for i in range(240)]
    # Requests of 22:48 to 22:59 whose files land after 23:00, in the 23 folder: a window ending at 23:00 misses them.
    assert len([at for at, delay in requests if at < END <= at + delay]) > 5
    files = [(at + delay, capture_line(rows[i], scores[i], at, f"i-{i}")) for i, (at, delay) in enumerate(requests)]

    def run(scheduled: datetime, lag: int) -> int:
        """Put the files written by ``scheduled`` (as they would be when the run starts), run, count the rows."""
        for i, (written, line) in enumerate(files):
            if written <= scheduled:
                aws.put_capture("Champion", written, [line], name=f"part-{i:04d}.jsonl")
        assert job.main(arguments(scheduled_time=f"{scheduled:%Y-%m-%dT%H:%M:%SZ}", lag_minutes=str(lag))) == 0
        end = scheduled - timedelta(minutes=lag)
        return aws.report(f"{REPORT_PREFIX}{end:%Y-%m-%dT%H-%M}/report.json")["drift"]["rows"]

    runs = [END, END + timedelta(hours=1), END + timedelta(hours=2)]
    counted = [run(scheduled, 15) for scheduled in runs]

    # [21:45, 22:45), [22:45, 23:45), [23:45, 00:45): every request once, the late ones by the next run.
    assert counted == [90, 120, 30]
    assert sum(counted) == len(requests)


def test_without_a_lag_requests_whose_files_land_after_the_window_are_lost(aws, dataset, features, predict):
    """The reason for the lag: a window that ends at the run's start misses its last minutes for good."""
    frame = dataset.head(2)
    scores = predict(frame)
    rows = frame[features].to_numpy().tolist()
    on_time = capture_line(rows[0], scores[0], START + timedelta(minutes=30), "i-0")
    late = capture_line(rows[1], scores[1], END - timedelta(seconds=30), "i-1")  # written at 23:04

    aws.put_capture("Champion", START, [on_time])
    assert job.main(arguments(lag_minutes="0")) == 0
    first = aws.report()["drift"]["rows"]
    aws.put_capture("Champion", END, [late])
    assert job.main(arguments(scheduled_time="2026-11-25T00:00:00Z", lag_minutes="0")) == 0
    second = aws.report(f"{REPORT_PREFIX}2026-11-25T00-00/report.json")["drift"]["rows"]

    assert (first, second) == (1, 0)


def test_a_window_that_does_not_start_on_the_hour(aws, dataset, features, predict):
    frame = dataset.head(20)
    scores = predict(frame)
    rows = frame[features].to_numpy().tolist()
    lines = [
        capture_line(rows[i], scores[i], START + timedelta(minutes=3 * i), f"i-{i}") for i in range(20)
    ]  # 22:00 to 22:57
    aws.put_capture("Champion", START, lines)

    assert job.main(arguments(scheduled_time="2026-11-24T23:00:00+00:00", window_minutes="30")) == 0

    assert aws.report()["drift"]["rows"] == 10  # 22:30 to 22:57
    assert aws.report()["window"] == {
        "start": "2026-11-24T22:30:00Z",
        "end": "2026-11-24T23:00:00Z",
        "minutes": 30,
        "lag_minutes": 0,
    }


def test_an_empty_window_still_publishes_drift_detected_and_captured_records(aws):
    assert job.main(arguments()) == 0

    assert aws.metric("DriftDetected") == 0
    assert aws.metric("CapturedRecords") == 0
    [event] = aws.events()
    assert (event["detail"]["drift"], event["detail"]["rows"], event["detail"]["max_psi"]) == (False, 0, 0.0)
    assert aws.report()["drift"]["rows"] == 0


def test_a_variant_without_a_baseline_is_reported_and_the_others_compared(aws, dataset, features, predict):
    aws.point("Challenger", f"s3://{ARTIFACTS}/{CHALLENGER_MODEL_KEY}")  # no baseline.json beside it
    champion, challenger = dataset.iloc[:400], dataset.iloc[400:]
    aws.put_capture("Champion", START, traffic(champion, features, predict(champion), prefix="a"))
    aws.put_capture("Challenger", START, traffic(challenger, features, predict(challenger), prefix="b"))

    assert job.main(arguments("Champion", "Challenger")) == 0

    report = aws.report()
    variants = {v["variant"]: v for v in report["variants"]}
    assert variants["Challenger"]["error"] == "baseline-missing"
    assert variants["Challenger"]["baseline_uri"] == f"s3://{ARTIFACTS}/models/example/run-7/output/baseline.json"
    assert variants["Champion"]["error"] is None
    assert (variants["Champion"]["rows"], variants["Challenger"]["rows"]) == (400, len(dataset) - 400)
    assert report["drift"]["rows"] == len(dataset)  # features: every variant's rows together
    assert [p["variant"] for p in report["drift"]["predictions"]] == ["Champion"]
    assert aws.metric("BaselineMissing", Variant="Challenger") == 1
    assert aws.metric("BaselineMissing", Variant="Champion") == 0
    assert aws.metric("VariantsWithoutBaseline") == 1
    assert aws.events()[0]["detail"]["variants_without_baseline"] == ["Challenger"]


def test_each_variant_s_predictions_are_compared_with_its_own_baseline(aws, dataset, features, predict):
    aws.point("Challenger", f"s3://{ARTIFACTS}/{CHALLENGER_MODEL_KEY}")
    aws.s3.put_object(
        Bucket=ARTIFACTS,
        Key=CHALLENGER_MODEL_KEY.replace("model.tar.gz", "baseline.json"),
        Body=EXAMPLE_BASELINE.read_bytes(),
    )
    champion, challenger = dataset.iloc[:300], dataset.iloc[300:]
    aws.put_capture("Champion", START, traffic(champion, features, predict(champion), prefix="a"))
    # The challenger scores everything 0.5: its features are as usual, its predictions are not.
    aws.put_capture("Challenger", START, traffic(challenger, features, np.full(len(challenger), 0.5), prefix="b"))

    assert job.main(arguments("Champion", "Challenger")) == 0

    report = aws.report()
    predictions = {p["variant"]: p for p in report["drift"]["predictions"]}
    assert predictions["Challenger"]["drifted"] is True
    assert predictions["Champion"]["drifted"] is False
    assert not [f["name"] for f in report["drift"]["features"] if f["drifted"]]
    assert report["drift"]["drift"] is True
    assert aws.metric("PredictionPSI", Variant="Challenger") > 0.2
    assert aws.metric("PredictionPSI", Variant="Champion") < 0.2
    assert aws.metric("DriftDetected") == 1
    assert aws.events()[0]["detail"]["drifted_variants"] == ["Challenger"]


def test_a_challenger_is_judged_by_its_own_baseline_not_the_champion_s(aws, dataset, features, predict):
    """A challenger whose model scores near 0.5 has a baseline that says so: its scores near 0.5 are no shift."""
    own = json.loads(EXAMPLE_BASELINE.read_text())
    own["predictions"] = compute_baseline(pd.DataFrame({"p": np.linspace(0.4, 0.6, 400)}), {"p": "double"})["features"][
        "p"
    ]
    aws.point("Challenger", f"s3://{ARTIFACTS}/{CHALLENGER_MODEL_KEY}")
    key = CHALLENGER_MODEL_KEY.replace("model.tar.gz", "baseline.json")
    aws.s3.put_object(Bucket=ARTIFACTS, Key=key, Body=json.dumps(own).encode())
    champion, challenger = dataset.iloc[:300], dataset.iloc[300:]
    aws.put_capture("Champion", START, traffic(champion, features, predict(champion), prefix="a"))
    scores = np.linspace(0.4, 0.6, len(challenger))
    aws.put_capture("Challenger", START, traffic(challenger, features, scores, prefix="b"))

    assert job.main(arguments("Champion", "Challenger")) == 0

    report = aws.report()
    assert {p["variant"]: p["drifted"] for p in report["drift"]["predictions"]} == {
        "Challenger": False,
        "Champion": False,
    }
    assert report["drift"]["drift"] is False
    assert aws.metric("PredictionPSI", Variant="Challenger") < 0.2


LINEAR_BASELINE_KEY = "assets/example/linear/baseline.json"


def test_the_shipped_a_b_pair_is_judged_by_each_example_model_s_own_baseline(
    aws, dataset, features, predict, tmp_path_factory
):
    """The example endpoint's Champion (XGBoost) and Challenger (linear) both hold the sentinel pointer: each
    variant's traffic is compared with the baseline of the example model it serves, named per variant."""
    directory = tmp_path_factory.mktemp("linear-example")
    with tarfile.open(archive_path("linear"), "r:gz") as archive:
        archive.extractall(directory, filter="data")
    _, linear = load_model(directory)
    aws.s3.put_object(Bucket=ARTIFACTS, Key=LINEAR_BASELINE_KEY, Body=baseline_path("linear").read_bytes())
    aws.point("Challenger", "example")
    champion, challenger = dataset.iloc[:300], dataset.iloc[300:]
    aws.put_capture("Champion", START, traffic(champion, features, predict(champion), prefix="a"))
    challenger_scores = np.asarray(linear(challenger[features].to_numpy(dtype=np.float32)), dtype=float)
    aws.put_capture("Challenger", START, traffic(challenger, features, challenger_scores, prefix="b"))
    xgboost_uri, linear_uri = f"s3://{ARTIFACTS}/{EXAMPLE_BASELINE_KEY}", f"s3://{ARTIFACTS}/{LINEAR_BASELINE_KEY}"
    per_variant = [
        *arguments("Champion", "Challenger", example_baseline=None),
        *("--example-baseline", f"Champion={xgboost_uri}"),
        *("--example-baseline", f"Challenger={linear_uri}"),
    ]

    assert job.main(per_variant) == 0

    report = aws.report()
    assert {v["variant"]: v["baseline_uri"] for v in report["variants"]} == {
        "Champion": xgboost_uri,
        "Challenger": linear_uri,
    }
    assert {p["variant"]: p["drifted"] for p in report["drift"]["predictions"]} == {
        "Challenger": False,
        "Champion": False,
    }


def test_an_example_baseline_without_a_variant_serves_every_variant_not_named():
    parsed = job.parse_arguments(
        [
            *arguments("Champion", "Challenger", example_baseline=None),
            *("--example-baseline", f"s3://{ARTIFACTS}/dt=2026-01-01/baseline.json"),  # "=" in a key is no variant
            *("--example-baseline", f"Challenger=s3://{ARTIFACTS}/linear/baseline.json"),
        ]
    )

    assert parsed.example_baseline("Champion").uri == f"s3://{ARTIFACTS}/dt=2026-01-01/baseline.json"
    assert parsed.example_baseline("Challenger").uri == f"s3://{ARTIFACTS}/linear/baseline.json"


@pytest.mark.parametrize(
    "extra", [f"Champion=s3://{ARTIFACTS}/a.json", f"Champion=s3://{ARTIFACTS}/", "Champion=https://x/a.json"]
)
def test_a_bad_or_repeated_example_baseline_exits_2(extra, capsys):
    named = [*arguments(example_baseline=None), "--example-baseline", f"Champion=s3://{ARTIFACTS}/b.json"]

    assert job.main([*named, "--example-baseline", extra]) == 2
    assert "--example-baseline" in capsys.readouterr().err


def test_no_readable_baseline_for_any_variant_exits_1(aws, dataset, features, predict):
    aws.point("Champion", f"s3://{ARTIFACTS}/{CHALLENGER_MODEL_KEY}")
    aws.s3.put_object(Bucket=ARTIFACTS, Key=CHALLENGER_MODEL_KEY.replace("model.tar.gz", "baseline.json"), Body=b"{")
    aws.put_capture("Champion", START, traffic(dataset.head(50), features, predict(dataset.head(50))))

    assert job.main(arguments("Champion", "Challenger")) == 1  # Challenger's pointer does not exist

    report = aws.report()
    assert {v["variant"]: v["error"] for v in report["variants"]} == {
        "Champion": "baseline-unreadable",
        "Challenger": "pointer-missing",
    }
    assert report["drift"] is None
    assert aws.metric("VariantsWithoutBaseline") == 2
    assert aws.events() == []


# -- labels, as the ingest function lands them ---------------------------------------------------------

LABELS_DATASET = "example-labels"
LABELS_PREFIX = f"raw/{TENANT}/{LABELS_DATASET}/"


def ingest(messages: list[tuple[str, datetime, list[dict[str, Any]]]]) -> None:
    """Send each (message id, sent at, records) through the real ingest handler into the lake's raw zone."""
    from tests.lambda_context import LambdaContext
    from tests.unit.test_ingest_handler import queue_of, sqs_event, sqs_message, tenant_queues

    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("RAW_BUCKET", LAKE)
        environment.setenv("TENANT_QUEUES", tenant_queues(TENANT))
        handler = load_handler("ingest")
    event = sqs_event(
        *(
            sqs_message(
                {"tenant": TENANT, "dataset": LABELS_DATASET, "records": records},
                message_id,
                sent,
                queue=queue_of(TENANT),
            )
            for message_id, sent, records in messages
        )
    )
    assert handler.handler(event, LambdaContext("ingest", memory_limit_in_mb=512)) == {"batchItemFailures": []}


def test_labels_sent_through_ingestion_give_model_quality_per_variant(aws, dataset, features, predict):
    aws.put_capture("Champion", START, traffic(dataset, features, predict(dataset)))
    truth = [{"inference_id": f"i-{i}", "label": int(t)} for i, t in enumerate(dataset["target"])]
    half = len(truth) // 2
    wrong = [{"inference_id": "i-0", "label": 1 - truth[0]["label"]}, {"inference_id": "i-1", "label": "yes"}]
    ingest(
        [
            # A wrong label first, corrected by the same id's label the next day.
            ("m-1", START + timedelta(minutes=10), wrong[:1]),
            ("m-2", END + timedelta(minutes=5), truth[:half]),
            ("m-3", END + timedelta(hours=1, minutes=30), [*truth[half:], {"inference_id": "unknown", "label": 1}]),
        ]
    )
    # Ingestion lands any JSON object: the job counts a label other than 0 or 1 as malformed, and a line that
    # is not an envelope.
    ingest([("m-4", END, wrong[1:])])
    aws.s3.put_object(Bucket=LAKE, Key=f"{LABELS_PREFIX}dt=2026-11-25/hand-written.jsonl", Body=b"not json\n")
    listed = aws.s3.list_objects_v2(Bucket=LAKE, Prefix=LABELS_PREFIX)["Contents"]
    assert {item["Key"].split("/")[3] for item in listed} == {"dt=2026-11-24", "dt=2026-11-25"}

    window = {"scheduled_time": "2026-11-25T01:00:00Z", "window_minutes": "180"}  # 22:00 to 01:00
    assert job.main(arguments(**window, labels_uri=f"s3://{LAKE}/{LABELS_PREFIX}")) == 0

    quality = aws.report("artifacts/monitoring/example/mlops-dev-example/2026-11-25T01-00/report.json")["model_quality"]
    assert quality["days"] == ["2026-11-24", "2026-11-25"]
    # Every truth label, the wrong one, the unknown id, the string label and the hand-written line.
    assert (quality["label_lines"], quality["malformed_labels"], quality["ambiguous_rows"]) == (
        len(dataset) + 4,
        2,
        0,
    )
    [champion] = quality["variants"]
    assert champion["variant"] == "Champion"
    assert champion["labelled"] == len(dataset)
    assert champion["auc"] > 0.97
    assert champion["accuracy"] > 0.93
    assert aws.metric("LabelledRecords", Variant="Champion") == len(dataset)
    assert aws.metric("ModelAUC", Variant="Champion") == champion["auc"]
    assert aws.metric("ModelAccuracy", Variant="Champion") == champion["accuracy"]


def test_only_the_days_a_window_s_labels_can_arrive_on_are_read(aws, dataset, features, predict, monkeypatch):
    frame = dataset.head(300)
    aws.put_capture("Champion", START, traffic(frame, features, predict(frame)))
    labels = [{"inference_id": f"i-{i}", "label": int(t)} for i, t in enumerate(frame["target"])]
    # Labels of last week's traffic reuse ids (a client counter restarted): they must not be joined.
    stale = [{"inference_id": label["inference_id"], "label": 1 - label["label"]} for label in labels]
    ingest([("old", START - timedelta(days=7), stale), ("new", END, labels)])
    listed: list[str] = []
    real = job.list_keys

    def recording(s3: Any, bucket: str, prefix: str) -> Iterator[str]:
        listed.append(prefix)
        return real(s3, bucket, prefix)

    monkeypatch.setattr(job, "list_keys", recording)

    assert job.main(arguments(labels_uri=f"s3://{LAKE}/{LABELS_PREFIX}")) == 0

    quality = aws.report()["model_quality"]
    assert [p for p in listed if p.startswith(LABELS_PREFIX)] == [f"{LABELS_PREFIX}dt=2026-11-24/"]
    assert quality["days"] == ["2026-11-24"]
    assert quality["label_lines"] == len(labels)
    assert quality["variants"][0]["labelled"] == len(labels)
    assert quality["variants"][0]["accuracy"] > 0.9


def test_the_report_is_written_as_json_and_html_and_is_deterministic(aws, dataset, features, predict):
    aws.put_capture("Champion", START, traffic(dataset, features, predict(dataset)))

    assert job.main(arguments()) == 0
    first = aws.s3.get_object(Bucket=ARTIFACTS, Key=REPORT_KEY)
    body = first["Body"].read()
    page = aws.s3.get_object(Bucket=ARTIFACTS, Key=REPORT_KEY.replace(".json", ".html"))
    html = page["Body"].read().decode()
    assert job.main(arguments()) == 0

    assert aws.s3.get_object(Bucket=ARTIFACTS, Key=REPORT_KEY)["Body"].read() == body
    assert first["ContentType"] == "application/json"
    assert page["ContentType"].startswith("text/html")
    assert json.loads(body)["endpoint"] == ENDPOINT
    assert html.startswith("<!DOCTYPE html>")
    assert html.rstrip().endswith("</body></html>")
    for text in ("Drift report: no drift", "mean_radius", ENDPOINT, "Variants", "Champion", "2026-11-24T22:00:00Z"):
        assert text in html


def test_many_capture_files_are_listed_page_by_page(aws, dataset, features, predict, monkeypatch):
    # Pages of 10 keys instead of S3's 1,000: the job's own paging, without writing 1,050 files to moto (19 s).
    real_list_keys = job.list_keys

    class SmallPages:
        def __init__(self, s3: Any) -> None:
            self.s3 = s3

        def get_paginator(self, name: str) -> Any:
            paginator = self.s3.get_paginator(name)
            return SimpleNamespace(
                paginate=lambda **request: paginator.paginate(**request, PaginationConfig={"PageSize": 10})
            )

    monkeypatch.setattr(job, "list_keys", lambda s3, bucket, prefix: real_list_keys(SmallPages(s3), bucket, prefix))
    frame = dataset.head(35)
    for i, line in enumerate(traffic(frame, features, predict(frame))):
        aws.put_capture("Champion", START, [line], name=f"part-{i:05d}.jsonl")

    assert job.main(arguments()) == 0

    assert aws.report()["drift"]["rows"] == 35  # four pages, every file read once


def test_metrics_go_in_batches_within_the_api_s_limits(aws, dataset, features, predict, monkeypatch):
    aws.put_capture("Champion", START, traffic(dataset, features, predict(dataset)))
    calls: list[int] = []
    real = job.clients

    def counting_clients() -> job.Clients:
        made = real()
        cloudwatch = made.cloudwatch

        def put_metric_data(**request: Any) -> Any:
            calls.append(len(request["MetricData"]))
            return cloudwatch.put_metric_data(**request)

        return job.Clients(made.s3, made.ssm, SimpleNamespace(put_metric_data=put_metric_data), made.events)

    monkeypatch.setattr(job, "clients", counting_clients)
    monkeypatch.setattr(job, "METRICS_PER_REQUEST", 20)

    assert job.main(arguments()) == 0

    assert len(calls) > 1
    assert max(calls) <= 20
    listed = aws.cloudwatch.get_paginator("list_metrics").paginate(Namespace=NAMESPACE)
    metrics = [m for page in listed for m in page["Metrics"]]
    assert len(metrics) == sum(calls)
    assert all({"Endpoint", "Tenant", "Model"} <= {d["Name"] for d in m["Dimensions"]} for m in metrics)


def test_a_failed_event_entry_fails_the_job(aws, monkeypatch, capsys):
    real = job.clients

    def refusing_clients() -> job.Clients:
        made = real()
        refused = {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}]}
        return job.Clients(made.s3, made.ssm, made.cloudwatch, SimpleNamespace(put_events=lambda **_: refused))

    monkeypatch.setattr(job, "clients", refusing_clients)

    assert job.main(arguments()) == 1
    assert "InternalFailure" in capsys.readouterr().err


def test_an_aws_failure_exits_1(aws, capsys):
    assert job.main(arguments(report_uri="s3://no-such-bucket/reports/")) == 1  # the report cannot be written
    assert "AWS failed" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"tenant": None}, "--tenant"),
        ({"window_minutes": "0"}, "--window-minutes"),
        ({"window_minutes": "sixty"}, "--window-minutes"),
        ({"scheduled_time": "yesterday"}, "--scheduled-time"),
        ({"lag_minutes": "-5"}, "--lag-minutes"),
        ({"capture_uri": "https://example.com/capture/"}, "--capture-uri"),
        ({"example_baseline": f"s3://{ARTIFACTS}/assets/"}, "--example-baseline"),
        ({"endpoint_name": "bad name"}, "--endpoint-name"),
        ({"settings": f"s3://{ARTIFACTS}/assets/"}, "--settings"),
        ({"labels_uri": "labels/"}, "--labels-uri"),
    ],
)
def test_bad_arguments_exit_2_with_one_line_naming_the_argument(changes, named, capsys):
    assert job.main(arguments(**changes)) == 2

    err = capsys.readouterr().err
    assert named in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("pointer", ["Champion", "Champion=", "Champ ion=/p"])
def test_a_bad_or_repeated_pointer_exits_2(pointer, capsys):
    assert job.main([*arguments(), "--pointer", pointer]) == 2
    assert job.main([*arguments(), "--pointer", f"Champion={POINTER.format('Champion')}"]) == 2

    err = capsys.readouterr().err
    assert err.count("--pointer") == 2


BAD_SETTINGS = {
    "not JSON": (b"not json", "not JSON"),
    "an unknown key": (b'{"schema_version": 1, "bogus": 1}', "'bogus'"),
    "another version": (b'{"schema_version": 2}', "'schema_version'"),
    "a negative PSI": (b'{"schema_version": 1, "thresholds": {"default": {"psi": -1}}}', "'thresholds.default.psi'"),
    "a p-value of 2": (
        b'{"schema_version": 1, "thresholds": {"features": {"mean_radius": {"ks_p_value": 2}}}}',
        "'thresholds.features.mean_radius.ks_p_value'",
    ),
    "no rows": (b'{"schema_version": 1, "thresholds": {"min_rows": 0}}', "'thresholds.min_rows'"),
}


@pytest.mark.parametrize(("body", "named"), BAD_SETTINGS.values(), ids=BAD_SETTINGS.keys())
def test_a_bad_settings_document_exits_2_with_one_line_naming_its_key(aws, body, named, capsys):
    aws.s3.put_object(Bucket=ARTIFACTS, Key="assets/bad.json", Body=body)

    assert job.main(arguments(settings=f"s3://{ARTIFACTS}/assets/bad.json")) == 2

    err = capsys.readouterr().err
    assert named in err
    assert f"s3://{ARTIFACTS}/assets/bad.json" in err
    assert err.count("\n") == 1
    assert aws.events() == []


def test_a_missing_settings_document_exits_2(aws, capsys):
    assert job.main(arguments(settings=f"s3://{ARTIFACTS}/assets/none.json")) == 2
    assert "does not exist" in capsys.readouterr().err


def test_the_largest_settings_config_allows_reach_the_job_whole(aws):
    """40 named features (config's maximum) with 64-character names: no argument carries them, the document does."""
    from config.monitoring import MAX_NAMED_FEATURES, DriftThresholds, Monitoring
    from config.monitoring import FeatureThresholds as ConfiguredThresholds

    names = [f"f{i:02d}_" + "x" * 60 for i in range(MAX_NAMED_FEATURES)]
    configured = Monitoring(
        thresholds=DriftThresholds(
            features={
                name: ConfiguredThresholds(psi=0.1 + i / 100, ks_statistic=0.15, ks_p_value=0.001)
                for i, name in enumerate(names)
            },
            drifted_share=0.25,
            min_rows=500,
        )
    )
    uri = aws.settings(configured.settings_document())
    parsed = job.parse_arguments(arguments(settings=uri))

    thresholds = job.load_settings(parsed, aws.s3)

    assert all(len(argument) <= 256 for argument in arguments(settings=uri))
    assert sorted(thresholds.features) == names
    assert thresholds.of(names[-1]) == settings.FeatureThresholds(psi=0.49, ks_statistic=0.15, ks_p_value=0.001)
    assert (thresholds.drifted_share, thresholds.min_rows) == (0.25, 500)


def test_thresholds_map_onto_drift_thresholds():
    parsed = settings.parse_settings(
        json.dumps(settings_document(default={"psi": 0.3}, features={"mean_radius": {"ks_statistic": 0.2}}, min_rows=5))
    )

    assert parsed.default == settings.FeatureThresholds(psi=0.3, ks_statistic=0.1, ks_p_value=0.01)
    # A feature's missing keys come from the default section.
    assert parsed.of("mean_radius") == settings.FeatureThresholds(psi=0.3, ks_statistic=0.2, ks_p_value=0.01)
    assert (parsed.drifted_share, parsed.prediction_psi, parsed.min_rows) == (0.5, 0.2, 5)
    assert settings.parse_settings('{"schema_version": 1}') == settings.Thresholds()
