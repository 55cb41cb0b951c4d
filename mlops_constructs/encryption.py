"""The environment's customer-managed key and the service grants that encrypted topics and queues need."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

# Services that publish to the platform's encrypted SNS topics and SQS queues. Without a key-policy
# grant AWS drops their messages silently (an alarm that never notifies, a DLQ that stays empty),
# and no offline tool notices: tests/infra/test_foundation.py checks these statements.
PUBLISHING_SERVICES = {
    "cloudwatch.amazonaws.com": "CloudWatch alarms publishing to encrypted topics",
    "events.amazonaws.com": "EventBridge rules delivering to encrypted topics and queues; the progress bus",
    "s3.amazonaws.com": "S3 event notifications to encrypted topics and queues",
}


class PlatformKey(Construct):
    """A rotating customer-managed key for every zone, topic, queue, table and log group of an environment."""

    def __init__(self, scope: Construct, id: str, *, alias: str, removal_policy: RemovalPolicy) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        self.key = kms.Key(
            self,
            "Key",
            alias=alias,
            description=f"Encrypts the ML platform's data, messages and logs ({alias})",
            enable_key_rotation=True,
            pending_window=Duration.days(30),
            removal_policy=removal_policy,
        )
        for service in PUBLISHING_SERVICES:
            self.key.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=f"Allow{service.split('.')[0].capitalize()}ToUseKey",
                    principals=[iam.ServicePrincipal(service)],
                    # EventBridge also checks the key of an encrypted event bus (DescribeKey).
                    actions=["kms:Decrypt", "kms:GenerateDataKey*"]
                    + (["kms:DescribeKey"] if service == "events.amazonaws.com" else []),
                    resources=["*"],
                    conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
                )
            )
        # CloudWatch Logs encrypts log groups with the key; its documented condition is the
        # encryption context of log groups in this account and region.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
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
        )
