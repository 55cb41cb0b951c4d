"""Per tenant, an Athena workgroup and a managed policy that queries that tenant's data and nothing else.

Athena reads S3 with the credentials of whoever runs the query
(https://docs.aws.amazon.com/athena/latest/ug/s3-permissions.html), so what keeps tenants apart is
S3, not the query text: the tenant's policy may read ``curated/<tenant>/`` and ``features/<tenant>/``
only, so ``WHERE tenant IN ('a', 'b')`` run with tenant a's policy fails with Access Denied on b's
objects. The workgroup enforces its settings (results under ``tenants/<tenant>/`` of the query
results bucket, encrypted with the platform key), and the policy may run queries in that workgroup
only and read only its results (workgroup ARNs and actions:
https://docs.aws.amazon.com/athena/latest/ug/example-policies-workgroup.html; the Glue catalog
actions Athena needs: https://docs.aws.amazon.com/athena/latest/ug/fine-grained-access-to-glue-resources.html).
The catalog grant names the lake's zone-wide envelope tables and the tenant's own typed tables
(``<tenant>__<dataset>``, mlops_constructs/lake_datasets.py), never another tenant's.
An operator attaches a tenant's policy (the Foundation stack's output ``TenantAnalytics<tenant>PolicyArn…``)
to that tenant's analysts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_athena as athena
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from config.naming import Names
from mlops_constructs.data_lake import enforced_workgroup
from mlops_constructs.encryption import key_used_through
from mlops_constructs.nag import acknowledge_wildcard_resource

RESULTS_PREFIX = "tenants/"
QUERY_ACTIONS = (
    "athena:StartQueryExecution",
    "athena:StopQueryExecution",
    "athena:GetQueryExecution",
    "athena:GetQueryResults",
    "athena:GetQueryResultsStream",
    "athena:BatchGetQueryExecution",
    "athena:ListQueryExecutions",
    "athena:GetWorkGroup",
)
CATALOG_ACTIONS = ("glue:GetDatabase", "glue:GetTable", "glue:GetTables", "glue:GetPartition", "glue:GetPartitions")
# The zones the lake's Glue tables read, each under ``<zone>/<tenant>/``.
QUERIED_ZONES = ("curated", "features")


def workgroup_name(names: Names, tenant: str) -> str:
    """``<project>-<env>-analytics-<tenant>``: apart from the environment's own ``<project>-<env>-analytics``."""
    return names.resource("analytics", tenant)


def results_prefix(tenant: str) -> str:
    return f"{RESULTS_PREFIX}{tenant}/"


class TenantAnalytics(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        names: Names,
        tenants: Sequence[str],
        key: kms.IKey,
        zones: dict[str, s3.Bucket],
        query_results: s3.IBucket,
        database_name: str,
        shared_tables: Sequence[str],
        tenant_tables: Mapping[str, Sequence[str]],
        removal_policy: RemovalPolicy,
    ) -> None:
        """``shared_tables``: the zone-wide envelope tables, every tenant's (S3 keeps other tenants' rows out);
        ``tenant_tables``: each tenant's own dataset tables (``<tenant>__<dataset>``), that tenant's only."""
        super().__init__(scope, id)
        self.workgroups: dict[str, athena.CfnWorkGroup] = {}
        self.policies: dict[str, iam.ManagedPolicy] = {}
        for tenant in sorted(tenants):
            tenant_scope = Construct(self, tenant)
            self.workgroups[tenant] = self._workgroup(tenant_scope, names, tenant, key, query_results, removal_policy)
            self.policies[tenant] = self._policy(
                tenant_scope,
                names,
                tenant,
                key,
                zones,
                query_results,
                database_name,
                [*shared_tables, *tenant_tables.get(tenant, ())],
            )
            CfnOutput(
                tenant_scope,
                "PolicyArn",
                description=f"Attach to tenant {tenant}'s analysts: queries its data in its Athena workgroup",
                value=self.policies[tenant].managed_policy_arn,
            )

    @staticmethod
    def _workgroup(
        scope: Construct,
        names: Names,
        tenant: str,
        key: kms.IKey,
        query_results: s3.IBucket,
        removal_policy: RemovalPolicy,
    ) -> athena.CfnWorkGroup:
        return enforced_workgroup(
            scope,
            "WorkGroup",
            name=workgroup_name(names, tenant),
            description=f"Tenant {tenant}'s queries over the {names.environment} data lake; results its own, encrypted",
            output_location=f"s3://{query_results.bucket_name}/{results_prefix(tenant)}",
            key=key,
            removal_policy=removal_policy,
        )

    @staticmethod
    def _policy(
        scope: Construct,
        names: Names,
        tenant: str,
        key: kms.IKey,
        zones: dict[str, s3.Bucket],
        query_results: s3.IBucket,
        database_name: str,
        table_names: Sequence[str],
    ) -> iam.ManagedPolicy:
        stack = Stack.of(scope)
        glue_arn = f"arn:{stack.partition}:glue:{stack.region}:{stack.account}"
        data = [(zones[zone], f"{zone}/{tenant}/") for zone in QUERIED_ZONES]
        results = results_prefix(tenant)
        statements = [
            iam.PolicyStatement(
                sid="QueryInOwnWorkGroup",
                actions=list(QUERY_ACTIONS),
                resources=[
                    f"arn:{stack.partition}:athena:{stack.region}:{stack.account}:workgroup/"
                    f"{workgroup_name(names, tenant)}"
                ],
            ),
            iam.PolicyStatement(
                sid="ReadLakeCatalog",
                actions=list(CATALOG_ACTIONS),
                resources=[
                    f"{glue_arn}:catalog",
                    f"{glue_arn}:database/{database_name}",
                    *(f"{glue_arn}:table/{database_name}/{table}" for table in table_names),
                ],
            ),
            # "Access to the default database and catalog per Region": Athena needs these on `default` whatever
            # database a query names (https://docs.aws.amazon.com/athena/latest/ug/fine-grained-access-to-glue-resources.html).
            iam.PolicyStatement(
                sid="AthenaDefaultDatabase",
                actions=["glue:GetDatabase", "glue:CreateDatabase"],
                resources=[f"{glue_arn}:catalog", f"{glue_arn}:database/default"],
            ),
            iam.PolicyStatement(
                sid="ReadOwnData",
                actions=["s3:GetObject"],
                resources=[bucket.arn_for_objects(f"{prefix}*") for bucket, prefix in data],
            ),
            *(
                iam.PolicyStatement(
                    sid=f"List{prefix.split('/')[0].capitalize()}",
                    actions=["s3:ListBucket"],
                    resources=[bucket.bucket_arn],
                    conditions={"StringLike": {"s3:prefix": [f"{prefix}*"]}},
                )
                for bucket, prefix in data
            ),
            iam.PolicyStatement(
                sid="LocateBuckets",
                actions=["s3:GetBucketLocation"],
                resources=[*(bucket.bucket_arn for bucket, _ in data), query_results.bucket_arn],
            ),
            iam.PolicyStatement(
                sid="OwnQueryResults",
                actions=["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
                resources=[query_results.arn_for_objects(f"{results}*")],
            ),
            iam.PolicyStatement(
                sid="ListOwnQueryResults",
                actions=["s3:ListBucket"],
                resources=[query_results.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{results}*"]}},
            ),
            key_used_through(scope, key, "s3", ["kms:Decrypt", "kms:GenerateDataKey"], sid="UsePlatformKeyThroughS3"),
        ]
        policy = iam.ManagedPolicy(
            scope,
            "Policy",
            description=f"Query tenant {tenant}'s data in its Athena workgroup {workgroup_name(names, tenant)}",
            statements=statements,
        )
        for bucket, prefix in data:
            acknowledge_wildcard_resource(
                policy,
                bucket.arn_for_objects(f"{prefix}*"),
                f"Objects are named per dataset and day; the grant stops at tenant {tenant}'s prefix.",
            )
        acknowledge_wildcard_resource(
            policy,
            query_results.arn_for_objects(f"{results}*"),
            f"Athena names result files per query; the grant stops at tenant {tenant}'s results prefix.",
        )
        return policy
