"""Approvals in order, and one writer at a time: the deployment workflow's steps and mlops promote together.

Two approved packages of one endpoint reach the workflow in either order (EventBridge retries an event for
hours); the deployment lock only serializes them, so the workflow itself must never put an older package
over a newer one. And a person's ``mlops promote`` takes the same lock: it never writes between a
workflow's write and its judgement, and a workflow waits while it writes.

The workflow's steps are mlops_platform/registry/deployment.py's ``Steps`` and the command is ``mlops promote``'s
``main``, both on one moto (SSM pointers, the DynamoDB ledger and its lock); CloudFormation and SageMaker
are Stubbers, as in test_approval_deployment.py and test_promote.py, whose worlds these tests combine.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.unit import test_approval_deployment as workflow
from tests.unit import test_promote as person

GROUP_ARN = workflow.PACKAGE_ARN.rsplit("/", 1)[0]
OLDER = (f"{GROUP_ARN}/3", "s3://artifacts-zone/artifacts/runs/acme/run-3/models/job/output/model.tar.gz")
NEWER = (f"{GROUP_ARN}/4", "s3://artifacts-zone/artifacts/runs/acme/run-4/models/job/output/model.tar.gz")


@pytest.fixture
def world() -> Iterator[workflow.World]:
    with mock_aws():
        yield workflow.World()


def request(package: tuple[str, str]) -> dict[str, Any]:
    arn, model_data = package
    return {**workflow.REQUEST, "package_arn": arn, "model_data": model_data}


def execution(package: tuple[str, str]) -> str:
    return f"churn-v{package[0].rsplit('/', 1)[1]}-0123456789ab"


def step(world: workflow.World, name: str, package: tuple[str, str], **extra: Any) -> dict[str, Any]:
    with world.cfn_stub, world.sagemaker_stub:
        result: dict[str, Any] = world.steps.run(
            {"step": name, "execution": execution(package), "request": request(package), **extra}
        )
    world.cfn_stub.assert_no_pending_responses()
    world.sagemaker_stub.assert_no_pending_responses()
    return result


def approved(world: workflow.World, package: tuple[str, str]) -> None:
    world.sagemaker_stub.add_response(
        "describe_model_package",
        {
            "ModelPackageName": "mlops-dev-acme-xgboost",
            "ModelPackageArn": package[0],
            "CreationTime": workflow.NOW,
            "ModelPackageStatus": "Completed",
            "ModelPackageStatusDetails": {"ValidationStatuses": []},
            "ModelApprovalStatus": "Approved",
        },
        {"ModelPackageName": package[0]},
    )


def acquire(world: workflow.World, package: tuple[str, str], *, stack: bool = True) -> dict[str, Any]:
    approved(world, package)
    if stack:
        world.stack("UPDATE_COMPLETE")
    return step(world, "acquire", package)


def deploy(world: workflow.World, package: tuple[str, str]) -> None:
    """Acquire, then the deploy the build ran: the stack complete with the pointer, the endpoint on it."""
    assert acquire(world, package)["status"] == "ready"
    world.stack("UPDATE_COMPLETE", resolved=package[1])
    world.endpoint()
    assert step(world, "settle", package, build={"status": "SUCCEEDED"})["status"] == "deployed"


def decisions(world: workflow.World) -> dict[str, str]:
    return {record["execution_name"]: record["decision"] for record in world.records()}


def test_an_older_approval_first_then_the_newer_one_both_deploy_in_turn(world):
    deploy(world, OLDER)
    deploy(world, NEWER)

    assert world.pointer()[:2] == (NEWER[1], f"model package {NEWER[0]}")
    assert decisions(world) == {execution(OLDER): "deployed", execution(NEWER): "deployed"}


def test_a_newer_approval_first_makes_the_older_one_superseded_and_nothing_written(world):
    deploy(world, NEWER)

    result = acquire(world, OLDER, stack=False)  # decided before the stack is read

    assert result["status"] == "superseded"
    assert world.pointer()[:2] == (NEWER[1], f"model package {NEWER[0]}")
    assert world.lock() is None
    assert decisions(world) == {execution(NEWER): "deployed", execution(OLDER): "superseded"}
    subjects = [subject for subject, _ in world.notices()]
    assert subjects[-1] == "[mlops-dev] acme/xgboost to churn/Challenger: superseded"


def test_an_older_approval_waiting_for_the_lock_of_a_newer_one_is_superseded_once_it_gets_it(world):
    assert acquire(world, NEWER)["status"] == "ready"  # the newer one holds the lock, its deploy runs

    waiting = step(world, "acquire", OLDER)  # the lock is checked first: nothing else is read

    assert waiting["status"] == "busy"
    assert f"held by {execution(NEWER)}" in waiting["reason"]
    world.stack("UPDATE_COMPLETE", resolved=NEWER[1])
    world.endpoint()
    assert step(world, "settle", NEWER, build={"status": "SUCCEEDED"})["status"] == "deployed"
    assert acquire(world, OLDER, stack=False)["status"] == "superseded"
    assert world.pointer()[0] == NEWER[1]


# -- a person's promotion racing the workflow ---------------------------------------------------------


@pytest.fixture
def both(person_evaluate) -> Iterator[tuple[workflow.World, person.World]]:
    """The workflow's world and the person's, on one moto: the lock lives in the workflow's ledger."""
    with mock_aws():
        steps = workflow.World()
        steps.clock.now = datetime.now(UTC)  # the command's clock is the real one: the lock's expiry compares them
        clients = {
            name: boto3.client(name, region_name=workflow.REGION)
            for name in ("s3", "ssm", "sts", "sagemaker", "dynamodb")
        }
        people = person.World(person_evaluate, clients)
        yield steps, people


@pytest.fixture(scope="module")
def person_evaluate():
    with pytest.MonkeyPatch.context() as patch:
        for name, value in person.EVALUATE_ENVIRONMENT.items():
            patch.setenv(name, value)
        yield workflow.load_handler("evaluate")


def promote_champion(people: person.World, clients: person.Clients | None = None) -> int:
    """The person promotes the package to churn's Champion, recording in (and locking) the workflow's ledger."""
    arguments = [*person.arguments()[:9], "--ledger-table", workflow.LEDGER]
    with people.stub:
        return person.main(arguments, config=person.configuration(), clients=clients or people.clients())


def test_a_promotion_while_the_workflow_holds_the_lock_is_refused_and_writes_nothing(both, capsys):
    steps, people = both
    assert acquire(steps, OLDER)["status"] == "ready"  # the workflow wrote the Challenger and deploys

    code = promote_champion(people)

    assert code == 1
    error = capsys.readouterr().err
    assert f"the deployment lock of dev-Serving is held by {execution(OLDER)} (until " in error
    assert "nothing was written" in error
    assert people.pointer() == person.UNTOUCHED
    assert steps.lock()["owner"] == execution(OLDER)  # the person's attempt left the workflow's lock alone

    # Once the workflow's deploy is judged, the lock is free and the person's promotion goes through.
    steps.stack("UPDATE_COMPLETE", resolved=OLDER[1])
    steps.endpoint()
    assert step(steps, "settle", OLDER, build={"status": "SUCCEEDED"})["status"] == "deployed"
    people.describes(person.package(people.schema))
    assert promote_champion(people) == 0
    assert people.pointer()[0] == person.MODEL_DATA


class RacingSsm:
    """The person's SSM client; the moment the command writes its pointer, the workflow tries to acquire."""

    def __init__(self, ssm: Any, attempt: Any) -> None:
        self._ssm = ssm
        self._attempt = attempt
        self.workflow_saw: list[dict[str, Any]] = []

    def put_parameter(self, **parameters: Any) -> Any:
        self.workflow_saw.append(self._attempt())
        return self._ssm.put_parameter(**parameters)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ssm, name)


def test_the_workflow_waits_while_a_promotion_holds_the_lock_then_goes_on(both):
    steps, people = both
    racing = RacingSsm(people.ssm, lambda: step(steps, "acquire", OLDER))  # the lock first: nothing else read
    clients = person.Clients(
        sagemaker=people.sagemaker, s3=people.s3, ssm=racing, sts=people.sts, dynamodb=people.dynamodb
    )
    people.describes(person.package(people.schema))

    assert promote_champion(people, clients) == 0

    [seen] = racing.workflow_saw
    assert seen["status"] == "busy"
    assert "held by mlops (a promotion) by arn:aws:" in seen["reason"]
    assert people.pointer()[0] == person.MODEL_DATA
    assert steps.lock() is None  # released when the command ended
    assert acquire(steps, OLDER)["status"] == "ready"  # the workflow's next try takes it


def test_a_lock_left_by_a_killed_promotion_expires_and_the_workflow_takes_it_over(world):
    world.locked_by("mlops (a promotion) by arn:aws:iam::123456789012:user/someone (0a1b2c3d)", workflow.NOW)
    world.clock.now = datetime(2026, 11, 24, 12, 0, 1, tzinfo=UTC)

    assert acquire(world, OLDER)["status"] == "ready"
