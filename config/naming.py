"""Contract names: every physical name another system relies on carries the environment's name.

Two environments may share an account and region, so a name without the environment in it would
collide (or, worse, let staging read prod's parameters). Everything else is left to CloudFormation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


def joined(tenant: str, model: str) -> str:
    """``<tenant>-<model>``, the part of every name built from both: model package groups
    (``<project>-<env>-<tenant>-<model>``), endpoint keys, model pointers, new endpoints' names. Names may hold
    hyphens and SageMaker's names allow no other separator, so two pairs can spell the same join:
    ``ambiguous_pair`` finds them and config refuses them."""
    return f"{tenant}-{model}"


def ambiguous_pair(pairs: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], tuple[str, str]] | None:
    """The first two distinct (tenant, model) pairs whose ``joined`` names are the same, in the order given."""
    seen: dict[str, tuple[str, str]] = {}
    for pair in pairs:
        earlier = seen.setdefault(joined(*pair), pair)
        if earlier != pair:
            return earlier, pair
    return None


def serving_stack_name(environment: str) -> str:
    """``<env>-Serving``, the Serving stack's name (stacks/stage.py names every stack so): the deployment
    lock the approval path and ``mlops promote`` share, and the stack the deploy check reads."""
    return f"{environment}-Serving"


@dataclass(frozen=True)
class Names:
    project: str
    environment: str

    @property
    def prefix(self) -> str:
        """``mlops-dev``: stack-independent prefix of names, job names and bucket key prefixes."""
        return f"{self.project}-{self.environment}"

    def resource(self, *parts: str) -> str:
        """A hyphenated physical name such as ``mlops-dev-analytics``."""
        return "-".join((self.prefix, *parts))

    def glue(self, *parts: str) -> str:
        """Glue and Athena identifiers allow no hyphens: ``mlops_dev_lake``."""
        return "_".join((self.project, self.environment, *parts)).replace("-", "_")

    def parameter(self, *parts: str) -> str:
        """An SSM parameter path such as ``/mlops/dev/models/churn/Champion``."""
        return "/" + "/".join((self.project, self.environment, *parts))

    def alias(self, *parts: str) -> str:
        """A KMS alias such as ``alias/mlops/dev/platform``."""
        return "alias/" + "/".join((self.project, self.environment, *parts))

    @property
    def metrics_namespace(self) -> str:
        """CloudWatch namespace of the platform's own metrics, one per environment."""
        return f"{self.project}/{self.environment}"

    @property
    def drift_namespace(self) -> str:
        """``mlops/dev/Drift``: the drift monitor's metrics (the dashboard and the drift alarms read them)."""
        return f"{self.metrics_namespace}/Drift"

    @property
    def monitoring_source(self) -> str:
        """``mlops.monitoring``: the source of the drift monitor's ``Drift Summary`` events.

        Not environment-scoped (the detail's ``environment`` is): rules filter on both.
        """
        return f"{self.project}.monitoring"

    @property
    def drift_alarm_prefix(self) -> str:
        """``mlops-dev-drift-``: every drift alarm's name starts so; the retrain trigger routes on it."""
        return f"{self.prefix}-drift-"

    def drift_alarm(self, endpoint_key: str) -> str:
        """``mlops-dev-drift-<endpoint key>``: the endpoint's drift alarm."""
        return self.drift_alarm_prefix + endpoint_key
