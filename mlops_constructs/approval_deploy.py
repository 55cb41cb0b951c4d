"""The approval path's deploy project: applies the Serving stack as deployed, so that it re-reads the model pointers.

A CodeBuild project with no source (docs/approval-path.md, "How the deploy runs"). It applies
``<env>-Serving`` with its *previous template* and every parameter ``UsePreviousValue``, so
CloudFormation re-reads the SSM-typed pointer parameters and nothing else changes (no synth, no
checkout, no assets). It deploys through two roles of its own, never through the CDK bootstrap roles
(issue 17: a build started with an overridden buildspec could assume the bootstrap deploy role without
the session policy, and deploy any template through the bootstrap execution role):

* ``DeployRole``, the project's role, trusted by CodeBuild for this account only: change sets of the
  Serving stack, reading its SSM parameters, and passing ``ServingExecutionRole`` to CloudFormation.
* ``ServingExecutionRole``, the CloudFormation execution role of those change sets: the actions
  CloudFormation's handlers take on what a pointer change replaces (models, endpoint configs, the
  endpoints' update, the variant-weights custom resource) and nothing else, on this environment's
  resources only.

So whatever a build runs, with the project's buildspec or another, it can change only what the Serving
stack holds. ``guard_policy`` denies the overrides outright to whoever it is attached to.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from aws_cdk import ArnFormat, DefaultStackSynthesizer, Duration, RemovalPolicy, Stack
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from config.naming import Names
from config.schema import EnvironmentConfig
from mlops_constructs.encryption import key_used_through
from mlops_constructs.log_retention import encrypted_log_group
from mlops_constructs.nag import acknowledge, acknowledge_wildcard_resource
from mlops_constructs.variant_weights import TOTAL_TIMEOUT as WEIGHTS_TIMEOUT

# The CDK bootstrap's qualifier: the SSM parameter CDK's templates check (``BootstrapVersion``) is under it.
# A custom qualifier (cdk bootstrap --qualifier) must be set here as in the app's synthesizer.
BOOTSTRAP_QUALIFIER = DefaultStackSynthesizer.DEFAULT_QUALIFIER
MAX_BUILD_MINUTES = 2160  # CodeBuild's longest build timeout
# The change sets the workflow names (mlops_platform/registry/deployment_settings.py, ``change_set_name``).
CHANGE_SET_PREFIX = "promotion-"
CHANGE_SET_ACTIONS = [
    "cloudformation:DescribeStacks",
    "cloudformation:DescribeStackEvents",
    "cloudformation:GetTemplate",
    "cloudformation:GetTemplateSummary",
    "cloudformation:CreateChangeSet",
    "cloudformation:DescribeChangeSet",
    "cloudformation:ExecuteChangeSet",
    "cloudformation:DeleteChangeSet",
]
# What CloudFormation's resource handlers do for the resources a pointer change replaces or updates, as
# their registry schemas declare them (``handlers.create/read/update/delete.permissions``; AWS CloudFormation
# Template Reference, https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-sagemaker-model.html,
# ...-sagemaker-endpointconfig.html, ...-sagemaker-endpoint.html). tests/infra/test_approval_path.py checks
# them against the schemas cfn-lint ships. ``iam:PassRole`` and ``kms:DescribeKey`` have statements of their own.
SAGEMAKER_ACTIONS = [
    "sagemaker:AddTags",
    "sagemaker:CreateEndpointConfig",
    "sagemaker:CreateModel",
    "sagemaker:DeleteEndpointConfig",
    "sagemaker:DeleteModel",
    "sagemaker:DeleteTags",
    "sagemaker:DescribeEndpoint",
    "sagemaker:DescribeEndpointConfig",
    "sagemaker:DescribeModel",
    "sagemaker:ListTags",
    "sagemaker:UpdateEndpoint",
]
# StartBuild's ``buildspecOverride`` sets ``codebuild:source.buildspec``, which supports only the Null
# operator (AWS CodeBuild User Guide, "AWS CodeBuild condition keys", "Prevent unauthorized modifications to
# project buildspec": https://docs.aws.amazon.com/codebuild/latest/userguide/action-context-keys.html).
BUILDSPEC_OVERRIDE = {"Null": {"codebuild:source.buildspec": "false"}}


def bootstrap_version_parameter(stack: Stack, qualifier: str = BOOTSTRAP_QUALIFIER) -> str:
    return stack.format_arn(service="ssm", resource="parameter", resource_name=f"cdk-bootstrap/{qualifier}/version")


def _serving_arns(stack: Stack, serving_stack_name: str, names: Names) -> dict[str, str]:
    """The ARNs a Serving deploy touches: the stack, its change sets, its generated role and function names,
    this environment's endpoints, and its model pointers."""
    where = f"{stack.region}:{stack.account}"
    return {
        "stack": f"arn:{stack.partition}:cloudformation:{where}:stack/{serving_stack_name}/*",
        "change_sets": f"arn:{stack.partition}:cloudformation:{where}:changeSet/{CHANGE_SET_PREFIX}*/*",
        # CloudFormation names what the template leaves unnamed <stack name>-<logical id>-<suffix>
        # (https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-name.html).
        "roles": f"arn:{stack.partition}:iam::{stack.account}:role/{serving_stack_name}-*",
        "functions": stack.format_arn(
            service="lambda",
            resource="function",
            resource_name=f"{serving_stack_name}-*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        ),
        "endpoints": stack.format_arn(service="sagemaker", resource="endpoint", resource_name=f"{names.prefix}-*"),
        "pointers": stack.format_arn(
            service="ssm", resource="parameter", resource_name=names.parameter("models")[1:] + "/*"
        ),
    }


def execution_role(
    scope: Construct, *, names: Names, serving_stack_name: str, producer_stack_names: Sequence[str], key: kms.IKey
) -> iam.Role:
    """``ServingExecutionRole``: what CloudFormation may do while it applies a promotion to the Serving stack."""
    stack = Stack.of(scope)
    arns = _serving_arns(stack, serving_stack_name, names)
    role = iam.Role(
        scope,
        "ServingExecutionRole",
        assumed_by=iam.ServicePrincipal("cloudformation.amazonaws.com"),
        description=f"CloudFormation applying a model promotion to {serving_stack_name}: its models and endpoints only",
    )
    # Model and endpoint config names are generated from logical ids and not known here; endpoints are
    # named by the platform (<project>-<env>-<tenant>-<model>).
    generated = [
        stack.format_arn(service="sagemaker", resource="model", resource_name="*"),
        stack.format_arn(service="sagemaker", resource="endpoint-config", resource_name="*"),
    ]
    role.add_to_policy(
        iam.PolicyStatement(
            sid="ServingModelsAndEndpoints", actions=SAGEMAKER_ACTIONS, resources=[*generated, arns["endpoints"]]
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="PassModelRoles",
            actions=["iam:PassRole"],
            resources=[arns["roles"]],
            conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        )
    )
    # The variant-weights custom resource: CloudFormation invokes its provider with the execution role
    # (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-iam-servicerole.html).
    role.add_to_policy(
        iam.PolicyStatement(
            sid="InvokeCustomResources", actions=["lambda:InvokeFunction"], resources=[arns["functions"]]
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="ReadStackParameters",
            actions=["ssm:GetParameters"],
            resources=[arns["pointers"], bootstrap_version_parameter(stack)],
        )
    )
    # Fn::GetStackOutput reads the producers' outputs with this role at every update (Foundation's zones and
    # key; staging's smoke-test role reads Training's state machine): "RoleArn ... defaults to the current
    # stack's execution role", which needs cloudformation:DescribeStacks on the stack it reads
    # (https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/intrinsic-function-reference-getstackoutput.html).
    producers = [
        f"arn:{stack.partition}:cloudformation:{stack.region}:{stack.account}:stack/{name}/*"
        for name in producer_stack_names
    ]
    role.add_to_policy(
        iam.PolicyStatement(sid="ReadProducerOutputs", actions=["cloudformation:DescribeStacks"], resources=producers)
    )
    # Endpoint configs name the platform key for their volumes and captures (SageMaker's CreateEndpointConfig:
    # "The KMS key policy must grant permission to the IAM role that you specify in your CreateEndpoint,
    # UpdateEndpoint requests", https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateEndpointConfig.html).
    role.add_to_policy(key_used_through(scope, key, "sagemaker", ["kms:DescribeKey", "kms:CreateGrant"]))
    policy = role.node.find_child("DefaultPolicy")
    for resource in [*generated, arns["endpoints"], arns["roles"], arns["functions"], arns["pointers"], *producers]:
        acknowledge_wildcard_resource(
            policy,
            resource,
            "Names CloudFormation generates in the Serving stack (<stack>-<logical id>-<suffix>), this environment's "
            "endpoints and model pointers; the roles pass to SageMaker only.",
        )
    return role


def guard_policy(scope: Construct, project: codebuild.IProject) -> iam.ManagedPolicy:
    """``DeployGuard``: denies starting the deploy project with another buildspec, and changing the project.

    CodeBuild takes no resource policy that could refuse a caller of this account, so the refusal is an
    identity policy: the workflow's role carries the same statement, and operators attach this one to the
    people's roles (or the same statement as a service control policy; README, "Tenants and security").
    """
    return iam.ManagedPolicy(
        scope,
        "DeployGuard",
        description="Refuses overridden buildspecs and changes of the model promotion deploy project",
        statements=[
            iam.PolicyStatement(
                sid="NoBuildspecOverride",
                effect=iam.Effect.DENY,
                actions=["codebuild:StartBuild", "codebuild:StartBuildBatch"],
                resources=[project.project_arn],
                conditions=BUILDSPEC_OVERRIDE,
            ),
            iam.PolicyStatement(
                sid="NoProjectChanges",
                effect=iam.Effect.DENY,
                actions=["codebuild:UpdateProject", "codebuild:DeleteProject"],
                resources=[project.project_arn],
            ),
        ],
    )


def build_timeout_minutes(environment: EnvironmentConfig) -> int:
    """How long one deploy of the Serving stack may take: the endpoint's whole blue/green deployment, then the
    weights resource's wait for it (mlops_constructs/variant_weights.py), then an hour for the rest."""
    seconds = environment.serving.rollout.maximum_execution_timeout_seconds + WEIGHTS_TIMEOUT.to_seconds() + 3600
    return min(math.ceil(seconds / 60), MAX_BUILD_MINUTES)


# The deploy project's one command: apply the Serving stack as deployed, re-reading its SSM parameters.
# ``--use-previous-template`` and ``UsePreviousValue`` for every parameter: an SSM-typed parameter's value is
# the parameter's *name*, and CloudFormation fetches the current value of each at every stack operation (AWS
# CloudFormation User Guide, "Systems Manager parameter types"). The change set pins the values it read.
# "No changes" (the stack already serves the pointers' models) is success. It runs with the project's own
# role, which only ever reaches the Serving stack (module docstring).
BUILD_SCRIPT = r"""set -euo pipefail
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
    producer_stack_names: Sequence[str],
    key: kms.IKey,
    timeout_minutes: int,
    log_retention_days: int,
    removal_policy: RemovalPolicy,
) -> codebuild.Project:
    """``DeployRole``, ``ServingExecutionRole``, ``DeployLogs``, ``BuildKey`` and ``DeployProject`` in ``scope``
    (flat: logical IDs stay put)."""
    stack = Stack.of(scope)
    arns = _serving_arns(stack, serving_stack_name, names)
    executes = execution_role(
        scope,
        names=names,
        serving_stack_name=serving_stack_name,
        producer_stack_names=producer_stack_names,
        key=key,
    )
    role = iam.Role(
        scope,
        "DeployRole",
        # Builds of this account's projects only (CodeBuild's confused-deputy keys:
        # https://docs.aws.amazon.com/codebuild/latest/userguide/cross-service-confused-deputy-prevention.html).
        assumed_by=iam.ServicePrincipal(
            "codebuild.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": stack.account}}
        ),
        description=f"Model promotion deploys of {serving_stack_name}: its change sets through its own execution role",
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="ServingStackChangeSets", actions=CHANGE_SET_ACTIONS, resources=[arns["stack"], arns["change_sets"]]
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="PassExecutionRole",
            actions=["iam:PassRole"],
            resources=[executes.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}},
        )
    )
    # CloudFormation resolves SSM-typed parameters with the caller's rights as well.
    role.add_to_policy(
        iam.PolicyStatement(
            sid="ReadStackParameters",
            actions=["ssm:GetParameters"],
            resources=[arns["pointers"], bootstrap_version_parameter(stack)],
        )
    )
    log_group = encrypted_log_group(
        scope, "DeployLogs", key=key, log_retention_days=log_retention_days, removal_policy=removal_policy
    )
    project = codebuild.Project(
        scope,
        "DeployProject",
        description=(
            f"Applies {serving_stack_name} with its previous template so that it re-reads the model "
            "pointers (started by the approval path's deployment workflow)"
        ),
        role=role,
        build_spec=codebuild.BuildSpec.from_object(
            {"version": "0.2", "env": {"shell": "bash"}, "phases": {"build": {"commands": [BUILD_SCRIPT]}}}
        ),
        environment=codebuild.BuildEnvironment(
            build_image=codebuild.LinuxBuildImage.STANDARD_7_0, compute_type=codebuild.ComputeType.SMALL
        ),
        environment_variables={
            "STACK_NAME": codebuild.BuildEnvironmentVariable(value=serving_stack_name),
            "EXECUTION_ROLE_ARN": codebuild.BuildEnvironmentVariable(value=executes.role_arn),
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
    for resource in (arns["stack"], arns["change_sets"], arns["pointers"]):
        acknowledge_wildcard_resource(
            policy, resource, "The Serving stack (its id suffix), the workflow's change sets of it, its model pointers."
        )
    for action in ("kms:GenerateDataKey*", "kms:ReEncrypt*"):
        acknowledge(
            policy,
            f"AwsSolutions-IAM5[Action::{action}]",
            "CodeBuild's encryption-key grant covers the platform key only (build logs and output).",
        )
    return project
