"""`mlops run-report` against a moto ledger written by the plan and evaluate handlers themselves.

The run record comes from lambda/plan, the trial and package records from lambda/evaluate, run
in-process against moto S3, DynamoDB and SageMaker on Map results shaped as AWS writes them (the
helpers of tests/unit/test_evaluate.py), so the report reads exactly what the pipeline writes.
Approval statuses read live are stubbed with botocore's Stubber where SageMaker's answer matters
(a person's approval since, a refusal); moto's registry answers otherwise.
"""

from __future__ import annotations

import json
import re
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from mlops_platform.reports.progress import NothingToShow, read_rows
from mlops_platform.reports.run_report import ledger_table_from_stack, report, text
from tests.conftest import create_ledger_table, load_handler, mlops
from tests.unit.test_evaluate import (
    ARTIFACTS,
    CONFIG,
    ENVIRONMENT,
    FEATURES,
    LEDGER,
    REGION,
    LambdaContext,
    evaluator,
    failed,
    job_of,
    publish,
    run,
    succeeded,
    write_results,
)
from tests.unit.test_training_progress_script import stubbed_cloudformation

STARTED = "2026-11-24T10:00:00Z"
# Trials (tests/unit/test_evaluate.py's CONFIG): 00000 xgboost eta=0.1, 00001 xgboost eta=0.3,
# 00002 linear alpha=0.001, 00003 linear alpha=0.01. The approval threshold is validation:auc 0.9.


def main(argv: list[str], **seams: Any) -> int:
    """``mlops run-report <argv>``, as the operator runs it, with the test's environ."""
    return mlops(["run-report", *argv], **seams)


def plan(s3, monkeypatch, run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "plan")
    output = load_handler("plan").handler(
        {"request": {"tenant": "acme"}, "run_id": run_id, "started_at": STARTED}, LambdaContext(function_name="plan")
    )
    body = s3.get_object(Bucket=ARTIFACTS, Key=output["plan"]["Key"])["Body"].read()
    return output, json.loads(body)


@pytest.fixture
def ledger(monkeypatch):
    """run-1 evaluated (xgboost: 00000 pending approval at 0.85, 00001 failed; linear: 00002 approved at 0.97,
    00003 without the objective metric); run-2 planned, not yet evaluated. Yields {model: package ARN} of run-1."""
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MLOPS_LEDGER_TABLE", raising=False)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in (ARTIFACTS, FEATURES, "raw-zone", "curated-zone", "predictions-zone"):
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        create_ledger_table(LEDGER, REGION)
        publish(s3, CONFIG)
        output, items = plan(s3, monkeypatch, "run-1")
        cause = json.dumps({"TrainingJobName": items[1]["job_name"], "FailureReason": "AlgorithmError: out of memory"})
        results = write_results(
            s3,
            {
                "SUCCEEDED": [
                    succeeded(items[0], job_of(items[0], **{"validation:auc": 0.85, "validation:logloss": 0.3})),
                    succeeded(items[2], job_of(items[2], **{"validation:auc": 0.97, "validation:logloss": 0.1})),
                    succeeded(items[3], job_of(items[3], **{"validation:logloss": 0.2})),
                ],
                "FAILED": [failed(items[1], "States.TaskFailed", cause)],
            },
        )
        evaluate = evaluator(monkeypatch)
        result = run(evaluate, output, results)
        plan(s3, monkeypatch, "run-2")
        yield {entry["model"]: entry["model_package_arn"] for entry in result["best"]}


def job(trial: str) -> str:
    """The trial's job name as the plan names it (run-1, attempt 0)."""
    [row] = [r for r in ledger_rows("run-1") if r["sk"] == f"TRIAL#{trial}"]
    return str(row["job_name"])


def ledger_rows(run_id: str) -> list[dict[str, Any]]:
    return list(read_rows(boto3.client("dynamodb", region_name=REGION), LEDGER, run_id))


def stubbed_sagemaker(statuses: dict[str, str | None]) -> tuple[Any, Stubber]:
    """DescribeModelPackage answering each ARN in order with its status, or AccessDenied for None."""
    client = boto3.client("sagemaker", region_name=REGION)
    stubber = Stubber(client)
    for arn, status in statuses.items():
        if status is None:
            stubber.add_client_error(
                "describe_model_package", service_error_code="AccessDeniedException", service_message="not allowed"
            )
        else:
            stubber.add_response(
                "describe_model_package",
                {
                    "ModelPackageName": arn.rsplit("/", 2)[1],
                    "ModelPackageArn": arn,
                    "CreationTime": "2026-11-24T10:40:00Z",
                    "ModelPackageStatus": "Completed",
                    "ModelPackageStatusDetails": {"ValidationStatuses": [], "ImageScanStatuses": []},
                    "ModelApprovalStatus": status,
                },
                {"ModelPackageName": arn},
            )
    stubber.activate()
    return client, stubber


def rows_of(out: str, first: str) -> dict[str, list[str]]:
    """The printed lines whose first cell matches ``first``, as {that cell: cells}; cells are separated by 2+ spaces."""
    found = {}
    for line in out.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if re.fullmatch(first, cells[0]):
            found[cells[0]] = cells
    return found


def trial_rows(out: str) -> dict[str, list[str]]:
    """The printed trial lines as {trial: cells}, the first cell "*" for a chosen trial, else ""."""
    found = {}
    for line in out.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells[0] == "*":
            found[cells[1]] = cells
        elif re.fullmatch(r"\d{5}", cells[0]):
            found[cells[0]] = ["", *cells]
    return found


# The report.


def test_the_run_its_trials_per_model_the_chosen_trials_and_the_packages_are_printed(ledger, capsys):
    assert main(["run-1", "--table", LEDGER]) == 0

    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "run run-1 of tenant acme: evaluated"
    assert lines[1] == f"  started    {STARTED}"
    # Evaluated, but the execution's end (the run-outcome function's record) is not in the ledger yet.
    assert re.fullmatch(
        r"  evaluated  2\d{3}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \(the execution's end is not recorded yet\)", lines[2]
    )
    assert lines[3] == "  trials     4: 2 succeeded, 1 failed, 1 without metrics, 0 without a result"
    assert lines[4:6] == ["  objective  validation:auc", f"  ledger     {LEDGER}"]
    assert "model xgboost (xgboost): no usable trial" not in out
    assert "model xgboost (xgboost): chosen trial 00000, validation:auc 0.85" in lines
    assert "model linear (linear): chosen trial 00002, validation:auc 0.97" in lines
    assert out.index("model xgboost") < out.index("model linear")  # the plan's order
    job_name = {trial: job(trial) for trial in ("00000", "00001", "00002", "00003")}
    assert trial_rows(out) == {
        "00000": ["*", "00000", job_name["00000"], "eta=0.1", "0.85", "succeeded", "-"],
        "00001": [
            "",
            "00001",
            job_name["00001"],
            "eta=0.3",
            "-",
            "failed",
            "States.TaskFailed: AlgorithmError: out of memory",
        ],
        "00002": ["*", "00002", job_name["00002"], "alpha=0.001", "0.97", "succeeded", "-"],
        "00003": [
            "",
            "00003",
            job_name["00003"],
            "alpha=0.01",
            "-",
            "missing-metrics",
            "FinalMetricDataList has no validation:auc",
        ],
    }
    xgboost = out[out.index("model xgboost") : out.index("model linear")]
    assert set(trial_rows(xgboost)) == {"00000", "00001"}
    header = next(line for line in lines if line.strip().startswith("trial  "))
    assert re.split(r"\s{2,}", header.strip()) == [
        "trial",
        "job",
        "hyperparameters",
        "validation:auc",
        "status",
        "reason",
    ]
    # Packages: moto's registry answers, as SageMaker would.
    packages = rows_of(out, "xgboost|linear")
    assert packages == {
        "xgboost": ["xgboost", "00000", "0.85", "PendingManualApproval", "sagemaker", ledger["xgboost"]],
        "linear": ["linear", "00002", "0.97", "Approved", "sagemaker", ledger["linear"]],
    }


def test_the_approval_status_is_read_live_from_sagemaker_else_taken_from_the_ledger(ledger):
    # A person approved xgboost since; the linear package may not be described.
    sagemaker, stubber = stubbed_sagemaker({ledger["xgboost"]: "Approved", ledger["linear"]: None})
    rows = ledger_rows("run-1")

    document = report("run-1", LEDGER, rows, sagemaker)

    stubber.assert_no_pending_responses()
    assert [
        (p["model"], p["approval_status"], p["approval_source"], p["recorded_approval_status"], p.get("approval_note"))
        for p in document["packages"]
    ] == [
        ("xgboost", "Approved", "sagemaker", "PendingManualApproval", None),
        ("linear", "Approved", "ledger", "Approved", "AccessDeniedException"),
    ]
    packages = rows_of(text(document), "xgboost|linear")
    assert packages["xgboost"][3:5] == ["Approved", "sagemaker"]
    assert packages["linear"][3:5] == ["Approved", "ledger (AccessDeniedException)"]


def test_main_reads_approvals_with_a_sagemaker_client_in_the_given_region(ledger, capsys, monkeypatch):
    sagemaker, stubber = stubbed_sagemaker({ledger["xgboost"]: "Rejected", ledger["linear"]: "Approved"})
    made = []
    real_client = boto3.client

    def client(service: str, region_name: str | None = None):
        made.append((service, region_name))
        return sagemaker if service == "sagemaker" else real_client(service, region_name=region_name)

    monkeypatch.setattr(boto3, "client", client)

    assert main(["run-1", "--table", LEDGER, "--region", REGION]) == 0

    assert made == [("dynamodb", REGION), ("sagemaker", REGION)]
    stubber.assert_no_pending_responses()
    assert rows_of(capsys.readouterr().out, "xgboost")["xgboost"][3:5] == ["Rejected", "sagemaker"]


def test_json_is_the_same_report_as_one_document(ledger, capsys):
    assert main(["run-1", "--table", LEDGER, "--json"]) == 0

    document = json.loads(capsys.readouterr().out)
    assert document["run_id"] == "run-1"
    assert document["table"] == LEDGER
    run = document["run"]
    assert {key: run[key] for key in ("tenant", "status", "started_at", "day", "models", "trial_count")} == {
        "tenant": "acme",
        "status": "evaluated",
        "started_at": STARTED,
        "day": "2026-11-24",
        "models": ["xgboost", "linear"],
        "trial_count": 4,
    }
    assert run["evaluated_at"].startswith("20")
    assert run["finished_at"] is None  # the execution's end comes from the run-outcome function
    assert run["trials"] == {"total": 4, "succeeded": 2, "failed": 1, "missing_metrics": 1, "no_result": 0}
    assert run["objective_metric"] == "validation:auc"
    assert [(m["model"], m["algorithm"], m["best_trial"]) for m in document["models"]] == [
        ("xgboost", "xgboost", "00000"),
        ("linear", "linear", "00002"),
    ]
    [chosen, failed_trial] = document["models"][0]["trials"]
    assert chosen == {
        "trial": "00000",
        "job_name": job("00000"),
        "attempt": 0,
        "status": "succeeded",
        "reason": None,
        "hyperparameters": {"eta": 0.1},
        "objective_metric": "validation:auc",
        "objective_value": 0.85,
        "metrics": {"validation:auc": 0.85, "validation:logloss": 0.3},
        "best": True,
        "training_job_arn": f"arn:aws:sagemaker:{REGION}:123456789012:training-job/{job('00000')}",
        "model_data": chosen["model_data"],
    }
    assert chosen["model_data"].endswith(f"/models/{job('00000')}/output/model.tar.gz")
    assert failed_trial["objective_value"] is None
    assert failed_trial["reason"] == "States.TaskFailed: AlgorithmError: out of memory"
    [xgboost, linear] = document["packages"]
    assert xgboost["model_package_arn"] == ledger["xgboost"]
    assert xgboost["model_package_group"] == "mlops-dev-acme-xgboost"
    assert (xgboost["trial"], xgboost["metric"], xgboost["value"]) == ("00000", "validation:auc", 0.85)
    assert (xgboost["approval_status"], xgboost["approval_source"]) == ("PendingManualApproval", "sagemaker")
    assert xgboost["evaluation"] == f"s3://{ARTIFACTS}/artifacts/runs/acme/run-1/evaluation/xgboost.json"
    assert (linear["approval_status"], linear["recorded_approval_status"]) == ("Approved", "Approved")
    assert document["other_records"] == 0


def test_a_planned_run_shows_no_trials_yet(ledger, capsys):
    assert main(["run-2", "--table", LEDGER]) == 0

    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "run run-2 of tenant acme: planned"
    assert lines[2] == "  finished   -"
    assert lines[3] == "  trials     4 planned"
    assert "model xgboost: no trial recorded (trials are recorded when the run is evaluated)" in lines
    assert "model linear: no trial recorded (trials are recorded when the run is evaluated)" in lines
    assert trial_rows(out) == {}
    assert "model packages: none registered" in lines


def test_records_of_other_kinds_are_counted_not_shown(ledger, capsys):
    boto3.client("dynamodb", region_name=REGION).put_item(
        TableName=LEDGER,
        Item={"pk": {"S": "RUN#run-1"}, "sk": {"S": "APPROVAL#linear#1"}, "kind": {"S": "approval"}},
    )

    assert main(["run-1", "--table", LEDGER]) == 0

    assert capsys.readouterr().out.splitlines()[-1] == "(1 other ledger record(s) of the run not shown)"


def test_a_run_without_records_exits_1_with_one_line(ledger, capsys):
    assert main(["run-404", "--table", LEDGER]) == 1

    captured = capsys.readouterr()
    assert captured.err == f"mlops run-report: run 'run-404' has no records in table '{LEDGER}'\n"
    assert captured.out == ""


def test_an_aws_error_exits_1_with_one_line(ledger, capsys):
    assert main(["run-1", "--table", "no-such-table"]) == 1

    [line] = capsys.readouterr().err.splitlines()
    assert "ResourceNotFoundException" in line


def test_the_table_name_may_come_from_the_environment(ledger, capsys):
    assert main(["run-2"], environ={"MLOPS_LEDGER_TABLE": LEDGER}) == 0

    assert capsys.readouterr().out.startswith("run run-2 of tenant acme: planned\n")


def test_without_a_table_name_it_exits_2_saying_how_to_give_one(capsys):
    assert main(["run-1"], environ={}) == 2

    [line] = capsys.readouterr().err.splitlines()
    assert all(hint in line for hint in ("--table", "--stack", "MLOPS_LEDGER_TABLE"))


# The table's name from the Foundation stack's output (moto's CloudFormation needs extras this suite does not install).


def test_the_table_name_is_the_stacks_run_ledger_output():
    outputs = [
        {"OutputKey": "ProgressTableName", "OutputValue": "progress"},
        {"OutputKey": "RunLedgerTableName", "OutputValue": "dev-Foundation-RunLedger-ABC"},
    ]
    client, stubber = stubbed_cloudformation("dev-Foundation", outputs)

    assert ledger_table_from_stack(client, "dev-Foundation") == "dev-Foundation-RunLedger-ABC"
    stubber.assert_no_pending_responses()


def test_a_stack_without_the_output_or_a_missing_stack_is_nothing_to_show():
    client, _ = stubbed_cloudformation("dev-Serving", [{"OutputKey": "ApiUrl", "OutputValue": "u"}])
    with pytest.raises(NothingToShow, match="has no output 'RunLedgerTableName'"):
        ledger_table_from_stack(client, "dev-Serving")

    client, _ = stubbed_cloudformation("dev-Nope", error="ValidationError")
    with pytest.raises(NothingToShow, match="does not exist"):
        ledger_table_from_stack(client, "dev-Nope")


def test_main_reads_the_table_from_the_stack(ledger, capsys, monkeypatch):
    cloudformation, _ = stubbed_cloudformation(
        "dev-Foundation", [{"OutputKey": "RunLedgerTableName", "OutputValue": LEDGER}]
    )
    real_client = boto3.client
    monkeypatch.setattr(
        boto3,
        "client",
        lambda service, region_name=None: (
            cloudformation if service == "cloudformation" else real_client(service, region_name=region_name)
        ),
    )

    assert main(["run-2", "--stack", "dev-Foundation"], environ={"MLOPS_LEDGER_TABLE": "ignored"}) == 0

    assert f"  ledger     {LEDGER}" in capsys.readouterr().out.splitlines()
