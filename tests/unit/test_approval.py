"""The approval function: what an approved or pending model package becomes, against moto and botocore's Stubber.

The decisions are mlops_platform/registry/approval.py's ``Approvals``; the last tests run the Lambda
handler (lambda/approval/handler.py), the adapter that builds them from the environment.

S3 (tenant config, schema, baseline, evaluation), SSM (pointers), DynamoDB (the ledger) and SNS (the
notices) are moto's. SageMaker is a Stubber, since moto's model packages lack the fields the checks read,
and so is Step Functions, so that a duplicate start can answer ``ExecutionAlreadyExists`` exactly as
Step Functions does. ``events/sagemaker_model_package_state_change.json`` is the sample of "Events that
Amazon SageMaker AI sends to Amazon EventBridge" (SageMaker developer guide), made valid JSON: the page's
sample repeats ``source`` as a list, carries a comment and lacks a comma.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from moto.sns.models import sns_backends

from mlops_platform.registry.approval import Approvals
from mlops_platform.registry.approval_messages import with_challenger
from mlops_platform.registry.approval_settings import Endpoint, Settings, Variant, execution_name
from mlops_platform.registry.checks import feature_schema
from tests.conftest import create_ledger_table, load_handler
from tests.lambda_context import LambdaContext
from tests.unit.test_promote import (
    ACCOUNT,
    ARTIFACTS,
    BASELINE,
    BASELINE_KEY,
    EVALUATION_KEY,
    GROUP,
    MODEL_ARCHIVE,
    MODEL_DATA,
    MODEL_KEY,
    PACKAGE_ARN,
    REGION,
    SCHEMA_KEY,
    TENANT,
    package,
)

EVENTS = Path(__file__).parent / "events"
SAMPLE = json.loads((EVENTS / "sagemaker_model_package_state_change.json").read_text())
# CloudTrail's record of an approving UpdateModelPackage call as EventBridge delivers it: the envelope of
# https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-service-event-cloudtrail.html around a CloudTrail
# record whose userIdentity is the AssumedRole example of
# https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-event-reference-user-identity.html and whose
# requestParameters are UpdateModelPackage's request in lower camel case.
API_CALL = json.loads((EVENTS / "cloudtrail_update_model_package.json").read_text())
APPROVER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/ModelApprover"
LEDGER = "ledger-approval"
STATE_MACHINE = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:promotion"
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
CHURN = [
    "acme",
    "xgboost",
    [["Champion", "cpu", "ml.c5.large", 1, 2, 1, 90], ["Challenger", "cpu", "ml.c5.large", 1, 2, 1, 10]],
]
ENVIRONMENT = {
    "ENVIRONMENT": "dev",
    "PACKAGE_GROUP_PREFIX": "mlops-dev",
    "POINTER_PREFIX": "/mlops/dev/models/",
    "ENDPOINTS": json.dumps({"churn": CHURN}),
    "NEW_VARIANT": json.dumps(["cpu", "ml.c5.large", 1, 2, 1]),
    "CONFIG_BUCKET": ARTIFACTS,
    "LEDGER_TABLE": LEDGER,
    "TOPIC_ARN": f"arn:aws:sns:{REGION}:{ACCOUNT}:notifications",
    "STATE_MACHINE_ARN": STATE_MACHINE,
}
EVALUATION = {
    "schema_version": 1,
    "model": "xgboost",
    "algorithm": "xgboost",
    "threshold": 0.9,
    "meets_threshold": True,
    "binary_classification_metrics": {"auc": {"value": 0.97}, "accuracy": {"value": 0.93}},
}


def schema_body() -> bytes:
    """The feature schema document as evaluate writes it (its ``encode`` of ``feature_schema``)."""
    document = feature_schema(TENANT.published())
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=True).encode("ascii")


class World:
    def __init__(self, endpoints: dict[str, Any] | None = None, approvers: tuple[str, ...] = ()) -> None:
        names = ("s3", "ssm", "dynamodb", "sns", "sagemaker", "stepfunctions")
        self.s3, self.ssm, self.dynamodb, self.sns, self.sagemaker, self.sfn = (
            boto3.client(name, region_name=REGION) for name in names
        )
        self.sagemaker_stub, self.sfn_stub = Stubber(self.sagemaker), Stubber(self.sfn)
        self.s3.create_bucket(Bucket=ARTIFACTS, CreateBucketConfiguration={"LocationConstraint": REGION})
        self.schema = schema_body()
        self.put(SCHEMA_KEY, self.schema)
        self.put(BASELINE_KEY, BASELINE)
        self.put(MODEL_KEY, MODEL_ARCHIVE)
        self.put(EVALUATION_KEY, json.dumps(EVALUATION).encode())
        self.put("artifacts/config/pipelines/acme.json", json.dumps(TENANT.published()).encode())
        create_ledger_table(LEDGER, REGION)
        self.topic = self.sns.create_topic(Name="notifications")["TopicArn"]
        environment = {**ENVIRONMENT, "ENDPOINTS": json.dumps(endpoints if endpoints is not None else {"churn": CHURN})}
        if approvers:
            environment["APPROVER_ROLE_ARNS"] = ",".join(approvers)  # as synth writes it (approval_path.py)
        self.approvals = Approvals(
            sagemaker=self.sagemaker,
            s3=self.s3,
            ssm=self.ssm,
            dynamodb=self.dynamodb,
            stepfunctions=self.sfn,
            sns=self.sns,
            settings=Settings.from_environment(environment),
            clock=lambda: NOW,
        )

    def put(self, key: str, body: bytes) -> None:
        self.s3.put_object(Bucket=ARTIFACTS, Key=key, Body=body)

    def describes(self, response: dict[str, Any]) -> None:
        self.sagemaker_stub.add_response(
            "describe_model_package", response, {"ModelPackageName": response["ModelPackageArn"]}
        )

    def starts(self, name: str, request: dict[str, Any]) -> None:
        self.sfn_stub.add_response(
            "start_execution",
            {"executionArn": f"{STATE_MACHINE.replace(':stateMachine:', ':execution:')}:{name}", "startDate": NOW},
            {"stateMachineArn": STATE_MACHINE, "name": name, "input": json.dumps(request, sort_keys=True)},
        )

    def handle(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        with self.sagemaker_stub, self.sfn_stub:
            decisions = self.approvals.handle(event)
        self.sagemaker_stub.assert_no_pending_responses()
        self.sfn_stub.assert_no_pending_responses()
        return decisions

    def notices(self) -> list[tuple[str, str]]:
        """(subject, message) of every notice published, in order."""
        topic = sns_backends[ACCOUNT][REGION].topics[self.topic]
        return [(subject, message) for _, message, subject, *_ in topic.sent_notifications]

    def ledger(self) -> list[dict[str, Any]]:
        return boto3.resource("dynamodb", region_name=REGION).Table(LEDGER).scan()["Items"]

    def decisions(self) -> list[tuple[str, str]]:
        return sorted((item["pk"], item["decision"]) for item in self.ledger())

    def parameter(self, name: str) -> tuple[str, str | None] | None:
        try:
            [*_, entry] = self.ssm.get_parameter_history(Name=name)["Parameters"]
        except self.ssm.exceptions.ParameterNotFound:
            return None
        return entry["Value"], entry.get("Description")


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws():
        yield World()


def event(status: str = "Approved", arn: str = PACKAGE_ARN, group: str = GROUP) -> dict[str, Any]:
    """The documented sample, for a package of this environment."""
    sample = copy.deepcopy(SAMPLE)
    sample["detail"].update(ModelPackageArn=arn, ModelPackageGroupName=group, ModelApprovalStatus=status)
    sample["resources"] = [arn]
    return sample


def request(world: World, model_data: str = MODEL_DATA) -> dict[str, Any]:
    return {
        "package_arn": PACKAGE_ARN,
        "endpoint": "churn",
        "variant": "Challenger",
        "pointer": "/mlops/dev/models/churn/Challenger",
        "model_data": model_data,
        "tenant": "acme",
        "model": "xgboost",
        "share": 10.0,
    }


# -- approved, with a Challenger ------------------------------------------------------------------


def test_an_approved_package_starts_one_deployment_of_the_challenger(world):
    name = execution_name("churn", PACKAGE_ARN)
    world.describes(package(world.schema))
    world.starts(name, request(world))

    [decision] = world.handle(event())

    assert (decision["decision"], decision["written"]) == ("deploying", True)
    [record] = world.ledger()
    assert (record["pk"], record["sk"]) == ("PROMOTION#churn", f"PACKAGE#{GROUP}/3#deploying")
    assert (record["execution_name"], record["model_data"], record["tenant"]) == (name, MODEL_DATA, "acme")
    # The workflow writes the pointer, under its lock; this function writes none and tells nobody yet.
    assert world.parameter("/mlops/dev/models/churn/Challenger") is None
    assert world.notices() == []


def test_a_duplicate_event_is_one_deployment_and_recorded_as_a_duplicate(world):
    name = execution_name("churn", PACKAGE_ARN)
    world.describes(package(world.schema))
    world.starts(name, request(world))
    world.handle(event())
    world.describes(package(world.schema))
    world.sfn_stub.add_client_error(
        "start_execution",
        service_error_code="ExecutionAlreadyExists",
        service_message=f"Execution Already Exists: '{name}'",
        expected_params={
            "stateMachineArn": STATE_MACHINE,
            "name": name,
            "input": json.dumps(request(world), sort_keys=True),
        },
    )

    [decision] = world.handle(event())

    assert decision["decision"] == "skipped-duplicate"
    assert world.decisions() == [("PROMOTION#churn", "deploying"), ("PROMOTION#churn", "skipped-duplicate")]


def test_a_repeated_start_of_a_running_execution_is_recorded_as_a_duplicate(world):
    # Step Functions answers a start with the name and input of a running execution with that execution.
    name = execution_name("churn", PACKAGE_ARN)
    decisions = []
    for _ in range(2):
        world.describes(package(world.schema))
        world.starts(name, request(world))
        decisions.append(world.handle(event()))
    first, second = decisions

    assert [first[0]["decision"], second[0]["decision"]] == ["deploying", "skipped-duplicate"]


def test_execution_names_are_unique_per_endpoint_and_package_and_fit_step_functions():
    names = {
        execution_name(endpoint, f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}/{version}")
        for endpoint in ("churn", "a" * 32)
        for version in (1, 2, 123456)
    }

    assert len(names) == 6
    assert all(
        len(name) <= 80 and name[0].isalpha() and set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")
        for name in names
    )
    assert execution_name("churn", PACKAGE_ARN) == execution_name("churn", PACKAGE_ARN)


# -- refused --------------------------------------------------------------------------------------

REFUSALS = {
    "no baseline": ({"CustomerMetadataProperties__baseline": None}, "has no baseline and baseline_sha256 metadata"),
    "schema mismatch": (
        {"CustomerMetadataProperties__feature_schema_sha256": "0" * 64},
        "it changed after registration",
    ),
    "artifact outside the tenant's runs": (
        {
            "InferenceSpecification__Containers": [
                {"Image": "serving:1", "ModelDataUrl": f"s3://{ARTIFACTS}/artifacts/runs/other/model.tar.gz"}
            ]
        },
        "outside the tenant's training runs",
    ),
}


@pytest.mark.parametrize(("changes", "reason"), REFUSALS.values(), ids=REFUSALS.keys())
def test_a_refused_package_is_notified_once_and_nothing_is_written(world, changes, reason):
    world.describes(package(world.schema, **changes))
    [decision] = world.handle(event())
    world.describes(package(world.schema, **changes))
    world.handle(event())  # SageMaker sends it again

    assert decision["decision"] == "rejected"
    [(subject, message)] = world.notices()
    assert subject.startswith("[mlops-dev] acme/xgboost not promoted to churn")
    assert reason in message
    assert world.parameter("/mlops/dev/models/churn/Challenger") is None  # no pointer written, no execution


def test_a_linear_model_is_refused_for_a_gpu_challenger():
    gpu = [
        "acme",
        "xgboost",
        [["Champion", "cpu", "ml.c5.large", 1, 2, 1, 90], ["Challenger", "gpu", "ml.g5.xlarge", 1, 2, 1, 10]],
    ]
    with mock_aws():
        world = World({"churn": gpu})
        world.describes(package(world.schema, CustomerMetadataProperties__algorithm="linear"))

        [decision] = world.handle(event())

        assert decision["decision"] == "rejected"
        [(_, message)] = world.notices()
        assert "holds a linear model, which a gpu variant does not serve" in message


# -- no Challenger, no endpoint, the example tenant -------------------------------------------------


def test_an_endpoint_without_a_challenger_is_not_changed_and_people_get_the_config_that_serves_it():
    champion_only = ["acme", "xgboost", [["Champion", "cpu", "ml.c5.xlarge", 2, 4, 2, 100]]]
    with mock_aws():
        world = World({"churn": champion_only})
        world.describes(package(world.schema))

        [decision] = world.handle(event())

        assert decision["decision"] == "recorded"
        [(subject, message)] = world.notices()
        assert "churn has no Challenger" in subject
        yaml = message[message.index("# config/environments/dev.yaml") :]
        assert "    churn:\n      tenant: acme\n      model: xgboost\n      variants:\n" in yaml
        assert "        - name: Champion\n" in yaml
        assert "          weight: 90\n" in yaml
        challenger = yaml[yaml.index("- name: Challenger") :]
        assert "instance_type: ml.c5.xlarge" in challenger  # the Champion's settings
        assert challenger.rstrip().endswith("weight: 10")
        # Nothing reads the Challenger's pointer yet: it is prepared, so a declared Challenger serves this model.
        assert world.parameter("/mlops/dev/models/churn/Challenger") == (MODEL_DATA, f"model package {PACKAGE_ARN}")


def test_an_undeclared_endpoint_gets_its_pointers_with_the_approved_model():
    linear = "mlops-dev-acme-linear"
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{linear}/1"
    with mock_aws():
        world = World()  # declares churn for acme/xgboost only
        world.describes(
            package(
                world.schema,
                ModelPackageArn=arn,
                ModelPackageGroupName=linear,
                CustomerMetadataProperties__model="linear",
                CustomerMetadataProperties__algorithm="linear",
            )
        )

        [decision] = world.handle(event(arn=arn, group=linear))

        assert decision == {
            "endpoint": "acme-linear",
            "decision": "pointer-prepared",
            "reason": "Champion: created; Challenger: created",
            "written": True,
        }
        for variant in ("Champion", "Challenger"):
            assert world.parameter(f"/mlops/dev/models/acme-linear/{variant}") == (MODEL_DATA, f"model package {arn}")
        [(subject, message)] = world.notices()
        assert "endpoint acme-linear prepared" in subject
        assert "    acme-linear:\n      tenant: acme\n      model: linear\n" in message


def test_a_prepared_pointer_takes_newer_versions_only():
    newer, older = (f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/mlops-dev-acme-linear/{v}" for v in (5, 4))
    later = MODEL_DATA.replace("run-1", "run-2")
    with mock_aws():
        world = World({})
        world.put(BASELINE_KEY.replace("run-1", "run-2"), BASELINE)
        world.put(MODEL_KEY.replace("run-1", "run-2"), MODEL_ARCHIVE)

        def describes(arn: str, data: str) -> None:
            world.describes(
                package(
                    world.schema,
                    ModelPackageArn=arn,
                    ModelPackageGroupName="mlops-dev-acme-linear",
                    CustomerMetadataProperties__model="linear",
                    InferenceSpecification__Containers=[{"Image": "serving:1", "ModelDataUrl": data}],
                    CustomerMetadataProperties__baseline=data.replace("model.tar.gz", "baseline.json"),
                )
            )

        describes(newer, later)
        world.handle(event(arn=newer, group="mlops-dev-acme-linear"))
        describes(older, MODEL_DATA)
        [decision] = world.handle(event(arn=older, group="mlops-dev-acme-linear"))  # reordered: arrives second

        assert decision["reason"].startswith(f"Champion: kept, it names {newer}")
        assert world.parameter("/mlops/dev/models/acme-linear/Champion") == (later, f"model package {newer}")


def test_the_example_tenant_is_never_promoted_nor_notified(world):
    example = "mlops-dev-example-xgboost"
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{example}/7"
    world.describes(
        package(
            world.schema,
            ModelPackageArn=arn,
            ModelPackageGroupName=example,
            CustomerMetadataProperties__tenant="example",
        )
    )

    [decision] = world.handle(event(arn=arn, group=example))

    assert (decision["endpoint"], decision["decision"]) == ("example-xgboost", "ignored")
    assert "never promoted" in decision["reason"]
    assert world.notices() == []
    assert world.parameter("/mlops/dev/models/example-xgboost/Champion") is None


# -- pending, stale, malformed --------------------------------------------------------------------


def test_a_pending_package_is_notified_once_with_its_metrics_and_the_commands(world):
    world.describes(package(world.schema, ModelApprovalStatus="PendingManualApproval"))
    [decision] = world.handle(event("PendingManualApproval"))
    world.describes(package(world.schema, ModelApprovalStatus="PendingManualApproval"))
    world.handle(event("PendingManualApproval"))

    assert decision["decision"] == "pending-notified"
    [(subject, message)] = world.notices()
    assert subject == "[mlops-dev] acme/xgboost v3 awaits approval"
    assert "Objective: validation:auc = 0.97" in message
    assert "  auc: 0.97" in message
    assert "  accuracy: 0.93" in message
    assert "Approval threshold: 0.9 (met: True)" in message
    for status in ("Approved", "Rejected"):
        assert (
            f"aws sagemaker update-model-package --region {REGION} --model-package-arn {PACKAGE_ARN} "
            f"--model-approval-status {status}"
        ) in message
    assert "endpoint churn: it becomes the Challenger (10% of the traffic) and is deployed" in message


def test_an_event_whose_status_the_package_no_longer_has_is_ignored(world):
    world.describes(package(world.schema, ModelApprovalStatus="Rejected"))

    [decision] = world.handle(event("Approved"))

    assert decision["decision"] == "ignored"
    assert "a stale or reordered event" in decision["reason"]
    assert world.notices() == []


@pytest.mark.parametrize(
    "malformed",
    [
        {"source": "aws.sagemaker", "detail-type": "SageMaker Model Package State Change", "detail": {}},
        {**SAMPLE, "detail": {**SAMPLE["detail"], "ModelPackageArn": "not-an-arn"}},
        {"Records": []},
    ],
    ids=["no fields", "bad ARN", "not an event"],
)
def test_a_malformed_event_is_recorded_and_never_raised(world, malformed):
    [decision] = world.handle(malformed)

    assert (decision["endpoint"], decision["decision"]) == ("_unrouted", "ignored")
    assert decision["reason"].startswith("malformed: ")


def test_another_environment_s_group_is_ignored_without_a_call(world):
    [decision] = world.handle(event(group="mlops-staging-acme-xgboost"))  # no describe stubbed: none made

    assert decision["decision"] == "ignored"


# -- the suggested config -------------------------------------------------------------------------


def test_a_suggested_challenger_gets_a_tenth_of_the_traffic():
    variant = Variant("Champion", "cpu", "ml.c5.large", 1, 2, 1, 100.0)
    shadow = Variant("Shadow", "cpu", "ml.c5.large", 1, 2, 1, 80.0)

    alone = with_challenger((variant,), variant)
    beside = with_challenger((replace_weight(variant, 100.0), shadow), variant)

    assert [(v.name, v.weight) for v in alone] == [("Champion", 90.0), ("Challenger", 10.0)]
    shares = Endpoint("e", "t", "m", tuple(beside))
    assert shares.share("Challenger") == 10.0


def replace_weight(variant: Any, weight: float) -> Any:
    return Variant(variant.name, variant.flavour, variant.instance_type, 1, 2, 1, weight)


# -- the shipped config's endpoint template ---------------------------------------------------------


@pytest.mark.parametrize("name", ["dev", "staging", "prod"])
def test_the_commented_endpoint_template_is_valid_config_with_a_challenger_at_ten_percent(config_copy, name):
    from config import load_config

    path = config_copy / "environments" / f"{name}.yaml"
    lines = path.read_text().splitlines()
    start = lines.index("    # acme-xgboost:")
    end = next(i for i in range(start, len(lines)) if lines[i] == "    #       weight: 10")
    block = [line.replace("    # ", "    ", 1) for line in lines[start : end + 1]]
    # A tenant the shipped config has (acme is the template's placeholder).
    block = [line.replace("tenant: acme", "tenant: example") for line in block]
    path.write_text("\n".join([*lines[:start], *block, *lines[end + 1 :]]) + "\n")

    endpoint = load_config(config_copy, selected_environments=name).environment(name).serving.endpoints["acme-xgboost"]

    assert [v.name for v in endpoint.variants] == ["Champion", "Challenger"]
    total = sum(v.weight for v in endpoint.variants)
    assert endpoint.variant("Challenger").weight / total == pytest.approx(0.10)


# -- the Lambda handler ---------------------------------------------------------------------------


def test_the_handler_decides_with_its_environment_and_counts_each_written_decision(capsys):
    with mock_aws(), pytest.MonkeyPatch.context() as patch:
        for name, value in {**ENVIRONMENT, "POWERTOOLS_SERVICE_NAME": "approval"}.items():
            patch.setenv(name, value)
        create_ledger_table(LEDGER, REGION)
        handler = load_handler("approval")

        answer = handler.handler({"id": "event-1", "Records": []}, LambdaContext("approval", memory_limit_in_mb=512))

        [record] = boto3.resource("dynamodb", region_name=REGION).Table(LEDGER).scan()["Items"]
    [decision] = answer["decisions"]
    assert (decision["endpoint"], decision["decision"], decision["written"]) == ("_unrouted", "ignored", True)
    assert record["pk"] == "PROMOTION#_unrouted"
    assert record["sk"].endswith("#ignored#event-1")  # <decided_at>#<decision>#<event id>
    [emf] = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    [metrics] = emf["_aws"]["CloudWatchMetrics"]
    assert (metrics["Namespace"], metrics["Metrics"]) == (
        "mlops/test",
        [{"Name": "ApprovalEventsIgnored", "Unit": "Count"}],
    )
    assert emf["ApprovalEventsIgnored"] == [1.0]


# -- who approved (CloudTrail's UpdateModelPackage record) ----------------------------------------


def approval_call(
    role: str = "ModelApprover", session: str = "alice", status: str = "Approved", event_id: str | None = None
) -> dict[str, Any]:
    """CloudTrail's record of ``role``'s session approving the package, as EventBridge delivers it."""
    call = copy.deepcopy(API_CALL)
    identity = call["detail"]["userIdentity"]
    identity["arn"] = f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}"
    identity["sessionContext"]["sessionIssuer"].update(arn=f"arn:aws:iam::{ACCOUNT}:role/{role}", userName=role)
    call["detail"]["requestParameters"].update(modelPackageArn=PACKAGE_ARN, modelApprovalStatus=status)
    if event_id:
        call["detail"]["eventID"] = event_id
    return call


@pytest.fixture
def prod_world() -> Iterator[World]:
    """Approvers listed (``approval.approver_role_arns``), as in prod."""
    with mock_aws():
        yield World(approvers=(APPROVER_ROLE, f"arn:aws:iam::{ACCOUNT}:role/OtherApprover"))


def test_the_approver_of_a_package_is_recorded_from_cloudtrail(world):
    world.describes(package(world.schema))

    [decision] = world.handle(approval_call())

    assert (decision["decision"], decision["written"]) == ("approved-by", True)
    [record] = world.ledger()
    assert record["approver"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/ModelApprover/alice"
    assert (record["approver_role"], record["approved_at"]) == (APPROVER_ROLE, "2026-11-24T11:58:02Z")
    assert record["sk"] == f"PACKAGE#{GROUP}/3#approved-by#{API_CALL['detail']['eventID']}"
    # Without listed approvers the package's state change promotes: this record starts nothing.
    assert world.notices() == []


def test_an_iam_user_approver_is_recorded_under_the_user_s_arn(world):
    call = approval_call()
    call["detail"]["userIdentity"] = {
        "type": "IAMUser",
        "principalId": "AIDAJ45Q7YFFAREXAMPLE",
        "arn": f"arn:aws:iam::{ACCOUNT}:user/Alice",
        "accountId": ACCOUNT,
        "userName": "Alice",
    }
    world.describes(package(world.schema))

    world.handle(call)

    [record] = world.ledger()
    assert record["approver"] == record["approver_role"] == f"arn:aws:iam::{ACCOUNT}:user/Alice"


@pytest.mark.parametrize("order", ["state change first", "cloudtrail first"])
def test_with_listed_approvers_only_the_approver_s_record_promotes_whichever_event_comes_first(prod_world, order):
    world = prod_world
    name = execution_name("churn", PACKAGE_ARN)
    deliveries = [event(), approval_call()] if order == "state change first" else [approval_call(), event()]
    for delivery in deliveries:
        world.describes(package(world.schema))
        if delivery["detail-type"] == API_CALL["detail-type"]:
            world.starts(name, request(world))  # the Stubber fails the test on any other start
        world.handle(delivery)

    assert world.decisions() == [
        ("PROMOTION#churn", "approved-by"),
        ("PROMOTION#churn", "awaiting-approver"),
        ("PROMOTION#churn", "deploying"),
    ]
    [deploying] = [item for item in world.ledger() if item["decision"] == "deploying"]
    assert deploying["approver"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/ModelApprover/alice"


def test_a_package_approved_by_an_unlisted_role_is_refused_recorded_and_notified_once(prod_world):
    world = prod_world
    for _ in range(2):  # EventBridge may deliver the record twice
        world.describes(package(world.schema))
        [decision] = world.handle(approval_call(role="DataScientist", session="mallory"))

    assert decision["decision"] == "approver-refused"
    [record] = world.ledger()
    assert record["decision"] == "approver-refused"
    assert record["approver"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/DataScientist/mallory"
    assert record["approver_role"] == f"arn:aws:iam::{ACCOUNT}:role/DataScientist"
    [(subject, message)] = world.notices()
    assert "not promoted" in subject
    assert "DataScientist/mallory" in message
    assert APPROVER_ROLE in message
    assert world.parameter("/mlops/dev/models/churn/Challenger") is None


def test_an_unlisted_approver_s_package_stays_unpromoted_when_its_state_change_arrives(prod_world):
    world = prod_world
    world.describes(package(world.schema))
    world.handle(approval_call(role="DataScientist"))
    world.describes(package(world.schema))

    [decision] = world.handle(event())  # no start is stubbed: a deployment would fail the Stubber

    assert decision["decision"] == "awaiting-approver"


def test_a_listed_approval_of_a_package_rejected_since_is_recorded_and_not_promoted(prod_world):
    world = prod_world
    world.describes(package(world.schema, ModelApprovalStatus="Rejected"))

    decisions = world.handle(approval_call())

    assert [d["decision"] for d in decisions] == ["approved-by", "ignored"]
    assert "Rejected now" in decisions[1]["reason"]


@pytest.mark.parametrize(
    "change",
    [
        {"errorCode": "AccessDeniedException", "errorMessage": "not authorized"},
        {"eventName": "CreateModelPackage"},
        {"requestParameters": {"modelPackageArn": "mlops-dev-acme-xgboost", "modelApprovalStatus": "Approved"}},
        {"userIdentity": {"type": "AssumedRole"}},
    ],
    ids=["failed call", "another call", "a group name, not a version ARN", "no caller"],
)
def test_a_cloudtrail_record_that_approved_nothing_is_recorded_as_malformed(prod_world, change):
    call = approval_call()
    call["detail"].update(change)

    [decision] = prod_world.handle(call)  # describes nothing: the Stubber would fail on a call

    assert (decision["endpoint"], decision["decision"]) == ("_unrouted", "ignored")
    assert decision["reason"].startswith("malformed:")
