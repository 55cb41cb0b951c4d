"""The environment's DynamoDB tables: training progress, the run ledger and asynchronous scoring results.

Both are stateful and live in Foundation. Keys are generic strings (``pk``, ``sk``) so that later
record kinds (retrain decisions, approvals, pointer changes) need no new table: they add their own
``sk`` prefixes under a run, and the ledger's ``ByTenant`` index lists a tenant's records in time order.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from constructs import Construct

from mlops_constructs.pinning import pin_logical_id

PK = dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING)
SK = dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING)
TENANT_INDEX = "ByTenant"


def _table(
    scope: Construct,
    id: str,
    *,
    key: kms.IKey,
    removal_policy: RemovalPolicy,
    partition_key: dynamodb.Attribute = PK,
    sort_key: dynamodb.Attribute | None = SK,
    time_to_live_attribute: str | None = None,
    global_secondary_indexes: list[dynamodb.GlobalSecondaryIndexPropsV2] | None = None,
) -> dynamodb.TableV2:
    table = dynamodb.TableV2(
        scope,
        id,
        partition_key=partition_key,
        sort_key=sort_key,
        time_to_live_attribute=time_to_live_attribute,
        billing=dynamodb.Billing.on_demand(),
        encryption=dynamodb.TableEncryptionV2.customer_managed_key(key),
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        deletion_protection=removal_policy == RemovalPolicy.RETAIN,
        removal_policy=removal_policy,
        global_secondary_indexes=global_secondary_indexes,
    )
    # The tables hold data: renaming a construct must never replace one.
    pin_logical_id(table, id)
    return table


class PlatformTables(Construct):
    def __init__(self, scope: Construct, id: str, *, key: kms.IKey, removal_policy: RemovalPolicy) -> None:
        super().__init__(scope, id)
        # RUN#<run> / TRIAL#<trial>#EPOCH#<epoch>: a trial's curve in epoch order, a run's trials in one query.
        self.progress = _table(self, "ProgressTable", key=key, removal_policy=removal_policy)
        # RUN#<run> / RUN | TRIAL#<trial> | PACKAGE#<model> | later kinds.
        self.ledger = _table(
            self,
            "RunLedgerTable",
            key=key,
            removal_policy=removal_policy,
            global_secondary_indexes=[
                dynamodb.GlobalSecondaryIndexPropsV2(
                    index_name=TENANT_INDEX,
                    partition_key=dynamodb.Attribute(name="gsi1pk", type=dynamodb.AttributeType.STRING),
                    sort_key=dynamodb.Attribute(name="gsi1sk", type=dynamodb.AttributeType.STRING),
                )
            ],
        )
        # One item per asynchronous scoring request, keyed by its tracking id; expires after the
        # environment's result TTL (lambda/scoring writes expires_at).
        self.async_results = _table(
            self,
            "AsyncResultsTable",
            key=key,
            removal_policy=removal_policy,
            partition_key=dynamodb.Attribute(name="id", type=dynamodb.AttributeType.STRING),
            sort_key=None,
            time_to_live_attribute="expires_at",
        )
