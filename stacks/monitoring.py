"""Monitoring: the drift monitor's schedules and jobs, the retraining triggers, the approval path and the dashboard.

Stateless. It builds on every stack before it (ARCHITECTURE.md): Foundation's key, topic, zones,
ledger and model pointers; Ingestion's queues; Training's image and state machine; Serving's
endpoints and example model.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import RemovalPolicy, Stack
from constructs import Construct

from config.naming import Names
from config.schema import EnvironmentConfig
from config.tenants import PipelineConfig
from stacks.foundation import FoundationStack
from stacks.ingestion import IngestionStack
from stacks.serving import ServingStack
from stacks.training import TrainingStack


class MonitoringStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        environment: EnvironmentConfig,
        names: Names,
        foundation: FoundationStack,
        ingestion: IngestionStack,
        training: TrainingStack,
        serving: ServingStack,
        pipelines: tuple[PipelineConfig, ...] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        self.removal_policy = RemovalPolicy.RETAIN if environment.retains_data else RemovalPolicy.DESTROY
        self.environment_config = environment
        self.names = names
        self.foundation = foundation
        self.ingestion = ingestion
        self.training = training
        self.serving = serving
        self.pipelines = pipelines

        # Each part is built by its own method, one construct module each (mlops_constructs/).
        self._drift_monitoring()
        self._retraining_triggers()
        self._approval_path()
        self._dashboard()

    def _drift_monitoring(self) -> None:
        """The drift monitor (platform engine) or Model Monitor schedules, per endpoint with data capture."""

    def _retraining_triggers(self) -> None:
        """Drift and new data → the retrain-trigger λ → the training state machine."""

    def _approval_path(self) -> None:
        """Model package approvals → model pointer → a deployment of the Serving stack."""

    def _dashboard(self) -> None:
        """One CloudWatch dashboard for the environment."""
