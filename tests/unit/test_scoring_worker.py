"""The scoring worker (``lambda/scoring/worker.py``), and the asynchronous path end to end in-process:
``POST /score/async`` through the API handler, the message received from the moto queue and fed to
the worker as SQS's event, then ``GET /score/{id}``. Stubber stands in for the SageMaker endpoint.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from botocore.stub import Stubber
from moto import mock_aws

from tests.conftest import load_handler
from tests.unit.test_scoring_api import (
    REGION,
    ROW,
    LambdaContext,
    Resources,
    add_model_error,
    api_event,
    call,
    create_resources,
    emitted_metrics,
    invocation,
    invoked,
    load_worker,
    queued,
    request,
    scoring_environment,
)

PREDICTIONS = [{"score": 0.91}]


@pytest.fixture
def resources():
    with mock_aws():
        yield create_resources(max_receive_count=3)


@pytest.fixture
def api(resources, monkeypatch):
    scoring_environment(monkeypatch, resources)
    return load_handler("scoring")


@pytest.fixture
def worker(resources, monkeypatch):
    scoring_environment(monkeypatch, resources)
    return load_worker()


@pytest.fixture
def stub(worker):
    with Stubber(worker.worker.runtime) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def sqs_event(resources: Resources, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Messages received from the moto queue, shaped as the SQS event source mapping delivers them."""
    arn = resources.sqs.get_queue_attributes(QueueUrl=resources.queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message["Attributes"],
                "messageAttributes": {},
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": REGION,
            }
            for message in messages
        ]
    }


def receive(resources: Resources, *, visibility_timeout: int = 30) -> list[dict[str, Any]]:
    """One receive from the requests queue, as the event source mapping polls it."""
    return resources.sqs.receive_message(
        QueueUrl=resources.queue_url,
        MaxNumberOfMessages=10,
        AttributeNames=["All"],
        VisibilityTimeout=visibility_timeout,
    ).get("Messages", [])


def work(worker, resources: Resources, messages: list[dict[str, Any]], *, delete: bool = True) -> list[str]:
    """Run the worker on ``messages``; the ids of the messages it reports failed (to be retried).

    Like the event source mapping, delete the others from the queue, unless ``delete`` is False
    (a delete that was lost, so SQS delivers the message again).
    """
    response = worker.handler(sqs_event(resources, messages), LambdaContext(function_name="scoring-worker"))
    failed = [failure["itemIdentifier"] for failure in response["batchItemFailures"]]
    for message in messages:
        if delete and message["MessageId"] not in failed:
            resources.sqs.delete_message(QueueUrl=resources.queue_url, ReceiptHandle=message["ReceiptHandle"])
    return failed


def submit(api, **changes: Any) -> str:
    status, body, _ = call(api, api_event("POST", "/endpoints/example/score/async", request(**changes)))
    assert status == 202, body
    return body["id"]


def result(api, tracking_id: str) -> tuple[int, dict[str, Any]]:
    status, body, _ = call(api, api_event("GET", f"/endpoints/example/results/{tracking_id}"))
    return status, body


def record(resources: Resources, tracking_id: str) -> dict[str, Any] | None:
    return resources.table.get_item(Key={"id": tracking_id}, ConsistentRead=True).get("Item")


def send(resources: Resources, body: str) -> list[dict[str, Any]]:
    """Put ``body`` on the requests queue (as anything with SendMessage could) and receive it."""
    resources.sqs.send_message(QueueUrl=resources.queue_url, MessageBody=body)
    return receive(resources)


def dead_letters(resources: Resources) -> list[tuple[str, str, str]]:
    """(reason, code, body) of each message on the dead-letter queue."""
    return [
        (
            message["MessageAttributes"]["reason"]["StringValue"],
            message["MessageAttributes"]["code"]["StringValue"],
            message["Body"],
        )
        for message in queued(resources, resources.dead_letter_queue_url)
    ]


# End to end.


def test_an_async_request_is_scored_by_the_worker_and_read_back_with_its_predictions(api, worker, stub, resources):
    tracking_id = submit(api, explain=True)
    assert result(api, tracking_id)[1]["status"] == "pending"
    predictions = [{"score": 0.91, "contributions": {"f0": 0.5, "f1": 0.2, "f2": 0.1, "bias": 0.11}}]
    stub.add_response(
        "invoke_endpoint",
        invoked(predictions, variant="Challenger"),
        invocation([ROW], CustomAttributes="explain=true", InferenceId=tracking_id),
    )
    messages = receive(resources)

    assert work(worker, resources, messages) == []

    status, body = result(api, tracking_id)
    assert status == 200
    assert body == {
        "id": tracking_id,
        "status": "succeeded",
        "endpoint": "example",
        "submitted_at": body["submitted_at"],
        "finished_at": body["finished_at"],
        "variant": "Challenger",
        "predictions": predictions,
    }
    assert body["submitted_at"] <= body["finished_at"]
    assert isinstance(record(resources, tracking_id)["result"], str)  # stored as JSON, not as Decimals
    assert dead_letters(resources) == []


def test_an_async_request_for_a_variant_is_scored_by_that_variant_alone(api, worker, stub, resources):
    tracking_id = submit(api, variant="Challenger")
    stub.add_response(
        "invoke_endpoint",
        invoked([{"score": 0.2}], variant="Challenger"),
        invocation([ROW], InferenceId=tracking_id, TargetVariant="Challenger"),
    )

    assert work(worker, resources, receive(resources)) == []
    assert result(api, tracking_id)[1]["variant"] == "Challenger"


def test_a_queued_message_naming_a_variant_the_endpoint_lacks_is_quarantined(worker, stub, resources):
    body = json.dumps({"id": str(uuid.uuid4()), "endpoint": "churn", "instances": [ROW], "variant": "Challenger"})

    assert work(worker, resources, send(resources, body)) == []
    [(reason, code, _)] = dead_letters(resources)
    assert code == "invalid-request"
    assert "unknown variant 'Challenger' of endpoint 'churn'" in reason


def test_a_scoring_the_model_refuses_is_stored_failed_with_the_container_s_reason(api, worker, stub, resources, capsys):
    tracking_id = submit(api)
    add_model_error(stub, 400, '{"message": "expected 30 features, got 3"}')

    assert work(worker, resources, receive(resources)) == []

    status, body = result(api, tracking_id)
    assert (status, body["status"], body["reason"]) == (200, "failed", "expected 30 features, got 3")
    assert "predictions" not in body
    assert "ScoringRefused" in emitted_metrics(capsys)
    assert dead_letters(resources) == []


def test_an_answer_outside_the_container_contract_is_stored_failed_without_a_retry(
    api, worker, stub, resources, capsys
):
    tracking_id = submit(api)
    stub.add_response("invoke_endpoint", invoked(b'{"predictions": []}'))

    assert work(worker, resources, receive(resources)) == []

    assert result(api, tracking_id)[1]["reason"] == "the endpoint answered with an unreadable response"
    assert "ScoringUnreadable" in emitted_metrics(capsys)


def test_a_redelivered_message_is_not_scored_twice(api, worker, stub, resources, capsys):
    tracking_id = submit(api)
    stub.add_response("invoke_endpoint", invoked(PREDICTIONS))
    [message] = receive(resources, visibility_timeout=0)
    assert work(worker, resources, [message], delete=False) == []
    first = record(resources, tracking_id)

    # SQS delivers at least once: the same message again, as a fresh receive.
    [again] = receive(resources)
    assert again["MessageId"] == message["MessageId"]
    assert work(worker, resources, [again]) == []

    assert record(resources, tracking_id) == first
    assert emitted_metrics(capsys).count("Duplicates") == 1


def test_a_duplicate_that_finishes_first_wins_and_the_slower_one_changes_nothing(api, worker, resources):
    tracking_id = submit(api)
    [message] = receive(resources)

    class RacingRuntime:
        """Scores, but only after a concurrent delivery of the same message has finished the record."""

        def invoke_endpoint(self, **_: Any) -> dict[str, Any]:
            resources.table.update_item(
                Key={"id": tracking_id},
                UpdateExpression="SET #s = :s, #r = :r",
                ExpressionAttributeNames={"#s": "status", "#r": "result"},
                ExpressionAttributeValues={":s": "succeeded", ":r": '[{"score":0.5}]'},
            )
            return invoked([{"score": 0.99}])

    worker.worker.runtime = RacingRuntime()

    assert work(worker, resources, [message]) == []

    assert record(resources, tracking_id)["result"] == '[{"score":0.5}]'


# Retries and giving up.


@pytest.mark.parametrize(
    ("code", "http_status"),
    [("ThrottlingException", 400), ("ValidationError", 400), ("InternalFailure", 500), ("ServiceUnavailable", 503)],
)
def test_a_transient_failure_is_reported_so_sqs_retries_and_the_record_stays_pending(
    api, worker, stub, resources, capsys, code, http_status
):
    tracking_id = submit(api)
    stub.add_client_error("invoke_endpoint", service_error_code=code, http_status_code=http_status)
    [message] = receive(resources)

    assert work(worker, resources, [message]) == [message["MessageId"]]

    assert record(resources, tracking_id)["status"] == "pending"
    assert dead_letters(resources) == []
    assert "Retried" in emitted_metrics(capsys)


def test_the_container_s_own_failure_is_retried(api, worker, stub, resources):
    submit(api)
    add_model_error(stub, 503, "worker died")
    [message] = receive(resources)

    assert work(worker, resources, [message]) == [message["MessageId"]]


def test_on_the_last_attempt_the_record_is_failed_and_the_message_kept_with_its_reason(
    api, worker, stub, resources, capsys
):
    tracking_id = submit(api)
    for _ in range(3):
        stub.add_client_error("invoke_endpoint", service_error_code="ThrottlingException", http_status_code=400)
    failed_ids = []
    for _ in range(3):  # maxReceiveCount 3: the third receive is the last attempt
        [message] = receive(resources, visibility_timeout=0)
        failed_ids.append(work(worker, resources, [message]))

    assert failed_ids == [[message["MessageId"]], [message["MessageId"]], []]
    reason = "gave up after 3 attempts: the endpoint 'example' is throttled; retry with back-off"
    assert result(api, tracking_id)[1]["reason"] == reason
    [(dead_reason, code, body)] = dead_letters(resources)
    assert (dead_reason, code) == (reason, "gave-up")
    assert json.loads(body)["id"] == tracking_id
    assert "GaveUp" in emitted_metrics(capsys)


def test_one_message_failing_does_not_fail_the_others_in_its_batch(api, worker, stub, resources):
    first, second = submit(api), submit(api)
    messages = receive(resources)
    order = [json.loads(message["Body"])["id"] for message in messages]
    assert sorted(order) == sorted([first, second])
    stub.add_client_error("invoke_endpoint", service_error_code="ThrottlingException", http_status_code=400)
    stub.add_response("invoke_endpoint", invoked(PREDICTIONS))

    assert work(worker, resources, messages) == [messages[0]["MessageId"]]

    assert record(resources, order[0])["status"] == "pending"
    assert record(resources, order[1])["status"] == "succeeded"


def test_a_result_too_large_for_a_record_is_stored_failed_with_the_reason(api, worker, stub, resources, monkeypatch):
    tracking_id = submit(api)
    monkeypatch.setattr(worker.worker, "max_result_bytes", 10)
    stub.add_response("invoke_endpoint", invoked(PREDICTIONS))

    assert work(worker, resources, receive(resources)) == []

    assert "more than the 10 a record holds" in result(api, tracking_id)[1]["reason"]


# Quarantine.


@pytest.mark.parametrize(
    ("body", "code", "reason"),
    [
        ("not json", "malformed-json", "the body is not valid JSON"),
        ("[1, 2]", "malformed-json", "the body must be a JSON object, not a JSON list"),
        (json.dumps({"endpoint": "example", "instances": [ROW]}), "invalid-id", "'id' must be a tracking id"),
        (json.dumps({"id": "42", "endpoint": "example", "instances": [ROW]}), "invalid-id", "not '42'"),
        (
            json.dumps({"id": "0b7e8f52-3c1d-4e5f-9a6b-7c8d9e0f1a2b", "endpoint": "example", "instances": [ROW]}),
            "unknown-id",
            "no pending record has the id 0b7e8f52-3c1d-4e5f-9a6b-7c8d9e0f1a2b",
        ),
    ],
)
def test_a_malformed_message_lands_on_the_dead_letter_queue_with_its_reason(
    worker, stub, resources, capsys, body, code, reason
):
    messages = send(resources, body)

    assert work(worker, resources, messages) == []  # processed: no retry can fix it

    [(dead_reason, dead_code, dead_body)] = dead_letters(resources)
    assert reason in dead_reason
    assert "\n" not in dead_reason
    assert (dead_code, dead_body) == (code, body)
    assert emitted_metrics(capsys) == ["Quarantined"]


@pytest.mark.parametrize(
    ("changes", "code", "reason"),
    [
        ({"endpoint": "fraud"}, "unknown-endpoint", "unknown endpoint 'fraud'"),
        ({"instances": [[1, 2], [3]]}, "invalid-request", "instances[1] has 1 values; instances[0] has 2"),
        ({"instances": []}, "invalid-request", "'instances' must be a non-empty array of rows"),
        ({"explain": "yes"}, "invalid-request", "'explain' must be true or false, not 'yes'"),
    ],
)
def test_a_malformed_message_whose_record_exists_fails_that_record_with_the_reason(
    api, worker, stub, resources, changes, code, reason
):
    tracking_id = submit(api)
    [message] = receive(resources)
    body = json.dumps({**json.loads(message["Body"]), **changes})
    resources.sqs.delete_message(QueueUrl=resources.queue_url, ReceiptHandle=message["ReceiptHandle"])

    assert work(worker, resources, send(resources, body)) == []

    assert result(api, tracking_id)[1]["reason"] == reason
    assert dead_letters(resources) == [(reason, code, body)]


def test_a_quarantine_that_cannot_reach_the_dead_letter_queue_is_retried(worker, stub, resources, monkeypatch):
    monkeypatch.setattr(worker.worker, "dead_letter_queue_url", resources.queue_url + "-deleted")
    [message] = send(resources, "not json")

    assert work(worker, resources, [message]) == [message["MessageId"]]


def test_an_empty_event_is_an_empty_answer(worker):
    assert worker.handler({"Records": []}, LambdaContext()) == {"batchItemFailures": []}


def test_tracking_ids_are_version_4_uuids(api):
    tracking_id = submit(api)

    assert uuid.UUID(tracking_id).version == 4
