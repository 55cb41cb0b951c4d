"""Alarms that notify the environment's topic as soon as a metric is above zero (a DLQ, errors, quarantine)."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

PERIOD = Duration.minutes(5)


def alarm_above_zero(scope: Construct, topic: sns.ITopic, alarms: Mapping[str, tuple[str, cloudwatch.IMetric]]) -> None:
    """One alarm per ``{id: (description, metric)}``, created in ``scope`` under that id; no data is not a breach."""
    action = cloudwatch_actions.SnsAction(topic)
    for id, (description, metric) in alarms.items():
        alarm = cloudwatch.Alarm(
            scope,
            id,
            alarm_description=description,
            metric=metric,
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(action)


def messages_waiting(queue: sqs.IQueue, period: Duration = PERIOD) -> cloudwatch.Metric:
    """The most messages visible in ``queue`` during ``period``: in a dead-letter queue, work waiting for a person."""
    return queue.metric_approximate_number_of_messages_visible(period=period, statistic="Maximum")


def errors(function: lambda_.IFunction, period: Duration = PERIOD) -> cloudwatch.Metric:
    """The invocations of ``function`` that failed during ``period``."""
    return function.metric_errors(period=period, statistic="Sum")
