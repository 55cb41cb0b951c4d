"""The CloudFormation execution policy of the bootstrap: what CloudFormation may do when it deploys the platform.

``cdk bootstrap --cloudformation-execution-policies`` attaches it to the bootstrap execution role
(``cdk-<qualifier>-cfn-exec-role-<account>-<region>``) instead of CDK's default, ``AdministratorAccess``.
It is derived from the synthesized templates of every environment and the delivery pipeline, so one
document serves every account (environments may share an account; each bootstrap would otherwise
overwrite the other's):

* ``PlatformServices``: ``<service>:*`` for each service whose resources the stacks declare. Resource-level
  limits there would need every generated name and every action's resource type, and would break on the
  next property a stack sets. These services grant no IAM identity permissions, but several take resource
  policies (S3 bucket, KMS key, Lambda, SQS, SNS, ECR, DynamoDB), so whoever may deploy through the deploy
  role may still open a resource of those services to another principal: the deploy role is an
  administrator's tool, and who may assume it is the boundary.
* ``ResourceHandlerDependencies``: the exact actions on other services that CloudFormation's resource
  handlers of those types declare (their registry schemas, as cfn-lint ships them).
* IAM, the way to account admin, only on the platform's own roles and managed policies: names CloudFormation
  generates (``<stack name>-<logical id>-<suffix>``, https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-name.html)
  or the names the templates set. Managed policies attach only when they are the ones the stacks attach.
  Service-linked roles may be created only for the services whose resources the stacks declare.
* ``ReadStackOutputs``: ``cloudformation:DescribeStacks`` on the stacks whose outputs another stack reads with
  ``Fn::GetStackOutput`` (the producers only, never every stack).

What stays wider, and why: a role the stacks create may carry any inline policy a template gives it, so
whoever may deploy a template through the deploy role may still create a prefixed role with broad rights.
Only a permissions boundary on every role closes that (CDK's ``@aws-cdk/core:permissionsBoundary``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

POLICY_FILE = "execution-policy.json"
# Managed policies allow 6,144 characters, whitespace not counted (IAM User Guide, "IAM and AWS STS quotas":
# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html).
MAX_POLICY_CHARACTERS = 6144
# CloudFormation namespace -> IAM service prefix (Service Authorization Reference).
SERVICE_PREFIXES = {
    "ApiGateway": "apigateway",
    "ApplicationAutoScaling": "application-autoscaling",
    "Athena": "athena",
    "CloudWatch": "cloudwatch",
    "CodeBuild": "codebuild",
    "CodePipeline": "codepipeline",
    "DynamoDB": "dynamodb",
    "ECR": "ecr",
    "Events": "events",
    "Glue": "glue",
    "KMS": "kms",
    "Lambda": "lambda",
    "Logs": "logs",
    "S3": "s3",
    "SNS": "sns",
    "SQS": "sqs",
    "SageMaker": "sagemaker",
    "StepFunctions": "states",
}
# CDK's analytics resource: CloudFormation itself handles it, with no IAM action.
NO_PERMISSIONS = {"AWS::CDK::Metadata"}
# Services the policy never opens as a whole: IAM is granted statement by statement below; the others lead
# to other accounts, other stacks or other identities.
RESTRICTED = {"iam", "sts", "organizations", "cloudformation"}
ROLE_ACTIONS = (
    "iam:CreateRole",
    "iam:DeleteRole",
    "iam:GetRole",
    "iam:UpdateRole",
    "iam:UpdateRoleDescription",
    "iam:UpdateAssumeRolePolicy",
    "iam:TagRole",
    "iam:UntagRole",
    "iam:PutRolePolicy",
    "iam:GetRolePolicy",
    "iam:DeleteRolePolicy",
    "iam:ListRolePolicies",
    "iam:ListAttachedRolePolicies",
    "iam:PassRole",
)
ATTACH_ACTIONS = ("iam:AttachRolePolicy", "iam:DetachRolePolicy")
POLICY_ACTIONS = (
    "iam:CreatePolicy",
    "iam:DeletePolicy",
    "iam:GetPolicy",
    "iam:GetPolicyVersion",
    "iam:CreatePolicyVersion",
    "iam:DeletePolicyVersion",
    "iam:ListPolicyVersions",
    "iam:ListEntitiesForPolicy",
)
SERVICE_LINKED_ROLE_ACTIONS = ("iam:CreateServiceLinkedRole",)
# IAM actions the resource handlers declare that the policy leaves out, and why.
EXCLUDED_IAM = {
    "iam:PutRolePermissionsBoundary": "the stacks set no permissions boundary; changing one is how a role escapes it",
    "iam:DeleteRolePermissionsBoundary": "the stacks set no permissions boundary, and removing one frees a role",
    **{
        f"iam:{verb}{principal}Policy": "the stacks give policies to roles only, never to users or groups"
        for verb in ("Attach", "Detach", "Put", "Delete", "Get")
        for principal in ("User", "Group")
    },
}
# Handlers CloudFormation runs for a stack operation; ``list`` serves resource discovery, not deploys.
STACK_HANDLERS = ("create", "read", "update", "delete")
IAM = "arn:aws:iam::*"


class ExecutionPolicyError(Exception):
    """A template the policy cannot cover as it is: one sentence naming the resource and what to do."""


@dataclass(frozen=True)
class StackTemplate:
    name: str
    region: str
    template: dict[str, Any]


def stack_templates(outdir: Path) -> Iterator[StackTemplate]:
    """Every stack of the assembly and its nested (Stage) assemblies, with its deployed name and region."""
    manifest = json.loads((outdir / "manifest.json").read_text())
    for artifact_id, artifact in manifest.get("artifacts", {}).items():
        properties = artifact.get("properties", {})
        if artifact["type"] == "aws:cloudformation:stack":
            template = json.loads((outdir / properties["templateFile"]).read_text())
            region = artifact["environment"].rsplit("/", 1)[-1]
            yield StackTemplate(properties.get("stackName", artifact_id), region, template)
        elif artifact["type"] == "cdk:cloud-assembly":
            yield from stack_templates(outdir / properties["directoryName"])


def handler_permissions(resource_type: str, region: str) -> set[str]:
    """The IAM actions CloudFormation's handlers of a registry resource type declare (none for legacy types)."""
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

    schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema(region, resource_type).schema
    handlers = schema.get("handlers") or {}
    return {action for name in STACK_HANDLERS for action in handlers.get(name, {}).get("permissions", [])}


def service_prefix(resource_type: str, where: str) -> str:
    namespace = resource_type.split("::")[1]
    if namespace not in SERVICE_PREFIXES:
        raise ExecutionPolicyError(
            f"{where}: resource type {resource_type} belongs to no service the execution policy knows; add "
            f"AWS::{namespace} to SERVICE_PREFIXES in scripts/execution_policy.py if it may be deployed"
        )
    return SERVICE_PREFIXES[namespace]


def _literal_arn(value: Any, where: str) -> str:
    """A managed policy ARN as the templates write it (a string, or Join with the partition), for partition aws."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and set(value) == {"Fn::Join"}:
        separator, parts = value["Fn::Join"]
        return separator.join(_literal_arn(part, where) for part in parts)
    if value == {"Ref": "AWS::Partition"}:
        return "aws"
    raise ExecutionPolicyError(f"{where}: a managed policy ARN the execution policy cannot read: {json.dumps(value)}")


@dataclass
class _Inventory:
    """What the stacks need: service prefixes, other services' actions, IAM actions and names, stack names."""

    services: set[str] = field(default_factory=set)
    dependencies: set[str] = field(default_factory=set)
    iam_actions: set[str] = field(default_factory=set)
    roles: set[str] = field(default_factory=set)
    policies: set[str] = field(default_factory=set)
    attached: set[str] = field(default_factory=set)
    stacks: set[str] = field(default_factory=set)
    producers: set[str] = field(default_factory=set)
    service_linked: set[str] = field(default_factory=set)


# The service-linked roles a resource type makes its service create, by the service name IAM's
# ``iam:AWSServiceName`` condition key compares (https://docs.aws.amazon.com/IAM/latest/UserGuide/using-service-linked-roles.html).
SERVICE_LINKED_ROLES = {
    "AWS::DynamoDB::GlobalTable": "replication.dynamodb.amazonaws.com",
    "AWS::ECR::RegistryScanningConfiguration": "inspector2.amazonaws.com",
}


def _service_linked_role(resource_type: str, properties: dict[str, Any]) -> str | None:
    if resource_type == "AWS::ApplicationAutoScaling::ScalableTarget":
        # https://docs.aws.amazon.com/autoscaling/application/userguide/application-auto-scaling-service-linked-roles.html
        return f"{properties.get('ServiceNamespace', 'sagemaker')}.application-autoscaling.amazonaws.com"
    return SERVICE_LINKED_ROLES.get(resource_type)


# The environments whose names appear in fixed role names (config/schema.py's ENVIRONMENT_NAMES; this
# build-time tool reads the templates, not the config).
ENVIRONMENTS = ("dev", "staging", "prod")


def _per_environment(arns: set[str]) -> list[str]:
    """The ARNs, with names that differ only in an environment part (``mlops-dev-deploy-check``,
    ``mlops-staging-deploy-check``, ``mlops-prod-deploy-check``) as one pattern (``mlops-*-deploy-check``)
    when every environment has one: the same roles in fewer characters, since the policy must fit IAM's
    6,144. Names CloudFormation generates (``<stack>-*``) already end in a wildcard and stay as they are.
    """
    groups: dict[str, set[str]] = {}
    for arn in arns:
        prefix, _, name = arn.rpartition("/")
        parts = name.split("-")
        for index, part in enumerate(parts):
            if part in ENVIRONMENTS and not name.endswith("*"):
                pattern = "-".join([*parts[:index], "*", *parts[index + 1 :]])
                groups.setdefault(f"{prefix}/{pattern}", set()).add(arn)
                break
    merged = set(arns)
    for pattern, members in groups.items():
        if len(members) == len(ENVIRONMENTS):
            merged = (merged - members) | {pattern}
    return sorted(merged)


def _stack_outputs_read(node: Any) -> set[str]:
    """The stack names of every ``Fn::GetStackOutput`` in a template (CloudFormation reads their outputs with
    the execution role: https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/intrinsic-function-reference-getstackoutput.html)."""
    if isinstance(node, list):
        return set().union(*(_stack_outputs_read(item) for item in node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found = set().union(*(_stack_outputs_read(value) for value in node.values())) if node else set()
    reference = node.get("Fn::GetStackOutput")
    if isinstance(reference, dict):
        name = reference.get("StackName")
        if not isinstance(name, str):
            raise ExecutionPolicyError(f"an Fn::GetStackOutput names its stack by {json.dumps(name)}, not a name")
        found.add(name)
    return found


def _inventory(outdir: Path) -> _Inventory:
    found = _Inventory()
    for stack in stack_templates(outdir):
        found.stacks.add(stack.name)
        found.producers.update(_stack_outputs_read(stack.template))
        resources = stack.template.get("Resources", {})
        for logical_id, resource in resources.items():
            resource_type = resource["Type"]
            properties = resource.get("Properties", {})
            where = f"{stack.name}/{logical_id}"
            if linked := _service_linked_role(resource_type, properties):
                found.service_linked.add(linked)
            if resource_type in NO_PERMISSIONS:
                continue
            if resource_type.startswith("Custom::") or resource_type == "AWS::CloudFormation::CustomResource":
                token = properties.get("ServiceToken", {})
                target = resources.get(token.get("Fn::GetAtt", [None])[0], {}) if isinstance(token, dict) else {}
                if target.get("Type") != "AWS::Lambda::Function":
                    raise ExecutionPolicyError(
                        f"{where}: custom resource {resource_type} is not served by a Lambda function of its stack"
                    )
                found.services.add("lambda")  # CloudFormation invokes the provider function
                continue
            for action in handler_permissions(resource_type, stack.region):
                service = action.split(":")[0]
                if service == "iam":
                    found.iam_actions.add(action)
                elif service in RESTRICTED:
                    raise ExecutionPolicyError(
                        f"{where}: {resource_type}'s handlers need {action}; review it before granting it"
                    )
                else:
                    found.dependencies.add(action)
            if resource_type.startswith("AWS::IAM::"):
                _iam_resource(found, stack.name, resource_type, properties, where)
            else:
                found.services.add(service_prefix(resource_type, where))
    found.dependencies = {action for action in found.dependencies if action.split(":")[0] not in found.services}
    # The handlers' schemas predate the CodeConnections rename; a connection made since has a codeconnections
    # ARN, and IAM matches the action's prefix with the resource's (https://docs.aws.amazon.com/dtconsole/latest/userguide/rename.html).
    if "codestar-connections:PassConnection" in found.dependencies:
        found.dependencies.add("codeconnections:PassConnection")
    return found


def _iam_resource(found: _Inventory, stack: str, resource_type: str, properties: dict[str, Any], where: str) -> None:
    path = properties.get("Path", "/")
    if resource_type == "AWS::IAM::Role":
        name = properties.get("RoleName")
        if name is not None and not isinstance(name, str):
            raise ExecutionPolicyError(f"{where}: RoleName must be a literal for the execution policy to name it")
        found.roles.add(f"{IAM}:role{path}{name}" if name else f"{IAM}:role{path}{stack}-*")
        found.attached.update(_literal_arn(arn, where) for arn in properties.get("ManagedPolicyArns", []))
    elif resource_type == "AWS::IAM::ManagedPolicy":
        name = properties.get("ManagedPolicyName")
        if name is not None and not isinstance(name, str):
            raise ExecutionPolicyError(f"{where}: ManagedPolicyName must be a literal for the execution policy")
        found.policies.add(f"{IAM}:policy{path}{name}" if name else f"{IAM}:policy{path}{stack}-*")
    elif resource_type != "AWS::IAM::Policy":  # an inline policy: PutRolePolicy on its roles
        raise ExecutionPolicyError(f"{where}: the execution policy grants no IAM rights for {resource_type}")


def derive(outdir: Path, project: str) -> dict[str, Any]:
    """The policy document for every stack in the cloud assembly ``outdir``."""
    found = _inventory(outdir)
    granted = set(ROLE_ACTIONS) | set(ATTACH_ACTIONS) | set(POLICY_ACTIONS) | set(SERVICE_LINKED_ROLE_ACTIONS)
    missing = sorted(found.iam_actions - granted - set(EXCLUDED_IAM))
    if missing:
        raise ExecutionPolicyError(
            f"the resource handlers need {', '.join(missing)}; grant or exclude them in scripts/execution_policy.py"
        )
    local_policies = {arn for arn in found.attached if not arn.startswith("arn:aws:iam::aws:policy/")}
    if local_policies:
        raise ExecutionPolicyError(
            f"roles attach customer managed policies by ARN ({', '.join(sorted(local_policies))}); "
            "the execution policy allows only AWS managed ones and the stacks' own"
        )
    statements: list[dict[str, Any]] = [
        {
            "Sid": "PlatformServices",
            "Effect": "Allow",
            "Action": sorted(f"{service}:*" for service in found.services),
            "Resource": "*",
        }
    ]
    if found.dependencies:
        statements.append(
            {
                "Sid": "ResourceHandlerDependencies",
                "Effect": "Allow",
                "Action": sorted(found.dependencies),
                "Resource": "*",
            }
        )
    statements.append(
        {
            "Sid": "StackRoles",
            "Effect": "Allow",
            "Action": list(ROLE_ACTIONS),
            "Resource": _per_environment(found.roles),
        }
    )
    statements.append(
        {
            "Sid": "StackRolesManagedPolicies",
            "Effect": "Allow",
            "Action": list(ATTACH_ACTIONS),
            "Resource": _per_environment(found.roles),
            "Condition": {"ArnLike": {"iam:PolicyARN": sorted(found.attached | found.policies)}},
        }
    )
    if found.policies:
        statements.append(
            {
                "Sid": "StackManagedPolicies",
                "Effect": "Allow",
                "Action": list(POLICY_ACTIONS),
                "Resource": sorted(found.policies),
            }
        )
    statements.append(
        {
            "Sid": "ServiceLinkedRoles",
            "Effect": "Allow",
            "Action": list(SERVICE_LINKED_ROLE_ACTIONS),
            "Resource": f"{IAM}:role/aws-service-role/*",
            "Condition": {"StringEquals": {"iam:AWSServiceName": sorted(found.service_linked)}},
        }
    )
    statements.append(
        {
            "Sid": "ReadStackOutputs",
            "Effect": "Allow",
            "Action": ["cloudformation:DescribeStacks"],
            "Resource": sorted(f"arn:aws:cloudformation:*:*:stack/{name}/*" for name in found.producers),
        }
    )
    document = {"Version": "2012-10-17", "Statement": statements}
    size = len("".join(compact(document).split()))
    if size > MAX_POLICY_CHARACTERS:
        raise ExecutionPolicyError(
            f"the execution policy of project {project} has {size} characters; a managed policy allows "
            f"{MAX_POLICY_CHARACTERS}: split it in two policies (--cloudformation-execution-policies takes a list)"
        )
    return document


def compact(document: dict[str, Any]) -> str:
    """The document as IAM receives it."""
    return json.dumps(document, separators=(",", ":"))


def render(document: dict[str, Any]) -> str:
    """The committed file: indented, so a change to the stacks shows as a readable diff."""
    return json.dumps(document, indent=2) + "\n"
