"""The approval path in the Monitoring stack: its rule, its deployment workflow, and who may deploy what."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from typing import Any

import pytest
from moto.events.models import EventPattern

from config.naming import Names
from mlops_constructs.approval_deploy import (
    BOOTSTRAP_QUALIFIER,
    CHANGE_SET_PREFIX,
    build_timeout_minutes,
    buildspec_script,
)
from mlops_constructs.approval_path import endpoints_document, new_variant_document
from tests.conftest import ROOT
from tests.infra.test_training import EVENTS, function_environment, of_type, rendered

STACK = "monitoring"
SAMPLE = json.loads((EVENTS / "sagemaker_model_package_state_change.json").read_text())
# CloudFormation actions that change a stack (anything but reading it).
CLOUDFORMATION_WRITE = re.compile(
    r"^cloudformation:(\*|Create|Update|Execute|Delete|Continue|Rollback|Set|Import|Signal|Cancel)", re.IGNORECASE
)


def statements(resources: dict[str, Any], role_prefix: str) -> list[dict[str, Any]]:
    """Every statement of the policies attached to the role whose logical id starts with ``role_prefix``."""
    [role_id] = [lid for lid in of_type(resources, "AWS::IAM::Role") if lid.startswith(role_prefix)]
    found = []
    for policy in of_type(resources, "AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            found.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return found


def actions_of(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else action


def resources_of(statement: dict[str, Any]) -> list[Any]:
    resource = statement["Resource"]
    return resource if isinstance(resource, list) else [resource]


def workflow(resources: dict[str, Any]) -> dict[str, Any]:
    [machine] = [
        r for lid, r in of_type(resources, "AWS::StepFunctions::StateMachine").items() if "ApprovalPath" in lid
    ]
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    return json.loads("".join(part if isinstance(part, str) else "TOKEN" for part in parts))["States"]


def the_project(resources: dict[str, Any]) -> dict[str, Any]:
    [project] = of_type(resources, "AWS::CodeBuild::Project").values()
    return project["Properties"]


# -- the rule -------------------------------------------------------------------------------------


def approval_pattern(resources: dict[str, Any]) -> dict[str, Any]:
    [rule] = [r for lid, r in of_type(resources, "AWS::Events::Rule").items() if lid.startswith("ApprovalPath")]
    assert "EventBusName" not in rule["Properties"]  # SageMaker's state changes reach the default bus only
    return rule["Properties"]["EventPattern"]


def package_event(group: str, status: str) -> dict[str, Any]:
    event = copy.deepcopy(SAMPLE)
    arn = f"arn:aws:sagemaker:eu-west-1:111111111111:model-package/{group}/2"
    event["detail"].update(ModelPackageGroupName=group, ModelPackageArn=arn, ModelApprovalStatus=status)
    return event


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    # moto 5.2.5's TestEventPattern API answers nothing; this is the matcher its buses route with.
    return EventPattern.load(json.dumps(pattern)).matches_event(event)


def test_the_rule_matches_the_documented_event_of_this_environment_s_groups_only(resources, environment):
    pattern = approval_pattern(resources)
    other = "prod" if environment != "prod" else "dev"

    assert matches(pattern, package_event(f"mlops-{environment}-acme-xgboost", "Approved"))
    assert matches(pattern, package_event(f"mlops-{environment}-acme-xgboost", "PendingManualApproval"))
    assert not matches(pattern, package_event(f"mlops-{environment}-acme-xgboost", "Rejected"))
    assert not matches(pattern, package_event(f"mlops-{other}-acme-xgboost", "Approved"))
    assert not matches(pattern, SAMPLE)  # the sample as printed: another group, Rejected


def test_the_rule_delivers_to_the_approval_function_with_retries_and_a_dead_letter_queue(resources):
    [rule] = [r for lid, r in of_type(resources, "AWS::Events::Rule").items() if lid.startswith("ApprovalPath")]
    [target] = rule["Properties"]["Targets"]

    assert target["Arn"]["Fn::GetAtt"][0].startswith("ApprovalPathApprovalFunction")
    assert target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0].startswith("ApprovalPathDeadLetterQueue")
    assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0


# -- the functions --------------------------------------------------------------------------------


def test_the_approval_function_knows_the_environment_s_endpoints_and_names(resources, settings, environment):
    variables = function_environment(resources, "ApprovalPathApprovalFunction")

    assert json.loads(variables["ENDPOINTS"]) == json.loads(endpoints_document(settings))
    assert set(json.loads(variables["ENDPOINTS"])) == set(settings.serving.endpoints)
    assert variables["PACKAGE_GROUP_PREFIX"] == f"mlops-{environment}"
    assert variables["POINTER_PREFIX"] == f"/mlops/{environment}/models/"
    assert variables["IGNORED_TENANTS"] == "example"
    assert variables["CONFIG_PREFIX"] == "artifacts/config/pipelines/"
    assert "ApprovalPathWorkflow" in json.dumps(variables["STATE_MACHINE_ARN"])


def test_both_functions_run_the_approval_folder_with_their_own_roles(resources):
    functions = {
        lid: r["Properties"]
        for lid, r in of_type(resources, "AWS::Lambda::Function").items()
        if lid.startswith(("ApprovalPathApprovalFunction", "ApprovalPathDeploymentFunction"))
    }

    assert sorted(f["Handler"] for f in functions.values()) == ["deployment.handler", "handler.handler"]
    assert len({json.dumps(f["Role"]) for f in functions.values()}) == 2


def test_no_lambda_function_of_any_stack_may_change_a_cloudformation_stack(synthesized, environment):
    for stack in ("foundation", "ingestion", "training", "serving", "monitoring"):
        resources = synthesized.template_json(environment, stack)["Resources"]
        lambda_roles = {
            lid
            for lid, role in of_type(resources, "AWS::IAM::Role").items()
            if "lambda.amazonaws.com" in json.dumps(role["Properties"]["AssumeRolePolicyDocument"])
        }
        for lid, policy in of_type(resources, "AWS::IAM::Policy").items():
            if not {ref.get("Ref") for ref in policy["Properties"]["Roles"]} & lambda_roles:
                continue
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                if statement["Effect"] == "Allow":
                    writes = [a for a in actions_of(statement) if CLOUDFORMATION_WRITE.match(a) or a == "*"]
                    assert writes == [], f"{stack}/{lid}"
                    assert "sts:AssumeRole" not in actions_of(statement), f"{stack}/{lid}"


def test_the_deployment_function_reads_the_serving_stack_and_writes_only_declared_pointers(resources, settings):
    found = statements(resources, "ApprovalPathDeploymentFunctionRole")
    names = Names(project="mlops", environment=settings.name)

    [describe] = [s for s in found if s.get("Sid") == "ReadServingStack"]
    # DescribeStacks to settle; the rest is the endpoint check (mlops_platform/registry/endpoint_check.py).
    assert sorted(actions_of(describe)) == [
        "cloudformation:DescribeStacks",
        "cloudformation:GetTemplate",
        "cloudformation:ListStackResources",
    ]
    assert rendered(describe["Resource"]).endswith(f":stack/{settings.name}-Serving/*")
    [pointers] = [s for s in found if s.get("Sid") == "WriteDeclaredPointers"]
    written = sorted(rendered(r).split(":parameter", 1)[1] for r in resources_of(pointers))
    declared = sorted(
        names.parameter("models", key, variant.name)
        for key, endpoint in settings.serving.endpoints.items()
        for variant in endpoint.variants
    )
    assert written == declared


def test_the_approval_function_may_not_write_a_pointer_the_serving_stack_reads(resources, settings):
    found = statements(resources, "ApprovalPathApprovalFunctionRole")

    [deny] = [s for s in found if s["Effect"] == "Deny"]
    assert actions_of(deny) == ["ssm:PutParameter"]
    [prepare] = [s for s in found if s.get("Sid") == "PrepareUnreadPointers"]
    assert rendered(prepare["Resource"]).endswith(f":parameter/mlops/{settings.name}/models/*")
    denied = {rendered(r).split(":parameter", 1)[1] for r in resources_of(deny)}
    assert denied == {
        f"/mlops/{settings.name}/models/{key}/{variant.name}"
        for key, endpoint in settings.serving.endpoints.items()
        for variant in endpoint.variants
    }
    assert not any("cloudformation" in json.dumps(s) for s in found)


# -- the deploy project ---------------------------------------------------------------------------


def test_the_deploy_project_may_only_assume_the_cdk_deploy_role(resources, settings):
    found = statements(resources, "ApprovalPathDeployRole")
    account, region = settings.account, settings.region

    assume = [s for s in found if "sts:AssumeRole" in actions_of(s)]
    assert len(assume) == 1
    assert assume[0]["Resource"] == (
        f"arn:aws:iam::{account}:role/cdk-{BOOTSTRAP_QUALIFIER}-deploy-role-{account}-{region}"
    )
    others = {action for s in found if s is not assume[0] for action in actions_of(s)}
    # Its own logs and the platform key for its build output; nothing that deploys or passes a role.
    assert {action.split(":")[0] for action in others} <= {"logs", "kms"}


def test_the_deploy_project_applies_the_previous_template_with_re_read_parameters(resources, settings):
    project = the_project(resources)
    variables = {v["Name"]: v["Value"] for v in project["Environment"]["EnvironmentVariables"]}
    buildspec = project["Source"]["BuildSpec"]

    assert project["Source"]["Type"] == "NO_SOURCE"
    assert variables["STACK_NAME"] == f"{settings.name}-Serving"
    assert variables["EXECUTION_ROLE_ARN"].endswith(
        f":role/cdk-{BOOTSTRAP_QUALIFIER}-cfn-exec-role-{settings.account}-{settings.region}"
    )
    for fragment in (
        "--use-previous-template",
        "UsePreviousValue=true",
        '--role-arn \\"${EXECUTION_ROLE_ARN}\\"',
        "CAPABILITY_NAMED_IAM",
        "aws sts assume-role",
        "execute-change-set",
    ):
        assert fragment in buildspec, fragment
    assert project["TimeoutInMinutes"] == build_timeout_minutes(settings)
    assert project["ConcurrentBuildLimit"] == 1  # one deploy at a time, whoever starts it
    assert "PlatformKey" in json.dumps(project["EncryptionKey"])


def test_the_build_script_is_valid_bash():
    bash = shutil.which("bash")
    assert bash is not None
    script = buildspec_script('{"Version":"2012-10-17","Statement":[]}')
    result = subprocess.run([bash, "-n"], input=script, capture_output=True, text=True, check=False)

    assert result.returncode == 0, result.stderr


def test_the_build_script_refuses_a_policy_that_would_break_its_quotes():
    with pytest.raises(ValueError, match="single quotes"):
        buildspec_script('{"Sid":"it\'s"}')


def build_session_policy(project: dict[str, Any]) -> dict[str, Any]:
    """The session policy the build script assumes the deploy role with, parsed from the template's buildspec."""
    buildspec = project["Source"]["BuildSpec"]
    assert isinstance(buildspec, str)  # account, region and partition are known at synth
    [script] = json.loads(buildspec)["phases"]["build"]["commands"]
    [policy] = re.findall(r"^session_policy='([^']*)'$", script, re.MULTILINE)
    # Every assumption, the first and the renewals, goes through the one function that passes it.
    assert script.count("aws sts assume-role") == 1
    assert '--policy "${session_policy}"' in script
    return json.loads(policy)


def test_the_deploy_role_is_assumed_with_a_session_policy_naming_only_the_serving_stack(resources, settings):
    account, region = settings.account, settings.region
    document = build_session_policy(the_project(resources))
    statements_by_sid = {s["Sid"]: s for s in document["Statement"]}

    assert len(json.dumps(document, separators=(",", ":"))) < 2048  # STS's limit for an inline session policy
    assert all(s["Effect"] == "Allow" for s in document["Statement"])
    assert set(statements_by_sid) == {"ServingStackChangeSets", "PassExecutionRole", "ReadStackParameters"}

    cloudformation = statements_by_sid["ServingStackChangeSets"]
    assert all(action.startswith("cloudformation:") for action in actions_of(cloudformation))
    assert "cloudformation:*" not in actions_of(cloudformation)
    assert {"cloudformation:CreateChangeSet", "cloudformation:ExecuteChangeSet"} <= set(actions_of(cloudformation))
    assert not {"cloudformation:UpdateStack", "cloudformation:DeleteStack"} & set(actions_of(cloudformation))
    assert resources_of(cloudformation) == [
        f"arn:aws:cloudformation:{region}:{account}:stack/{settings.name}-Serving/*",
        f"arn:aws:cloudformation:{region}:{account}:changeSet/{CHANGE_SET_PREFIX}*/*",
    ]

    passing = statements_by_sid["PassExecutionRole"]
    assert actions_of(passing) == ["iam:PassRole"]
    assert resources_of(passing) == [
        f"arn:aws:iam::{account}:role/cdk-{BOOTSTRAP_QUALIFIER}-cfn-exec-role-{account}-{region}"
    ]
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}}

    parameters = statements_by_sid["ReadStackParameters"]
    assert actions_of(parameters) == ["ssm:GetParameters"]
    assert resources_of(parameters) == [
        f"arn:aws:ssm:{region}:{account}:parameter/mlops/{settings.name}/models/*",
        f"arn:aws:ssm:{region}:{account}:parameter/cdk-bootstrap/{BOOTSTRAP_QUALIFIER}/version",
    ]


def test_the_session_policy_covers_the_change_sets_the_workflow_names():
    source = (ROOT / "mlops_platform" / "registry" / "deployment_settings.py").read_text()

    assert f'f"{CHANGE_SET_PREFIX}{{execution}}"' in source


# -- the workflow ---------------------------------------------------------------------------------


def test_the_workflow_waits_while_the_stack_is_busy_then_deploys(resources):
    states = workflow(resources)

    assert states["Start"]["Next"] == "Acquire"
    choices = {json.dumps(c, sort_keys=True): c["Next"] for c in states["Acquired"]["Choices"]}
    busy_and_counting = [
        c["Next"]
        for c in states["Acquired"]["Choices"]
        if "And" in c and {"Variable": "$.acquire.status", "StringEquals": "busy"} in c["And"]
    ]
    assert busy_and_counting == ["WaitForStack"]
    assert states["WaitForStack"]["Next"] == "CountStackWait"
    assert states["CountStackWait"]["Next"] == "Acquire"  # the loop
    assert "States.MathAdd($.waits.acquire, 1)" in json.dumps(states["CountStackWait"])
    assert any(next_ == "Deploy" and "ready" in key for key, next_ in choices.items())
    assert states["Acquired"]["Default"] == "Blocked"
    assert states["GiveUpWaitingForStack"]["Next"] == "StackStayedBusy"


def test_a_superseded_promotion_ends_the_workflow_without_deploying(resources):
    states = workflow(resources)

    [superseded] = [c for c in states["Acquired"]["Choices"] if c.get("StringEquals") == "superseded"]
    assert superseded["Variable"] == "$.acquire.status"
    assert states[superseded["Next"]]["Type"] == "Succeed"


def test_the_deploy_is_a_codebuild_build_that_the_workflow_waits_for(resources):
    deploy = workflow(resources)["Deploy"]

    assert deploy["Resource"].endswith(":states:::codebuild:startBuild.sync")
    assert deploy["Parameters"]["EnvironmentVariablesOverride"] == [
        {"Name": "CHANGE_SET_NAME", "Type": "PLAINTEXT", "Value.$": "$.acquire.change_set"}
    ]
    assert deploy["Next"] == "Settle"


def test_a_failed_deploy_or_step_is_settled_and_the_pointer_restored(resources):
    states = workflow(resources)

    for name in ("Acquire", "Deploy"):
        [catch] = states[name]["Catch"]
        assert (catch["ErrorEquals"], catch["Next"], catch["ResultPath"]) == (["States.ALL"], "Settle", "$.build")
    assert states["Settle"]["Parameters"]["step"] == "settle"
    assert states["Settle"]["Parameters"]["build.$"] == "$.build"
    settled = states["Settled"]
    assert {"Variable": "$.settle.status", "StringEquals": "deployed", "Next": "Deployed"} in settled["Choices"]
    assert settled["Default"] == "Reverted"
    assert states["Reverted"]["Type"] == "Fail"
    assert states["WaitForDeploy"]["Next"] == "CountDeployWait"
    assert states["CountDeployWait"]["Next"] == "Settle"


def test_the_lock_outlives_any_execution_that_holds_it(resources, settings):
    variables = function_environment(resources, "ApprovalPathDeploymentFunction")
    states = workflow(resources)
    [limit] = {
        condition["NumericLessThan"]
        for choice in ("Acquired", "Settled")
        for c in states[choice]["Choices"]
        for condition in c.get("And", [])
        if "NumericLessThan" in condition
    }
    wait_seconds = states["WaitForStack"]["Seconds"]

    longest_hold = 2 * limit * wait_seconds + build_timeout_minutes(settings) * 60
    assert int(variables["LOCK_SECONDS"]) > longest_hold
    assert variables["SERVING_STACK_NAME"] == f"{settings.name}-Serving"


def test_the_workflow_logs_everything_and_traces(resources):
    [machine] = [
        r for lid, r in of_type(resources, "AWS::StepFunctions::StateMachine").items() if "ApprovalPath" in lid
    ]

    assert machine["Properties"]["TracingConfiguration"] == {"Enabled": True}
    assert machine["Properties"]["LoggingConfiguration"]["Level"] == "ALL"


def test_stopped_or_timed_out_deployments_and_failing_steps_alarm(resources):
    alarms = [
        r["Properties"]
        for lid, r in of_type(resources, "AWS::CloudWatch::Alarm").items()
        if lid.startswith("ApprovalPath")
    ]

    descriptions = " ".join(a["AlarmDescription"] for a in alarms)
    assert len(alarms) == 4
    assert "timed out or was stopped by hand" in descriptions
    assert all("NotificationTopic" in json.dumps(a["AlarmActions"]) for a in alarms)


# -- the documents the functions get ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["dev", "prod"])
def test_a_new_variant_has_the_environment_s_defaults(platform_config, name):
    settings = platform_config.environment(name)

    flavour, instance_type, low, high, initial = json.loads(new_variant_document(settings))

    assert instance_type == settings.instance_types.inference
    assert flavour == "cpu"
    assert (low, initial) == ((2, 2) if settings.is_production else (1, 1))
    assert high >= low


def test_the_runbook_s_outputs_name_the_workflow_and_the_deploy_project(synthesized, environment):
    outputs = synthesized.template_json(environment, STACK)["Outputs"]

    assert "ApprovalPathWorkflow" in json.dumps(outputs["PromotionWorkflowArn"]["Value"])
    assert "ApprovalPathDeployProject" in json.dumps(outputs["PromotionDeployProjectName"]["Value"])
