"""The drift monitor's job, run as plain Python against moto: S3 capture and reports, SSM pointers, metrics, events.

Traffic is the shipped dataset scored by the shipped example model, compared with the shipped
example baseline (models/example/xgboost/baseline.json), as the ``example`` endpoint would see it.
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
from tests.conftest import ROOT

# isort: split
# After tests.unit.training.conftest, which puts the training image's code on the path.
from mlops_training.algorithms import load_model
from mlops_training.monitoring import compute_baseline, job

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
CHALLENGER_MODEL_KEY = "models/example/run-7/output/model.tar.gz"
LABELS_PREFIX = "labels/example/"
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
    from mlops_training.paths import ProcessingPaths
    from mlops_training.prepare import prepare
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
def shipped_thresholds() -> str:
    """dev's monitoring thresholds, as the schedule rule passes them (mlops_constructs/drift_monitor.py)."""
    thresholds = load_config(ROOT / "config", selected_environments="dev").environment("dev").monitoring.thresholds
    return json.dumps(thresholds.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


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

    def point(self, variant: str, value: str) -> None:
        self.ssm.put_parameter(Name=POINTER.format(variant), Value=value, Type="String", Overwrite=True)

    def report(self) -> dict[str, Any]:
        return json.loads(self.s3.get_object(Bucket=ARTIFACTS, Key=REPORT_KEY)["Body"].read())

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
        "--window-end": "2026-11-24T23:00:00Z",
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
    aws, train_split, features, predict, shipped_thresholds
):
    # A bootstrap resample of the train split: traffic like training's, not training's own rows.
    dataset = train_split.sample(frac=1, replace=True, random_state=20261124).reset_index(drop=True)
    aws.put_capture("Champion", START, traffic(dataset, features, predict(dataset)))

    assert job.main(arguments(thresholds=shipped_thresholds)) == 0

    report = aws.report()
    assert report["drift"]["drift"] is False
    assert not [f["name"] for f in report["drift"]["features"] if f["drifted"]]
    assert report["drift"]["rows"] == len(dataset)
    assert report["drift"]["malformed"] == {}
    [prediction] = report["drift"]["predictions"]
    assert (prediction["variant"], prediction["rows"], prediction["drifted"]) == ("Champion", len(dataset), False)
    assert report["feature_baseline"] == {"variant": "Champion", "uri": f"s3://{ARTIFACTS}/{EXAMPLE_BASELINE_KEY}"}
    assert report["window"] == {"start": "2026-11-24T22:00:00Z", "end": "2026-11-24T23:00:00Z", "minutes": 60}
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

    assert job.main(arguments(thresholds=json.dumps({"drifted_share": 0.1}))) == 0

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

    assert job.main(arguments(thresholds=json.dumps(lax))) == 0
    assert aws.report()["drift"]["drift"] is False  # one feature of 30 is below the default share of 0.5

    watched = {**lax, "features": {"mean_radius": {"psi": 0.5}}, "default": {"psi": 50, "ks_statistic": 1}}
    assert job.main(arguments(thresholds=json.dumps(watched))) == 0
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


def test_a_window_that_does_not_start_on_the_hour(aws, dataset, features, predict):
    frame = dataset.head(20)
    scores = predict(frame)
    rows = frame[features].to_numpy().tolist()
    lines = [
        capture_line(rows[i], scores[i], START + timedelta(minutes=3 * i), f"i-{i}") for i in range(20)
    ]  # 22:00 to 22:57
    aws.put_capture("Champion", START, lines)

    assert job.main(arguments(window_end="2026-11-24T23:00:00+00:00", window_minutes="30")) == 0

    assert aws.report()["drift"]["rows"] == 10  # 22:30 to 22:57
    assert aws.report()["window"] == {"start": "2026-11-24T22:30:00Z", "end": "2026-11-24T23:00:00Z", "minutes": 30}


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


def test_labels_give_model_quality_per_variant(aws, dataset, features, predict):
    aws.put_capture("Champion", START, traffic(dataset, features, predict(dataset)))
    labels = [json.dumps({"inference_id": f"i-{i}", "label": int(t)}) for i, t in enumerate(dataset["target"])]
    half = len(labels) // 2
    extra = ['{"inference_id": "unknown", "label": 1}', "not json", '{"inference_id": "i-0", "label": "yes"}']
    aws.s3.put_object(Bucket=LAKE, Key=f"{LABELS_PREFIX}dt=2026-11-24/a.jsonl", Body="\n".join(labels[:half]))
    aws.s3.put_object(Bucket=LAKE, Key=f"{LABELS_PREFIX}dt=2026-11-25/b.jsonl", Body="\n".join(labels[half:] + extra))

    assert job.main(arguments(labels_uri=f"s3://{LAKE}/{LABELS_PREFIX}")) == 0

    quality = aws.report()["model_quality"]
    assert (quality["label_lines"], quality["malformed_labels"], quality["ambiguous_rows"]) == (len(dataset) + 3, 2, 0)
    [champion] = quality["variants"]
    assert champion["variant"] == "Champion"
    assert champion["labelled"] == len(dataset)
    assert champion["auc"] > 0.97
    assert champion["accuracy"] > 0.93
    assert aws.metric("LabelledRecords", Variant="Champion") == len(dataset)
    assert aws.metric("ModelAUC", Variant="Champion") == champion["auc"]
    assert aws.metric("ModelAccuracy", Variant="Champion") == champion["accuracy"]


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


def test_many_capture_files_are_listed_page_by_page(aws, dataset, features, predict):
    frame = pd.concat([dataset] * 2, ignore_index=True).head(1050)
    for i, line in enumerate(traffic(frame, features, predict(frame))):
        aws.put_capture("Champion", START, [line], name=f"part-{i:05d}.jsonl")

    assert job.main(arguments()) == 0

    assert aws.report()["drift"]["rows"] == 1050


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
        ({"window_end": "yesterday"}, "--window-end"),
        ({"capture_uri": "https://example.com/capture/"}, "--capture-uri"),
        ({"example_baseline": f"s3://{ARTIFACTS}/assets/"}, "--example-baseline"),
        ({"endpoint_name": "bad name"}, "--endpoint-name"),
        ({"thresholds": "not json"}, "--thresholds"),
        ({"thresholds": '{"bogus": 1}'}, "'bogus'"),
        ({"thresholds": '{"default": {"psi": -1}}'}, "'default.psi'"),
        ({"thresholds": '{"features": {"mean_radius": {"ks_p_value": 2}}}'}, "'features.mean_radius.ks_p_value'"),
        ({"thresholds": '{"min_rows": 0}'}, "'min_rows'"),
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


def test_thresholds_map_onto_drift_thresholds():
    parsed = job.parse_thresholds(
        json.dumps({"default": {"psi": 0.3}, "features": {"mean_radius": {"ks_statistic": 0.2}}, "min_rows": 5})
    )

    assert parsed.default == job.FeatureThresholds(psi=0.3, ks_statistic=0.1, ks_p_value=0.01)
    # A feature's missing keys come from the default section.
    assert parsed.of("mean_radius") == job.FeatureThresholds(psi=0.3, ks_statistic=0.2, ks_p_value=0.01)
    assert (parsed.drifted_share, parsed.prediction_psi, parsed.min_rows) == (0.5, 0.2, 5)
    assert job.parse_thresholds("{}") == job.Thresholds()
