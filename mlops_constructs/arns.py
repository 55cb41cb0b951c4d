"""ARNs of what the platform names at run time, for grants that stop at this environment's names."""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_stepfunctions as sfn
from constructs import IConstruct

from config.naming import Names


def executions_arn(scope: IConstruct, state_machine: sfn.StateMachine) -> str:
    """Every execution of ``state_machine`` (their names are chosen when they start), as ``scope``'s stack writes it."""
    return Stack.of(scope).format_arn(
        service="states",
        resource="execution",
        resource_name=f"{state_machine.state_machine_name}:*",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )


def model_packages_arn(scope: IConstruct, names: Names) -> str:
    """Every model package of this environment's groups (one group per tenant and model, named at run time)."""
    return Stack.of(scope).format_arn(
        service="sagemaker", resource="model-package", resource_name=f"{names.prefix}-*/*"
    )
