"""The drift monitor's core on the example tenant's dataset: baselines, captured traffic, drift and its report."""

from __future__ import annotations

import base64
import json

import numpy as np
import pandas as pd
import pytest

from config.loader import load_pipelines
from tests.conftest import ROOT

# isort: split
# After tests.unit.training.conftest, which puts the training image's code on the path.
from mlops_platform.monitoring.baseline import compute_baseline
from mlops_platform.monitoring.capture import MALFORMED_REASONS, CaptureWindow, read_capture
from mlops_platform.monitoring.drift import FeatureThresholds, Thresholds, compare

DATASET = ROOT / "data" / "example" / "breast-cancer.jsonl"
SHIFTED = ["mean_radius", "worst_texture", "area_error"]


@pytest.fixture(scope="module")
def features() -> dict[str, str]:
    [pipeline] = [p for p in load_pipelines(ROOT / "config" / "pipelines") if p.tenant == "example"]
    return {name: spec.type for name, spec in pipeline.dataset.features.items()}


@pytest.fixture(scope="module")
def training(features) -> pd.DataFrame:
    records = [json.loads(line)["record"] for line in DATASET.read_text().splitlines()]
    return pd.DataFrame(records)[list(features)]


def score(frame: pd.DataFrame) -> np.ndarray:
    """A stand-in model: deterministic, and its scores move when the mean radius does."""
    z = (frame["mean_radius"] - 14.0) / 3.5
    return (1 / (1 + np.exp(-z))).to_numpy()


@pytest.fixture(scope="module")
def baseline(training, features) -> dict:
    return compute_baseline(training, features, score(training))


def capture_line(rows: list[list], scores: list[float], *, fmt: str = "csv", base64_encoded: bool = False) -> str:
    """One line as SageMaker data capture writes it, with the body in our scoring API's JSON or in CSV."""
    if fmt == "csv":
        request = "\n".join(",".join("" if v is None else str(v) for v in row) for row in rows)
        response = "\n".join(str(s) for s in scores)
        content_types = ("text/csv", "text/csv")
    else:
        request = json.dumps({"instances": rows})
        response = json.dumps({"predictions": [{"score": s} for s in scores]})
        content_types = ("application/json", "application/json")

    def section(data: str, content_type: str, mode: str) -> dict:
        if base64_encoded:
            return {
                "observedContentType": content_type,
                "mode": mode,
                "data": base64.b64encode(data.encode()).decode(),
                "encoding": "BASE64",
            }
        encoding = "CSV" if content_type == "text/csv" else "JSON"
        return {"observedContentType": content_type, "mode": mode, "data": data, "encoding": encoding}

    return json.dumps(
        {
            "captureData": {
                "endpointInput": section(request, content_types[0], "INPUT"),
                "endpointOutput": section(response, content_types[1], "OUTPUT"),
            },
            "eventMetadata": {"eventId": "e", "inferenceId": "i-1", "inferenceTime": "2026-01-01T00:00:00Z"},
            "eventVersion": "0",
        }
    )


def window_of(frame: pd.DataFrame, scores: np.ndarray, *, variant: str = "AllTraffic", **options) -> CaptureWindow:
    rows = frame.to_numpy().tolist()
    lines = [capture_line(rows[i : i + 5], list(scores[i : i + 5]), **options) for i in range(0, len(rows), 5)]
    return read_capture(lines, list(frame.columns), variant=variant)


def test_a_resample_of_the_training_data_does_not_drift(baseline, training):
    live = training.sample(n=400, replace=True, random_state=7)

    report = compare(baseline, window_of(live, score(live)))

    assert report.rows == 400
    assert report.drifted_features == []
    assert not report.drift
    assert report.max_psi is not None
    assert report.max_psi < 0.1
    assert all(p.psi is not None and not p.drifted for p in report.predictions)


def test_shifted_features_and_only_those_drift(baseline, training):
    live = training.sample(n=400, replace=True, random_state=11)
    for name in SHIFTED:
        live[name] = live[name] + 2 * training[name].std()

    report = compare(baseline, window_of(live, score(training.loc[live.index])), Thresholds(drifted_share=0.05))

    assert sorted(report.drifted_features) == sorted(SHIFTED)
    assert report.drift
    assert report.drifted_share == pytest.approx(3 / 30)
    for feature in report.features:
        if feature.name in SHIFTED:
            assert feature.psi > 1
            assert feature.ks_statistic > 0.3
            assert feature.out_of_range_share > 0


def test_a_feature_with_its_own_threshold_flags_drift_alone(baseline, training):
    live = training.sample(n=400, replace=True, random_state=11)
    live["mean_radius"] = live["mean_radius"] + 2 * training["mean_radius"].std()
    scores = score(training.loc[live.index])

    default = compare(baseline, window_of(live, scores))
    watched = compare(
        baseline, window_of(live, scores), Thresholds(features={"mean_radius": FeatureThresholds(psi=0.5)})
    )

    assert default.drifted_features == watched.drifted_features == ["mean_radius"]
    assert not default.drift
    assert watched.drift


def test_prediction_shift_is_found_per_variant(baseline, training):
    champion = training.sample(n=300, replace=True, random_state=1)
    challenger = training.sample(n=300, replace=True, random_state=2)
    window = CaptureWindow.combine(
        [
            window_of(champion, score(champion), variant="Champion"),
            window_of(challenger, score(challenger) ** 4, variant="Challenger"),
        ]
    )

    report = compare(baseline, window)

    by_variant = {p.variant: p for p in report.predictions}
    assert by_variant["Challenger"].drifted
    assert not by_variant["Champion"].drifted
    assert by_variant["Champion"].rows == by_variant["Challenger"].rows == 300
    assert report.drift
    assert report.drifted_features == []


def test_csv_json_and_base64_bodies_read_the_same_rows(training):
    part = training.head(12)
    names = list(part.columns)
    scores = score(part)

    windows = [
        window_of(part, scores, fmt="csv"),
        window_of(part, scores, fmt="json"),
        window_of(part, scores, fmt="json", base64_encoded=True),
        window_of(part, scores, fmt="csv", base64_encoded=True),
    ]

    for window in windows:
        assert window.malformed == {}
        np.testing.assert_allclose(window.features[names].to_numpy(), part.to_numpy())
        np.testing.assert_allclose(window.predictions, scores)
        assert window.inference_ids == ["i-1"] * 12


def test_malformed_lines_are_counted_by_reason_not_raised(training):
    names = list(training.columns)
    row = training.iloc[0].tolist()
    good = capture_line([row], [0.5])
    event = json.loads(good)
    no_input = {"captureData": {"endpointOutput": event["captureData"]["endpointOutput"]}}
    xml = json.loads(good)
    xml["captureData"]["endpointInput"]["observedContentType"] = "application/xml"
    bad_base64 = json.loads(good)
    bad_base64["captureData"]["endpointInput"].update(data="@@not base64@@", encoding="BASE64")
    odd_encoding = json.loads(good)
    odd_encoding["captureData"]["endpointInput"]["encoding"] = "GZIP"
    lines = [
        good,
        "{not json",
        b"\xff\xfe",
        json.dumps(no_input),
        json.dumps(xml),
        json.dumps(bad_base64),
        json.dumps(odd_encoding),
        capture_line([row[:-1]], [0.5]),
        capture_line([row], [0.5, 0.6]),
        capture_line([row], [0.5], fmt="json").replace('\\"instances\\"', '\\"rows\\"'),
        "",
        good.encode(),
    ]

    window = read_capture(lines, names)

    assert window.rows == 2
    assert window.lines == 11
    assert window.malformed == {
        "malformed-json": 2,
        "missing-field": 1,
        "unsupported-content-type": 1,
        "undecodable": 1,
        "unsupported-encoding": 1,
        "wrong-column-count": 1,
        "prediction-count-mismatch": 1,
        "malformed-body": 1,
    }
    assert set(window.malformed) <= set(MALFORMED_REASONS)


def test_missing_values_and_type_mismatches_are_data_quality(baseline, training):
    live = training.sample(n=100, replace=True, random_state=3)
    rows = live.to_numpy().tolist()
    for row in rows[:10]:
        row[0] = None  # mean_radius missing
    for row in rows[:5]:
        row[1] = "high"  # mean_texture: a string where a double belongs
    lines = [capture_line([row], [0.5], fmt="json") for row in rows]

    report = compare(baseline, read_capture(lines, list(live.columns)))

    quality = {f.name: f for f in report.features}
    assert report.malformed == {}
    assert quality["mean_radius"].missing_rate == pytest.approx(0.1)
    assert quality["mean_texture"].type_mismatch_share == pytest.approx(0.05)
    assert quality["mean_area"].missing_rate == quality["mean_area"].type_mismatch_share == 0


def test_the_baseline_is_deterministic_small_and_json(training, features, baseline):
    again = compute_baseline(training.copy(), dict(features), score(training))
    encoded = json.dumps(baseline, sort_keys=True, allow_nan=False)

    assert encoded == json.dumps(again, sort_keys=True, allow_nan=False)
    assert len(encoded.encode()) < 50_000
    assert baseline["schema_version"] == 1
    summary = baseline["features"]["mean_radius"]
    assert summary["type"] == "double"
    assert summary["count"] == 569
    assert summary["missing_rate"] == 0
    assert len(summary["proportions"]) == len(summary["edges"]) + 1
    assert sum(summary["proportions"]) == pytest.approx(1, abs=1e-5)
    assert summary["proportions"][0] == summary["proportions"][-1] == 0  # nothing outside its own range
    assert baseline["predictions"]["count"] == 569


def test_constant_and_low_cardinality_features_get_a_bin_per_value():
    frame = pd.DataFrame(
        {"flag": [True, False, True, True], "constant": [3.0] * 4, "level": [1, 2, 2, None], "empty": [None] * 4}
    )
    kinds = {"flag": "boolean", "constant": "double", "level": "bigint", "empty": "double"}

    summary = compute_baseline(frame, kinds)["features"]

    assert summary["flag"]["edges"] == [0.0, 0.5, 1.0]
    assert summary["flag"]["proportions"] == [0.0, 0.25, 0.75, 0.0]
    assert summary["constant"]["edges"] == [3.0, 3.0]
    assert summary["constant"]["proportions"] == [0.0, 1.0, 0.0]
    assert summary["level"]["missing_rate"] == 0.25
    assert summary["level"]["proportions"] == [0.0, round(1 / 3, 6), round(2 / 3, 6), 0.0]
    assert summary["empty"]["edges"] == []
    assert summary["empty"]["missing_rate"] == 1.0


def test_the_report_writes_json_html_and_metrics_with_names_escaped(tmp_path):
    name = "<script>alert('x')</script>"
    frame = pd.DataFrame({name: np.linspace(0, 1, 200), "size": np.arange(200, dtype=float)})
    baseline = compute_baseline(frame, {name: "double", "size": "bigint"}, np.linspace(0, 1, 200))
    lines = [capture_line([[v, 1.5]], [0.5]) for v in np.linspace(0.5, 1.5, 50)] + ["{"]

    report = compare(baseline, read_capture(lines, [name, "size"], variant="Champion"))
    (tmp_path / "report.json").write_text(report.to_json())
    (tmp_path / "report.html").write_text(report.to_html())

    written = json.loads((tmp_path / "report.json").read_text())
    assert written["malformed"] == {"malformed-json": 1}
    assert [f["name"] for f in written["features"]] == [name, "size"]
    page = (tmp_path / "report.html").read_text()
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    size = {f.name: f for f in report.features}["size"]
    assert size.type_mismatch_share == 1.0  # 1.5 is no bigint
    metrics = {(m.name, tuple(sorted(m.dimensions.items()))): m.value for m in report.metrics({"Endpoint": "e"})}
    assert metrics[("MalformedRecords", (("Endpoint", "e"),))] == 1
    assert ("FeaturePSI", (("Endpoint", "e"), ("Feature", name))) in metrics
    assert ("PredictionPSI", (("Endpoint", "e"), ("Variant", "Champion"))) in metrics
    assert {"MaxPSI", "DriftedFeatureShare", "DriftDetected", "CapturedRecords"} <= {m[0] for m in metrics}
    assert all(np.isfinite(v) for v in metrics.values())
    datum = report.metrics()[0].datum()
    assert set(datum) == {"MetricName", "Dimensions", "Value", "Unit"}
