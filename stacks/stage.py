"""One environment: the same class serves `cdk deploy "dev/*"` and every stage of the delivery pipeline."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Environment, Stack, Stage, Tags
from constructs import Construct

from config.deployed import EnvironmentRecord
from config.naming import Names
from config.schema import EnvironmentConfig, ProjectConfig
from config.tenants import PipelineConfig
from stacks.foundation import FoundationStack
from stacks.ingestion import IngestionStack
from stacks.monitoring import MonitoringStack
from stacks.serving import ServingStack
from stacks.training import TrainingStack


class PlatformStage(Stage):
    def __init__(
        self,
        scope: Construct,
        *,
        project: ProjectConfig,
        environment: EnvironmentConfig,
        pipelines: Sequence[PipelineConfig] = (),
        deployed: EnvironmentRecord | None = None,
    ) -> None:
        # The stage id is the environment's name. Stack names are set explicitly: nested in the
        # delivery pipeline's stack the default names would gain its prefix, and consumers of
        # Foundation's outputs (Fn::GetStackOutput) and people address stacks by these names.
        super().__init__(
            scope, environment.name, env=Environment(account=environment.account, region=environment.region)
        )
        names = Names(project=project.name, environment=environment.name)
        for key, value in {**project.tags, "Environment": environment.name}.items():
            Tags.of(self).add(key, value)

        self.foundation = FoundationStack(
            self,
            "Foundation",
            stack_name=f"{environment.name}-Foundation",
            environment=environment,
            names=names,
            description=f"ML platform {environment.name}: encryption key, notifications, data lake (stateful)",
        )
        self.ingestion = IngestionStack(
            self,
            "Ingestion",
            stack_name=f"{environment.name}-Ingestion",
            environment=environment,
            names=names,
            foundation=self.foundation,
            description=f"ML platform {environment.name}: SQS ingestion into the raw zone",
        )
        self.training = TrainingStack(
            self,
            "Training",
            stack_name=f"{environment.name}-Training",
            environment=environment,
            names=names,
            foundation=self.foundation,
            pipelines=pipelines,
            description=f"ML platform {environment.name}: training images, progress events, training state machine",
        )
        self.serving = ServingStack(
            self,
            "Serving",
            stack_name=f"{environment.name}-Serving",
            environment=environment,
            names=names,
            foundation=self.foundation,
            deployed=deployed or {},
            description=f"ML platform {environment.name}: endpoints with A/B variants, autoscaling, scoring API",
        )
        self.monitoring = MonitoringStack(
            self,
            "Monitoring",
            stack_name=f"{environment.name}-Monitoring",
            environment=environment,
            names=names,
            foundation=self.foundation,
            ingestion=self.ingestion,
            training=self.training,
            serving=self.serving,
            pipelines=tuple(pipelines),
            description=f"ML platform {environment.name}: drift monitoring, retraining triggers, approvals, dashboard",
        )

    @property
    def stacks(self) -> list[Stack]:
        return [self.foundation, self.ingestion, self.training, self.serving, self.monitoring]
