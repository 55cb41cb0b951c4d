"""Foundation: key and its service grants, topic, S3 zones, Glue catalog, Athena; logical IDs pinned."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match

from mlops_constructs.data_lake import QUARANTINE_PREFIX
from mlops_platform.aws import kms_encrypted
from tests.iam_policy import denies

ZONE_BUCKETS = [
    "RawZoneBucket",
    "CuratedZoneBucket",
    "FeaturesZoneBucket",
    "ArtifactsZoneBucket",
    "PredictionsZoneBucket",
    "CaptureZoneBucket",
]
KMS_BUCKETS = [*ZONE_BUCKETS, "QueryResultsBucket"]
ALL_BUCKETS = [*KMS_BUCKETS, "AccessLogsBucket"]
# Changing any of these replaces a resource that holds data or that other resources depend on.
PINNED_LOGICAL_IDS = {
    "PlatformKey": "AWS::KMS::Key",
    "NotificationTopic": "AWS::SNS::Topic",
    **dict.fromkeys(ALL_BUCKETS, "AWS::S3::Bucket"),
    "LakeDatabase": "AWS::Glue::Database",
    "CuratedTable": "AWS::Glue::Table",
    "FeaturesTable": "AWS::Glue::Table",
    # The example tenant's dataset (config/pipelines/example.yaml): one typed table per tenant dataset.
    "CuratedTableExampleOfBreastCancer": "AWS::Glue::Table",
    "AthenaWorkGroup": "AWS::Athena::WorkGroup",
    # The example tenant's own workgroup (mlops_constructs/tenant_analytics.py): its path is its name.
    "TenantAnalyticsexampleWorkGroup53C14D3B": "AWS::Athena::WorkGroup",
    "ProgressTable": "AWS::DynamoDB::GlobalTable",
    "RunLedgerTable": "AWS::DynamoDB::GlobalTable",
    "AsyncResultsTable": "AWS::DynamoDB::GlobalTable",
}
STATEFUL_TYPES = set(PINNED_LOGICAL_IDS.values())
KEY_ARN = {"Fn::GetAtt": ["PlatformKey", "Arn"]}


STACK = "foundation"


def test_stateful_resources_keep_their_pinned_logical_ids(resources):
    stateful = {
        logical_id: resource["Type"] for logical_id, resource in resources.items() if resource["Type"] in STATEFUL_TYPES
    }

    assert stateful == PINNED_LOGICAL_IDS


def test_the_key_rotates(template):
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True, "PendingWindowInDays": 30})


@pytest.mark.parametrize("service", ["cloudwatch.amazonaws.com", "events.amazonaws.com", "s3.amazonaws.com"])
def test_the_key_lets_publishing_services_encrypt_only_for_this_account(resources, settings, service):
    statements = resources["PlatformKey"]["Properties"]["KeyPolicy"]["Statement"]

    [grant] = [statement for statement in statements if statement["Principal"] == {"Service": service}]
    assert grant["Effect"] == "Allow"
    # EventBridge checks an encrypted bus's key (the progress bus) with DescribeKey; the others only encrypt.
    describe = {"kms:DescribeKey"} if service == "events.amazonaws.com" else set()
    assert set(grant["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"} | describe
    assert grant["Condition"] == {"StringEquals": {"aws:SourceAccount": settings.account}}


def test_the_key_policy_names_exactly_the_account_and_the_publishing_services(resources, settings):
    statements = resources["PlatformKey"]["Properties"]["KeyPolicy"]["Statement"]

    principals = sorted(json.dumps(statement["Principal"], sort_keys=True) for statement in statements)
    assert principals == sorted(
        json.dumps(principal, sort_keys=True)
        for principal in [
            {"AWS": f"arn:aws:iam::{settings.account}:root"},
            {"Service": "cloudwatch.amazonaws.com"},
            {"Service": "events.amazonaws.com"},
            {"Service": "s3.amazonaws.com"},
            {"Service": f"logs.{settings.region}.amazonaws.com"},
        ]
    )
    assert all(statement["Effect"] == "Allow" for statement in statements)
    # Only the account root is unconditioned: every service grant carries a condition.
    assert all("Condition" in statement for statement in statements if "Service" in statement["Principal"])


def test_the_key_lets_cloudwatch_logs_encrypt_only_this_accounts_log_groups(resources, settings):
    statements = resources["PlatformKey"]["Properties"]["KeyPolicy"]["Statement"]

    [grant] = [s for s in statements if s["Principal"] == {"Service": f"logs.{settings.region}.amazonaws.com"}]
    assert grant["Condition"] == {
        "ArnLike": {
            "kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:{settings.region}:{settings.account}:log-group:*"
        }
    }


def test_the_key_has_an_environment_scoped_alias(template, environment):
    template.has_resource_properties(
        "AWS::KMS::Alias", {"AliasName": f"alias/mlops/{environment}/platform", "TargetKeyId": KEY_ARN}
    )


def test_the_notification_topic_is_encrypted_with_the_key_and_tls_only(template, resources, settings):
    template.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": KEY_ARN})
    [policy] = [r for r in resources.values() if r["Type"] == "AWS::SNS::TopicPolicy"]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in statements
    )
    for service in ("cloudwatch.amazonaws.com", "events.amazonaws.com"):
        [grant] = [s for s in statements if s.get("Principal") == {"Service": service}]
        assert grant["Action"] == "sns:Publish"
        assert grant["Condition"] == {"StringEquals": {"aws:SourceAccount": settings.account}}


@pytest.mark.parametrize("bucket", ALL_BUCKETS)
def test_every_bucket_blocks_public_access_is_versioned_and_owner_enforced(resources, bucket):
    properties = resources[bucket]["Properties"]

    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    assert properties["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}


@pytest.mark.parametrize("bucket", ALL_BUCKETS)
def test_every_bucket_refuses_requests_without_tls_1_2(resources, bucket):
    [policy] = [
        r
        for r in resources.values()
        if r["Type"] == "AWS::S3::BucketPolicy" and r["Properties"]["Bucket"] == {"Ref": bucket}
    ]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    denials = [s["Condition"] for s in statements if s["Effect"] == "Deny"]
    assert {"Bool": {"aws:SecureTransport": "false"}} in denials
    assert {"NumericLessThan": {"s3:TlsVersion": 1.2}} in denials


@pytest.mark.parametrize("bucket", KMS_BUCKETS)
def test_data_buckets_are_encrypted_with_the_platform_key_and_log_their_access(resources, bucket):
    properties = resources[bucket]["Properties"]

    [rule] = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule == {
        "BucketKeyEnabled": True,
        "ServerSideEncryptionByDefault": {"KMSMasterKeyID": KEY_ARN, "SSEAlgorithm": "aws:kms"},
    }
    assert properties["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": "AccessLogsBucket"}


# The platform key as the tests resolve its Fn::GetAtt, and an object in the bucket under test.
PLATFORM_KEY = "arn:aws:kms:eu-west-1:111111111111:key/platform"
OTHER_KEY = "arn:aws:kms:eu-west-1:111111111111:key/other"
# boto3's PutObject / upload_file parameter -> the S3 condition key its header sets
# (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html#amazons3-policy-keys).
HEADER_KEYS = {
    "ServerSideEncryption": "s3:x-amz-server-side-encryption",
    "SSEKMSKeyId": "s3:x-amz-server-side-encryption-aws-kms-key-id",
    "SSECustomerAlgorithm": "s3:x-amz-server-side-encryption-customer-algorithm",
}
TLS = {"aws:SecureTransport": "true", "s3:TlsVersion": "1.3"}


def resolved(value, bucket: str):
    """A bucket policy's value with the platform key's and the bucket's ARNs filled in."""
    if isinstance(value, dict):
        if value == KEY_ARN:
            return PLATFORM_KEY
        if value == {"Fn::GetAtt": [bucket, "Arn"]}:
            return f"arn:aws:s3:::{bucket.lower()}"
        if set(value) == {"Fn::Join"}:
            separator, parts = value["Fn::Join"]
            return separator.join(resolved(part, bucket) for part in parts)
        return {name: resolved(item, bucket) for name, item in value.items()}
    if isinstance(value, list):
        return [resolved(item, bucket) for item in value]
    return value


def put_denied(resources, bucket: str, parameters: dict[str, str]) -> bool:
    [policy] = [
        r
        for r in resources.values()
        if r["Type"] == "AWS::S3::BucketPolicy" and r["Properties"]["Bucket"] == {"Ref": bucket}
    ]
    statements = resolved(policy["Properties"]["PolicyDocument"]["Statement"], bucket)
    context = {**TLS, **{HEADER_KEYS[name]: value for name, value in parameters.items() if name in HEADER_KEYS}}
    return denies(statements, "s3:PutObject", f"arn:aws:s3:::{bucket.lower()}/raw/acme/x.csv", context)


@pytest.mark.parametrize("bucket", KMS_BUCKETS)
@pytest.mark.parametrize(
    "writer",
    [
        # Ingest, the drift monitor's reports: no encryption named, the bucket's default applies.
        "default-encryption",
        # plan, evaluate (mlops_platform.aws.kms_encrypted) and `mlops upload` (ServerSideEncryption,
        # SSEKMSKeyId from the stack's PlatformKeyArn output): SSE-KMS with the key's ARN.
        "sdk-with-the-platform-key",
        # SageMaker training, processing and transform jobs and data capture (KmsKeyId: the key ARN),
        # Athena's SSE_KMS results (the workgroup's KmsKey): the same two headers.
        "service-with-the-platform-key",
    ],
)
def test_every_platform_writer_may_upload(resources, bucket, writer):
    parameters = {
        "default-encryption": {},
        "sdk-with-the-platform-key": kms_encrypted(PLATFORM_KEY),
        "service-with-the-platform-key": {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": PLATFORM_KEY},
    }[writer]

    assert not put_denied(resources, bucket, parameters)


@pytest.mark.parametrize("bucket", KMS_BUCKETS)
@pytest.mark.parametrize(
    "parameters",
    [
        {"ServerSideEncryption": "AES256"},
        {"ServerSideEncryption": "aws:kms:dsse", "SSEKMSKeyId": PLATFORM_KEY},
        {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": OTHER_KEY},
        # SSE-KMS without a key ID: S3 would use the AWS managed key aws/s3.
        {"ServerSideEncryption": "aws:kms"},
        {"SSECustomerAlgorithm": "AES256"},
    ],
    ids=["sse-s3", "dsse-kms", "another-kms-key", "aws-managed-key", "sse-c"],
)
def test_uploads_encrypted_otherwise_than_with_the_platform_key_are_refused(resources, bucket, parameters):
    """Issue 17, point 6: buckets refuse uploads without the platform's KMS encryption."""
    assert put_denied(resources, bucket, parameters)


def test_the_writers_name_the_key_by_the_arn_the_policy_compares(resources, template):
    """What `mlops upload` reads (PlatformKeyArn) and Athena is given are the key ARN the bucket policy names."""
    outputs = template.to_json()["Outputs"]
    assert outputs["PlatformKeyArn"]["Value"] == KEY_ARN
    workgroup = resources["AthenaWorkGroup"]["Properties"]["WorkGroupConfiguration"]["ResultConfiguration"]
    assert workgroup["EncryptionConfiguration"] == {"EncryptionOption": "SSE_KMS", "KmsKey": KEY_ARN}


def test_the_access_log_bucket_uses_s3_managed_keys_because_log_delivery_requires_them(resources):
    [rule] = resources["AccessLogsBucket"]["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]

    assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}


@pytest.mark.parametrize("bucket", ALL_BUCKETS)
def test_old_versions_expire_and_abandoned_uploads_are_aborted(resources, settings, bucket):
    rules = {rule["Id"]: rule for rule in resources[bucket]["Properties"]["LifecycleConfiguration"]["Rules"]}

    assert rules["ExpireNoncurrentVersions"]["NoncurrentVersionExpiration"] == {
        "NoncurrentDays": settings.retention.noncurrent_version_expiration_days
    }
    assert rules["AbortIncompleteUploads"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}


def test_raw_data_moves_to_infrequent_access_and_then_to_archive(resources, settings):
    rules = {rule["Id"]: rule for rule in resources["RawZoneBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]}

    assert rules["ArchiveRawData"]["Transitions"] == [
        {"StorageClass": "STANDARD_IA", "TransitionInDays": settings.retention.raw_infrequent_access_after_days},
        {"StorageClass": "GLACIER", "TransitionInDays": settings.retention.raw_archive_after_days},
    ]


def test_query_results_and_access_logs_expire(resources, settings):
    def expiration(bucket: str, rule_id: str) -> int:
        rules = resources[bucket]["Properties"]["LifecycleConfiguration"]["Rules"]
        return next(rule["ExpirationInDays"] for rule in rules if rule["Id"] == rule_id)

    assert expiration("QueryResultsBucket", "ExpireQueryResults") == settings.retention.query_results_expiration_days
    assert expiration("AccessLogsBucket", "ExpireAccessLogs") == settings.retention.access_logs_expiration_days


def test_zones_that_may_hold_personal_data_expire_as_configured(resources, settings):
    def rules(bucket: str) -> dict[str, dict]:
        found = resources[bucket]["Properties"]["LifecycleConfiguration"]["Rules"]
        return {rule["Id"]: rule for rule in found if "ExpirationInDays" in rule}

    retention = settings.retention
    assert rules("CaptureZoneBucket") == {
        "ExpireCapture": {
            "Id": "ExpireCapture",
            "ExpirationInDays": retention.capture_expiration_days,
            "Status": "Enabled",
        }
    }
    assert rules("PredictionsZoneBucket") == {
        "ExpirePredictions": {
            "Id": "ExpirePredictions",
            "ExpirationInDays": retention.predictions_expiration_days,
            "Status": "Enabled",
        }
    }
    raw = rules("RawZoneBucket")
    assert raw["ExpireRawData"]["ExpirationInDays"] == retention.raw_expiration_days
    assert raw["ExpireRawData"]["Prefix"] == "raw/"
    assert raw["ExpireQuarantine"]["ExpirationInDays"] == retention.quarantine_expiration_days
    assert raw["ExpireQuarantine"]["Prefix"] == QUARANTINE_PREFIX
    # Training data and models stay: curated, features and artifacts have no expiry.
    for bucket in ("CuratedZoneBucket", "FeaturesZoneBucket", "ArtifactsZoneBucket"):
        assert rules(bucket) == {}, bucket


@pytest.mark.parametrize("bucket", ZONE_BUCKETS)
def test_zones_send_their_object_events_to_eventbridge(resources, bucket):
    assert resources[bucket]["Properties"]["NotificationConfiguration"] == {
        "EventBridgeConfiguration": {"EventBridgeEnabled": True}
    }


def test_no_custom_resource_is_needed_for_notifications(resources):
    # The model pointers are the one custom resource here (create-if-absent SSM parameters).
    assert {r["Type"] for r in resources.values() if r["Type"].startswith("Custom::")} == {"Custom::ModelPointer"}


def test_data_is_kept_on_stack_deletion_outside_dev(resources, settings):
    expected = "Retain" if settings.name in ("staging", "prod") else "Delete"

    for logical_id, resource_type in PINNED_LOGICAL_IDS.items():
        if resource_type == "AWS::SNS::Topic":
            continue  # holds no data
        assert resources[logical_id].get("DeletionPolicy") == expected, logical_id
        assert resources[logical_id].get("UpdateReplacePolicy") == expected, logical_id


def test_termination_protection_follows_the_configuration(synthesized, settings):
    assert synthesized.stages[settings.name].foundation.termination_protection is settings.termination_protection


def test_the_glue_database_is_named_for_the_environment(template, environment):
    template.has_resource_properties(
        "AWS::Glue::Database", {"DatabaseInput": Match.object_like({"Name": f"mlops_{environment}_lake"})}
    )


@pytest.mark.parametrize(("table", "zone"), [("CuratedTable", "curated"), ("FeaturesTable", "features")])
def test_zone_tables_project_tenant_dataset_and_day_partitions_without_crawlers(resources, table, zone):
    table_input = resources[table]["Properties"]["TableInput"]
    bucket = {"Ref": f"{zone.capitalize()}ZoneBucket"}

    assert table_input["Name"] == zone
    assert [key["Name"] for key in table_input["PartitionKeys"]] == ["tenant", "dataset", "dt"]
    parameters = table_input["Parameters"]
    assert parameters["projection.enabled"] == "true"
    assert parameters["projection.tenant.type"] == "injected"
    assert parameters["projection.dataset.type"] == "injected"
    assert parameters["projection.dt.type"] == "date"
    assert parameters["projection.dt.format"] == "yyyy-MM-dd"
    assert parameters["storage.location.template"] == {
        "Fn::Join": ["", ["s3://", bucket, f"/{zone}/${{tenant}}/${{dataset}}/dt=${{dt}}/"]]
    }
    assert table_input["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")
    assert resources[table]["Properties"]["DatabaseName"] == {"Ref": "LakeDatabase"}


def test_the_athena_workgroup_enforces_encrypted_results_in_the_results_bucket(template, environment):
    template.has_resource_properties(
        "AWS::Athena::WorkGroup",
        {
            "Name": f"mlops-{environment}-analytics",
            "WorkGroupConfiguration": Match.object_like(
                {
                    "EnforceWorkGroupConfiguration": True,
                    "ResultConfiguration": {
                        "OutputLocation": {"Fn::Join": ["", ["s3://", {"Ref": "QueryResultsBucket"}, "/athena/"]]},
                        "EncryptionConfiguration": {"EncryptionOption": "SSE_KMS", "KmsKey": KEY_ARN},
                        "ExpectedBucketOwner": Match.any_value(),
                    },
                }
            ),
        },
    )


def test_every_resource_carries_the_environment_tag(resources, environment):
    for logical_id, resource in resources.items():
        tags = resource.get("Properties", {}).get("Tags")
        if isinstance(tags, list):
            assert {"Key": "Environment", "Value": environment} in tags, logical_id


@pytest.mark.parametrize("table", ["ProgressTable", "RunLedgerTable"])
def test_tables_are_encrypted_with_the_platform_key_recoverable_and_on_demand(resources, table):
    properties = resources[table]["Properties"]

    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["SSESpecification"]["SSEEnabled"] is True
    assert properties["SSESpecification"]["SSEType"] == "KMS"
    [replica] = properties["Replicas"]
    assert replica["SSESpecification"]["KMSMasterKeyId"] == KEY_ARN
    assert replica["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert [key["AttributeName"] for key in properties["KeySchema"]] == ["pk", "sk"]


def test_the_ledger_lists_a_tenants_records_through_a_generic_index(resources):
    [index] = resources["RunLedgerTable"]["Properties"]["GlobalSecondaryIndexes"]

    assert index["IndexName"] == "ByTenant"
    assert [key["AttributeName"] for key in index["KeySchema"]] == ["gsi1pk", "gsi1sk"]
