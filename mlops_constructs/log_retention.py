"""The platform's log groups: encrypted with its key, kept as long as config says.

Config says days; CDK's ``RetentionDays`` enum says names. One mapping, checked by the tests.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from config.schema import LOG_RETENTION_DAYS

# RetentionDays lists CloudWatch's periods in ascending order, then INFINITE.
_BY_DAYS = dict(
    zip(LOG_RETENTION_DAYS, [member for member in logs.RetentionDays if member.name != "INFINITE"], strict=True)
)


def retention_days(days: int) -> logs.RetentionDays:
    return _BY_DAYS[days]


def encrypted_log_group(
    scope: Construct, id: str, *, key: kms.IKey, log_retention_days: int, removal_policy: RemovalPolicy
) -> logs.LogGroup:
    """A log group encrypted with ``key`` that keeps its events ``log_retention_days``."""
    return logs.LogGroup(
        scope, id, retention=retention_days(log_retention_days), encryption_key=key, removal_policy=removal_policy
    )
