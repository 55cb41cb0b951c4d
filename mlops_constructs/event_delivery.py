"""How events reach the platform's functions: EventBridge's retries, Lambda's, then a dead-letter queue.

A rule retries for hours of an outage before it gives an event to the dead-letter queue; a function
invoked asynchronously retries twice, then its failed invocation keeps the event in the same queue.
Each queue alarms (mlops_constructs/alarms.py), so nothing is lost without a person being told.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_sqs as sqs

from config.naming import Names
from mlops_constructs.encryption import key_used_through
from mlops_constructs.functions import PlatformFunction
from mlops_constructs.nag import acknowledge

RULE_RETRY_ATTEMPTS = 8
RULE_MAX_EVENT_AGE = Duration.hours(6)
ASYNC_RETRY_ATTEMPTS = 2
PACKAGE_DETAIL_TYPE = "SageMaker Model Package State Change"


def function_target(function: lambda_.IFunction, *, dead_letter_queue: sqs.IQueue) -> targets.LambdaFunction:
    """A rule target that retries for hours, then keeps the event in ``dead_letter_queue``."""
    return targets.LambdaFunction(
        function,
        dead_letter_queue=dead_letter_queue,
        retry_attempts=RULE_RETRY_ATTEMPTS,
        max_event_age=RULE_MAX_EVENT_AGE,
    )


def keep_failed_invocations(parts: PlatformFunction, queue: sqs.IQueue) -> None:
    """Failed asynchronous invocations of ``parts``' function keep their event in ``queue`` (CDK's SQS destination)."""
    parts.function.configure_async_invoke(
        on_failure=destinations.SqsDestination(queue),
        retry_attempts=ASYNC_RETRY_ATTEMPTS,
        max_event_age=RULE_MAX_EVENT_AGE,
    )
    for action in ("kms:ReEncrypt*", "kms:GenerateDataKey*"):
        acknowledge(
            parts.policy,
            f"AwsSolutions-IAM5[Action::{action}]",
            "CDK's SQS destination grants the key's encrypt actions for the dead-letter queue; "
            "the grant covers the platform key only.",
        )


def quarantine_to(parts: PlatformFunction, queue: sqs.IQueue, key: kms.IKey) -> None:
    """``parts``' function may send the events it cannot read to ``queue``, encrypted with ``key`` through SQS."""
    parts.role.add_to_policy(
        iam.PolicyStatement(sid="QuarantineMalformedEvents", actions=["sqs:SendMessage"], resources=[queue.queue_arn])
    )
    actions = ["kms:GenerateDataKey", "kms:Decrypt"]
    parts.role.add_to_policy(key_used_through(parts.role, key, "sqs", actions, sid="EncryptQuarantineThroughSqs"))


def package_state_changes(names: Names, statuses: tuple[str, ...]) -> events.EventPattern:
    """``SageMaker Model Package State Change`` events of this environment's package groups to ``statuses``."""
    return events.EventPattern(
        source=["aws.sagemaker"],
        detail_type=[PACKAGE_DETAIL_TYPE],
        detail={
            "ModelPackageGroupName": events.Match.prefix(f"{names.prefix}-"),
            "ModelApprovalStatus": list(statuses),
        },
    )
