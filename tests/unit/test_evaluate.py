"""The evaluate handler against moto S3, DynamoDB and SageMaker, in-process, on results shaped as AWS writes them.

Both entries: ``evaluate`` (choose, describe the baseline jobs) and ``register`` (after the baselines).
``run`` goes through both with what the state machine's baseline jobs leave between them, a
baseline.json next to each chosen model's artifact; tests of the step between use the entries apart.

The plan comes from the plan handler itself, so both ends of the plan's contract are exercised. The
Map's results are built in the ResultWriter format AWS documents (manifest.json listing
SUCCEEDED_0.json and FAILED_0.json, each a JSON array of executions with ``Input``/``Output`` as JSON
strings); what moto 5.2.5 writes (a manifest with empty lists) is captured from a real moto
Distributed Map run.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws
from moto.sagemaker.models import FakeTrainingJob

from mlops_platform.aws import from_item
from mlops_platform.data.prepare import main as prepare
from mlops_platform.evaluation.baselines import baseline_uri
from mlops_platform.evaluation.documents import QUALITY_SECTION
from mlops_platform.evaluation.errors import (
    BaselineMissing,
    InvalidEvaluationRequest,
    InvalidName,
    NoUsableTrial,
    ResultsUnreadable,
)
from mlops_platform.evaluation.names import baseline_job_name
from mlops_platform.evaluation.registration import client_token, metadata_value
from mlops_platform.evaluation.trials import NOT_RUN
from mlops_platform.registry.approval_messages import evaluation_lines
from mlops_platform.reports import run_report
from mlops_platform.runs.prepared import report_key
from mlops_platform.sagemaker_paths import ProcessingPaths
from mlops_platform.training.objective import OBJECTIVES
from tests.conftest import create_ledger_table, load_handler
from tests.lambda_context import LambdaContext
from tests.published_config import published_config
from tests.unit import test_plan as planning
from tests.unit.training import test_prepare_tabular as prepare_tests

REGION = "eu-west-1"
ACCOUNT = "123456789012"
ARTIFACTS = "artifacts-zone"
FEATURES = "features-zone"
LEDGER = "ledger"
KMS_KEY = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"
SERVING_IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/serving:1"
# Where the state machine's ResultWriter puts every run's results (mlops_constructs/training_definition.py).
MAP_RESULTS = "artifacts/map-results"
ENVIRONMENT = {
    # plan, which these tests run first: its own tests' environment, in this account
    **planning.ENVIRONMENT,
    "TRAINING_IMAGE_URI": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/training:cpu",
    "GPU_TRAINING_IMAGE_URI": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/training:gpu",
    "KMS_KEY_ARN": KMS_KEY,
    # evaluate
    "AUTO_APPROVE": "true",
    "SERVING_IMAGE_URI": SERVING_IMAGE,
    "INFERENCE_INSTANCE_TYPE": "ml.c5.large",
    "BASELINE_IMAGE_URI": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/training:cpu",
    "TOLERATED_FAILURE_PERCENTAGE": "50",
}
CONFIG = published_config(
    {
        "name": "churn",
        "target": "churned",
        "problem_type": "binary",
        "features": {"tenure": "double", "plan": "bigint", "active": "boolean"},
    },
    [
        {"name": "xgboost", "algorithm": "xgboost", "grid": {"eta": [0.1, 0.3]}, "combinations": None},
        {"name": "linear", "algorithm": "linear", "grid": None, "combinations": [{"alpha": 0.001}, {"alpha": 0.01}]},
    ],
    spot=False,
)
# Trials: 00000 xgboost eta=0.1, 00001 xgboost eta=0.3, 00002 linear alpha=0.001, 00003 linear alpha=0.01.


@pytest.fixture
def aws(monkeypatch):
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in (ARTIFACTS, FEATURES, planning.RAW, planning.CURATED, planning.PREDICTIONS):
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        create_ledger_table(LEDGER, REGION)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        yield s3, dynamodb, boto3.client("sagemaker", region_name=REGION)


def publish(s3, config: dict[str, Any]) -> None:
    s3.put_object(Bucket=ARTIFACTS, Key="artifacts/config/pipelines/acme.json", Body=json.dumps(config))


def approve(sagemaker, arn: str) -> None:
    """A person's approval. UpdateModelPackage keeps the package's metadata in AWS, while moto 5.2.5 replaces it
    with the request's (None), so the approval restates it: the same package as AWS would leave it."""
    metadata = sagemaker.describe_model_package(ModelPackageName=arn).get("CustomerMetadataProperties") or {}
    sagemaker.update_model_package(
        ModelPackageArn=arn,
        ModelApprovalStatus="Approved",
        **({"CustomerMetadataProperties": metadata} if metadata else {}),
    )


@pytest.fixture
def planned(aws, monkeypatch):
    """The plan λ's output and items for run-1 of tenant acme."""

    def make(
        config: dict[str, Any] | None = None, run_id: str = "run-1"
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        s3 = aws[0]
        publish(s3, config or CONFIG)
        monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "plan")
        output = load_handler("plan").handler(
            {"tenant": "acme", "run_id": run_id, "day": "2026-11-24"}, LambdaContext("plan")
        )
        body = s3.get_object(Bucket=ARTIFACTS, Key=output["plan"]["Key"])["Body"].read()
        return output, json.loads(body)

    return make


def evaluator(monkeypatch, **environment: str):
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "evaluate")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return load_handler("evaluate")


@pytest.fixture
def evaluate(aws, monkeypatch):
    return evaluator(monkeypatch)


# -- results as AWS writes them


def job_of(item: dict[str, Any], **metrics: Any) -> dict[str, Any]:
    """The .sync task's output: DescribeTrainingJob, as Step Functions carries it."""
    name = item["job_name"]
    return {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{name}",
        "TrainingJobStatus": "Completed",
        "SecondaryStatus": "Completed",
        "HyperParameters": item["request"]["HyperParameters"],
        "ModelArtifacts": {
            "S3ModelArtifacts": f"{item['request']['OutputDataConfig']['S3OutputPath']}/{name}/output/model.tar.gz"
        },
        "FinalMetricDataList": [
            {"MetricName": name_, "Value": value, "Timestamp": 1795492800.0} for name_, value in metrics.items()
        ],
    }


def succeeded(item: dict[str, Any], job: Any) -> dict[str, Any]:
    return execution(item, "SUCCEEDED", Output=json.dumps({"item": item, "job": job}), OutputDetails={"Included": True})


def failed(item: dict[str, Any], error: str, cause: str) -> dict[str, Any]:
    return execution(item, "FAILED", Error=error, Cause=cause)


def execution(item: dict[str, Any], status: str, **fields: Any) -> dict[str, Any]:
    name = str(uuid.uuid4())
    return {
        "ExecutionArn": f"arn:aws:states:{REGION}:{ACCOUNT}:execution:training/Map:{name}",
        # The Map's ItemSelector (mlops_constructs/training_definition.py): item, attempt to start, first wait.
        "Input": json.dumps(
            {"item": item, "current": {"job_name": item["job_name"], "attempt": 0}, "wait_seconds": 60}
        ),
        "InputDetails": {"Included": True},
        "Name": name,
        "RedriveCount": 0,
        "RedriveStatus": "NOT_REDRIVABLE",
        "RedriveStatusReason": "Execution is SUCCEEDED and cannot be redriven",
        "StartDate": "2026-11-24T10:00:00.000Z",
        "StateMachineArn": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:training/Map",
        "Status": status,
        "StopDate": "2026-11-24T10:30:00.000Z",
        **fields,
    }


def write_results(s3, files: dict[str, list[Any]], *, jsonl: bool = False, prefix: str = MAP_RESULTS) -> dict[str, Any]:
    """manifest.json and <STATUS>_0.json under <Prefix>/<map run id>/, as AWS writes them; the Map's output."""
    map_run = str(uuid.uuid4())
    folder = f"{prefix}/{map_run}/"
    listed: dict[str, list[dict[str, Any]]] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
    for status, entries in files.items():
        key = f"{folder}{status}_0.json"
        body = "\n".join(json.dumps(e) for e in entries) if jsonl else json.dumps(entries)
        s3.put_object(Bucket=ARTIFACTS, Key=key, Body=body)
        listed[status].append({"Key": key, "Size": len(body)})
    arn = f"arn:aws:states:{REGION}:{ACCOUNT}:mapRun:training/Map:{map_run}"
    manifest = {"DestinationBucket": ARTIFACTS, "MapRunArn": arn, "ResultFiles": listed}
    s3.put_object(Bucket=ARTIFACTS, Key=f"{folder}manifest.json", Body=json.dumps(manifest))
    return {"MapRunArn": arn, "ResultWriterDetails": {"Bucket": ARTIFACTS, "Key": f"{folder}manifest.json"}}


def evaluate_only(evaluate, plan: dict[str, Any], results: Any) -> dict[str, Any]:
    """The evaluate entry, as the Evaluate state calls it."""
    event = {"action": "evaluate", "run_id": plan["run_id"], "tenant": "acme", "plan": plan, "results": results}
    result = evaluate.handler(event, LambdaContext("evaluate", memory_limit_in_mb=1024))
    json.dumps(result, allow_nan=False)
    return result


def register(evaluate, evaluation: dict[str, Any]) -> dict[str, Any]:
    """The register entry, as the Register state calls it."""
    event = {"action": "register", "run_id": evaluation["run_id"], "tenant": "acme", "evaluation": evaluation}
    result = evaluate.handler(event, LambdaContext("evaluate", memory_limit_in_mb=1024))
    json.dumps(result, allow_nan=False)
    return result


def baseline_document(model: str) -> dict[str, Any]:
    """A small stand-in for what mlops_platform.monitoring.baseline_job writes (tested in tests/unit/training)."""
    return {"schema_version": 1, "bins": 10, "rows": 3, "feature_order": [], "features": {}, "predictions": None,
            "model": {"model": model}}  # fmt: skip


def artifact_body(model: str) -> bytes:
    """A stand-in for the archive a training job leaves (its bytes only matter to the recorded sha256)."""
    return f"model.tar.gz of {model}".encode()


def write_baselines(evaluation: dict[str, Any], models: list[str] | None = None) -> None:
    """What the training and baseline jobs leave: each chosen model's artifact, baseline.json next to it."""
    s3 = boto3.client("s3", region_name=REGION)
    for entry in evaluation["selected"]:
        bucket, _, key = entry["model_data"].removeprefix("s3://").partition("/")
        s3.put_object(Bucket=bucket, Key=key, Body=artifact_body(entry["model"]))
        if models is None or entry["model"] in models:
            bucket, _, key = entry["baseline"].removeprefix("s3://").partition("/")
            s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(baseline_document(entry["model"])).encode())


def run(evaluate, plan: dict[str, Any], results: Any) -> dict[str, Any]:
    """Evaluate, the baseline jobs, register: the state machine's steps from Evaluate to Register."""
    evaluation = evaluate_only(evaluate, plan, results)
    write_baselines(evaluation)
    return register(evaluate, evaluation)


def ledger(dynamodb, sk_prefix: str) -> dict[str, dict[str, Any]]:
    items = dynamodb.query(
        TableName=LEDGER,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :sk)",
        ExpressionAttributeValues={":pk": {"S": "RUN#run-1"}, ":sk": {"S": sk_prefix}},
    )["Items"]
    return {item["sk"]["S"]: item for item in items}


def all_succeeded(items: list[dict[str, Any]], aucs: list[float]) -> list[dict[str, Any]]:
    return [
        succeeded(item, job_of(item, **{"validation:auc": auc, "validation:logloss": 0.2}))
        for item, auc in zip(items, aucs, strict=True)
    ]


# -- choosing


def test_the_best_trial_of_each_model_is_registered_and_the_best_approved_one_predicts(evaluate, aws, planned):
    s3, _, sagemaker = aws
    plan, items = planned()
    result = run(evaluate, plan, write_results(s3, {"SUCCEEDED": all_succeeded(items, [0.91, 0.95, 0.97, 0.93])}))

    assert result["trials"] == {"total": 4, "succeeded": 4, "failed": 0, "missing_metrics": 0, "no_result": 0}
    assert [(b["model"], b["trial"], b["value"], b["approval_status"]) for b in result["best"]] == [
        ("xgboost", "00001", 0.95, "Approved"),
        ("linear", "00002", 0.97, "Approved"),
    ]
    linear = result["best"][1]
    assert linear["job_name"] == items[2]["job_name"]
    assert linear["metric"] == "validation:auc"
    assert result["predict"] == {
        "model": "linear",
        "trial": "00002",
        "model_package_arn": linear["model_package_arn"],
        "model_data": f"s3://{ARTIFACTS}/artifacts/runs/acme/run-1/models/{items[2]['job_name']}/output/model.tar.gz",
    }
    groups = sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"]
    assert sorted(g["ModelPackageGroupName"] for g in groups) == ["mlops-dev-acme-linear", "mlops-dev-acme-xgboost"]


def test_a_minimized_objective_picks_the_lowest_value(evaluate, aws, planned):
    s3, _, _ = aws
    config = {
        **CONFIG,
        "objective": {"metric": "validation:logloss", "direction": "minimize", "approval_threshold": 0.3},
    }
    plan, items = planned(config)
    losses = [0.4, 0.25, 0.2, 0.5]
    entries = [succeeded(i, job_of(i, **{"validation:logloss": v})) for i, v in zip(items, losses, strict=True)]
    result = run(evaluate, plan, write_results(s3, {"SUCCEEDED": entries}))

    assert [(b["model"], b["trial"], b["value"], b["approval_status"]) for b in result["best"]] == [
        ("xgboost", "00001", 0.25, "Approved"),
        ("linear", "00002", 0.2, "Approved"),
    ]
    assert result["predict"]["trial"] == "00002"


def test_ties_go_to_the_lower_trial_number(evaluate, aws, planned):
    s3, _, _ = aws
    plan, items = planned()
    entries = all_succeeded(items, [0.95, 0.95, 0.93, 0.93])
    result = run(evaluate, plan, write_results(s3, {"SUCCEEDED": list(reversed(entries))}))

    assert [(b["model"], b["trial"]) for b in result["best"]] == [("xgboost", "00000"), ("linear", "00002")]
    assert result["predict"]["trial"] == "00000"  # across models too


def test_missing_or_nan_metrics_are_excluded_with_a_reason(evaluate, aws, planned):
    s3, dynamodb, _ = aws
    plan, items = planned()
    no_list = job_of(items[0])
    del no_list["FinalMetricDataList"]
    entries = [
        succeeded(items[0], no_list),
        succeeded(items[1], job_of(items[1], **{"validation:auc": "NaN"})),
        succeeded(items[2], job_of(items[2], **{"validation:logloss": 0.1})),
        succeeded(items[3], job_of(items[3], **{"validation:auc": 0.8})),
    ]
    result = run(evaluate, plan, write_results(s3, {"SUCCEEDED": entries}))

    assert result["trials"] == {"total": 4, "succeeded": 1, "failed": 0, "missing_metrics": 3, "no_result": 0}
    assert [(b["model"], b["trial"]) for b in result["best"]] == [("linear", "00003")]
    trials = ledger(dynamodb, "TRIAL#")
    assert {sk: (t["status"]["S"], t.get("reason", {}).get("S")) for sk, t in trials.items()} == {
        "TRIAL#00000": ("missing-metrics", "the job reported no metrics (no FinalMetricDataList)"),
        "TRIAL#00001": ("missing-metrics", "the objective metric validation:auc is not a finite number"),
        "TRIAL#00002": ("missing-metrics", "FinalMetricDataList has no validation:auc"),
        "TRIAL#00003": ("succeeded", None),
    }


def test_failed_children_are_recorded_with_their_cause_and_the_rest_still_register(evaluate, aws, planned):
    s3, dynamodb, _ = aws
    plan, items = planned()
    sync_cause = json.dumps({"TrainingJobName": items[0]["job_name"], "FailureReason": "AlgorithmError: bad input"})
    result = run(
        evaluate,
        plan,
        write_results(
            s3,
            {
                "SUCCEEDED": all_succeeded(items[2:], [0.97, 0.93]),
                "FAILED": [
                    failed(items[0], "States.TaskFailed", sync_cause),
                    failed(items[1], "TrainingGaveUp", "3 attempts failed"),
                ],
            },
        ),
    )

    assert result["trials"] == {"total": 4, "succeeded": 2, "failed": 2, "missing_metrics": 0, "no_result": 0}
    assert [b["model"] for b in result["best"]] == ["linear"]
    trials = ledger(dynamodb, "TRIAL#")
    assert trials["TRIAL#00000"]["reason"]["S"] == "States.TaskFailed: AlgorithmError: bad input"
    assert trials["TRIAL#00001"]["reason"]["S"] == "TrainingGaveUp: 3 attempts failed"
    assert trials["TRIAL#00000"]["status"]["S"] == "failed"


def test_when_no_trial_is_usable_the_trials_are_recorded_then_no_usable_trial_is_raised(evaluate, aws, planned):
    s3, dynamodb, sagemaker = aws
    plan, items = planned()
    results = write_results(s3, {"FAILED": [failed(item, "States.TaskFailed", "boom") for item in items]})
    reason = r"no trial with a finite validation:auc: 4 of 4 trials failed \(the run tolerates 50%\): 4 trials: States"
    with pytest.raises(NoUsableTrial, match=reason):
        run(evaluate, plan, results)

    assert {t["status"]["S"] for t in ledger(dynamodb, "TRIAL#").values()} == {"failed"}
    assert len(ledger(dynamodb, "TRIAL#")) == 4
    assert ledger(dynamodb, "RUN")["RUN"]["status"]["S"] == "no-usable-trial"
    assert ledger(dynamodb, "PACKAGE#") == {}
    assert sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"] == []


# -- more failed trials than tolerated: the Map stops (States.ExceedToleratedFailureThreshold)

# What the Train state's Catch puts in $.training, which the Evaluate state passes as "results".
MAP_STOPPED = {
    "Error": "States.ExceedToleratedFailureThreshold",
    "Cause": "The specified tolerated failure threshold was exceeded",
}


def stopped_results(s3, plan: dict[str, Any], files: dict[str, list[Any]]) -> dict[str, Any]:
    """The stopped Map's result files, under the run's prefix where its ResultWriter puts them; its error."""
    write_results(s3, files, prefix=plan["results"]["Prefix"])
    return MAP_STOPPED


def test_when_the_map_stops_the_models_with_a_usable_trial_are_chosen_and_left_for_a_person(evaluate, aws, planned):
    s3, dynamodb, _ = aws
    plan, items = planned()
    quota = "ResourceLimitExceeded: The account-level service limit 'ml.p3.2xlarge for training job usage' is 0"
    results = stopped_results(
        s3,
        plan,
        {
            "SUCCEEDED": all_succeeded(items[3:], [0.99]),
            "FAILED": [failed(item, "TrainingRequestRejected", quota) for item in items[:3]],
        },
    )
    evaluation = evaluate_only(evaluate, plan, results)

    assert evaluation["tolerance_exceeded"] is True
    assert evaluation["models_without_usable_trial"] == ["xgboost"]
    assert evaluation["failures"] == (
        f"more than 50% of the trials failed and the Map stopped: 3 of 4 failed (3 trials: TrainingRequestRejected: "
        f"{quota}), 0 without a result (refused by SageMaker or never started)"
    )
    assert [entry["model"] for entry in evaluation["selected"]] == ["linear"]
    write_baselines(evaluation)
    registration = register(evaluate, evaluation)
    # 0.99 meets the threshold and dev auto-approves, but the run lost more trials than it tolerates.
    assert [(b["model"], b["approval_status"]) for b in registration["best"]] == [("linear", "PendingManualApproval")]
    assert registration["predict"] is None
    run_record = ledger(dynamodb, "RUN")["RUN"]
    assert run_record["tolerance_exceeded"] == {"BOOL": True}
    assert run_record["reason"]["S"] == evaluation["failures"]


def test_when_the_map_stops_with_nothing_usable_the_reason_says_how_many_failed_and_why(evaluate, aws, planned):
    s3, dynamodb, _ = aws
    plan, items = planned()
    rejected = "ValidationException: Invalid hyperparameter max_depth (Service: AmazonSageMaker; Status Code: 400)"
    results = stopped_results(
        s3,
        plan,
        {
            "FAILED": [failed(item, "TrainingRequestRejected", rejected) for item in items[:2]]
            + [failed(items[2], "States.TaskFailed", json.dumps({"FailureReason": "AlgorithmError: boom"}))]
        },
    )

    with pytest.raises(NoUsableTrial) as raised:
        evaluate_only(evaluate, plan, results)

    assert str(raised.value) == (
        "run 'run-1' has no trial with a finite validation:auc: more than 50% of the trials failed and the Map "
        f"stopped: 3 of 4 failed (2 trials: TrainingRequestRejected: {rejected}; 1 trial: States.TaskFailed: "
        "AlgorithmError: boom), 1 without a result (refused by SageMaker or never started); 0 without metrics, "
        "1 without a result"
    )
    trials = ledger(dynamodb, "TRIAL#")
    assert trials["TRIAL#00003"]["reason"]["S"] == NOT_RUN
    assert ledger(dynamodb, "RUN")["RUN"]["reason"]["S"] == str(raised.value)


def test_a_stopped_map_without_result_files_is_evaluated_from_the_jobs_themselves(evaluate, aws, planned, jobs_report):
    _, _, sagemaker = aws
    jobs_report(lambda name: ("Failed", None) if "-00000-" in name or "-00001-" in name else ("Completed", 0.97))
    plan, items = planned()
    start_jobs(sagemaker, items[:3])  # trial 00003 never started: the Map stopped first
    evaluation = evaluate_only(evaluate, plan, MAP_STOPPED)

    assert evaluation["trials"] == {"total": 4, "succeeded": 1, "failed": 2, "missing_metrics": 0, "no_result": 1}
    assert evaluation["tolerance_exceeded"] is True
    assert "2 trials: training job Failed: AlgorithmError: out of memory" in evaluation["failures"]
    assert [entry["model"] for entry in evaluation["selected"]] == ["linear"]


def test_more_failures_than_tolerated_need_a_person_even_when_the_map_did_not_stop(evaluate, aws, planned):
    """moto's Distributed Map never stops at its tolerance; evaluation counts for itself."""
    s3, _, _ = aws
    plan, items = planned()
    results = write_results(
        s3,
        {
            "SUCCEEDED": all_succeeded(items[3:], [0.99]),
            "FAILED": [failed(item, "States.TaskFailed", "boom") for item in items[:3]],
        },
    )
    registration = run(evaluate, plan, results)

    assert [(b["model"], b["approval_status"]) for b in registration["best"]] == [("linear", "PendingManualApproval")]


def test_failures_within_tolerance_leave_approval_automatic(evaluate, aws, planned):
    s3, _, _ = aws
    plan, items = planned()
    results = write_results(
        s3,
        {
            "SUCCEEDED": all_succeeded(items[2:], [0.95, 0.99]),
            "FAILED": [failed(item, "States.TaskFailed", "boom") for item in items[:2]],
        },
    )
    evaluation = evaluate_only(evaluate, plan, results)

    assert (evaluation["tolerance_exceeded"], evaluation["failures"]) == (False, None)  # 2 of 4 is 50%: tolerated


# -- approval


def test_a_value_below_the_threshold_is_left_for_manual_approval(evaluate, aws, planned):
    s3, _, sagemaker = aws
    plan, items = planned()
    result = run(evaluate, plan, write_results(s3, {"SUCCEEDED": all_succeeded(items, [0.85, 0.8, 0.95, 0.9])}))

    assert [(b["model"], b["approval_status"]) for b in result["best"]] == [
        ("xgboost", "PendingManualApproval"),
        ("linear", "Approved"),
    ]
    assert result["predict"]["model"] == "linear"
    package = sagemaker.describe_model_package(ModelPackageName=result["best"][0]["model_package_arn"])
    assert package["ModelApprovalStatus"] == "PendingManualApproval"


def test_without_auto_approval_nothing_is_approved_and_nothing_predicts(aws, planned, monkeypatch):
    s3, _, _ = aws
    plan, items = planned()
    evaluate = evaluator(monkeypatch, AUTO_APPROVE="false")
    result = run(evaluate, plan, write_results(s3, {"SUCCEEDED": all_succeeded(items, [0.99, 0.99, 0.99, 0.99])}))

    assert {b["approval_status"] for b in result["best"]} == {"PendingManualApproval"}
    assert result["predict"] is None


def test_without_an_approval_in_this_run_the_package_a_person_approved_before_predicts(aws, planned, monkeypatch):
    s3, _, sagemaker = aws
    plan, items = planned()
    evaluate = evaluator(monkeypatch, AUTO_APPROVE="false")
    first = run(evaluate, plan, write_results(s3, {"SUCCEEDED": all_succeeded(items, [0.99, 0.99, 0.99, 0.99])}))
    [linear] = [b for b in first["best"] if b["model"] == "linear"]
    # A person approves the linear package in the registry (prod's path).
    approve(sagemaker, linear["model_package_arn"])
    plan2, items2 = planned(run_id="run-2")
    second = run(evaluate, plan2, write_results(s3, {"SUCCEEDED": all_succeeded(items2, [0.5, 0.5, 0.5, 0.5])}))

    assert {b["approval_status"] for b in second["best"]} == {"PendingManualApproval"}
    assert second["predict"] == {
        "model": "linear",
        "trial": None,
        "model_package_arn": linear["model_package_arn"],
        "model_data": None,
    }


@pytest.mark.parametrize(
    "metadata",
    [
        # Tenant acme-lin's model ear: the same group name, mlops-dev-acme-linear, from another tenant's pair.
        {"tenant": "acme-lin", "model": "ear"},
        {"tenant": "acme", "model": "xgboost"},
        {"tenant": "other", "model": "linear"},
        {},
    ],
    ids=["colliding-tenant-and-model", "other-model", "other-tenant", "no-metadata"],
)
def test_a_newer_approved_package_of_another_tenant_or_model_in_the_group_never_predicts(
    aws, planned, monkeypatch, metadata
):
    """Issue 17, point 5: the group's name is no proof of whose package it is; its metadata must agree."""
    s3, _, sagemaker = aws
    plan, items = planned()
    evaluate = evaluator(monkeypatch, AUTO_APPROVE="false")
    first = run(evaluate, plan, write_results(s3, {"SUCCEEDED": all_succeeded(items, [0.99, 0.99, 0.99, 0.99])}))
    [linear] = [b for b in first["best"] if b["model"] == "linear"]
    approve(sagemaker, linear["model_package_arn"])
    time.sleep(0.01)  # strictly newer, as SageMaker's CreationTime orders them
    intruder = sagemaker.create_model_package(
        ModelPackageGroupName="mlops-dev-acme-linear",
        InferenceSpecification={
            "Containers": [{"Image": SERVING_IMAGE, "ModelDataUrl": "s3://elsewhere/model.tar.gz"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        ModelApprovalStatus="Approved",
        **({"CustomerMetadataProperties": metadata} if metadata else {}),
    )["ModelPackageArn"]
    plan2, items2 = planned(run_id="run-2")
    second = run(evaluate, plan2, write_results(s3, {"SUCCEEDED": all_succeeded(items2, [0.5, 0.5, 0.5, 0.5])}))

    assert second["predict"]["model_package_arn"] == linear["model_package_arn"] != intruder
    assert second["predict"]["model"] == "linear"


def test_an_approved_package_whose_metadata_names_another_tenant_is_never_chosen_alone(aws, planned, monkeypatch):
    s3, _, sagemaker = aws
    plan, items = planned()
    evaluate = evaluator(monkeypatch, AUTO_APPROVE="false")
    sagemaker.create_model_package_group(ModelPackageGroupName="mlops-dev-acme-linear")
    sagemaker.create_model_package(
        ModelPackageGroupName="mlops-dev-acme-linear",
        InferenceSpecification={
            "Containers": [{"Image": SERVING_IMAGE, "ModelDataUrl": "s3://elsewhere/model.tar.gz"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        ModelApprovalStatus="Approved",
        CustomerMetadataProperties={"tenant": "acme-lin", "model": "ear"},
    )
    result = run(evaluate, plan, write_results(s3, {"SUCCEEDED": all_succeeded(items, [0.99, 0.99, 0.99, 0.99])}))

    assert result["predict"] is None


# -- the registry and the ledger


def test_the_package_carries_the_model_its_evaluation_and_its_lineage(evaluate, aws, planned):
    s3, _, sagemaker = aws
    plan, items = planned()
    result = run(evaluate, plan, write_results(s3, {"SUCCEEDED": all_succeeded(items, [0.91, 0.95, 0.97, 0.93])}))
    best = result["best"][1]
    package = sagemaker.describe_model_package(ModelPackageName=best["model_package_arn"])

    assert package["ModelPackageGroupName"] == "mlops-dev-acme-linear"
    assert package["InferenceSpecification"] == {
        "Containers": [{"Image": SERVING_IMAGE, "ModelDataUrl": result["predict"]["model_data"]}],
        "SupportedContentTypes": ["text/csv"],
        "SupportedResponseMIMETypes": ["text/csv"],
        "SupportedRealtimeInferenceInstanceTypes": ["ml.c5.large"],
        "SupportedTransformInstanceTypes": ["ml.m5.large"],
    }
    evaluation_key = "artifacts/runs/acme/run-1/evaluation/linear.json"
    assert package["ModelMetrics"] == {
        "ModelQuality": {
            "Statistics": {"ContentType": "application/json", "S3Uri": f"s3://{ARTIFACTS}/{evaluation_key}"}
        }
    }
    baseline_key = f"artifacts/runs/acme/run-1/models/{items[2]['job_name']}/output/baseline.json"
    assert package["DriftCheckBaselines"] == {
        "ModelDataQuality": {
            "Statistics": {"ContentType": "application/json", "S3Uri": f"s3://{ARTIFACTS}/{baseline_key}"}
        }
    }
    baseline_body = s3.get_object(Bucket=ARTIFACTS, Key=baseline_key)["Body"].read()
    schema_key = "artifacts/runs/acme/run-1/evaluation/feature-schema.json"
    schema_body = s3.get_object(Bucket=ARTIFACTS, Key=schema_key)["Body"].read()
    assert package["CustomerMetadataProperties"] == {
        "run_id": "run-1",
        "tenant": "acme",
        "model": "linear",
        "algorithm": "linear",
        "trial": "00002",
        "training_job_name": items[2]["job_name"],
        "objective_metric": "validation:auc",
        "objective_value": "0.97",
        "training_data": f"s3://{FEATURES}/features/acme/churn/dt=2026-11-24/run-1-train.parquet",
        "feature_schema": f"s3://{ARTIFACTS}/{schema_key}",
        "feature_schema_sha256": hashlib.sha256(schema_body).hexdigest(),
        "baseline": f"s3://{ARTIFACTS}/{baseline_key}",
        "baseline_sha256": hashlib.sha256(baseline_body).hexdigest(),
        # The archive's own digest, streamed from S3: promotion checks the object against it.
        "artifact_sha256": hashlib.sha256(artifact_body("linear")).hexdigest(),
    }
    assert json.loads(schema_body) == {
        "schema_version": 1,
        "tenant": "acme",
        "dataset": "churn",
        "features": [
            {"name": "tenure", "type": "double"},
            {"name": "plan", "type": "bigint"},
            {"name": "active", "type": "boolean"},
        ],
        "target": "churned",
        "problem_type": "binary",
    }
    evaluation = json.loads(s3.get_object(Bucket=ARTIFACTS, Key=evaluation_key)["Body"].read())
    assert evaluation["objective"] == {"metric": "validation:auc", "direction": "maximize"}
    assert evaluation["threshold"] == 0.9
    assert evaluation["meets_threshold"] is True
    assert evaluation["best"]["trial"] == "00002"
    assert [(t["trial"], t["value"]) for t in evaluation["trials"]] == [("00002", 0.97), ("00003", 0.93)]
    assert evaluation["binary_classification_metrics"] == {"auc": {"value": 0.97}, "logloss": {"value": 0.2}}
    head = s3.head_object(Bucket=ARTIFACTS, Key=evaluation_key)
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", KMS_KEY)


def test_a_multiclass_model_s_quality_has_its_own_section_in_sagemaker_s_layout(evaluate, aws, planned):
    s3, _, sagemaker = aws
    config = {
        **CONFIG,
        "dataset": {**CONFIG["dataset"], "target": "class", "problem_type": "multiclass", "classes": ["1", "2", "3"]},
        "objective": {"metric": "validation:f1_macro", "direction": "maximize", "approval_threshold": 0.8},
        "metrics": list(OBJECTIVES["multiclass"]),
    }
    plan, items = planned(config)
    reported = {"validation:f1_macro": 0.93, "validation:mlogloss": 0.21, "validation:accuracy": 0.94}
    entries = [succeeded(item, job_of(item, **reported)) for item in items]
    result = run(evaluate, plan, write_results(s3, {"SUCCEEDED": entries}))

    package = sagemaker.describe_model_package(ModelPackageName=result["best"][1]["model_package_arn"])
    statistics = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    evaluation = json.loads(s3.get_object(Bucket=ARTIFACTS, Key=statistics.split("/", 3)[3])["Body"].read())
    assert evaluation["multiclass_classification_metrics"] == {
        "accuracy": {"value": 0.94},
        "f1_macro": {"value": 0.93},
        "mlogloss": {"value": 0.21},
    }
    assert "metrics" not in evaluation


def test_every_problem_type_the_image_reports_metrics_for_has_a_quality_section():
    assert set(QUALITY_SECTION) == set(OBJECTIVES)


def run_rows(dynamodb) -> list[dict[str, Any]]:
    """Every ledger row of run-1, as the run report reads them."""
    items = dynamodb.query(
        TableName=LEDGER, KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": "RUN#run-1"}}
    )["Items"]
    return [from_item(item) for item in items]


def test_rows_prepare_rejected_reach_the_run_record_the_run_report_and_the_approval_notice(
    evaluate, aws, planned, tmp_path
):
    s3, dynamodb, sagemaker = aws
    # The real prepare job, rejecting 2 of 100 rows within a 5% ceiling, with a column the schema lacks.
    paths = ProcessingPaths(root=tmp_path / "processing", message=tmp_path / "message")
    (paths.raw / "dt=2026-11-24").mkdir(parents=True)
    records = [prepare_tests.line(f"r-{i}", prepare_tests.typed_record(i, region="eu")) for i in range(98)]
    records += [prepare_tests.line(f"bad-{i}", prepare_tests.typed_record(i, flag="yes")) for i in range(2)]
    (paths.raw / "dt=2026-11-24" / "a.jsonl").write_bytes(b"".join(record + b"\n" for record in records))
    published = tmp_path / "acme.json"
    published.write_text(json.dumps(prepare_tests.typed_config(max_rejected_share=0.05)))
    assert prepare(["--config", str(published), "--run-id", "run-1", "--day", "2026-11-24"], paths) == 0
    s3.put_object(Bucket=ARTIFACTS, Key=report_key("acme", "run-1"), Body=(paths.report / "report.json").read_bytes())

    plan, items = planned()
    result = run(evaluate, plan, write_results(s3, {"SUCCEEDED": all_succeeded(items, [0.91, 0.95, 0.97, 0.93])}))

    record = run_report.report("run-1", LEDGER, run_rows(dynamodb))
    assert record["run"]["data"]["rejected"] == 2
    assert record["run"]["data"]["top_rejections"] == [{"reason": "wrong-type", "rows": 2, "columns": ["flag"]}]
    assert record["run"]["data"]["unknown_columns"] == {"region": 98}
    shown = run_report.text(record)
    assert "100 read, 98 valid, 2 rejected (2.00%; at most 5.00% allowed)" in shown
    assert "rejected: wrong-type 2 (flag)" in shown
    package = sagemaker.describe_model_package(ModelPackageName=result["best"][1]["model_package_arn"])
    notice = evaluation_lines(s3, package)
    assert "Training data: 100 read, 98 valid, 2 rejected (2.00%; at most 5.00% allowed)" in notice
    assert any("2 of 100 rows rejected" in line and "wrong-type 2 rows (flag)" in line for line in notice)
    assert any("unknown columns, ignored: region (98)" in line for line in notice)


def test_a_run_without_a_readable_prepare_report_is_evaluated_and_says_nothing_of_its_rows(evaluate, aws, planned):
    s3, dynamodb, _ = aws
    plan, items = planned()
    run(evaluate, plan, write_results(s3, {"SUCCEEDED": all_succeeded(items, [0.91, 0.95, 0.97, 0.93])}))

    record = run_report.report("run-1", LEDGER, run_rows(dynamodb))
    assert record["run"]["data"] is None
    assert " read, " not in run_report.text(record)


def test_a_second_evaluation_of_the_run_reuses_its_packages_and_groups(evaluate, aws, planned):
    s3, dynamodb, sagemaker = aws
    plan, items = planned()
    results = write_results(s3, {"SUCCEEDED": all_succeeded(items, [0.91, 0.95, 0.97, 0.93])})
    first = run(evaluate, plan, results)
    packages = ledger(dynamodb, "PACKAGE#")
    second = run(evaluate, plan, results)

    assert second == first
    assert ledger(dynamodb, "PACKAGE#") == packages
    for group in ("mlops-dev-acme-linear", "mlops-dev-acme-xgboost"):
        assert len(sagemaker.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]) == 1


def test_a_package_approved_by_a_person_since_is_reported_approved_on_reuse(aws, planned, monkeypatch):
    s3, _, sagemaker = aws
    plan, items = planned()
    evaluate = evaluator(monkeypatch, AUTO_APPROVE="false")
    results = write_results(s3, {"SUCCEEDED": all_succeeded(items, [0.91, 0.95, 0.97, 0.93])})
    first = run(evaluate, plan, results)
    assert first["predict"] is None
    sagemaker.update_model_package(
        ModelPackageArn=first["best"][0]["model_package_arn"], ModelApprovalStatus="Approved"
    )

    again = run(evaluate, plan, results)
    assert again["predict"]["model"] == "xgboost"


def test_an_existing_group_is_kept_and_a_concurrently_created_one_is_fine(evaluate, aws, planned):
    s3, _, sagemaker = aws
    sagemaker.create_model_package_group(ModelPackageGroupName="mlops-dev-acme-xgboost")
    plan, items = planned()

    real = evaluate.evaluator.sagemaker

    class RacingClient:
        """Another evaluation creates the group between our describe and our create."""

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def create_model_package_group(self, **kwargs: Any) -> Any:
            real.create_model_package_group(**kwargs)
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "already exists"}}, "Create")

    evaluate.evaluator.sagemaker = RacingClient()
    result = run(evaluate, plan, write_results(s3, {"SUCCEEDED": all_succeeded(items, [0.91, 0.95, 0.97, 0.93])}))

    assert len(result["best"]) == 2
    groups = sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"]
    assert sorted(g["ModelPackageGroupName"] for g in groups) == ["mlops-dev-acme-linear", "mlops-dev-acme-xgboost"]


def test_the_ledger_holds_every_trial_each_package_and_the_runs_outcome(evaluate, aws, planned):
    s3, dynamodb, _ = aws
    plan, items = planned()
    result = run(evaluate, plan, write_results(s3, {"SUCCEEDED": all_succeeded(items, [0.91, 0.95, 0.97, 0.93])}))

    trials = ledger(dynamodb, "TRIAL#")
    assert sorted(trials) == ["TRIAL#00000", "TRIAL#00001", "TRIAL#00002", "TRIAL#00003"]
    trial = trials["TRIAL#00001"]
    assert trial["status"] == {"S": "succeeded"}
    assert trial["job_name"] == {"S": items[1]["job_name"]}
    assert trial["metrics"] == {"M": {"validation:auc": {"N": "0.95"}, "validation:logloss": {"N": "0.2"}}}
    assert trial["best"] == {"BOOL": True}
    assert trials["TRIAL#00000"]["best"] == {"BOOL": False}

    packages = ledger(dynamodb, "PACKAGE#")
    assert sorted(packages) == ["PACKAGE#linear", "PACKAGE#xgboost"]
    linear = packages["PACKAGE#linear"]
    assert linear["model_package_arn"] == {"S": result["best"][1]["model_package_arn"]}
    assert linear["gsi1pk"] == {"S": "TENANT#acme"}
    assert linear["gsi1sk"]["S"] == f"PACKAGE#{linear['created_at']['S']}#run-1"
    baseline = f"s3://{ARTIFACTS}/artifacts/runs/acme/run-1/models/{items[2]['job_name']}/output/baseline.json"
    assert linear["baseline"] == {"S": baseline}
    assert len(linear["baseline_sha256"]["S"]) == 64
    assert result["best"][1]["baseline"] == baseline

    record = ledger(dynamodb, "RUN")["RUN"]
    assert record["status"] == {"S": "evaluated"}
    assert record["trials"]["M"]["succeeded"] == {"N": "4"}
    assert [b["M"]["model"]["S"] for b in record["best"]["L"]] == ["xgboost", "linear"]
    assert [b["M"]["model_package_arn"]["S"] for b in record["best"]["L"]] == [
        b["model_package_arn"] for b in result["best"]
    ]
    assert "registered_at" in record


def test_evaluation_calls_only_what_the_function_is_granted(evaluate, aws, planned):
    """mlops_constructs/training_functions.py grants Get/Put/UpdateItem (no batch writes), S3 reads of
    configs, runs (HeadObject included) and map results, writes of runs, and five model-registry actions."""
    s3, _, _ = aws
    plan, items = planned()
    results = write_results(s3, {"SUCCEEDED": all_succeeded(items, [0.91, 0.95, 0.97, 0.93])})
    calls: set[tuple[str, str]] = set()

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        key = params.get("Key")
        prefix = key.split("/")[1] if isinstance(key, str) and key.startswith("artifacts/") else ""
        calls.add((model.name, prefix))

    for client in (evaluate.evaluator.s3, evaluate.evaluator.sagemaker, evaluate.evaluator.ledger.dynamodb):
        client.meta.events.register("provide-client-params.*.*", record)
    run(evaluate, plan, results)
    run(evaluate, plan, results)

    assert calls <= {
        ("GetObject", "config"),
        ("GetObject", "runs"),
        ("HeadObject", "runs"),
        ("GetObject", "map-results"),
        ("PutObject", "runs"),
        ("GetItem", ""),
        ("PutItem", ""),
        ("UpdateItem", ""),
        ("CreateModelPackageGroup", ""),
        ("DescribeModelPackageGroup", ""),
        ("CreateModelPackage", ""),
        ("DescribeModelPackage", ""),
        ("ListModelPackages", ""),
    }, calls


# -- baselines before registration


def test_evaluation_publishes_each_models_best_objective_for_the_dashboard(evaluate, aws, planned, capsys):
    s3, _, _ = aws
    plan, items = planned()
    capsys.readouterr()
    evaluate_only(evaluate, plan, write_results(s3, {"SUCCEEDED": all_succeeded(items, [0.91, 0.95, 0.97, 0.93])}))

    published = {}
    for line in capsys.readouterr().out.splitlines():
        document = json.loads(line) if line.startswith("{") else {}
        if "BestObjective" in document:
            published[document["Model"]] = (document["Tenant"], document["Metric"], document["BestObjective"])
            [directive] = document["_aws"]["CloudWatchMetrics"]
            assert directive["Namespace"] == "mlops/test"  # tests/conftest.py: Powertools namespace of every handler
            assert {"Tenant", "Model", "Metric"} <= set(directive["Dimensions"][0])
    # Each model's best trial (the plan alternates the models): xgboost's trial 1 and linear's trial 2.
    assert published == {"xgboost": ("acme", "validation:auc", [0.95]), "linear": ("acme", "validation:auc", [0.97])}


def test_evaluation_registers_nothing_and_describes_one_baseline_job_per_chosen_model(evaluate, aws, planned):
    s3, dynamodb, sagemaker = aws
    plan, items = planned()
    evaluation = evaluate_only(
        evaluate, plan, write_results(s3, {"SUCCEEDED": all_succeeded(items, [0.91, 0.95, 0.97, 0.93])})
    )

    assert sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"] == []
    assert ledger(dynamodb, "PACKAGE#") == {}
    assert evaluation["trials"]["succeeded"] == 4
    assert evaluation["objective"] == {"metric": "validation:auc", "direction": "maximize", "threshold": 0.9}
    assert [(e["model"], e["trial"], e["meets_threshold"]) for e in evaluation["selected"]] == [
        ("xgboost", "00001", True),
        ("linear", "00002", True),
    ]
    linear = evaluation["selected"][1]
    output = f"s3://{ARTIFACTS}/artifacts/runs/acme/run-1/models/{items[2]['job_name']}/output"
    assert linear["model_data"] == f"{output}/model.tar.gz"
    assert linear["baseline"] == f"{output}/baseline.json"  # the sibling: the drift monitor's rule
    training_data = f"s3://{FEATURES}/features/acme/churn/dt=2026-11-24/run-1-train.parquet"
    assert linear["training_data"] == training_data
    schema = f"s3://{ARTIFACTS}/artifacts/runs/acme/run-1/evaluation/feature-schema.json"
    job = linear["baseline_job"]
    assert job["ProcessingJobName"] == items[2]["job_name"].removesuffix("-a0") + "-bl"
    assert job["AppSpecification"] == {
        "ImageUri": ENVIRONMENT["BASELINE_IMAGE_URI"],
        "ContainerArguments": [
            "baseline",
            "--model",
            "/opt/ml/processing/input/model/model.tar.gz",
            "--training-data",
            "/opt/ml/processing/input/training",
            "--holdout-data",
            "/opt/ml/processing/input/holdout",
            "--schema",
            "/opt/ml/processing/input/schema/feature-schema.json",
            "--output",
            "/opt/ml/processing/output/baseline",
        ],
    }
    assert {i["InputName"]: (i["S3Input"]["S3Uri"], i["S3Input"]["LocalPath"]) for i in job["ProcessingInputs"]} == {
        "model": (linear["model_data"], "/opt/ml/processing/input/model"),
        "training": (training_data, "/opt/ml/processing/input/training"),
        # Rows the model never trained on, for the predictions' baseline.
        "validation": (training_data.replace("-train.", "-validation."), "/opt/ml/processing/input/holdout/validation"),
        "test": (training_data.replace("-train.", "-test."), "/opt/ml/processing/input/holdout/test"),
        "schema": (schema, "/opt/ml/processing/input/schema"),
    }
    [out] = job["ProcessingOutputConfig"]["Outputs"]
    assert out["S3Output"] == {
        "S3Uri": output,
        "LocalPath": "/opt/ml/processing/output/baseline",
        "S3UploadMode": "EndOfJob",
    }
    assert job["ProcessingOutputConfig"]["KmsKeyId"] == KMS_KEY
    assert job["ProcessingResources"]["ClusterConfig"] == {
        "InstanceCount": 1,
        "InstanceType": ENVIRONMENT["PROCESSING_INSTANCE_TYPE"],
        "VolumeSizeInGB": 30,
        "VolumeKmsKeyId": KMS_KEY,
    }
    assert ledger(dynamodb, "RUN")["RUN"]["status"] == {"S": "evaluated"}


def test_baseline_job_names_are_the_trials_within_sagemakers_limit_whatever_the_attempt(evaluate):
    name = "mlops-dev-0a1b2c3d4e-00003"

    assert baseline_job_name(f"{name}-a0") == baseline_job_name(f"{name}-a7") == f"{name}-bl"
    longest_training_job = "p" * 43 + "-0a1b2c3d4e-00003-a0"  # 63 characters: the plan accepts it
    assert len(baseline_job_name(longest_training_job)) == 63
    with pytest.raises(InvalidName, match="baseline job name"):
        baseline_job_name("p" * 44 + "-0a1b2c3d4e-00003-a0")


def test_a_baseline_lies_next_to_its_model_artifact_or_nowhere(evaluate):
    assert baseline_uri("s3://b/artifacts/runs/t/r/models/j/output/model.tar.gz") == (
        "s3://b/artifacts/runs/t/r/models/j/output/baseline.json"
    )
    with pytest.raises(ResultsUnreadable, match="its baseline has no place"):
        baseline_uri("s3://b/artifacts/runs/t/r/models/j/output/model.joblib")


def test_without_every_baseline_nothing_is_registered(evaluate, aws, planned):
    s3, dynamodb, sagemaker = aws
    plan, items = planned()
    evaluation = evaluate_only(
        evaluate, plan, write_results(s3, {"SUCCEEDED": all_succeeded(items, [0.91, 0.95, 0.97, 0.93])})
    )
    write_baselines(evaluation, models=["xgboost"])  # the linear model's job wrote nothing

    with pytest.raises(BaselineMissing, match=r"the baseline of model 'linear' does not exist at s3://"):
        register(evaluate, evaluation)

    assert sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"] == []
    assert ledger(dynamodb, "PACKAGE#") == {}


def test_without_every_model_artifact_nothing_is_registered(evaluate, aws, planned):
    s3, dynamodb, sagemaker = aws
    plan, items = planned()
    evaluation = evaluate_only(
        evaluate, plan, write_results(s3, {"SUCCEEDED": all_succeeded(items, [0.91, 0.95, 0.97, 0.93])})
    )
    write_baselines(evaluation)
    [linear] = [entry for entry in evaluation["selected"] if entry["model"] == "linear"]
    bucket, _, key = linear["model_data"].removeprefix("s3://").partition("/")
    s3.delete_object(Bucket=bucket, Key=key)

    with pytest.raises(ResultsUnreadable, match=r"the artifact of model 'linear' at s3://.* cannot be read"):
        register(evaluate, evaluation)

    assert sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"] == []
    assert ledger(dynamodb, "PACKAGE#") == {}


def test_a_baseline_object_that_is_not_a_baseline_is_refused(evaluate, aws, planned):
    s3, dynamodb, _ = aws
    plan, items = planned()
    evaluation = evaluate_only(evaluate, plan, write_results(s3, {"SUCCEEDED": all_succeeded(items[2:], [0.97, 0.93])}))
    [linear] = evaluation["selected"]
    bucket, _, key = linear["baseline"].removeprefix("s3://").partition("/")
    s3.put_object(Bucket=bucket, Key=key, Body=b"<html>not a baseline</html>")

    with pytest.raises(BaselineMissing, match="is not a schema_version 1 baseline"):
        register(evaluate, evaluation)
    assert ledger(dynamodb, "PACKAGE#") == {}


def test_a_retried_registration_reuses_the_package_even_if_the_baseline_moved_since(evaluate, aws, planned):
    """The ledger's record is the registration: a retry reads it and checks no baseline again."""
    s3, _, sagemaker = aws
    plan, items = planned()
    evaluation = evaluate_only(evaluate, plan, write_results(s3, {"SUCCEEDED": all_succeeded(items[2:], [0.97, 0.93])}))
    write_baselines(evaluation)
    first = register(evaluate, evaluation)
    bucket, _, key = evaluation["selected"][0]["baseline"].removeprefix("s3://").partition("/")
    s3.delete_object(Bucket=bucket, Key=key)

    assert register(evaluate, evaluation) == first
    packages = sagemaker.list_model_packages(ModelPackageGroupName="mlops-dev-acme-linear")["ModelPackageSummaryList"]
    assert len(packages) == 1


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"action": "publish"}, "'action' has value 'publish'; allowed: evaluate, register"),
        ({"evaluation": None}, "'evaluation' must be the evaluate step's output"),
        ({"tenant": "other"}, "the evaluation is of run 'run-1' of tenant 'acme'"),
        ({"evaluation": {"run_id": "run-1", "tenant": "acme", "selected": []}}, "'evaluation' must be"),
    ],
)
def test_a_malformed_registration_is_an_invalid_request(evaluate, aws, planned, change, fragment):
    s3 = aws[0]
    plan, items = planned()
    evaluation = evaluate_only(evaluate, plan, write_results(s3, {"SUCCEEDED": all_succeeded(items[2:], [0.97, 0.93])}))
    event = {"action": "register", "run_id": "run-1", "tenant": "acme", "evaluation": evaluation, **change}

    with pytest.raises(InvalidEvaluationRequest) as raised:
        evaluate.handler(event, LambdaContext("evaluate", memory_limit_in_mb=1024))
    assert fragment in str(raised.value)


def test_a_baseline_anywhere_but_next_to_its_model_is_an_invalid_request(evaluate, aws, planned):
    s3 = aws[0]
    plan, items = planned()
    evaluation = evaluate_only(evaluate, plan, write_results(s3, {"SUCCEEDED": all_succeeded(items[2:], [0.97, 0.93])}))
    evaluation["selected"][0]["baseline"] = f"s3://{ARTIFACTS}/artifacts/runs/acme/run-1/baseline.json"

    with pytest.raises(InvalidEvaluationRequest, match="is not next to its artifact"):
        register(evaluate, evaluation)


def test_a_selected_model_without_its_fields_is_an_invalid_request(evaluate, aws, planned):
    s3 = aws[0]
    plan, items = planned()
    evaluation = evaluate_only(evaluate, plan, write_results(s3, {"SUCCEEDED": all_succeeded(items[2:], [0.97, 0.93])}))
    del evaluation["selected"][0]["baseline"]

    with pytest.raises(InvalidEvaluationRequest, match="a selected model lacks one of"):
        register(evaluate, evaluation)


# -- result formats


def test_what_moto_writes_for_a_distributed_map_with_a_result_writer_is_read(evaluate, aws, planned):
    """moto 5.2.5 writes manifest.json with empty lists and no result files: every trial is without a result."""
    s3, dynamodb, _ = aws
    plan, _ = planned()
    output = run_moto_map(plan, result_writer=True)
    manifest = json.loads(s3.get_object(Bucket=ARTIFACTS, Key=output["ResultWriterDetails"]["Key"])["Body"].read())
    assert manifest["ResultFiles"] == {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
    assert output["ResultWriterDetails"]["Key"].startswith("artifacts/runs/acme/run-1/results/")

    with pytest.raises(NoUsableTrial, match="4 without a result"):
        run(evaluate, plan, output)
    assert {t["status"]["S"] for t in ledger(dynamodb, "TRIAL#").values()} == {"no-result"}


def test_a_map_without_a_result_writer_returns_its_outputs_inline_and_they_are_read(evaluate, aws, planned):
    """The shape moto tests see with .sync removed: the job holds only its ARN, so metrics are missing."""
    _, dynamodb, _ = aws
    plan, items = planned()
    output = run_moto_map(plan, result_writer=False)
    assert output == [{"item": item, "job": {"TrainingJobArn": f"arn:{item['job_name']}"}} for item in items]

    with pytest.raises(NoUsableTrial, match="4 without metrics"):
        run(evaluate, plan, output)
    assert {t["status"]["S"] for t in ledger(dynamodb, "TRIAL#").values()} == {"missing-metrics"}


def test_inline_outputs_with_metrics_register_like_result_files(evaluate, aws, planned):
    plan, items = planned()
    inline = [
        {"item": i, "job": job_of(i, **{"validation:auc": v})}
        for i, v in zip(items, [0.91, 0.95, 0.97, 0.93], strict=True)
    ]
    assert [b["trial"] for b in run(evaluate, plan, inline)["best"]] == ["00001", "00002"]


def test_json_lines_result_files_and_the_resolvers_reused_jobs_are_read(evaluate, aws, planned):
    s3, _, _ = aws
    plan, items = planned()
    reused = job_of(items[1], **{"validation:auc": 0.99})
    reused = {
        key: reused[key]
        for key in (
            "TrainingJobName",
            "TrainingJobArn",
            "TrainingJobStatus",
            "FinalMetricDataList",
            "ModelArtifacts",
            "HyperParameters",
        )
    }
    reused["FinalMetricDataList"][0]["Timestamp"] = "2026-11-24T10:05:00+00:00"
    entries = [*all_succeeded(items[:1], [0.91]), succeeded(items[1], reused)]
    result = run(evaluate, plan, write_results(s3, {"SUCCEEDED": entries}, jsonl=True))

    assert result["trials"]["no_result"] == 2
    assert [(b["trial"], b["value"]) for b in result["best"]] == [("00001", 0.99)]


def test_a_retried_attempt_is_reported_under_its_own_job_name(evaluate, aws, planned):
    """The child's output keeps the plan item (attempt 0); the job says which attempt trained."""
    s3, dynamodb, _ = aws
    plan, items = planned()
    retried = job_of({**items[0], "job_name": items[0]["job_name"].replace("-a0", "-a1")}, **{"validation:auc": 0.96})
    result = run(evaluate, plan, write_results(s3, {"SUCCEEDED": [succeeded(items[0], retried)]}))

    assert result["best"][0]["job_name"] == items[0]["job_name"].replace("-a0", "-a1")
    trial = ledger(dynamodb, "TRIAL#")["TRIAL#00000"]
    assert (trial["attempt"], trial["job_name"]) == ({"N": "1"}, {"S": retried["TrainingJobName"]})
    assert result["predict"]["model_data"].endswith(f"/models/{retried['TrainingJobName']}/output/model.tar.gz")


def test_a_redriven_trial_counts_as_succeeded_whatever_the_file_order(evaluate, aws, planned):
    s3, _, _ = aws
    plan, items = planned()
    results = write_results(
        s3,
        {
            "SUCCEEDED": [succeeded(items[0], job_of(items[0], **{"validation:auc": 0.96}))],
            "FAILED": [failed(items[0], "States.TaskFailed", "spot capacity")],
        },
    )
    result = run(evaluate, plan, results)

    assert result["trials"] == {"total": 4, "succeeded": 1, "failed": 0, "missing_metrics": 0, "no_result": 3}
    assert result["best"][0]["trial"] == "00000"


# -- trials the results leave open


@pytest.fixture
def jobs_report(monkeypatch):
    """moto's training jobs start Completed and report train:progress only; give them what SageMaker would."""

    def configure(behaviour: Callable[[str], tuple[str, float | None]]) -> None:
        original = FakeTrainingJob.__init__

        def init(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            status, auc = behaviour(self.training_job_name)
            self.training_job_status = status
            if status == "Failed":
                self.failure_reason = "AlgorithmError: out of memory"
            if auc is not None:
                self.final_metric_data_list = [
                    {"MetricName": "validation:auc", "Value": auc, "Timestamp": self.creation_time}
                ]

        monkeypatch.setattr(FakeTrainingJob, "__init__", init)

    return configure


def start_jobs(sagemaker, items: list[dict[str, Any]], *, attempts: int = 1) -> None:
    """What the Map's children do: CreateTrainingJob with the plan's request (moto accepts it as is)."""
    for item in items:
        for attempt in range(attempts):
            request = json.loads(json.dumps(item["request"]))
            name = item["job_name"].replace("-a0", f"-a{attempt}")
            sagemaker.create_training_job(TrainingJobName=name, RoleArn=f"arn:aws:iam::{ACCOUNT}:role/train", **request)


def test_trials_without_results_are_looked_up_by_job_name(evaluate, aws, planned, jobs_report):
    """moto's ResultWriter writes no result files; the jobs themselves say how the trials went."""
    s3, _, sagemaker = aws
    jobs_report(lambda name: ("Completed", 0.99 if "-00003-" in name else 0.9))
    plan, items = planned()
    start_jobs(sagemaker, items)
    result = run(evaluate, plan, write_results(s3, {}))

    assert result["trials"] == {"total": 4, "succeeded": 4, "failed": 0, "missing_metrics": 0, "no_result": 0}
    assert [(b["model"], b["trial"], b["approval_status"]) for b in result["best"]] == [
        ("xgboost", "00000", "Approved"),
        ("linear", "00003", "Approved"),
    ]
    assert result["predict"]["model_data"] == (
        f"s3://{ARTIFACTS}/artifacts/runs/acme/run-1/models/{items[3]['job_name']}/output/model.tar.gz"
    )


def test_a_create_response_as_the_job_is_completed_from_sagemaker(evaluate, aws, planned, jobs_report):
    """Without .sync a child's job is {"TrainingJobArn"}: the description supplies status and metrics."""
    _, _, sagemaker = aws
    jobs_report(lambda name: ("Completed", 0.95))
    plan, items = planned()
    start_jobs(sagemaker, items[:2])
    inline = [{"item": item, "job": {"TrainingJobArn": f"arn:{item['job_name']}"}} for item in items]
    result = run(evaluate, plan, inline)

    # Trials 2 and 3 have no job in SageMaker: their children's outputs stand, without metrics.
    assert result["trials"] == {"total": 4, "succeeded": 2, "failed": 0, "missing_metrics": 2, "no_result": 0}


def test_a_looked_up_trial_follows_its_failed_attempts_to_the_latest(evaluate, aws, planned, jobs_report):
    s3, dynamodb, sagemaker = aws
    jobs_report(lambda name: ("Failed", None) if name.endswith("-a0") else ("Completed", 0.97))
    plan, items = planned()
    start_jobs(sagemaker, items[:1], attempts=2)  # trial 00000: a0 failed, a1 completed
    start_jobs(sagemaker, items[1:2])  # trial 00001: a0 failed, never retried
    result = run(evaluate, plan, write_results(s3, {}))

    assert result["trials"] == {"total": 4, "succeeded": 1, "failed": 1, "missing_metrics": 0, "no_result": 2}
    assert result["best"][0]["job_name"] == items[0]["job_name"].replace("-a0", "-a1")
    trials = ledger(dynamodb, "TRIAL#")
    assert trials["TRIAL#00000"]["attempt"] == {"N": "1"}
    assert trials["TRIAL#00001"]["reason"]["S"] == "training job Failed: AlgorithmError: out of memory"


def test_without_permission_to_describe_jobs_open_trials_stay_without_a_result(evaluate, aws, planned):
    s3, _, _ = aws
    plan, _ = planned()
    client = boto3.client("sagemaker", region_name=REGION)
    evaluate.evaluator.sagemaker = client
    with Stubber(client) as stub:
        for _ in range(4):  # lookups run in parallel: up to one denial per open trial before they stop
            stub.add_client_error("describe_training_job", "AccessDeniedException", http_status_code=400)
        with pytest.raises(NoUsableTrial, match="4 without a result"):
            run(evaluate, plan, write_results(s3, {}))


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"run_id": "a/b"}, "run_id 'a/b'"),
        ({"results": {"MapRunArn": "x"}}, "'results' must be the Map's output"),
        ({"plan": {"run_id": "run-1"}}, "'plan' must be the plan step's output"),
        ({"tenant": "other"}, "the plan is for run 'run-1' of tenant 'acme'"),
    ],
)
def test_a_malformed_input_is_an_invalid_evaluation_request(evaluate, aws, planned, change, fragment):
    plan, _ = planned()
    event = {"run_id": "run-1", "tenant": "acme", "plan": plan, "results": [], **change}
    with pytest.raises(InvalidEvaluationRequest) as raised:
        evaluate.handler(event, LambdaContext("evaluate", memory_limit_in_mb=1024))
    assert fragment in str(raised.value)


def test_a_missing_manifest_is_unreadable_results(evaluate, aws, planned):
    plan, _ = planned()
    results = {"MapRunArn": "arn", "ResultWriterDetails": {"Bucket": ARTIFACTS, "Key": "nowhere/manifest.json"}}
    with pytest.raises(ResultsUnreadable, match=r"nowhere/manifest\.json does not exist"):
        run(evaluate, plan, results)


def test_metadata_values_keep_to_the_apis_characters_and_length(evaluate):
    assert metadata_value("s3://bucket/key dt=2026-11-24/a_b.parquet") == "s3://bucket/key dt=2026-11-24/a_b.parquet"
    assert metadata_value("a,b;c") == "a-b-c"
    long = metadata_value("s3://bucket/" + "k" * 300)
    assert len(long) == 256
    assert long.startswith("s3://bucket/kkk")
    assert metadata_value("") == "-"
    assert len(client_token("mlops-dev-acme-linear", "run-1")) <= 36


# -- a tiny Distributed Map in moto, to capture what it writes


def run_moto_map(plan: dict[str, Any], *, result_writer: bool) -> Any:
    """Run the plan's items through a Distributed Map whose child returns ``{"item", "job"}`` like .sync-less moto."""
    child = {
        "StartAt": "Train",
        "States": {
            "Train": {
                "Type": "Pass",
                "Parameters": {
                    "item.$": "$.item",
                    "job": {"TrainingJobArn.$": "States.Format('arn:{}', $.item.job_name)"},
                },
                "End": True,
            }
        },
    }
    state: dict[str, Any] = {
        "Type": "Map",
        "ItemReader": {
            "Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {"InputType": "JSON"},
            "Parameters": {"Bucket": plan["plan"]["Bucket"], "Key": plan["plan"]["Key"]},
        },
        "ItemSelector": {"item.$": "$$.Map.Item.Value"},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}, **child},
        "End": True,
    }
    if result_writer:
        state["ResultWriter"] = {
            "Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket": plan["results"]["Bucket"], "Prefix": plan["results"]["Prefix"]},
        }
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        iam = boto3.client("iam", region_name=REGION)
        role = iam.create_role(RoleName="states", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        sfn = boto3.client("stepfunctions", region_name=REGION)
        machine = sfn.create_state_machine(
            name="training", definition=json.dumps({"StartAt": "Map", "States": {"Map": state}}), roleArn=role
        )["stateMachineArn"]
        execution_arn = sfn.start_execution(stateMachineArn=machine, name="run-1", input="{}")["executionArn"]
        for _ in range(200):
            described = sfn.describe_execution(executionArn=execution_arn)
            if described["status"] != "RUNNING":
                break
            time.sleep(0.05)
        assert described["status"] == "SUCCEEDED", described
        return json.loads(described["output"])
