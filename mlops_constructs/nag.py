"""Acknowledging a cdk-nag finding: always on one construct, always with a reason.

cdk-nag 3 has no blanket suppression: each finding is acknowledged where it arises, so a new
finding anywhere else still fails ``make synth``.
"""

from __future__ import annotations

import json
from typing import Any

import jsii
from aws_cdk import Acknowledgment, CfnResource, Stack, Validations
from constructs import IConstruct, IValidation

MIN_REASON_LENGTH = 20


def acknowledge(construct: IConstruct, finding: str, reason: str) -> None:
    """Acknowledge ``finding`` (a rule id, or ``Rule[detail]`` for one finding of a rule) on ``construct``."""
    if len(reason.strip()) < MIN_REASON_LENGTH:
        raise ValueError(f"acknowledging {finding} needs a reason that explains it, not {reason!r}")
    Validations.of(construct).acknowledge(Acknowledgment(id=finding, reason=reason))


def acknowledge_wildcard_resource(policy: IConstruct, resource: str, reason: str) -> None:
    """Acknowledge the AwsSolutions-IAM5 finding of one wildcard ``resource`` (which may hold tokens) in ``policy``.

    A finding names the resource as cdk-nag renders the *resolved* template value, and a reference
    to another stack only takes its final form (an export or a stack output) once CDK prepares the
    app. So the acknowledgment is added from a validation hook, which runs after that.
    """
    if len(reason.strip()) < MIN_REASON_LENGTH:
        raise ValueError(f"acknowledging a wildcard on {resource!r} needs a reason that explains it")
    policy.node.add_validation(_DeferredWildcardAcknowledgment(policy, resource, reason))


@jsii.implements(IValidation)
class _DeferredWildcardAcknowledgment:
    def __init__(self, policy: IConstruct, resource: str, reason: str) -> None:
        self._policy = policy
        self._resource = resource
        self._reason = reason

    def validate(self) -> list[str]:
        rendered = render_for_nag(Stack.of(self._policy).resolve(self._resource))
        acknowledge(self._policy, f"AwsSolutions-IAM5[Resource::{rendered}]", self._reason)
        return []


def render_for_nag(value: Any) -> str:
    """A resolved template value as cdk-nag writes it in a finding id."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Fn::Join":
            delimiter, parts = argument
            return delimiter.join(render_for_nag(part) for part in parts)
        if function == "Fn::GetAtt":
            return f"<{argument[0]}.{argument[1]}>"
        if function == "Ref":
            return f"<{argument}>"
        if function == "Fn::ImportValue" and isinstance(argument, str):
            return argument
    return json.dumps(value, separators=(",", ":"))


def ignore_redundant_dependency(construct: IConstruct) -> None:
    """cfn-lint W3005 on a resource that aws-cdk-lib generates with both DependsOn and Fn::GetAtt on its role.

    Harmless, and not ours to change; acknowledged on that one resource only.
    """
    resource = construct if isinstance(construct, CfnResource) else construct.node.default_child
    if not isinstance(resource, CfnResource):
        raise TypeError(f"{construct.node.path} has no CloudFormation resource")
    resource.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3005"]}})
