"""Ingestion: the SQS path from producers into the raw zone.

Stateless but for the messages in flight: its queues follow the environment's removal policy and
keep pinned logical IDs, so a refactor never drops records waiting in the dead-letter queue.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from mlops_constructs.ingestion import IngestionPipeline
from stacks.inputs import StackInputs


class IngestionStack(Stack):
    def __init__(self, scope: Construct, id: str, *, inputs: StackInputs, **kwargs: Any) -> None:
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
            log_retention_days=inputs.log_retention_days,
            removal_policy=inputs.removal_policy,
        )
        CfnOutput(self, "IngestQueueUrl", value=self.pipeline.queue.queue_url)
        CfnOutput(self, "ProducerPolicyArn", value=self.pipeline.producer_policy.managed_policy_arn)
