"""Who may check that a deploy is done: the reads of mlops_platform/registry/endpoint_check.py, and nothing more.

A deploy is done when each endpoint runs the endpoint config and models its stack deployed (a deployment
guardrail's rollback leaves the stack complete and the endpoint on its old config). Three paths run that
check after a deploy: the approval path's deployment function, the delivery pipeline's deploy stages
(``DeployCheckAccess``, assumed from the tooling account) and ``make deploy`` (a person's credentials).

``grant_endpoint_check`` grants a role exactly the actions the check calls, each on the narrowest
resource the service authorization reference allows
(https://docs.aws.amazon.com/service-authorization/latest/reference/):

* ``ReadServingStack``: ``cloudformation:GetTemplate`` and ``cloudformation:ListStackResources``
  (list_awscloudformation.html: resource type ``stack*``) on the Serving stack;
* ``DescribeEndpoints``: ``sagemaker:DescribeEndpoint`` (list_amazonsagemaker.html: ``endpoint*``) on the
  environment's endpoints, by contract name;
* ``DescribeEndpointConfigs``: ``sagemaker:DescribeEndpointConfig`` (``endpoint-config*``) on
  ``endpoint-config/*``, since CloudFormation names the configs;
* ``DescribeScalableTargets``, for the deployed-variants record only:
  ``application-autoscaling:DescribeScalableTargets`` (list_awsapplicationautoscaling.html: no resource
  type, so ``*``).
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from config.naming import Names
from mlops_constructs.endpoint import endpoint_arn
from mlops_constructs.nag import acknowledge, acknowledge_wildcard_resource
from mlops_constructs.pipeline_access import role_for_tooling_build

# mlops_platform/registry/endpoint_check.py: CHECK_ACTIONS and RECORD_ACTIONS (a test keeps them equal).
STACK_ACTIONS = ("cloudformation:GetTemplate", "cloudformation:ListStackResources")
ENDPOINT_ACTIONS = ("sagemaker:DescribeEndpoint",)
ENDPOINT_CONFIG_ACTIONS = ("sagemaker:DescribeEndpointConfig",)
SCALING_ACTIONS = ("application-autoscaling:DescribeScalableTargets",)
CHECK_ACTIONS = frozenset(STACK_ACTIONS + ENDPOINT_ACTIONS + ENDPOINT_CONFIG_ACTIONS)
RECORD_ACTIONS = CHECK_ACTIONS | frozenset(SCALING_ACTIONS)


def deploy_check_role_name(names: Names) -> str:
    """The environment's role that the delivery pipeline's deploy check assumes: ``mlops-dev-deploy-check``."""
    return names.resource("deploy-check")


def pipeline_deploy_check_role_name(project: str, environment: str) -> str:
    """The deploy-check build's own role in the tooling account, one per stage; the environment trusts it by name."""
    return f"{project}-delivery-deploy-check-{environment}"


def grant_endpoint_check(
    role: iam.Role,
    *,
    stack_name: str,
    endpoint_names: Sequence[str],
    record: bool,
    stack_actions: Sequence[str] = (),
) -> None:
    """Let ``role`` run the endpoint check on ``stack_name`` (and, with ``record``, read the live record).

    ``stack_actions`` are more CloudFormation reads of the same stack the caller needs (one statement).
    """
    stack = Stack.of(role)
    stack_arn = stack.format_arn(service="cloudformation", resource="stack", resource_name=f"{stack_name}/*")
    role.add_to_policy(
        iam.PolicyStatement(sid="ReadServingStack", actions=[*stack_actions, *STACK_ACTIONS], resources=[stack_arn])
    )
    if endpoint_names:
        role.add_to_policy(
            iam.PolicyStatement(
                sid="DescribeEndpoints",
                actions=list(ENDPOINT_ACTIONS),
                resources=[endpoint_arn(role, name) for name in sorted(endpoint_names)],
            )
        )
    configs = stack.format_arn(service="sagemaker", resource="endpoint-config", resource_name="*")
    role.add_to_policy(
        iam.PolicyStatement(sid="DescribeEndpointConfigs", actions=list(ENDPOINT_CONFIG_ACTIONS), resources=[configs])
    )
    if record:
        role.add_to_policy(
            iam.PolicyStatement(sid="DescribeScalableTargets", actions=list(SCALING_ACTIONS), resources=["*"])
        )
    policy = role.node.find_child("DefaultPolicy")
    acknowledge_wildcard_resource(
        policy,
        stack_arn,
        "A stack's ARN ends in an id CloudFormation assigns; the grant names the Serving stack and only reads it.",
    )
    acknowledge_wildcard_resource(
        policy,
        configs,
        "CloudFormation names the endpoint configs (a new one at every model change); DescribeEndpointConfig "
        "only reads them, and the endpoints they serve are named in the statement beside it.",
    )
    if record:
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::*]",
            "application-autoscaling:DescribeScalableTargets supports no resource-level permissions (service "
            "authorization reference); it reads which endpoint variants are scaling targets.",
        )


class DeployCheckAccess(Construct):
    """A role the delivery pipeline's deploy check assumes in an environment: read its endpoints, nothing else."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        names: Names,
        stack_name: str,
        endpoint_names: Sequence[str],
        tooling_account: str,
        tooling_role_name: str,
    ) -> None:
        super().__init__(scope, id)
        self.role = role_for_tooling_build(
            self,
            role_name=deploy_check_role_name(names),
            description=(
                f"The delivery pipeline's deploy check in {names.environment}: reads {stack_name}'s endpoints"
            ),
            tooling_account=tooling_account,
            tooling_role_name=tooling_role_name,
        )
        grant_endpoint_check(self.role, stack_name=stack_name, endpoint_names=endpoint_names, record=True)
