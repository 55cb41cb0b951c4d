"""The building blocks of the training state machine's states: job names per redrive, retries, Fail states.

Failures that a redrive can fix (a job that failed, SageMaker or Lambda errors that outlived their
retries) are not caught: the execution fails in the state that failed, and a redrive reruns that
state. A redrive restarts an execution at the state that was entered and never left
(https://docs.aws.amazon.com/step-functions/latest/dg/redrive-executions.html,
https://docs.aws.amazon.com/step-functions/latest/dg/redrive-map-run.html); for a failure caught
into a Fail state that is the Fail state itself, which fails again at once. So only failures that
no redrive can fix (a request the plan refuses, no usable trial, a missing baseline) end in named
Fail states. Jobs a redrive starts again are named with $$.Execution.RedriveCount, so they never
collide with the failed attempt's job. The ledger learns how every execution ended from Step
Functions' status events (RunOutcomes).
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, Stack
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

SAGEMAKER_ERROR = "SageMaker.AmazonSageMakerException"
SDK_SAGEMAKER_ERROR = "SageMaker.SageMakerException"
SAGEMAKER_RETRY_SECONDS = 20
SAGEMAKER_RETRY_ATTEMPTS = 5
SAGEMAKER_RETRY_MAX_DELAY_SECONDS = 300
REDRIVE_COUNT = "$$.Execution.RedriveCount"


def attempt_name(path: str) -> str:
    """``<name at path>-r<redrive count>``: a redrive's job never collides with the failed attempt's."""
    return f"States.Format('{{}}-r{{}}', {path}, {REDRIVE_COUNT})"


def attempt_name_token(path: str) -> str:
    """The same name, as a token for CDK's tasks."""
    return sfn.JsonPath.format("{}-r{}", sfn.JsonPath.string_at(path), sfn.JsonPath.string_at(REDRIVE_COUNT))


def retry_sagemaker(task: sfn.TaskStateBase | sfn.CustomState, errors: str = SAGEMAKER_ERROR) -> None:
    """Retry a refused create call: throttling, SageMaker's 5xx and quota clear with time.

    The optimized integration reports every refusal as SageMaker.AmazonSageMakerException with the code
    only in the cause, so a request SageMaker rejects as invalid is retried too, for about ten minutes,
    before the execution fails in this state (these requests are the platform's own, not tenants').
    AWS SDK integrations name SageMaker's unmodelled errors (throttling, 5xx) SageMaker.SageMakerException.
    """
    task.add_retry(
        errors=[errors],
        interval=Duration.seconds(SAGEMAKER_RETRY_SECONDS),
        max_attempts=SAGEMAKER_RETRY_ATTEMPTS,
        backoff_rate=2,
        max_delay=Duration.seconds(SAGEMAKER_RETRY_MAX_DELAY_SECONDS),
        jitter_strategy=sfn.JitterType.FULL,
    )


def retry_lambda_throttling(task: tasks.LambdaInvoke) -> None:
    """CDK's LambdaInvoke retries Lambda's service errors; throttling (TooManyRequests) is not among them."""
    task.add_retry(
        errors=["Lambda.TooManyRequestsException"],
        interval=Duration.seconds(2),
        max_attempts=6,
        backoff_rate=2,
        jitter_strategy=sfn.JitterType.FULL,
    )


def copied(path: str, *fields: str) -> dict[str, str]:
    """``{"Field.$": "<path>.Field"}``: API fields taken verbatim from the plan."""
    return {f"{field}.$": f"{path}.{field}" for field in fields}


def sagemaker_sync(
    scope: Construct, id: str, action: str, parameters: dict[str, Any], result_path: str
) -> sfn.CustomState:
    """A ``.sync`` SageMaker task whose request fields come from the state (no CDK task takes them all)."""
    return sfn.CustomState(
        scope,
        id,
        state_json={
            "Type": "Task",
            "Resource": f"arn:{Stack.of(scope).partition}:states:::sagemaker:{action}.sync",
            "Parameters": parameters,
            "ResultPath": result_path,
        },
    )


def fail(scope: Construct, error: str) -> sfn.Fail:
    """A Fail state per failure path, with the cause that led there (a failed state's ``$.error``)."""
    existing = scope.node.try_find_child(error)
    if isinstance(existing, sfn.Fail):
        return existing
    return sfn.Fail(scope, error, error=error, cause_path="$.error.Cause")
