"""The project's bootstrap (bootstrap/): the deploy role reads the model pointers, and the execution role is
least privilege. Both files are checked against what they derive from: the pinned CLI's template and the
synthesized stacks of every environment and the delivery pipeline.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
from typing import Any

import pytest
import yaml

from config.naming import Names
from mlops_constructs.model_pointers import pointer_name
from mlops_platform.cli.bootstrap import policy_name
from scripts import bootstrap_template, execution_policy
from tests.conftest import ROOT
from tests.iam_policy import allows, matches, resolve_sub
from tests.infra.conftest import ENVIRONMENTS, STACKS

TEMPLATE = ROOT / "bootstrap" / bootstrap_template.TEMPLATE_FILE
POLICY = ROOT / "bootstrap" / execution_policy.POLICY_FILE
SSM_TYPED = "AWS::SSM::Parameter::Value<"
QUALIFIER = "hnb659fds"  # the default, as the app's synthesizer and mlops_constructs/approval_deploy.py use


@pytest.fixture(scope="module")
def cdk_template_text() -> str:
    """CDK's own template, printed by the pinned CLI offline (as `make bootstrap-template` does)."""
    return bootstrap_template.cdk_bootstrap_template()


@pytest.fixture(scope="module")
def shipped_template_text() -> str:
    return TEMPLATE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def policy() -> dict[str, Any]:
    return json.loads(POLICY.read_text(encoding="utf-8"))


def deploy_role_statements(template: dict[str, Any], account: str, region: str) -> list[dict[str, Any]]:
    """The deploy role's statements with their Fn::Sub resources resolved for one account and region."""
    variables = {
        "AWS::Partition": "aws",
        "AWS::Region": region,
        "AWS::AccountId": account,
        "CdkBootstrapVersion": f"/cdk-bootstrap/{QUALIFIER}/version",  # the Ref of that SSM parameter resource
        "CloudFormationExecutionRole.Arn": (
            f"arn:aws:iam::{account}:role/cdk-{QUALIFIER}-cfn-exec-role-{account}-{region}"
        ),
        "StagingBucket.Arn": f"arn:aws:s3:::cdk-{QUALIFIER}-assets-{account}-{region}",
    }
    return [
        {**statement, "Resource": resolve_sub(statement["Resource"], variables)}
        for statement in bootstrap_template.deploy_role_statements(template)
    ]


def ssm_typed_parameters(synthesized, environment: str) -> dict[str, str]:
    """Logical id -> parameter name of every SSM-typed parameter in the environment's stacks."""
    found = {}
    for stack in STACKS:
        for logical_id, parameter in synthesized.template_json(environment, stack).get("Parameters", {}).items():
            if parameter["Type"].startswith(SSM_TYPED):
                found[f"{stack}/{logical_id}"] = parameter["Default"]
    return found


def parameter_arn(settings, name: str) -> str:
    return f"arn:aws:ssm:{settings.region}:{settings.account}:parameter{name}"


# ---- the deploy role and the model pointers (issue 13, point 1) ----


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_the_deploy_role_can_read_every_ssm_parameter_the_stacks_declare(
    synthesized, platform_config, shipped_template_text, environment
):
    settings = platform_config.environment(environment)
    names = Names(project=platform_config.project.name, environment=environment)
    parameters = ssm_typed_parameters(synthesized, environment)
    statements = deploy_role_statements(yaml.safe_load(shipped_template_text), settings.account, settings.region)

    # Not vacuous: Serving declares a pointer for every configured variant (and the bootstrap version).
    declared_pointers = {
        pointer_name(names, endpoint, variant.name)
        for endpoint, config in settings.serving.endpoints.items()
        for variant in config.variants
    }
    assert declared_pointers
    assert declared_pointers <= set(parameters.values())
    unreadable = {
        key: name
        for key, name in parameters.items()
        if not allows(statements, "ssm:GetParameters", parameter_arn(settings, name))
    }
    assert unreadable == {}


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_cdks_own_template_cannot_read_the_pointers(synthesized, platform_config, cdk_template_text, environment):
    """Why the project ships its own template: with CDK's, every deploy of Serving fails (aws/aws-cdk#20959)."""
    settings = platform_config.environment(environment)
    statements = deploy_role_statements(yaml.safe_load(cdk_template_text), settings.account, settings.region)
    parameters = ssm_typed_parameters(synthesized, environment)

    readable = {
        name for name in parameters.values() if allows(statements, "ssm:GetParameters", parameter_arn(settings, name))
    }
    assert readable == {f"/cdk-bootstrap/{QUALIFIER}/version"}


def test_the_added_statement_reads_the_pointers_and_nothing_wider(
    platform_config, cdk_template_text, shipped_template_text
):
    project = platform_config.project.name
    account, region = "111111111111", "eu-west-1"
    ours = deploy_role_statements(yaml.safe_load(shipped_template_text), account, region)
    cdks = deploy_role_statements(yaml.safe_load(cdk_template_text), account, region)
    pointers = [f"/{project}/dev/models/example/Champion", f"/{project}/prod/models/acme-xgboost/Challenger"]
    others = [
        f"/{project}/dev/settings",
        f"/{project}/dev/model",
        f"/{project}x/dev/models/example/Champion",
        "/other/dev/models/example/Champion",
        "/models/example/Champion",
    ]
    actions = ["ssm:GetParameters", "ssm:GetParameter", "ssm:GetParametersByPath", "ssm:PutParameter", "ssm:*"]
    ssm = f"arn:aws:ssm:{region}:{account}:parameter"

    gained = {
        (action, name)
        for action in actions
        for name in pointers + others
        if allows(ours, action, ssm + name) and not allows(cdks, action, ssm + name)
    }
    assert gained == {("ssm:GetParameters", name) for name in pointers}
    # Pointers in another account or region stay out of reach.
    assert not allows(ours, "ssm:GetParameters", f"arn:aws:ssm:{region}:222222222222:parameter{pointers[0]}")
    assert not allows(ours, "ssm:GetParameters", f"arn:aws:ssm:us-east-1:{account}:parameter{pointers[0]}")


def test_the_template_is_cdks_for_the_pinned_cli_plus_the_pointer_statement(
    platform_config, cdk_template_text, shipped_template_text
):
    project = platform_config.project.name
    version = bootstrap_template.pinned_cli_version()

    # The file is what `make bootstrap-template` makes of the pinned CLI's template: a CLI upgrade without
    # regenerating fails here.
    assert shipped_template_text == bootstrap_template.with_pointer_statement(cdk_template_text, project, version), (
        "bootstrap/template.yaml is not the pinned CLI's template plus the pointer statement: run "
        "`make bootstrap-template`"
    )
    # Line by line, comments aside, it only adds the statement.
    ours = [line for line in shipped_template_text.splitlines() if not line.lstrip().startswith("#")]
    diff = list(difflib.unified_diff(cdk_template_text.splitlines(), ours, lineterm="", n=0))
    removed = [line for line in diff if line.startswith("-") and not line.startswith("---")]
    added = [line[1:].strip() for line in diff if line.startswith("+") and not line.startswith("+++")]
    assert removed == []
    assert added == [
        "- Sid: ReadModelPointers",
        "Effect: Allow",
        "Action:",
        "- ssm:GetParameters",
        "Resource:",
        f"- Fn::Sub: arn:${{AWS::Partition}}:ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter/{project}/*/models/*",
    ]
    # Parsed, it is CDK's template once that statement is taken out.
    parsed = yaml.safe_load(shipped_template_text)
    policy_document = parsed["Resources"]["DeploymentActionRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    policy_document["Statement"] = [s for s in policy_document["Statement"] if s.get("Sid") != "ReadModelPointers"]
    assert parsed == yaml.safe_load(cdk_template_text)


def test_the_generator_refuses_a_cdk_template_it_does_not_recognise(platform_config, cdk_template_text):
    without_anchor = cdk_template_text.replace("- Sid: ReadVersion", "- Sid: ReadTheVersion")

    with pytest.raises(bootstrap_template.BootstrapTemplateError, match="ReadVersion"):
        bootstrap_template.with_pointer_statement(without_anchor, platform_config.project.name, "2.0.0")


# ---- the CloudFormation execution policy (issue 17, point 3) ----


@pytest.fixture(scope="module")
def stacks(synthesized) -> list[execution_policy.StackTemplate]:
    found = list(execution_policy.stack_templates(synthesized.outdir))
    # Every environment's stacks and the delivery pipeline's.
    assert len(found) == len(ENVIRONMENTS) * len(STACKS) + 1
    return found


def test_the_execution_policy_is_the_one_derived_from_the_synthesized_stacks(synthesized, platform_config, policy):
    assert policy == execution_policy.derive(synthesized.outdir, platform_config.project.name), (
        "bootstrap/execution-policy.json is out of step with the stacks: run `make bootstrap-template`"
    )


# Resource types whose CloudFormation handlers declare no permissions (legacy types): what they call, from
# the service's API reference.
LEGACY_TYPE_ACTIONS = {
    "AWS::CodeBuild::Project": ["codebuild:CreateProject", "codebuild:UpdateProject", "codebuild:DeleteProject"],
    "AWS::CDK::Metadata": [],  # CloudFormation handles it itself
}


def test_the_execution_policy_covers_every_resource_the_stacks_declare(stacks, policy):
    """Every action CloudFormation's handlers declare for each resource, on that resource (IAM: the stacks' own)."""
    statements = policy["Statement"]
    role = "arn:aws:iam::111111111111:role/dev-Serving-AnyRole-1A2B3C4D5E6F"
    managed_policy = "arn:aws:iam::111111111111:policy/dev-Ingestion-AnyPolicy-1A2B3C4D5E6F"
    service_linked_role = (
        "arn:aws:iam::111111111111:role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/AnyRole"
    )
    uncovered = set()
    for stack in stacks:
        for resource in stack.template["Resources"].values():
            resource_type = resource["Type"]
            if resource_type.startswith("Custom::"):
                needed = {"lambda:InvokeFunction"}  # CloudFormation invokes the provider function
            elif resource_type in LEGACY_TYPE_ACTIONS:
                needed = set(LEGACY_TYPE_ACTIONS[resource_type])
            else:
                needed = execution_policy.handler_permissions(resource_type, stack.region)
                assert needed, f"{resource_type} declares no handler permissions: add it to LEGACY_TYPE_ACTIONS"
            for action in sorted(needed - set(execution_policy.EXCLUDED_IAM)):
                if action in ("iam:AttachRolePolicy", "iam:DetachRolePolicy"):
                    continue  # allowed per attached policy: the next test
                if action == "iam:CreateServiceLinkedRole":
                    target = service_linked_role
                elif action.startswith("iam:"):
                    target = managed_policy if resource_type == "AWS::IAM::ManagedPolicy" else role
                else:
                    target = "arn:aws:anyservice:eu-west-1:111111111111:any/resource"
                context = {"iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"}
                if not allows(statements, action, target, context):
                    uncovered.add((resource_type, action))
    assert uncovered == set()


def test_service_linked_roles_only_for_the_services_the_stacks_use_and_connections_under_both_prefixes(policy):
    statements = policy["Statement"]
    role = "arn:aws:iam::111111111111:role/aws-service-role/{service}/AnyRole"
    for service in ("sagemaker.application-autoscaling.amazonaws.com", "inspector2.amazonaws.com"):
        assert allows(
            statements, "iam:CreateServiceLinkedRole", role.format(service=service), {"iam:AWSServiceName": service}
        )
    other = "elasticmapreduce.amazonaws.com"
    assert not allows(
        statements, "iam:CreateServiceLinkedRole", role.format(service=other), {"iam:AWSServiceName": other}
    )
    connection = "arn:aws:codeconnections:eu-west-1:111111111111:connection/abc"
    assert allows(statements, "codeconnections:PassConnection", connection)


def _generated_name(stack: str, logical_id: str) -> str:
    """How CloudFormation names an unnamed resource: <stack name>-<logical id>-<suffix> (Name type docs)."""
    return f"{stack}-{logical_id}"[:51] + "-1A2B3C4D5E6F"


def test_the_execution_policy_may_manage_every_role_and_managed_policy_of_the_stacks(stacks, policy):
    statements = policy["Statement"]
    denied = []
    for stack in stacks:
        for logical_id, resource in stack.template["Resources"].items():
            properties = resource.get("Properties", {})
            path = properties.get("Path", "/")
            if resource["Type"] == "AWS::IAM::Role":
                name = properties.get("RoleName") or _generated_name(stack.name, logical_id)
                assert len(name) <= 64, name
                role = f"arn:aws:iam::111111111111:role{path}{name}"
                for action in ("iam:CreateRole", "iam:PutRolePolicy", "iam:TagRole", "iam:PassRole", "iam:DeleteRole"):
                    if not allows(statements, action, role):
                        denied.append((action, role))
                for managed in properties.get("ManagedPolicyArns", []):
                    arn = execution_policy._literal_arn(managed, logical_id)
                    if not allows(statements, "iam:AttachRolePolicy", role, {"iam:PolicyARN": arn}):
                        denied.append(("iam:AttachRolePolicy", arn))
            elif resource["Type"] == "AWS::IAM::ManagedPolicy":
                name = properties.get("ManagedPolicyName") or _generated_name(stack.name, logical_id)
                arn = f"arn:aws:iam::111111111111:policy{path}{name}"
                for action in ("iam:CreatePolicy", "iam:CreatePolicyVersion", "iam:DeletePolicy"):
                    if not allows(statements, action, arn):
                        denied.append((action, arn))
    assert denied == []


def test_the_execution_policy_leads_nowhere_near_account_admin(platform_config, policy):
    statements = policy["Statement"]
    account = "111111111111"
    iam = f"arn:aws:iam::{account}"
    itself = f"{iam}:policy/{policy_name(platform_config.project.name)}"
    bootstrap_roles = [f"{iam}:role/cdk-{QUALIFIER}-{kind}-role-{account}-eu-west-1" for kind in ("cfn-exec", "deploy")]
    dev_role = f"{iam}:role/dev-Serving-ScoringApiRole-1A2B3C4D5E6F"
    admin = "arn:aws:iam::aws:policy/AdministratorAccess"

    for statement in statements:
        for action in statement["Action"]:
            assert action != "*"
            assert action.split(":")[0] not in execution_policy.RESTRICTED or not action.endswith("*"), action
    probes = [
        ("iam:CreatePolicyVersion", itself, {}),
        ("iam:SetDefaultPolicyVersion", itself, {}),
        *[
            (action, role, {})
            for role in bootstrap_roles
            for action in ("iam:PutRolePolicy", "iam:UpdateAssumeRolePolicy")
        ],
        ("iam:AttachRolePolicy", bootstrap_roles[0], {"iam:PolicyARN": admin}),
        ("iam:AttachRolePolicy", dev_role, {"iam:PolicyARN": admin}),
        ("iam:AttachRolePolicy", dev_role, {"iam:PolicyARN": itself}),
        ("iam:DeleteRolePermissionsBoundary", dev_role, {}),
        ("iam:CreateRole", f"{iam}:role/admin", {}),
        ("iam:CreateRole", f"{iam}:role/mlops-admin", {}),
        ("iam:PassRole", f"{iam}:role/admin", {}),
        ("iam:CreateUser", f"{iam}:user/someone", {}),
        ("iam:CreateAccessKey", f"{iam}:user/someone", {}),
        ("iam:CreatePolicy", f"{iam}:policy/anything", {}),
        ("sts:AssumeRole", bootstrap_roles[1], {}),
        ("cloudformation:UpdateStack", f"arn:aws:cloudformation:eu-west-1:{account}:stack/dev-Serving/x", {}),
        ("cloudformation:CreateStack", f"arn:aws:cloudformation:eu-west-1:{account}:stack/other/x", {}),
        ("organizations:LeaveOrganization", "*", {}),
    ]
    allowed = [
        (action, resource) for action, resource, context in probes if allows(statements, action, resource, context)
    ]
    assert allowed == []


def test_the_execution_policy_fits_a_managed_policy(policy):
    assert len("".join(execution_policy.compact(policy).split())) <= execution_policy.MAX_POLICY_CHARACTERS


def test_the_derivation_refuses_a_resource_of_an_unknown_service(tmp_path, synthesized, platform_config):
    planted = tmp_path / "assembly"
    manifest = {
        "version": "55.0.0",
        "artifacts": {
            "Planted": {
                "type": "aws:cloudformation:stack",
                "environment": "aws://111111111111/eu-west-1",
                "properties": {"templateFile": "Planted.template.json", "stackName": "dev-Planted"},
            }
        },
    }
    planted.mkdir()
    (planted / "manifest.json").write_text(json.dumps(manifest))
    template = {"Resources": {"Cache": {"Type": "AWS::ElastiCache::CacheCluster", "Properties": {}}}}
    (planted / "Planted.template.json").write_text(json.dumps(template))

    with pytest.raises(execution_policy.ExecutionPolicyError, match=r"AWS::ElastiCache::CacheCluster"):
        execution_policy.derive(planted, platform_config.project.name)


# ---- what the platform's own roles reach (issue 17, point 3) ----

READ_ONLY_CLOUDFORMATION = ("cloudformation:Describe", "cloudformation:Get", "cloudformation:List")
# Roles outside their own stack that the platform's roles may assume, and why. Their reach is the bootstrap's:
# the deploy role changes stacks only through the execution role, bounded by bootstrap/execution-policy.json.
ASSUMABLE_ELSEWHERE = {
    "*:role/cdk-hnb659fds-*-role-*": "CDK Pipelines publishes assets and deploys through the bootstrap roles",
    "arn:aws:iam::*:role/mlops-*-smoke-test": "the pipeline's smoke test assumes the staging role made for it",
    "arn:aws:iam::*:role/mlops-*-deploy-check": "the pipeline's deploy check assumes the read-only role each "
    "environment's Serving stack makes for it (DescribeEndpoint, GetTemplate; mlops_constructs/deploy_check.py)",
}


# Roles that change another stack of their environment, and only that one: the approval path deploys
# <env>-Serving from <env>-Monitoring through roles of its own (mlops_constructs/approval_deploy.py).
# (stack suffix, role logical id prefix) -> the stack suffix it may change, and the one service it passes
# that stack's roles to.
DEPLOYS_ANOTHER_STACK = {
    ("-Monitoring", "ApprovalPathDeployRole"): ("-Serving", None),
    ("-Monitoring", "ApprovalPathServingExecutionRole"): ("-Serving", "sagemaker.amazonaws.com"),
}


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _text(value: Any) -> str:
    """An ARN as a template writes it, the partition resolved (anything else stays a token)."""
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join("aws" if part == {"Ref": "AWS::Partition"} else _text(part) for part in parts)
    return value if isinstance(value, str) else json.dumps(value)


def _deploy_target(stack: str, resource: dict[str, Any]) -> tuple[str, str | None] | None:
    """The stack a policy's role may change, and the service it may pass that stack's roles to, if it is one
    of DEPLOYS_ANOTHER_STACK."""
    roles = [role.get("Ref", "") for role in resource.get("Properties", {}).get("Roles", [])]
    for (suffix, prefix), (target, service) in DEPLOYS_ANOTHER_STACK.items():
        if stack.endswith(suffix) and roles and all(role.startswith(prefix) for role in roles):
            return stack.removesuffix(suffix) + target, service
    return None


def _only_the_target(targets: list[Any], target: str, kind: str) -> bool:
    patterns = {
        "stack": [
            rf"arn:aws:cloudformation:[^:]+:\d+:stack/{target}/\*",
            r"arn:aws:cloudformation:[^:]+:\d+:changeSet/promotion-\*/\*",
        ],
        "role": [rf"arn:aws:iam::\d+:role/{target}-\*"],
    }[kind]
    return all(any(re.fullmatch(pattern, _text(value)) for pattern in patterns) for value in targets)


def _policy_documents(resource: dict[str, Any]) -> list[dict[str, Any]]:
    properties = resource.get("Properties", {})
    if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        return [properties["PolicyDocument"]]
    if resource["Type"] == "AWS::IAM::Role":
        return [policy["PolicyDocument"] for policy in properties.get("Policies", [])]
    return []


def _own_role(target: Any, resources: dict[str, Any], stack_name: str = "") -> bool:
    if isinstance(target, str) and stack_name:
        # The generated names of some of this stack's roles: CloudFormation names them <stack name>-<logical id>-…
        # (mlops_constructs/tenant_job_roles.py); the logical ID's start must be one of the template's roles.
        match = re.fullmatch(rf"arn:aws:iam::\d{{12}}:role/{re.escape(stack_name)}-([A-Za-z0-9]+)\*", target)
        return match is not None and any(
            lid.startswith(match.group(1)) for lid, r in resources.items() if r["Type"] == "AWS::IAM::Role"
        )
    return (
        isinstance(target, dict)
        and "Fn::GetAtt" in target
        and resources.get(target["Fn::GetAtt"][0], {}).get("Type") == "AWS::IAM::Role"
    )


def _assumable_elsewhere(target: Any, statement: dict[str, Any]) -> bool:
    text = target if isinstance(target, str) else json.dumps(target)
    # CDK Pipelines' self-mutation names the bootstrap roles by their tag instead of their name.
    by_tag = "aws-cdk:bootstrap-role" in json.dumps(statement.get("Condition", {}))
    return by_tag or any(matches(pattern, text) for pattern in ASSUMABLE_ELSEWHERE)


def reach_beyond_own_stack(stacks: list[execution_policy.StackTemplate]) -> list[str]:
    """Every grant of a platform role on IAM, STS or CloudFormation that goes beyond its own stack."""
    findings = []
    for stack in stacks:
        resources = stack.template["Resources"]
        for logical_id, resource in resources.items():
            deploys = _deploy_target(stack.name, resource)
            for document in _policy_documents(resource):
                for statement in document["Statement"]:
                    targets = _listed(statement["Resource"])
                    condition = json.dumps(statement.get("Condition", {}))
                    for action in _listed(statement["Action"]):
                        where = f"{stack.name}/{logical_id}: {action}"
                        service = action.split(":")[0]
                        wildcard = action == "*" or (
                            service in ("iam", "sts", "cloudformation") and action.endswith("*")
                        )
                        writes_stacks = service == "cloudformation" and not action.startswith(READ_ONLY_CLOUDFORMATION)
                        if (
                            writes_stacks
                            and not wildcard
                            and deploys
                            and _only_the_target(targets, deploys[0], "stack")
                        ):
                            continue
                        if wildcard or writes_stacks:
                            findings.append(where)
                        elif action == "iam:PassRole":
                            passed_to_target = (
                                deploys is not None
                                and deploys[1] is not None
                                and _only_the_target(targets, deploys[0], "role")
                                and f'"iam:PassedToService": "{deploys[1]}"' in condition
                            )
                            if not passed_to_target and not all(
                                _own_role(target, resources, stack.name) for target in targets
                            ):
                                findings.append(f"{where} on a role of another stack")
                            if "iam:PassedToService" not in condition:
                                findings.append(f"{where} to any service")
                        elif service == "iam":
                            findings.append(where)
                        elif action == "sts:AssumeRole":
                            findings.extend(
                                f"{where} {json.dumps(target)}"
                                for target in targets
                                if not _own_role(target, resources) and not _assumable_elsewhere(target, statement)
                            )
    return findings


def test_no_role_the_platform_creates_reaches_iam_or_cloudformation_beyond_its_stack(stacks):
    assert reach_beyond_own_stack(stacks) == []


def test_the_reach_check_reports_a_role_that_manages_iam(stacks):
    stack = copy.deepcopy(next(s for s in stacks if s.name == "dev-Serving"))
    policy = next(r for r in stack.template["Resources"].values() if r["Type"] == "AWS::IAM::Policy")
    policy["Properties"]["PolicyDocument"]["Statement"].append(
        {"Effect": "Allow", "Action": ["iam:PutRolePolicy", "sts:AssumeRole"], "Resource": "arn:aws:iam::1:role/x"}
    )

    findings = reach_beyond_own_stack([stack])

    assert len(findings) == 2
    assert findings[0].endswith("iam:PutRolePolicy")


def test_the_reach_check_reports_a_deploy_role_that_changes_a_stack_it_does_not_deploy(stacks):
    stack = copy.deepcopy(next(s for s in stacks if s.name == "dev-Monitoring"))
    resources = stack.template["Resources"]
    [policy] = [
        r
        for r in resources.values()
        if r["Type"] == "AWS::IAM::Policy" and r["Properties"]["Roles"][0]["Ref"].startswith("ApprovalPathDeployRole")
    ]
    policy["Properties"]["PolicyDocument"]["Statement"].append(
        {
            "Effect": "Allow",
            "Action": "cloudformation:CreateChangeSet",
            "Resource": "arn:aws:cloudformation:eu-west-1:111111111111:stack/dev-Training/*",
        }
    )

    assert reach_beyond_own_stack([stack]) == [
        "dev-Monitoring/"
        + next(lid for lid, r in resources.items() if r is policy)
        + ": cloudformation:CreateChangeSet"
    ]
