"""The drift monitor's state machine, executed by moto with the input its schedule rule builds.

The definition is dev's, as synthesized; the input is what EventBridge makes of the rule's input
template for a scheduled event. moto records Processing jobs without running them, and does not
refuse a name already taken, so ``SageMakerJobs`` below does what SageMaker does: a second
``CreateProcessingJob`` with a taken name fails with ``ResourceInUse``.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.sagemaker.exceptions import ResourceInUseException, ValidationError
from moto.sagemaker.models import SageMakerModelBackend

from tests.infra.test_monitoring import render, rule_input, schedule_rules, state_machine

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's default account
MOTO = {"stepfunctions": {"execute_state_machine": True}}
SYNC = re.compile(r"(arn:aws:states:::sagemaker:\w+)\.sync")
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/test"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/DriftMonitorExampleJobRole"
ROLE_PATH = '"RoleArn.$":"$.role_arn"'


def for_moto(definition: str) -> str:
    """The deployed definition, as moto 5.2.5 can execute it; the only differences from what deploys.

    * ``.sync`` becomes a plain call: moto's jobs start Completed, so there is nothing to wait for;
    * moto has no optimized SageMaker integration: it forwards the call and names a SageMaker error
      ``States.Runtime`` (with the same cause, "... (ResourceInUse) ..."), where Step Functions names
      it ``SageMaker.AmazonSageMakerException``;
    * moto's ASL lexer reads ``"RoleArn.$"`` as the keyword of a Map's ``Credentials`` and passes it
      on as a literal field, so the role the input names (``ROLE_ARN`` in these tests) is written in.
    """
    assert definition.count(ROLE_PATH) == 1
    return (
        SYNC.sub(r"\1", definition)
        .replace('"SageMaker.AmazonSageMakerException"', '"States.Runtime"')
        .replace(ROLE_PATH, f'"RoleArn":"{ROLE_ARN}"')
    )


@pytest.fixture(scope="module")
def resources(synthesized) -> dict[str, Any]:
    return synthesized.template_json("dev", "monitoring")["Resources"]


@pytest.fixture(scope="module")
def deployed_definition(resources) -> str:
    return render(state_machine(resources)[1]["DefinitionString"]).replace("<PlatformKeyArn>", KEY_ARN)


def scheduled(resources: dict[str, Any], event_time: str) -> dict[str, Any]:
    """The execution input of the example endpoint's rule for a scheduled event at ``event_time``."""
    [rule] = schedule_rules(resources).values()
    execution_input = rule_input(rule, event_time)
    assert execution_input["role_arn"].startswith("<DriftMonitorExampleJobRole")
    return {**execution_input, "role_arn": ROLE_ARN}


class SageMakerJobs:
    """moto's Processing jobs, with SageMaker's unique names; every request that reached SageMaker."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.refuse_with: Exception | None = None

    def install(self, monkeypatch) -> None:
        create = SageMakerModelBackend.create_processing_job
        jobs = self

        def create_unique(backend: Any, **request: Any) -> Any:
            jobs.requests.append(request)
            if jobs.refuse_with is not None:
                raise jobs.refuse_with
            name = request["processing_job_name"]
            if name in backend.processing_jobs:
                raise ResourceInUseException(message=f"Processing job names must be unique: {name} already exists")
            return create(backend, **request)

        monkeypatch.setattr(SageMakerModelBackend, "create_processing_job", create_unique)

    @staticmethod
    def names() -> list[str]:
        listed = boto3.client("sagemaker", region_name=REGION).list_processing_jobs()["ProcessingJobSummaries"]
        return sorted(job["ProcessingJobName"] for job in listed)


@pytest.fixture
def sagemaker_jobs(monkeypatch) -> SageMakerJobs:
    jobs = SageMakerJobs()
    jobs.install(monkeypatch)
    return jobs


def execute(definition: str, executions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run one execution per input, one after the other; each one's description and the states it entered."""
    sfn = boto3.client("stepfunctions", region_name=REGION)
    machine = sfn.create_state_machine(
        name="drift-monitor", definition=definition, roleArn=f"arn:aws:iam::{ACCOUNT}:role/StateMachineRole"
    )["stateMachineArn"]
    results = []
    for number, execution_input in enumerate(executions):
        arn = sfn.start_execution(stateMachineArn=machine, name=f"run-{number}", input=json.dumps(execution_input))[
            "executionArn"
        ]
        deadline = time.monotonic() + 60
        while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
            assert time.monotonic() < deadline, "the execution did not finish within 60 seconds"
            time.sleep(0.1)
        events = sfn.get_execution_history(executionArn=arn)["events"]
        entered = [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]
        results.append({**described, "entered": entered})
    return results


def test_for_moto_changes_only_the_sync_suffix_the_sagemaker_error_name_and_the_role_path(deployed_definition):
    executed = for_moto(deployed_definition)

    assert ".sync" in deployed_definition
    assert ".sync" not in executed
    assert "SageMaker.AmazonSageMakerException" in deployed_definition
    restored = (
        executed.replace(':createProcessingJob"', ':createProcessingJob.sync"')
        .replace('"States.Runtime"', '"SageMaker.AmazonSageMakerException"')
        .replace(f'"RoleArn":"{ROLE_ARN}"', ROLE_PATH)
    )
    assert restored == deployed_definition


@mock_aws(config=MOTO)
def test_a_scheduled_event_starts_one_job_named_for_its_endpoint_and_window(
    deployed_definition, resources, sagemaker_jobs
):
    execution_input = scheduled(resources, "2026-11-24T23:00:00Z")

    [result] = execute(for_moto(deployed_definition), [execution_input])

    assert result["status"] == "SUCCEEDED", result
    assert result["entered"] == ["SplitEventTime", "NameJob", "Monitor", "Monitored"]
    assert sagemaker_jobs.names() == ["mlops-dev-drift-example-202611242300"]
    [request] = sagemaker_jobs.requests
    assert request["role_arn"] == ROLE_ARN
    arguments = request["app_specification"]["ContainerArguments"]
    assert arguments == execution_input["arguments"]
    assert arguments[arguments.index("--scheduled-time") + 1] == "2026-11-24T23:00:00Z"
    assert arguments[arguments.index("--endpoint-name") + 1] == "mlops-dev-example"
    deployed = json.loads(deployed_definition)["States"]["Monitor"]["Parameters"]
    assert request["app_specification"]["ImageUri"] == deployed["AppSpecification"]["ImageUri"]
    assert request["stopping_condition"] == {"MaxRuntimeInSeconds": 1800}


@mock_aws(config=MOTO)
def test_a_redelivered_event_starts_no_second_job_and_succeeds(deployed_definition, resources, sagemaker_jobs):
    event = scheduled(resources, "2026-11-24T23:00:00Z")

    first, again = execute(for_moto(deployed_definition), [event, event])

    assert first["status"] == again["status"] == "SUCCEEDED"
    assert again["entered"] == ["SplitEventTime", "NameJob", "Monitor", "WhyNotStarted", "AlreadyStarted"]
    assert sagemaker_jobs.names() == ["mlops-dev-drift-example-202611242300"]
    assert len(sagemaker_jobs.requests) == 2  # the second request reached SageMaker, which refused the name


@mock_aws(config=MOTO)
def test_each_window_gets_its_own_job(deployed_definition, resources, sagemaker_jobs):
    windows = ["2026-11-24T23:00:00Z", "2026-11-25T00:00:00Z"]

    results = execute(for_moto(deployed_definition), [scheduled(resources, t) for t in windows])

    assert [r["status"] for r in results] == ["SUCCEEDED", "SUCCEEDED"]
    assert sagemaker_jobs.names() == ["mlops-dev-drift-example-202611242300", "mlops-dev-drift-example-202611250000"]


@mock_aws(config=MOTO)
def test_a_request_sagemaker_rejects_fails_the_run_with_its_cause(deployed_definition, resources, sagemaker_jobs):
    sagemaker_jobs.refuse_with = ValidationError(message="Role is not authorized to pass the volume key")

    [result] = execute(for_moto(deployed_definition), [scheduled(resources, "2026-11-24T23:00:00Z")])

    assert result["status"] == "FAILED"
    assert result["entered"][-2:] == ["WhyNotStarted", "MonitoringJobRejected"]
    assert result["error"] == "MonitoringJobRejected"
    assert "Role is not authorized to pass the volume key" in result["cause"]
    assert sagemaker_jobs.names() == []
