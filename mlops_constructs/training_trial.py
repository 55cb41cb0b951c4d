"""One trial of the training Map: start its job, wait for capacity, or resolve a job name already in use.

This is where SageMaker's errors are told apart. Step Functions reports every SageMaker error as
``SageMaker.AmazonSageMakerException`` with the code only in the cause, so a Choice on the cause
sends quota, throttling and 5xx errors to the back-off loop, ``ResourceInUse`` (a redriven trial
finding its own job) to a Lambda that reuses, waits for or supersedes the job, and anything else to
a Fail state with the cause. A trial waits for capacity (doubling waits) up to
``training.capacity_wait_limit_seconds``, then gives up and raises the capacity alarm.
"""

from __future__ import annotations

from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from config.naming import Names
from mlops_constructs.functions import PlatformFunction
from mlops_constructs.training_states import SAGEMAKER_ERROR, copied, fail, retry_lambda_throttling, sagemaker_sync

# Capacity back-off: the first wait, doubled after each refusal up to the cap.
FIRST_CAPACITY_WAIT_SECONDS = 60
MAX_CAPACITY_WAIT_SECONDS = 1800
# Polls of a job from an earlier attempt that is still running: doubling from the first to the cap.
FIRST_POLL_SECONDS = 60
MAX_POLL_SECONDS = 7200
# Refusals that clear with time, as the cause of SageMaker.AmazonSageMakerException words them: the
# optimized integration reports the SDK's message, "... (Service: AmazonSageMaker; Status Code: 400;
# Error Code: ThrottlingException; ...)", so a 5xx is "Status Code: 5..".
TRANSIENT_CAUSES = ("*ResourceLimitExceeded*", "*ThrottlingException*", "*Rate exceeded*", "*Status Code: 5*")
# A trial that gave up waiting for capacity puts one data point; the capacity alarm watches it.
CAPACITY_GAVE_UP_METRIC = "TrialsGaveUpOnCapacity"
# The training-job λ's typed errors (lambda/training_job/handler.py).
RESOLVER_ERRORS = ("InvalidResolverInput", "TrainingJobNotFound", "JobNameCollision", "InvalidName", "ResolverError")


def trial(
    scope: Construct,
    *,
    names: Names,
    job_function: PlatformFunction,
    capacity_wait_limit_seconds: int,
) -> sfn.IChainable:
    """One trial's states, made in ``scope``.

    Waits back off (doubling to a cap), so a trial's history stays well inside a child execution's
    25,000 events for the longest wait and job the configuration allows (tests/infra/test_training.py).
    """
    start = sagemaker_sync(
        scope,
        "StartTraining",
        "createTrainingJob",
        {
            "TrainingJobName.$": "$.current.job_name",
            # The tenant's training role, from the Map's item selector (mlops_constructs/tenant_job_roles.py).
            "RoleArn.$": "$.role_arn",
            **copied("$.item.request", "AlgorithmSpecification", "HyperParameters", "InputDataConfig"),
            **copied("$.item.request", "OutputDataConfig", "ResourceConfig", "StoppingCondition"),
            **copied("$.item.request", "EnableManagedSpotTraining", "CheckpointConfig"),
            # Jobs must reach EventBridge to report progress.
            "EnableNetworkIsolation": False,
        },
        result_path="$.job",
    )
    trial_done = sfn.Pass(
        scope,
        "TrialDone",
        parameters={"item": sfn.JsonPath.object_at("$.item"), "job": sfn.JsonPath.object_at("$.job")},
    )
    waited_long_enough = _wait_for_capacity(scope, names, start, capacity_wait_limit_seconds)
    find_existing, existing = _resolve_existing_job(scope, start, job_function)
    why_not_started = (
        sfn.Choice(scope, "WhyNotStarted")
        .when(
            sfn.Condition.or_(*(sfn.Condition.string_matches("$.error.Cause", p) for p in TRANSIENT_CAUSES)),
            waited_long_enough,
        )
        .when(sfn.Condition.string_matches("$.error.Cause", "*ResourceInUse*"), find_existing.next(existing))
        .otherwise(fail(scope, "TrainingRequestRejected"))
    )
    find_existing.add_catch(fail(scope, "ExistingJobUnresolved"), errors=list(RESOLVER_ERRORS), result_path="$.error")
    # Only the create call's errors are caught; a job that failed fails the trial in StartTraining,
    # so a redrive of the Map Run starts it again (ResourceInUse, then the next attempt).
    start.add_catch(why_not_started, errors=[SAGEMAKER_ERROR], result_path="$.error")
    return start.next(trial_done)


def _wait_for_capacity(
    scope: Construct, names: Names, start: sfn.CustomState, capacity_wait_limit_seconds: int
) -> sfn.IChainable:
    """Quota, throttling and SageMaker's 5xx: wait (doubling, at most MAX_CAPACITY_WAIT_SECONDS a time),
    until the trial has waited capacity_wait_limit_seconds in all; then it gives up and says so."""
    give_up = tasks.CallAwsService(
        scope,
        "ReportCapacityWait",
        comment="One data point per trial that gives up; an alarm on the metric notifies once",
        service="cloudwatch",
        action="putMetricData",
        iam_action="cloudwatch:PutMetricData",
        iam_resources=["*"],
        parameters={
            "Namespace": names.metrics_namespace,
            "MetricData": [{"MetricName": CAPACITY_GAVE_UP_METRIC, "Value": 1, "Unit": "Count"}],
        },
        result_path=sfn.JsonPath.DISCARD,
    ).next(
        sfn.Fail(
            scope,
            "CapacityUnavailable",
            error="CapacityUnavailable",
            cause=(
                f"SageMaker refused this trial's job for {capacity_wait_limit_seconds} seconds "
                "(quota, throttling or service errors): raise the quota or start a new run later"
            ),
        )
    )
    wait_for_capacity = sfn.Wait(scope, "WaitForCapacity", time=sfn.WaitTime.seconds_path("$.wait.seconds"))
    back_off = sfn.Pass(
        scope,
        "BackOff",
        parameters={
            "seconds": sfn.JsonPath.math_add(
                sfn.JsonPath.number_at("$.wait.seconds"), sfn.JsonPath.number_at("$.wait.seconds")
            ),
            "waited": sfn.JsonPath.math_add(
                sfn.JsonPath.number_at("$.wait.waited"), sfn.JsonPath.number_at("$.wait.seconds")
            ),
        },
        result_path="$.wait",
    )
    cap_back_off = (
        sfn.Choice(scope, "CapBackOff")
        .when(
            sfn.Condition.number_greater_than("$.wait.seconds", MAX_CAPACITY_WAIT_SECONDS),
            sfn.Pass(
                scope,
                "UseLongestWait",
                parameters={
                    "seconds": MAX_CAPACITY_WAIT_SECONDS,
                    "waited": sfn.JsonPath.number_at("$.wait.waited"),
                },
                result_path="$.wait",
            ).next(start),
        )
        .otherwise(start)
    )
    return (
        sfn.Choice(scope, "WaitedTooLong")
        .when(sfn.Condition.number_greater_than_equals("$.wait.waited", capacity_wait_limit_seconds), give_up)
        .otherwise(wait_for_capacity.next(back_off).next(cap_back_off))
    )


def _resolve_existing_job(
    scope: Construct, start: sfn.CustomState, job_function: PlatformFunction
) -> tuple[tasks.LambdaInvoke, sfn.Choice]:
    """ResourceInUse: this trial's own earlier attempt (a redrive, or a create whose answer was lost).

    The Lambda that finds it, and the Choice of what to do with it."""
    find_existing = tasks.LambdaInvoke(
        scope,
        "FindExistingJob",
        lambda_function=job_function.function,
        payload=sfn.TaskInput.from_object(
            {"item": sfn.JsonPath.object_at("$.item"), "current": sfn.JsonPath.object_at("$.current")}
        ),
        payload_response_only=True,
        result_path="$.resolution",
    )
    retry_lambda_throttling(find_existing)
    next_poll = sfn.Pass(
        scope,
        "NextPoll",
        parameters={
            "seconds": sfn.JsonPath.math_add(
                sfn.JsonPath.number_at("$.poll.seconds"), sfn.JsonPath.number_at("$.poll.seconds")
            )
        },
        result_path="$.poll",
    )
    cap_poll = (
        sfn.Choice(scope, "CapPoll")
        .when(
            sfn.Condition.number_greater_than("$.poll.seconds", MAX_POLL_SECONDS),
            sfn.Pass(
                scope,
                "UseLongestPoll",
                result=sfn.Result.from_number(MAX_POLL_SECONDS),
                result_path="$.poll.seconds",
            ).next(find_existing),
        )
        .otherwise(find_existing)
    )
    wait_for_existing = sfn.Wait(scope, "WaitForExistingJob", time=sfn.WaitTime.seconds_path("$.poll.seconds"))
    reuse = sfn.Pass(
        scope,
        "ReuseJob",
        parameters={"item": sfn.JsonPath.object_at("$.item"), "job": sfn.JsonPath.object_at("$.resolution.job")},
    )
    next_attempt = sfn.Pass(
        scope,
        "NextAttempt",
        parameters={
            "job_name": sfn.JsonPath.string_at("$.resolution.job_name"),
            "attempt": sfn.JsonPath.number_at("$.resolution.attempt"),
        },
        result_path="$.current",
    )
    existing = (
        sfn.Choice(scope, "ExistingJob")
        .when(
            sfn.Condition.string_equals("$.resolution.action", "wait"),
            wait_for_existing.next(next_poll).next(cap_poll),
        )
        .when(sfn.Condition.string_equals("$.resolution.action", "reuse"), reuse)
        .when(sfn.Condition.string_equals("$.resolution.action", "retry"), next_attempt.next(start))
        .otherwise(
            sfn.Fail(scope, "GaveUp", error="TrainingAttemptsExhausted", cause="Every attempt of this trial failed")
        )
    )
    return find_existing, existing
