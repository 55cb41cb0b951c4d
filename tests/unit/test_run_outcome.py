"""The run-outcome handler against moto DynamoDB and SQS: every execution's end lands in its run record.

``events/stepfunctions_execution_status_change.json`` is the example event of AWS's "Automating Step
Functions event delivery with EventBridge" (Step Functions developer guide), with the redrive fields
that DescribeExecution documents. The history events are shaped as GetExecutionHistory documents
them; tests/integration/test_training_state_machine.py drives the handler with real executions.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from mlops_platform.runs.history import where_it_ended
from mlops_platform.runs.outcome import parse_event
from tests.conftest import create_ledger_table, load_handler
from tests.lambda_context import LambdaContext

REGION = "eu-west-1"
LEDGER = "ledger-test"
MACHINE = "arn:aws:states:eu-west-1:123456789012:stateMachine:mlops-dev-training"
SAMPLE = json.loads((Path(__file__).parent / "events" / "stepfunctions_execution_status_change.json").read_text())
STARTED_MS = 1795521600000  # 2026-11-24T12:00:00Z


CONTEXT = LambdaContext("run-outcome")


class History:
    """GetExecutionHistory, answered from a list of events (oldest first, as an execution writes them)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []

    def get_execution_history(self, **request: Any) -> dict[str, Any]:
        self.calls.append(request)
        events = list(reversed(self.events)) if request.get("reverseOrder") else self.events
        return {"events": events[: request.get("maxResults", 1000)]}


def failed_in(state: str, error: str, cause: str) -> list[dict[str, Any]]:
    return [
        {"id": 1, "type": "ExecutionStarted", "executionStartedEventDetails": {}},
        {"id": 2, "type": "TaskStateEntered", "stateEnteredEventDetails": {"name": "Plan"}},
        {"id": 3, "type": "TaskStateExited", "stateExitedEventDetails": {"name": "Plan"}},
        {"id": 4, "type": "TaskStateEntered", "stateEnteredEventDetails": {"name": state}},
        {"id": 5, "type": "TaskFailed", "taskFailedEventDetails": {"error": error, "cause": cause}},
        {"id": 6, "type": "ExecutionFailed", "executionFailedEventDetails": {"error": error, "cause": cause}},
    ]


def status_event(status: str, *, name: str = "run-1", redrive_count: int = 0, **detail: Any) -> dict[str, Any]:
    event = copy.deepcopy(SAMPLE)
    event["detail"] |= {
        "executionArn": f"arn:aws:states:eu-west-1:123456789012:execution:mlops-dev-training:{name}",
        "stateMachineArn": MACHINE,
        "name": name,
        "status": status,
        "startDate": STARTED_MS,
        "stopDate": None if status == "RUNNING" else STARTED_MS + 3_600_000,
        "input": json.dumps({"tenant": "acme"}),
        "redriveCount": redrive_count,
        **detail,
    }
    return event


@pytest.fixture
def aws(monkeypatch):
    with mock_aws():
        create_ledger_table(LEDGER, REGION)
        queue = boto3.client("sqs", region_name=REGION).create_queue(QueueName="run-outcome-dlq")["QueueUrl"]
        monkeypatch.setenv("LEDGER_TABLE", LEDGER)
        monkeypatch.setenv("QUARANTINE_QUEUE_URL", queue)
        monkeypatch.setenv("STATE_MACHINE_ARN", MACHINE)
        monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "run-outcome")
        yield queue


@pytest.fixture
def outcome(aws):
    module = load_handler("run_outcome")
    module.recorder.stepfunctions = History()
    return module


def record(run_id: str = "run-1") -> dict[str, Any]:
    table = boto3.resource("dynamodb", region_name=REGION).Table(LEDGER)
    return table.get_item(Key={"pk": f"RUN#{run_id}", "sk": "RUN"}).get("Item", {})


def plan_record() -> None:
    """The record the plan step writes when it starts the run (mlops_platform/training/plan/planner.py record_run)."""
    boto3.resource("dynamodb", region_name=REGION).Table(LEDGER).put_item(
        Item={
            "pk": "RUN#run-1",
            "sk": "RUN",
            "kind": "run",
            "run_id": "run-1",
            "tenant": "acme",
            "status": "evaluated",
            "plan_sha256": "abc",
            "started_at": "2026-11-24T12:00:00Z",
        }
    )


def handle(outcome, event: dict[str, Any]) -> str:
    return str(outcome.handler(event, CONTEXT)["outcome"])


def test_a_failed_execution_records_the_state_it_failed_in_its_error_and_cause(outcome):
    plan_record()
    job = {"ProcessingJobName": "mlops-dev-0123456789-prep-r0", "FailureReason": "ClientError: no raw records"}
    outcome.recorder.stepfunctions.events = failed_in("Prepare", "States.TaskFailed", json.dumps(job))

    assert handle(outcome, status_event("FAILED")) == "recorded"

    run = record()
    assert {key: run[key] for key in ("status", "failed_state", "error", "cause", "finished_at")} == {
        "status": "failed",
        "failed_state": "Prepare",
        "error": "States.TaskFailed",
        "cause": "ClientError: no raw records",  # SageMaker's FailureReason, not the job's whole description
        "finished_at": "2026-11-24T13:00:00.000Z",
    }
    assert run["redrive_count"] == 0
    assert (run["tenant"], run["plan_sha256"]) == ("acme", "abc")  # the plan's record is updated, not replaced
    [call] = outcome.recorder.stepfunctions.calls
    assert call["reverseOrder"] is True


def test_a_succeeded_execution_is_recorded_succeeded_without_a_failure(outcome):
    plan_record()

    assert handle(outcome, status_event("SUCCEEDED")) == "recorded"

    run = record()
    assert run["status"] == "succeeded"
    assert run["finished_at"] == "2026-11-24T13:00:00.000Z"
    assert not {"failed_state", "error", "cause"} & set(run)
    assert outcome.recorder.stepfunctions.calls == []  # nothing to look up


@pytest.mark.parametrize(("status", "recorded"), [("TIMED_OUT", "timed-out"), ("ABORTED", "aborted")])
def test_timed_out_and_aborted_executions_are_final_too(outcome, status, recorded):
    plan_record()
    history = failed_in("Train", "States.Timeout", "")[:4]
    end = "ExecutionTimedOut" if status == "TIMED_OUT" else "ExecutionAborted"
    details = "executionTimedOutEventDetails" if status == "TIMED_OUT" else "executionAbortedEventDetails"
    outcome.recorder.stepfunctions.events = [*history, {"id": 5, "type": end, details: {"error": status}}]

    handle(outcome, status_event(status))

    assert (record()["status"], record()["failed_state"]) == (recorded, "Train")


def test_a_redrive_runs_again_then_its_own_end_wins_whatever_order_the_events_arrive_in(outcome):
    plan_record()
    outcome.recorder.stepfunctions.events = failed_in("Prepare", "States.TaskFailed", "quota")
    handle(outcome, status_event("FAILED"))
    assert handle(outcome, status_event("RUNNING", redrive_count=1)) == "recorded"
    running = record()
    assert (running["status"], running["redrive_count"]) == ("running", 1)
    assert not {"finished_at", "failed_state", "error", "cause"} & set(running)

    handle(outcome, status_event("SUCCEEDED", redrive_count=1))
    # Late deliveries of the first attempt's end and of the redrive's start change nothing.
    assert handle(outcome, status_event("FAILED", redrive_count=0)) == "stale"
    assert handle(outcome, status_event("RUNNING", redrive_count=1)) == "stale"

    assert (record()["status"], record()["redrive_count"]) == ("succeeded", 1)


def test_the_first_running_event_is_left_to_the_plan_step(outcome):
    assert handle(outcome, status_event("RUNNING")) == "ignored"
    assert record() == {}


def test_a_distributed_maps_child_execution_is_a_trial_and_not_recorded(outcome, aws):
    trial = status_event("FAILED", name="3f1c0e8a-4a8f-4a60-9d3a-8a0d2f9c1b11")
    trial["detail"]["executionArn"] = (
        "arn:aws:states:eu-west-1:123456789012:execution:mlops-dev-training/Trials:3f1c0e8a-4a8f-4a60-9d3a-8a0d2f9c1b11"
    )

    assert handle(outcome, trial) == "ignored"
    assert record("3f1c0e8a-4a8f-4a60-9d3a-8a0d2f9c1b11") == {}
    assert "Messages" not in boto3.client("sqs", region_name=REGION).receive_message(QueueUrl=aws)


def test_a_run_that_failed_before_its_plan_was_recorded_gets_a_record_the_plan_step_can_replace(outcome, monkeypatch):
    outcome.recorder.stepfunctions.events = failed_in("Plan", "Lambda.ServiceException", "Lambda is unavailable")
    handle(outcome, status_event("FAILED"))
    run = record()
    assert {key: run[key] for key in ("status", "failed_state", "tenant", "kind", "gsi1pk")} == {
        "status": "failed",
        "failed_state": "Plan",
        "tenant": "acme",
        "kind": "run",
        "gsi1pk": "TENANT#acme",
    }

    # A redrive reruns Plan: the plan step's own record replaces the note (no PlanConflict).
    from tests.unit.test_plan import ENVIRONMENT as PLAN_ENVIRONMENT
    from tests.unit.test_plan import published

    for name, value in PLAN_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LEDGER_TABLE", LEDGER)
    s3 = boto3.client("s3", region_name=REGION)
    for bucket in ("artifacts-zone", "raw-zone", "curated-zone", "features-zone", "predictions-zone"):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket="artifacts-zone", Key="artifacts/config/pipelines/acme.json", Body=json.dumps(published()))
    plan = load_handler("plan")
    plan.handler({"tenant": "acme", "run_id": "run-1", "day": "2026-11-24"}, LambdaContext(function_name="plan"))

    assert record()["status"] == "planned"
    assert "plan_sha256" in record()


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"source": "aws.sagemaker"}, "not a 'Step Functions Execution Status Change' event"),
        ({"detail": {"stateMachineArn": "arn:aws:states:eu-west-1:123456789012:stateMachine:other"}}, "is not"),
        ({"detail": {"name": "run 1"}}, "is not a training run"),
        ({"detail": {"status": "PENDING_REDRIVE"}}, "status 'PENDING_REDRIVE'"),
        ({"detail": {"redriveCount": "1"}}, "redriveCount"),
    ],
)
def test_an_event_that_is_not_a_runs_status_change_is_quarantined_with_its_reason(outcome, aws, change, why):
    event = status_event("FAILED")
    event |= {key: value for key, value in change.items() if key != "detail"}
    event["detail"] |= change.get("detail", {})

    assert handle(outcome, event) == "quarantined"

    [message] = boto3.client("sqs", region_name=REGION).receive_message(QueueUrl=aws)["Messages"]
    assert why in json.loads(message["Body"])["reason"]
    assert record() == {}


def test_the_documented_sample_event_is_read_as_aws_sends_it(outcome):
    change = parse_event(SAMPLE, SAMPLE["detail"]["stateMachineArn"])

    assert (change.run_id, change.status, change.redrive_count) == ("execution-name", "FAILED", 0)
    assert (change.started_at, change.stopped_at) == ("2019-02-26T23:50:14.968Z", "2019-02-26T23:50:17.576Z")
    assert (change.error, change.cause) == ("States.TaskFailed", "An error occurred")
    assert change.tenant is None  # its input is {}


def test_in_a_map_the_failed_state_is_the_one_that_failed_not_the_last_one_another_iteration_entered(outcome):
    """Two baseline iterations: one fails in StartBaseline, the other then enters BaselineDone."""
    events = [
        {"id": 1, "type": "ExecutionStarted"},
        {"id": 2, "type": "MapStateEntered", "previousEventId": 1, "stateEnteredEventDetails": {"name": "Baseline"}},
        {
            "id": 3,
            "type": "TaskStateEntered",
            "previousEventId": 2,
            "stateEnteredEventDetails": {"name": "StartBaseline"},
        },
        {
            "id": 4,
            "type": "TaskStateEntered",
            "previousEventId": 2,
            "stateEnteredEventDetails": {"name": "StartBaseline"},
        },
        {"id": 5, "type": "TaskFailed", "previousEventId": 3, "taskFailedEventDetails": {"error": "States.TaskFailed"}},
        {
            "id": 6,
            "type": "PassStateEntered",
            "previousEventId": 4,
            "stateEnteredEventDetails": {"name": "BaselineDone"},
        },
        {"id": 7, "type": "MapStateFailed", "previousEventId": 6},
        {
            "id": 8,
            "type": "ExecutionFailed",
            "previousEventId": 7,
            "executionFailedEventDetails": {"error": "States.TaskFailed", "cause": "bad model"},
        },
    ]

    assert where_it_ended(events) == ("StartBaseline", "States.TaskFailed", "bad model")


def test_a_fail_state_is_where_the_execution_failed(outcome):
    events = [
        {"id": 1, "type": "ExecutionStarted"},
        {
            "id": 2,
            "type": "FailStateEntered",
            "previousEventId": 1,
            "stateEnteredEventDetails": {"name": "NoUsableTrial"},
        },
        {
            "id": 3,
            "type": "ExecutionFailed",
            "previousEventId": 2,
            "executionFailedEventDetails": {"error": "NoUsableTrial", "cause": "6 of 6 failed"},
        },
    ]

    assert where_it_ended(events) == ("NoUsableTrial", "NoUsableTrial", "6 of 6 failed")
