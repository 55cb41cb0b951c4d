"""The progress handler against moto DynamoDB and SQS: every event is recorded once or quarantined with a reason.

``events/sagemaker_training_job_state_change.json`` is the training-job example from AWS's "Events
that Amazon SageMaker AI sends to Amazon EventBridge" (SageMaker developer guide), verbatim but for
the platform's ``mlops_*`` hyperparameters added to its ``HyperParameters``.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from tests.conftest import load_handler

TABLE = "progress-test"
PREFIX = "mlops-dev"
SOURCE = "mlops.training"
JOB = f"{PREFIX}-0123456789-00001-a1"
SAMPLE = json.loads((Path(__file__).parent / "events" / "sagemaker_training_job_state_change.json").read_text())


@dataclass
class LambdaContext:
    function_name: str = "progress"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:111111111111:function:progress"
    aws_request_id: str = "request-1"


def progress_event(**changes: Any) -> dict[str, Any]:
    detail = {
        "run_id": "run-1",
        "tenant": "example",
        "model": "xgboost",
        "trial": "00001",
        "training_job_name": JOB,
        "epoch": 3,
        "metrics": {"validation:auc": 0.9731, "validation:logloss": 0.12, "train:auc": None},
        "time": "2026-11-24T23:59:30.123Z",
    }
    detail.update(changes)
    return {
        "version": "0",
        "id": "5b9f3d2e-0000-0000-0000-000000000001",
        "detail-type": "Training Progress",
        "source": SOURCE,
        "account": "111111111111",
        "time": "2026-11-24T23:59:31Z",
        "region": "eu-west-1",
        "resources": [],
        "detail": detail,
    }


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


@pytest.fixture
def aws():
    with mock_aws():
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
        yield boto3.resource("dynamodb", region_name="eu-west-1").Table(TABLE), sqs, queue_url


@pytest.fixture
def progress(aws, monkeypatch):
    _, _, queue_url = aws
    monkeypatch.setenv("TABLE_NAME", TABLE)
    monkeypatch.setenv("QUARANTINE_QUEUE_URL", queue_url)
    monkeypatch.setenv("EVENT_SOURCE", SOURCE)
    monkeypatch.setenv("JOB_PREFIX", PREFIX)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "progress")
    return load_handler("progress")


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
    return progress.handler(event, LambdaContext())["outcome"]


# Rounds.


def test_a_round_is_written_as_its_epoch_row_with_decimal_metrics(progress, table, aws):
    assert run(progress, progress_event()) == "progress-recorded"

    assert rows(table) == [
        {
            "pk": "RUN#run-1",
            "sk": "TRIAL#00001#EPOCH#0000003",
            "kind": "progress",
            "run_id": "run-1",
            "tenant": "example",
            "model": "xgboost",
            "trial": "00001",
            "training_job_name": JOB,
            "epoch": Decimal(3),
            "metrics": {"validation:auc": Decimal("0.9731"), "validation:logloss": Decimal("0.12"), "train:auc": None},
            "time": "2026-11-24T23:59:30.123Z",
        }
    ]
    assert quarantined(aws) == []


def test_epochs_sort_numerically_within_a_trial(progress, table):
    for epoch in (10, 0, 2, 1_000_000):
        run(progress, progress_event(epoch=epoch))

    items = table.query(KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": "RUN#run-1"})["Items"]
    assert [item["epoch"] for item in items] == [0, 2, 10, 1_000_000]


def test_a_redelivered_round_neither_duplicates_nor_rewrites_its_row(progress, table, aws):
    run(progress, progress_event())
    before = rows(table)
    # The same round again, as a redelivery or a resumed job would send it: different time, other values.
    again = progress_event(time="2026-11-25T00:10:00Z", metrics={"validation:auc": 0.5})

    assert run(progress, progress_event()) == "progress-skipped"
    assert run(progress, again) == "progress-skipped"
    assert rows(table) == before
    assert len(before) == 1
    assert quarantined(aws) == []


def test_integer_and_extreme_but_storable_metrics_are_kept_exactly(progress, table):
    run(progress, progress_event(metrics={"rounds": 7, "tiny": 1e-120, "big": 1.5e100, "zero": 0.0}))

    [item] = rows(table)
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
    assert [item["sk"] for item in items] == [
        "TRIAL#00001#EPOCH#0000001",
        "TRIAL#00001#EPOCH#0000002",
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
    (progress_event(epoch="3"), "invalid-field"),
    (progress_event(epoch=3.0), "invalid-field"),
    (progress_event(epoch=True), "invalid-field"),
    (progress_event(epoch=-1), "invalid-field"),
    (progress_event(epoch=10_000_000), "invalid-field"),
    (progress_event(trial="00#01"), "invalid-field"),
    (progress_event(run_id=""), "invalid-field"),
    (progress_event(tenant=7), "invalid-field"),
    (progress_event(metrics=[0.9]), "invalid-field"),
    (progress_event(metrics={"validation:auc": "0.9"}), "invalid-field"),
    (progress_event(metrics={"validation:auc": True}), "invalid-field"),
    (progress_event(metrics={"validation:auc": float("nan")}), "invalid-field"),
    (progress_event(metrics={"validation:auc": 1e-300}), "invalid-field"),
    (progress_event(metrics={"validation:auc": 10**40}), "invalid-field"),
    (progress_event(time="yesterday"), "invalid-field"),
    (progress_event(time="2026-11-24T23:59:30"), "invalid-field"),
    (progress_event(training_job_name="someone-else-job"), "foreign-job"),
    (progress_event(training_job_name=PREFIX), "foreign-job"),
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
