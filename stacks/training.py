"""Training: the training images, the progress bus and its rules, the state machine and its Lambdas.

Stateless: the progress table and run ledger it writes live in Foundation. Tenants are data here,
published to the artifacts zone, so onboarding a tenant changes objects, not this stack's
resources.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from config.instance_types import is_gpu
from config.tenants import PipelineConfig
from mlops_constructs.progress_tracking import ProgressTracking
from mlops_constructs.publishing import PipelinePublishing
from mlops_constructs.training_images import TrainingImages
from mlops_constructs.training_pipeline import TrainingPipeline, Zones
from stacks.inputs import StackInputs


class TrainingStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        inputs: StackInputs,
        pipelines: Sequence[PipelineConfig],
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        environment, names, foundation = inputs.environment, inputs.names, inputs.foundation
        removal_policy = inputs.removal_policy
        lake = foundation.lake.zones
        self.images = TrainingImages(
            self, "Images", gpu=any(is_gpu(pipeline.training.instance_type) for pipeline in pipelines)
        )
        self.progress = ProgressTracking(
            self,
            "Progress",
            names=names,
            key=foundation.key,
            table=foundation.progress_table,
            alarm_topic=foundation.topic,
            log_retention_days=inputs.log_retention_days,
            removal_policy=removal_policy,
        )
        self.publishing = PipelinePublishing(
            self, "Tenants", pipelines=pipelines, artifacts_bucket=lake["artifacts"], raw_bucket=lake["raw"]
        )
        self.pipeline = TrainingPipeline(
            self,
            "Pipeline",
            names=names,
            environment=environment,
            tenants=[pipeline.tenant for pipeline in pipelines],
            key=foundation.key,
            zones=Zones(
                raw=lake["raw"],
                curated=lake["curated"],
                features=lake["features"],
                artifacts=lake["artifacts"],
                predictions=lake["predictions"],
            ),
            ledger=foundation.ledger_table,
            progress_bus=self.progress.bus,
            cpu_image=self.images.cpu,
            gpu_image=self.images.gpu,
            alarm_topic=foundation.topic,
            removal_policy=removal_policy,
        )
        CfnOutput(self, "StateMachineArn", value=self.pipeline.state_machine.state_machine_arn)
        CfnOutput(self, "ProgressBusName", value=self.progress.bus.event_bus_name)
        CfnOutput(self, "TrainingImageUri", value=self.images.cpu.image_uri)
        if self.images.gpu is not None:
            CfnOutput(self, "GpuTrainingImageUri", value=self.images.gpu.image_uri)
