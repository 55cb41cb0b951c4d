"""What each stack of an environment builds on, read once by the stage: its settings, its names, Foundation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aws_cdk import RemovalPolicy

from config.naming import Names
from config.schema import EnvironmentConfig

if TYPE_CHECKING:
    from stacks.foundation import FoundationStack


def removal_policy_of(environment: EnvironmentConfig) -> RemovalPolicy:
    """What happens to buckets, keys, tables and logs when a stack is deleted (``removal_policy``)."""
    return RemovalPolicy.RETAIN if environment.retains_data else RemovalPolicy.DESTROY


@dataclass(frozen=True)
class StackInputs:
    """The environment's settings and names, and its Foundation stack (key, topic, lake, tables)."""

    environment: EnvironmentConfig
    names: Names
    foundation: FoundationStack

    @property
    def removal_policy(self) -> RemovalPolicy:
        return removal_policy_of(self.environment)

    @property
    def log_retention_days(self) -> int:
        return self.environment.retention.log_retention_days
