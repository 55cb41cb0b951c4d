"""An endpoint's safe rollout: its two rollback alarms and the blue/green deployment they roll back.

Two alarms per endpoint, whatever its variant count, stay within ``AutoRollbackConfiguration``'s 10:
each is metric math over every variant (at most 10 metrics, the limit of a math alarm; config
allows 10 variants). ``endpoint.py`` builds the endpoint that uses them.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from constructs import Construct

from config.serving import EndpointConfig, Rollout, ServingAlarms, VariantConfig

# AutoRollbackConfig.Alarms holds 1 to 10 alarms
# (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_AutoRollbackConfig.html), and an alarm on
# metric math reads at most 10 metrics
# (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarm-limits.html).
MAX_ROLLBACK_ALARMS = 10
MAX_METRICS_PER_ALARM = 10


def rollback_alarms(
    scope: Construct,
    key: str,
    endpoint_name: str,
    endpoint: EndpointConfig,
    settings: ServingAlarms,
    topic: sns.ITopic,
) -> list[cloudwatch.Alarm]:
    """The endpoint's 5XX and p99-latency alarms, each over every variant: they roll a deployment back.

    Stable names (the rollback configuration lists them). Two per endpoint whatever its variant
    count, so ``AutoRollbackConfiguration`` stays within its 10 alarms; a composite alarm would
    not do, as ``DescribeAlarms`` returns composite alarms only to a permission on ``*``
    (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_DescribeAlarms.html).
    During a blue/green deployment both fleets report under the same variant names, so the
    old fleet's errors count too: the 5XX alarm fires on a count of errors a minute across the
    endpoint (``errors_5xx_per_minute``, at least 2), never on a single one.
    """
    variants = endpoint.variants
    if len(variants) > MAX_METRICS_PER_ALARM:
        raise ValueError(f"endpoint {key}: {len(variants)} variants; an alarm reads {MAX_METRICS_PER_ALARM}")

    def metric(name: str, variant: VariantConfig, statistic: str) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace="AWS/SageMaker",
            metric_name=name,
            dimensions_map={"EndpointName": endpoint_name, "VariantName": variant.name},
            statistic=statistic,
            period=Duration.minutes(1),
        )

    errors = {f"e{i}": metric("Invocation5XXErrors", v, "Sum") for i, v in enumerate(variants)}
    latencies = {f"l{i}": metric("ModelLatency", v, "p99") for i, v in enumerate(variants)}  # microseconds
    action = cloudwatch_actions.SnsAction(topic)
    names = ", ".join(variant.name for variant in variants)
    errors_name, latency_name = rollback_alarm_names(endpoint_name)
    errors_alarm = cloudwatch.Alarm(
        scope,
        "Errors",
        alarm_name=errors_name,
        alarm_description=(
            f"{endpoint_name} answered {settings.errors_5xx_per_minute} or more 5XX errors in a minute "
            f"(variants {names} together); rolls back a deployment in progress."
        ),
        # A variant without data in a minute counts 0, not "missing": the sum stays defined.
        metric=cloudwatch.MathExpression(
            expression="SUM([" + ", ".join(f"FILL({id}, 0)" for id in errors) + "])",
            using_metrics=errors,
            label="5XX errors of every variant",
            period=Duration.minutes(1),
        ),
        threshold=settings.errors_5xx_per_minute,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluation_periods=1,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )
    latency_alarm = cloudwatch.Alarm(
        scope,
        "Latency",
        alarm_name=latency_name,
        alarm_description=(
            f"{endpoint_name}: p99 model latency of a variant ({names}) above "
            f"{settings.latency_p99_milliseconds} ms for 2 of 3 minutes; rolls back a deployment in progress."
        ),
        metric=cloudwatch.MathExpression(
            expression="MAX([" + ", ".join(latencies) + "])",
            using_metrics=latencies,
            label="p99 model latency of the slowest variant",
            period=Duration.minutes(1),
        ),
        threshold=settings.latency_p99_milliseconds * 1000,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluation_periods=3,
        datapoints_to_alarm=2,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )
    for alarm in (errors_alarm, latency_alarm):
        alarm.add_alarm_action(action)
    return [errors_alarm, latency_alarm]


def grant_describe_alarms(role: iam.Role, stack: Stack, alarm_names: tuple[str, ...]) -> None:
    """``cloudwatch:DescribeAlarms`` on the rollback alarms, for the execution role, as guardrails require.

    "Ensure that your IAM execution role has permission to perform the cloudwatch:DescribeAlarms
    action on the auto-rollback alarms you specify"
    (https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-configuration.html). An
    endpoint has no role of its own; the execution role is its models' (CreateModel's
    ``ExecutionRoleArn``), this construct's ``ModelRole``. Named by ARN from the alarms' stable
    names, so the policy does not wait for the alarms (nor they for it).
    """
    role.add_to_policy(
        iam.PolicyStatement(
            sid="DescribeRollbackAlarms",
            actions=["cloudwatch:DescribeAlarms"],
            resources=[
                stack.format_arn(
                    service="cloudwatch",
                    resource="alarm",
                    resource_name=name,
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                )
                for name in alarm_names
            ],
        )
    )


def rollback_alarm_names(endpoint_name: str) -> tuple[str, str]:
    """``<endpoint>-5xx`` and ``<endpoint>-p99-latency``: fixed, so the policy and the rollback list agree."""
    return f"{endpoint_name}-5xx", f"{endpoint_name}-p99-latency"


def deployment_config(
    key: str, rollout: Rollout, alarms: list[cloudwatch.Alarm]
) -> sagemaker.CfnEndpoint.DeploymentConfigProperty:
    """Blue/green with the configured traffic routing, rolled back by the endpoint's alarms.

    ``CANARY`` shifts ``canary_percentage`` of each variant's new fleet first and bakes for
    ``canary_wait_seconds``; SageMaker takes a canary of at most half a variant's instances, so
    config refuses it where a variant runs one (config/serving.py). ``ALL_AT_ONCE`` shifts all
    traffic at once; either way ``termination_wait_seconds`` is the final baking period, during
    which the alarms still roll back, before the old fleet goes
    (https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-blue-green-all-at-once.html).
    """
    if len(alarms) > MAX_ROLLBACK_ALARMS:
        raise ValueError(f"endpoint {key}: {len(alarms)} rollback alarms; SageMaker takes at most 10")
    if rollout.traffic_routing == "canary":
        routing = sagemaker.CfnEndpoint.TrafficRoutingConfigProperty(
            type="CANARY",
            canary_size=sagemaker.CfnEndpoint.CapacitySizeProperty(
                type="CAPACITY_PERCENT", value=rollout.canary_percentage
            ),
            wait_interval_in_seconds=rollout.canary_wait_seconds,
        )
    else:
        routing = sagemaker.CfnEndpoint.TrafficRoutingConfigProperty(type="ALL_AT_ONCE")
    return sagemaker.CfnEndpoint.DeploymentConfigProperty(
        blue_green_update_policy=sagemaker.CfnEndpoint.BlueGreenUpdatePolicyProperty(
            traffic_routing_configuration=routing,
            termination_wait_in_seconds=rollout.termination_wait_seconds,
            maximum_execution_timeout_in_seconds=rollout.maximum_execution_timeout_seconds,
        ),
        auto_rollback_configuration=sagemaker.CfnEndpoint.AutoRollbackConfigProperty(
            alarms=[sagemaker.CfnEndpoint.AlarmProperty(alarm_name=alarm.alarm_name) for alarm in alarms]
        ),
    )
