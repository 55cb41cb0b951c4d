"""The deployment workflow's steps (mlops_platform/registry/deployment.py): lock, wait, write, judge, restore.

SSM (the pointer and its history), DynamoDB (the lock and the ledger) and SNS are moto's; CloudFormation
and SageMaker are botocore Stubbers, so each test says exactly what the stack, the package and the live
endpoint look like, and a step that asks for more than that fails. The template the endpoint check reads
has the shape mlops_constructs/endpoint.py synthesizes (tests/infra/test_deploy_check.py runs the same
check on the synthesized template itself).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from moto.sns.models import sns_backends

from mlops_platform.registry.deployment import Steps
from mlops_platform.registry.deployment_settings import InvalidRequest, Settings
from tests.conftest import create_ledger_table, load_handler
from tests.lambda_context import LambdaContext

REGION = "eu-west-1"
ACCOUNT = "123456789012"
LEDGER = "ledger-deployment"
STACK = "dev-Serving"
POINTER = "/mlops/dev/models/churn/Challenger"
PACKAGE_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/mlops-dev-acme-xgboost/3"
MODEL_DATA = "s3://artifacts-zone/artifacts/runs/acme/run-2/models/job/output/model.tar.gz"
OLD_DATA = "s3://artifacts-zone/artifacts/runs/acme/run-1/models/job/output/model.tar.gz"
OLD_DESCRIPTION = f"model package {PACKAGE_ARN[:-1]}2"
EXECUTION = "churn-v3-0123456789ab"
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
LOCK_SECONDS = 3600
ENVIRONMENT = {
    "ENVIRONMENT": "dev",
    "PACKAGE_GROUP_PREFIX": "mlops-dev",
    "SERVING_STACK_NAME": STACK,
    "LEDGER_TABLE": LEDGER,
    "TOPIC_ARN": f"arn:aws:sns:{REGION}:{ACCOUNT}:notifications",
    "LOCK_SECONDS": str(LOCK_SECONDS),
}
REQUEST = {
    "package_arn": PACKAGE_ARN,
    "endpoint": "churn",
    "variant": "Challenger",
    "pointer": POINTER,
    "model_data": MODEL_DATA,
    "tenant": "acme",
    "model": "xgboost",
    "share": 10.0,
}
STACK_ID = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{STACK}/0a1b2c3d"
ENDPOINT_NAME = "mlops-dev-churn"
SAGEMAKER_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}"
# The Serving stack's endpoint as mlops_constructs/endpoint.py declares it: the endpoint names its
# config, the config names each variant's model (Fn::GetAtt), CloudFormation names config and models.
TEMPLATE = {
    "Resources": {
        "ChurnEndpointChampionModel1A": {"Type": "AWS::SageMaker::Model", "Properties": {}},
        "ChurnEndpointChallengerModel2B": {"Type": "AWS::SageMaker::Model", "Properties": {}},
        "ChurnEndpointConfig3C": {
            "Type": "AWS::SageMaker::EndpointConfig",
            "Properties": {
                "ProductionVariants": [
                    {"VariantName": name, "ModelName": {"Fn::GetAtt": [model, "ModelName"]}}
                    for name, model in (
                        ("Champion", "ChurnEndpointChampionModel1A"),
                        ("Challenger", "ChurnEndpointChallengerModel2B"),
                    )
                ]
            },
        },
        "ChurnEndpoint4D": {
            "Type": "AWS::SageMaker::Endpoint",
            "Properties": {
                "EndpointName": ENDPOINT_NAME,
                "EndpointConfigName": {"Fn::GetAtt": ["ChurnEndpointConfig3C", "EndpointConfigName"]},
            },
        },
    }
}
# What the deploy made: a new config and a new Challenger model (the Champion's is unchanged).
DEPLOYED = {
    "ChurnEndpointChampionModel1A": f"{SAGEMAKER_ARN}:model/championmodel-old",
    "ChurnEndpointChallengerModel2B": f"{SAGEMAKER_ARN}:model/challengermodel-new",
    "ChurnEndpointConfig3C": f"{SAGEMAKER_ARN}:endpoint-config/churnendpointconfig-new",
    "ChurnEndpoint4D": f"{SAGEMAKER_ARN}:endpoint/{ENDPOINT_NAME}",
}
NEW_CONFIG = {"Champion": "ChampionModel-old", "Challenger": "ChallengerModel-new"}
OLD_CONFIG = {"Champion": "ChampionModel-old", "Challenger": "ChallengerModel-old"}


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


class World:
    def __init__(self) -> None:
        self.ssm, self.dynamodb, self.sns, self.cloudformation, self.sagemaker = (
            boto3.client(name, region_name=REGION) for name in ("ssm", "dynamodb", "sns", "cloudformation", "sagemaker")
        )
        self.cfn_stub, self.sagemaker_stub = Stubber(self.cloudformation), Stubber(self.sagemaker)
        create_ledger_table(LEDGER, REGION)
        self.topic = self.sns.create_topic(Name="notifications")["TopicArn"]
        # The pointer as the approval path found it: Foundation's sentinel, then an earlier promotion.
        self.ssm.put_parameter(Name=POINTER, Value="example", Type="String", Description="the example model")
        self.ssm.put_parameter(Name=POINTER, Value=OLD_DATA, Type="String", Overwrite=True, Description=OLD_DESCRIPTION)
        self.clock = Clock()
        self.steps = Steps(
            cloudformation=self.cloudformation,
            ssm=self.ssm,
            dynamodb=self.dynamodb,
            sagemaker=self.sagemaker,
            sns=self.sns,
            settings=Settings.from_environment(ENVIRONMENT),
            clock=self.clock,
        )

    # arrange

    def package(self, status: str = "Approved") -> None:
        self.sagemaker_stub.add_response(
            "describe_model_package",
            {
                "ModelPackageName": "mlops-dev-acme-xgboost",
                "ModelPackageArn": PACKAGE_ARN,
                "CreationTime": NOW,
                "ModelPackageStatus": "Completed",
                "ModelPackageStatusDetails": {"ValidationStatuses": []},
                "ModelApprovalStatus": status,
            },
            {"ModelPackageName": PACKAGE_ARN},
        )

    def stack(
        self, status: str, resolved: str | None = OLD_DATA, reads_pointer: bool = True, reason: str | None = None
    ):
        parameters = [{"ParameterKey": "BootstrapVersion", "ParameterValue": "/cdk-bootstrap/hnb659fds/version"}]
        if reads_pointer:
            parameters.append(
                {
                    "ParameterKey": "ChurnEndpointChallengerModelPointer0A1B2C3D",
                    "ParameterValue": POINTER,
                    **({"ResolvedValue": resolved} if resolved else {}),
                }
            )
        stack = {
            "StackId": STACK_ID,
            "StackName": STACK,
            "CreationTime": NOW,
            "StackStatus": status,
            "Parameters": parameters,
            **({"StackStatusReason": reason} if reason else {}),
        }
        self.cfn_stub.add_response("describe_stacks", {"Stacks": [stack]}, {"StackName": STACK})

    def endpoint(
        self,
        config: str = "ChurnEndpointConfig-new",
        variants: dict[str, str] | None = None,
        status: str = "InService",
        reason: str | None = None,
    ) -> None:
        """The stack's template and resources, and the live endpoint running ``config`` with ``variants``."""
        self.cfn_stub.add_response(
            "get_template",
            {"TemplateBody": json.dumps(TEMPLATE)},
            {"StackName": STACK, "TemplateStage": "Original"},
        )
        summaries = [
            {
                "LogicalResourceId": logical,
                "PhysicalResourceId": physical,
                "ResourceType": TEMPLATE["Resources"][logical]["Type"],
                "LastUpdatedTimestamp": NOW,
                "ResourceStatus": "UPDATE_COMPLETE",
            }
            for logical, physical in DEPLOYED.items()
        ]
        self.cfn_stub.add_response("list_stack_resources", {"StackResourceSummaries": summaries}, {"StackName": STACK})
        self.sagemaker_stub.add_response(
            "describe_endpoint",
            {
                "EndpointName": ENDPOINT_NAME,
                "EndpointArn": DEPLOYED["ChurnEndpoint4D"],
                "EndpointConfigName": config,
                "EndpointStatus": status,
                **({"FailureReason": reason} if reason else {}),
                "CreationTime": NOW,
                "LastModifiedTime": NOW,
            },
            {"EndpointName": ENDPOINT_NAME},
        )
        self.sagemaker_stub.add_response(
            "describe_endpoint_config",
            {
                "EndpointConfigName": config,
                "EndpointConfigArn": f"{SAGEMAKER_ARN}:endpoint-config/{config.lower()}",
                "ProductionVariants": [
                    {"VariantName": name, "ModelName": model, "InstanceType": "ml.c5.large"}
                    for name, model in (variants or NEW_CONFIG).items()
                ],
                "CreationTime": NOW,
            },
            {"EndpointConfigName": config},
        )

    def no_stack(self) -> None:
        self.cfn_stub.add_client_error(
            "describe_stacks",
            service_error_code="ValidationError",
            service_message=f"Stack with id {STACK} does not exist",
            expected_params={"StackName": STACK},
        )

    def locked_by(self, owner: str, expires: datetime) -> None:
        self.dynamodb.put_item(
            TableName=LEDGER,
            Item={
                "pk": {"S": f"LOCK#{STACK}"},
                "sk": {"S": "LOCK"},
                "owner": {"S": owner},
                "expires_at": {"N": str(int(expires.timestamp()))},
            },
        )

    # act

    def run(self, step: str, execution: str = EXECUTION, **extra: Any) -> dict[str, Any]:
        with self.cfn_stub, self.sagemaker_stub:
            result = self.steps.run({"step": step, "execution": execution, "request": dict(REQUEST), **extra})
        self.cfn_stub.assert_no_pending_responses()
        self.sagemaker_stub.assert_no_pending_responses()
        return result

    # assert

    def pointer(self) -> tuple[str, str | None, int]:
        [*_, entry] = self.ssm.get_parameter_history(Name=POINTER)["Parameters"]
        return entry["Value"], entry.get("Description"), entry["Version"]

    def lock(self) -> dict[str, Any] | None:
        item = self.dynamodb.get_item(TableName=LEDGER, Key={"pk": {"S": f"LOCK#{STACK}"}, "sk": {"S": "LOCK"}})
        return {key: next(iter(value.values())) for key, value in item["Item"].items()} if "Item" in item else None

    def records(self) -> list[dict[str, Any]]:
        items = boto3.resource("dynamodb", region_name=REGION).Table(LEDGER).scan()["Items"]
        return [item for item in items if item["pk"].startswith("PROMOTION#")]

    def notices(self) -> list[tuple[str, str]]:
        topic = sns_backends[ACCOUNT][REGION].topics[self.topic]
        return [(subject, message) for _, message, subject, *_ in topic.sent_notifications]


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws():
        yield World()


UNTOUCHED = (OLD_DATA, OLD_DESCRIPTION, 2)


# -- acquire ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["UPDATE_IN_PROGRESS", "UPDATE_ROLLBACK_IN_PROGRESS", "CREATE_IN_PROGRESS"])
def test_a_busy_stack_makes_the_workflow_wait_and_nothing_is_written(world, status):
    world.package()
    world.stack(status)

    result = world.run("acquire")

    assert result == {"status": "busy", "reason": f"stack {STACK} is {status}"}
    assert world.pointer() == UNTOUCHED
    assert world.lock()["owner"] == EXECUTION  # held while waiting: it is this promotion's turn next
    assert world.notices() == []


def test_another_promotion_holding_the_lock_makes_the_workflow_wait_without_reading_anything(world):
    world.locked_by("other-v1-ffffffffffff", NOW + timedelta(minutes=10))

    result = world.run("acquire")  # no stack or package response stubbed: none may be asked for

    assert result == {
        "status": "busy",
        "reason": "the deployment lock is held by other-v1-ffffffffffff (until 2026-11-24T12:10:00.000Z at the latest)",
    }
    assert world.pointer() == UNTOUCHED
    assert world.lock()["owner"] == "other-v1-ffffffffffff"


def test_an_expired_lock_is_taken_over(world):
    world.locked_by("abandoned-v1-ffffffffffff", NOW - timedelta(seconds=1))
    world.package()
    world.stack("UPDATE_COMPLETE")

    assert world.run("acquire")["status"] == "ready"
    assert world.lock()["owner"] == EXECUTION


def test_a_free_stack_gets_the_pointer_written_and_the_previous_value_kept(world):
    world.package()
    world.stack("UPDATE_COMPLETE")

    result = world.run("acquire")

    assert result == {
        "status": "ready",
        "change_set": f"promotion-{EXECUTION}",
        "stack_status": "UPDATE_COMPLETE",
        "previous": OLD_DATA,
    }
    assert world.pointer() == (MODEL_DATA, f"model package {PACKAGE_ARN}", 3)
    lock = world.lock()
    assert (lock["previous_value"], lock["previous_description"], lock["written"]) == (
        OLD_DATA,
        OLD_DESCRIPTION,
        MODEL_DATA,
    )
    assert int(lock["expires_at"]) == int(NOW.timestamp()) + LOCK_SECONDS


def test_a_retried_acquire_keeps_the_value_it_kept_first(world):
    for _ in range(2):
        world.package()
        world.stack("UPDATE_COMPLETE")
        world.run("acquire")

    assert world.lock()["previous_value"] == OLD_DATA  # not its own write
    assert world.pointer()[0] == MODEL_DATA


BLOCKED = {
    "no stack": (lambda w: w.no_stack(), f"stack {STACK} does not exist"),
    "a failed rollback": (
        lambda w: w.stack("UPDATE_ROLLBACK_FAILED", reason="Resource handler returned message"),
        "a state no update starts from",
    ),
    "the variant is not deployed": (
        lambda w: w.stack("UPDATE_COMPLETE", reads_pointer=False),
        f"does not read the pointer {POINTER}",
    ),
}


@pytest.mark.parametrize(("arrange", "reason"), BLOCKED.values(), ids=BLOCKED.keys())
def test_a_stack_that_cannot_take_the_promotion_blocks_it_and_people_are_told(world, arrange, reason):
    world.package()
    arrange(world)

    result = world.run("acquire")

    assert result["status"] == "blocked"
    assert reason in result["reason"]
    assert world.pointer() == UNTOUCHED
    assert world.lock() is None  # released
    [(subject, message)] = world.notices()
    assert subject == "[mlops-dev] acme/xgboost to churn/Challenger: blocked"
    assert reason in message


def test_a_package_rejected_while_waiting_is_withdrawn(world):
    world.package("Rejected")

    result = world.run("acquire")

    assert result["status"] == "withdrawn"
    assert world.pointer() == UNTOUCHED
    assert world.lock() is None
    [record] = world.records()
    assert (record["decision"], record["sk"]) == ("withdrawn", f"EXECUTION#{EXECUTION}#withdrawn")


# -- settle -----------------------------------------------------------------------------------------


def acquired(world: World) -> None:
    world.package()
    world.stack("UPDATE_COMPLETE")
    assert world.run("acquire")["status"] == "ready"


def test_a_deploy_that_serves_the_model_is_recorded_and_announced(world):
    acquired(world)
    world.stack("UPDATE_COMPLETE", resolved=MODEL_DATA)
    world.endpoint()  # the endpoint runs the config and models the stack deployed

    result = world.run("settle", build={"id": "build-1", "status": "SUCCEEDED"})

    assert result["status"] == "deployed"
    assert world.pointer() == (MODEL_DATA, f"model package {PACKAGE_ARN}", 3)
    assert world.lock() is None
    [record] = world.records()
    assert (record["pk"], record["decision"], record["execution_name"]) == ("PROMOTION#churn", "deployed", EXECUTION)
    [(subject, message)] = world.notices()
    assert subject == "[mlops-dev] acme/xgboost to churn/Challenger: deployed"
    assert "It serves 10% of the endpoint's traffic" in message


NOT_RUNNING = {
    "a guardrail rolled the endpoint back to its old config": (
        {"config": "ChurnEndpointConfig-old", "variants": OLD_CONFIG},
        [
            "runs endpoint config ChurnEndpointConfig-old, not churnendpointconfig-new that the stack deployed",
            "variant Challenger of endpoint mlops-dev-churn runs model ChallengerModel-old, not "
            "challengermodel-new that the stack deployed",
        ],
    ),
    "a variant runs another model": (
        {"variants": {"Champion": "ChampionModel-old", "Challenger": "SomeoneElsesModel"}},
        ["variant Challenger of endpoint mlops-dev-churn runs model SomeoneElsesModel, not challengermodel-new"],
    ),
    "the variants differ": (
        {"variants": {"Champion": "ChampionModel-old"}},
        ["serves the variants Champion, not Challenger, Champion as deployed"],
    ),
    "the endpoint failed": (
        {"status": "Failed", "reason": "The primary container did not pass the ping health check"},
        ["endpoint mlops-dev-churn is Failed (The primary container did not pass the ping health check)"],
    ),
}


@pytest.mark.parametrize(("live", "problems"), NOT_RUNNING.values(), ids=NOT_RUNNING.keys())
def test_a_complete_stack_whose_endpoint_does_not_run_the_deploy_is_a_failure(world, live, problems):
    # CloudFormation reports UPDATE_COMPLETE and resolved the pointer, but the endpoint is not on the
    # deployed config (SageMaker's guardrails roll back to the old endpoint and return it to InService).
    acquired(world)
    world.stack("UPDATE_COMPLETE", resolved=MODEL_DATA)
    world.endpoint(**live)

    result = world.run("settle", build={"id": "build-1", "status": "SUCCEEDED"})

    assert result["status"] == "reverted"
    assert world.pointer() == (OLD_DATA, OLD_DESCRIPTION, 4)  # restored
    assert world.lock() is None
    [record] = world.records()
    assert (record["decision"], record["sk"]) == ("reverted", f"EXECUTION#{EXECUTION}#reverted")
    [(subject, message)] = world.notices()
    assert subject.endswith(": reverted")
    assert "the endpoint does not run what it deployed" in message
    for problem in problems:
        assert problem in message
        assert problem in record["reason"]
    assert f"the pointer was restored to {OLD_DATA}" in message


def test_an_older_package_than_the_pointer_names_is_superseded_and_nothing_is_written(world):
    newer = f"{PACKAGE_ARN[:-1]}4"
    world.ssm.put_parameter(
        Name=POINTER,
        Value="s3://newer/model.tar.gz",
        Type="String",
        Overwrite=True,
        Description=f"model package {newer}",
    )
    world.package()

    result = world.run("acquire")  # no stack response stubbed: superseded before the stack is read

    assert result["status"] == "superseded"
    assert world.pointer() == ("s3://newer/model.tar.gz", f"model package {newer}", 3)
    assert world.lock() is None
    [record] = world.records()
    assert (record["decision"], record["sk"]) == ("superseded", f"EXECUTION#{EXECUTION}#superseded")
    assert f"already names {newer}, a newer version than {PACKAGE_ARN}" in record["reason"]
    [(subject, message)] = world.notices()
    assert subject == "[mlops-dev] acme/xgboost to churn/Challenger: superseded"
    assert "Nothing to do: the variant keeps the newer model" in message


@pytest.mark.parametrize(
    "description",
    [
        f"model package {PACKAGE_ARN[:-1]}2",
        "model package arn:aws:sagemaker:eu-west-1:123456789012:model-package/mlops-dev-acme-linear/9",
        "restored by the approval path after a failed deployment",
    ],
    ids=["an older version", "another group's package", "no package"],
)
def test_a_pointer_naming_no_newer_version_of_the_group_is_written(world, description):
    world.ssm.put_parameter(Name=POINTER, Value=OLD_DATA, Type="String", Overwrite=True, Description=description)
    world.package()
    world.stack("UPDATE_COMPLETE")

    assert world.run("acquire")["status"] == "ready"
    assert world.pointer()[0] == MODEL_DATA


def test_a_failed_deploy_restores_the_pointer_and_tells_people_why(world):
    acquired(world)
    world.stack("UPDATE_ROLLBACK_COMPLETE", resolved=OLD_DATA, reason="Endpoint update failed: model failed to load")
    build_error = {"Error": "States.TaskFailed", "Cause": '{"Build": {"BuildStatus": "FAILED"}}'}

    result = world.run("settle", build=build_error)

    assert result["status"] == "reverted"
    assert world.pointer() == (OLD_DATA, OLD_DESCRIPTION, 4)  # its earlier value and lineage, as a new version
    assert world.lock() is None
    [(subject, message)] = world.notices()
    assert subject.endswith(": reverted")
    assert "UPDATE_ROLLBACK_COMPLETE (Endpoint update failed: model failed to load)" in message
    assert "the deploy failed: States.TaskFailed" in message
    assert f"the pointer was restored to {OLD_DATA}" in message
    assert "When a promotion fails" in message


def test_a_build_that_failed_while_someone_else_deployed_the_pointer_is_a_success(world):
    # The change set could not run (a pipeline deploy was under way), but that deploy re-read the pointer.
    acquired(world)
    world.stack("UPDATE_COMPLETE", resolved=MODEL_DATA)
    world.endpoint()

    result = world.run("settle", build={"Error": "States.TaskFailed", "Cause": "stack is in UPDATE_IN_PROGRESS"})

    assert result["status"] == "deployed"
    assert world.pointer()[0] == MODEL_DATA


def test_a_pointer_changed_by_someone_else_is_not_reverted(world):
    acquired(world)
    world.ssm.put_parameter(Name=POINTER, Value="example", Type="String", Overwrite=True, Description="rolled back")
    world.stack("UPDATE_ROLLBACK_COMPLETE", resolved=OLD_DATA)

    result = world.run("settle", build={"Error": "States.TaskFailed", "Cause": "failed"})

    assert result["status"] == "reverted"
    assert "was left at example: it changed after this promotion wrote it" in result["reason"]
    assert world.pointer() == ("example", "rolled back", 4)


def test_a_failure_before_the_pointer_was_written_restores_nothing(world):
    world.locked_by(EXECUTION, NOW + timedelta(hours=1))  # acquired the lock, then failed
    world.stack("UPDATE_COMPLETE", resolved=OLD_DATA)

    result = world.run("settle", build={"Error": "ClientError", "Cause": "throttled"})

    assert result["status"] == "reverted"
    assert "the pointer was not written by this promotion" in result["reason"]
    assert world.pointer() == UNTOUCHED
    assert world.lock() is None


def test_settling_waits_while_the_stack_is_still_updating(world):
    acquired(world)
    world.stack("UPDATE_IN_PROGRESS")

    result = world.run("settle", build={"Error": "States.Timeout", "Cause": "build timed out"})

    assert result["status"] == "busy"
    assert world.pointer()[0] == MODEL_DATA  # not reverted while the outcome is unknown
    assert world.lock()["owner"] == EXECUTION
    assert world.notices() == []


def test_a_settle_repeated_by_a_retry_records_and_notifies_once(world):
    acquired(world)
    world.stack("UPDATE_ROLLBACK_COMPLETE")
    world.run("settle", build={"Error": "States.TaskFailed", "Cause": "failed"})
    world.stack("UPDATE_ROLLBACK_COMPLETE")
    world.run("settle", build={"Error": "States.TaskFailed", "Cause": "failed"})

    assert len(world.notices()) == 1
    assert [record["decision"] for record in world.records()] == ["reverted"]


# -- giving up, bad input ---------------------------------------------------------------------------


def test_giving_up_on_a_busy_stack_releases_the_lock_and_writes_nothing(world):
    world.package()
    world.stack("UPDATE_IN_PROGRESS")
    world.run("acquire")

    result = world.run("give_up", phase="acquire")

    assert result["status"] == "abandoned"
    assert world.lock() is None
    assert world.pointer() == UNTOUCHED
    [(subject, _)] = world.notices()
    assert subject.endswith(": abandoned")


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"step": "acquire", "execution": EXECUTION, "request": {}}, "the request lacks package_arn"),
        ({"step": "acquire", "request": REQUEST}, "lacks the execution's name"),
        ({"step": "deploy", "execution": EXECUTION, "request": REQUEST}, "unknown step 'deploy'"),
    ],
)
def test_a_malformed_step_input_is_an_error_step_functions_can_name(world, event, message):
    with pytest.raises(InvalidRequest, match=message):
        world.steps.run(event)


# -- the Lambda handler ---------------------------------------------------------------------------------


def test_the_handler_runs_the_step_with_its_environment_and_counts_the_outcome(capsys):
    with mock_aws(), pytest.MonkeyPatch.context() as patch:
        for name, value in {**ENVIRONMENT, "POWERTOOLS_SERVICE_NAME": "approval"}.items():
            patch.setenv(name, value)
        World()  # the ledger, the topic and the pointer
        handler = load_handler("approval", "deployment")

        result = handler.handler(
            {"step": "give_up", "phase": "acquire", "execution": EXECUTION, "request": REQUEST},
            LambdaContext("deployment", memory_limit_in_mb=512),
        )

    assert result["status"] == "abandoned"
    [emf] = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    [metrics] = emf["_aws"]["CloudWatchMetrics"]
    assert metrics["Metrics"] == [{"Name": "PromotionsAbandoned", "Unit": "Count"}]
    assert emf["PromotionsAbandoned"] == [1.0]


def test_the_handler_raises_a_malformed_input_under_a_name_step_functions_shows():
    with mock_aws(), pytest.MonkeyPatch.context() as patch:
        for name, value in ENVIRONMENT.items():
            patch.setenv(name, value)
        handler = load_handler("approval", "deployment")

        with pytest.raises(Exception) as raised:  # noqa: PT011 - the class's name is the contract
            handler.handler(
                {"step": "deploy", "execution": EXECUTION, "request": REQUEST},
                LambdaContext("deployment", memory_limit_in_mb=512),
            )

    assert type(raised.value).__name__ == "InvalidRequest"
