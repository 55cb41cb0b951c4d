"""Ingestion: an encrypted queue per tenant with a DLQ, partial-batch event sources, least-privilege function,
a producer policy per tenant that reaches only that tenant's queue, alarms."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import RemovalPolicy
from aws_cdk.assertions import Match, Template

from mlops_constructs.functions import POWERTOOLS_LAYER_ACCOUNT
from tests.conftest import ROOT, load_handler
from tests.iam_policy import allows

STACK = "ingestion"


def of_type(resources, resource_type):
    return {logical_id: r for logical_id, r in resources.items() if r["Type"] == resource_type}


def foundation_output(environment: str, output_prefix: str):
    """A weak cross-stack reference to one of Foundation's outputs, resolved by CloudFormation at deploy."""
    return {
        "Fn::GetStackOutput": {
            "StackName": f"{environment}-Foundation",
            "Region": "eu-west-1",
            "OutputName": Match.string_like_regexp(f"^{output_prefix}"),
        }
    }


def the_function(resources):
    [function] = of_type(resources, "AWS::Lambda::Function").values()
    return function["Properties"]


def test_both_queues_are_encrypted_with_the_platform_key_and_refuse_plain_http(template, resources, environment):
    queues = of_type(resources, "AWS::SQS::Queue")
    assert len(queues) == 2
    template.resource_properties_count_is(
        "AWS::SQS::Queue",
        {"KmsMasterKeyId": foundation_output(environment, "PublishOutputFnGetAttPlatformKeyArn")},
        2,
    )
    for policy in of_type(resources, "AWS::SQS::QueuePolicy").values():
        [statement] = policy["Properties"]["PolicyDocument"]["Statement"]
        assert statement["Effect"] == "Deny"
        assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_failed_messages_go_to_the_dead_letter_queue_after_the_configured_receives(resources, settings):
    queues = of_type(resources, "AWS::SQS::Queue")
    [main] = [q for q in queues.values() if "RedrivePolicy" in q["Properties"]]
    [dlq_id] = [logical_id for logical_id, q in queues.items() if "RedrivePolicy" not in q["Properties"]]

    assert main["Properties"]["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]},
        "maxReceiveCount": settings.ingestion.max_receive_count,
    }
    assert queues[dlq_id]["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_the_visibility_timeout_is_six_times_the_function_timeout(resources):
    [main] = [q for q in of_type(resources, "AWS::SQS::Queue").values() if "RedrivePolicy" in q["Properties"]]

    assert main["Properties"]["VisibilityTimeout"] == 6 * the_function(resources)["Timeout"]


def test_the_event_source_reports_partial_batch_failures(template, settings):
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "BatchSize": settings.capacities.ingest_batch_size,
            "ScalingConfig": {"MaximumConcurrency": settings.capacities.ingest_max_concurrency},
        },
    )


def test_the_function_uses_the_managed_powertools_layer_not_a_docker_bundle(resources, settings):
    function = the_function(resources)

    assert function["Runtime"] == "python3.14"
    assert function["Architectures"] == ["arm64"]
    assert function["Handler"] == "handler.handler"
    [layer] = function["Layers"]
    assert layer.startswith(f"arn:aws:lambda:{settings.region}:{POWERTOOLS_LAYER_ACCOUNT}:layer:")
    assert "AWSLambdaPowertoolsPythonV3-python314-arm64:" in layer


def test_the_function_is_configured_from_the_environment_settings(resources, settings, environment):
    variables = the_function(resources)["Environment"]["Variables"]

    assert variables["RAW_BUCKET"] == {
        "Fn::GetStackOutput": {
            "StackName": f"{environment}-Foundation",
            "Region": settings.region,
            "OutputName": variables["RAW_BUCKET"]["Fn::GetStackOutput"]["OutputName"],
        }
    }
    assert variables["RAW_BUCKET"]["Fn::GetStackOutput"]["OutputName"].startswith("PublishOutputRefRawZoneBucket")
    assert variables["MAX_RECORD_BYTES"] == str(settings.ingestion.max_record_bytes)
    assert variables["MAX_RECORDS_PER_MESSAGE"] == str(settings.ingestion.max_records_per_message)
    assert variables["RAW_PREFIX"] == "raw/"
    assert variables["QUARANTINE_PREFIX"] == "quarantine/"
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == f"mlops/{environment}"


def test_the_function_may_write_only_raw_and_quarantine_objects(resources):
    [policy] = of_type(resources, "AWS::IAM::Policy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]

    s3_statements = [s for s in statements if any(str(a).startswith("s3:") for a in _actions(s))]
    assert len(s3_statements) == 1
    assert _actions(s3_statements[0]) == ["s3:PutObject"]
    suffixes = sorted(resource["Fn::Join"][1][1] for resource in s3_statements[0]["Resource"])
    assert suffixes == ["/quarantine/*", "/raw/*"]
    for statement in statements:
        assert "*" not in _actions(statement)
        assert not any(action.endswith(":*") for action in _actions(statement))


def test_no_role_has_managed_policies_attached(resources):
    for role in of_type(resources, "AWS::IAM::Role").values():
        assert "ManagedPolicyArns" not in role["Properties"]


def test_the_function_knows_each_queue_s_tenant(resources):
    """TENANT_QUEUES, as the handler reads it: the ARN of each tenant's queue -> that tenant."""
    joined = the_function(resources)["Environment"]["Variables"]["TENANT_QUEUES"]["Fn::Join"]
    text = "".join(f"<{part['Fn::GetAtt'][0]}>" if isinstance(part, dict) else part for part in joined[1])

    assert json.loads(text) == {"<IngestQueueExample>": "example"}


def test_each_tenant_s_queue_url_and_producer_policy_are_outputs(synthesized, environment):
    outputs = synthesized.template_json(environment, STACK)["Outputs"]

    assert outputs["IngestQueueUrlExample"]["Value"] == {"Ref": "IngestQueueExample"}
    assert outputs["ProducerPolicyArnExample"]["Value"]["Ref"].startswith("IngestProducerPolicyExample")
    assert not [name for name in outputs if name in ("IngestQueueUrl", "ProducerPolicyArn")]  # no shared queue


def test_producers_get_a_policy_that_only_sends_to_the_queue(resources, settings):
    [policy] = of_type(resources, "AWS::IAM::ManagedPolicy").values()
    statements = {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}

    assert set(statements) == {"SendRecords", "EncryptMessages"}
    assert statements["SendRecords"]["Action"] == "sqs:SendMessage"
    assert statements["SendRecords"]["Resource"] == {"Fn::GetAtt": ["IngestQueueExample", "Arn"]}
    assert set(statements["EncryptMessages"]["Action"]) == {"kms:GenerateDataKey", "kms:Decrypt"}
    # The key encrypts the whole lake: a producer may use it only through SQS.
    assert statements["EncryptMessages"]["Condition"] == {
        "StringEquals": {"kms:ViaService": f"sqs.{settings.region}.amazonaws.com"}
    }


def test_the_function_uses_the_key_for_objects_only_through_s3(resources, settings):
    [policy] = of_type(resources, "AWS::IAM::Policy").values()
    [statement] = [
        s for s in policy["Properties"]["PolicyDocument"]["Statement"] if "kms:GenerateDataKey" in _actions(s)
    ]

    assert statement["Condition"] == {"StringEquals": {"kms:ViaService": f"s3.{settings.region}.amazonaws.com"}}


def test_the_queues_keep_pinned_logical_ids_and_the_environments_removal_policy(resources, settings):
    expected = "Retain" if settings.retains_data else "Delete"

    assert set(of_type(resources, "AWS::SQS::Queue")) == {"IngestQueueExample", "IngestDeadLetterQueue"}
    for queue in ("IngestQueueExample", "IngestDeadLetterQueue"):
        assert resources[queue]["DeletionPolicy"] == expected
        assert resources[queue]["UpdateReplacePolicy"] == expected


def test_logs_are_kept_for_the_configured_days_and_encrypted(template, settings, environment):
    template.has_resource_properties(
        "AWS::Logs::LogGroup",
        {
            "RetentionInDays": settings.retention.log_retention_days,
            "KmsKeyId": foundation_output(environment, "PublishOutputFnGetAttPlatformKeyArn"),
        },
    )


def test_every_alarm_notifies_the_environment_topic(resources, environment):
    alarms = of_type(resources, "AWS::CloudWatch::Alarm")

    assert len(alarms) == 3
    for alarm in alarms.values():
        [action] = alarm["Properties"]["AlarmActions"]
        assert action["Fn::GetStackOutput"]["StackName"] == f"{environment}-Foundation"
        assert action["Fn::GetStackOutput"]["OutputName"].startswith("PublishOutputRefNotificationTopic")


def test_the_quarantine_alarm_watches_the_metric_the_handler_publishes(resources, environment, monkeypatch, capsys):
    [alarm] = [
        a["Properties"]
        for a in of_type(resources, "AWS::CloudWatch::Alarm").values()
        if a["Properties"]["MetricName"] == "RecordsQuarantined"
    ]
    variables = the_function(resources)["Environment"]["Variables"]
    for name in ("POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"):
        monkeypatch.setenv(name, variables[name])
    monkeypatch.setenv("RAW_BUCKET", "unused")
    monkeypatch.setenv("TENANT_QUEUES", "{}")
    handler = load_handler("ingest")

    handler.metrics.add_metric("RecordsQuarantined", "Count", 1)
    handler.metrics.flush_metrics()
    [emf] = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]

    directive = emf["_aws"]["CloudWatchMetrics"][0]
    assert alarm["Namespace"] == directive["Namespace"] == f"mlops/{environment}"
    assert [d["Name"] for d in alarm["Dimensions"]] == directive["Dimensions"][0]
    assert all(emf[d["Name"]] == d["Value"] for d in alarm["Dimensions"])


def test_the_function_asset_holds_the_handler_and_no_test_leftovers(synthesized, resources, environment):
    s3_key = the_function(resources)["Code"]["S3Key"]
    asset = synthesized.outdir / f"asset.{s3_key.removesuffix('.zip')}"

    assert (asset / "handler.py").read_bytes() == (ROOT / "lambda" / "ingest" / "handler.py").read_bytes()
    assert not list(asset.rglob("__pycache__"))
    assert not (asset / "requirements.txt").exists()


def _actions(statement) -> list[str]:
    action = statement["Action"]
    return action if isinstance(action, list) else [action]


# Two tenants, the construct alone: the shipped configuration has one tenant, and isolation needs two.
TENANTS = ("acme", "acme-corp")


@pytest.fixture(scope="module")
def two_tenants(platform_config) -> dict[str, Any]:
    from aws_cdk import App, Stack
    from aws_cdk import aws_kms as kms
    from aws_cdk import aws_s3 as s3
    from aws_cdk import aws_sns as sns

    from config.naming import Names
    from mlops_constructs.ingestion import IngestionPipeline

    dev = platform_config.environment("dev")
    stack = Stack(App(), "Tenants", env={"account": dev.account, "region": dev.region})
    IngestionPipeline(
        stack,
        "Ingest",
        names=Names(project="mlops", environment="dev"),
        key=kms.Key(stack, "Key"),
        raw_bucket=s3.Bucket(stack, "Raw"),
        alarm_topic=sns.Topic(stack, "Topic"),
        settings=dev.ingestion,
        capacities=dev.capacities,
        tenants=TENANTS,
        log_retention_days=7,
        removal_policy=RemovalPolicy.DESTROY,
    )
    return Template.from_stack(stack).to_json()["Resources"]


def queue_arn(logical_id: str) -> str:
    return f"arn:aws:sqs:eu-west-1:111111111111:{logical_id}"


def resolved(resource: Any) -> list[str]:
    """A policy resource with each queue's Fn::GetAtt Arn resolved by queue_arn."""
    resources = resource if isinstance(resource, list) else [resource]
    return [queue_arn(r["Fn::GetAtt"][0]) if isinstance(r, dict) else r for r in resources]


def test_each_tenant_has_its_own_queue_read_by_its_own_mapping(two_tenants, platform_config):
    dev = platform_config.environment("dev")
    queues = {logical_id for logical_id, r in two_tenants.items() if r["Type"] == "AWS::SQS::Queue"}
    mappings = [r["Properties"] for r in two_tenants.values() if r["Type"] == "AWS::Lambda::EventSourceMapping"]

    assert queues == {"IngestQueueAcme", "IngestQueueAcmeXcorp", "IngestDeadLetterQueue"}
    assert sorted(m["EventSourceArn"]["Fn::GetAtt"][0] for m in mappings) == ["IngestQueueAcme", "IngestQueueAcmeXcorp"]
    for mapping in mappings:  # each tenant's backlog has its own concurrency
        assert mapping["ScalingConfig"] == {"MaximumConcurrency": dev.capacities.ingest_max_concurrency}


def test_a_tenant_s_producer_policy_sends_to_its_own_queue_and_to_no_other(two_tenants):
    """Issue 17: one producer wrote another tenant's data. The boundary is IAM on the queue ARN."""
    policies = {
        logical_id: [
            {**statement, "Resource": resolved(statement["Resource"])}
            for statement in r["Properties"]["PolicyDocument"]["Statement"]
        ]
        for logical_id, r in two_tenants.items()
        if r["Type"] == "AWS::IAM::ManagedPolicy"
    }
    acme = next(
        statements
        for logical_id, statements in policies.items()
        if logical_id.startswith("IngestProducerPolicyAcme") and "Xcorp" not in logical_id
    )
    corp = next(statements for logical_id, statements in policies.items() if "ProducerPolicyAcmeXcorp" in logical_id)

    assert len(policies) == 2
    assert allows(acme, "sqs:SendMessage", queue_arn("IngestQueueAcme"))
    assert not allows(acme, "sqs:SendMessage", queue_arn("IngestQueueAcmeXcorp"))
    assert allows(corp, "sqs:SendMessage", queue_arn("IngestQueueAcmeXcorp"))
    assert not allows(corp, "sqs:SendMessage", queue_arn("IngestQueueAcme"))
    for statements in (acme, corp):
        assert not allows(statements, "sqs:SendMessage", queue_arn("IngestDeadLetterQueue"))
        assert not allows(statements, "sqs:ReceiveMessage", queue_arn("IngestQueueAcme"))


def test_the_handler_routes_each_queue_to_the_tenant_the_template_names(two_tenants, monkeypatch):
    """The seam: TENANT_QUEUES as synthesized, read by the handler, routes a message from each tenant's queue."""
    [function] = [r["Properties"] for r in two_tenants.values() if r["Type"] == "AWS::Lambda::Function"]
    joined = function["Environment"]["Variables"]["TENANT_QUEUES"]["Fn::Join"]
    text = "".join(queue_arn(p["Fn::GetAtt"][0]) if isinstance(p, dict) else p for p in joined[1])
    monkeypatch.setenv("TENANT_QUEUES", text)
    monkeypatch.setenv("RAW_BUCKET", "unused")
    handler = load_handler("ingest")

    assert {
        queue_arn("IngestQueueAcme"): "acme",
        queue_arn("IngestQueueAcmeXcorp"): "acme-corp",
    } == handler.TENANT_QUEUES
