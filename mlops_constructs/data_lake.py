"""The data lake: encrypted, versioned S3 zones, a Glue catalog with partition projection, an Athena workgroup.

Key layout, the same in every zone: ``<zone>/<tenant>/<dataset>/dt=YYYY-MM-DD/<object>``. Glue tables
project the ``tenant``, ``dataset`` and ``dt`` partitions from that layout, so no crawler runs and a
new tenant's data is queryable the moment it lands. Besides the zone-wide tables (envelope columns
only), each tenant dataset has a table of its own over ``curated/<tenant>/<dataset>/`` with its typed
columns (mlops_constructs/lake_datasets.py), so Athena reads the tenant's features and target.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from config.naming import Names
from config.schema import Retention
from mlops_constructs.access_logs import access_log_bucket
from mlops_constructs.lake_datasets import DatasetColumns
from mlops_constructs.pinning import pin_logical_id

# Zone name -> pinned logical ID of its bucket. Renaming one replaces a bucket full of data:
# tests/infra/test_foundation.py pins these.
ZONES: dict[str, str] = {
    "raw": "RawZoneBucket",
    "curated": "CuratedZoneBucket",
    "features": "FeaturesZoneBucket",
    "artifacts": "ArtifactsZoneBucket",
    "predictions": "PredictionsZoneBucket",
    "capture": "CaptureZoneBucket",
}
# Ingestion writes bad records here, in the raw zone's bucket, next to (never inside) raw/.
QUARANTINE_PREFIX = "quarantine/"
PARTITION_KEYS = ("tenant", "dataset", "dt")
ABORT_INCOMPLETE_UPLOADS_AFTER = Duration.days(7)
# Zone name -> (logical ID, description, columns (name, type, comment)) of its Glue table, besides the partitions.
TABLES: dict[str, tuple[str, str, tuple[tuple[str, str, str], ...]]] = {
    "curated": (
        "CuratedTable",
        "Validated records in Parquet, one folder per tenant, dataset and day",
        (
            ("record_id", "string", "Stable id of the record: <SQS message id>-<index in message>"),
            ("received_at", "timestamp", "When SQS accepted the record's message (raw zone's received_at)"),
        ),
    ),
    "features": (
        "FeaturesTable",
        "Model-ready features in Parquet, split into train, validation and test",
        (
            ("record_id", "string", "Id of the curated record the features come from"),
            ("split", "string", "train, validation or test"),
            ("label", "double", "Target value; null where unknown"),
        ),
    ),
}


class DataLake(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        names: Names,
        key: kms.IKey,
        retention: Retention,
        removal_policy: RemovalPolicy,
        datasets: Sequence[DatasetColumns] = (),
    ) -> None:
        super().__init__(scope, id)
        self._key = key
        self._retention = retention
        self._removal_policy = removal_policy

        self.access_logs = self._access_log_bucket()
        self.zones: dict[str, s3.Bucket] = {
            zone: self._zone_bucket(zone, logical_id) for zone, logical_id in ZONES.items()
        }
        self.query_results = self._bucket(
            "QueryResultsBucket",
            log_prefix="query-results/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireQueryResults", expiration=Duration.days(retention.query_results_expiration_days)
                ),
                *self._housekeeping_rules(),
            ],
        )
        self.database = self._database(names)
        self.tables = {
            zone: self._table(logical_id, zone=zone, description=description, columns=list(columns))
            for zone, (logical_id, description, columns) in TABLES.items()
        }
        self.dataset_tables = {
            (table.tenant, table.dataset): self._table(
                table.logical_id,
                zone="curated",
                description=f"Curated rows of {table.tenant}'s dataset {table.dataset}, typed by its tenant file",
                columns=list(table.columns),
                name=table.table_name,
                prefix=table.location,
            )
            for table in datasets
        }
        self.workgroup = self._workgroup(names)

    @property
    def raw(self) -> s3.Bucket:
        return self.zones["raw"]

    def _access_log_bucket(self) -> s3.Bucket:
        bucket = access_log_bucket(
            self,
            "AccessLogsBucket",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireAccessLogs", expiration=Duration.days(self._retention.access_logs_expiration_days)
                ),
                *self._housekeeping_rules(),
            ],
            removal_policy=self._removal_policy,
            why_not_logged="This is the access-log destination of every other bucket; logging it to itself would loop.",
        )
        pin_logical_id(bucket, "AccessLogsBucket")
        return bucket

    def _expiry_rules(self, zone: str) -> list[s3.LifecycleRule]:
        """Zones that may hold personal data (captured requests, raw and quarantined records, predictions)
        expire their objects; curated, features and artifacts stay as long as the models built from them."""
        retention = self._retention
        if zone == "raw":
            return [
                s3.LifecycleRule(
                    id="ExpireRawData", prefix="raw/", expiration=Duration.days(retention.raw_expiration_days)
                ),
                s3.LifecycleRule(
                    id="ExpireQuarantine",
                    prefix=QUARANTINE_PREFIX,
                    expiration=Duration.days(retention.quarantine_expiration_days),
                ),
            ]
        days = {"capture": retention.capture_expiration_days, "predictions": retention.predictions_expiration_days}
        if zone in days:
            return [s3.LifecycleRule(id=f"Expire{zone.capitalize()}", expiration=Duration.days(days[zone]))]
        return []

    def _zone_bucket(self, zone: str, logical_id: str) -> s3.Bucket:
        rules = [*self._housekeeping_rules(), *self._expiry_rules(zone)]
        if zone == "raw":
            rules.insert(
                0,
                s3.LifecycleRule(
                    id="ArchiveRawData",
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                            transition_after=Duration.days(self._retention.raw_infrequent_access_after_days),
                        ),
                        s3.Transition(
                            storage_class=s3.StorageClass.GLACIER,
                            transition_after=Duration.days(self._retention.raw_archive_after_days),
                        ),
                    ],
                ),
            )
        bucket = self._bucket(logical_id, log_prefix=f"{zone}/", lifecycle_rules=rules)
        # Native EventBridge notifications (no custom resource): later stacks react to new objects
        # with rules on the default bus ("Object Created").
        cfn_bucket = bucket.node.default_child
        assert isinstance(cfn_bucket, s3.CfnBucket)
        cfn_bucket.notification_configuration = s3.CfnBucket.NotificationConfigurationProperty(
            event_bridge_configuration=s3.CfnBucket.EventBridgeConfigurationProperty(event_bridge_enabled=True)
        )
        return bucket

    def _bucket(self, logical_id: str, *, log_prefix: str, lifecycle_rules: list[s3.LifecycleRule]) -> s3.Bucket:
        bucket = s3.Bucket(
            self,
            logical_id,
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self._key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix=log_prefix,
            lifecycle_rules=lifecycle_rules,
            # S3's default since 2024, stated so nobody expects otherwise: objects under 128 KB are
            # not transitioned. Rightly so: Standard-IA bills at least 128 KB an object and Glacier
            # adds about 40 KB of overhead, so moving small objects costs more than keeping them.
            # Ingest writes one small object per message; raw data archives once compacted.
            transition_default_minimum_object_size=s3.TransitionDefaultMinimumObjectSize.ALL_STORAGE_CLASSES_128_K,
            removal_policy=self._removal_policy,
        )
        pin_logical_id(bucket, logical_id)
        require_platform_key(bucket, self._key)
        return bucket

    def _housekeeping_rules(self) -> list[s3.LifecycleRule]:
        """Versioning keeps every overwrite; old versions and abandoned uploads must not pile up forever."""
        return [
            s3.LifecycleRule(
                id="ExpireNoncurrentVersions",
                noncurrent_version_expiration=Duration.days(self._retention.noncurrent_version_expiration_days),
                expired_object_delete_marker=True,
            ),
            s3.LifecycleRule(
                id="AbortIncompleteUploads",
                abort_incomplete_multipart_upload_after=ABORT_INCOMPLETE_UPLOADS_AFTER,
            ),
        ]

    def _database(self, names: Names) -> glue.CfnDatabase:
        database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=Stack.of(self).account,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=names.glue("lake"),
                description=f"Curated and feature zones of the {names.environment} data lake",
            ),
        )
        database.apply_removal_policy(self._removal_policy)
        pin_logical_id(database, "LakeDatabase")
        return database

    def _table(
        self,
        logical_id: str,
        *,
        zone: str,
        description: str,
        columns: list[tuple[str, str, str]],
        name: str | None = None,
        prefix: str | None = None,
    ) -> glue.CfnTable:
        """A zone-wide table (``tenant``, ``dataset`` and ``dt`` partitions), or with ``prefix`` one dataset's (``dt``).

        Glue TableInput: https://docs.aws.amazon.com/glue/latest/webapi/API_TableInput.html; partition
        projection: https://docs.aws.amazon.com/athena/latest/ug/partition-projection-setting-up.html.
        """
        bucket = self.zones[zone]
        location = f"s3://{bucket.bucket_name}/{prefix or zone + '/'}"
        partitions = ("dt",) if prefix else PARTITION_KEYS
        template = "dt=${dt}/" if prefix else "${tenant}/${dataset}/dt=${dt}/"
        injected = {f"projection.{key}.type": "injected" for key in partitions if key != "dt"}
        table = glue.CfnTable(
            self,
            logical_id,
            catalog_id=Stack.of(self).account,
            database_name=self.database.ref,
            table_input=glue.CfnTable.TableInputProperty(
                name=name or zone,
                description=description,
                table_type="EXTERNAL_TABLE",
                parameters={
                    "classification": "parquet",
                    "parquet.compression": "SNAPPY",
                    # Partition projection: Athena computes partitions from the key layout, so no
                    # crawler and no MSCK REPAIR. Queries name the tenant and dataset they read.
                    "projection.enabled": "true",
                    **injected,
                    "projection.dt.type": "date",
                    "projection.dt.format": "yyyy-MM-dd",
                    "projection.dt.range": "2020-01-01,NOW",
                    "projection.dt.interval": "1",
                    "projection.dt.interval.unit": "DAYS",
                    "storage.location.template": location + template,
                },
                partition_keys=[glue.CfnTable.ColumnProperty(name=key, type="string") for key in partitions],
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    location=location,
                    input_format="org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                    output_format="org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                    serde_info=glue.CfnTable.SerdeInfoProperty(
                        serialization_library="org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
                    ),
                    columns=[
                        glue.CfnTable.ColumnProperty(name=name, type=type_, comment=comment)
                        for name, type_, comment in columns
                    ],
                ),
            ),
        )
        table.apply_removal_policy(self._removal_policy)
        pin_logical_id(table, logical_id)
        return table

    def _workgroup(self, names: Names) -> athena.CfnWorkGroup:
        workgroup = enforced_workgroup(
            self,
            "WorkGroup",
            name=names.resource("analytics"),
            description=f"Queries over the {names.environment} data lake; results encrypted with the platform key",
            output_location=f"s3://{self.query_results.bucket_name}/athena/",
            key=self._key,
            removal_policy=self._removal_policy,
        )
        pin_logical_id(workgroup, "AthenaWorkGroup")
        return workgroup


def enforced_workgroup(
    scope: Construct,
    id: str,
    *,
    name: str,
    description: str,
    output_location: str,
    key: kms.IKey,
    removal_policy: RemovalPolicy,
) -> athena.CfnWorkGroup:
    """An Athena workgroup whose queries cannot choose another results location or encryption than its own."""
    workgroup = athena.CfnWorkGroup(
        scope,
        id,
        name=name,
        description=description,
        state="ENABLED",
        recursive_delete_option=removal_policy == RemovalPolicy.DESTROY,
        work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
            enforce_work_group_configuration=True,
            publish_cloud_watch_metrics_enabled=True,
            engine_version=athena.CfnWorkGroup.EngineVersionProperty(selected_engine_version="Athena engine version 3"),
            result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                output_location=output_location,
                expected_bucket_owner=Stack.of(scope).account,
                encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                    encryption_option="SSE_KMS", kms_key=key.key_arn
                ),
            ),
        ),
    )
    workgroup.apply_removal_policy(removal_policy)
    return workgroup


def require_platform_key(bucket: s3.Bucket, key: kms.IKey) -> None:
    """Uploads that would encrypt with anything but the platform key are refused (issue 17, point 6).

    Every object ends up under the platform key from two halves together:
    * a request that names no encryption gets the bucket's default, SSE-KMS with the platform key and a
      bucket key ("Setting default server-side encryption behavior for Amazon S3 buckets":
      https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucket-encryption.html). Such a request carries
      no encryption header, so its condition keys are absent. A negated operator (``StringNotEquals``) and an
      ``...IfExists`` one both evaluate to true for an absent key, which in a Deny would refuse it (IAM User
      Guide, condition operators:
      https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_IfExists),
      so each denial also requires its header to be there (``Null: false``);
    * a request that names encryption must name SSE-KMS with the platform key's ARN
      (``s3:x-amz-server-side-encryption-aws-kms-key-id`` carries the key as the request spells it, which must
      be the key ARN: "Requiring SSE-KMS for all objects written to a bucket",
      https://docs.aws.amazon.com/AmazonS3/latest/userguide/specifying-kms-encryption.html#require-sse-kms).
      SSE-KMS without a key ID is refused too: PutObject then uses the AWS managed key ``aws/s3``
      (https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html, x-amz-server-side-encryption-aws-kms-key-id),
      and SSE-C is refused by the presence of its algorithm header (the statement of AWS's own example,
      https://github.com/aws-samples/resource-control-policy-examples, Service-specific-controls/S3-Deny-SSE-C.json).

    CreateMultipartUpload and CopyObject are authorized as ``s3:PutObject`` with the same headers; UploadPart
    carries none and inherits the upload's encryption. The platform's writers (Lambdas through
    ``mlops_platform.aws.kms_encrypted``, ``mlops upload``, SageMaker jobs given ``KmsKeyId``, Athena's
    SSE_KMS results, the drift monitor's default-encrypted reports) all pass: tests/infra/test_foundation.py
    evaluates each request shape against these statements.
    """
    objects = bucket.arn_for_objects("*")
    anyone = [iam.AnyPrincipal()]
    sse = "s3:x-amz-server-side-encryption"
    sse_key = "s3:x-amz-server-side-encryption-aws-kms-key-id"
    for sid, conditions in (
        ("DenyEncryptionOtherThanKms", {"StringNotEquals": {sse: "aws:kms"}, "Null": {sse: "false"}}),
        ("DenyKmsKeysOtherThanThePlatformKey", {"StringNotEquals": {sse_key: key.key_arn}, "Null": {sse_key: "false"}}),
        ("DenyKmsWithoutAKeyId", {"StringEquals": {sse: "aws:kms"}, "Null": {sse_key: "true"}}),
        ("DenyCustomerProvidedKeys", {"Null": {"s3:x-amz-server-side-encryption-customer-algorithm": "false"}}),
    ):
        bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid=sid,
                effect=iam.Effect.DENY,
                principals=anyone,
                actions=["s3:PutObject"],
                resources=[objects],
                conditions=conditions,
            )
        )
