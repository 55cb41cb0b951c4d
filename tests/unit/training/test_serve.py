"""The serve entry point: SageMaker's hosting contract over a model the training image wrote."""

from __future__ import annotations

import http.client
import threading

import numpy as np
import pytest

from mlops_platform.training.serve import MAX_BODY_BYTES, Model, Server, handle, main, port_from_environment
from mlops_platform.training.train import main as train
from tests.unit.training.conftest import job, small_dataset


@pytest.fixture
def model(sagemaker_root):
    """An XGBoost model trained by the train entry point on scikit-learn's breast cancer data."""
    paths = sagemaker_root("binary", job("xgboost", "binary", num_round="20"))
    assert train(paths) == 0
    return Model.load(paths.model)


def features_csv(rows: int) -> tuple[bytes, np.ndarray]:
    frame = small_dataset("binary").drop(columns=["target"]).head(rows)
    text = "".join(",".join(repr(float(v)) for v in row) + "\n" for row in frame.itertuples(index=False))
    return text.encode(), frame.to_numpy(dtype=np.float32)


def test_ping_answers_200_once_the_model_is_loaded(model):
    assert handle("GET", "/ping", None, b"", model).status == 200
    assert handle("GET", "/ping", None, b"", None).status == 503


def test_invocations_return_one_prediction_a_line_for_each_csv_row(model):
    body, features = features_csv(25)

    response = handle("POST", "/invocations", "text/csv; charset=utf-8", body, model)

    assert response.status == 200
    assert response.content_type == "text/csv"
    predictions = [float(value) for value in response.body.splitlines()]
    assert len(predictions) == 25
    assert predictions == pytest.approx(model.predict(features).tolist(), rel=1e-6)
    assert all(0 <= p <= 1 for p in predictions)


@pytest.mark.parametrize(
    ("content_type", "body", "status", "reason"),
    [
        ("text/csv", b"", 400, "the body holds no rows"),
        ("text/csv", b"\n\n", 400, "the body holds no rows"),
        ("text/csv", b"1,2,3\n", 400, "row 1 has 3 values; the model expects 30"),
        ("text/csv", b",".join([b"1"] * 29 + [b"x"]) + b"\n", 400, "row 1, column 30 is not a number"),
        ("text/csv", b",".join([b"1"] * 29 + [b"nan"]) + b"\n", 400, "row 1, column 30 is not a finite number"),
        ("text/csv", b"\xff\xfe", 400, "the body is not UTF-8 text"),
        ("application/json", b"[[1]]", 415, "content type 'application/json' is not supported; allowed: text/csv"),
        (None, b"1", 415, "content type 'none' is not supported"),
    ],
)
def test_bad_requests_get_a_one_line_reason(model, content_type, body, status, reason):
    response = handle("POST", "/invocations", content_type, body, model)

    assert response.status == status
    assert reason in response.body
    assert "\n" not in response.body


def test_a_header_row_is_refused_with_the_cell_it_stumbled_on(model):
    header = ",".join(small_dataset("binary").columns[:-1]).encode()
    body, _ = features_csv(2)

    response = handle("POST", "/invocations", "text/csv", header + b"\n" + body, model)

    assert (response.status, response.body) == (400, "row 1, column 1 is not a number")


def test_unknown_routes_and_methods_are_refused(model):
    assert handle("GET", "/models", None, b"", model).status == 404
    assert handle("POST", "/ping", None, b"", model).status == 405
    assert handle("GET", "/invocations", None, b"", model).status == 405


def test_a_failing_prediction_is_a_500_not_a_dead_server(model):
    def broken(features):
        raise RuntimeError("out of memory\nsomewhere")

    response = handle(
        "POST", "/invocations", "text/csv", features_csv(1)[0], Model(model.metadata, broken, model.served)
    )

    assert response.status == 500
    assert response.body == "prediction failed: RuntimeError: out of memory somewhere"


def test_the_port_comes_from_sagemaker_bind_to_port(monkeypatch):
    monkeypatch.delenv("SAGEMAKER_BIND_TO_PORT", raising=False)
    assert port_from_environment() == 8080
    monkeypatch.setenv("SAGEMAKER_BIND_TO_PORT", "9000")
    assert port_from_environment() == 9000


def test_serve_without_a_model_exits_with_a_reason(tmp_path, capsys):
    from mlops_platform.sagemaker_paths import SageMakerPaths

    assert main([], SageMakerPaths(root=tmp_path, checkpoints=tmp_path / "checkpoints")) == 1
    assert "no model under" in capsys.readouterr().err


@pytest.mark.enable_socket
def test_the_server_answers_over_http_and_survives_bad_requests(model):
    server = Server(("127.0.0.1", 0), model)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)

        def request(method, path, body=b"", headers=None):
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.getheader("Content-Type"), response.read().decode()

        assert request("GET", "/ping")[0] == 200
        # One keep-alive connection, as batch transform uses it: a bad request, then good ones.
        assert request("POST", "/invocations", b"1,2\n", {"Content-Type": "text/csv"})[:2] == (
            400,
            "text/plain; charset=utf-8",
        )
        body, features = features_csv(10)
        status, content_type, text = request("POST", "/invocations", body, {"Content-Type": "text/csv"})
        assert (status, content_type) == (200, "text/csv")
        assert [float(v) for v in text.splitlines()] == pytest.approx(model.predict(features).tolist(), rel=1e-6)
        assert request("POST", "/invocations", b"{}", {"Content-Type": "application/json"})[0] == 415
        assert request("GET", "/ping")[0] == 200
        connection.close()

        # A body larger than batch transform could send is refused before it is read.
        oversized = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
        oversized.putrequest("POST", "/invocations")
        oversized.putheader("Content-Type", "text/csv")
        oversized.putheader("Content-Length", str(MAX_BODY_BYTES + 1))
        oversized.endheaders()
        assert oversized.getresponse().status == 413
        oversized.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
