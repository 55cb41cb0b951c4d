"""The deploy check on the synthesized templates: who may run it, where the pipeline runs it, and the check
itself run against the Serving stack that synth produces.

The seam tests take the synthesized dev Serving template, create in moto what CloudFormation would
create from its SageMaker resources (models, endpoint configs, endpoints, scaling targets), and answer
GetTemplate and ListStackResources with that template and those names (moto's CloudFormation needs a
package this project does not install). Then the approval path's check, ``make record-variants``, the
loader synth reads the record with, and the pipeline's deploy check all run on it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from config import load_config
from config.deployed import keeps_variant_names
from config.naming import Names, serving_stack_name
from mlops_constructs.deploy_check import (
    deploy_check_role_name,
    pipeline_deploy_check_role_name,
)
from mlops_platform.cli import check_deploy, record_variants
from mlops_platform.registry import endpoint_check
from mlops_platform.registry.deployment import Steps
from mlops_platform.registry.deployment_settings import Settings
from tests.conftest import ROOT, mlops
from tests.infra.conftest import ENVIRONMENTS
from tests.infra.test_approval_path import actions_of, resources_of, statements
from tests.infra.test_pipeline import action, project_of, stage
from tests.infra.test_training import function_environment, of_type, rendered
from tests.live_endpoints import IMAGE, ROLE, current_instance_types

TOOLING = "000000000000"
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def resolved_name(value: Any, names: dict[str, str]) -> str:
    """A property that names another resource (Fn::GetAtt ... Name), as the created resource's name."""
    [logical_id, _] = value["Fn::GetAtt"]
    return names[logical_id]


class Deployed:
    """moto's SageMaker and Application Auto Scaling holding what CloudFormation creates from a template."""

    def __init__(self, template: dict[str, Any], account: str, region: str) -> None:
        self.template = template
        self.account, self.region = account, region
        self.sagemaker, self.autoscaling, self.sts = (
            boto3.client(name, region_name=region) for name in ("sagemaker", "application-autoscaling", "sts")
        )
        self.cloudformation = boto3.client("cloudformation", region_name=region)
        self.stub = Stubber(self.cloudformation)
        self.physical: dict[str, str] = {}

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return of_type(self.template["Resources"], kind)

    def apply(self, release: str, *, serve: bool = True) -> None:
        """What CloudFormation creates: new models and configs (their generated names), the endpoints on them
        (unless ``serve`` is False: SageMaker rolled the update back), the scaling targets."""
        arn = f"arn:aws:sagemaker:{self.region}:{self.account}"
        names: dict[str, str] = {}
        for logical_id in self.of_type("AWS::SageMaker::Model"):
            names[logical_id] = f"{logical_id[:50]}-{release}"
            self.sagemaker.create_model(
                ModelName=names[logical_id],
                ExecutionRoleArn=ROLE,
                PrimaryContainer={"Image": IMAGE, "ModelDataUrl": f"s3://artifacts/{release}/model.tar.gz"},
            )
            self.physical[logical_id] = f"{arn}:model/{names[logical_id].lower()}"
        for logical_id, config in self.of_type("AWS::SageMaker::EndpointConfig").items():
            names[logical_id] = f"{logical_id[:50]}-{release}"
            self.sagemaker.create_endpoint_config(
                EndpointConfigName=names[logical_id],
                ProductionVariants=[
                    {
                        "VariantName": variant["VariantName"],
                        "ModelName": resolved_name(variant["ModelName"], names),
                        "InstanceType": variant["InstanceType"],
                        "InitialInstanceCount": variant["InitialInstanceCount"],
                        "InitialVariantWeight": variant["InitialVariantWeight"],
                    }
                    for variant in config["Properties"]["ProductionVariants"]
                ],
            )
            self.physical[logical_id] = f"{arn}:endpoint-config/{names[logical_id].lower()}"
        for logical_id, endpoint in self.of_type("AWS::SageMaker::Endpoint").items():
            name = endpoint["Properties"]["EndpointName"]
            self.physical[logical_id] = f"{arn}:endpoint/{name}"
            if not serve:
                continue
            if any(e["EndpointName"] == name for e in self.sagemaker.list_endpoints()["Endpoints"]):
                self.sagemaker.delete_endpoint(EndpointName=name)  # moto has no UpdateEndpoint
            config = resolved_name(endpoint["Properties"]["EndpointConfigName"], names)
            self.sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=config)
        for target in self.of_type("AWS::ApplicationAutoScaling::ScalableTarget").values():
            properties = target["Properties"]
            assert isinstance(properties["ResourceId"], str), "the scaling target names its endpoint literally"
            self.autoscaling.register_scalable_target(
                ServiceNamespace=properties["ServiceNamespace"],
                ResourceId=properties["ResourceId"],
                ScalableDimension=properties["ScalableDimension"],
                MinCapacity=properties["MinCapacity"],
                MaxCapacity=properties["MaxCapacity"],
            )

    def answer(self, stack: str, times: int = 1) -> None:
        """CloudFormation's answers about the stack: its template and the physical ids of its resources."""
        for _ in range(times):
            self.stub.add_response(
                "get_template",
                {"TemplateBody": json.dumps(self.template)},
                {"StackName": stack, "TemplateStage": "Original"},
            )
            summaries = [
                {
                    "LogicalResourceId": logical_id,
                    "PhysicalResourceId": physical,
                    "ResourceType": self.template["Resources"][logical_id]["Type"],
                    "LastUpdatedTimestamp": NOW,
                    "ResourceStatus": "UPDATE_COMPLETE",
                }
                for logical_id, physical in self.physical.items()
            ]
            self.stub.add_response("list_stack_resources", {"StackResourceSummaries": summaries}, {"StackName": stack})


@pytest.fixture
def dev(synthesized, platform_config) -> Iterator[tuple[Deployed, str]]:
    settings = platform_config.environment("dev")
    stack = synthesized.stages["dev"].serving.stack_name
    template = synthesized.template_json("dev", "serving")
    with mock.patch.dict(os.environ, {"MOTO_ACCOUNT_ID": settings.account}), mock_aws(), current_instance_types():
        yield Deployed(template, settings.account, settings.region), stack


def test_the_check_passes_the_synthesized_stack_as_deployed(dev):
    deployed, stack = dev
    deployed.apply("1")
    deployed.answer(stack)

    with deployed.stub:
        assert endpoint_check.check_stack(deployed.cloudformation, deployed.sagemaker, stack) == {}


def test_the_check_fails_every_endpoint_a_rollback_left_on_its_old_config(dev, platform_config):
    deployed, stack = dev
    deployed.apply("1")
    deployed.apply("2", serve=False)  # the stack completed; SageMaker rolled every endpoint back
    deployed.answer(stack)

    with deployed.stub:
        problems = endpoint_check.check_stack(deployed.cloudformation, deployed.sagemaker, stack)

    names = Names(project=platform_config.project.name, environment="dev")
    assert sorted(problems) == sorted(
        names.resource(key) for key in platform_config.environment("dev").serving.endpoints
    )
    for name, found in problems.items():
        assert any(f"endpoint {name} runs endpoint config" in problem and "-1, not" in problem for problem in found)


def test_the_record_written_from_aws_is_what_synth_reads_and_what_the_pipeline_s_check_accepts(
    dev, platform_config, tmp_path, capsys
):
    deployed, stack = dev
    deployed.apply("1")
    config_dir = tmp_path / "config"
    shutil.copytree(ROOT / "config", config_dir, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    clients = record_variants.Clients(sagemaker=deployed.sagemaker, autoscaling=deployed.autoscaling, sts=deployed.sts)

    record_variants.record(config_dir, "dev", clients)

    # What synth reads: every endpoint keeps its live names, so its next update may use guardrails.
    config = load_config(config_dir)
    endpoints = config.environment("dev").serving.endpoints
    assert set(config.deployed.dev) == set(endpoints)
    for key, endpoint in endpoints.items():
        assert keeps_variant_names(key, [v.name for v in endpoint.variants], config.deployed.dev)
        for variant in endpoint.variants:
            recorded = config.deployed.dev[key][variant.name]
            assert (recorded.instance_type, recorded.autoscaling) == (variant.instance_type, variant.autoscaling)
    # What the pipeline's deploy check compares it with after the stage: the same.
    deployed.answer(stack, times=2)
    prefix = Names(project=platform_config.project.name, environment="dev").prefix
    arguments = ["--environment", "dev", "--stack", stack, "--prefix", prefix, "--region", deployed.region]
    check_clients = check_deploy.Clients(
        cloudformation=deployed.cloudformation, sagemaker=deployed.sagemaker, autoscaling=deployed.autoscaling
    )
    with deployed.stub:
        code = mlops(
            ["check-deploy", *arguments, "--record", str(config_dir / "deployed-variants.yaml")], clients=check_clients
        )
    assert code == 0, capsys.readouterr().err


# -- who may run it -------------------------------------------------------------------------------------


def check_statements(found: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        s["Sid"]: s
        for s in found
        if s.get("Sid")
        in {"ReadServingStack", "DescribeEndpoints", "DescribeEndpointConfigs", "DescribeScalableTargets"}
    }


def assert_check_grants(found: list[dict[str, Any]], settings, *, record: bool) -> None:
    by_sid = check_statements(found)
    granted = {a for s in by_sid.values() for a in actions_of(s)} - {"cloudformation:DescribeStacks"}
    assert granted == (endpoint_check.RECORD_ACTIONS if record else endpoint_check.CHECK_ACTIONS)
    assert rendered(by_sid["ReadServingStack"]["Resource"]).endswith(f":stack/{settings.name}-Serving/*")
    names = Names(project="mlops", environment=settings.name)
    endpoints = sorted(rendered(r).split(":endpoint/", 1)[1] for r in resources_of(by_sid["DescribeEndpoints"]))
    assert endpoints == sorted(names.resource(key).lower() for key in settings.serving.endpoints)
    assert rendered(by_sid["DescribeEndpointConfigs"]["Resource"]).endswith(":endpoint-config/*")
    if record:
        assert by_sid["DescribeScalableTargets"]["Resource"] == "*"  # no resource types (service authorization)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_the_deployment_function_may_run_the_check_and_nothing_more(synthesized, platform_config, environment):
    resources = synthesized.template_json(environment, "monitoring")["Resources"]
    found = statements(resources, "ApprovalPathDeploymentFunctionRole")

    assert_check_grants(found, platform_config.environment(environment), record=False)
    assert not any(a.startswith("application-autoscaling:") for s in found for a in actions_of(s))


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_each_environment_lets_only_its_stage_s_deploy_check_build_read_its_endpoints(
    synthesized, platform_config, environment
):
    resources = synthesized.template_json(environment, "serving")["Resources"]
    names = Names(project="mlops", environment=environment)
    [(role_key, role)] = [
        (key, r)
        for key, r in of_type(resources, "AWS::IAM::Role").items()
        if r["Properties"].get("RoleName") == deploy_check_role_name(names)
    ]
    found = [
        s
        for p in of_type(resources, "AWS::IAM::Policy").values()
        if {"Ref": role_key} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]

    [trust] = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"AWS": f"arn:aws:iam::{TOOLING}:root"}
    assert trust["Condition"] == {
        "ArnEquals": {
            "aws:PrincipalArn": f"arn:aws:iam::{TOOLING}:role/{pipeline_deploy_check_role_name('mlops', environment)}"
        }
    }
    assert len(found) == 4
    assert_check_grants(found, platform_config.environment(environment), record=True)


# -- where the pipeline runs it -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def pipeline_resources(synthesized) -> dict[str, Any]:
    stack = synthesized.stages["dev"].node.root.node.find_child("Pipeline")
    return json.loads((synthesized.outdir / stack.template_file).read_text())["Resources"]


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_stage_checks_its_deploy_after_its_stacks_and_before_the_smoke_test(
    pipeline_resources, synthesized, platform_config, environment
):
    check = action(pipeline_resources, environment, "DeployCheck")
    deploys = [
        a for a in stage(pipeline_resources, environment)["Actions"] if a["ActionTypeId"]["Category"] == "Deploy"
    ]
    project = project_of(pipeline_resources, check)
    variables = {v["Name"]: v["Value"] for v in project["Environment"]["EnvironmentVariables"]}
    spec = json.loads(project["Source"]["BuildSpec"])
    settings = platform_config.environment(environment)
    stack = synthesized.stages[environment].serving.stack_name

    assert check["RunOrder"] > max(a["RunOrder"] for a in deploys)
    assert spec["phases"]["build"]["commands"] == [
        f"python -m mlops_platform.cli check-deploy --environment {environment} --stack {stack} "
        f"--prefix mlops-{environment} --region {settings.region}"
    ]
    role_arn = (
        f":iam::{settings.account}:role/{deploy_check_role_name(Names(project='mlops', environment=environment))}"
    )
    assert rendered(variables["DEPLOY_CHECK_ROLE_ARN"]).endswith(role_arn)
    # The check reads the repository's record: its input is the source.
    assert check["InputArtifacts"] == action(pipeline_resources, "Build", "Synth")["InputArtifacts"]
    if environment == "staging":
        assert action(pipeline_resources, "staging", "SmokeTest")["RunOrder"] > check["RunOrder"]


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_each_deploy_check_build_may_assume_only_its_environment_s_role(
    pipeline_resources, platform_config, environment
):
    [role_key] = [
        key
        for key, role in of_type(pipeline_resources, "AWS::IAM::Role").items()
        if role["Properties"].get("RoleName") == pipeline_deploy_check_role_name("mlops", environment)
    ]
    assume = [
        s
        for p in of_type(pipeline_resources, "AWS::IAM::Policy").values()
        if {"Ref": role_key} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if "sts:AssumeRole" in json.dumps(s["Action"])
    ]
    account = platform_config.environment(environment).account

    [statement] = assume
    assert rendered(statement["Resource"]).endswith(f":iam::{account}:role/mlops-{environment}-deploy-check")


# -- one lock, one stack name --------------------------------------------------------------------------


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_promote_locks_the_stack_the_workflow_locks(synthesized, environment):
    resources = synthesized.template_json(environment, "monitoring")["Resources"]
    variables = function_environment(resources, "ApprovalPathDeploymentFunction")

    assert serving_stack_name(environment) == synthesized.stages[environment].serving.stack_name
    assert variables["SERVING_STACK_NAME"] == serving_stack_name(environment)


def test_the_makefile_s_deploy_runs_the_check_after_cdk_deploy():
    import subprocess

    result = subprocess.run(
        ["make", "--no-print-directory", "-n", "deploy", "ENV=dev"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "MAKEFLAGS": ""},
        check=True,
    )
    lines = [line for line in result.stdout.splitlines() if line.strip()]

    assert lines[-2].endswith('deploy "dev/*" -c environments=dev')
    assert lines[-1].endswith("mlops check-deploy --environment dev")


# -- the approval path's deployment steps, on the synthesized stack ------------------------------------


class Routed:
    """One SageMaker client for the steps: model packages from a Stubber (moto's lack the approval fields),
    endpoints and endpoint configs from moto."""

    def __init__(self, moto: Any, stubbed: Any) -> None:
        self._moto, self._stubbed = moto, stubbed

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stubbed if name == "describe_model_package" else self._moto, name)


@pytest.mark.parametrize("served", [True, False], ids=["the endpoint runs the deploy", "a guardrail rolled it back"])
def test_the_deployment_steps_judge_the_synthesized_stack_by_its_endpoint(dev, served):
    from tests.conftest import create_ledger_table

    deployed, stack = dev
    pointer = "/mlops/dev/models/example/Champion"
    package_arn = f"arn:aws:sagemaker:{deployed.region}:{deployed.account}:model-package/mlops-dev-example-xgboost/2"
    model_data = "s3://artifacts-zone/artifacts/runs/example/run-2/models/job/output/model.tar.gz"
    [parameter] = [key for key, value in deployed.template["Parameters"].items() if value.get("Default") == pointer]
    ssm, dynamodb, sns = (boto3.client(name, region_name=deployed.region) for name in ("ssm", "dynamodb", "sns"))
    ssm.put_parameter(Name=pointer, Value="example", Type="String", Description="the example model")
    create_ledger_table("ledger", deployed.region)
    topic = sns.create_topic(Name="notifications")["TopicArn"]
    packages = boto3.client("sagemaker", region_name=deployed.region)
    packages_stub = Stubber(packages)
    packages_stub.add_response(
        "describe_model_package",
        {
            "ModelPackageName": "mlops-dev-example-xgboost",
            "ModelPackageArn": package_arn,
            "CreationTime": NOW,
            "ModelPackageStatus": "Completed",
            "ModelPackageStatusDetails": {"ValidationStatuses": []},
            "ModelApprovalStatus": "Approved",
        },
        {"ModelPackageName": package_arn},
    )
    steps = Steps(
        cloudformation=deployed.cloudformation,
        ssm=ssm,
        dynamodb=dynamodb,
        sagemaker=Routed(deployed.sagemaker, packages),
        sns=sns,
        settings=Settings.from_environment(
            {
                "ENVIRONMENT": "dev",
                "PACKAGE_GROUP_PREFIX": "mlops-dev",
                "SERVING_STACK_NAME": stack,
                "LEDGER_TABLE": "ledger",
                "TOPIC_ARN": topic,
                "LOCK_SECONDS": "3600",
            }
        ),
    )
    request = {
        "package_arn": package_arn,
        "endpoint": "example",
        "variant": "Champion",
        "pointer": pointer,
        "model_data": model_data,
        "tenant": "example",
        "model": "xgboost",
        "share": 100.0,
    }

    def described(resolved: str) -> None:
        deployed.stub.add_response(
            "describe_stacks",
            {
                "Stacks": [
                    {
                        "StackName": stack,
                        "CreationTime": NOW,
                        "StackStatus": "UPDATE_COMPLETE",
                        "Parameters": [
                            {"ParameterKey": parameter, "ParameterValue": pointer, "ResolvedValue": resolved}
                        ],
                    }
                ]
            },
            {"StackName": stack},
        )

    deployed.apply("1")
    described("example")
    with deployed.stub, packages_stub:
        assert steps.run({"step": "acquire", "execution": "example-v2-0", "request": request})["status"] == "ready"
    deployed.apply("2", serve=served)  # the build's change set: the stack completes either way
    described(model_data)
    deployed.answer(stack)

    with deployed.stub:
        result = steps.run({"step": "settle", "execution": "example-v2-0", "request": request, "build": {}})

    deployed.stub.assert_no_pending_responses()
    value = ssm.get_parameter(Name=pointer)["Parameter"]["Value"]
    if served:
        assert result["status"] == "deployed"
        assert value == model_data
    else:
        assert result["status"] == "reverted"
        assert "runs endpoint config" in result["reason"]
        assert value == "example"  # restored
