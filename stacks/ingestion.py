"""Ingestion: the SQS path from producers into the raw zone.

Stateless but for the messages in flight: its queues follow the environment's removal policy and
keep pinned logical IDs, so a refactor never drops records waiting in the dead-letter queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from config.tenants import PipelineConfig
from mlops_constructs.ingestion import IngestionPipeline
from mlops_constructs.tenant_ids import tenant_id
from stacks.inputs import StackInputs


class IngestionStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        inputs: StackInputs,
        pipelines: Sequence[PipelineConfig] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        foundation = inputs.foundation
        self.pipeline = IngestionPipeline(
            self,
            "Ingest",
            names=inputs.names,
            key=foundation.key,
            raw_bucket=foundation.lake.raw,
            alarm_topic=foundation.topic,
            settings=inputs.environment.ingestion,
            capacities=inputs.environment.capacities,
            tenants=[pipeline.tenant for pipeline in pipelines],
            log_retention_days=inputs.log_retention_days,
            removal_policy=inputs.removal_policy,
        )
        # What a tenant's producer needs: its queue's URL and the policy to attach (README, "Sending data").
        for tenant, queue in self.pipeline.queues.items():
            CfnOutput(self, f"IngestQueueUrl{tenant_id(tenant)}", value=queue.queue_url, description=f"tenant {tenant}")
            CfnOutput(
                self,
                f"ProducerPolicyArn{tenant_id(tenant)}",
                value=self.pipeline.producer_policies[tenant].managed_policy_arn,
                description=f"tenant {tenant}",
            )
