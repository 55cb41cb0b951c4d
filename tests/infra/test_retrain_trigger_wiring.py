"""Retraining triggers: rules that match the documented events and nothing else, batching, least privilege.

The rules' patterns are read from the synthesized template and matched with moto's EventBridge
matcher against the sample events in tests/unit/events (AWS's documented shapes).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk.assertions import Template
from moto.events.models import EventPattern

from config.monitoring import Retraining
from config.naming import Names
from mlops_constructs.retrain_new_data import BURST_BATCH_SIZE
from mlops_constructs.retrain_trigger import DECISION_METRICS, RetrainTrigger
from tests.conftest import ROOT, imported_modules, load_handler
from tests.infra.test_training import function_environment, of_type
from tests.unit.test_handler_imports import ENVIRONMENTS

STACK = "monitoring"
EVENTS = Path(__file__).resolve().parent.parent / "unit" / "events"
ALARM = json.loads((EVENTS / "cloudwatch_alarm_state_change.json").read_text())
OBJECT_CREATED = json.loads((EVENTS / "s3_object_created.json").read_text())
DRIFT_SUMMARY = json.loads((EVENTS / "drift_summary.json").read_text())
PACKAGE_STATE_CHANGE = json.loads((EVENTS / "sagemaker_model_package_state_change.json").read_text())
RAW_BUCKET = "mlops-test-raw"  # what the raw bucket's token stands for in these tests
PREFIX = "RetrainTrigger"


def other(environment: str) -> str:
    return "prod" if environment != "prod" else "dev"


def concrete(value: Any) -> Any:
    """A template value with the raw bucket's reference (the only token in the patterns) made concrete."""
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)) in ("Fn::GetStackOutput", "Fn::ImportValue", "Ref"):
            assert "RawZoneBucket" in json.dumps(value), value
            return RAW_BUCKET
        return {key: concrete(item) for key, item in value.items()}
    if isinstance(value, list):
        return [concrete(item) for item in value]
    return value


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    return EventPattern.load(json.dumps(pattern)).matches_event(event)


def rules(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The trigger's event rules by detail-type (the scheduled rule has none)."""
    found = {}
    for logical_id, rule in of_type(resources, "AWS::Events::Rule").items():
        if logical_id.startswith(PREFIX) and "EventPattern" in rule["Properties"]:
            [detail_type] = rule["Properties"]["EventPattern"]["detail-type"]
            found[detail_type] = rule["Properties"]
    return found


def pattern(resources: dict[str, Any], detail_type: str) -> dict[str, Any]:
    return concrete(rules(resources)[detail_type]["EventPattern"])


def alarm_event(name: str, state: str = "ALARM") -> dict[str, Any]:
    event = copy.deepcopy(ALARM)
    event["detail"]["alarmName"] = name
    event["detail"]["state"]["value"] = state
    return event


def summary_event(**detail: Any) -> dict[str, Any]:
    event = copy.deepcopy(DRIFT_SUMMARY)
    event["detail"].update(detail)
    return event


def object_event(key: str, bucket: str = RAW_BUCKET, detail_type: str = "Object Created") -> dict[str, Any]:
    event = copy.deepcopy(OBJECT_CREATED)
    event["detail-type"] = detail_type
    event["detail"]["bucket"]["name"] = bucket
    event["detail"]["object"]["key"] = key
    return event


def logical_id(resources: dict[str, Any], kind: str, prefix: str) -> str:
    [found] = [lid for lid in of_type(resources, kind) if lid.startswith(prefix)]
    return found


# -- the rules, against the documented events ------------------------------------------------------


def test_the_drift_alarm_rule_takes_this_environments_drift_alarms_going_to_alarm(resources, environment):
    rule = pattern(resources, "CloudWatch Alarm State Change")
    ours = f"mlops-{environment}-drift-acme"

    assert matches(rule, alarm_event(ours))
    assert matches(rule, ALARM) == (environment == "dev")  # the sample is dev's alarm of endpoint acme-xgboost
    assert not matches(rule, alarm_event(ours, state="OK"))
    assert not matches(rule, alarm_event(ours, state="INSUFFICIENT_DATA"))
    assert not matches(rule, alarm_event(f"mlops-{other(environment)}-drift-acme"))
    assert not matches(rule, alarm_event(f"mlops-{environment}-latency-acme"))
    assert not matches(rule, {**alarm_event(ours), "source": "mlops.monitoring"})


def test_the_drift_summary_rule_takes_this_environments_summaries_that_report_drift(resources, environment):
    rule = pattern(resources, "Drift Summary")

    assert matches(rule, summary_event(environment=environment))
    assert matches(rule, DRIFT_SUMMARY) == (environment == "dev")  # the sample is dev's summary
    assert not matches(rule, summary_event(environment=environment, drift=False))
    assert not matches(rule, summary_event(environment=other(environment)))
    assert not matches(rule, {**summary_event(environment=environment), "source": "other.monitoring"})
    # A summary that does not say which environment it is from starts nothing.
    anonymous = copy.deepcopy(DRIFT_SUMMARY)
    anonymous["detail"].pop("environment", None)
    assert not matches(rule, anonymous)


def test_the_new_data_rule_takes_raw_keys_of_the_raw_bucket_only(resources):
    rule = pattern(resources, "Object Created")

    assert matches(rule, object_event(OBJECT_CREATED["detail"]["object"]["key"]))
    assert matches(rule, object_event("raw/example/breast-cancer/dt=2026-01-01/part-0.jsonl"))  # the λ ignores it
    assert not matches(rule, object_event("curated/acme/churn/dt=2021-11-12/part-0.parquet"))
    assert not matches(rule, object_event("quarantine/acme/churn/dt=2021-11-12/0123.jsonl"))
    assert not matches(rule, object_event("features/acme/churn/dt=2021-11-12/part-0.parquet"))
    assert not matches(rule, object_event("predictions/acme/churn/part-0.csv"))
    assert not matches(rule, object_event("raw/acme/churn/x.jsonl", bucket="mlops-test-curated"))
    assert not matches(rule, object_event("raw/acme/churn/x.jsonl", detail_type="Object Deleted"))
    # The sample names the bucket by its physical name; the rule names this environment's raw bucket.
    assert not matches(rule, OBJECT_CREATED)


def test_the_new_data_rule_takes_tenants_files_as_well_as_records_and_nothing_else_under_raw(resources):
    rule = pattern(resources, "Object Created")

    for name in ("0123.jsonl", "delivery.csv", "delivery.parquet", "rows.jsonl"):
        assert matches(rule, object_event(f"raw/acme/churn/dt=2026-11-24/{name}")), name
    for name in ("_SUCCESS", "delivery.csv.tmp", "notes.txt", "delivery.CSV"):
        assert not matches(rule, object_event(f"raw/acme/churn/dt=2026-11-24/{name}")), name
    assert not matches(rule, object_event("curated/acme/churn/dt=2026-11-24/delivery.csv"))


def package_event(group: str, status: str) -> dict[str, Any]:
    event = copy.deepcopy(PACKAGE_STATE_CHANGE)
    event["detail"].update(ModelPackageGroupName=group, ModelApprovalStatus=status)
    return event


def test_the_candidate_rule_takes_this_environments_approved_and_rejected_packages(resources, environment):
    rule = pattern(resources, "SageMaker Model Package State Change")
    group = f"mlops-{environment}-acme-xgboost"

    assert matches(rule, package_event(group, "Approved"))
    assert matches(rule, package_event(group, "Rejected"))
    assert not matches(rule, package_event(group, "PendingManualApproval"))
    assert not matches(rule, package_event(f"mlops-{other(environment)}-acme-xgboost", "Approved"))
    assert not matches(rule, PACKAGE_STATE_CHANGE)  # the documented sample's group is no group of ours
    [target] = rules(resources)["SageMaker Model Package State Change"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [logical_id(resources, "AWS::Lambda::Function", f"{PREFIX}Function"), "Arn"]}


def test_kept_uploads_are_swept_every_few_minutes(resources):
    [sweep] = [
        rule["Properties"]
        for lid, rule in of_type(resources, "AWS::Events::Rule").items()
        if lid.startswith(f"{PREFIX}PendingSweepRule")
    ]
    function = logical_id(resources, "AWS::Lambda::Function", f"{PREFIX}Function")

    assert sweep["ScheduleExpression"] == "rate(10 minutes)"
    [target] = sweep["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [function, "Arn"]}
    assert "Input" not in target  # the function tells the sweep by EventBridge's own "Scheduled Event"


def test_the_raw_bucket_sends_its_events_to_eventbridge(synthesized, environment):
    foundation = synthesized.template_json(environment, "foundation")["Resources"]
    raw = foundation["RawZoneBucket"]["Properties"]

    assert raw["NotificationConfiguration"]["EventBridgeConfiguration"]["EventBridgeEnabled"] is True


def test_drift_rules_invoke_the_function_with_retries_and_a_dead_letter_queue(resources):
    found = rules(resources)
    function = logical_id(resources, "AWS::Lambda::Function", f"{PREFIX}Function")
    dead_letters = logical_id(resources, "AWS::SQS::Queue", f"{PREFIX}DeadLetterQueue")

    for detail_type in ("CloudWatch Alarm State Change", "Drift Summary", "SageMaker Model Package State Change"):
        [target] = found[detail_type]["Targets"]
        assert target["Arn"] == {"Fn::GetAtt": [function, "Arn"]}
        assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": [dead_letters, "Arn"]}
        assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
        assert "Input" not in target
        assert "InputTransformer" not in target
    # The approval path's function has an invoke config of its own: pick the trigger's.
    [invoke_config] = [
        config
        for config in of_type(resources, "AWS::Lambda::EventInvokeConfig").values()
        if config["Properties"]["FunctionName"] == {"Ref": function}
    ]
    assert invoke_config["Properties"]["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": [dead_letters, "Arn"]
    }


def test_new_data_goes_to_an_encrypted_queue_with_a_dead_letter_queue(resources):
    [target] = rules(resources)["Object Created"]["Targets"]
    queue = logical_id(resources, "AWS::SQS::Queue", f"{PREFIX}NewDataQueue")
    dead_letters = logical_id(resources, "AWS::SQS::Queue", f"{PREFIX}NewDataDeadLetterQueue")
    properties = resources[queue]["Properties"]

    # The whole event reaches the queue: the λ reads bucket and key from it.
    assert target["Arn"] == {"Fn::GetAtt": [queue, "Arn"]}
    assert "InputTransformer" not in target
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": [dead_letters, "Arn"]}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
    assert properties["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": [dead_letters, "Arn"]}
    assert "PlatformKeyArn" in json.dumps(properties["KmsMasterKeyId"])
    assert "PlatformKeyArn" in json.dumps(resources[dead_letters]["Properties"]["KmsMasterKeyId"])


def test_only_the_new_data_rule_may_send_to_the_queue(resources):
    queue = logical_id(resources, "AWS::SQS::Queue", f"{PREFIX}NewDataQueue")
    rule = logical_id(resources, "AWS::Events::Rule", f"{PREFIX}NewDataRule")
    [policy] = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in of_type(resources, "AWS::SQS::QueuePolicy").values()
        if p["Properties"]["Queues"] == [{"Ref": queue}]
    ]

    allowed = [statement for statement in policy if statement["Effect"] == "Allow"]
    assert allowed == [
        {
            "Sid": "NewDataRuleSends",
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": {"Fn::GetAtt": [queue, "Arn"]},
            "Condition": {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": [rule, "Arn"]}}},
        }
    ]
    [deny] = [statement for statement in policy if statement["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_the_queue_is_read_in_bursts_within_the_configured_window(resources, settings):
    [mapping] = of_type(resources, "AWS::Lambda::EventSourceMapping").values()
    queue = logical_id(resources, "AWS::SQS::Queue", f"{PREFIX}NewDataQueue")
    properties = mapping["Properties"]
    window = settings.monitoring.retraining.batching_window_seconds

    assert properties["EventSourceArn"] == {"Fn::GetAtt": [queue, "Arn"]}
    assert properties["MaximumBatchingWindowInSeconds"] == window
    assert properties["BatchSize"] == BURST_BATCH_SIZE
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # A message stays invisible while its batch waits and is decided.
    assert resources[queue]["Properties"]["VisibilityTimeout"] >= window + 6 * 60


# -- the function -------------------------------------------------------------------------------------


def test_the_function_is_configured_from_the_environment(resources, settings, environment):
    variables = function_environment(resources, f"{PREFIX}Function")

    assert variables["COOLDOWN_SECONDS"] == str(settings.monitoring.retraining.cooldown_seconds)
    assert variables["CANDIDATE_EXPIRY_SECONDS"] == str(settings.monitoring.retraining.candidate_expiry_seconds)
    assert variables["LABELS_DATASET"] == (settings.monitoring.labels_dataset or "")
    assert variables["PACKAGE_GROUP_PREFIX"] == f"mlops-{environment}"
    assert variables["LEDGER_INDEX"] == "ByTenant"
    assert variables["CONFIG_PREFIX"] == "artifacts/config/pipelines/"
    assert "ArtifactsZone" in json.dumps(variables["CONFIG_BUCKET"])
    assert "example" in variables["IGNORED_TENANTS"].split(",")
    assert variables["ALARM_NAME_PREFIX"] == f"mlops-{environment}-drift-"
    assert variables["MONITORING_SOURCE"] == "mlops.monitoring"
    assert variables["RAW_PREFIX"] == "raw/"
    assert "RawZoneBucket" in json.dumps(variables["RAW_BUCKET"])
    assert "RunLedgerTable" in json.dumps(variables["LEDGER_TABLE"])
    assert "PipelineStateMachine" in json.dumps(variables["STATE_MACHINE_ARN"])
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == f"mlops/{environment}"


def statements(resources: dict[str, Any]) -> list[dict[str, Any]]:
    policy = logical_id(resources, "AWS::IAM::Policy", f"{PREFIX}FunctionRoleDefaultPolicy")
    return resources[policy]["Properties"]["PolicyDocument"]["Statement"]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# What the handler calls, and the IAM action and resource type each needs, from the Service Authorization
# Reference (https://docs.aws.amazon.com/service-authorization/latest/reference/): list_awsstepfunctions.html
# (StartExecution: stateMachine; DescribeExecution: execution), list_amazondynamodb.html (PutItem, UpdateItem,
# Query: table; Query: index), list_amazonsagemaker.html (DescribeModelPackage: model-package),
# list_amazons3.html (GetObject: object; ListObjectsV2 is authorized by s3:ListBucket: bucket), list_amazonsqs.html
# (SendMessage: queue, for the asynchronous invocations' on-failure destination).
GRANTS = {
    "states:StartExecution": ["PipelineStateMachine"],
    "states:DescribeExecution": [":execution:", "PipelineStateMachine"],
    "dynamodb:PutItem": ["RunLedgerTableArn"],
    "dynamodb:UpdateItem": ["RunLedgerTableArn"],
    "dynamodb:Query": ["RunLedgerTableArn"],
    "sagemaker:DescribeModelPackage": [":model-package/mlops-"],
    "s3:GetObject": ["ArtifactsZone", "/artifacts/config/pipelines/*"],
    "s3:ListBucket": ["ArtifactsZone"],
    "sqs:SendMessage": ["DeadLetterQueue"],
    # The new-data queue, as Lambda's event source mapping polls it with the function's role.
    "sqs:ReceiveMessage": ["NewDataQueue"],
    "sqs:DeleteMessage": ["NewDataQueue"],
    "sqs:ChangeMessageVisibility": ["NewDataQueue"],
    "sqs:GetQueueAttributes": ["NewDataQueue"],
}
# What every platform function's role holds (mlops_constructs/functions.py), tested there.
FUNCTION_BASICS = {"logs:CreateLogStream", "logs:PutLogEvents", "xray:PutTraceSegments", "xray:PutTelemetryRecords"}
# The calls each action authorizes: the handler's own (boto3 operation names), checked against the code.
CALLS = {
    "states:StartExecution": "start_execution",
    "states:DescribeExecution": "describe_execution",
    "dynamodb:PutItem": "put_item",
    "dynamodb:UpdateItem": "update_item",
    "dynamodb:Query": "query",
    "sagemaker:DescribeModelPackage": "describe_model_package",
    "s3:GetObject": "get_object",
    "s3:ListBucket": "list_objects_v2",
}


def test_the_function_may_do_what_it_calls_and_nothing_more(resources):
    granted = statements(resources)
    by_action: dict[str, list[str]] = {}
    for statement in granted:
        for action in as_list(statement["Action"]):
            if not action.startswith("kms:") and action not in FUNCTION_BASICS:
                by_action.setdefault(action, []).extend(json.dumps(r) for r in as_list(statement["Resource"]))

    assert set(by_action) == set(GRANTS)
    for action, parts in GRANTS.items():
        assert any(all(part in resource for part in parts) for resource in by_action[action]), (action, by_action)
    # Query on the ByTenant index (the sweep) and on the table (a run's packages): both, nothing wider.
    queries = by_action["dynamodb:Query"]
    assert any("/index/ByTenant" in resource for resource in queries)
    assert not any("*" in resource for resource in queries)
    listing = next(s for s in granted if "s3:ListBucket" in as_list(s["Action"]))
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["artifacts/config/pipelines/*"]}}
    # The platform key only through DynamoDB, S3 and SQS; no statement on it without that condition.
    for statement in granted:
        if any(action.startswith("kms:") for action in as_list(statement["Action"])):
            assert "PlatformKeyArn" in json.dumps(statement["Resource"])
            service = statement["Condition"]["StringEquals"]["kms:ViaService"]
            assert service.split(".")[0] in ("dynamodb", "s3", "sqs")
    [role] = [r for lid, r in of_type(resources, "AWS::IAM::Role").items() if lid.startswith(f"{PREFIX}FunctionRole")]
    assert "ManagedPolicyArns" not in role["Properties"]


def test_every_call_of_the_handler_is_granted():
    # The handler and every module of ours it imports (mlops_platform), wherever a call has moved to.
    loaded = imported_modules("retrain_trigger", **ENVIRONMENTS["retrain_trigger", "handler"])
    files = sorted({Path(file) for file in loaded.values() if file and Path(file).is_relative_to(ROOT)})
    assert ROOT / "lambda" / "retrain_trigger" / "handler.py" in files
    assert ROOT / "mlops_platform" / "monitoring" / "retraining" / "trigger.py" in files
    source = "\n".join(file.read_text() for file in files)
    called = set(re.findall(r"\.(start_execution|describe_execution|put_item|update_item|query|get_paginator\(\"query"
                            r"|describe_model_package|get_object|list_objects_v2)\b", source))  # fmt: skip
    called = {"query" if call.startswith("get_paginator") else call for call in called}

    assert called == set(CALLS.values())


def test_dead_letter_queues_and_errors_alarm_the_topic(resources):
    alarms = {
        lid: alarm["Properties"]
        for lid, alarm in of_type(resources, "AWS::CloudWatch::Alarm").items()
        if lid.startswith(PREFIX)
    }
    watched = {json.dumps(alarm.get("Dimensions")) for alarm in alarms.values()}

    for queue in (f"{PREFIX}DeadLetterQueue", f"{PREFIX}NewDataDeadLetterQueue"):
        name = {"Fn::GetAtt": [logical_id(resources, "AWS::SQS::Queue", queue), "QueueName"]}
        assert json.dumps([{"Name": "QueueName", "Value": name}]) in watched
    for alarm in alarms.values():
        assert "NotificationTopic" in json.dumps(alarm["AlarmActions"])


def test_the_dashboard_graphs_the_metrics_the_handler_publishes(monkeypatch):
    for name, value in {
        "RAW_BUCKET": RAW_BUCKET,
        "ALARM_NAME_PREFIX": "mlops-dev-drift-",
        "MONITORING_SOURCE": "mlops.monitoring",
        "LEDGER_TABLE": "ledger",
        "STATE_MACHINE_ARN": "arn:aws:states:eu-west-1:111111111111:stateMachine:training",
        "COOLDOWN_SECONDS": "3600",
        "CANDIDATE_EXPIRY_SECONDS": "86400",
        "CONFIG_BUCKET": "configs",
        "PACKAGE_GROUP_PREFIX": "mlops-dev",
    }.items():
        monkeypatch.setenv(name, value)

    handler = load_handler("retrain_trigger")

    assert tuple(handler.METRICS.values()) == DECISION_METRICS


# -- the settings, on a bare stack --------------------------------------------------------------------


def bare_trigger(settings: Retraining) -> Template:
    app = cdk.App()
    stack = cdk.Stack(app, "Bare", env=cdk.Environment(account="111111111111", region="eu-west-1"))
    key = kms.Key(stack, "Key")
    RetrainTrigger(
        stack,
        "RetrainTrigger",
        names=Names(project="mlops", environment="dev"),
        settings=settings,
        key=key,
        raw_bucket=s3.Bucket(stack, "Raw"),
        config_bucket=s3.Bucket(stack, "Artifacts"),
        labels_dataset=None,
        ledger=dynamodb.TableV2(
            stack, "Ledger", partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING)
        ),
        state_machine=sfn.StateMachine(
            stack, "Machine", definition_body=sfn.DefinitionBody.from_chainable(sfn.Pass(stack, "Pass"))
        ),
        alarm_topic=sns.Topic(stack, "Topic"),
        log_retention_days=14,
        removal_policy=cdk.RemovalPolicy.DESTROY,
    )
    return Template.from_stack(stack)


@pytest.mark.parametrize(("on_drift", "on_new_data"), [(True, False), (False, True)])
def test_each_trigger_can_be_switched_off(on_drift, on_new_data):
    template = bare_trigger(Retraining(on_drift=on_drift, on_new_data=on_new_data))
    detail_types = {
        rule["Properties"]["EventPattern"]["detail-type"][0]
        for rule in template.find_resources("AWS::Events::Rule").values()
        if "EventPattern" in rule["Properties"]
    }

    expected = (
        ({"CloudWatch Alarm State Change", "Drift Summary"} if on_drift else set())
        | ({"Object Created"} if on_new_data else set())
        | {"SageMaker Model Package State Change"}  # a candidate decided frees drift, whoever started its run
    )
    assert detail_types == expected
    template.resource_count_is("AWS::Lambda::EventSourceMapping", 1 if on_new_data else 0)
    schedules = [rule for rule in template.find_resources("AWS::Events::Rule").values()
                 if "ScheduleExpression" in rule["Properties"]]  # fmt: skip
    assert len(schedules) == (1 if on_new_data else 0)  # kept uploads exist only with new-data triggers


def test_without_a_batching_window_the_queue_is_read_in_lambdas_smallest_batches():
    template = bare_trigger(Retraining(batching_window_seconds=0, cooldown_seconds=600))
    [mapping] = template.find_resources("AWS::Lambda::EventSourceMapping").values()
    [function] = template.find_resources("AWS::Lambda::Function").values()

    # Lambda refuses more than 10 messages a batch without a window.
    assert mapping["Properties"]["BatchSize"] == 10
    assert "MaximumBatchingWindowInSeconds" not in mapping["Properties"]
    assert function["Properties"]["Environment"]["Variables"]["COOLDOWN_SECONDS"] == "600"
