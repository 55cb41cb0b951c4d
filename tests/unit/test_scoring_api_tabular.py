"""The scoring API over real tabular models (issue 16): rows with nulls, strings and unseen categories go
through API Gateway's schema, the handler and the async worker to the inference server, and its answers
(``score``, or ``label`` and ``probabilities`` for multiclass) come back as the server wrote them.

The endpoint is the inference server itself, in-process: models trained by the real prepare and train
entry points on scikit-learn's datasets, served by ``mlops_platform.serving.app``, behind a SageMaker
runtime client that forwards InvokeEndpoint's body, content type and custom attributes to it and turns
its 4xx into SageMaker's ModelError. So the API reads the bytes the server's own encoder wrote, not a
hand-typed answer. DynamoDB and SQS are moto's.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError
from botocore.response import StreamingBody
from moto import mock_aws
from sklearn.datasets import load_diabetes, load_wine

from mlops_platform.data.prepare import main as prepare
from mlops_platform.sagemaker_paths import ProcessingPaths, SageMakerPaths
from mlops_platform.serving.api.endpoint import read_predictions
from mlops_platform.serving.app import create_app
from mlops_platform.serving.model import load
from mlops_platform.serving.settings import Settings
from mlops_platform.training.train import main as train
from tests.conftest import load_handler
from tests.unit.inference.test_app import run
from tests.unit.test_scoring_api import api_event, call, create_resources, load_worker, scoring_environment
from tests.unit.test_scoring_worker import receive, work
from tests.unit.test_tabular_data import DAY, raw_lines, tenant

UNSEEN = "atlantis"  # a region training never saw


def wine_with_regions():
    """Wine's 3 classes, a categorical ``region``, gaps in two columns, names such as
    ``od280/od315_of_diluted_wines``."""
    data = load_wine(as_frame=True)
    frame = data.frame.rename(columns={"target": "class"})
    frame["region"] = np.where(frame["alcohol"] > 13, "north", np.where(frame["alcohol"] > 12.3, "east", "south"))
    rng = np.random.default_rng(1)
    for column in ("magnesium", "od280/od315_of_diluted_wines"):
        frame.loc[rng.random(len(frame)) < 0.15, column] = np.nan
    features = {str(name): "double" for name in data.feature_names} | {"region": "categorical"}
    return frame, "class", "multiclass", "validation:f1_macro", features


def diabetes():
    data = load_diabetes(as_frame=True)
    return data.frame, "target", "regression", "validation:rmse", {str(name): "double" for name in data.feature_names}


def train_model(root: Path, dataset) -> tuple[Path, dict[str, str]]:
    """The XGBoost model of ``dataset`` as the real prepare and train jobs write it; its directory and features."""
    frame, target, problem_type, metric, features = dataset()
    paths = ProcessingPaths(root=root / "processing", message=root / "message")
    (paths.raw / f"dt={DAY}").mkdir(parents=True)
    (paths.raw / f"dt={DAY}" / "a.jsonl").write_bytes(raw_lines(frame, target))
    published = root / "tenant.json"
    published.write_text(json.dumps(tenant("tabular", target, problem_type, metric, features)))
    assert prepare(["--config", str(published), "--run-id", "run-1", "--day", DAY], paths) == 0
    job = SageMakerPaths(root=root / "ml", checkpoints=root / "ml" / "checkpoints")
    for channel in ("train", "validation"):
        job.channel(channel).mkdir(parents=True)
        (job.channel(channel) / "part.parquet").write_bytes((paths.features / f"run-1-{channel}.parquet").read_bytes())
    job.hyperparameters.parent.mkdir(parents=True, exist_ok=True)
    job.hyperparameters.write_text(
        json.dumps(
            {"mlops_algorithm": "xgboost", "mlops_problem_type": problem_type, "mlops_target": target, "num_round": "5"}
        )
    )
    assert train(job) == 0
    return job.model, features


@pytest.fixture(scope="module")
def multiclass(tmp_path_factory):
    return train_model(tmp_path_factory.mktemp("wine"), wine_with_regions)


@pytest.fixture(scope="module")
def regression(tmp_path_factory):
    return train_model(tmp_path_factory.mktemp("diabetes"), diabetes)


class ServedRuntime:
    """A sagemaker-runtime client whose endpoint is the inference server's ASGI app, in-process."""

    def __init__(self, model_dir: Path) -> None:
        self.app = create_app(load(model_dir), Settings())
        self.answers: list[bytes] = []  # each body the server answered, as it wrote it

    def invoke_endpoint(self, **parameters: Any) -> dict[str, Any]:
        status, body = self.post(
            parameters["Body"].encode(),
            parameters["ContentType"],
            parameters["Accept"],
            parameters.get("CustomAttributes"),
        )
        if status >= 400:
            # What InvokeEndpoint raises when the container answers 4xx or 5xx.
            raise ClientError(
                {
                    "Error": {"Code": "ModelError", "Message": f"Received client error ({status}) from primary"},
                    "OriginalStatusCode": status,
                    "OriginalMessage": body.decode(),
                },
                "InvokeEndpoint",
            )
        self.answers.append(body)
        return {
            "Body": StreamingBody(io.BytesIO(body), len(body)),
            "ContentType": parameters["Accept"],
            "InvokedProductionVariant": "Champion",
        }

    def post(self, body: bytes, content_type: str, accept: str, attributes: str | None) -> tuple[int, bytes]:
        headers = [(b"content-type", content_type.encode()), (b"accept", accept.encode())]
        headers.append((b"content-length", str(len(body)).encode()))
        if attributes:
            headers.append((b"x-amzn-sagemaker-custom-attributes", attributes.encode()))
        scope = {"type": "http", "method": "POST", "path": "/invocations", "query_string": b"", "headers": headers}
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        run(self.app(scope, receive, send))
        return sent[0]["status"], sent[1]["body"]


def awkward_rows(features: dict[str, str]) -> list[dict[str, Any]]:
    """Rows keyed by the source names: a null and an unseen category; an absent key and a boolean."""
    names = [name for name in features if features[name] == "double"]
    first: dict[str, Any] = dict.fromkeys(names, 1.5)
    first[names[0]] = None
    second: dict[str, Any] = dict.fromkeys(names[1:], 0.5)
    second[names[-1]] = True  # a boolean where a number is wanted: 1
    if "region" in features:
        first["region"], second["region"] = UNSEEN, "north"
    return [first, second]


def as_arrays(features: dict[str, str], rows: list[dict[str, Any]]) -> list[list[Any]]:
    """The same rows in the model's feature order, an absent key as null."""
    return [[row.get(name) for name in features] for row in rows]


@pytest.fixture
def resources():
    with mock_aws():
        yield create_resources()


@pytest.fixture
def api(resources, monkeypatch):
    scoring_environment(monkeypatch, resources)
    return load_handler("scoring")


@pytest.fixture
def worker(resources, monkeypatch):
    scoring_environment(monkeypatch, resources)
    return load_worker()


def served(api, model) -> ServedRuntime:
    runtime = ServedRuntime(model[0])
    api.scoring.runtime = runtime
    return runtime


def assert_multiclass(predictions: list[dict[str, Any]], features: dict[str, str], *, explain: bool) -> None:
    for prediction in predictions:
        probabilities = prediction["probabilities"]
        assert set(probabilities) == {"0", "1", "2"}
        assert sum(probabilities.values()) == pytest.approx(1, abs=1e-5)
        assert prediction["label"] == max(probabilities, key=probabilities.get)
        if explain:
            assert set(prediction["contributions"]) == {"0", "1", "2"}
            assert set(prediction["contributions"]["1"]) == {*features, "bias"}
        else:
            assert "contributions" not in prediction


# POST /score.


@pytest.mark.parametrize("explain", [False, True])
@pytest.mark.parametrize("shape", ["objects", "arrays"])
def test_a_multiclass_endpoint_answers_a_null_and_an_unseen_category_with_each_class_s_probability(
    api, multiclass, shape, explain
):
    runtime = served(api, multiclass)
    rows = awkward_rows(multiclass[1])
    instances = rows if shape == "objects" else as_arrays(multiclass[1], rows)

    status, body, _ = call(
        api, api_event("POST", "/endpoints/example/score", {"instances": instances, "explain": explain})
    )

    assert status == 200, body
    [answer] = runtime.answers
    assert body["predictions"] == json.loads(answer)["predictions"]  # passed on as the server wrote them
    assert_multiclass(body["predictions"], multiclass[1], explain=explain)


@pytest.mark.parametrize("explain", [False, True])
def test_a_regression_endpoint_answers_rows_with_nulls_with_a_score(api, regression, explain):
    runtime = served(api, regression)

    status, body, _ = call(
        api,
        api_event("POST", "/endpoints/example/score", {"instances": awkward_rows(regression[1]), "explain": explain}),
    )

    assert status == 200, body
    assert body["predictions"] == json.loads(runtime.answers[0])["predictions"]
    for prediction in body["predictions"]:
        assert np.isfinite(prediction["score"])
        assert ("contributions" in prediction) is explain


def test_a_value_the_model_cannot_read_is_the_model_s_400_not_a_500(api, multiclass):
    served(api, multiclass)
    row = awkward_rows(multiclass[1])[1] | {"alcohol": "strong"}

    status, body, _ = call(api, api_event("POST", "/endpoints/example/score", {"instances": [row]}))

    assert status == 400
    assert "'alcohol'" in body["message"]
    assert "is not a number" in body["message"]


def test_an_unknown_feature_name_is_the_model_s_400(api, multiclass):
    served(api, multiclass)

    status, body, _ = call(api, api_event("POST", "/endpoints/example/score", {"instances": [{"colour": "red"}]}))

    assert status == 400
    assert "unknown feature 'colour'" in body["message"]


# The read path on its own: every answer the server writes is read as it is.


@pytest.mark.parametrize("model", ["multiclass", "regression"])
@pytest.mark.parametrize("explain", [None, "explain=true"])
def test_read_predictions_takes_the_server_s_own_answers_unchanged(request, model, explain):
    directory, features = request.getfixturevalue(model)
    rows = awkward_rows(features)
    status, answer = ServedRuntime(directory).post(
        json.dumps({"instances": rows}).encode(), "application/json", "application/json", explain
    )

    assert status == 200
    assert read_predictions(answer, len(rows)) == json.loads(answer)["predictions"]


# POST /score/async, the worker, GET /results/{id}.


def test_an_async_multiclass_request_with_a_null_and_an_unseen_category_is_stored_and_read_back(
    api, worker, resources, multiclass
):
    worker.worker.runtime = runtime = ServedRuntime(multiclass[0])
    rows = awkward_rows(multiclass[1])
    status, submitted, _ = call(
        api, api_event("POST", "/endpoints/example/score/async", {"instances": rows, "explain": True})
    )
    assert status == 202, submitted

    assert work(worker, resources, receive(resources)) == []

    status, body, _ = call(api, api_event("GET", f"/endpoints/example/results/{submitted['id']}"))
    assert (status, body["status"]) == (200, "succeeded")
    assert body["predictions"] == json.loads(runtime.answers[0])["predictions"]
    assert_multiclass(body["predictions"], multiclass[1], explain=True)
