"""Real tabular data end to end (issue 16): scikit-learn's datasets through the published tenant config,
prepare, training (both algorithms) and serving (every content type), with the names the data has.

- wine: 3 classes, names such as ``od280/od315_of_diluted_wines``;
- breast cancer: binary, names with spaces (``mean radius``), gaps in several columns, a string column;
- diabetes: regression.
"""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

from config.tenants import PipelineConfig
from mlops_platform.data.prepare import main as prepare
from mlops_platform.sagemaker_paths import ProcessingPaths, SageMakerPaths
from mlops_platform.serving import handler
from mlops_platform.serving.model import load
from mlops_platform.serving.settings import Settings
from mlops_platform.training.train import main as train

DAY = "2026-01-01"


def wine():
    data = load_wine(as_frame=True)
    frame = data.frame.rename(columns={"target": "class"})
    return frame, "class", "multiclass", "validation:f1_macro", {str(name): "double" for name in data.feature_names}


def breast_cancer():
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.copy()
    rng = np.random.default_rng(0)
    for column in ("mean radius", "worst texture", "mean area", "area error", "mean symmetry"):
        frame.loc[rng.random(len(frame)) < 0.17, column] = np.nan  # gaps in five columns
    frame["carrier"] = np.where(frame["mean texture"] > 19, "north", np.where(frame["mean texture"] > 16, "east", "x"))
    features = {str(name): "double" for name in data.feature_names} | {"carrier": "categorical"}
    return frame, "target", "binary", "validation:auc", features


def diabetes():
    data = load_diabetes(as_frame=True)
    return data.frame, "target", "regression", "validation:rmse", {str(name): "double" for name in data.feature_names}


DATASETS = {"wine": wine, "breast-cancer": breast_cancer, "diabetes": diabetes}


def tenant(name: str, target: str, problem_type: str, metric: str, features: dict) -> dict:
    direction = "maximize" if metric.endswith(("auc", "f1_macro")) else "minimize"
    return PipelineConfig.model_validate(
        {
            "tenant": name,
            "dataset": {"name": name, "target": target, "problem_type": problem_type, "features": features},
            "models": [{"name": "xgboost", "algorithm": "xgboost"}, {"name": "linear", "algorithm": "linear"}],
            "objective": {
                "metric": metric,
                "direction": direction,
                "approval_threshold": 0.5 if direction == "maximize" else 100,
            },
            "training": {"instance_type": "ml.m5.large"},
            "batch_prediction": {"dataset": name},
        }
    ).published()


def raw_lines(frame, target: str) -> bytes:
    lines = []
    for i, row in enumerate(frame.to_dict("records")):
        record = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
        if isinstance(record.get(target), float) and float(record[target]).is_integer() and target != "target":
            record[target] = int(record[target])
        lines.append(json.dumps({"record_id": f"r-{i}", "received_at": f"{DAY}T00:00:00Z", "record": record}))
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture(scope="module", params=list(DATASETS))
def trained(request, tmp_path_factory):
    name = request.param
    frame, target, problem_type, metric, features = DATASETS[name]()
    config = tenant(name, target, problem_type, metric, features)
    root = tmp_path_factory.mktemp(name)
    paths = ProcessingPaths(root=root / "processing", message=root / "message")
    (paths.raw / f"dt={DAY}").mkdir(parents=True)
    (paths.raw / f"dt={DAY}" / "a.jsonl").write_bytes(raw_lines(frame, target))
    published = root / f"{name}.json"
    published.write_text(json.dumps(config))
    assert prepare(["--config", str(published), "--run-id", "run-1", "--day", DAY], paths) == 0, (
        paths.message.read_text()
    )
    models = {}
    for algorithm in ("xgboost", "linear"):
        job = SageMakerPaths(root=root / algorithm, checkpoints=root / algorithm / "checkpoints")
        for channel in ("train", "validation"):
            job.channel(channel).mkdir(parents=True)
            (job.channel(channel) / "part.parquet").write_bytes(
                (paths.features / f"run-1-{channel}.parquet").read_bytes()
            )
        job.hyperparameters.parent.mkdir(parents=True, exist_ok=True)
        hyperparameters = {"mlops_algorithm": algorithm, "mlops_problem_type": problem_type, "mlops_target": target}
        hyperparameters |= {"num_round": "15"} if algorithm == "xgboost" else {"epochs": "5"}
        job.hyperparameters.write_text(json.dumps(hyperparameters))
        assert train(job) == 0, job.failure.read_text() if job.failure.exists() else ""
        models[algorithm] = job.model
    return name, frame, target, problem_type, features, models, json.loads((paths.report / "report.json").read_text())


def test_prepare_keeps_every_row_of_the_public_datasets(trained):
    _, frame, *_, report = trained
    assert (report["rows_read"], report["valid"], report["rejected"]) == (len(frame), len(frame), 0)


@pytest.mark.parametrize("algorithm", ["xgboost", "linear"])
def test_the_artifact_records_every_feature_s_type_categories_and_the_classes(trained, algorithm):
    name, _, _, problem_type, features, models, _ = trained
    metadata = json.loads((models[algorithm] / "metadata.json").read_text())

    assert metadata["features"] == list(features)
    assert [f["type"] for f in metadata["schema"]] == list(features.values())
    if name == "breast-cancer":
        assert next(f for f in metadata["schema"] if f["name"] == "carrier")["categories"] == ["east", "north", "x"]
        assert next(f for f in metadata["schema"] if f["name"] == "mean radius")["column"] == "mean_radius"
    assert (
        metadata["classes"] == {"multiclass": ["0", "1", "2"], "binary": ["0", "1"], "regression": None}[problem_type]
    )
    assert (
        f"validation:{ {'multiclass': 'f1_macro', 'binary': 'auc', 'regression': 'rmse'}[problem_type] }"
        in metadata["metrics"]
    )
    if algorithm == "linear":
        assert not list(models[algorithm].glob("*.joblib"))  # numbers as JSON, nothing that runs code on load


def awkward_rows(features: dict) -> list[dict]:
    """A row with a missing cell and an unseen category, and a row with an absent key."""
    names = list(features)
    first: dict = dict.fromkeys(names, 1.0)
    first[names[0]] = None
    if "carrier" in features:
        first["carrier"] = "never-seen"
    second: dict = dict.fromkeys(names[1:], 0.5)
    if "carrier" in features:
        second["carrier"] = "north"
    return [first, second]


def csv_body(features: dict, rows: list[dict]) -> bytes:
    cells = lambda row: ",".join("" if row.get(n) is None else str(row[n]) for n in features)  # noqa: E731
    return "".join(cells(row) + "\n" for row in rows).encode()


@pytest.mark.parametrize("algorithm", ["xgboost", "linear"])
@pytest.mark.parametrize("content_type", ["text/csv", "application/json", "application/jsonlines"])
def test_a_row_with_a_missing_cell_and_an_unseen_category_scores_in_every_content_type(
    trained, algorithm, content_type
):
    _, _, _, problem_type, features, models, _ = trained
    model = load(models[algorithm])
    rows = awkward_rows(features)
    body = {
        "text/csv": csv_body(features, rows),
        "application/json": orjson.dumps({"instances": rows}),
        "application/jsonlines": b"".join(orjson.dumps(row) + b"\n" for row in rows),
    }[content_type]

    for explain in ("", "explain=true"):
        request = handler.Request(
            "POST", "/invocations", query=explain, content_type=content_type, accept="application/json", body=body
        )
        response = handler.handle(request, model, Settings())

        assert response.status == 200, response.body
        [first, second] = orjson.loads(response.body)["predictions"]
        if problem_type == "multiclass":
            assert set(first["probabilities"]) == {"0", "1", "2"}
            assert sum(first["probabilities"].values()) == pytest.approx(1, abs=1e-5)
            assert first["label"] == max(first["probabilities"], key=first["probabilities"].get)
            if explain:
                assert set(first["contributions"]) == {"0", "1", "2"}
                assert set(first["contributions"]["0"]) == {*features, "bias"}
        else:
            assert np.isfinite(first["score"])
            assert np.isfinite(second["score"])
            if explain:
                assert set(first["contributions"]) == {*features, "bias"}


@pytest.mark.parametrize("trained", ["wine"], indirect=True)  # the multiclass one of DATASETS
def test_csv_answers_of_a_multiclass_model_carry_the_label_and_each_probability(trained):
    _, _, _, problem_type, features, models, _ = trained
    assert problem_type == "multiclass"
    model = load(models["xgboost"])
    request = handler.Request(
        "POST", "/invocations", content_type="text/csv", body=csv_body(features, awkward_rows(features))
    )

    response = handler.handle(request, model, Settings())

    label, *probabilities = response.body.decode().splitlines()[0].split(",")
    assert label in {"0", "1", "2"}
    assert len(probabilities) == 3
