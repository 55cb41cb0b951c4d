"""The drift monitor's alarms: drift found on an endpoint, and runs that failed or could not start.

Per endpoint ``<project>-<env>-drift-<endpoint key>`` on ``DriftDetected >= 1`` with the dimensions
Endpoint, Tenant and Model (the retrain trigger reads Tenant and Model from them). A run that fails,
times out or cannot start notifies the environment's topic.
"""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from config.naming import Names
from config.serving import EndpointConfig
from mlops_constructs.alarms import alarm_above_zero
from mlops_constructs.drift_job import DRIFT_DETECTED, report_prefix
from mlops_constructs.model_pointers import construct_id


def drift_alarm(
    scope: Construct, *, names: Names, topic: sns.ITopic, window_minutes: int, key: str, endpoint: EndpointConfig
) -> cloudwatch.Alarm:
    endpoint_name = names.resource(key)
    alarm = cloudwatch.Alarm(
        scope,
        construct_id(key, "DriftAlarm"),
        alarm_name=names.drift_alarm(key),
        alarm_description=(
            f"The drift monitor found drift on endpoint {endpoint_name} (tenant {endpoint.tenant}, model "
            f"{endpoint.model}); reports: the artifacts zone's {report_prefix(endpoint, endpoint_name)}"
        ),
        metric=cloudwatch.Metric(
            namespace=names.drift_namespace,
            metric_name=DRIFT_DETECTED,
            dimensions_map={"Endpoint": endpoint_name, "Tenant": endpoint.tenant, "Model": endpoint.model},
            statistic="Maximum",
            # One data point per run: the period is the interval between runs.
            period=Duration.minutes(window_minutes),
        ),
        threshold=1,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluation_periods=1,
        # A run publishes DriftDetected 0 or 1, empty windows included; no data means no run (its failure alarms).
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )
    alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))
    return alarm


def failure_alarm(
    scope: Construct,
    *,
    names: Names,
    topic: sns.ITopic,
    state_machine: sfn.StateMachine,
    rules: Iterable[events.Rule],
) -> None:
    """Runs that fail, time out or are aborted, and schedules that could not start a run."""
    period = Duration.minutes(5)
    metrics: dict[str, cloudwatch.IMetric] = {
        "failed": state_machine.metric_failed(period=period, statistic="Sum"),
        "timedOut": state_machine.metric_timed_out(period=period, statistic="Sum"),
        "aborted": state_machine.metric_aborted(period=period, statistic="Sum"),
    }
    for index, rule in enumerate(rules):
        metrics[f"notStarted{index}"] = cloudwatch.Metric(
            namespace="AWS/Events",
            metric_name="FailedInvocations",
            dimensions_map={"RuleName": rule.rule_name},
            statistic="Sum",
            period=period,
        )
    alarm_above_zero(
        scope,
        topic,
        {
            "RunFailedAlarm": (
                f"A drift monitoring run of {names.environment} failed, timed out, was aborted or could not "
                "start (see the drift monitor state machine's executions)",
                cloudwatch.MathExpression(
                    expression=" + ".join(f"FILL({id}, 0)" for id in metrics),
                    using_metrics=metrics,
                    period=period,
                    label="Failed drift monitoring runs",
                ),
            )
        },
    )
