"""Progress events: rate-limited, batched, never in training's way, and routable by an EventBridge rule."""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, datetime

import boto3
import pytest
from moto import mock_aws

from mlops_platform.training.progress_events import DETAIL_TYPE, MAX_ENTRIES_PER_CALL, ProgressReporter
from mlops_platform.training.train import main
from mlops_platform.training.train import metric_line as ORIGINAL_METRIC_LINE
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


def test_a_fast_trial_also_sends_every_nth_round_so_it_draws_a_curve():
    """200 rounds within one interval: time alone would send two points."""
    client, clock = RecordingClient(), FakeClock()
    progress = ProgressReporter(
        client,
        bus="mlops-dev-training",
        source="mlops.training",
        identity=IDENTITY,
        interval_seconds=10.0,
        every_rounds=4,
        clock=clock,
    )

    for epoch in range(1, 202):
        progress.report(epoch, {"validation:logloss": 1 / epoch})
        clock.now += 0.001
    progress.close()

    assert client.epochs == [1, *range(4, 201, 4), 201]


def test_a_slow_trial_still_reports_by_time_between_round_counts():
    client, clock = RecordingClient(), FakeClock()
    progress = ProgressReporter(
        client,
        bus="b",
        source="mlops.training",
        identity=IDENTITY,
        interval_seconds=10.0,
        every_rounds=100,
        clock=clock,
    )

    for epoch in range(1, 31):
        progress.report(epoch, {"m": 1.0})
        clock.now += 4.0  # a round every 4 s
    progress.close()

    # By time (every third round, 12 s apart) until round 30, the last.
    assert client.epochs == [1, 4, 7, 10, 13, 16, 19, 22, 25, 28, 30]


def test_a_training_job_of_hundreds_of_fast_rounds_sends_about_fifty(sagemaker_root, monkeypatch):
    client = RecordingClient()
    monkeypatch.setattr("boto3.client", lambda *args, **kwargs: client)
    paths = sagemaker_root(
        "binary",
        job(
            "xgboost",
            "binary",
            num_round="200",
            max_depth="2",
            early_stopping_rounds="0",
            mlops_event_bus="bus",
            mlops_progress_interval_seconds="3600",
        ),
    )

    assert main(paths) == 0

    # train.CURVE_POINTS: every 4th of 200 rounds, and the first; an hour's interval sends nothing more.
    assert client.epochs == [1, *range(4, 201, 4)]
    details = [json.loads(entry["Detail"]) for call in client.calls for entry in call]
    kept = json.loads((paths.model / "metadata.json").read_text())["round"]
    assert details[-1]["kept"]["epoch"] == kept == 200  # early stopping off: the last round
    assert details[-1]["objective"] == "validation:logloss"


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
    assert re.fullmatch(r"\d{8}T\d{6}\.\d{3}Z", details[0]["attempt"])  # this container's start
    assert {detail["attempt"] for detail in details} == {details[0]["attempt"]}
    assert {details[0]["tenant"], details[0]["model"], details[0]["trial"], details[0]["run_id"]} == {
        "acme",
        "churn",
        "3",
        "r-1",
    }
    assert "validation:logloss" in details[0]["metrics"]


# -- attempts: a retried trial's curve apart from the first one's, end to end


class SpotInterruption(Exception):
    pass


def interrupt_at(monkeypatch, round_number: int | None) -> None:
    """The instance goes away when the job prints round ``round_number`` (before that round's checkpoint)."""
    import mlops_platform.training.train as train_module

    def metric_line(label: str, metrics: dict) -> str:
        if label == f"round {round_number}":
            raise SpotInterruption
        return ORIGINAL_METRIC_LINE(label, metrics)

    monkeypatch.setattr(train_module, "metric_line", metric_line)


@mock_aws
def test_a_retried_trials_attempts_each_draw_their_own_curve_in_the_progress_table(sagemaker_root, monkeypatch):
    """Three runs of one trial: interrupted, restarted by SageMaker (same job), retried by Step Functions (new job).

    The events are the training entry point's own, delivered to the real progress handler.
    """
    from tests.unit.test_progress_handler import (
        PREFIX,
        SOURCE,
        LambdaContext,
        RecordingEventBridge,
        create_progress_resources,
        delivered,
        load_progress_handler,
    )

    table, _, queue_url = create_progress_resources()
    handler = load_progress_handler(monkeypatch, queue_url)
    bus = RecordingEventBridge()
    real_client = boto3.client
    monkeypatch.setattr(
        "boto3.client", lambda service, **kw: bus if service == "events" else real_client(service, **kw)
    )
    paths = sagemaker_root(
        "binary",
        job(
            "xgboost",
            "binary",
            num_round="40",
            early_stopping_rounds="0",
            mlops_checkpoint_every="10",
            mlops_progress_every_rounds="1",
            mlops_event_bus="mlops-dev-progress",
            mlops_event_source=SOURCE,
            mlops_run_id="run-1",
            mlops_trial="00001",
        ),
    )
    runs = [
        (f"{PREFIX}-0123456789-00001-a0", 25),
        (f"{PREFIX}-0123456789-00001-a0", 35),
        (f"{PREFIX}-0123456789-00001-a1", None),
    ]
    for job_name, interrupted_at in runs:
        monkeypatch.setenv("TRAINING_JOB_NAME", job_name)
        interrupt_at(monkeypatch, interrupted_at)
        assert main(paths) == (1 if interrupted_at else 0)
        paths.failure.unlink(missing_ok=True)

    for number, entry in enumerate(bus.entries):
        assert handler.handler(delivered(entry, number), LambdaContext())["outcome"] == "progress-recorded"

    items = table.query(KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": "RUN#run-1"})["Items"]
    summaries = [item for item in items if item["kind"] == "attempt"]
    curves: dict[str, list[int]] = {}
    for item in items:
        if item["kind"] == "progress":
            curves.setdefault(item["attempt"], []).append(int(item["epoch"]))
    assert len(summaries) == 3
    first, restarted, retried = sorted(curves)  # an attempt is its start time: they sort in the order they ran
    # Each resumed from the last checkpoint (every 10 rounds): rounds 21-24 and 31-34 ran twice, once per attempt.
    assert curves[first] == list(range(1, 25))
    assert curves[restarted] == list(range(21, 35))
    assert curves[retried] == list(range(31, 41))
    jobs = {item["attempt"]: item["training_job_name"] for item in summaries}
    assert [jobs[first], jobs[restarted], jobs[retried]] == [name for name, _ in runs]
    assert {int(item["epoch"]) for item in summaries} == {24, 34, 40}
