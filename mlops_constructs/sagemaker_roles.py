"""What every SageMaker execution role needs beside its data: its own log group and its metrics namespaces."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms


def grant_logs_and_metrics(role: iam.Role, *, log_group_name: str, namespaces: list[str], sids: tuple[str, str]) -> str:
    """Write ``log_group_name``'s streams and put metrics in ``namespaces`` only; the log group's ARN."""
    stack = Stack.of(role)
    log_group = f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:{log_group_name}"
    role.add_to_policy(
        iam.PolicyStatement(
            sid=sids[0],
            actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            resources=[log_group, f"{log_group}:*"],
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid=sids[1],
            actions=["cloudwatch:PutMetricData"],
            resources=["*"],  # PutMetricData has no resource-level permissions: the namespace condition limits it
            conditions={
                "StringEquals": {"cloudwatch:namespace": namespaces[0] if len(namespaces) == 1 else namespaces}
            },
        )
    )
    return log_group


def grant_volume_encryption(role: iam.Role, key: kms.IKey) -> None:
    """Volumes are encrypted with the platform key where the instance type allows it: SageMaker makes the grant.

    ``kms:GrantIsForAWSResource`` (the grant is made by an AWS service for a resource of it) instead of
    ``kms:ViaService``: the grant is for the job's volumes, created by the service on the job's behalf
    (https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html#conditions-kms-grant-is-for-aws-resource).
    """
    role.add_to_policy(
        iam.PolicyStatement(
            sid="EncryptVolumes",
            actions=["kms:CreateGrant", "kms:DescribeKey"],
            resources=[key.key_arn],
            conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
        )
    )
