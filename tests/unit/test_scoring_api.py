"""The scoring API (``lambda/scoring/handler.py``) against moto DynamoDB and SQS, with botocore's Stubber
standing in for the SageMaker endpoint (moto does not run inference containers).

``events/apigateway_rest_iam_request.json`` is a REST API Lambda proxy event, as API Gateway sends it
for an IAM-signed request (the shape of the Lambda developer guide's sample, with an assumed-role
caller); ``api_event`` reshapes it for each route. The helpers here are shared with the worker's tests.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

# The X-Ray SDK (Tracer's provider) opens its UDP emitter's socket when first imported: import it
# here, at collection, before pytest-socket blocks sockets for each test (as conftest does for urllib3).
import aws_xray_sdk.core  # noqa: F401
import boto3
import pytest
from botocore.exceptions import ReadTimeoutError
from botocore.response import StreamingBody
from botocore.stub import Stubber
from moto import mock_aws

from tests.conftest import load_handler

REGION = "eu-west-1"
TABLE = "scoring-results-test"
ENDPOINTS = {"example": "mlops-dev-example", "churn": "mlops-dev-churn"}
VARIANTS = {"example": ["Champion", "Challenger"], "churn": ["Champion"]}
ACCOUNT = "111111111111"
SAMPLE = json.loads((Path(__file__).parent / "events" / "apigateway_rest_iam_request.json").read_text())
REQUEST_ID = SAMPLE["requestContext"]["requestId"]
ROW = [17.99, 10.38, 122.8]
UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


@dataclass
class LambdaContext:
    function_name: str = "scoring"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:scoring"
    aws_request_id: str = "request-1"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


# Helpers, shared with test_scoring_worker.py.


@dataclass
class Resources:
    table: Any
    sqs: Any
    queue_url: str
    dead_letter_queue_url: str


def create_resources(max_receive_count: int = 3) -> Resources:
    """The table (partition key ``id``, TTL ``expires_at``) and the queue with its dead-letter queue."""
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName=TABLE, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
    )
    sqs = boto3.client("sqs", region_name=REGION)
    dead_letter_queue_url = sqs.create_queue(QueueName="scoring-requests-dlq")["QueueUrl"]
    dead_letter_arn = sqs.get_queue_attributes(QueueUrl=dead_letter_queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    queue_url = sqs.create_queue(
        QueueName="scoring-requests",
        Attributes={
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": max_receive_count})
        },
    )["QueueUrl"]
    table = boto3.resource("dynamodb", region_name=REGION).Table(TABLE)
    return Resources(table, sqs, queue_url, dead_letter_queue_url)


def scoring_environment(monkeypatch: pytest.MonkeyPatch, resources: Resources, **overrides: str) -> None:
    values = {
        "ENDPOINTS": json.dumps(ENDPOINTS),
        "VARIANTS": json.dumps(VARIANTS),
        "RESULTS_TABLE": TABLE,
        "REQUESTS_QUEUE_URL": resources.queue_url,
        "DEAD_LETTER_QUEUE_URL": resources.dead_letter_queue_url,
        "MAX_RECEIVE_COUNT": "3",
        "POWERTOOLS_SERVICE_NAME": "scoring",
        **overrides,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def load_worker() -> ModuleType:
    """``lambda/scoring/worker.py`` under a unique module name."""
    return load_handler("scoring", "worker")


# The caller of SAMPLE: an assumed role, recorded without its session name (mlops_platform/serving/api/caller.py).
CALLER = SAMPLE["requestContext"]["identity"]["userArn"]
PRINCIPAL = CALLER.rsplit("/", 1)[0]


def api_event(
    method: str, path: str, body: Any = None, *, raw: str | None = None, caller: str = CALLER
) -> dict[str, Any]:
    """The sample proxy event for ``method path`` signed by ``caller`` (a userArn), with ``body`` as JSON (or
    ``raw`` as it is). Each endpoint has resources of its own, so only the result id is a path parameter."""
    event = copy.deepcopy(SAMPLE)
    resource = path.rsplit("/", 1)[0] + "/{id}" if method == "GET" else path
    event.update(
        resource=resource,
        path=path,
        httpMethod=method,
        body=raw if raw is not None else (None if body is None else json.dumps(body)),
        pathParameters={"id": path.rsplit("/", 1)[1]} if method == "GET" else None,
    )
    event["requestContext"].update(resourcePath=resource, httpMethod=method, path=f"/dev{path}")
    identity = event["requestContext"]["identity"]
    identity.update(userArn=caller, caller=f"AROAEXAMPLEROLEID0000:{caller.rsplit('/', 1)[-1]}")
    identity["user"] = identity["caller"]
    if method == "GET":
        event["headers"].pop("Content-Type")
        event["multiValueHeaders"].pop("Content-Type")
    return event


def call(api: ModuleType, event: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """(status, parsed body, headers) of one invocation."""
    response = api.handler(event, LambdaContext())
    # A REST API proxy answer carries its headers in multiValueHeaders.
    headers = {name: values[-1] for name, values in (response.get("multiValueHeaders") or {}).items()}
    return response["statusCode"], json.loads(response["body"]), {**headers, **(response.get("headers") or {})}


def request(**changes: Any) -> dict[str, Any]:
    """A request body; the endpoint is in the path."""
    return {"instances": [ROW], **changes}


def invoked(predictions: Any, variant: str = "Champion") -> dict[str, Any]:
    """An InvokeEndpoint response whose body is ``{"predictions": ...}`` (or ``predictions`` as bytes)."""
    body = predictions if isinstance(predictions, bytes) else json.dumps({"predictions": predictions}).encode()
    return {
        "Body": StreamingBody(io.BytesIO(body), len(body)),
        "ContentType": "application/json",
        "InvokedProductionVariant": variant,
    }


def invocation(instances: list[Any], *, endpoint: str = "mlops-dev-example", **extra: str) -> dict[str, Any]:
    """The InvokeEndpoint parameters expected for ``instances``."""
    return {
        "EndpointName": endpoint,
        "ContentType": "application/json",
        "Accept": "application/json",
        "Body": json.dumps({"instances": instances}, separators=(",", ":")),
        **extra,
    }


def add_model_error(stub: Stubber, status: int, message: str) -> None:
    """SageMaker's ModelError: the container answered ``status`` with ``message``."""
    stub.add_client_error(
        "invoke_endpoint",
        service_error_code="ModelError",
        service_message=(
            f'Received client error ({status}) from primary with message "{message}". See '
            f"https://{REGION}.console.aws.amazon.com/cloudwatch/home?region={REGION}#logEventViewer:group="
            f"/aws/sagemaker/Endpoints/mlops-dev-example in account {ACCOUNT} for more information."
        ),
        http_status_code=424,
        modeled_fields={
            "OriginalStatusCode": status,
            "OriginalMessage": message,
            "LogStreamArn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/sagemaker/Endpoints/mlops-dev-example",
        },
    )


def emitted_metrics(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The names of the metrics flushed to stdout (CloudWatch embedded metric format) so far."""
    names = []
    for line in capsys.readouterr().out.splitlines():
        try:
            blob = json.loads(line)
        except ValueError:
            continue
        if isinstance(blob, dict) and "_aws" in blob:
            for directive in blob["_aws"]["CloudWatchMetrics"]:
                names.extend(metric["Name"] for metric in directive["Metrics"])
    return names


def queued(resources: Resources, queue_url: str | None = None) -> list[dict[str, Any]]:
    """Every message on a queue (the requests queue by default), received once with all attributes."""
    found = []
    while messages := resources.sqs.receive_message(
        QueueUrl=queue_url or resources.queue_url,
        MaxNumberOfMessages=10,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    ).get("Messages"):
        found.extend(messages)
    return found


# Fixtures.


@pytest.fixture
def resources():
    with mock_aws():
        yield create_resources()


@pytest.fixture
def api(resources, monkeypatch):
    scoring_environment(monkeypatch, resources, MAX_INSTANCES="3")
    return load_handler("scoring")


@pytest.fixture
def stub(api):
    with Stubber(api.scoring.runtime) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


# POST /score.


def test_a_valid_request_is_scored_on_its_endpoint_and_answered_with_the_variant(api, stub, capsys):
    predictions = [{"score": 0.91}, {"score": 0.07}]
    stub.add_response(
        "invoke_endpoint",
        invoked(predictions),
        invocation([ROW, [1, 2, 3]], InferenceId=REQUEST_ID),
    )

    status, body, headers = call(
        api, api_event("POST", "/endpoints/example/score", request(instances=[ROW, [1, 2, 3]]))
    )

    assert status == 200
    assert body == {"endpoint": "example", "variant": "Champion", "predictions": predictions}
    assert headers["Content-Type"] == "application/json"
    assert emitted_metrics(capsys) == ["ScoreSucceeded"]


def test_explain_asks_the_container_for_contributions_through_a_custom_attribute(api, stub):
    predictions = [{"score": 0.91, "contributions": {"f0": 0.4, "f1": -0.1, "f2": 0.02, "bias": 0.59}}]
    stub.add_response(
        "invoke_endpoint",
        invoked(predictions, variant="Challenger"),
        invocation([ROW], CustomAttributes="explain=true", InferenceId=REQUEST_ID),
    )

    status, body, _ = call(api, api_event("POST", "/endpoints/example/score", request(explain=True)))

    assert status == 200
    assert body == {"endpoint": "example", "variant": "Challenger", "predictions": predictions}


def test_each_endpoint_key_scores_on_its_own_endpoint(api, stub):
    stub.add_response(
        "invoke_endpoint",
        invoked([{"score": 1}]),
        invocation([ROW], endpoint="mlops-dev-churn", InferenceId=REQUEST_ID),
    )

    status, body, _ = call(api, api_event("POST", "/endpoints/churn/score", request(explain=False)))

    assert (status, body["endpoint"]) == (200, "churn")


@pytest.mark.parametrize("variant", ["Champion", "Challenger"])
def test_a_named_variant_scores_the_request_alone_whatever_the_weights(api, stub, variant):
    stub.add_response(
        "invoke_endpoint",
        invoked([{"score": 0.4}], variant=variant),
        invocation([ROW], InferenceId=REQUEST_ID, TargetVariant=variant),
    )

    status, body, _ = call(api, api_event("POST", "/endpoints/example/score", request(variant=variant)))

    assert (status, body["variant"]) == (200, variant)


@pytest.mark.parametrize(
    ("endpoint", "variant"), [("example", "Variant1"), ("churn", "Challenger"), ("example", 7), ("example", "")]
)
def test_a_variant_the_endpoint_lacks_is_refused_before_any_endpoint_call(api, stub, endpoint, variant):
    status, body, _ = call(api, api_event("POST", f"/endpoints/{endpoint}/score", request(variant=variant)))

    assert status == 400
    assert f"variant {variant!r} of endpoint {endpoint!r}; known: {VARIANTS[endpoint]}" in body["message"]


def test_an_async_request_keeps_its_variant_in_the_queued_message(api, resources, stub):
    status, _, _ = call(api, api_event("POST", "/endpoints/example/score/async", request(variant="Challenger")))

    [message] = queued(resources)
    assert status == 202
    assert json.loads(message["Body"])["variant"] == "Challenger"


def test_a_base64_encoded_body_is_decoded(api, stub):
    stub.add_response("invoke_endpoint", invoked([{"score": 0.5}]), invocation([ROW], InferenceId=REQUEST_ID))
    event = api_event("POST", "/endpoints/example/score", raw=base64.b64encode(json.dumps(request()).encode()).decode())
    event["isBase64Encoded"] = True

    assert call(api, event)[0] == 200


@pytest.mark.parametrize(
    "instances",
    [
        [[17.99, None, "north", True]],  # null: missing; a string: a category; a boolean: 1 or 0
        [{"mean radius": 17.99, "worst texture": None, "carrier": "never-seen"}, {"carrier": "x"}],
    ],
)
def test_rows_with_nulls_strings_and_booleans_reach_the_endpoint_as_sent(api, stub, instances):
    # Whether a value fits its feature is the model's to say (test_scoring_api_tabular.py serves real models).
    stub.add_response(
        "invoke_endpoint", invoked([{"score": 0.5}] * len(instances)), invocation(instances, InferenceId=REQUEST_ID)
    )

    status, body, _ = call(api, api_event("POST", "/endpoints/example/score", {"instances": instances}))

    assert (status, len(body["predictions"])) == (200, len(instances))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", "the body is not valid JSON: the body is empty"),
        ("{", "the body is not valid JSON"),
        ('{"instances": [[NaN]]}', "NaN is not a JSON number"),
        ('{"instances": [[Infinity]]}', "Infinity is not a JSON number"),
        ("[]", "the body must be a JSON object, not a JSON list"),
        ('{"instances": [[1]], "tenant": "x"}', "unexpected keys ['tenant']"),
        # The endpoint is the path's: a body naming one (perhaps another tenant's) is refused, not obeyed.
        ('{"endpoint": "churn", "instances": [[1]]}', "unexpected keys ['endpoint']"),
        ("{}", "'instances' must be a non-empty array of rows"),
        ('{"instances": []}', "'instances' must be a non-empty array of rows"),
        ('{"instances": [[1], [2], [3], [4]]}', "'instances' has 4 rows; at most 3"),
        ('{"instances": [1, 2]}', "instances[0] must be a non-empty array of values or object of feature name"),
        ('{"instances": [[]]}', "instances[0] must be a non-empty array of values or object of feature name"),
        ('{"instances": [{}]}', "instances[0] must be a non-empty array of values or object of feature name"),
        ('{"instances": [[1, 2], [3]]}', "instances[1] has 1 values; instances[0] has 2"),
        ('{"instances": [[1], {"a": 1}]}', "instances[1] is an object and instances[0] an array; send one kind"),
        # Rows are flat: a value is never an array or an object, so a body nests three levels at most.
        ('{"instances": [[1, [2]]]}', "instances[0][1] must be a number, a string, true, false or null, not [2]"),
        ('{"instances": [{"a": {"b": 1}}]}', "instances[0]['a'] must be a number, a string, true, false or null"),
        ('{"instances": [[1e400]]}', "instances[0][0] must be a finite number, not inf"),
        ('{"instances": [{"a": -1e400}]}', "instances[0]['a'] must be a finite number, not -inf"),
        ('{"instances": [[1]], "explain": "yes"}', "'explain' must be true or false"),
    ],
)
def test_a_bad_request_is_refused_with_a_one_line_reason_before_any_endpoint_call(api, stub, capsys, raw, expected):
    status, body, _ = call(api, api_event("POST", "/endpoints/example/score", raw=raw))

    assert status == 400
    assert expected in body["message"]
    assert "\n" not in body["message"]
    assert emitted_metrics(capsys) == ["ScoreInvalid"]


def test_an_unknown_endpoint_key_is_not_found_and_other_tenants_endpoints_are_not_named(api, stub, capsys):
    status, body, _ = call(api, api_event("POST", "/endpoints/fraud/score", request()))

    assert status == 404
    assert body == {"message": "unknown endpoint 'fraud'"}
    assert emitted_metrics(capsys) == ["ScoreUnknownEndpoint"]


def test_the_container_refusing_the_input_is_a_400_with_the_container_s_reason(api, stub, capsys):
    add_model_error(stub, 400, '{"message": "expected 30 features, got 3"}')

    status, body, _ = call(api, api_event("POST", "/endpoints/example/score", request()))

    assert (status, body) == (400, {"message": "expected 30 features, got 3"})
    assert emitted_metrics(capsys) == ["ScoreRefused"]


def test_a_plain_text_refusal_is_passed_on_as_one_line(api, stub):
    add_model_error(stub, 415, "unsupported content type\ntext/csv")

    assert call(api, api_event("POST", "/endpoints/example/score", request()))[:2] == (
        400,
        {"message": "unsupported content type text/csv"},
    )


@pytest.mark.parametrize(
    ("code", "http_status", "expected_status", "metric"),
    [
        ("ValidationError", 400, 503, "ScoreUnavailable"),
        ("ServiceUnavailable", 503, 503, "ScoreUnavailable"),
        ("ModelNotReadyException", 429, 503, "ScoreUnavailable"),
        ("ThrottlingException", 400, 429, "ScoreThrottled"),
        ("InternalFailure", 500, 502, "ScoreFailed"),
        ("InternalDependencyException", 530, 502, "ScoreFailed"),
    ],
)
def test_sagemaker_errors_map_to_statuses_without_leaking_internals(
    api, stub, capsys, code, http_status, expected_status, metric
):
    stub.add_client_error(
        "invoke_endpoint",
        service_error_code=code,
        service_message=f"Endpoint mlops-dev-example of account {ACCOUNT} not found.",
        http_status_code=http_status,
    )

    status, body, _ = call(api, api_event("POST", "/endpoints/example/score", request()))

    assert status == expected_status
    assert "'example'" in body["message"]
    assert ACCOUNT not in body["message"]
    assert "mlops-dev-example" not in body["message"]
    assert emitted_metrics(capsys) == [metric]


def test_the_container_s_own_failure_is_a_502_without_its_details(api, stub):
    add_model_error(stub, 500, "Traceback (most recent call last): secret internals")

    status, body, _ = call(api, api_event("POST", "/endpoints/example/score", request()))

    assert (status, body) == (502, {"message": "the endpoint 'example' failed to score the request"})


@pytest.mark.parametrize(
    "answer",
    [
        b"not json",
        b'{"scores": [0.5]}',
        b'{"predictions": [{"score": 0.5}, {"score": 0.4}]}',
        b'{"predictions": [{"score": NaN}]}',
        b'{"predictions": [{"label": 1}]}',
        b'{"predictions": [{"score": 0.5, "contributions": {"f0": null}}]}',
        b'{"predictions": [{"score": 0.5, "label": "1"}]}',
        b'{"predictions": [{"label": "a", "probabilities": {}}]}',
        b'{"predictions": [{"label": "c", "probabilities": {"a": 0.4, "b": 0.6}}]}',
        b'{"predictions": [{"label": "a", "probabilities": {"a": 1.4, "b": -0.4}}]}',
        b'{"predictions": [{"label": "a", "probabilities": {"a": null, "b": 0.6}}]}',
        b'{"predictions": [{"label": "a", "probabilities": {"a": 0.4, "b": 0.6}, "contributions": {"a": {"f0": 1}}}]}',
    ],
)
def test_an_answer_outside_the_container_contract_is_a_502(api, stub, answer):
    stub.add_response("invoke_endpoint", invoked(answer))

    status, body, _ = call(api, api_event("POST", "/endpoints/example/score", request()))

    assert (status, body) == (502, {"message": "the endpoint answered with an unreadable response"})


def test_an_endpoint_that_does_not_answer_in_time_is_a_504(api, monkeypatch, capsys):
    class SlowRuntime:
        def invoke_endpoint(self, **_: Any) -> dict[str, Any]:
            raise ReadTimeoutError(endpoint_url="https://runtime.sagemaker.eu-west-1.amazonaws.com/endpoints/x")

    monkeypatch.setattr(api.scoring, "runtime", SlowRuntime())

    status, body, _ = call(api, api_event("POST", "/endpoints/example/score", request()))

    assert (status, body) == (504, {"message": "the endpoint 'example' did not answer in time"})
    assert emitted_metrics(capsys) == ["ScoreTimedOut"]


def test_an_unforeseen_error_is_a_500_without_its_traceback(api, monkeypatch):
    class BrokenRuntime:
        def invoke_endpoint(self, **_: Any) -> dict[str, Any]:
            raise RuntimeError("secret internals")

    monkeypatch.setattr(api.scoring, "runtime", BrokenRuntime())

    assert call(api, api_event("POST", "/endpoints/example/score", request()))[:2] == (
        500,
        {"message": "internal error; try again later"},
    )


def test_an_unknown_route_is_not_found(api, stub):
    status, body, _ = call(api, api_event("POST", "/predict", request()))

    assert status == 404
    assert body["message"].startswith("no such resource")


# POST /score/async and GET /score/{id}.


def test_an_async_request_is_recorded_pending_then_queued_and_answered_202(api, resources, stub, capsys):
    before = int(time.time())

    status, body, headers = call(api, api_event("POST", "/endpoints/example/score/async", request(explain=True)))

    assert status == 202
    tracking_id = body["id"]
    assert UUID4.fullmatch(tracking_id)
    location = f"/endpoints/example/results/{tracking_id}"
    assert body == {"id": tracking_id, "status": "pending", "location": location}
    assert headers["Location"] == location
    [item] = resources.table.scan()["Items"]
    assert {key: item[key] for key in ("id", "status", "endpoint", "principal")} == {
        "id": tracking_id,
        "status": "pending",
        "endpoint": "example",
        "principal": "arn:aws:sts::111111111111:assumed-role/scoring-client",  # the role, not its session
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", item["submitted_at"])
    assert before + 7 * 86400 <= item["expires_at"] <= int(time.time()) + 7 * 86400
    [message] = queued(resources)
    assert json.loads(message["Body"]) == {
        "id": tracking_id,
        "endpoint": "example",
        "instances": [ROW],
        "explain": True,
    }
    assert emitted_metrics(capsys) == ["AsyncAccepted"]


def test_a_pending_request_reads_back_as_pending(api, stub):
    _, submitted, _ = call(api, api_event("POST", "/endpoints/example/score/async", request()))

    status, body, headers = call(api, api_event("GET", submitted["location"]))

    assert status == 200
    assert set(body) == {"id", "status", "endpoint", "submitted_at"}
    assert (body["id"], body["status"], body["endpoint"]) == (submitted["id"], "pending", "example")
    assert headers["Cache-Control"] == "no-store"


def test_an_async_request_is_validated_like_a_real_time_one_and_nothing_is_recorded(api, resources, stub):
    assert call(api, api_event("POST", "/endpoints/example/score/async", request(instances=[[1, 2], [3]])))[0] == 400
    assert call(api, api_event("POST", "/endpoints/fraud/score/async", request()))[0] == 404

    assert resources.table.scan()["Items"] == []
    assert queued(resources) == []


def test_an_async_request_too_large_for_the_queue_is_refused_before_it_is_recorded(resources, monkeypatch):
    scoring_environment(monkeypatch, resources, MAX_MESSAGE_BYTES="200")
    api = load_handler("scoring")

    status, body, _ = call(api, api_event("POST", "/endpoints/example/score/async", request(instances=[ROW] * 10)))

    assert status == 413
    assert "at most 200: send fewer instances per request" in body["message"]
    assert resources.table.scan()["Items"] == []


def test_a_request_that_cannot_be_queued_is_marked_failed_and_answered_503(resources, monkeypatch, capsys):
    missing_queue = resources.queue_url.replace("scoring-requests", "scoring-requests-deleted")
    scoring_environment(monkeypatch, resources, REQUESTS_QUEUE_URL=missing_queue)
    api = load_handler("scoring")

    status, body, _ = call(api, api_event("POST", "/endpoints/example/score/async", request()))

    assert status == 503
    assert body["message"].startswith("the request could not be queued")
    [item] = resources.table.scan()["Items"]
    assert item["status"] == "failed"
    assert item["reason"] == body["message"]
    assert "finished_at" in item
    assert "AsyncQueueFailed" in emitted_metrics(capsys)


def test_a_request_that_cannot_be_recorded_is_not_queued_and_answered_503(resources, monkeypatch):
    scoring_environment(monkeypatch, resources, RESULTS_TABLE="no-such-table")
    api = load_handler("scoring")

    status, body, _ = call(api, api_event("POST", "/endpoints/example/score/async", request()))

    assert (status, body) == (503, {"message": "the request could not be recorded; nothing was queued, try again"})
    assert queued(resources) == []


def test_an_unknown_id_is_not_found(api):
    status, body, _ = call(api, api_event("GET", "/endpoints/example/results/0b7e8f52-3c1d-4e5f-9a6b-7c8d9e0f1a2b"))

    assert status == 404
    assert body["message"].startswith("no scoring request of yours has this id")


@pytest.mark.parametrize("tracking_id", ["async", "not-a-uuid", "0B7E8F52-3C1D-4E5F-9A6B-7C8D9E0F1A2B", "1" * 300])
def test_a_malformed_id_is_not_found_without_reading_the_table(api, monkeypatch, tracking_id):
    class NoTable:
        def get_item(self, **_: Any) -> dict[str, Any]:
            raise AssertionError("the table was read")

    monkeypatch.setattr(api.scoring.results, "dynamodb", NoTable())

    status, body, _ = call(api, api_event("GET", f"/endpoints/example/results/{tracking_id}"))

    assert status == 404
    assert tracking_id not in body["message"]


def test_a_record_past_its_ttl_is_not_found_before_dynamodb_deletes_it(api, resources):
    tracking_id = "0b7e8f52-3c1d-4e5f-9a6b-7c8d9e0f1a2b"
    resources.table.put_item(
        Item={
            "id": tracking_id,
            "status": "succeeded",
            "endpoint": "example",
            "principal": PRINCIPAL,
            "submitted_at": "2026-01-01T00:00:00.000Z",
            "expires_at": int(time.time()) - 1,
            "result": "[]",
        }
    )

    assert call(api, api_event("GET", f"/endpoints/example/results/{tracking_id}"))[0] == 404


def test_a_failed_record_shows_its_reason_and_a_succeeded_one_its_decoded_predictions(api, resources):
    common = {
        "endpoint": "example",
        "principal": PRINCIPAL,
        "submitted_at": "2026-11-24T23:59:30.123Z",
        "expires_at": int(time.time()) + 60,
    }
    failed_id, succeeded_id = "0b7e8f52-3c1d-4e5f-9a6b-7c8d9e0f1a2b", "1c8f9a63-4d2e-4f60-8b7c-8d9e0f1a2b3c"
    resources.table.put_item(
        Item={"id": failed_id, "status": "failed", "finished_at": "2026-11-24T23:59:31.000Z", "reason": "no", **common}
    )
    resources.table.put_item(
        Item={
            "id": succeeded_id,
            "status": "succeeded",
            "finished_at": "2026-11-24T23:59:31.000Z",
            "variant": "Champion",
            "result": json.dumps([{"score": 0.25}]),
            **common,
        }
    )

    assert call(api, api_event("GET", f"/endpoints/example/results/{failed_id}"))[1] == {
        "id": failed_id,
        "status": "failed",
        "endpoint": "example",
        "submitted_at": "2026-11-24T23:59:30.123Z",
        "finished_at": "2026-11-24T23:59:31.000Z",
        "reason": "no",
    }
    assert call(api, api_event("GET", f"/endpoints/example/results/{succeeded_id}"))[1] == {
        "id": succeeded_id,
        "status": "succeeded",
        "endpoint": "example",
        "submitted_at": "2026-11-24T23:59:30.123Z",
        "finished_at": "2026-11-24T23:59:31.000Z",
        "variant": "Champion",
        "predictions": [{"score": 0.25}],
    }


# Tenants: the example endpoint is tenant A's, churn is tenant B's (config ties an endpoint to one tenant).
TENANT_A = "arn:aws:sts::111111111111:assumed-role/example-scorer/batch-7"
TENANT_B = "arn:aws:sts::111111111111:assumed-role/churn-scorer/nightly"


def submitted_by(api: ModuleType, caller: str, endpoint: str) -> dict[str, Any]:
    status, body, _ = call(api, api_event("POST", f"/endpoints/{endpoint}/score/async", request(), caller=caller))
    assert status == 202
    return body


def test_a_result_is_read_only_by_the_principal_that_submitted_it(api):
    """Issue 17: a third principal read another tenant's async result."""
    mine = submitted_by(api, TENANT_B, "churn")

    assert call(api, api_event("GET", mine["location"], caller=TENANT_B))[0] == 200
    # Tenant A's caller, even with IAM allowing churn's paths by mistake: as if the id did not exist.
    status, body, _ = call(api, api_event("GET", mine["location"], caller=TENANT_A))
    assert status == 404
    assert body["message"].startswith("no scoring request of yours")
    # ... and through its own endpoint's path, which IAM does allow it.
    assert call(api, api_event("GET", f"/endpoints/example/results/{mine['id']}", caller=TENANT_A))[0] == 404


def test_another_session_of_the_same_role_reads_the_result_and_another_role_of_the_account_does_not(api):
    mine = submitted_by(api, TENANT_A, "example")

    assert call(api, api_event("GET", mine["location"], caller=TENANT_A.replace("batch-7", "batch-8")))[0] == 200
    for other in (
        "arn:aws:sts::111111111111:assumed-role/example-scorer-2/batch-7",  # a role whose name extends it
        "arn:aws:iam::111111111111:user/example-scorer",
        "arn:aws:iam::111111111111:root",
        "arn:aws:sts::222222222222:assumed-role/example-scorer/batch-7",  # the same name in another account
    ):
        assert call(api, api_event("GET", mine["location"], caller=other))[0] == 404, other


def test_a_record_without_a_principal_is_read_by_nobody(api, resources):
    tracking_id = "0b7e8f52-3c1d-4e5f-9a6b-7c8d9e0f1a2b"
    resources.table.put_item(
        Item={"id": tracking_id, "status": "pending", "endpoint": "example", "expires_at": int(time.time()) + 60}
    )

    assert call(api, api_event("GET", f"/endpoints/example/results/{tracking_id}"))[0] == 404


def test_a_request_without_an_iam_caller_is_refused_and_nothing_is_recorded(api, resources):
    event = api_event("POST", "/endpoints/example/score/async", request())
    event["requestContext"]["identity"]["userArn"] = None

    status, body, _ = call(api, event)

    assert status == 403
    assert "SigV4" in body["message"]
    assert resources.table.scan()["Items"] == []
    assert queued(resources) == []


def test_the_endpoint_scored_is_the_one_in_the_path_whatever_the_body_says(api, stub):
    stub.add_response(
        "invoke_endpoint",
        invoked([{"score": 0.5}]),
        invocation([ROW], endpoint="mlops-dev-churn", InferenceId=REQUEST_ID),
    )

    status, body, _ = call(api, api_event("POST", "/endpoints/churn/score", request()))

    assert (status, body["endpoint"]) == (200, "churn")
