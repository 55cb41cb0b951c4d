"""Every state machine's role against AWS's IAM policy for each service integration its definition uses.

The documented lists are kept here as data, each with the page it comes from; the test walks every
state machine of every stack and environment, finds the integrations in its definition (nested Map
and Parallel states included) and checks both ways: every documented action is granted (else the
call is denied at run time, which moto never shows), and nothing is granted in those services that
no integration of the definition needs (least privilege).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.infra.conftest import ENVIRONMENTS, STACKS

SAGEMAKER = "https://docs.aws.amazon.com/step-functions/latest/dg/sagemaker-iam.html"
LAMBDA = "https://docs.aws.amazon.com/step-functions/latest/dg/lambda-iam.html"
CODEBUILD = "https://docs.aws.amazon.com/step-functions/latest/dg/codebuild-iam.html"
AWS_SDK = "https://docs.aws.amazon.com/step-functions/latest/dg/supported-services-awssdk.html"
DISTRIBUTED_MAP = "https://docs.aws.amazon.com/step-functions/latest/dg/iam-policies-eg-dist-map.html"
WAIT_FOR_JOB = ("events:PutTargets", "events:PutRule", "events:DescribeRule")


def sagemaker_job(kind: str) -> dict[str, Any]:
    """SAGEMAKER, "Run a Job (.sync)": the job's Create/Describe/Stop, ListTags, PassRole of its role, the
    managed rule; and AddTags, with which .sync tags each job it starts (aws/aws-cdk#26012, #32294)."""
    return {
        "actions": {
            f"sagemaker:Create{kind}",
            f"sagemaker:Describe{kind}",
            f"sagemaker:Stop{kind}",
            "sagemaker:ListTags",
            "sagemaker:AddTags",
            "iam:PassRole",
            *WAIT_FOR_JOB,
        },
        "rule": f"StepFunctionsGetEventsForSageMaker{kind}sRule",
        "source": SAGEMAKER,
    }


# The integration, as the Task's Resource names it after ``arn:<partition>:states:::``.
DOCUMENTED: dict[str, dict[str, Any]] = {
    "sagemaker:createTrainingJob.sync": sagemaker_job("TrainingJob"),
    "sagemaker:createProcessingJob.sync": sagemaker_job("ProcessingJob"),
    "sagemaker:createTransformJob.sync": sagemaker_job("TransformJob"),
    "lambda:invoke": {"actions": {"lambda:InvokeFunction"}, "source": LAMBDA},
    # A Task whose Resource is the function's ARN (CDK's LambdaInvoke with payload_response_only).
    "lambda:function": {"actions": {"lambda:InvokeFunction"}, "source": LAMBDA},
    "codebuild:startBuild.sync": {
        # The page's policies list BatchGetReports too, in its first example.
        "actions": {
            "codebuild:StartBuild",
            "codebuild:StopBuild",
            "codebuild:BatchGetBuilds",
            "codebuild:BatchGetReports",
            *WAIT_FOR_JOB,
        },
        "rule": "StepFunctionsGetEventForCodeBuildStartBuildRule",
        "source": CODEBUILD,
    },
    # A Distributed Map starts child executions of its own state machine; reads its items, writes its results.
    "map:distributed": {
        "actions": {
            "states:StartExecution",
            "states:DescribeExecution",
            "states:StopExecution",
            "s3:GetObject",
            "s3:PutObject",
            "s3:ListMultipartUploadParts",
            "s3:AbortMultipartUpload",
        },
        "source": DISTRIBUTED_MAP,
    },
}
# Granted beyond the integrations' lists, each for a reason of this platform's own.
EXTRA = {
    # CreateModel with ModelPackageName reads the package (the Predict path's CreatePredictionModel).
    "sagemaker:DescribeModelPackage": "aws-sdk:sagemaker:createModel",
    # CDK's DistributedMap lets a redriven parent redrive its Map Run's children.
    "states:RedriveExecution": "map:distributed",
}
SERVICES = ("sagemaker", "events", "lambda", "codebuild", "states", "cloudwatch", "iam", "s3")
RESOURCE = re.compile(r":states:::(.+)$")
TOKEN = re.compile(r"<([A-Za-z0-9]+)(?:\.Arn)?>")


def documented(integration: str) -> dict[str, Any]:
    """An integration's documented actions; an AWS SDK integration needs its API's own IAM action (AWS_SDK)."""
    if integration.startswith("aws-sdk:"):
        _, service, api = integration.split(":")
        return {"actions": {f"{service}:{api[0].upper()}{api[1:]}"}, "source": AWS_SDK}
    return DOCUMENTED[integration]


def integrations_of(states: dict[str, Any], types: dict[str, str]) -> set[str]:
    """The integrations of a definition; ``types``: the template's resource types, to name a bare ARN's."""
    found = set()
    for state in states.values():
        resource = state.get("Resource", "")
        match, token = RESOURCE.search(resource), TOKEN.fullmatch(resource)
        if state["Type"] == "Task" and match:
            found.add(match.group(1))
        elif state["Type"] == "Task" and token and types.get(token.group(1)) == "AWS::Lambda::Function":
            found.add("lambda:function")
        elif state["Type"] == "Task":
            raise AssertionError(f"a Task with a resource this test does not know: {resource!r}")
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            if processor.get("ProcessorConfig", {}).get("Mode") == "DISTRIBUTED":
                found.add("map:distributed")
            found |= integrations_of(processor["States"], types)
        for branch in state.get("Branches", []):
            found |= integrations_of(branch["States"], types)
    return found


def rendered(part: Any) -> str:
    """A definition part: text as it is, a reference as ``<LogicalId>`` or ``<LogicalId.Arn>``."""
    if isinstance(part, str):
        return part
    if "Fn::GetAtt" in part:
        return f"<{part['Fn::GetAtt'][0]}.{part['Fn::GetAtt'][1]}>"
    if "Ref" in part:
        return f"<{part['Ref']}>"
    return "TOKEN"


def machines(template: dict[str, Any]) -> list[tuple[str, set[str], list[dict[str, Any]]]]:
    """(logical id, the integrations of its definition, the role's statements) of every state machine."""
    resources = template["Resources"]
    types = {logical_id: resource["Type"] for logical_id, resource in resources.items()}
    found = []
    for logical_id, machine in resources.items():
        if machine["Type"] != "AWS::StepFunctions::StateMachine":
            continue
        parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
        definition = json.loads("".join(rendered(part) for part in parts))
        role = machine["Properties"]["RoleArn"]["Fn::GetAtt"][0]
        statements = [
            statement
            for policy in resources.values()
            if policy["Type"] == "AWS::IAM::Policy" and {"Ref": role} in policy["Properties"]["Roles"]
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        ]
        found.append((logical_id, integrations_of(definition["States"], types), statements))
    return found


def listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@pytest.fixture(scope="module")
def state_machines(synthesized) -> list[tuple[str, str, str, set[str], list[dict[str, Any]]]]:
    return [
        (environment, stack, logical_id, integrations, statements)
        for environment in ENVIRONMENTS
        for stack in STACKS
        for logical_id, integrations, statements in machines(synthesized.template_json(environment, stack))
    ]


def test_every_stack_with_a_state_machine_is_covered(state_machines):
    covered = {(stack, logical_id.rstrip("0123456789ABCDEF")) for _, stack, logical_id, _, _ in state_machines}

    assert covered == {
        ("training", "PipelineStateMachine"),
        ("monitoring", "DriftMonitorStateMachine"),
        ("monitoring", "ApprovalPathWorkflow"),
        # CDK's custom-resource provider waits for the variant weights with a state machine of its own.
        ("serving", "WeightsProviderwaiterstatemachine"),
    }


def test_each_role_holds_every_action_aws_documents_for_its_integrations(state_machines):
    for environment, stack, logical_id, integrations, statements in state_machines:
        granted = {action.lower() for statement in statements for action in listed(statement["Action"])}
        for integration in sorted(integrations):
            policy = documented(integration)
            missing = {action for action in policy["actions"] if action.lower() not in granted}
            where = f"{environment}/{stack}/{logical_id} {integration} ({policy['source']})"
            assert not missing, f"{where}: missing {sorted(missing)}"
            if "rule" in policy:
                rules = [
                    json.dumps(statement["Resource"])
                    for statement in statements
                    if "events:PutRule" in listed(statement["Action"])
                ]
                assert any(policy["rule"] in rule for rule in rules), f"{where}: no grant on {policy['rule']}"


def test_no_role_holds_actions_in_those_services_that_no_integration_of_its_definition_needs(state_machines):
    for environment, stack, logical_id, integrations, statements in state_machines:
        allowed = {action.lower() for integration in integrations for action in documented(integration)["actions"]}
        allowed |= {action.lower() for action, needed_by in EXTRA.items() if needed_by in integrations}
        granted = {
            action.lower()
            for statement in statements
            for action in listed(statement["Action"])
            if action.split(":")[0] in SERVICES
        }
        # CloudWatch Logs delivery and X-Ray are the state machine's own, not an integration's.
        assert granted <= allowed, f"{environment}/{stack}/{logical_id}: beyond its integrations {granted - allowed}"


def test_the_integrations_the_platform_uses_are_the_ones_checked(state_machines):
    used = set().union(*(integrations for _, _, _, integrations, _ in state_machines))

    assert used == {
        "lambda:function",
        "sagemaker:createProcessingJob.sync",
        "sagemaker:createTrainingJob.sync",
        "sagemaker:createTransformJob.sync",
        "aws-sdk:sagemaker:createModel",
        "aws-sdk:cloudwatch:putMetricData",
        # The training run reads its tenant's job roles (mlops_constructs/tenant_job_roles.py).
        "aws-sdk:s3:getObject",
        "codebuild:startBuild.sync",
        "map:distributed",
    }
