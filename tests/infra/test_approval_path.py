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
    BUILD_SCRIPT,
    CHANGE_SET_PREFIX,
    build_timeout_minutes,
)
from mlops_constructs.approval_path import endpoints_document, new_variant_document
from scripts.execution_policy import _stack_outputs_read as stack_outputs_read
from tests.conftest import ROOT
from tests.iam_policy import allows
from tests.infra.test_training import EVENTS, function_environment, of_type, rendered

STACK = "monitoring"
SAMPLE = json.loads((EVENTS / "sagemaker_model_package_state_change.json").read_text())
API_CALL = json.loads((EVENTS / "cloudtrail_update_model_package.json").read_text())
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


def rule_named(resources: dict[str, Any], prefix: str) -> dict[str, Any]:
    [rule] = [r for lid, r in of_type(resources, "AWS::Events::Rule").items() if lid.startswith(prefix)]
    return rule


def approval_pattern(resources: dict[str, Any]) -> dict[str, Any]:
    rule = rule_named(resources, "ApprovalPathApprovalRule")
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


@pytest.mark.parametrize("prefix", ["ApprovalPathApprovalRule", "ApprovalPathApproverRule"])
def test_the_rules_deliver_to_the_approval_function_with_retries_and_a_dead_letter_queue(resources, prefix):
    rule = rule_named(resources, prefix)
    [target] = rule["Properties"]["Targets"]

    assert "EventBusName" not in rule["Properties"]  # CloudTrail's records reach the default bus only
    assert target["Arn"]["Fn::GetAtt"][0].startswith("ApprovalPathApprovalFunction")
    assert target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0].startswith("ApprovalPathDeadLetterQueue")
    assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0


def approving_call(environment: str, account: str, **detail: Any) -> dict[str, Any]:
    """The unit tests' CloudTrail record of an approving UpdateModelPackage, in ``account``."""
    event = copy.deepcopy(API_CALL)
    group = detail.pop("group", f"mlops-{environment}-acme-xgboost")
    event["account"] = event["detail"]["recipientAccountId"] = account
    event["detail"]["requestParameters"]["modelPackageArn"] = (
        f"arn:aws:sagemaker:eu-west-1:{account}:model-package/{group}/3"
    )
    event["detail"].update(detail)
    return event


def test_the_approver_rule_matches_successful_approvals_of_this_environment_s_packages_only(
    resources, environment, settings
):
    resolved_pattern = rule_named(resources, "ApprovalPathApproverRule")["Properties"]["EventPattern"]
    other = "prod" if environment != "prod" else "dev"
    rejected = approving_call(environment, settings.account)
    rejected["detail"]["requestParameters"]["modelApprovalStatus"] = "Rejected"

    assert matches(resolved_pattern, approving_call(environment, settings.account))
    assert not matches(
        resolved_pattern, approving_call(environment, settings.account, errorCode="AccessDeniedException")
    )
    assert not matches(resolved_pattern, approving_call(environment, settings.account, eventName="CreateModelPackage"))
    assert not matches(
        resolved_pattern, approving_call(environment, settings.account, group=f"mlops-{other}-acme-xgboost")
    )
    assert not matches(resolved_pattern, rejected)


def test_the_approval_function_knows_the_environment_s_approvers(resources, settings, environment):
    variables = function_environment(resources, "ApprovalPathApprovalFunction")

    approvers = [arn for arn in variables["APPROVER_ROLE_ARNS"].split(",") if arn]
    assert approvers == list(settings.approval.approver_role_arns)
    assert bool(approvers) == (environment == "prod")


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


# -- the deploy project (issue 17, point 3: no path to account admin) -------------------------------


def resolved(value: Any, resources: dict[str, Any]) -> Any:
    """A policy value with the partition resolved and references to the template's roles as ``role:<logical id>``."""
    if isinstance(value, list):
        return [resolved(item, resources) for item in value]
    if isinstance(value, str):
        return value
    if value == {"Ref": "AWS::Partition"}:
        return "aws"
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(resolved(part, resources) for part in parts)
    if "Fn::GetAtt" in value:
        return f"role:{value['Fn::GetAtt'][0]}"
    if "Fn::GetStackOutput" in value:
        return f"output:{value['Fn::GetStackOutput']['OutputName']}"
    if "Ref" in value:
        return f"ref:{value['Ref']}"
    raise ValueError(f"cannot resolve {value!r}")


def role_statements(resources: dict[str, Any], role_prefix: str) -> list[dict[str, Any]]:
    return [
        {**statement, "Resource": resolved(statement["Resource"], resources)}
        for statement in statements(resources, role_prefix)
    ]


def role_id(resources: dict[str, Any], prefix: str) -> str:
    [found] = [lid for lid in of_type(resources, "AWS::IAM::Role") if lid.startswith(prefix)]
    return found


def test_the_deploy_project_deploys_through_roles_of_its_own_never_the_bootstrap_roles(resources, settings):
    found = role_statements(resources, "ApprovalPathDeployRole")
    account, region = settings.account, settings.region
    execution = f"role:{role_id(resources, 'ApprovalPathServingExecutionRole')}"
    serving = f"arn:aws:cloudformation:{region}:{account}:stack/{settings.name}-Serving/x"
    bootstrap = [
        f"arn:aws:iam::{account}:role/cdk-{BOOTSTRAP_QUALIFIER}-{kind}-role-{account}-{region}"
        for kind in (
            "deploy",
            "cfn-exec",
        )
    ]

    assert not any(action.startswith("sts:") for s in found for action in actions_of(s))
    assert allows(found, "cloudformation:CreateChangeSet", serving)
    assert allows(
        found,
        "cloudformation:ExecuteChangeSet",
        f"arn:aws:cloudformation:{region}:{account}:changeSet/{CHANGE_SET_PREFIX}x/y",
    )
    for action in ("cloudformation:UpdateStack", "cloudformation:DeleteStack", "cloudformation:CreateStack"):
        assert not allows(found, action, serving), action
    other = f"arn:aws:cloudformation:{region}:{account}:stack/{settings.name}-Training/x"
    assert not allows(found, "cloudformation:CreateChangeSet", other)
    passing = {"iam:PassedToService": "cloudformation.amazonaws.com"}
    assert allows(found, "iam:PassRole", execution, passing)
    assert not any(allows(found, "iam:PassRole", role, passing) for role in bootstrap)
    the_role = resources[role_id(resources, "ApprovalPathDeployRole")]["Properties"]
    [trust] = the_role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "codebuild.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": account}}


def pointer_dependents(serving: dict[str, Any]) -> dict[str, str]:
    """The Serving stack's resources a pointer change reaches (through Ref and GetAtt): logical id -> type."""

    def referenced(value: Any) -> set[str]:
        if isinstance(value, dict):
            found = set()
            for key, item in value.items():
                if key == "Ref" and isinstance(item, str):
                    found.add(item)
                elif key == "Fn::GetAtt":
                    found.add(item[0])
                else:
                    found |= referenced(item)
            return found
        if isinstance(value, list):
            return set().union(*(referenced(item) for item in value))
        return set()

    reached = {name for name in serving["Parameters"] if "Pointer" in name}
    growing = True
    while growing:
        growing = False
        for logical_id, resource in serving["Resources"].items():
            if logical_id not in reached and referenced(resource.get("Properties", {})) & reached:
                reached.add(logical_id)
                growing = True
    return {lid: serving["Resources"][lid]["Type"] for lid in reached if lid in serving["Resources"]}


# A pointer change replaces models and endpoint configs (create the new, delete the old) and updates the named
# endpoints in place (AWS::SageMaker::Endpoint's EndpointConfigName: "Update requires: No interruption").
UPDATED_IN_PLACE = {"AWS::SageMaker::Endpoint"}


def handler_permissions(resource_type: str, region: str) -> set[str]:
    """The actions CloudFormation's handlers of ``resource_type`` declare for what a pointer change does to it."""
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

    handlers = PROVIDER_SCHEMA_MANAGER.get_resource_schema(region, resource_type).schema["handlers"]
    used = ("update", "read") if resource_type in UPDATED_IN_PLACE else ("create", "read", "update", "delete")
    return {action for name in used for action in handlers.get(name, {}).get("permissions", [])}


def test_the_execution_role_may_do_what_a_pointer_change_needs(synthesized, resources, settings, environment):
    serving = synthesized.template_json(environment, "serving")
    found = role_statements(resources, "ApprovalPathServingExecutionRole")
    account, region, prefix = settings.account, settings.region, f"{settings.name}-Serving"
    dependents = pointer_dependents(serving)
    endpoint_names = [
        r["Properties"]["EndpointName"] for r in of_type(serving["Resources"], "AWS::SageMaker::Endpoint").values()
    ]
    assert {"AWS::SageMaker::Model", "AWS::SageMaker::EndpointConfig", "AWS::SageMaker::Endpoint"} <= set(
        dependents.values()
    )

    sagemaker = f"arn:aws:sagemaker:{region}:{account}"
    where = {
        "AWS::SageMaker::Model": [f"{sagemaker}:model/exampleendpointchallengermodel-abc"],
        "AWS::SageMaker::EndpointConfig": [f"{sagemaker}:endpoint-config/exampleendpointconfig-abc"],
        "AWS::SageMaker::Endpoint": [f"{sagemaker}:endpoint/{name}" for name in endpoint_names],
    }
    missing = []
    for resource_type in sorted(set(dependents.values())):
        if resource_type.startswith("Custom::"):
            function = f"arn:aws:lambda:{region}:{account}:function:{prefix}-WeightsProviderframeworkonEv-abc"
            if not allows(found, "lambda:InvokeFunction", function):
                missing.append((resource_type, "lambda:InvokeFunction"))
            continue
        for action in sorted(handler_permissions(resource_type, region)):
            if action == "iam:PassRole":
                target = f"arn:aws:iam::{account}:role/{prefix}-ExampleEndpointModelRoleA98-abc"
                granted = allows(found, action, target, {"iam:PassedToService": "sagemaker.amazonaws.com"})
            elif action.startswith("kms:"):
                granted = allows(
                    found,
                    action,
                    "output:PublishOutputFnGetAttPlatformKeyArnEA8A1853",
                    {"kms:ViaService": f"sagemaker.{region}.amazonaws.com"},
                )
            else:
                granted = all(allows(found, action, arn) for arn in where[resource_type])
            if not granted:
                missing.append((resource_type, action))
    assert missing == []


def test_the_execution_role_reaches_nothing_beyond_the_serving_stack(resources, settings):
    found = role_statements(resources, "ApprovalPathServingExecutionRole")
    account, region = settings.account, settings.region
    iam = f"arn:aws:iam::{account}"
    probes = [
        ("iam:CreateRole", f"{iam}:role/{settings.name}-Serving-admin"),
        ("iam:PutRolePolicy", f"{iam}:role/{settings.name}-Serving-ModelRole-abc"),
        ("iam:AttachRolePolicy", f"{iam}:role/{settings.name}-Serving-ModelRole-abc"),
        ("iam:PassRole", f"{iam}:role/cdk-{BOOTSTRAP_QUALIFIER}-cfn-exec-role-{account}-{region}"),
        ("iam:PassRole", f"{iam}:role/{settings.name}-Training-JobRole-abc"),
        ("sts:AssumeRole", f"{iam}:role/cdk-{BOOTSTRAP_QUALIFIER}-deploy-role-{account}-{region}"),
        ("cloudformation:UpdateStack", f"arn:aws:cloudformation:{region}:{account}:stack/{settings.name}-Serving/x"),
        ("sagemaker:UpdateEndpoint", f"arn:aws:sagemaker:{region}:{account}:endpoint/someone-elses"),
        ("sagemaker:CreateTrainingJob", f"arn:aws:sagemaker:{region}:{account}:training-job/x"),
        ("lambda:InvokeFunction", f"arn:aws:lambda:{region}:{account}:function:{settings.name}-Training-x"),
        ("lambda:UpdateFunctionCode", f"arn:aws:lambda:{region}:{account}:function:{settings.name}-Serving-x"),
        ("s3:GetObject", "arn:aws:s3:::anything/x"),
    ]
    context = {"iam:PassedToService": "sagemaker.amazonaws.com"}
    assert [(action, arn) for action, arn in probes if allows(found, action, arn, context)] == []
    the_role = resources[role_id(resources, "ApprovalPathServingExecutionRole")]["Properties"]
    [trust] = the_role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "cloudformation.amazonaws.com"}


def test_starting_the_deploy_project_with_another_buildspec_is_refused(resources):
    project_arn = "arn:aws:codebuild:eu-west-1:111111111111:project/deploy"
    override = {"codebuild:source.buildspec": "version: 0.2"}
    workflow_role = [lid for lid in of_type(resources, "AWS::IAM::Role") if lid.startswith("ApprovalPathWorkflowRole")]
    assert len(workflow_role) == 1
    workflow_statements = [
        {**s, "Resource": project_arn if "DeployProject" in json.dumps(s["Resource"]) else s["Resource"]}
        for s in statements(resources, "ApprovalPathWorkflowRole")
    ]
    assert allows(workflow_statements, "codebuild:StartBuild", project_arn)
    assert not allows(workflow_statements, "codebuild:StartBuild", project_arn, override)

    [guard] = [r for lid, r in of_type(resources, "AWS::IAM::ManagedPolicy").items() if "DeployGuard" in lid]
    people = [{"Effect": "Allow", "Action": "codebuild:*", "Resource": "*"}] + [
        {**s, "Resource": project_arn} for s in guard["Properties"]["PolicyDocument"]["Statement"]
    ]
    assert allows(people, "codebuild:StartBuild", project_arn)
    for action in ("codebuild:StartBuild", "codebuild:StartBuildBatch"):
        assert not allows(people, action, project_arn, override), action
    assert not allows(people, "codebuild:UpdateProject", project_arn)


def test_the_deploy_project_applies_the_previous_template_with_re_read_parameters(resources, settings):
    project = the_project(resources)
    variables = {v["Name"]: v["Value"] for v in project["Environment"]["EnvironmentVariables"]}
    buildspec = project["Source"]["BuildSpec"]

    assert project["Source"]["Type"] == "NO_SOURCE"
    assert variables["STACK_NAME"] == f"{settings.name}-Serving"
    assert variables["EXECUTION_ROLE_ARN"] == {
        "Fn::GetAtt": [role_id(resources, "ApprovalPathServingExecutionRole"), "Arn"]
    }
    for fragment in (
        "--use-previous-template",
        "UsePreviousValue=true",
        '--role-arn \\"${EXECUTION_ROLE_ARN}\\"',
        "CAPABILITY_NAMED_IAM",
        "execute-change-set",
    ):
        assert fragment in buildspec, fragment
    assert "assume-role" not in buildspec
    assert project["TimeoutInMinutes"] == build_timeout_minutes(settings)
    assert project["ConcurrentBuildLimit"] == 1  # one deploy at a time, whoever starts it
    assert "PlatformKey" in json.dumps(project["EncryptionKey"])


def test_the_build_script_is_valid_bash():
    bash = shutil.which("bash")
    assert bash is not None
    result = subprocess.run([bash, "-n"], input=BUILD_SCRIPT, capture_output=True, text=True, check=False)

    assert result.returncode == 0, result.stderr


def test_the_deploy_role_covers_the_change_sets_the_workflow_names():
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
    assert "ApprovalPathDeployGuard" in json.dumps(outputs["PromotionDeployGuardArn"]["Value"])


def test_the_promotion_execution_role_reads_every_stack_whose_outputs_serving_reads(
    synthesized, resources, environment
):
    """Fn::GetStackOutput resolves with the stack's execution role at every update: a producer it cannot
    describe fails the promotion's change set (staging's Serving also reads Training's outputs)."""
    # The same walk the bootstrap's execution policy derives its DescribeStacks grant from.
    producers = stack_outputs_read(synthesized.template_json(environment, "serving"))
    [readable] = [
        s for s in statements(resources, "ApprovalPathServingExecutionRole") if s.get("Sid") == "ReadProducerOutputs"
    ]

    assert producers, "Serving reads no stack's outputs: the test would prove nothing"
    readable_stacks = {rendered(resource).split(":stack/")[1].split("/")[0] for resource in resources_of(readable)}
    assert actions_of(readable) == ["cloudformation:DescribeStacks"]
    assert producers <= readable_stacks, f"the promotion's execution role cannot read {producers - readable_stacks}"
