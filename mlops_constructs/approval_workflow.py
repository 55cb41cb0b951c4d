"""The approval path's deployment workflow: one Step Functions execution per promoted package and endpoint.

Its name is derived from both, so a duplicate event starts nothing. It waits while the Serving stack is
busy or someone holds the deployment lock (``mlops promote`` takes it too); ends as ``superseded``
when the pointer already names a newer version of the package's group (approvals arrive in any order);
writes the pointer (``lambda/approval/deployment.py``, keeping the previous value); runs the deploy
project (mlops_constructs/approval_deploy.py); then judges the stack and the endpoint: deployed when the
stack is complete with the new pointer *and* the endpoint runs the endpoint config and models the stack
deployed (``mlops_platform/registry/endpoint_check.py``), else the pointer goes back and people are told.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from mlops_constructs.approval_deploy import BUILDSPEC_OVERRIDE
from mlops_constructs.log_retention import encrypted_log_group
from mlops_constructs.nag import acknowledge, acknowledge_wildcard_resource, ignore_redundant_dependency

# The workflow asks again this often while the stack is busy, and waits for it at most as long as a
# deploy may take (build_timeout); two waits per execution stay far below Step Functions' 25,000 events.
WAIT = Duration.minutes(1)
BUSY = "busy"


def lock_seconds(max_waits: int, build_timeout_minutes: int) -> int:
    """Longer than any execution can hold the lock (two waits and a build), so it never expires under one;
    an execution stopped by hand leaves it to expire."""
    return 2 * max_waits * int(WAIT.to_seconds()) + build_timeout_minutes * 60 + 3600


def _step(
    scope: Construct, function: lambda_.IFunction, id: str, step: str, *, result_path: str, **extra: object
) -> tasks.LambdaInvoke:
    task = tasks.LambdaInvoke(
        scope,
        id,
        lambda_function=function,
        payload=sfn.TaskInput.from_object(
            {
                "step": step,
                "execution": sfn.JsonPath.execution_name,
                "request": sfn.JsonPath.object_at("$.request"),
                **extra,
            }
        ),
        payload_response_only=True,
        result_path=result_path,
    )
    task.add_retry(errors=["States.ALL"], interval=Duration.seconds(10), max_attempts=3, backoff_rate=2)
    return task


def _count(scope: Construct, id: str, counted: str) -> sfn.Pass:
    other = "settle" if counted == "acquire" else "acquire"
    return sfn.Pass(
        scope,
        id,
        parameters={
            counted: sfn.JsonPath.math_add(sfn.JsonPath.number_at(f"$.waits.{counted}"), 1),
            other: sfn.JsonPath.number_at(f"$.waits.{other}"),
        },
        result_path="$.waits",
    )


def _waits_left(phase: str, max_waits: int) -> sfn.Condition:
    return sfn.Condition.and_(
        sfn.Condition.string_equals(f"$.{phase}.status", BUSY),
        sfn.Condition.number_less_than(f"$.waits.{phase}", max_waits),
    )


def deployment_workflow(
    scope: Construct,
    *,
    function: lambda_.IFunction,
    project: codebuild.IProject,
    serving_stack_name: str,
    max_waits: int,
    key: kms.IKey,
    log_retention_days: int,
    removal_policy: RemovalPolicy,
) -> sfn.StateMachine:
    """The workflow's states, ``WorkflowLogs`` and ``Workflow`` in ``scope`` (flat: logical IDs stay put)."""
    start = sfn.Pass(
        scope,
        "Start",
        comment="Keeps the promotion request apart from the steps' results",
        parameters={"request": sfn.JsonPath.entire_payload, "waits": {"acquire": 0, "settle": 0}},
    )
    acquire = _step(scope, function, "Acquire", "acquire", result_path="$.acquire")
    settle = _step(scope, function, "Settle", "settle", result_path="$.settle", build=sfn.JsonPath.object_at("$.build"))
    # The pointer may or may not be written when acquiring fails: settling restores it if it was.
    acquire.add_catch(settle, errors=["States.ALL"], result_path="$.build")
    deploy = tasks.CodeBuildStartBuild(
        scope,
        "Deploy",
        comment=f"Applies {serving_stack_name}: previous template, parameters re-read",
        project=project,
        integration_pattern=sfn.IntegrationPattern.RUN_JOB,
        environment_variables_override={
            "CHANGE_SET_NAME": codebuild.BuildEnvironmentVariable(value=sfn.JsonPath.string_at("$.acquire.change_set"))
        },
        result_selector={
            "id": sfn.JsonPath.string_at("$.Build.Id"),
            "status": sfn.JsonPath.string_at("$.Build.BuildStatus"),
        },
        result_path="$.build",
    )
    # Whatever the build says, the stack decides: settle reads it.
    deploy.add_catch(settle, errors=["States.ALL"], result_path="$.build")
    deploy.next(settle)

    wait_for_stack = sfn.Wait(scope, "WaitForStack", time=sfn.WaitTime.duration(WAIT))
    wait_for_stack.next(_count(scope, "CountStackWait", "acquire")).next(acquire)
    wait_for_deploy = sfn.Wait(scope, "WaitForDeploy", time=sfn.WaitTime.duration(WAIT))
    wait_for_deploy.next(_count(scope, "CountDeployWait", "settle")).next(settle)
    give_up_acquire = _step(
        scope, function, "GiveUpWaitingForStack", "give_up", result_path="$.settle", phase="acquire"
    )
    give_up_acquire.next(sfn.Fail(scope, "StackStayedBusy", error="StackStayedBusy", cause="Nothing was written"))
    give_up_settle = _step(scope, function, "GiveUpWaitingForDeploy", "give_up", result_path="$.settle", phase="settle")
    give_up_settle.next(sfn.Fail(scope, "DeployUnsettled", error="DeployUnsettled", cause="The stack kept updating"))

    acquired = (
        sfn.Choice(scope, "Acquired")
        .when(sfn.Condition.string_equals("$.acquire.status", "ready"), deploy)
        .when(_waits_left("acquire", max_waits), wait_for_stack)
        .when(sfn.Condition.string_equals("$.acquire.status", BUSY), give_up_acquire)
        .when(sfn.Condition.string_equals("$.acquire.status", "withdrawn"), sfn.Succeed(scope, "Withdrawn"))
        # A newer package already serves: recorded and notified, nothing written.
        .when(sfn.Condition.string_equals("$.acquire.status", "superseded"), sfn.Succeed(scope, "Superseded"))
        .otherwise(sfn.Fail(scope, "Blocked", error="Blocked", cause="The Serving stack cannot take the promotion"))
    )
    settled = (
        sfn.Choice(scope, "Settled")
        .when(sfn.Condition.string_equals("$.settle.status", "deployed"), sfn.Succeed(scope, "Deployed"))
        .when(_waits_left("settle", max_waits), wait_for_deploy)
        .when(sfn.Condition.string_equals("$.settle.status", BUSY), give_up_settle)
        .otherwise(sfn.Fail(scope, "Reverted", error="Reverted", cause="The deploy failed; the pointer was restored"))
    )
    settle.next(settled)
    definition = start.next(acquire).next(acquired)

    log_group = encrypted_log_group(
        scope, "WorkflowLogs", key=key, log_retention_days=log_retention_days, removal_policy=removal_policy
    )
    state_machine = sfn.StateMachine(
        scope,
        "Workflow",
        comment=(
            f"Deploys one promoted model package to {serving_stack_name}: waits for the stack and the lock, "
            "writes the pointer, deploys, and restores the pointer if the deploy fails"
        ),
        definition_body=sfn.DefinitionBody.from_chainable(definition),
        tracing_enabled=True,
        logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
    )
    ignore_redundant_dependency(state_machine)
    # The workflow starts the project as it is; even a changed definition may not start it with another buildspec.
    state_machine.add_to_role_policy(
        iam.PolicyStatement(
            sid="NoBuildspecOverride",
            effect=iam.Effect.DENY,
            actions=["codebuild:StartBuild"],
            resources=[project.project_arn],
            conditions=BUILDSPEC_OVERRIDE,
        )
    )
    policy = state_machine.role.node.find_child("DefaultPolicy")
    acknowledge_wildcard_resource(
        policy,
        f"{function.function_arn}:*",
        "CDK's LambdaInvoke grants the function's versions and aliases as well as the function.",
    )
    acknowledge(
        policy,
        "AwsSolutions-IAM5[Resource::*]",
        "X-Ray tracing and CloudWatch Logs delivery of the state machine support no resource-level permissions.",
    )
    return state_machine
