"""The progress handler against moto DynamoDB and SQS: every event is recorded once or quarantined with a reason.

``events/sagemaker_training_job_state_change.json`` is the training-job example from AWS's "Events
that Amazon SageMaker AI sends to Amazon EventBridge" (SageMaker developer guide), verbatim but for
the platform's ``mlops_*`` hyperparameters added to its ``HyperParameters``. ``Training Progress``
events are made by the training container's own emitter (``mlops_platform.training.train.progress_reporter``).
"""

from __future__ import annotations

import copy
import json
import math
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from tests.conftest import load_handler
from tests.lambda_context import LambdaContext

TABLE = "progress-test"
PREFIX = "mlops-dev"
SOURCE = "mlops.training"
JOB = f"{PREFIX}-0123456789-00001-a1"
ATTEMPT = "20261124T235000.000Z"  # the container's start: mlops_platform.training.train.attempt_of
SAMPLE = json.loads((Path(__file__).parent / "events" / "sagemaker_training_job_state_change.json").read_text())
DEFAULT_METRICS = {"validation:auc": 0.9731, "validation:logloss": 0.12, "train:auc": math.nan}
SENT_AT = datetime(2026, 11, 24, 23, 59, 30, 123000, tzinfo=UTC)


CONTEXT = LambdaContext("progress")


class RecordingEventBridge:
    """Stands in for the container's EventBridge client: keeps every PutEvents entry."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.entries.extend(Entries)
        return {"FailedEntryCount": 0, "Entries": [{"EventId": str(i)} for i, _ in enumerate(Entries)]}


def delivered(entry: dict[str, Any], number: int = 1) -> dict[str, Any]:
    """A PutEvents entry as EventBridge hands it to the rule's target (the function)."""
    return {
        "version": "0",
        "id": f"5b9f3d2e-0000-0000-0000-{number:012d}",
        "detail-type": entry["DetailType"],
        "source": entry["Source"],
        "account": "111111111111",
        "time": "2026-11-24T23:59:31Z",
        "region": "eu-west-1",
        "resources": [],
        "detail": json.loads(entry["Detail"]),
    }


def sent_entry(
    *,
    epoch: int,
    metrics: dict[str, float],
    kept: tuple[int, dict[str, float]] | None,
    run_id: str = "run-1",
    tenant: str = "example",
    model: str = "xgboost",
    trial: str = "00001",
    training_job_name: str = JOB,
    attempt: str = ATTEMPT,
) -> dict[str, Any]:
    """The PutEvents entry the training container sends for one round, with this job's identity."""
    from mlops_platform.training.settings import parse
    from mlops_platform.training.train import progress_reporter

    hyperparameters = {
        "mlops_algorithm": "xgboost",
        "mlops_problem_type": "binary",
        "mlops_target": "target",
        "mlops_run_id": run_id,
        "mlops_tenant": tenant,
        "mlops_model": model,
        "mlops_trial": trial,
        "mlops_event_bus": "mlops-dev-progress",
        "mlops_event_source": SOURCE,
    }
    client = RecordingEventBridge()
    reporter = progress_reporter(
        parse(hyperparameters).platform,
        training_job_name,
        attempt=attempt,
        objective="validation:auc",
        every_rounds=1,
        client=client,
        now=lambda: SENT_AT,
    )
    reporter.report(epoch, metrics, kept or (epoch, metrics))
    reporter.close()
    [entry] = client.entries
    return entry


IDENTITY = ("run_id", "tenant", "model", "trial", "training_job_name", "attempt")


def progress_event(
    *, epoch: Any = 3, metrics: dict[str, Any] | None = None, kept: tuple[int, dict] | None = None, **changes: Any
) -> dict[str, Any]:
    """What EventBridge delivers for a round the container reported; other ``changes`` then alter its detail."""
    identity = {name: changes.pop(name) for name in IDENTITY if isinstance(changes.get(name), str)}
    event = delivered(
        sent_entry(epoch=epoch, metrics=DEFAULT_METRICS if metrics is None else metrics, kept=kept, **identity)
    )
    event["detail"].update(changes)
    return event


def tampered(**detail: Any) -> dict[str, Any]:
    """An event the emitter never sends (a NaN written raw, metrics as a list): a handler must still survive it."""
    event = progress_event()
    event["detail"].update(detail)
    return event


def state_change(
    status: str = "InProgress",
    time: str = "2026-11-24T23:50:00Z",
    *,
    secondary: str | None = None,
    last_modified: Any = None,
    job: str = JOB,
    **detail_changes: Any,
) -> dict[str, Any]:
    """AWS's sample event, for one of the platform's jobs, at ``time`` and in ``status``."""
    event = copy.deepcopy(SAMPLE)
    event["time"] = time
    detail = event["detail"]
    detail.update(
        TrainingJobName=job,
        TrainingJobStatus=status,
        SecondaryStatus=secondary or {"InProgress": "Training", "Stopping": "Stopping"}.get(status, status),
        HyperParameters={**detail["HyperParameters"], "mlops_run_id": "run-1", "mlops_trial": "00001"},
    )
    if last_modified is not None:
        detail["LastModifiedTime"] = last_modified
    if status == "Failed":
        detail["FailureReason"] = "AlgorithmError: out of memory"
    detail.update(detail_changes)
    return event


def create_progress_resources() -> tuple[Any, Any, str]:
    """The progress table and the quarantine queue, in moto (call inside ``mock_aws``)."""
    dynamodb = boto3.client("dynamodb", region_name="eu-west-1")
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    sqs = boto3.client("sqs", region_name="eu-west-1")
    queue_url = sqs.create_queue(QueueName="progress-quarantine")["QueueUrl"]
    return boto3.resource("dynamodb", region_name="eu-west-1").Table(TABLE), sqs, queue_url


def load_progress_handler(monkeypatch, queue_url: str) -> Any:
    monkeypatch.setenv("TABLE_NAME", TABLE)
    monkeypatch.setenv("QUARANTINE_QUEUE_URL", queue_url)
    monkeypatch.setenv("EVENT_SOURCE", SOURCE)
    monkeypatch.setenv("JOB_PREFIX", PREFIX)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "progress")
    return load_handler("progress")


@pytest.fixture
def aws():
    with mock_aws():
        yield create_progress_resources()


@pytest.fixture
def progress(aws, monkeypatch):
    _, _, queue_url = aws
    return load_progress_handler(monkeypatch, queue_url)


@pytest.fixture
def table(aws):
    return aws[0]


def rows(table) -> list[dict[str, Any]]:
    return table.scan()["Items"]


def quarantined(aws) -> list[tuple[str, dict[str, Any]]]:
    """(the "reason" message attribute, the parsed body) of each message on the quarantine queue."""
    _, sqs, queue_url = aws
    found = []
    while messages := sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    ).get("Messages"):
        for message in messages:
            found.append((message["MessageAttributes"]["reason"]["StringValue"], json.loads(message["Body"])))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return found


def run(progress, event: Any) -> str:
    return progress.handler(event, CONTEXT)["outcome"]


# Rounds.


def curve_rows(table) -> list[dict[str, Any]]:
    return [item for item in rows(table) if item["sk"].startswith("CURVE#")]


def attempt_rows(table) -> list[dict[str, Any]]:
    return [item for item in rows(table) if "#ATTEMPT#" in item["sk"]]


IDENTITY_ROW = {
    "run_id": "run-1",
    "tenant": "example",
    "model": "xgboost",
    "trial": "00001",
    "attempt": ATTEMPT,
    "training_job_name": JOB,
}


def test_a_round_is_written_as_its_attempts_curve_row_and_summary_with_decimal_metrics(progress, table, aws):
    assert run(progress, progress_event()) == "progress-recorded"

    metrics = {"validation:auc": Decimal("0.9731"), "validation:logloss": Decimal("0.12"), "train:auc": None}
    assert curve_rows(table) == [
        {
            "pk": "RUN#run-1",
            "sk": f"CURVE#00001#{ATTEMPT}#0000003",
            "kind": "progress",
            **IDENTITY_ROW,
            "epoch": Decimal(3),
            "metrics": metrics,
            "time": "2026-11-24T23:59:30.123Z",
        }
    ]
    assert attempt_rows(table) == [
        {
            "pk": "RUN#run-1",
            "sk": f"TRIAL#00001#ATTEMPT#{ATTEMPT}",
            "kind": "attempt",
            **IDENTITY_ROW,
            "objective": "validation:auc",
            "epoch": Decimal(3),
            "metrics": metrics,
            "kept_epoch": Decimal(3),
            "kept_metrics": metrics,
            "time": "2026-11-24T23:59:30.123Z",
        }
    ]
    assert quarantined(aws) == []


def test_epochs_sort_numerically_within_an_attempts_curve(progress, table):
    for epoch in (10, 0, 2, 1_000_000):
        run(progress, progress_event(epoch=epoch))

    items = table.query(
        KeyConditionExpression="pk = :pk AND begins_with(sk, :curve)",
        ExpressionAttributeValues={":pk": "RUN#run-1", ":curve": f"CURVE#00001#{ATTEMPT}#"},
    )["Items"]
    assert [item["epoch"] for item in items] == [0, 2, 10, 1_000_000]


def test_a_redelivered_round_neither_duplicates_nor_rewrites_its_rows(progress, table, aws):
    run(progress, progress_event())
    before = rows(table)
    # The same round of the same attempt again, as a redelivery: different time, other values.
    again = progress_event(metrics={"validation:auc": 0.5})
    again["detail"]["time"] = "2026-11-25T00:10:00Z"

    assert run(progress, progress_event()) == "progress-skipped"
    assert run(progress, again) == "progress-skipped"
    assert rows(table) == before
    assert len(before) == 2  # the round and its attempt's summary
    assert quarantined(aws) == []


def test_an_attempts_summary_holds_its_latest_round_and_kept_round_whatever_the_delivery_order(progress, table):
    best = {"validation:auc": 0.97}
    run(progress, progress_event(epoch=20, metrics={"validation:auc": 0.95}, kept=(12, best)))
    run(progress, progress_event(epoch=10, metrics={"validation:auc": 0.96}, kept=(10, {"validation:auc": 0.96})))

    [summary] = attempt_rows(table)
    assert (summary["epoch"], summary["metrics"]) == (20, {"validation:auc": Decimal("0.95")})
    assert (summary["kept_epoch"], summary["kept_metrics"]) == (12, {"validation:auc": Decimal("0.97")})
    assert [item["epoch"] for item in curve_rows(table)] == [10, 20]


def test_an_event_without_an_attempt_counts_as_its_jobs(progress, table):
    """An image from before attempts: its job's rounds still form one curve of their own."""
    event = progress_event()
    del event["detail"]["attempt"]

    assert run(progress, event) == "progress-recorded"
    assert [item["sk"] for item in rows(table)] == [f"CURVE#00001#{JOB}#0000003", f"TRIAL#00001#ATTEMPT#{JOB}"]


def test_integer_and_extreme_but_storable_metrics_are_kept_exactly(progress, table):
    run(progress, progress_event(metrics={"rounds": 7, "tiny": 1e-120, "big": 1.5e100, "zero": 0.0}))

    [item] = curve_rows(table)
    assert item["metrics"] == {
        "rounds": Decimal(7),
        "tiny": Decimal("1e-120"),
        "big": Decimal("1.5e100"),
        "zero": Decimal(0),
    }


# Status.


def status_rows(table) -> list[dict[str, Any]]:
    return [item for item in rows(table) if item["sk"].endswith("#STATUS")]


def test_the_real_sagemaker_sample_is_parsed_into_its_trials_status_row(progress, table, aws):
    event = copy.deepcopy(SAMPLE)
    event["detail"]["TrainingJobName"] = JOB  # the sample's name is not one of the platform's

    assert run(progress, event) == "status-recorded"

    [item] = status_rows(table)
    assert {key: value for key, value in item.items() if key != "sequence"} == {
        "pk": "RUN#run-20181006",
        "sk": "TRIAL#00001#STATUS",
        "kind": "status",
        "run_id": "run-20181006",
        "tenant": "example",
        "model": "xgboost",
        "trial": "00001",
        "training_job_name": JOB,
        "status": "Completed",
        "secondary_status": "Completed",
        "failure_reason": None,
        "updated_at": "2018-10-06T12:26:13Z",
    }
    assert quarantined(aws) == []


def test_the_sample_as_published_is_not_a_platform_job_and_is_quarantined(progress, table, aws):
    assert run(progress, SAMPLE) == "quarantined"

    assert rows(table) == []
    [(reason, body)] = quarantined(aws)
    assert reason == "foreign-job"
    assert body["event"] == SAMPLE


def test_a_newer_status_overwrites_the_older_one(progress, table):
    run(progress, state_change("InProgress", "2026-11-24T23:50:00Z"))
    assert run(progress, state_change("Failed", "2026-11-24T23:55:00Z")) == "status-recorded"

    [item] = status_rows(table)
    assert item["status"] == "Failed"
    assert item["failure_reason"] == "AlgorithmError: out of memory"
    assert item["updated_at"] == "2026-11-24T23:55:00Z"


def test_an_older_status_arriving_late_is_ignored(progress, table):
    run(progress, state_change("Completed", "2026-11-24T23:55:00Z"))
    before = status_rows(table)

    assert run(progress, state_change("InProgress", "2026-11-24T23:50:00Z")) == "status-skipped"
    assert status_rows(table) == before
    assert before[0]["status"] == "Completed"


def test_the_same_status_event_twice_is_one_unchanged_row(progress, table):
    event = state_change("InProgress", "2026-11-24T23:50:00Z")
    run(progress, event)
    before = rows(table)

    assert run(progress, copy.deepcopy(event)) == "status-skipped"
    assert rows(table) == before
    assert len(before) == 1


def test_events_of_the_same_second_are_ordered_by_the_jobs_last_modified_time_then_by_status(progress, table):
    second = "2026-11-24T23:50:00Z"
    uploading = state_change("InProgress", second, secondary="Uploading", last_modified=1_700_000_000_500)
    training = state_change("InProgress", second, secondary="Training", last_modified="1700000000100")
    completed = state_change("Completed", second, last_modified=1_700_000_000_500)

    run(progress, uploading)
    assert run(progress, training) == "status-skipped"
    assert run(progress, completed) == "status-recorded"
    assert run(progress, uploading) == "status-skipped"  # a terminal status is never undone by its peers

    [item] = status_rows(table)
    assert (item["status"], item["secondary_status"]) == ("Completed", "Completed")


def test_a_trial_retried_as_a_new_job_takes_the_new_jobs_status(progress, table):
    first, second = f"{PREFIX}-0123456789-00001-a1", f"{PREFIX}-0123456789-00001-a2"
    run(progress, state_change("Failed", "2026-11-24T23:50:00Z", job=first))
    run(progress, state_change("InProgress", "2026-11-24T23:51:00Z", job=second))
    run(progress, state_change("Failed", "2026-11-24T23:50:00Z", job=first))  # redelivered late

    [item] = status_rows(table)
    assert (item["training_job_name"], item["status"]) == (second, "InProgress")


def test_progress_and_status_rows_of_a_trial_live_side_by_side(progress, table):
    run(progress, progress_event(epoch=1))
    run(progress, state_change("Completed", "2026-11-24T23:59:59Z"))
    run(progress, progress_event(epoch=2))

    items = table.query(KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": "RUN#run-1"})["Items"]
    # The curves apart; each trial's attempts then its status under TRIAL#, one small query for a standing.
    assert [item["sk"] for item in items] == [
        f"CURVE#00001#{ATTEMPT}#0000001",
        f"CURVE#00001#{ATTEMPT}#0000002",
        f"TRIAL#00001#ATTEMPT#{ATTEMPT}",
        "TRIAL#00001#STATUS",
    ]


# Quarantine.


def without(mapping: dict[str, Any], key: str) -> dict[str, Any]:
    return {name: value for name, value in mapping.items() if name != key}


def hyperparameters_without(key: str) -> dict[str, Any]:
    return without(state_change()["detail"]["HyperParameters"], key)


MALFORMED = [
    ({**progress_event(), "detail-type": "Training Started"}, "unknown-event"),
    ({**progress_event(), "source": "someone.else"}, "unknown-event"),
    (without(progress_event(), "source"), "unknown-event"),
    ({**state_change(), "detail-type": "SageMaker Transform Job State Change"}, "unknown-event"),
    ({**progress_event(), "detail": "epoch 3"}, "invalid-field"),
    (progress_event(run_id=None), "missing-field"),
    ({**progress_event(), "detail": without(progress_event()["detail"], "trial")}, "missing-field"),
    ({**progress_event(), "detail": without(progress_event()["detail"], "metrics")}, "missing-field"),
    (tampered(epoch="3"), "invalid-field"),
    (tampered(epoch=3.0), "invalid-field"),
    (progress_event(epoch=True), "invalid-field"),
    (progress_event(epoch=-1), "invalid-field"),
    (progress_event(epoch=10_000_000), "invalid-field"),
    (progress_event(trial="00#01"), "invalid-field"),
    (progress_event(run_id=""), "invalid-field"),
    (progress_event(tenant=7), "invalid-field"),
    (tampered(metrics=[0.9]), "invalid-field"),
    (tampered(metrics={"validation:auc": "0.9"}), "invalid-field"),
    (progress_event(metrics={"validation:auc": True}), "invalid-field"),
    (tampered(metrics={"validation:auc": float("nan")}), "invalid-field"),
    (progress_event(metrics={"validation:auc": 1e-300}), "invalid-field"),
    (progress_event(metrics={"validation:auc": 10**40}), "invalid-field"),
    (progress_event(time="yesterday"), "invalid-field"),
    (progress_event(time="2026-11-24T23:59:30"), "invalid-field"),
    (progress_event(training_job_name="someone-else-job"), "foreign-job"),
    (progress_event(training_job_name=PREFIX), "foreign-job"),
    (progress_event(attempt="2026#1"), "invalid-field"),
    (progress_event(attempt=""), "invalid-field"),
    (tampered(kept=[3, {}]), "invalid-field"),
    (tampered(kept={"epoch": 3}), "missing-field"),
    (progress_event(kept=(-2, {"validation:auc": 0.9})), "invalid-field"),
    (tampered(objective=7), "invalid-field"),
    ({**state_change(), "detail": None}, "invalid-field"),
    (without(state_change(), "time"), "missing-field"),
    (state_change(TrainingJobName=None), "missing-field"),
    (state_change(TrainingJobName=7), "invalid-field"),
    (state_change(job="mlops-prod-0123456789-00001-a1"), "foreign-job"),
    (state_change(job="mlops-devx-0123456789-00001-a1"), "foreign-job"),
    (state_change(TrainingJobStatus="Deleted"), "invalid-field"),
    (state_change(HyperParameters=None), "missing-hyperparameters"),
    (state_change(HyperParameters={"Hyper": "Parameters"}), "missing-hyperparameters"),
    (state_change(HyperParameters=hyperparameters_without("mlops_trial")), "missing-hyperparameters"),
    (
        state_change(HyperParameters={**hyperparameters_without("mlops_run_id"), "mlops_run_id": ""}),
        "missing-hyperparameters",
    ),
    (state_change(HyperParameters={**hyperparameters_without("mlops_trial"), "mlops_trial": "1 2"}), "invalid-field"),
    ({**state_change(), "time": "1583831889050"}, "invalid-field"),
    (["not", "an", "event"], "invalid-field"),
]


@pytest.mark.parametrize(
    ("event", "reason"), MALFORMED, ids=[f"{i:02d}-{reason}" for i, (_, reason) in enumerate(MALFORMED)]
)
def test_a_malformed_event_is_quarantined_with_its_reason_and_nothing_is_written(progress, table, aws, event, reason):
    assert run(progress, event) == "quarantined"  # returns normally: a retry cannot fix it

    assert rows(table) == []
    [(attribute, body)] = quarantined(aws)
    assert attribute == reason
    assert body["reason"] == reason
    assert body["detail"]
    assert "\n" not in body["detail"]
    assert body["event"] == json.loads(json.dumps(event, default=str))


def test_a_dynamodb_failure_other_than_the_condition_raises_so_lambda_retries(progress, aws, monkeypatch):
    monkeypatch.setattr(progress.recorder, "table_name", "no-such-table")

    with pytest.raises(ClientError) as raised:
        run(progress, progress_event())

    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert quarantined(aws) == []  # the on-failure destination keeps it, after Lambda's retries


def test_a_throttled_status_write_raises(progress, aws, monkeypatch):
    def throttled(**kwargs):
        raise ClientError(
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, "PutItem"
        )

    monkeypatch.setattr(progress.recorder.dynamodb, "put_item", throttled)

    with pytest.raises(ClientError):
        run(progress, state_change())


def test_a_failed_quarantine_send_raises_rather_than_dropping_the_event(progress, table, monkeypatch):
    monkeypatch.setattr(progress.recorder, "quarantine_queue_url", "https://sqs.eu-west-1.amazonaws.com/1/none")

    with pytest.raises(ClientError):
        run(progress, {**progress_event(), "detail-type": "Unknown"})


# Metrics.


def emitted(capsys) -> dict[str, float]:
    [emf] = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    directive = emf["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "mlops/test"
    assert directive["Dimensions"] == [["service"]]
    assert emf["service"] == "progress"
    return {metric["Name"]: emf[metric["Name"]] for metric in directive["Metrics"]}


@pytest.mark.parametrize(
    ("events", "metric"),
    [
        ([progress_event()], "ProgressRecorded"),
        ([progress_event(), progress_event()], "ProgressDuplicates"),
        ([state_change()], "StatusRecorded"),
        ([state_change(), state_change()], "StatusStale"),
        ([progress_event(epoch=-1)], "EventsQuarantined"),
    ],
)
def test_each_outcome_is_counted_in_its_metric(progress, capsys, events, metric):
    for event in events[:-1]:
        run(progress, event)
    capsys.readouterr()
    run(progress, events[-1])

    assert emitted(capsys) == {metric: [1.0]}
