"""How events reach the platform's functions: EventBridge's retries, Lambda's, then a dead-letter queue.

A rule retries for hours of an outage before it gives an event to the dead-letter queue; a function
invoked asynchronously retries twice, then its failed invocation keeps the event in the same queue.
Each queue alarms (mlops_constructs/alarms.py), so nothing is lost without a person being told.
"""

from __future__ import annotations

import jsii
from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from config.naming import Names
from mlops_constructs.encryption import key_used_through
from mlops_constructs.functions import PlatformFunction
from mlops_platform.registry.approval_settings import API_CALL_DETAIL_TYPE, API_EVENT_SOURCE, APPROVED, APPROVING_CALL

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


@jsii.implements(lambda_.IDestination)
class QueueDestination:
    """An SQS on-failure destination that grants nothing itself: CDK's ``SqsDestination`` grants the queue key's
    encrypt and decrypt actions with no ``kms:ViaService``; ``keep_failed_invocations`` grants what the role needs."""

    def __init__(self, queue: sqs.IQueue) -> None:
        self.queue = queue

    def bind(
        self, scope: Construct, fn: lambda_.IFunction, *, type: lambda_.DestinationType | None = None
    ) -> lambda_.DestinationConfig:
        return lambda_.DestinationConfig(destination=self.queue.queue_arn)


def keep_failed_invocations(parts: PlatformFunction, queue: sqs.IQueue) -> None:
    """Failed asynchronous invocations of ``parts``' function keep their event in ``queue``.

    Lambda sends the record with the function's execution role, which needs ``sqs:SendMessage``
    ("Capturing records of Lambda asynchronous invocations":
    https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html), and for an encrypted queue
    ``kms:GenerateDataKey`` and ``kms:Decrypt`` on its key, which SQS uses for the sender
    (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-key-management.html),
    through SQS only.
    """
    parts.function.configure_async_invoke(
        on_failure=QueueDestination(queue),
        retry_attempts=ASYNC_RETRY_ATTEMPTS,
        max_event_age=RULE_MAX_EVENT_AGE,
    )
    parts.role.add_to_policy(
        iam.PolicyStatement(sid="KeepFailedInvocations", actions=["sqs:SendMessage"], resources=[queue.queue_arn])
    )
    if queue.encryption_master_key is not None:
        parts.role.add_to_policy(
            key_used_through(
                parts.role,
                queue.encryption_master_key,
                "sqs",
                ["kms:Decrypt", "kms:GenerateDataKey"],
                sid="KeepFailedInvocationsKey",
            )
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


def approving_calls(names: Names, region: str, account: str) -> events.EventPattern:
    """CloudTrail's records of successful ``UpdateModelPackage`` calls that approve a package of ``names``' groups.

    A plain string prefix (an event pattern takes no tokens inside a prefix): the commercial partition, the only
    one config accepts (config/schema.py, COMMERCIAL_REGIONS). A failed call carries ``errorCode``.
    """
    packages = f"arn:aws:sagemaker:{region}:{account}:model-package/{names.prefix}-"
    return events.EventPattern(
        source=["aws.sagemaker"],
        detail_type=[API_CALL_DETAIL_TYPE],
        detail={
            "eventSource": [API_EVENT_SOURCE],
            "eventName": [APPROVING_CALL],
            "errorCode": events.Match.does_not_exist(),
            "requestParameters": {"modelApprovalStatus": [APPROVED], "modelPackageArn": events.Match.prefix(packages)},
        },
    )
