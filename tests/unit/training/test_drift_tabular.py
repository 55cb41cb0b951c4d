"""The drift chain on real tabular data (issue 16): a 3-class model with a categorical feature and gaps.

scikit-learn's wine set (names such as ``od280/od315_of_diluted_wines``) with a string column and
missing cells goes through the real prepare and train entry points; the run's feature schema is the
one evaluation writes (``evaluation.documents.feature_schema``); the baseline comes from the baseline
job's own entry point on the held-out splits; the capture lines hold the requests and the answers of
the inference server itself (``serving.handler``), in CSV and JSON; the drift monitor's reader and
comparison read them. Unshifted traffic does not drift; shifted traffic drifts, per class and on the
categories.
"""

from __future__ import annotations

import base64
import json
import tarfile

import numpy as np
import orjson
import pandas as pd
import pytest
from sklearn.datasets import load_wine

from config.tenants import PipelineConfig
from mlops_platform.data.prepare import main as prepare
from mlops_platform.evaluation.documents import feature_schema
from mlops_platform.monitoring.baseline import categorical_features, prediction_classes
from mlops_platform.monitoring.baseline_job import main as baseline_job
from mlops_platform.monitoring.capture import read_capture
from mlops_platform.monitoring.drift import compare
from mlops_platform.sagemaker_paths import ProcessingPaths, SageMakerPaths
from mlops_platform.schema.columns import restricted_name
from mlops_platform.serving import handler
from mlops_platform.serving.model import load
from mlops_platform.serving.settings import Settings
from mlops_platform.training.train import main as train

DAY = "2026-01-01"
CLASSES = ["0", "1", "2"]
REGIONS = ("north", "east", "x")


def wine() -> tuple[pd.DataFrame, dict[str, str]]:
    data = load_wine(as_frame=True)
    frame = data.frame.rename(columns={"target": "class"})
    rng = np.random.default_rng(3)
    frame["region"] = rng.choice(REGIONS, size=len(frame), p=[0.5, 0.3, 0.2])
    for column in ("alcohol", "magnesium", "region"):
        frame[column] = frame[column].astype(object).where(rng.random(len(frame)) >= 0.1, None)  # 10% gaps
    return frame, {str(name): "double" for name in data.feature_names} | {"region": "categorical"}


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """The wine run's baseline, model and held-out rows, as each stage's own code leaves them."""
    root = tmp_path_factory.mktemp("wine-drift")
    frame, features = wine()
    config = PipelineConfig.model_validate(
        {
            "tenant": "wine",
            "dataset": {"name": "wine", "target": "class", "problem_type": "multiclass", "features": features},
            "models": [{"name": "xgboost", "algorithm": "xgboost"}],
            "objective": {"metric": "validation:f1_macro", "direction": "maximize", "approval_threshold": 0.5},
            "training": {"instance_type": "ml.m5.large"},
            "batch_prediction": {"dataset": "wine"},
        }
    ).published()
    prepared = ProcessingPaths(root=root / "processing", message=root / "message")
    (prepared.raw / f"dt={DAY}").mkdir(parents=True)
    lines = [
        json.dumps({"record_id": f"r-{i}", "received_at": f"{DAY}T00:00:00Z", "record": record})
        for i, record in enumerate(frame.astype(object).where(frame.notna(), None).to_dict("records"))
    ]
    (prepared.raw / f"dt={DAY}" / "a.jsonl").write_text("\n".join(lines) + "\n")
    published = root / "wine.json"
    published.write_text(json.dumps(config))
    assert prepare(["--config", str(published), "--run-id", "run-1", "--day", DAY], prepared) == 0

    job = SageMakerPaths(root=root / "ml", checkpoints=root / "ml" / "checkpoints")
    for channel in ("train", "validation"):
        job.channel(channel).mkdir(parents=True)
        (job.channel(channel) / "part.parquet").write_bytes(
            (prepared.features / f"run-1-{channel}.parquet").read_bytes()
        )
    job.hyperparameters.parent.mkdir(parents=True, exist_ok=True)
    job.hyperparameters.write_text(
        json.dumps(
            {
                "mlops_algorithm": "xgboost",
                "mlops_problem_type": "multiclass",
                "mlops_target": "class",
                "num_round": "15",
            }
        )
    )
    assert train(job) == 0
    archive = root / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as bundle:
        for file in sorted(job.model.iterdir()):
            bundle.add(file, arcname=file.name)

    holdout = root / "holdout"
    holdout.mkdir()
    for split in ("validation", "test"):
        (holdout / f"run-1-{split}.parquet").write_bytes((prepared.features / f"run-1-{split}.parquet").read_bytes())
    schema = root / "feature-schema.json"
    schema.write_text(json.dumps(feature_schema(config)))
    processing = ProcessingPaths(root=root / "baseline", message=root / "baseline-message")
    arguments = ["--model", str(archive), "--training-data", str(prepared.features / "run-1-train.parquet")]
    arguments += ["--holdout-data", str(holdout), "--schema", str(schema), "--output", str(root / "out")]
    assert baseline_job(arguments, processing) == 0, processing.message.read_text()

    baseline = json.loads((root / "out" / "baseline.json").read_text())
    held_out = pd.concat([pd.read_parquet(p) for p in sorted(holdout.glob("*.parquet"))], ignore_index=True)
    # Back to the tenant's own column names, as a client sends them.
    held_out = held_out.rename(columns={restricted_name(name): name for name in features})[list(features)]
    return baseline, load(job.model), held_out, features


def captured(model, rows: pd.DataFrame, features: dict[str, str]) -> list[bytes]:
    """Capture lines of the server's answers: CSV for half the requests, JSON for the other half."""
    lines = []
    for start in range(0, len(rows), 5):
        part = rows.iloc[start : start + 5].astype(object).where(rows.iloc[start : start + 5].notna(), None)
        if start % 10:
            body = "".join(
                ",".join("" if v is None else str(v) for v in row) + "\n" for row in part.to_numpy().tolist()
            )
            request = handler.Request(
                "POST", "/invocations", content_type="text/csv", accept="text/csv", body=body.encode()
            )
        else:
            instances = [dict(zip(features, row, strict=True)) for row in part.to_numpy().tolist()]
            body = orjson.dumps({"instances": instances}).decode()
            request = handler.Request(
                "POST", "/invocations", content_type="application/json", accept="application/json", body=body.encode()
            )
        response = handler.handle(request, model, Settings())
        assert response.status == 200, response.body
        lines.append(
            json.dumps(
                {
                    "captureData": {
                        "endpointInput": {
                            "observedContentType": request.content_type,
                            "mode": "INPUT",
                            "data": body,
                            "encoding": "CSV",
                        },
                        "endpointOutput": {
                            "observedContentType": request.accept,
                            "mode": "OUTPUT",
                            "data": base64.b64encode(response.body).decode(),
                            "encoding": "BASE64",
                        },
                    },
                    "eventMetadata": {"eventId": f"e-{start}", "inferenceTime": f"{DAY}T00:00:00Z"},
                    "eventVersion": "0",
                }
            ).encode()
        )
    return lines


def window_of(baseline, lines):
    return read_capture(
        lines,
        baseline["feature_order"],
        categorical=categorical_features(baseline),
        classes=prediction_classes(baseline),
    )


def test_the_baseline_holds_category_frequencies_missing_rates_and_each_class_s_probability(chain):
    baseline, _, _, features = chain

    region = baseline["features"]["region"]
    assert region["type"] == "categorical"
    assert region["categories"] == sorted(REGIONS)
    assert sum(region["proportions"]) == pytest.approx(1, abs=1e-5)
    assert region["proportions"][-1] == 0.0  # the unseen categories' share
    assert 0.03 < region["missing_rate"] < 0.2
    assert 0.03 < baseline["features"]["alcohol"]["missing_rate"] < 0.2
    assert baseline["features"]["od280/od315_of_diluted_wines"]["type"] == "double"
    assert baseline["feature_order"] == list(features)
    predictions = baseline["predictions"]
    assert predictions["type"] == "multiclass"
    assert list(predictions["classes"]) == CLASSES
    assert all(0 <= s["min"] <= s["max"] <= 1 for s in predictions["classes"].values())


def test_unshifted_traffic_read_from_the_server_s_answers_does_not_drift(chain):
    baseline, model, held_out, features = chain
    lines = captured(model, held_out, features)

    window = window_of(baseline, lines)
    report = compare(baseline, window)

    assert not window.malformed
    assert window.rows == len(held_out) >= 30
    assert window.predictions.shape == (len(held_out), 3)
    np.testing.assert_allclose(window.predictions.sum(axis=1), 1, atol=1e-5)
    region = next(f for f in report.features if f.name == "region")
    assert region.type_mismatch_share == 0.0
    assert region.out_of_range_share == 0.0
    assert region.missing_rate == pytest.approx(held_out["region"].isna().mean(), abs=1e-6)
    assert not region.drifted, region
    # Each class's probability read in its place: the model's own scores of these rows, class by class.
    encoding = model.metadata.encoding
    matrix = encoding.frame_matrix(held_out.rename(columns=dict(zip(encoding.names, encoding.columns, strict=True))))
    np.testing.assert_allclose(window.predictions, model.score(matrix), rtol=1e-6, atol=1e-7)
    assert [(p.label, p.drifted) for p in report.predictions] == [(c, False) for c in CLASSES]
    # 54 rows against 10 bins: PSI's sampling noise alone passes 0.2 on some numeric features, so those
    # are judged by the tie-aware KS here, which accounts for the window's size.
    assert not [f.name for f in report.features if "ks" in f.reasons]


def test_shifted_traffic_drifts_on_the_categories_and_per_class(chain):
    baseline, model, held_out, features = chain
    shifted = held_out.copy()
    shifted["region"] = np.where(np.arange(len(shifted)) % 4, "x", "never-seen")  # unseen and moved
    for name in ("alcohol", "flavanoids", "proline", "color_intensity", "od280/od315_of_diluted_wines"):
        shifted[name] = pd.to_numeric(shifted[name]) * 1.6

    report = compare(baseline, window_of(baseline, captured(model, shifted, features)))

    region = next(f for f in report.features if f.name == "region")
    assert region.drifted
    assert set(region.reasons) == {"psi", "chi2"}
    assert region.out_of_range_share == pytest.approx(0.25, abs=0.03)
    assert (region.linf or 0) > 0.4
    assert (region.chi2_p_value if region.chi2_p_value is not None else 1) < 0.01
    assert any(p.drifted for p in report.predictions)
    assert {p.label for p in report.predictions} == set(CLASSES)
    metrics = {(m.name, m.dimensions.get("Class")) for m in report.metrics()}
    assert {("PredictionPSI", c) for c in CLASSES} <= metrics
    assert report.drift
