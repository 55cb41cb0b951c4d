"""Is a deploy done? mlops_platform/registry/endpoint_check.py, mlops check-deploy and mlops record-variants.

SageMaker and Application Auto Scaling are moto's (endpoints, endpoint configs, models, scaling targets),
set up by tests/live_endpoints.py as a deploy leaves them; a guardrail's rollback is an endpoint left on
its old config. CloudFormation is a Stubber (moto's needs a package this project does not install) that
answers GetTemplate with a template of the shape mlops_constructs/endpoint.py synthesizes and
ListStackResources with the names moto holds; tests/infra/test_deploy_check.py runs the same check on
the synthesized template itself.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import pytest
import yaml
from botocore.stub import Stubber
from moto import mock_aws

from mlops_constructs import deploy_check
from mlops_platform.cli import check_deploy, record_variants
from mlops_platform.registry import endpoint_check
from tests.conftest import ROOT, mlops
from tests.live_endpoints import current_instance_types, deploy_endpoint

REGION = "eu-west-1"
ACCOUNT = "123456789012"
STACK = "dev-Serving"
PREFIX = "mlops-dev"
CHURN = "mlops-dev-churn"
EXAMPLE = "mlops-dev-example"
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
CHURN_VARIANTS = [("Champion", "ml.c5.large", True), ("Challenger", "ml.m5.large", False)]
EXAMPLE_VARIANTS = [("Champion", "ml.c5.large", True)]


def template_of(deployed: dict[str, tuple[str, dict[str, str]]], arns: bool = True) -> tuple[dict, dict[str, str]]:
    """The Serving stack's template for these endpoints (name -> (config, {variant: model})), and its
    physical ids (ARNs, as CloudFormation reports SageMaker resources, or names)."""
    resources: dict[str, Any] = {}
    physical: dict[str, str] = {}
    base = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}"
    for index, (name, (config, models)) in enumerate(sorted(deployed.items())):
        variants = []
        for variant, model in models.items():
            model_id = f"Endpoint{index}{variant}Model"
            resources[model_id] = {"Type": "AWS::SageMaker::Model", "Properties": {}}
            physical[model_id] = f"{base}:model/{model.lower()}" if arns else model
            variants.append({"VariantName": variant, "ModelName": {"Fn::GetAtt": [model_id, "ModelName"]}})
        config_id = f"Endpoint{index}Config"
        resources[config_id] = {
            "Type": "AWS::SageMaker::EndpointConfig",
            "Properties": {"ProductionVariants": variants},
        }
        physical[config_id] = f"{base}:endpoint-config/{config.lower()}" if arns else config
        endpoint_id = f"Endpoint{index}Endpoint"
        resources[endpoint_id] = {
            "Type": "AWS::SageMaker::Endpoint",
            "Properties": {
                "EndpointName": name,
                "EndpointConfigName": {"Fn::GetAtt": [config_id, "EndpointConfigName"]},
            },
        }
        physical[endpoint_id] = f"{base}:endpoint/{name}"
    return {"Resources": resources}, physical


class Aws:
    """moto's SageMaker and Application Auto Scaling, a stubbed CloudFormation, and the IAM actions called."""

    def __init__(self) -> None:
        self.sagemaker, self.autoscaling, self.sts = (
            boto3.client(name, region_name=REGION) for name in ("sagemaker", "application-autoscaling", "sts")
        )
        self.cloudformation = boto3.client("cloudformation", region_name=REGION)
        self.stub = Stubber(self.cloudformation)
        self.deployed: dict[str, tuple[str, dict[str, str]]] = {}
        self.actions: set[str] = set()
        for client in (self.sagemaker, self.autoscaling, self.cloudformation):
            client.meta.events.register("before-call.*.*", self._called)

    def _called(self, model: Any, **_: Any) -> None:
        self.actions.add(f"{model.service_model.signing_name}:{model.name}")

    def deploy(self, name: str, variants: list[tuple[str, str, bool]], release: str = "1", serve: bool = True) -> None:
        """A deploy of the endpoint: the stack records the new config and models, whatever the endpoint runs."""
        self.deployed[name] = deploy_endpoint(
            self.sagemaker, self.autoscaling, name, variants, release=release, serve=serve
        )

    def stack(self, arns: bool = True) -> None:
        template, physical = template_of(self.deployed, arns)
        self.stub.add_response(
            "get_template", {"TemplateBody": json.dumps(template)}, {"StackName": STACK, "TemplateStage": "Original"}
        )
        summaries = [
            {
                "LogicalResourceId": logical,
                "PhysicalResourceId": physical_id,
                "ResourceType": template["Resources"][logical]["Type"],
                "LastUpdatedTimestamp": NOW,
                "ResourceStatus": "UPDATE_COMPLETE",
            }
            for logical, physical_id in physical.items()
        ]
        self.stub.add_response("list_stack_resources", {"StackResourceSummaries": summaries}, {"StackName": STACK})

    def no_stack(self) -> None:
        self.stub.add_client_error(
            "get_template",
            service_error_code="ValidationError",
            service_message=f"Stack with id {STACK} does not exist",
            expected_params={"StackName": STACK, "TemplateStage": "Original"},
        )

    def clients(self) -> check_deploy.Clients:
        return check_deploy.Clients(
            cloudformation=self.cloudformation, sagemaker=self.sagemaker, autoscaling=self.autoscaling
        )


@pytest.fixture
def aws() -> Iterator[Aws]:
    with mock_aws(), current_instance_types():
        yield Aws()


# -- the endpoint check --------------------------------------------------------------------------------


@pytest.mark.parametrize("arns", [True, False], ids=["physical ids as ARNs", "physical ids as names"])
def test_endpoints_that_run_what_the_stack_deployed_pass(aws, arns):
    aws.deploy(CHURN, CHURN_VARIANTS)
    aws.deploy(CHURN, CHURN_VARIANTS, release="2")  # a promotion: new models and config, the endpoint on them
    aws.deploy(EXAMPLE, EXAMPLE_VARIANTS)
    aws.stack(arns)

    with aws.stub:
        assert endpoint_check.check_stack(aws.cloudformation, aws.sagemaker, STACK) == {}


def test_an_endpoint_a_guardrail_rolled_back_runs_its_old_config_and_fails_the_check(aws):
    aws.deploy(CHURN, CHURN_VARIANTS)
    aws.deploy(CHURN, CHURN_VARIANTS, release="2", serve=False)  # CloudFormation: complete; SageMaker: rolled back
    aws.deploy(EXAMPLE, EXAMPLE_VARIANTS)
    aws.stack()

    with aws.stub:
        problems = endpoint_check.check_stack(aws.cloudformation, aws.sagemaker, STACK)

    assert list(problems) == [CHURN]
    # The stack's names come from the ARNs CloudFormation reports, which SageMaker writes in lowercase.
    assert problems[CHURN] == [
        f"endpoint {CHURN} runs endpoint config {CHURN}-config-1, not {CHURN}-config-2 that the stack deployed "
        "(SageMaker rolled the update back, or something changed the endpoint outside CloudFormation)",
        f"variant Challenger of endpoint {CHURN} runs model {CHURN}-Challenger-1, not {CHURN}-challenger-2 that "
        "the stack deployed",
        f"variant Champion of endpoint {CHURN} runs model {CHURN}-Champion-1, not {CHURN}-champion-2 that the "
        "stack deployed",
    ]


def test_an_endpoint_that_does_not_exist_fails_the_check(aws):
    aws.deploy(CHURN, CHURN_VARIANTS, serve=False)
    aws.stack()

    with aws.stub:
        problems = endpoint_check.check_stack(aws.cloudformation, aws.sagemaker, STACK)

    assert problems == {CHURN: [f"endpoint {CHURN} does not exist"]}


def test_one_endpoint_can_be_checked_and_one_the_stack_lacks_is_a_problem(aws):
    aws.deploy(CHURN, CHURN_VARIANTS)
    aws.stack()
    aws.stack()

    with aws.stub:
        assert endpoint_check.check_stack(aws.cloudformation, aws.sagemaker, STACK, [CHURN]) == {}
        missing = endpoint_check.check_stack(aws.cloudformation, aws.sagemaker, STACK, [EXAMPLE])

    assert missing == {EXAMPLE: [f"stack {STACK} deploys no endpoint {EXAMPLE}"]}


def test_a_missing_stack_is_said_so(aws):
    aws.no_stack()

    with aws.stub, pytest.raises(endpoint_check.StackMissing, match=f"stack {STACK} does not exist"):
        endpoint_check.check_stack(aws.cloudformation, aws.sagemaker, STACK)


# -- the live record -----------------------------------------------------------------------------------


def test_the_live_record_has_aws_s_variants_instance_types_and_scaling_targets(aws):
    aws.deploy(CHURN, CHURN_VARIANTS)
    aws.deploy(EXAMPLE, EXAMPLE_VARIANTS)
    aws.stack()

    with aws.stub:
        record = endpoint_check.live_record(aws.cloudformation, aws.sagemaker, aws.autoscaling, STACK, PREFIX)

    assert record == {
        "churn": {
            "Challenger": {"instance_type": "ml.m5.large", "autoscaling": False},
            "Champion": {"instance_type": "ml.c5.large", "autoscaling": True},
        },
        "example": {"Champion": {"instance_type": "ml.c5.large", "autoscaling": True}},
    }


def test_before_the_first_deploy_the_live_record_is_empty(aws):
    aws.no_stack()

    with aws.stub:
        assert endpoint_check.live_record(aws.cloudformation, aws.sagemaker, aws.autoscaling, STACK, PREFIX) == {}


def test_the_actions_the_code_calls_are_the_ones_the_roles_are_granted(aws):
    aws.deploy(CHURN, CHURN_VARIANTS)
    aws.stack()
    aws.stack()
    aws.actions.clear()  # the arrangement's calls

    with aws.stub:
        endpoint_check.check_stack(aws.cloudformation, aws.sagemaker, STACK)
        checked = set(aws.actions)
        endpoint_check.live_record(aws.cloudformation, aws.sagemaker, aws.autoscaling, STACK, PREFIX)

    assert checked == endpoint_check.CHECK_ACTIONS
    assert aws.actions == endpoint_check.RECORD_ACTIONS
    # What mlops_constructs/deploy_check.py grants (tests/infra/test_deploy_check.py reads the templates).
    assert deploy_check.CHECK_ACTIONS == endpoint_check.CHECK_ACTIONS
    assert deploy_check.RECORD_ACTIONS == endpoint_check.RECORD_ACTIONS


# -- mlops check-deploy (the pipeline's deploy check, and make deploy's) ---------------------------


def copied_config(tmp_path: Path) -> Path:
    config_dir = tmp_path / "config"
    shutil.copytree(ROOT / "config", config_dir, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return config_dir


# What the deploy record says of CHURN as deployed: the Champion autoscaled, the Challenger not.
CHURN_RECORD = {
    "churn": {
        "Champion": {"instance_type": "ml.c5.large", "autoscaling": True},
        "Challenger": {"instance_type": "ml.m5.large", "autoscaling": False},
    }
}


def write_record(path: Path, dev: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({"dev": dev, "staging": {}, "prod": {}}))
    return path


PIPELINE_ARGUMENTS = ["--environment", "dev", "--stack", STACK, "--prefix", PREFIX, "--region", REGION]


def run_check(aws: Aws, record: Path) -> int:
    with aws.stub:
        return mlops(["check-deploy", *PIPELINE_ARGUMENTS, "--record", str(record)], clients=aws.clients())


def test_the_check_passes_a_deploy_the_endpoints_run_and_the_record_describes(aws, tmp_path, capsys):
    aws.deploy(CHURN, CHURN_VARIANTS)
    aws.stack()
    aws.stack()
    record = write_record(tmp_path / "record.yaml", CHURN_RECORD)

    assert run_check(aws, record) == 0, capsys.readouterr().err
    assert "every endpoint runs the endpoint config and models the stack deployed" in capsys.readouterr().out


def test_the_check_fails_a_rolled_back_endpoint_and_says_what_runs(aws, tmp_path, capsys):
    aws.deploy(CHURN, CHURN_VARIANTS)
    aws.deploy(CHURN, CHURN_VARIANTS, release="2", serve=False)
    aws.stack()
    aws.stack()
    record = write_record(tmp_path / "record.yaml", CHURN_RECORD)

    assert run_check(aws, record) == 1
    error = capsys.readouterr().err
    assert f"{STACK} is deployed, but its endpoints do not run the deploy:" in error
    assert f"runs endpoint config {CHURN}-config-1, not {CHURN}-config-2" in error
    assert "mlops rollback" in error


@pytest.mark.parametrize(
    "committed",
    [
        {},  # the first deploy: nothing recorded yet
        {"churn": {"Champion": {"instance_type": "ml.c5.large", "autoscaling": True}}},  # a variant added since
        {
            "churn": {
                "Champion": {"instance_type": "ml.c5.large", "autoscaling": False},
                "Challenger": {"instance_type": "ml.m5.large", "autoscaling": False},
            }
        },  # autoscaling registered since
    ],
    ids=["first deploy", "variant added", "autoscaling changed"],
)
def test_the_check_fails_a_stale_record_with_the_command_that_rewrites_it(aws, tmp_path, capsys, committed):
    aws.deploy(CHURN, CHURN_VARIANTS)
    aws.stack()
    aws.stack()

    assert run_check(aws, write_record(tmp_path / "record.yaml", committed)) == 1
    error = capsys.readouterr().err
    assert "config/deployed-variants.yaml does not record dev's live endpoint variants:" in error
    assert "AWS has Challenger (ml.m5.large), Champion (ml.c5.large, autoscaled)" in error
    assert "Run: make record-variants ENV=dev" in error
    assert "then commit config/deployed-variants.yaml" in error


def test_the_record_the_command_writes_is_the_one_the_check_accepts(aws, tmp_path, capsys):
    # The seam: make record-variants (from AWS) writes what the pipeline's deploy check compares with AWS.
    config_dir = copied_config(tmp_path)
    dev_account = yaml.safe_load((config_dir / "environments" / "dev.yaml").read_text())["account"]
    with mock.patch.dict(os.environ, {"MOTO_ACCOUNT_ID": str(dev_account)}):  # the credentials are dev's
        aws.deploy(EXAMPLE, EXAMPLE_VARIANTS)
        clients = record_variants.Clients(sagemaker=aws.sagemaker, autoscaling=aws.autoscaling, sts=aws.sts)
        assert mlops(["record-variants", "--environment", "dev", "--config-dir", str(config_dir)], clients=clients) == 0
        assert "dev/example: Champion (ml.c5.large, autoscaled)" in capsys.readouterr().out
        aws.stack()
        aws.stack()

        assert run_check(aws, config_dir / "deployed-variants.yaml") == 0, capsys.readouterr().err


def test_record_variants_refuses_credentials_of_another_account(aws, tmp_path, capsys):
    config_dir = copied_config(tmp_path)
    before = (config_dir / "deployed-variants.yaml").read_text()
    clients = record_variants.Clients(sagemaker=aws.sagemaker, autoscaling=aws.autoscaling, sts=aws.sts)

    code = mlops(["record-variants", "--environment", "dev", "--config-dir", str(config_dir)], clients=clients)

    assert code == 1
    assert f"the AWS credentials are for account {ACCOUNT}; dev is " in capsys.readouterr().err
    assert (config_dir / "deployed-variants.yaml").read_text() == before


def test_the_check_of_a_stack_that_does_not_exist_fails(aws, tmp_path, capsys):
    aws.no_stack()

    assert run_check(aws, write_record(tmp_path / "record.yaml", {})) == 1
    assert f"stack {STACK} does not exist: deploy dev first" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("status", "pending", "message"),
    [
        ("Updating", True, "is Updating with a deployment pending; run this again once it is InService"),
        ("RollingBack", False, "is RollingBack; run this again once it is InService"),
    ],
)
def test_an_endpoint_in_the_middle_of_a_change_is_not_recorded(status, pending, message):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    stubbed = Stubber(sagemaker)
    stubbed.add_response(
        "describe_endpoint",
        {
            "EndpointName": CHURN,
            "EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{CHURN}",
            "EndpointConfigName": f"{CHURN}-config-1",
            "EndpointStatus": status,
            "CreationTime": NOW,
            "LastModifiedTime": NOW,
            **(
                {
                    "PendingDeploymentSummary": {
                        "EndpointConfigName": f"{CHURN}-config-2",
                        "StartTime": NOW,
                    }
                }
                if pending
                else {}
            ),
        },
        {"EndpointName": CHURN},
    )

    with stubbed, pytest.raises(endpoint_check.Unsettled, match=message):
        endpoint_check.live_variants(sagemaker, None, CHURN)


def test_the_record_says_what_aws_has_not_what_config_asks_for(aws, tmp_path):
    config_dir = copied_config(tmp_path)
    dev = config_dir / "environments" / "dev.yaml"
    dev_account = str(yaml.safe_load(dev.read_text())["account"])
    # Config asks for the example endpoint on ml.c5.large, autoscaled; the last deploy left it on
    # ml.m5.large without a scaling target (a failed update, a person's change: AWS decides).
    with mock.patch.dict(os.environ, {"MOTO_ACCOUNT_ID": dev_account}):
        aws.deploy(EXAMPLE, [("Champion", "ml.m5.large", False)])
        clients = record_variants.Clients(sagemaker=aws.sagemaker, autoscaling=aws.autoscaling, sts=aws.sts)

        updated = record_variants.record(config_dir, "dev", clients)

    [(name, variant)] = updated.dev["example"].items()
    assert (name, variant.instance_type, variant.autoscaling) == ("Champion", "ml.m5.large", False)
    assert updated.staging == {}
    assert "instance_type: ml.m5.large" in (config_dir / "deployed-variants.yaml").read_text()
