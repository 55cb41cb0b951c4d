"""The customer-managed keys (an environment's, the delivery pipeline's) and the grants that use them.

Services that write encrypted topics, queues and log groups need a key-policy grant; without it AWS drops
their messages silently (an alarm that never notifies, a DLQ that stays empty), and no offline tool
notices: tests/infra/test_foundation.py and tests/infra/test_pipeline.py check these statements.
A role's grant on a key goes through one service (``kms:ViaService``): each key encrypts a whole
environment or the whole pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct, IConstruct

# Services that publish to the platform's encrypted SNS topics and SQS queues.
PUBLISHING_SERVICES = {
    "cloudwatch.amazonaws.com": "CloudWatch alarms publishing to encrypted topics",
    "events.amazonaws.com": "EventBridge rules delivering to encrypted topics and queues; the progress bus",
    "s3.amazonaws.com": "S3 event notifications to encrypted topics and queues",
}
PUBLISH_ACTIONS = ["kms:Decrypt", "kms:GenerateDataKey*"]
# DynamoDB encrypts a table's items with data keys under the platform key, for the caller.
TABLE_ITEM_KEY_ACTIONS = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]


def key_used_through(
    scope: IConstruct, key: kms.IKey, service: str, actions: Sequence[str], *, sid: str | None = None
) -> iam.PolicyStatement:
    """``actions`` on ``key``, only in requests that ``service`` makes in ``scope``'s region for the caller."""
    return iam.PolicyStatement(
        sid=sid,
        actions=list(actions),
        resources=[key.key_arn],
        conditions={"StringEquals": {"kms:ViaService": f"{service}.{Stack.of(scope).region}.amazonaws.com"}},
    )


def grant_table_items(
    role: iam.Role,
    table: dynamodb.ITableV2,
    key: kms.IKey,
    actions: Sequence[str],
    *,
    sid: str,
    key_sid: str | None = None,
) -> None:
    """``actions`` on ``table``'s items for ``role``, and the key its items are encrypted with, through DynamoDB."""
    role.add_to_policy(iam.PolicyStatement(sid=sid, actions=list(actions), resources=[table.table_arn]))
    role.add_to_policy(key_used_through(role, key, "dynamodb", TABLE_ITEM_KEY_ACTIONS, sid=key_sid))


def _service_publishes(stack: Stack, service: str, actions: list[str]) -> iam.PolicyStatement:
    return iam.PolicyStatement(
        sid=f"Allow{service.split('.')[0].capitalize()}ToUseKey",
        principals=[iam.ServicePrincipal(service)],
        actions=actions,
        resources=["*"],
        conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
    )


def _cloudwatch_logs_encrypts(stack: Stack) -> iam.PolicyStatement:
    """CloudWatch Logs encrypts log groups with the key; its documented condition is the encryption
    context of log groups in this account and region."""
    return iam.PolicyStatement(
        sid="AllowCloudWatchLogsToUseKey",
        principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
        actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
        resources=["*"],
        conditions={
            "ArnLike": {
                "kms:EncryptionContext:aws:logs:arn": (
                    f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:*"
                )
            }
        },
    )


def _rotating_key(scope: Construct, *, alias: str, description: str, removal_policy: RemovalPolicy) -> kms.Key:
    return kms.Key(
        scope,
        "Key",
        alias=alias,
        description=description,
        enable_key_rotation=True,
        pending_window=Duration.days(30),
        removal_policy=removal_policy,
    )


class PlatformKey(Construct):
    """A rotating customer-managed key for every zone, topic, queue, table and log group of an environment."""

    def __init__(self, scope: Construct, id: str, *, alias: str, removal_policy: RemovalPolicy) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        description = f"Encrypts the ML platform's data, messages and logs ({alias})"
        self.key = _rotating_key(self, alias=alias, description=description, removal_policy=removal_policy)
        for service in PUBLISHING_SERVICES:
            # EventBridge also checks the key of an encrypted event bus (DescribeKey).
            describe = ["kms:DescribeKey"] if service == "events.amazonaws.com" else []
            self.key.add_to_resource_policy(_service_publishes(stack, service, PUBLISH_ACTIONS + describe))
        self.key.add_to_resource_policy(_cloudwatch_logs_encrypts(stack))


class PipelineKey(Construct):
    """The pipeline stack's own key: its build logs and its topic. Only the services that write them may use it."""

    def __init__(self, scope: Construct, id: str, *, alias: str) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        description = f"Encrypts the delivery pipeline's build logs and notifications ({alias})"
        self.key = _rotating_key(self, alias=alias, description=description, removal_policy=RemovalPolicy.RETAIN)
        # EventBridge delivers the pipeline's events to the encrypted topic.
        self.key.add_to_resource_policy(_service_publishes(stack, "events.amazonaws.com", PUBLISH_ACTIONS))
        self.key.add_to_resource_policy(_cloudwatch_logs_encrypts(stack))
