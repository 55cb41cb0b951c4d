"""The approval path's deploy project: applies the Serving stack as deployed, so that it re-reads the model pointers.

A CodeBuild project with no source (docs/approval-path.md, "How the deploy runs"). It applies
``<env>-Serving`` with its *previous template* and every parameter ``UsePreviousValue``, so
CloudFormation re-reads the SSM-typed pointer parameters and nothing else changes (no synth, no
checkout, no assets). Its role may do one thing: assume the CDK bootstrap deploy role of this account
and region, which passes the bootstrap execution role to CloudFormation, as ``cdk deploy`` does. It
assumes it with a session policy (``session_policy``) that leaves the deploy role only what the build
does: change sets of the Serving stack, passing the execution role, reading the stack's SSM parameters.
"""

from __future__ import annotations

import json
import math

from aws_cdk import ArnFormat, DefaultStackSynthesizer, Duration, RemovalPolicy, Stack
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from config.naming import Names
from config.schema import EnvironmentConfig
from mlops_constructs.log_retention import encrypted_log_group
from mlops_constructs.nag import acknowledge, acknowledge_wildcard_resource
from mlops_constructs.variant_weights import TOTAL_TIMEOUT as WEIGHTS_TIMEOUT

# The CDK bootstrap's qualifier: the deploy project assumes cdk-<qualifier>-deploy-role-<account>-<region>.
# A custom qualifier (cdk bootstrap --qualifier) must be set here as in the app's synthesizer.
BOOTSTRAP_QUALIFIER = DefaultStackSynthesizer.DEFAULT_QUALIFIER
MAX_BUILD_MINUTES = 2160  # CodeBuild's longest build timeout
# The change sets the workflow names (lambda/approval/deployment.py, ``change_set_name``).
CHANGE_SET_PREFIX = "promotion-"


def deploy_role_arn(stack: Stack, qualifier: str = BOOTSTRAP_QUALIFIER) -> str:
    return f"arn:{stack.partition}:iam::{stack.account}:role/cdk-{qualifier}-deploy-role-{stack.account}-{stack.region}"


def execution_role_arn(stack: Stack, qualifier: str = BOOTSTRAP_QUALIFIER) -> str:
    return (
        f"arn:{stack.partition}:iam::{stack.account}:role/cdk-{qualifier}-cfn-exec-role-{stack.account}-{stack.region}"
    )


def session_policy(stack: Stack, *, stack_name: str, pointer_prefix: str, qualifier: str = BOOTSTRAP_QUALIFIER) -> str:
    """The inline session policy the build assumes the deploy role with, as compact JSON (``--policy``).

    The deploy role's own policy reaches every stack of the account, and through the administrator-level
    execution role anything at all; a session's permissions are the intersection of the role's and this
    policy's (IAM User Guide, "Session policies"). So the build may only read and change-set the Serving
    stack, pass the execution role (to CloudFormation only), and read the SSM parameters CloudFormation
    re-reads with the caller's rights: the model pointers (``pointer_prefix``) and the bootstrap version.
    """
    where = f"{stack.region}:{stack.account}"
    cloudformation = f"arn:{stack.partition}:cloudformation:{where}"
    ssm = f"arn:{stack.partition}:ssm:{where}:parameter"
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ServingStackChangeSets",
                "Effect": "Allow",
                "Action": [
                    "cloudformation:DescribeStacks",
                    "cloudformation:DescribeStackEvents",
                    "cloudformation:GetTemplate",
                    "cloudformation:GetTemplateSummary",
                    "cloudformation:CreateChangeSet",
                    "cloudformation:DescribeChangeSet",
                    "cloudformation:ExecuteChangeSet",
                    "cloudformation:DeleteChangeSet",
                ],
                "Resource": [
                    f"{cloudformation}:stack/{stack_name}/*",
                    # The workflow's change sets (lambda/approval/deployment.py, ``change_set_name``).
                    f"{cloudformation}:changeSet/{CHANGE_SET_PREFIX}*/*",
                ],
            },
            {
                "Sid": "PassExecutionRole",
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": execution_role_arn(stack, qualifier),
                "Condition": {"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}},
            },
            {
                "Sid": "ReadStackParameters",
                "Effect": "Allow",
                "Action": "ssm:GetParameters",
                "Resource": [f"{ssm}{pointer_prefix}*", f"{ssm}/cdk-bootstrap/{qualifier}/version"],
            },
        ],
    }
    return json.dumps(document, separators=(",", ":"))


def build_timeout_minutes(environment: EnvironmentConfig) -> int:
    """How long one deploy of the Serving stack may take: the endpoint's whole blue/green deployment, then the
    weights resource's wait for it (mlops_constructs/variant_weights.py), then an hour for the rest."""
    seconds = environment.serving.rollout.maximum_execution_timeout_seconds + WEIGHTS_TIMEOUT.to_seconds() + 3600
    return min(math.ceil(seconds / 60), MAX_BUILD_MINUTES)


def buildspec_script(policy: str) -> str:
    """The deploy project's one command: apply the Serving stack as deployed, re-reading its SSM parameters.

    ``policy`` is the session policy (``session_policy``) every assumption of the deploy role carries.
    ``--use-previous-template`` and ``UsePreviousValue`` for every parameter: an SSM-typed parameter's
    value is the parameter's *name*, and CloudFormation fetches the current value of each at every
    stack operation (AWS CloudFormation User Guide, "Systems Manager parameter types"). The change set
    pins the values it read. "No changes" (the stack already serves the pointers' models) is success.
    The deploy role's session lasts an hour; it is renewed while the update runs.
    """
    if "'" in policy:
        raise ValueError("the session policy travels in single quotes and may not contain one")
    header = f"set -euo pipefail\nsession_policy='{policy}'\n"
    return header + BUILD_SCRIPT


# The deploy project's script after its header (``buildspec_script``).
BUILD_SCRIPT = r"""assume() {
  unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN
  read -r AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN < <(aws sts assume-role \
    --role-arn "${DEPLOY_ROLE_ARN}" --role-session-name "${CHANGE_SET_NAME:0:64}" --policy "${session_policy}" \
    --query 'Credentials.[AccessKeyId,SecretAccessKey,SessionToken]' --output text)
  export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN
  assumed_at=${SECONDS}
}
assume
keys=$(aws cloudformation describe-stacks --stack-name "${STACK_NAME}" \
  --query 'Stacks[0].Parameters[].ParameterKey' --output text)
parameters=()
for key in ${keys}; do parameters+=("ParameterKey=${key},UsePreviousValue=true"); done
echo "change set ${CHANGE_SET_NAME} of ${STACK_NAME}: previous template, ${#parameters[@]} parameter(s) re-read"
aws cloudformation create-change-set --stack-name "${STACK_NAME}" --change-set-name "${CHANGE_SET_NAME}" \
  --change-set-type UPDATE --use-previous-template ${parameters[@]+--parameters "${parameters[@]}"} \
  --capabilities CAPABILITY_IAM CAPABILITY_NAMED_IAM CAPABILITY_AUTO_EXPAND \
  --role-arn "${EXECUTION_ROLE_ARN}" --description "Model promotion: re-reads the model pointers"
if ! aws cloudformation wait change-set-create-complete --stack-name "${STACK_NAME}" \
  --change-set-name "${CHANGE_SET_NAME}"; then
  reason=$(aws cloudformation describe-change-set --stack-name "${STACK_NAME}" \
    --change-set-name "${CHANGE_SET_NAME}" --query StatusReason --output text)
  echo "change set not created: ${reason}"
  if [[ "${reason}" == *"didn't contain changes"* || "${reason}" == *"No updates are to be performed"* ]]; then
    aws cloudformation delete-change-set --stack-name "${STACK_NAME}" --change-set-name "${CHANGE_SET_NAME}"
    echo "nothing to change: the stack already serves the pointers' models"
    exit 0
  fi
  exit 1
fi
aws cloudformation execute-change-set --stack-name "${STACK_NAME}" --change-set-name "${CHANGE_SET_NAME}"
while :; do
  if (( SECONDS - assumed_at > 1800 )); then assume; fi
  status=$(aws cloudformation describe-stacks --stack-name "${STACK_NAME}" \
    --query 'Stacks[0].StackStatus' --output text)
  [[ "${status}" == *_IN_PROGRESS ]] || break
  sleep 30
done
echo "stack ${STACK_NAME}: ${status}"
[[ "${status}" == UPDATE_COMPLETE ]]
"""


def deploy_project(
    scope: Construct,
    *,
    names: Names,
    serving_stack_name: str,
    key: kms.IKey,
    timeout_minutes: int,
    log_retention_days: int,
    removal_policy: RemovalPolicy,
) -> codebuild.Project:
    """``DeployRole``, ``DeployLogs``, ``BuildKey`` and ``DeployProject`` in ``scope`` (flat: logical IDs stay put)."""
    stack = Stack.of(scope)
    role = iam.Role(
        scope,
        "DeployRole",
        assumed_by=iam.ServicePrincipal("codebuild.amazonaws.com"),
        description=f"Model promotion deploys of {serving_stack_name}: may only assume the CDK deploy role",
    )
    role.add_to_policy(
        iam.PolicyStatement(sid="AssumeCdkDeployRole", actions=["sts:AssumeRole"], resources=[deploy_role_arn(stack)])
    )
    log_group = encrypted_log_group(
        scope, "DeployLogs", key=key, log_retention_days=log_retention_days, removal_policy=removal_policy
    )
    policy_document = session_policy(
        stack, stack_name=serving_stack_name, pointer_prefix=names.parameter("models") + "/"
    )
    script = buildspec_script(policy_document)
    project = codebuild.Project(
        scope,
        "DeployProject",
        description=(
            f"Applies {serving_stack_name} with its previous template so that it re-reads the model "
            "pointers (started by the approval path's deployment workflow)"
        ),
        role=role,
        build_spec=codebuild.BuildSpec.from_object(
            {"version": "0.2", "env": {"shell": "bash"}, "phases": {"build": {"commands": [script]}}}
        ),
        environment=codebuild.BuildEnvironment(
            build_image=codebuild.LinuxBuildImage.STANDARD_7_0, compute_type=codebuild.ComputeType.SMALL
        ),
        environment_variables={
            "STACK_NAME": codebuild.BuildEnvironmentVariable(value=serving_stack_name),
            "DEPLOY_ROLE_ARN": codebuild.BuildEnvironmentVariable(value=deploy_role_arn(stack)),
            "EXECUTION_ROLE_ARN": codebuild.BuildEnvironmentVariable(value=execution_role_arn(stack)),
            "CHANGE_SET_NAME": codebuild.BuildEnvironmentVariable(value="set-by-the-workflow"),
        },
        timeout=Duration.minutes(timeout_minutes),
        # One build at a time, whoever starts it: the workflow's lock is the first guard, this the second.
        concurrent_build_limit=1,
        # Imported by ARN: the key lives in Foundation; a grant must not edit its key policy from here.
        encryption_key=kms.Key.from_key_arn(scope, "BuildKey", key.key_arn),
        logging=codebuild.LoggingOptions(cloud_watch=codebuild.CloudWatchLoggingOptions(log_group=log_group)),
        grant_report_group_permissions=False,
    )
    policy = role.node.find_child("DefaultPolicy")
    # aws-cdk-lib grants the project's default log group as well as the one it logs to.
    default_logs = stack.format_arn(
        service="logs",
        resource="log-group",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
        resource_name=f"/aws/codebuild/{project.project_name}",
    )
    for resource in (f"{log_group.log_group_arn}:*", f"{default_logs}:*"):
        acknowledge_wildcard_resource(
            policy, resource, "CodeBuild writes one log stream per build in this project's log group."
        )
    for action in ("kms:GenerateDataKey*", "kms:ReEncrypt*"):
        acknowledge(
            policy,
            f"AwsSolutions-IAM5[Action::{action}]",
            "CodeBuild's encryption-key grant covers the platform key only (build logs and output).",
        )
    return project
