"""`mlops progress` on moto DynamoDB, with rows the progress handler wrote from the emitter's events."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from mlops_platform.reports import progress_view
from mlops_platform.reports.progress import NothingToShow, progress_table_from_stack, read_rows
from tests.conftest import mlops
from tests.unit.test_progress_handler import (
    PREFIX,
    TABLE,
    LambdaContext,
    create_progress_resources,
    load_progress_handler,
    progress_event,
    state_change,
)


def main(argv: list[str], **seams: Any) -> int:
    """``mlops progress <argv>``, as the operator runs it, with the test's environ and sleep."""
    return mlops(["progress", *argv], **seams)


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIRST, SECOND = "20261124T230000.000Z", "20261124T231500.000Z"  # attempts: the container's start times


@pytest.fixture
def handler(monkeypatch):
    with mock_aws():
        _, _, queue_url = create_progress_resources()
        monkeypatch.delenv("MLOPS_PROGRESS_TABLE", raising=False)
        monkeypatch.delenv("MLOPS_STATE_MACHINE_ARN", raising=False)
        yield load_progress_handler(monkeypatch, queue_url)


def job(trial: str, attempt: int = 1) -> str:
    return f"{PREFIX}-0123456789-{trial}-a{attempt}"


def send(handler, event: dict[str, Any]) -> None:
    assert handler.handler(event, LambdaContext())["outcome"].endswith("-recorded")


NAMES = {"auc": "validation:auc", "logloss": "validation:logloss", "train_auc": "train:auc"}


def round_of(
    trial: str,
    epoch: int,
    model: str = "xgboost",
    run_id: str = "run-1",
    attempt: str = FIRST,
    job_attempt: int = 1,
    kept: tuple[int, dict[str, float]] | None = None,
    **metrics: float | None,
):
    """The event the training container sends for the round (a metric of None: not finite that round)."""
    return progress_event(
        run_id=run_id,
        trial=trial,
        model=model,
        training_job_name=job(trial, job_attempt),
        attempt=attempt,
        epoch=epoch,
        metrics={NAMES[name]: float("nan") if value is None else value for name, value in metrics.items()},
        kept=None if kept is None else (kept[0], {NAMES[name]: value for name, value in kept[1].items()}),
    )


def status_of(trial: str, status: str, time: str, model: str = "xgboost", attempt: int = 1):
    event = state_change(status, time, job=job(trial, attempt))
    event["detail"]["HyperParameters"].update(mlops_trial=trial, mlops_model=model)
    return event


@pytest.fixture
def seeded(handler):
    """run-1: a completed trial, a failed one (its second attempt: a retry), one still starting; run-2 elsewhere."""
    best = {"auc": 0.97, "logloss": 0.25}
    for epoch, auc, logloss in [(1, 0.90, 0.40), (2, 0.95, 0.30), (3, 0.97, 0.25), (4, 0.96, 0.26)]:
        # Early stopping keeps round 3, the best AUC, once it has been seen.
        kept = (3, best) if epoch >= 3 else None
        send(handler, round_of("00000", epoch, auc=auc, logloss=logloss, train_auc=0.99, kept=kept))
    send(handler, status_of("00000", "InProgress", "2026-11-24T23:00:00Z"))
    send(handler, status_of("00000", "Completed", "2026-11-24T23:10:00Z"))
    for epoch, auc, logloss in [(1, 0.70, 0.60), (2, 0.72, 0.58)]:  # the first attempt, until its instance went
        send(handler, round_of("00001", epoch, auc=auc, logloss=logloss))
    for epoch, auc, logloss in [(1, 0.80, 0.50), (2, None, 0.45), (3, 0.85, 0.44)]:  # the retry, as a new job
        send(handler, round_of("00001", epoch, attempt=SECOND, job_attempt=2, auc=auc, logloss=logloss))
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
    assert len(data) > 10_000  # axes, curves and a legend, not an empty canvas
    assert data[12:16] == b"IHDR"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (900, 550)


def test_the_run_is_shown_as_a_summary_a_ranked_table_and_a_png_of_their_curves(seeded, tmp_path, capsys):
    output = tmp_path / "tmp" / "x.png"

    assert main(["run-1", "--table", TABLE, "--output", str(output)]) == 0

    out = capsys.readouterr().out
    assert out.splitlines()[:5] == [
        f"run run-1: 3 trial(s) in {TABLE}",
        "1 Completed, 1 Failed, 1 InProgress",
        "2 of 3 trial(s) reported validation:auc (higher is better)",  # the trials' objective
        "best validation:auc: 0.97 (trial 00000, xgboost)",
        "failures (1 trial(s)):",
    ]
    assert "  1 x AlgorithmError: out of memory (e.g. trial 00001)" in out
    header = next(line for line in out.splitlines() if line.startswith("trial "))
    assert re.split(r"\s{2,}", header) == [
        "trial",
        "model",
        "job",
        "status",
        "attempts",
        "round",
        "kept round",
        "latest validation:auc",
        "kept validation:auc",
    ]
    # Ranked by the value at the round each trial keeps; the retried trial shows its latest attempt.
    assert list(lines_of(out)) == ["00000", "00001", "00002"]
    assert lines_of(out) == {
        "00000": ["00000", "xgboost", job("00000"), "Completed", "1", "4", "3", "0.96", "0.97"],
        "00001": ["00001", "xgboost", job("00001", 2), "Failed", "2", "3", "3", "0.85", "0.85"],
        "00002": ["00002", "linear", job("00002"), "InProgress", "0", "-", "-", "-", "-"],
    }
    assert f"plot: {output}" in out
    assert_png(output)


def test_a_retried_trials_attempts_are_drawn_as_curves_of_their_own(seeded, tmp_path, monkeypatch):
    figures = []
    real_plot = progress_view.plot
    monkeypatch.setattr(progress_view, "plot", lambda *a, **k: figures.append(real_plot(*a, **k)))

    assert main(["run-1", "--table", TABLE, "--output", str(tmp_path / "r.png")]) == 0

    [figure] = figures
    lines = figure.axes[0].get_lines()
    curves = [(list(line.get_xdata()), list(line.get_ydata()), line.get_linestyle()) for line in lines]
    # Trial 00001's first attempt (rounds 1-2) and its retry (rounds 1-3, round 2's AUC not finite) stay apart.
    assert ([1, 2], [0.70, 0.72], "--") in curves
    assert ([1, 3], [0.80, 0.85], "-") in curves
    assert ([1, 2, 3, 4], [0.90, 0.95, 0.97, 0.96], "-") in curves
    assert [text.get_text() for text in figure.axes[0].get_legend().get_texts()] == [
        "00000 xgboost (Completed)",
        "00001 xgboost (Failed)",
    ]


def test_a_loss_metric_is_best_at_its_minimum(seeded, tmp_path, capsys):
    assert main(["run-1", "--table", TABLE, "--metric", "validation:logloss", "--output", str(tmp_path / "r.png")]) == 0

    table = lines_of(capsys.readouterr().out)
    assert table["00000"][-2:] == ["0.26", "0.25"]  # latest, and at the kept round
    assert table["00001"][-2:] == ["0.44", "0.44"]
    assert list(table) == ["00000", "00001", "00002"]  # lowest first


def test_the_direction_can_be_given(seeded, tmp_path, capsys):
    argv = ["run-1", "--table", TABLE, "--metric", "validation:auc", "--direction", "minimize"]
    assert main([*argv, "--output", str(tmp_path / "r.png")]) == 0

    assert list(lines_of(capsys.readouterr().out)) == ["00001", "00000", "00002"]  # 0.85 ranks above 0.97


def test_a_metric_no_trial_reported_is_shown_as_dashes_and_said(seeded, tmp_path, capsys):
    output = tmp_path / "r.png"
    assert main(["run-1", "--table", TABLE, "--metric", "validation:f1", "--output", str(output)]) == 0

    captured = capsys.readouterr()
    assert lines_of(captured.out)["00000"][-2:] == ["-", "-"]
    assert captured.err == "mlops progress: no trial reported validation:f1\n"
    assert output.read_bytes().startswith(PNG_MAGIC)


def test_the_table_name_may_come_from_the_environment(seeded, tmp_path, capsys):
    assert main(["run-2", "--output", str(tmp_path / "r.png")], environ={"MLOPS_PROGRESS_TABLE": TABLE}) == 0

    assert list(lines_of(capsys.readouterr().out)) == ["00000"]


def test_a_run_without_rows_exits_2_with_one_line(seeded, tmp_path, capsys):
    output = tmp_path / "r.png"
    assert main(["run-404", "--table", TABLE, "--output", str(output)]) == 2

    captured = capsys.readouterr()
    assert captured.err == f"mlops progress: run 'run-404' has no rows in table '{TABLE}'\n"
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

    monkeypatch.setattr(boto3, "client", client)
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
            "sk": {"S": f"CURVE#00000#{FIRST}#{epoch:07d}"},
            "epoch": {"N": str(epoch)},
            "metrics": {"M": {"validation:auc": {"N": "0.5"}, "train:auc": {"NULL": True}}},
        }

    last = {"pk": {"S": "RUN#r"}, "sk": {"S": f"CURVE#00000#{FIRST}#0000001"}}
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
    assert [row["sk"] for row in json.loads(json.dumps(rows, default=str))] == [
        f"CURVE#00000#{FIRST}#0000001",
        f"TRIAL#00000#ATTEMPT#{FIRST}",
    ]


# Many trials: the best few, a summary, and only their curves read.


class CountingDynamoDB:
    """The DynamoDB client, with every Query's key condition and prefix noted."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.queries: list[str] = []

    def get_paginator(self, operation: str) -> Any:
        paginator = self.client.get_paginator(operation)
        queries = self.queries

        class Counting:
            def paginate(self, **kwargs: Any) -> Any:
                queries.append(kwargs["ExpressionAttributeValues"].get(":prefix", {}).get("S", "<all>"))
                return paginator.paginate(**kwargs)

        return Counting()


def test_a_run_of_many_trials_shows_the_best_few_and_a_summary_reading_only_their_curves(
    handler, tmp_path, capsys, monkeypatch
):
    for number in range(120):
        trial = f"{number:05d}"
        auc = 0.5 + number / 1000  # trial 00119 is the best
        for epoch in (1, 2):
            send(handler, round_of(trial, epoch, auc=auc - 0.01 * (2 - epoch), logloss=1 - auc))
        status = "Failed" if number % 10 == 0 else "Completed"
        event = status_of(trial, status, "2026-11-24T23:30:00Z")
        if number % 20 == 0:
            event["detail"]["FailureReason"] = "ClientError: no capacity"
        send(handler, event)
    counting = CountingDynamoDB(boto3.client("dynamodb", region_name="eu-west-1"))
    real_client = boto3.client
    monkeypatch.setattr(
        boto3,
        "client",
        lambda service, **kw: counting if service == "dynamodb" else real_client(service, **kw),
    )
    figures = []
    real_plot = progress_view.plot
    monkeypatch.setattr(progress_view, "plot", lambda *a, **k: figures.append(real_plot(*a, **k)))

    assert main(["run-1", "--table", TABLE, "--top", "5", "--output", str(tmp_path / "r.png")]) == 0

    out = capsys.readouterr().out
    assert "108 Completed, 12 Failed" in out
    assert "best validation:auc: 0.619 (trial 00119, xgboost)" in out
    assert "  6 x ClientError: no capacity (e.g. trial 00000)" in out
    assert "  6 x AlgorithmError: out of memory (e.g. trial 00010)" in out
    assert "the 5 best of 120 trials by validation:auc (--top to change):" in out
    assert list(lines_of(out)) == ["00119", "00118", "00117", "00116", "00115"]
    [figure] = figures
    assert len(figure.axes[0].get_legend().get_texts()) == 5
    # One query for the standing of all 120 trials, then one per curve drawn.
    assert counting.queries == [
        "TRIAL#",
        *(f"CURVE#{trial}#{FIRST}#" for trial in ("00119", "00118", "00117", "00116", "00115")),
    ]


def test_top_must_be_at_least_one(capsys):
    assert main(["run-1", "--table", TABLE, "--top", "0"]) == 2  # the command's exit status, as before

    assert capsys.readouterr().err == "mlops progress: --top has value 0; allowed: a whole number of at least 1\n"


# Following a run until its execution ends.


def start_run(run_id: str = "run-1") -> tuple[Any, str]:
    sfn = boto3.client("stepfunctions", region_name="eu-west-1")
    machine = sfn.create_state_machine(
        name="mlops-dev-training",
        definition=json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Pass", "End": True}}}),
        roleArn="arn:aws:iam::123456789012:role/training",
    )["stateMachineArn"]
    sfn.start_execution(stateMachineArn=machine, name=run_id)
    return sfn, machine


def test_follow_refreshes_until_the_execution_ends(handler, tmp_path, capsys):
    sfn, machine = start_run()
    send(handler, round_of("00000", 1, auc=0.9, logloss=0.4))
    refreshes: list[float] = []

    def sleep(seconds: float) -> None:
        """Between refreshes the run goes on: a round arrives; after the second, the run is stopped."""
        refreshes.append(seconds)
        send(handler, round_of("00000", len(refreshes) + 1, auc=0.9 + len(refreshes) / 100, logloss=0.4))
        if len(refreshes) == 2:
            sfn.stop_execution(executionArn=machine.replace(":stateMachine:", ":execution:") + ":run-1")

    argv = ["run-1", "--table", TABLE, "--follow", "--every", "5", "--state-machine", machine]
    assert main([*argv, "--output", str(tmp_path / "r.png")], sleep=sleep) == 3  # ended, not succeeded

    out = capsys.readouterr().out
    assert refreshes == [5, 5]
    blocks = out.split("\n-- ")[1:]
    assert [block.splitlines()[0].split(" ", 1)[1] for block in blocks] == [
        "execution run-1: RUNNING",
        "execution run-1: RUNNING",
        "execution run-1: ABORTED",
    ]
    # Each refresh shows the rounds that arrived since: the latest round 1, 2, then 3.
    assert [lines_of(block)["00000"][5] for block in blocks] == ["1", "2", "3"]
    assert_png(tmp_path / "r.png")


def test_follow_waits_for_a_run_without_rows_and_exits_0_when_it_succeeds(handler, tmp_path, capsys, monkeypatch):
    statuses = iter(["RUNNING", "SUCCEEDED"])

    class StepFunctions:
        def describe_execution(self, executionArn: str) -> dict[str, str]:
            assert executionArn == "arn:aws:states:eu-west-1:123456789012:execution:training:run-9"
            return {"status": next(statuses)}

    real_client = boto3.client
    monkeypatch.setattr(
        boto3,
        "client",
        lambda service, **kw: StepFunctions() if service == "stepfunctions" else real_client(service, **kw),
    )
    argv = ["run-9", "--table", TABLE, "--follow", "--output", str(tmp_path / "r.png")]
    environ = {"MLOPS_STATE_MACHINE_ARN": "arn:aws:states:eu-west-1:123456789012:stateMachine:training"}

    assert main(argv, environ=environ, sleep=lambda seconds: None) == 0

    assert capsys.readouterr().out.count("run run-9: no trial has reported yet") == 2


def test_follow_without_a_state_machine_exits_2_saying_how_to_name_one(handler, capsys):
    assert main(["run-1", "--table", TABLE, "--follow"], environ={}) == 2

    [line] = capsys.readouterr().err.splitlines()
    assert "--state-machine" in line
    assert "--training-stack" in line
    assert "MLOPS_STATE_MACHINE_ARN" in line


def test_follow_finds_the_state_machine_in_the_environments_training_stack(handler, tmp_path, capsys, monkeypatch):
    sfn, machine = start_run()
    sfn.stop_execution(executionArn=machine.replace(":stateMachine:", ":execution:") + ":run-1")
    cloudformation, stubber = stubbed_cloudformation(
        "dev-Foundation", [{"OutputKey": "ProgressTableName", "OutputValue": TABLE}]
    )
    stubber.add_response(
        "describe_stacks",
        {
            "Stacks": [
                {
                    "StackName": "dev-Training",
                    "CreationTime": "2026-11-24T00:00:00Z",
                    "StackStatus": "UPDATE_COMPLETE",
                    "Outputs": [{"OutputKey": "StateMachineArn", "OutputValue": machine}],
                }
            ]
        },
        {"StackName": "dev-Training"},
    )
    real_client = boto3.client
    monkeypatch.setattr(
        boto3,
        "client",
        lambda service, **kw: cloudformation if service == "cloudformation" else real_client(service, **kw),
    )
    send(handler, round_of("00000", 1, auc=0.9, logloss=0.4))

    argv = ["run-1", "--stack", "dev-Foundation", "--follow", "--output", str(tmp_path / "r.png")]
    assert main(argv, sleep=lambda seconds: None) == 3

    assert "execution run-1: ABORTED" in capsys.readouterr().out
    stubber.assert_no_pending_responses()
