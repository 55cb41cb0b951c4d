"""Progress events: rate-limited, batched, never in training's way, and routable by an EventBridge rule."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import boto3
import pytest
from moto import mock_aws

from mlops_training.progress import DETAIL_TYPE, MAX_ENTRIES_PER_CALL, ProgressReporter
from mlops_training.train import main
from tests.unit.training.conftest import job

IDENTITY = {"run_id": "r-1", "tenant": "acme", "model": "churn", "trial": "3", "training_job_name": "job-1"}


class RecordingClient:
    """Stands in for the EventBridge client: records each PutEvents call, fails when told to."""

    def __init__(self, failures: int = 0, raise_error: bool = False) -> None:
        self.calls: list[list[dict]] = []
        self.failures = failures
        self.raise_error = raise_error
        self.lock = threading.Lock()

    def put_events(self, Entries):
        with self.lock:
            self.calls.append(Entries)
        if self.raise_error:
            raise RuntimeError("EventBridge is throttling")
        return {"FailedEntryCount": self.failures, "Entries": []}

    @property
    def epochs(self) -> list[int]:
        return [json.loads(entry["Detail"])["epoch"] for call in self.calls for entry in call]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def reporter(client, clock, interval=10.0) -> ProgressReporter:
    return ProgressReporter(
        client,
        bus="mlops-dev-training",
        source="mlops.training",
        identity=IDENTITY,
        interval_seconds=interval,
        clock=clock,
        now=lambda: datetime(2026, 11, 24, tzinfo=UTC),
    )


def test_ten_thousand_rounds_send_a_handful_of_events_including_the_first_and_the_last():
    client, clock = RecordingClient(), FakeClock()
    progress = reporter(client, clock)

    for epoch in range(1, 10_001):
        progress.report(epoch, {"validation:logloss": 1 / epoch})
        clock.now += 0.01  # 100 s of training in all
    progress.close()

    assert client.epochs[0] == 1
    assert client.epochs[-1] == 10_000
    assert len(client.epochs) <= 100 / 10 + 2
    assert client.epochs == sorted(set(client.epochs))


def test_events_carry_the_run_identity_every_metric_and_the_time():
    client, clock = RecordingClient(), FakeClock()
    progress = reporter(client, clock, interval=0)

    progress.report(1, {"train:logloss": 0.5, "validation:logloss": float("nan")})
    progress.close()

    [[entry]] = client.calls
    assert entry["DetailType"] == DETAIL_TYPE == "Training Progress"
    assert entry["Source"] == "mlops.training"
    assert entry["EventBusName"] == "mlops-dev-training"
    assert json.loads(entry["Detail"]) == {
        **IDENTITY,
        "epoch": 1,
        "metrics": {"train:logloss": 0.5, "validation:logloss": None},  # NaN has no JSON form
        "time": "2026-11-24T00:00:00.000Z",
    }


def test_sends_are_batched_up_to_ten_entries_a_call():
    client, clock = RecordingClient(), FakeClock()
    progress = reporter(client, clock, interval=0)

    for epoch in range(1, 26):
        progress.report(epoch, {"m": 1.0})
    progress.close()

    assert client.epochs == list(range(1, 26))
    assert all(len(call) <= MAX_ENTRIES_PER_CALL for call in client.calls)


@pytest.mark.parametrize("client", [RecordingClient(raise_error=True), RecordingClient(failures=1)])
def test_a_failed_send_is_counted_and_logged_and_training_goes_on(client, caplog):
    clock = FakeClock()
    progress = reporter(client, clock, interval=0)

    for epoch in range(1, 4):
        progress.report(epoch, {"m": 1.0})
    progress.close()

    assert progress.failed >= 1
    assert "progress events" in caplog.text


@mock_aws
def test_a_training_job_sends_its_progress_to_the_bus_where_a_rule_routes_it(sagemaker_root, monkeypatch):
    events, sqs = boto3.client("events", region_name="eu-west-1"), boto3.client("sqs", region_name="eu-west-1")
    events.create_event_bus(Name="mlops-dev-training")
    queue_url = sqs.create_queue(QueueName="progress")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(
        Name="progress",
        EventBusName="mlops-dev-training",
        EventPattern=json.dumps({"source": ["mlops.training"], "detail-type": ["Training Progress"]}),
    )
    events.put_targets(Rule="progress", EventBusName="mlops-dev-training", Targets=[{"Id": "q", "Arn": queue_arn}])
    monkeypatch.setenv("TRAINING_JOB_NAME", "mlops-dev-acme-churn-r1-t3-a1")
    paths = sagemaker_root(
        "binary",
        job(
            "xgboost",
            "binary",
            num_round="15",
            mlops_event_bus="mlops-dev-training",
            mlops_region="eu-west-1",
            mlops_run_id="r-1",
            mlops_tenant="acme",
            mlops_model="churn",
            mlops_trial="3",
            mlops_progress_interval_seconds="3600",
            mlops_progress_every_rounds="1000",
        ),
    )

    assert main(paths) == 0

    received = []
    while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages"):
        received += [json.loads(message["Body"]) for message in batch]
        sqs.delete_message_batch(
            QueueUrl=queue_url, Entries=[{"Id": m["MessageId"], "ReceiptHandle": m["ReceiptHandle"]} for m in batch]
        )
    details = sorted((event["detail"] for event in received), key=lambda detail: detail["epoch"])
    rounds = json.loads(paths.model.joinpath("metadata.json").read_text())
    # An hour's interval and a round count past the last: only the first round and the last one are sent.
    assert details[0]["epoch"] == 1
    assert len(details) == 2
    assert details[-1]["epoch"] >= rounds["round"]
    assert details[0]["training_job_name"] == "mlops-dev-acme-churn-r1-t3-a1"
    assert {details[0]["tenant"], details[0]["model"], details[0]["trial"], details[0]["run_id"]} == {
        "acme",
        "churn",
        "3",
        "r-1",
    }
    assert "validation:logloss" in details[0]["metrics"]
