"""The ResourceInUse resolver, with botocore's Stubber: moto does not enforce unique training job names."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from mlops_platform.runs.attempts import (
    InvalidName,
    InvalidResolverInput,
    JobNameCollision,
    TrainingJobNotFound,
    next_job_name,
)
from tests.conftest import load_handler
from tests.lambda_context import LambdaContext

JOB = "mlops-dev-0123456789-00004-a0"
ARN = f"arn:aws:sagemaker:eu-west-1:111111111111:training-job/{JOB}"
ERROR = {
    "Error": "SageMaker.AmazonSageMakerException",
    "Cause": "Training job names must be unique within an AWS account and region, and a training job with this "
    "name already exists (Service: SageMaker, Status Code: 400, Error Code: ResourceInUse)",
}


CONTEXT = LambdaContext("training-job")


def plan_item(job_name: str = JOB, attempt: int = 0) -> dict[str, Any]:
    return {
        "run_id": "run-1",
        "tenant": "acme",
        "model": "linear",
        "algorithm": "linear",
        "trial": "00004",
        "attempt": attempt,
        "job_name": job_name,
        "hyperparameters": {"alpha": 0.0001},
        "request": {"HyperParameters": {"alpha": "0.0001", "mlops_run_id": "run-1", "mlops_trial": "00004"}},
    }


def described(status: str, name: str = JOB, **extra: Any) -> dict[str, Any]:
    """A DescribeTrainingJob response, with the fields the API marks required."""
    return {
        "TrainingJobName": name,
        "TrainingJobArn": ARN,
        "TrainingJobStatus": status,
        "SecondaryStatus": "Completed" if status == "Completed" else "Training",
        "AlgorithmSpecification": {"TrainingImage": "image", "TrainingInputMode": "File"},
        "ModelArtifacts": {"S3ModelArtifacts": f"s3://artifacts/models/{name}/output/model.tar.gz"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 1800},
        "CreationTime": datetime(2026, 11, 24, 10, 0, tzinfo=UTC),
        "HyperParameters": {"alpha": "0.0001", "mlops_run_id": "run-1", "mlops_trial": "00004"},
        **extra,
    }


@pytest.fixture
def resolver(monkeypatch):
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "training-job")
    monkeypatch.delenv("MAX_ATTEMPTS", raising=False)
    return load_handler("training_job")


@pytest.fixture
def stub(resolver):
    client = boto3.client("sagemaker", region_name="eu-west-1")
    resolver.resolver.sagemaker = client
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def resolve(resolver, event: dict[str, Any]) -> dict[str, Any]:
    result = resolver.handler(event, CONTEXT)
    json.dumps(result, allow_nan=False)  # Step Functions must be able to carry it
    return result


@pytest.mark.parametrize("status", ["InProgress", "Stopping"])
def test_a_job_still_running_under_the_name_means_wait(resolver, stub, status):
    stub.add_response("describe_training_job", described(status), {"TrainingJobName": JOB})
    result = resolve(resolver, {"item": plan_item(), "error": ERROR})

    assert result == {"action": "wait", "job_name": JOB, "attempt": 0, "job": None}


def test_a_completed_job_is_reused_with_the_fields_the_sync_task_returns(resolver, stub):
    metrics = [
        {"MetricName": "validation:auc", "Value": 0.97, "Timestamp": datetime(2026, 11, 24, 10, 5, tzinfo=UTC)},
        {"MetricName": "validation:logloss", "Value": float("nan")},
    ]
    stub.add_response("describe_training_job", described("Completed", FinalMetricDataList=metrics))
    result = resolve(resolver, {"item": plan_item()})  # after a wait: no error

    assert result["action"] == "reuse"
    assert (result["job_name"], result["attempt"]) == (JOB, 0)
    assert result["job"] == {
        "TrainingJobName": JOB,
        "TrainingJobArn": ARN,
        "TrainingJobStatus": "Completed",
        "FinalMetricDataList": [
            {"MetricName": "validation:auc", "Value": 0.97, "Timestamp": "2026-11-24T10:05:00+00:00"},
            {"MetricName": "validation:logloss", "Value": None},
        ],
        "ModelArtifacts": {"S3ModelArtifacts": f"s3://artifacts/models/{JOB}/output/model.tar.gz"},
        "HyperParameters": {"alpha": "0.0001", "mlops_run_id": "run-1", "mlops_trial": "00004"},
    }


@pytest.mark.parametrize("status", ["Failed", "Stopped"])
def test_a_failed_or_stopped_job_is_retried_under_the_next_attempts_name(resolver, stub, status):
    stub.add_response("describe_training_job", described(status, FailureReason="AlgorithmError: out of memory"))
    result = resolve(resolver, {"item": plan_item(), "error": ERROR})

    assert result["action"] == "retry"
    assert result["job_name"] == "mlops-dev-0123456789-00004-a1"
    assert result["attempt"] == 1
    assert result["job"]["TrainingJobStatus"] == status
    assert result["job"]["FailureReason"] == "AlgorithmError: out of memory"


def test_attempts_walk_up_until_max_attempts_then_give_up(resolver, stub):
    """As the state machine calls it: the item keeps attempt 0, ``current`` names the attempt that failed."""
    second = "mlops-dev-0123456789-00004-a1"
    third = "mlops-dev-0123456789-00004-a2"
    stub.add_response("describe_training_job", described("Failed", name=second), {"TrainingJobName": second})
    stub.add_response("describe_training_job", described("Failed", name=third), {"TrainingJobName": third})

    retried = resolve(resolver, {"item": plan_item(), "current": {"job_name": second, "attempt": 1}})
    given_up = resolve(resolver, {"item": plan_item(), "current": {"job_name": third, "attempt": 2}})

    assert retried == {"action": "retry", "job_name": third, "attempt": 2, "job": retried["job"]}
    assert (given_up["action"], given_up["job_name"], given_up["attempt"]) == ("give-up", third, 2)
    assert given_up["job"]["TrainingJobStatus"] == "Failed"


def test_the_state_machines_payload_resolves_the_current_attempt_not_the_items(resolver, stub):
    second = "mlops-dev-0123456789-00004-a1"
    stub.add_response("describe_training_job", described("InProgress", name=second), {"TrainingJobName": second})
    result = resolve(resolver, {"item": plan_item(), "current": {"job_name": second, "attempt": 1}})

    assert result == {"action": "wait", "job_name": second, "attempt": 1, "job": None}


def test_max_attempts_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("MAX_ATTEMPTS", "1")
    resolver = load_handler("training_job")
    client = boto3.client("sagemaker", region_name="eu-west-1")
    resolver.resolver.sagemaker = client
    with Stubber(client) as stub:
        stub.add_response("describe_training_job", described("Failed"))
        assert resolve(resolver, {"item": plan_item(), "error": ERROR})["action"] == "give-up"


def test_the_attempt_in_the_name_wins_over_a_stale_counter(resolver, stub):
    second = "mlops-dev-0123456789-00004-a1"
    stub.add_response("describe_training_job", described("Failed", name=second))
    result = resolve(resolver, {"item": plan_item(second, attempt=0), "error": ERROR})

    assert (result["job_name"], result["attempt"]) == ("mlops-dev-0123456789-00004-a2", 2)


@pytest.mark.parametrize(
    ("code", "message"),
    [("ValidationException", "Requested resource not found."), ("ResourceNotFound", "Could not find training job")],
)
def test_a_job_that_cannot_be_described_is_a_typed_error(resolver, stub, code, message):
    stub.add_client_error(
        "describe_training_job", service_error_code=code, service_message=message, http_status_code=400
    )
    with pytest.raises(TrainingJobNotFound, match=f"cannot be described.*{message}"):
        resolve(resolver, {"item": plan_item(), "error": ERROR})


def test_other_describe_errors_propagate_for_the_state_machine_to_retry(resolver, stub):
    stub.add_client_error("describe_training_job", service_error_code="ThrottlingException", http_status_code=400)
    with pytest.raises(ClientError, match="ThrottlingException"):
        resolve(resolver, {"item": plan_item(), "error": ERROR})


def test_a_job_of_another_run_under_the_name_is_a_collision_not_a_reuse(resolver, stub):
    job = described("Completed")
    job["HyperParameters"] = {**job["HyperParameters"], "mlops_run_id": "someone-else"}
    stub.add_response("describe_training_job", job)
    with pytest.raises(JobNameCollision, match="mlops_run_id='someone-else', not 'run-1'"):
        resolve(resolver, {"item": plan_item(), "error": ERROR})


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"item": "x"},
        {"item": {**plan_item(), "job_name": "no-attempt-suffix"}},
        {"item": {k: v for k, v in plan_item().items() if k != "trial"}},
        {"item": plan_item(), "current": {"attempt": 1}},
    ],
)
def test_an_input_without_a_usable_item_is_invalid(resolver, event):
    with pytest.raises(InvalidResolverInput):
        resolve(resolver, event)


def test_a_next_name_over_63_characters_is_a_clear_error(resolver):
    name = "x" * 43 + "-0123456789-00004-a9"  # 63 characters; a10 would make 64
    with pytest.raises(InvalidName, match="would exceed 63"):
        next_job_name(name)
    assert next_job_name(name.replace("x" * 43, "x" * 42)).endswith("-a10")
