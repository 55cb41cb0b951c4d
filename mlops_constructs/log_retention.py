"""Config says days; CDK's ``RetentionDays`` enum says names. One mapping, checked by the tests."""

from __future__ import annotations

from aws_cdk import aws_logs as logs

from config.schema import LOG_RETENTION_DAYS

# RetentionDays lists CloudWatch's periods in ascending order, then INFINITE.
_BY_DAYS = dict(
    zip(LOG_RETENTION_DAYS, [member for member in logs.RetentionDays if member.name != "INFINITE"], strict=True)
)


def retention_days(days: int) -> logs.RetentionDays:
    return _BY_DAYS[days]
