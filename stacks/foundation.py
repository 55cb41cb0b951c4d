"""Foundation: the stateful core of an environment (key, topic, lake, tables, model pointers, tenant analytics)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from config.naming import Names
from config.schema import EnvironmentConfig
from config.tenants import PipelineConfig
from mlops_constructs.account_singletons import AccountSingletons
from mlops_constructs.data_lake import DataLake
from mlops_constructs.encryption import PlatformKey
from mlops_constructs.lake_datasets import dataset_columns
from mlops_constructs.model_pointers import ModelPointers
from mlops_constructs.notifications import NotificationTopic
from mlops_constructs.pinning import pin_logical_id
from mlops_constructs.tables import PlatformTables
from mlops_constructs.tenant_analytics import TenantAnalytics
from stacks.inputs import removal_policy_of


class FoundationStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        environment: EnvironmentConfig,
        names: Names,
        pipelines: Sequence[PipelineConfig] = (),
        tenants: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, termination_protection=environment.termination_protection, **kwargs)
        removal_policy = removal_policy_of(environment)

        AccountSingletons(self, "AccountSingletons", owner=environment.owns_account_singletons)
        platform_key = PlatformKey(self, "PlatformKey", alias=names.alias("platform"), removal_policy=removal_policy)
        self.key = platform_key.key
        pin_logical_id(self.key, "PlatformKey")

        notifications = NotificationTopic(
            self,
            "Notifications",
            key=self.key,
            display_name=f"ML platform {names.environment} notifications",
            emails=environment.notifications.emails,
        )
        self.topic = notifications.topic
        pin_logical_id(self.topic, "NotificationTopic")

        datasets = dataset_columns(pipelines)
        self.lake = DataLake(
            self,
            "DataLake",
            names=names,
            key=self.key,
            retention=environment.retention,
            removal_policy=removal_policy,
            datasets=datasets,
        )

        # Each tenant queries its own data, in its own workgroup (README: Tenants and security).
        self.tenant_analytics = TenantAnalytics(
            self,
            "TenantAnalytics",
            names=names,
            tenants=tenants,
            key=self.key,
            zones=self.lake.zones,
            query_results=self.lake.query_results,
            database_name=self.lake.database.ref,
            shared_tables=list(self.lake.tables),
            tenant_tables={
                tenant: [table.table_name for table in datasets if table.tenant == tenant] for tenant in tenants
            },
            removal_policy=removal_policy,
        )

        tables = PlatformTables(self, "Tables", key=self.key, removal_policy=removal_policy)
        self.progress_table = tables.progress
        self.ledger_table = tables.ledger
        self.async_results_table = tables.async_results

        # Created once with the example model's sentinel and never written by CloudFormation again.
        self.model_pointers = ModelPointers(self, "ModelPointers", names=names, endpoints=environment.serving.endpoints)

        CfnOutput(self, "NotificationTopicArn", value=self.topic.topic_arn)
        CfnOutput(self, "PlatformKeyArn", value=self.key.key_arn)
        for zone, bucket in self.lake.zones.items():
            CfnOutput(self, f"{zone.capitalize()}ZoneBucketName", value=bucket.bucket_name)
        CfnOutput(self, "LakeDatabaseName", value=self.lake.database.ref)
        CfnOutput(self, "AthenaWorkGroupName", value=self.lake.workgroup.ref)
        # mlops progress --stack <env>-Foundation reads this.
        CfnOutput(self, "ProgressTableName", value=self.progress_table.table_name)
        CfnOutput(self, "RunLedgerTableName", value=self.ledger_table.table_name)
        CfnOutput(self, "AsyncResultsTableName", value=self.async_results_table.table_name)
