"""``Custom::VariantWeights``: applies an endpoint's effective A/B weights in place (mlops_constructs/endpoint.py).

Built on the custom-resource Provider framework because applying weights takes a completion check:
``UpdateEndpointWeightsAndCapacities`` is refused while the endpoint is creating or updating (a
blue/green deployment can take an hour), so ``is_complete`` (lambda/variant_weights) waits for
``InService``, applies the weights, and waits again until SageMaker reports them. It changes
weights only, never instance counts, so autoscaling keeps what it chose. Once they are in place it
publishes them (``VariantWeight``, ``VariantTrafficShare`` in ``<project>/<env>``), which the dashboard
graphs: SageMaker publishes no weight metric.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import custom_resources as cr
from constructs import Construct

from config.naming import Names
from mlops_constructs.functions import platform_function
from mlops_constructs.log_retention import encrypted_log_group
from mlops_constructs.nag import acknowledge, acknowledge_wildcard_resource, ignore_redundant_dependency

# Blue/green deployments of GPU fleets can take long; the weights wait for the endpoint this long.
TOTAL_TIMEOUT = Duration.hours(2)
QUERY_INTERVAL = Duration.seconds(30)


class VariantWeightsProvider(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        names: Names,
        key: kms.IKey,
        endpoint_arns: Sequence[str],
        log_retention_days: int,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, id)
        common = {
            "names": names,
            "key": key,
            # Both functions import the same handler module, which reads the namespace at import.
            "environment": {"METRICS_NAMESPACE": names.metrics_namespace},
            "log_retention_days": log_retention_days,
            "removal_policy": removal_policy,
            "folder": "variant_weights",
        }
        on_event = platform_function(
            self,
            "OnEvent",
            handler="handler.on_event",
            description="Variant weights resource: accepts the effective weights of an endpoint",
            role_description="Variant weights resource (on event): makes no AWS calls",
            **common,  # type: ignore[arg-type]
        )
        is_complete = platform_function(
            self,
            "IsComplete",
            handler="handler.is_complete",
            description="Variant weights resource: applies the weights in place once the endpoint is in service",
            role_description=(
                "Variant weights resource: describe the endpoints, update their weights in place, publish them"
            ),
            **common,  # type: ignore[arg-type]
        )
        if endpoint_arns:
            is_complete.role.add_to_policy(
                iam.PolicyStatement(
                    sid="ApplyWeights",
                    actions=["sagemaker:DescribeEndpoint", "sagemaker:UpdateEndpointWeightsAndCapacities"],
                    resources=list(endpoint_arns),
                )
            )
            is_complete.role.add_to_policy(
                iam.PolicyStatement(
                    sid="PublishWeights",
                    actions=["cloudwatch:PutMetricData"],
                    # PutMetricData has no resource-level permissions: the namespace condition limits it.
                    resources=["*"],
                    conditions={"StringEquals": {"cloudwatch:namespace": names.metrics_namespace}},
                )
            )
            acknowledge(
                is_complete.policy,
                "AwsSolutions-IAM5[Resource::*]",
                "X-Ray's PutTraceSegments and PutTelemetryRecords and cloudwatch:PutMetricData support no "
                "resource-level permissions; the metrics are limited to the platform's namespace by condition.",
            )

        # The framework's own functions get a role and an encrypted log group of ours, not
        # AWSLambdaBasicExecutionRole and an unencrypted default.
        framework_logs = encrypted_log_group(
            self, "FrameworkLogs", key=key, log_retention_days=log_retention_days, removal_policy=removal_policy
        )
        # Two roles: one shared role would make a cycle (onEvent starts the waiter, which calls isComplete).
        framework_roles = [
            iam.Role(
                self,
                f"Framework{kind}Role",
                assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                description=f"Custom-resource framework of the variant weights ({kind}): invokes a handler, logs",
            )
            for kind in ("OnEvent", "Completion")
        ]
        for role in framework_roles:
            framework_logs.grant_write(role)
        waiter_logs = encrypted_log_group(
            self, "WaiterLogs", key=key, log_retention_days=log_retention_days, removal_policy=removal_policy
        )
        self.provider = cr.Provider(
            self,
            "Provider",
            on_event_handler=on_event.function,
            is_complete_handler=is_complete.function,
            query_interval=QUERY_INTERVAL,
            total_timeout=TOTAL_TIMEOUT,
            framework_on_event_role=framework_roles[0],
            framework_complete_and_timeout_role=framework_roles[1],
            log_group=framework_logs,
            provider_function_env_encryption=key,
            disable_waiter_state_machine_logging=False,
            waiter_state_machine_log_options=cr.LogOptions(
                destination=waiter_logs, level=sfn.LogLevel.ALL, include_execution_data=False
            ),
        )
        self.service_token = self.provider.service_token
        self._acknowledge(framework_roles, framework_logs, [on_event.function, is_complete.function])

    def _acknowledge(self, roles: list[iam.Role], log_group: logs.LogGroup, handlers: list[lambda_.Function]) -> None:
        """Findings inside aws-cdk-lib's Provider framework (not ours to change), where they arise."""
        for role in roles:
            policy = role.node.find_child("DefaultPolicy")
            for handler in handlers:
                acknowledge_wildcard_resource(
                    policy,
                    f"{handler.function_arn}:*",
                    "The Provider framework may invoke any version of its own handler functions.",
                )
            acknowledge_wildcard_resource(
                policy,
                f"{log_group.log_group_arn}:*",
                "Log streams are created at run time in the framework's log group.",
            )
        for function_id in ("framework-onEvent", "framework-isComplete", "framework-onTimeout"):
            function = self.provider.node.find_child(function_id)
            ignore_redundant_dependency(function)
            acknowledge(
                function,
                "AwsSolutions-L1",
                "aws-cdk-lib pins the custom-resource Provider framework's runtime; it runs only at deploy time.",
            )
        waiter = self.provider.node.find_child("waiter-state-machine")
        ignore_redundant_dependency(waiter)
        acknowledge(
            waiter,
            "AwsSolutions-SF2",
            "aws-cdk-lib's Provider waiter state machine has no X-Ray setting; it only polls the completion check.",
        )
        waiter_policy = waiter.node.find_child("Role").node.find_child("DefaultPolicy")
        acknowledge(
            waiter_policy,
            "AwsSolutions-IAM5[Resource::*]",
            "Step Functions log delivery (logs:CreateLogDelivery and related) supports no resource-level permissions.",
        )
        for function_id in ("framework-isComplete", "framework-onTimeout"):
            function = self.provider.node.find_child(function_id)
            assert isinstance(function, lambda_.Function)
            acknowledge_wildcard_resource(
                waiter_policy,
                f"{function.function_arn}:*",
                "The Provider's waiter may invoke any version of the framework's own functions.",
            )
