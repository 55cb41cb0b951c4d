"""What the delivery pipeline's builds may do in an environment: roles trusted by one build role each.

The pipeline runs in the tooling account; its smoke test and its deploy checks assume a role in the
environment they test. Each such role trusts the one build role of the tooling account by ARN, as a
condition, not as a principal: IAM checks that a role principal exists, and a direct ``cdk deploy`` of an
environment may come before the pipeline stack does.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from config.naming import Names
from config.schema import SMOKE_TEST_ENDPOINT
from mlops_constructs.arns import executions_arn
from mlops_constructs.nag import acknowledge_wildcard_resource

SCORING_STAGE = "v1"


def smoke_test_role_name(names: Names) -> str:
    """The tested environment's role that the smoke test assumes: ``mlops-staging-smoke-test``."""
    return names.resource("smoke-test")


def pipeline_smoke_test_role_name(project: str) -> str:
    """The smoke-test build's own role in the tooling account; the tested environment trusts it by name."""
    return f"{project}-delivery-smoke-test"


def role_for_tooling_build(
    scope: Construct, *, role_name: str, description: str, tooling_account: str, tooling_role_name: str
) -> iam.Role:
    """``Role`` in ``scope``, which only the build role ``tooling_role_name`` of ``tooling_account`` may assume."""
    stack = Stack.of(scope)
    build_role_arn = f"arn:{stack.partition}:iam::{tooling_account}:role/{tooling_role_name}"
    return iam.Role(
        scope,
        "Role",
        role_name=role_name,
        description=description,
        assumed_by=iam.AccountPrincipal(tooling_account).with_conditions(
            {"ArnEquals": {"aws:PrincipalArn": build_role_arn}}
        ),
    )


class SmokeTestAccess(Construct):
    """A role the pipeline's smoke-test build assumes in the tested environment (a cross-account hop):
    it may score through the scoring API and run and watch the training state machine, nothing else."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        names: Names,
        api: apigateway.RestApi,
        state_machine: sfn.StateMachine,
        tooling_account: str,
        tooling_role_name: str,
    ) -> None:
        super().__init__(scope, id)
        self.role = role_for_tooling_build(
            self,
            role_name=smoke_test_role_name(names),
            description=f"The delivery pipeline's smoke test in {names.environment}: scores and trains the example",
            tooling_account=tooling_account,
            tooling_role_name=tooling_role_name,
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["execute-api:Invoke"],
                # Real-time scoring of the one endpoint the smoke test scores (the endpoint is in the path).
                resources=[api.arn_for_execute_api("POST", f"/endpoints/{SMOKE_TEST_ENDPOINT}/score", SCORING_STAGE)],
            )
        )
        state_machine.grant_start_execution(self.role)
        executions = executions_arn(self, state_machine)
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["states:DescribeExecution", "states:StopExecution"], resources=[executions])
        )
        policy = self.role.node.find_child("DefaultPolicy")
        acknowledge_wildcard_resource(
            policy,
            executions,
            "Execution ARNs end in the execution's name, chosen when the smoke test starts it; the "
            "wildcard stays within this one state machine's executions",
        )
