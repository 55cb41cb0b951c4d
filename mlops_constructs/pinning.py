"""Pinned logical IDs for stateful resources.

CloudFormation replaces a resource whose logical ID changes; for a bucket or a key that means new,
empty storage. Stateful resources get explicit IDs, independent of where they sit in the construct
tree, and tests pin the IDs, so a refactor can move code without moving data.
"""

from __future__ import annotations

from aws_cdk import CfnElement
from constructs import IConstruct


def pin_logical_id(construct: IConstruct, logical_id: str) -> None:
    element = construct if isinstance(construct, CfnElement) else construct.node.default_child
    if not isinstance(element, CfnElement):
        raise TypeError(f"{construct.node.path} has no CloudFormation resource to pin")
    element.override_logical_id(logical_id)
