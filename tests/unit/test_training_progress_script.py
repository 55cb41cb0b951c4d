"""scripts/training_progress.py against moto DynamoDB, with rows written by the progress handler itself."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from scripts import training_progress
from scripts.training_progress import NothingToShow, main, progress_table_from_stack, read_rows
from tests.conftest import load_handler
from tests.unit.test_progress_handler import PREFIX, SOURCE, TABLE, LambdaContext, progress_event, state_change

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def handler(monkeypatch):
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
        queue_url = boto3.client("sqs", region_name="eu-west-1").create_queue(QueueName="quarantine")["QueueUrl"]
        monkeypatch.setenv("TABLE_NAME", TABLE)
        monkeypatch.setenv("QUARANTINE_QUEUE_URL", queue_url)
        monkeypatch.setenv("EVENT_SOURCE", SOURCE)
        monkeypatch.setenv("JOB_PREFIX", PREFIX)
        monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "progress")
        monkeypatch.delenv("MLOPS_PROGRESS_TABLE", raising=False)
        yield load_handler("progress")


def job(trial: str, attempt: int = 1) -> str:
    return f"{PREFIX}-0123456789-{trial}-a{attempt}"


def send(handler, event: dict[str, Any]) -> None:
    assert handler.handler(event, LambdaContext())["outcome"].endswith("-recorded")


def round_of(trial: str, epoch: int, model: str = "xgboost", run_id: str = "run-1", **metrics: float | None):
    names = {"auc": "validation:auc", "logloss": "validation:logloss", "train_auc": "train:auc"}
    return progress_event(
        run_id=run_id,
        trial=trial,
        model=model,
        training_job_name=job(trial),
        epoch=epoch,
        metrics={names[name]: value for name, value in metrics.items()},
    )


def status_of(trial: str, status: str, time: str, model: str = "xgboost", attempt: int = 1):
    event = state_change(status, time, job=job(trial, attempt))
    event["detail"]["HyperParameters"].update(mlops_trial=trial, mlops_model=model)
    return event


@pytest.fixture
def seeded(handler):
    """run-1: a completed trial, a failed one (on its second attempt) and one still starting; run-2 elsewhere."""
    for epoch, auc, logloss in [(1, 0.90, 0.40), (2, 0.95, 0.30), (3, 0.97, 0.25), (4, 0.96, 0.26)]:
        send(handler, round_of("00000", epoch, auc=auc, logloss=logloss, train_auc=0.99))
    send(handler, status_of("00000", "InProgress", "2026-11-24T23:00:00Z"))
    send(handler, status_of("00000", "Completed", "2026-11-24T23:10:00Z"))
    for epoch, auc, logloss in [(1, 0.80, 0.50), (2, None, 0.45), (3, 0.85, 0.44)]:
        send(handler, round_of("00001", epoch, auc=auc, logloss=logloss))
    send(handler, status_of("00001", "Failed", "2026-11-24T23:20:00Z", attempt=2))
    send(handler, status_of("00002", "InProgress", "2026-11-24T23:21:00Z", model="linear"))
    send(handler, round_of("00000", 1, run_id="run-2", auc=0.5, logloss=0.9))
    return handler


def lines_of(text: str) -> dict[str, list[str]]:
    """The printed table as {trial: its cells}; cells are separated by two or more spaces."""
    return {
        cells[0]: cells
        for line in text.splitlines()
        if (cells := re.split(r"\s{2,}", line.strip())) and cells[0].isdigit()
    }


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 10_000  # axes, three curves and a legend, not an empty canvas
    assert data[12:16] == b"IHDR"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (900, 550)


def test_the_run_is_shown_as_a_table_of_trials_and_a_png_of_their_curves(seeded, tmp_path, capsys):
    output = tmp_path / "tmp" / "x.png"

    assert main(["run-1", "--table", TABLE, "--output", str(output)]) == 0

    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"run run-1: 3 trial(s) in {TABLE}"
    header = out.splitlines()[1].split("  ")
    assert [cell.strip() for cell in header if cell.strip()] == [
        "trial",
        "model",
        "job",
        "status",
        "rounds",
        "last round",
        "latest validation:auc",
        "best validation:auc",
    ]
    assert lines_of(out) == {
        "00000": ["00000", "xgboost", job("00000"), "Completed", "4", "4", "0.96", "0.97"],
        "00001": ["00001", "xgboost", job("00001", 2), "Failed", "3", "3", "0.85", "0.85"],
        "00002": ["00002", "linear", job("00002"), "InProgress", "0", "-", "-", "-"],
    }
    assert "trial 00001 (Failed): AlgorithmError: out of memory" in out
    assert f"plot: {output}" in out
    assert_png(output)


def test_a_loss_metric_is_best_at_its_minimum(seeded, tmp_path, capsys):
    assert main(["run-1", "--table", TABLE, "--metric", "validation:logloss", "--output", str(tmp_path / "r.png")]) == 0

    table = lines_of(capsys.readouterr().out)
    assert table["00000"][-2:] == ["0.26", "0.25"]
    assert table["00001"][-2:] == ["0.44", "0.44"]


def test_the_direction_can_be_given(seeded, tmp_path, capsys):
    argv = ["run-1", "--table", TABLE, "--metric", "validation:auc", "--direction", "minimize"]
    assert main([*argv, "--output", str(tmp_path / "r.png")]) == 0

    assert lines_of(capsys.readouterr().out)["00000"][-1] == "0.9"


def test_a_metric_no_trial_reported_is_shown_as_dashes_and_said(seeded, tmp_path, capsys):
    output = tmp_path / "r.png"
    assert main(["run-1", "--table", TABLE, "--metric", "validation:f1", "--output", str(output)]) == 0

    captured = capsys.readouterr()
    assert lines_of(captured.out)["00000"][-2:] == ["-", "-"]
    assert captured.err == "training progress: no trial reported validation:f1\n"
    assert output.read_bytes().startswith(PNG_MAGIC)


def test_the_table_name_may_come_from_the_environment(seeded, tmp_path, capsys):
    assert main(["run-2", "--output", str(tmp_path / "r.png")], environ={"MLOPS_PROGRESS_TABLE": TABLE}) == 0

    assert list(lines_of(capsys.readouterr().out)) == ["00000"]


def test_a_run_without_rows_exits_2_with_one_line(seeded, tmp_path, capsys):
    output = tmp_path / "r.png"
    assert main(["run-404", "--table", TABLE, "--output", str(output)]) == 2

    captured = capsys.readouterr()
    assert captured.err == f"training progress: run 'run-404' has no rows in table '{TABLE}'\n"
    assert captured.out == ""
    assert not output.exists()


def test_without_a_table_name_it_exits_2_saying_how_to_give_one(handler, capsys):
    assert main(["run-1"], environ={}) == 2

    [line] = capsys.readouterr().err.splitlines()
    assert "--table" in line
    assert "--stack" in line
    assert "MLOPS_PROGRESS_TABLE" in line


def test_an_aws_error_exits_1_with_one_line(handler, tmp_path, capsys):
    assert main(["run-1", "--table", "no-such-table", "--output", str(tmp_path / "r.png")]) == 1

    [line] = capsys.readouterr().err.splitlines()
    assert "ResourceNotFoundException" in line


# The table's name from the stack's output (moto's CloudFormation needs extras this suite does not install).


def stubbed_cloudformation(stack: str, outputs: list[dict[str, str]] | None = None, error: str | None = None):
    client = boto3.client("cloudformation", region_name="eu-west-1")
    stubber = Stubber(client)
    if error:
        stubber.add_client_error("describe_stacks", service_error_code=error, service_message=f"Stack {stack} nope")
    else:
        stubber.add_response(
            "describe_stacks",
            {
                "Stacks": [
                    {
                        "StackName": stack,
                        "CreationTime": "2026-11-24T00:00:00Z",
                        "StackStatus": "UPDATE_COMPLETE",
                        "Outputs": outputs or [],
                    }
                ]
            },
            {"StackName": stack},
        )
    stubber.activate()
    return client, stubber


def test_the_table_name_is_the_stacks_progress_table_output():
    outputs = [
        {"OutputKey": "RunLedgerTableName", "OutputValue": "ledger"},
        {"OutputKey": "ProgressTableName", "OutputValue": "dev-Foundation-ProgressTable-ABC"},
    ]
    client, stubber = stubbed_cloudformation("dev-Foundation", outputs)

    assert progress_table_from_stack(client, "dev-Foundation") == "dev-Foundation-ProgressTable-ABC"
    stubber.assert_no_pending_responses()


def test_a_stack_without_the_output_is_nothing_to_show():
    client, _ = stubbed_cloudformation("dev-Ingestion", [{"OutputKey": "IngestQueueUrl", "OutputValue": "q"}])

    with pytest.raises(NothingToShow, match="has no output 'ProgressTableName'"):
        progress_table_from_stack(client, "dev-Ingestion")


def test_a_missing_stack_is_nothing_to_show():
    client, _ = stubbed_cloudformation("dev-Nope", error="ValidationError")

    with pytest.raises(NothingToShow, match="does not exist"):
        progress_table_from_stack(client, "dev-Nope")


def test_main_reads_the_table_from_the_stack_in_the_given_region(seeded, tmp_path, capsys, monkeypatch):
    cloudformation, _ = stubbed_cloudformation(
        "dev-Foundation", [{"OutputKey": "ProgressTableName", "OutputValue": TABLE}]
    )
    made = []
    real_client = boto3.client

    def client(service: str, region_name: str | None = None):
        made.append((service, region_name))
        return cloudformation if service == "cloudformation" else real_client(service, region_name=region_name)

    monkeypatch.setattr(training_progress.boto3, "client", client)
    argv = ["run-1", "--stack", "dev-Foundation", "--region", "eu-west-1", "--output", str(tmp_path / "r.png")]

    assert main(argv, environ={"MLOPS_PROGRESS_TABLE": "ignored"}) == 0

    assert made == [("cloudformation", "eu-west-1"), ("dynamodb", "eu-west-1")]
    assert f"in {TABLE}" in capsys.readouterr().out


def test_table_and_stack_are_exclusive(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["run-1", "--table", "t", "--stack", "s"])

    assert exited.value.code == 2
    assert "not allowed with" in capsys.readouterr().err


# Reading.


def test_every_page_of_the_query_is_read():
    client = boto3.client("dynamodb", region_name="eu-west-1")
    stubber = Stubber(client)
    query = {
        "TableName": TABLE,
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": {":pk": {"S": "RUN#r"}},
    }

    def row(epoch: int) -> dict[str, Any]:
        return {
            "pk": {"S": "RUN#r"},
            "sk": {"S": f"TRIAL#00000#EPOCH#{epoch:07d}"},
            "epoch": {"N": str(epoch)},
            "metrics": {"M": {"validation:auc": {"N": "0.5"}, "train:auc": {"NULL": True}}},
        }

    last = {"pk": {"S": "RUN#r"}, "sk": {"S": "TRIAL#00000#EPOCH#0000001"}}
    stubber.add_response("query", {"Items": [row(0), row(1)], "LastEvaluatedKey": last}, query)
    stubber.add_response("query", {"Items": [row(2)]}, {**query, "ExclusiveStartKey": last})
    with stubber:
        rows = list(read_rows(client, TABLE, "r"))

    assert [int(item["epoch"]) for item in rows] == [0, 1, 2]
    assert rows[0]["metrics"] == {"validation:auc": pytest.approx(0.5), "train:auc": None}
    stubber.assert_no_pending_responses()


def test_the_rows_read_are_the_rows_the_handler_wrote(seeded):
    rows = list(read_rows(boto3.client("dynamodb", region_name="eu-west-1"), TABLE, "run-2"))
    stored = boto3.resource("dynamodb", region_name="eu-west-1").Table(TABLE).scan()["Items"]

    assert rows == [item for item in stored if item["pk"] == "RUN#run-2"]
    assert json.loads(json.dumps(rows, default=str))[0]["sk"] == "TRIAL#00000#EPOCH#0000001"
