"""Ingestion: the SQS path from producers into the raw zone.

Stateless but for the messages in flight: its queues follow the environment's removal policy and
keep pinned logical IDs, so a refactor never drops records waiting in the dead-letter queue.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from constructs import Construct

from config.naming import Names
from config.schema import EnvironmentConfig
from mlops_constructs.ingestion import IngestionPipeline
from stacks.foundation import FoundationStack


class IngestionStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        environment: EnvironmentConfig,
        names: Names,
        foundation: FoundationStack,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        self.pipeline = IngestionPipeline(
            self,
            "Ingest",
            names=names,
            key=foundation.key,
            raw_bucket=foundation.lake.raw,
            alarm_topic=foundation.topic,
            settings=environment.ingestion,
            capacities=environment.capacities,
            log_retention_days=environment.retention.log_retention_days,
            removal_policy=RemovalPolicy.RETAIN if environment.retains_data else RemovalPolicy.DESTROY,
        )
        CfnOutput(self, "IngestQueueUrl", value=self.pipeline.queue.queue_url)
        CfnOutput(self, "ProducerPolicyArn", value=self.pipeline.producer_policy.managed_policy_arn)
