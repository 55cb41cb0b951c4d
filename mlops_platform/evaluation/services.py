"""What every part of evaluation works with: its clients, the run ledger, its settings, and the handler's
log and metrics (Powertools in Lambda; the defaults log with ``logging`` and measure nothing)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlops_platform.aws import Log
from mlops_platform.evaluation.ledger import Ledger
from mlops_platform.evaluation.settings import Settings

Measure = Callable[[str, float], None]
"""Adds a value to the named count (a handler's Powertools ``Metrics``)."""
PublishObjective = Callable[[str, str, str, float], None]
"""Publishes a model's best objective value: tenant, model, objective metric, value."""


def measure_nothing(name: str, value: float) -> None:
    """The default: outside Lambda nothing collects metrics."""


def publish_nothing(tenant: str, model: str, metric: str, value: float) -> None:
    """The default: outside Lambda nothing graphs the best objective."""


@dataclass
class Services:
    s3: Any
    sagemaker: Any
    ledger: Ledger
    settings: Settings
    log: Log = field(default_factory=lambda: logging.getLogger("mlops_platform.evaluation"))
    count: Measure = measure_nothing
    publish_objective: PublishObjective = publish_nothing

    def update_run(self, run_id: str, values: dict[str, Any]) -> None:
        """Sets ``values`` on the run's row (``RUN#<run>`` / ``RUN``), which the plan wrote."""
        self.ledger.update(f"RUN#{run_id}", "RUN", values)
