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
from stacks.inputs import StackInputs
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

        def named(id: str, summary: str) -> dict[str, str]:
            return {
                "stack_name": f"{environment.name}-{id}",
                "description": f"ML platform {environment.name}: {summary}",
            }

        self.foundation = FoundationStack(
            self,
            "Foundation",
            environment=environment,
            names=names,
            pipelines=pipelines,
            tenants=[pipeline.tenant for pipeline in pipelines],
            **named("Foundation", "encryption key, notifications, data lake (stateful)"),
        )
        inputs = StackInputs(environment=environment, names=names, foundation=self.foundation)
        self.ingestion = IngestionStack(
            self,
            "Ingestion",
            inputs=inputs,
            pipelines=pipelines,
            **named("Ingestion", "SQS ingestion into the raw zone"),
        )
        self.training = TrainingStack(
            self,
            "Training",
            inputs=inputs,
            pipelines=pipelines,
            **named("Training", "training images, progress events, training state machine"),
        )
        self.serving = ServingStack(
            self,
            "Serving",
            inputs=inputs,
            deployed=deployed or {},
            **named("Serving", "endpoints with A/B variants, autoscaling, scoring API"),
        )
        self.monitoring = MonitoringStack(
            self,
            "Monitoring",
            inputs=inputs,
            ingestion=self.ingestion,
            training=self.training,
            serving=self.serving,
            pipelines=tuple(pipelines),
            **named("Monitoring", "drift monitoring, retraining triggers, approvals, dashboard"),
        )

    @property
    def stacks(self) -> list[Stack]:
        return [self.foundation, self.ingestion, self.training, self.serving, self.monitoring]
