"""``handle``: SageMaker's hosting contract, request by request, without a socket."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from mlops_platform.serving.handler import Request, handle, negotiate, wants_explanation
from mlops_platform.serving.model import load
from tests.unit.inference.conftest import SETTINGS, csv_body, feature_names, features_of

NAMES = feature_names("binary")


@pytest.fixture(scope="module")
def model(xgboost_dir):
    return load(xgboost_dir)


def invoke(model, body, content_type="text/csv", **fields):
    return handle(Request("POST", "/invocations", content_type=content_type, body=body, **fields), model, SETTINGS)


def test_ping_answers_200_once_the_model_is_loaded(model):
    assert handle(Request("GET", "/ping"), model, SETTINGS).status == 200
    assert handle(Request("GET", "/ping"), None, SETTINGS).status == 503
    assert invoke(None, b"1").status == 503


def test_unknown_routes_and_methods_are_refused(model):
    assert handle(Request("GET", "/models"), model, SETTINGS).status == 404
    assert handle(Request("POST", "/ping"), model, SETTINGS).status == 405
    assert handle(Request("GET", "/invocations"), model, SETTINGS).status == 405


def test_csv_rows_get_one_score_a_line_equal_to_the_model_s(model):
    features = features_of("binary", rows=25)

    response = invoke(model, csv_body(features), "text/csv; charset=utf-8")

    assert (response.status, response.content_type) == (200, "text/csv")
    lines = response.body.decode().splitlines()
    assert len(lines) == 25
    # 9 significant digits: the float32 scores come back exactly.
    np.testing.assert_array_equal(np.array(lines, dtype=np.float32), model.score(features))


def test_the_careful_csv_path_reads_what_the_fast_path_declines(model):
    """Leading points, plus signs, quotes, CRLF and blank lines are CSV, if not JSON."""
    plain = invoke(model, b"0.5," * 29 + b"1e1\n")
    unusual = invoke(model, b'\xef\xbb\xbf.5,+0.5,"0.5",' + b"0.5," * 26 + b"10\r\n\r\n")

    assert plain.status == unusual.status == 200
    assert plain.body == unusual.body


@pytest.mark.parametrize(
    ("content_type", "body", "status", "reason"),
    [
        ("text/csv", b"", 400, "the body holds no rows"),
        ("text/csv", b"\n\n", 400, "the body holds no rows"),
        ("text/csv", b"1,2,3\n", 400, "row 1 has 3 values; the model expects 30"),
        ("text/csv", b"1," * 29 + b"1\n" + b"1," * 28 + b"1\n", 400, "row 2 has 29 values; the model expects 30"),
        ("text/csv", b"1," * 29 + b"x\n", 400, "row 1, column 30 is not a number"),
        ("text/csv", b"1," * 29 + b"nan\n", 400, "row 1, column 30 is not a finite number"),
        ("text/csv", b"1," * 29 + b"-inf\n", 400, "row 1, column 30 is not a finite number"),
        ("text/csv", b"1e39," + b"1," * 28 + b"1\n", 400, "row 1, column 1 is outside float32's range"),
        ("text/csv", b"true," + b"1," * 28 + b"1\n", 400, "row 1, column 1 is not a number"),
        ("text/csv", b"[1]," + b"1," * 28 + b"1\n", 400, "row 1, column 1 is not a number"),
        ("text/csv", b"\xff\xfe", 400, "the body is not UTF-8 text"),
        ("application/json", b"", 400, "the body is not valid JSON"),
        ("application/json", b"[[1]]", 400, 'the body must be a JSON object {"instances": [...]}'),
        ("application/json", b'{"instances": []}', 400, '"instances" is empty'),
        ("application/json", b'{"instances": [[1, 2]]}', 400, "instance 1 has 2 values; the model expects 30"),
        ("application/json", b'{"instances": [' + b"[1]," * 2 + b"7]}", 400, "instance 1 has 1 values"),
        ("application/json", b'{"instances": [[' + b"1," * 29 + b'"2"]]}', 400, "instance 1, value 30 is not a number"),
        ("application/json", b'{"instances": [[' + b"1," * 29 + b"NaN]]}", 400, "the body is not valid JSON"),
        ("application/json", b'{"instances": [{"radius": 1}]}', 400, "instance 1 has unknown feature 'radius'"),
        ("application/json", b'{"instances": ["1,2"]}', 400, "instance 1 is neither an array of values nor an object"),
        ("application/jsonlines", b"\n \n", 400, "the body holds no lines"),
        ("application/jsonlines", b"[" + b"1," * 29 + b"1]\n{oops\n", 400, "line 2 is not valid JSON"),
        ("application/jsonlines", b"[" + b"1," * 29 + b"1]\n\n[1]\n", 400, "line 3 has 1 values"),
        ("application/x-npy", b"1", 415, "content type 'application/x-npy' is not supported; allowed: text/csv,"),
        (None, b"1", 415, "content type 'none' is not supported"),
    ],
)
def test_bad_requests_get_a_4xx_with_a_one_line_reason(model, content_type, body, status, reason):
    response = invoke(model, body, content_type)

    assert response.status == status
    assert response.content_type == "text/plain; charset=utf-8"
    assert reason in response.body.decode()
    assert b"\n" not in response.body


def test_a_header_row_is_refused_with_the_cell_it_stumbled_on(model):
    response = invoke(model, ",".join(NAMES).encode() + b"\n" + csv_body(features_of("binary", rows=2)))

    assert (response.status, response.body) == (400, b"row 1, column 1 is not a number")


def test_a_body_over_the_payload_limit_is_413_and_closes_the_connection(model):
    settings = replace(SETTINGS, max_payload_bytes=100)
    body = csv_body(features_of("binary", rows=1))

    response = handle(Request("POST", "/invocations", content_type="text/csv", body=body), model, settings)

    assert response.status == 413
    assert response.close
    assert response.body == f"the body is {len(body)} bytes; allowed: up to 100 (MLOPS_MAX_PAYLOAD_BYTES)".encode()


def test_json_instances_as_arrays_or_feature_objects_score_the_same(model):
    features = features_of("binary", rows=5)
    arrays = json.dumps({"instances": features.tolist()}).encode()
    objects = json.dumps({"instances": [dict(zip(NAMES, row, strict=True)) for row in features.tolist()]}).encode()

    by_array = invoke(model, arrays, "application/json")
    by_object = invoke(model, objects, "application/json")

    assert (by_array.status, by_array.content_type) == (200, "application/json")
    assert by_array.body == by_object.body
    predictions = json.loads(by_array.body)["predictions"]
    assert [p["score"] for p in predictions] == model.score(features).tolist()
    assert all(set(p) == {"score"} for p in predictions)


def test_json_lines_answer_one_prediction_a_line_and_echo_ids(model):
    features = features_of("binary", rows=3).tolist()
    body = (
        json.dumps(features[0])
        + "\n\n"
        + json.dumps(dict(zip(NAMES, features[1], strict=True)))
        + "\n"
        + json.dumps({"id": "c-3", "features": features[2]})
        + "\n"
    ).encode()

    response = invoke(model, body, "application/jsonlines")

    assert (response.status, response.content_type) == (200, "application/jsonlines")
    lines = [json.loads(line) for line in response.body.decode().splitlines()]
    assert [line.get("id") for line in lines] == [None, None, "c-3"]
    assert [line["score"] for line in lines] == model.score(np.array(features, dtype=np.float32)).tolist()


def test_booleans_are_ones_and_zeros(model):
    ones = invoke(model, json.dumps({"instances": [[True] * 30, [1] * 30]}).encode(), "application/json")

    first, second = json.loads(ones.body)["predictions"]
    assert first == second


@pytest.mark.parametrize(
    ("accept", "request_type", "chosen"),
    [
        (None, "text/csv", "text/csv"),
        ("", "application/json", "application/json"),
        ("*/*", "application/jsonlines", "application/jsonlines"),
        ("application/json", "text/csv", "application/json"),
        ("text/html, application/json;q=0.5, text/csv;q=0.9", "application/json", "text/csv"),
        ("text/*", "application/json", "text/csv"),
        ("application/*", "application/jsonlines", "application/jsonlines"),
        ("text/csv;q=0", "text/csv", None),
        ("text/html", "text/csv", None),
    ],
)
def test_the_response_type_follows_accept(accept, request_type, chosen):
    assert negotiate(accept, request_type) == chosen


def test_an_accept_the_server_cannot_write_is_406_before_parsing(model):
    response = invoke(model, b"not even csv", accept="application/x-protobuf")

    assert response.status == 406
    assert response.body.startswith(b"accept 'application/x-protobuf' names no supported type")


def test_a_csv_request_can_be_answered_in_json(model):
    features = features_of("binary", rows=2)

    response = invoke(model, csv_body(features), accept="application/json")

    assert response.content_type == "application/json"
    assert [p["score"] for p in json.loads(response.body)["predictions"]] == model.score(features).tolist()


@pytest.mark.parametrize(
    ("attributes", "query", "explain"),
    [
        ("explain=true", "", True),
        ("trace=abc; explain=true", "", True),
        ("trace=abc,Explain=True", "", True),
        (None, "explain=true", True),
        (None, "a=1&explain=true", True),
        ("explain=false", "", False),
        ("explained=true", "", False),
        (None, "", False),
    ],
)
def test_explanations_are_asked_for_by_custom_attributes_or_query(attributes, query, explain):
    assert wants_explanation(Request("POST", "/invocations", query=query, custom_attributes=attributes)) is explain


def test_json_explanations_name_each_feature_and_the_bias_and_sum_to_the_margin(model):
    features = features_of("binary", rows=4)

    response = invoke(
        model,
        json.dumps({"instances": features.tolist()}).encode(),
        "application/json",
        custom_attributes="explain=true",
    )

    predictions = json.loads(response.body)["predictions"]
    margins = model.margin(features)
    for prediction, margin in zip(predictions, margins.tolist(), strict=True):
        assert list(prediction["contributions"]) == [*NAMES, "bias"]
        assert sum(prediction["contributions"].values()) == pytest.approx(margin, abs=1e-4)


def test_csv_explanations_are_the_score_then_a_column_per_feature_then_the_bias(model):
    features = features_of("binary", rows=3)

    response = invoke(model, csv_body(features), query="explain=true")

    table = np.array([line.split(",") for line in response.body.decode().splitlines()], dtype=np.float64)
    assert table.shape == (3, 1 + 30 + 1)
    np.testing.assert_array_equal(table[:, 0].astype(np.float32), model.score(features))
    np.testing.assert_allclose(table[:, 1:].sum(axis=1), model.margin(features), atol=1e-4)


def test_a_failing_prediction_is_a_500_with_one_line(model):
    class Broken:
        metadata = model.metadata

        def score(self, features):
            raise RuntimeError("out of memory\nsomewhere")

    response = invoke(Broken(), csv_body(features_of("binary", rows=1)))

    assert (response.status, response.body) == (500, b"prediction failed: RuntimeError: out of memory somewhere")


def test_batch_transform_learns_its_parameters_from_the_container(model):
    response = handle(Request("GET", "/execution-parameters"), model, replace(SETTINGS, workers=4))

    assert response.status == 200
    assert json.loads(response.body) == {
        "MaxConcurrentTransforms": 4,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 6,
    }


ROW = b"1," * 29 + b"1"
HOSTILE = {
    # orjson reads 1024 levels but writes only 254: a deep id parsed, then broke the answer (a 500).
    "an id nested 300 deep": (
        "application/json",
        b'{"instances": [{"id": ' + b"[" * 300 + b"]" * 300 + b', "features": [' + ROW + b"]}]}",
        "instance 1's id is nested deeper than",
    ),
    "a JSON Lines id nested 300 deep": (
        "application/jsonlines",
        b'{"id": ' + b"[" * 300 + b"]" * 300 + b', "features": [' + ROW + b"]}\n",
        "line 1's id is nested deeper than",
    ),
    # Python's csv reader stops at 131,072 characters a cell with csv.Error (a 500).
    "a CSV cell over the csv module's limit": (
        "text/csv",
        b"1" * 200_000 + b"," + b"1," * 28 + b"1\n",
        "row 1 cannot be read as CSV: field larger than field limit",
    ),
    "a quoted CSV cell over the limit": ("text/csv", b'"' + b"1" * 200_000 + b'",' + b"1," * 28 + b"1\n", "row 1"),
}


@pytest.mark.parametrize(("content_type", "body", "reason"), HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_bodies_get_a_400_with_a_reason_not_a_500(model, content_type, body, reason):
    settings = replace(SETTINGS, max_payload_bytes=10_000_000)
    response = handle(Request("POST", "/invocations", content_type=content_type, body=body), model, settings)

    assert response.status == 400, response.body[:200]
    assert reason in response.body.decode()
    assert b"\n" not in response.body
