"""Retraining triggers: rules that match the documented events and nothing else, batching, least privilege.

The rules' patterns are read from the synthesized template and matched with moto's EventBridge
matcher against the sample events in tests/unit/events (AWS's documented shapes).
"""

from __future__ import annotations

import copy
import json
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
from mlops_constructs.retrain_trigger import BURST_BATCH_SIZE, DECISION_METRICS, RetrainTrigger
from tests.conftest import load_handler
from tests.infra.test_training import function_environment, of_type

STACK = "monitoring"
EVENTS = Path(__file__).resolve().parent.parent / "unit" / "events"
ALARM = json.loads((EVENTS / "cloudwatch_alarm_state_change.json").read_text())
OBJECT_CREATED = json.loads((EVENTS / "s3_object_created.json").read_text())
DRIFT_SUMMARY = json.loads((EVENTS / "drift_summary.json").read_text())
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
    """The trigger's rules by detail-type."""
    found = {}
    for logical_id, rule in of_type(resources, "AWS::Events::Rule").items():
        if logical_id.startswith(PREFIX):
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


def test_the_raw_bucket_sends_its_events_to_eventbridge(synthesized, environment):
    foundation = synthesized.template_json(environment, "foundation")["Resources"]
    raw = foundation["RawZoneBucket"]["Properties"]

    assert raw["NotificationConfiguration"]["EventBridgeConfiguration"]["EventBridgeEnabled"] is True


def test_drift_rules_invoke_the_function_with_retries_and_a_dead_letter_queue(resources):
    found = rules(resources)
    function = logical_id(resources, "AWS::Lambda::Function", f"{PREFIX}Function")
    dead_letters = logical_id(resources, "AWS::SQS::Queue", f"{PREFIX}DeadLetterQueue")

    for detail_type in ("CloudWatch Alarm State Change", "Drift Summary"):
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


def test_the_function_may_start_training_and_record_decisions_and_nothing_more(resources):
    granted = statements(resources)
    by_sid = {statement.get("Sid"): statement for statement in granted}
    actions = {action for statement in granted for action in as_list(statement["Action"])}

    assert by_sid["StartTraining"]["Action"] == "states:StartExecution"
    assert "PipelineStateMachine" in json.dumps(by_sid["StartTraining"]["Resource"])
    assert sorted(as_list(by_sid["ReadAndRecordDecisions"]["Action"])) == ["dynamodb:PutItem", "dynamodb:Query"]
    assert "RunLedgerTableArn" in json.dumps(by_sid["ReadAndRecordDecisions"]["Resource"])
    assert not any("*" in action for action in actions)
    assert {action for action in actions if action.startswith("states:")} == {"states:StartExecution"}
    assert {action for action in actions if action.startswith("dynamodb:")} == {"dynamodb:PutItem", "dynamodb:Query"}
    # The platform key only through DynamoDB and SQS; no statement on it without that condition.
    for statement in granted:
        if any(action.startswith("kms:") for action in as_list(statement["Action"])):
            assert "PlatformKeyArn" in json.dumps(statement["Resource"])
            service = statement["Condition"]["StringEquals"]["kms:ViaService"]
            assert service.split(".")[0] in ("dynamodb", "sqs")
    [role] = [r for lid, r in of_type(resources, "AWS::IAM::Role").items() if lid.startswith(f"{PREFIX}FunctionRole")]
    assert "ManagedPolicyArns" not in role["Properties"]


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
    }

    expected = ({"CloudWatch Alarm State Change", "Drift Summary"} if on_drift else set()) | (
        {"Object Created"} if on_new_data else set()
    )
    assert detail_types == expected
    template.resource_count_is("AWS::Lambda::EventSourceMapping", 1 if on_new_data else 0)


def test_without_a_batching_window_the_queue_is_read_in_lambdas_smallest_batches():
    template = bare_trigger(Retraining(batching_window_seconds=0, cooldown_seconds=600))
    [mapping] = template.find_resources("AWS::Lambda::EventSourceMapping").values()
    [function] = template.find_resources("AWS::Lambda::Function").values()

    # Lambda refuses more than 10 messages a batch without a window.
    assert mapping["Properties"]["BatchSize"] == 10
    assert "MaximumBatchingWindowInSeconds" not in mapping["Properties"]
    assert function["Properties"]["Environment"]["Variables"]["COOLDOWN_SECONDS"] == "600"
