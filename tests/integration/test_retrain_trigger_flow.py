"""Raw uploads and drift summaries through the deployed rules into the retrain trigger, in moto.

The rules are created in moto's EventBridge with the event patterns that `make synth` renders for dev;
the new-data rule targets an SQS queue as deployed, and the handler is driven by that queue's messages
(moto runs no Lambda event source mappings, nor Lambda targets: the drift rule's events are captured
in a queue of this test and handed to the handler as EventBridge would invoke it). The handler reads
the environment variables the template gives the function.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.conftest import create_ledger_table, load_handler
from tests.infra.test_training import of_type
from tests.lambda_context import LambdaContext
from tests.unit import test_ingest_handler as ingestion
from tests.unit.test_evaluate import CONFIG  # acme's published config: dataset churn

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's default account
RAW_BUCKET = "mlops-dev-raw-test"
# The artifacts zone, where synth publishes tenant configs: the evaluate tests' bucket, so that candidates can be
# registered by the evaluate handler with its own test helpers (tests/integration/test_drift_episode.py).
CONFIG_BUCKET = "artifacts-zone"
CONFIG_PREFIX = "artifacts/config/pipelines/"
LEDGER = "ledger-test"
# Ten minutes into a cooldown window of dev (21600 s), so the test never straddles two windows.
NOW = datetime.fromtimestamp((1_795_000_000 // 21600) * 21600 + 600, UTC)


def concrete(value: Any, state_machine_arn: str) -> Any:
    """A template value of the Monitoring stack, as the moto resources of this test name it."""
    if isinstance(value, list):
        return [concrete(item, state_machine_arn) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1 and "Fn::GetStackOutput" in value:
        output = value["Fn::GetStackOutput"]["OutputName"]
        for part, resolved in (
            ("RawZoneBucket", RAW_BUCKET),
            ("ArtifactsZoneBucket", CONFIG_BUCKET),
            ("RunLedgerTable", LEDGER),
        ):
            if part in output:
                return resolved
        if "PipelineStateMachine" in output:
            return state_machine_arn
        raise AssertionError(f"unexpected stack output {output}")
    return {key: concrete(item, state_machine_arn) for key, item in value.items()}


CONTEXT = LambdaContext("retrain-trigger")


class Clock:
    def __init__(self, now: datetime = NOW):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Platform:
    handler: Any
    clock: Clock
    sfn: Any
    sqs: Any
    events: Any
    state_machine_arn: str
    new_data_queue: str
    drift_queue: str
    package_queue: str

    def put(self, source: str, detail_type: str, detail: dict[str, Any], resources: list[str] | None = None) -> None:
        entry = {"Source": source, "DetailType": detail_type, "Detail": json.dumps(detail)}
        if resources:
            entry["Resources"] = resources
        response = self.events.put_events(Entries=[entry])
        assert response["FailedEntryCount"] == 0

    def upload(self, key: str, bucket: str = RAW_BUCKET) -> None:
        """What S3 sends to EventBridge for a PutObject (``Object Created``)."""
        self.put(
            "aws.s3",
            "Object Created",
            {
                "version": "0",
                "bucket": {"name": bucket},
                "object": {"key": key, "size": 5, "etag": "b1946ac92492d2347c6235b4d2611184"},
                "request-id": "N4N7GDK58NMKJ12R",
                "requester": ACCOUNT,
                "reason": "PutObject",
            },
            [f"arn:aws:s3:::{bucket}"],
        )

    def drain(self, queue_url: str) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while batch := self.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]).get(
            "Messages", []
        ):
            messages.extend(batch)
        return messages

    def sqs_event(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """The batch the event source mapping hands the function."""
        return {
            "Records": [
                {
                    "messageId": message["MessageId"],
                    "receiptHandle": message["ReceiptHandle"],
                    "body": message["Body"],
                    "attributes": message.get("Attributes", {}),
                    "messageAttributes": {},
                    "md5OfBody": message["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:new-data",
                    "awsRegion": REGION,
                }
                for message in messages
            ]
        }

    def executions(self) -> list[dict[str, Any]]:
        return self.sfn.list_executions(stateMachineArn=self.state_machine_arn)["executions"]

    def ledger(self) -> list[dict[str, Any]]:
        """The trigger's decision records (not the tenants' state items, nor a run's records), in time order."""
        items = boto3.resource("dynamodb", region_name=REGION).Table(LEDGER).scan()["Items"]
        return sorted((item for item in items if item.get("kind") == "trigger"), key=lambda item: item["sk"])

    def finish(self, execution_arn: str, status: str = "SUCCEEDED") -> None:
        """The run ends (moto runs no training: its execution is set to how a real one ends)."""
        from moto.stepfunctions.models import stepfunctions_backends

        execution = stepfunctions_backends[ACCOUNT][REGION].describe_execution(execution_arn)
        execution.status = status
        execution.stop_date = self.clock.now.isoformat()

    def publish(self, tenant: str, config: dict[str, Any]) -> None:
        """A tenant's pipeline config, where synth publishes it (mlops_constructs/publishing.py)."""
        body = json.dumps(config).encode()
        boto3.client("s3", region_name=REGION).put_object(
            Bucket=CONFIG_BUCKET, Key=f"{CONFIG_PREFIX}{tenant}.json", Body=body
        )

    def sweep(self) -> dict[str, Any]:
        """The sweep rule's tick, an EventBridge "Scheduled Event"."""
        event = {
            "version": "0",
            "id": "89d1a02d-5ec7-412e-82f5-13505f849b41",
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": ACCOUNT,
            "time": self.clock.now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": REGION,
            "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/sweep"],
            "detail": {},
        }
        return self.handler.handler(event, CONTEXT)


@pytest.fixture(scope="module")
def monitoring_template(synthesized) -> dict[str, Any]:
    return synthesized.template_json("dev", "monitoring")


@pytest.fixture
def platform(monitoring_template, monkeypatch) -> Iterator[Platform]:
    resources = monitoring_template["Resources"]
    rules = {
        rule["Properties"]["EventPattern"]["detail-type"][0]: rule["Properties"]
        for logical_id, rule in of_type(resources, "AWS::Events::Rule").items()
        if logical_id.startswith("RetrainTrigger") and "EventPattern" in rule["Properties"]
    }
    [function] = [
        r for lid, r in of_type(resources, "AWS::Lambda::Function").items() if lid.startswith("RetrainTriggerFunction")
    ]
    with mock_aws(config={"stepfunctions": {"execute_state_machine": False}}):
        create_ledger_table(LEDGER, REGION)
        sfn = boto3.client("stepfunctions", region_name=REGION)
        state_machine_arn = sfn.create_state_machine(
            name="mlops-dev-training",
            definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/training",
        )["stateMachineArn"]
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in (RAW_BUCKET, CONFIG_BUCKET):
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        # The raw zone sends its events to EventBridge, as Foundation configures it.
        s3.put_bucket_notification_configuration(
            Bucket=RAW_BUCKET, NotificationConfiguration={"EventBridgeConfiguration": {}}
        )
        sqs = boto3.client("sqs", region_name=REGION)
        events = boto3.client("events", region_name=REGION)
        s3.put_object(Bucket=CONFIG_BUCKET, Key=f"{CONFIG_PREFIX}acme.json", Body=json.dumps(CONFIG).encode())
        queues = {}
        for name, detail_type in (
            ("new-data", "Object Created"),
            ("drift-capture", "Drift Summary"),
            ("package-capture", "SageMaker Model Package State Change"),
        ):
            url = sqs.create_queue(QueueName=name)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            pattern = concrete(rules[detail_type]["EventPattern"], state_machine_arn)
            events.put_rule(Name=name, EventPattern=json.dumps(pattern))
            events.put_targets(Rule=name, Targets=[{"Id": "Target0", "Arn": arn}])
            queues[name] = url
        for name, value in function["Properties"]["Environment"]["Variables"].items():
            monkeypatch.setenv(name, concrete(value, state_machine_arn))
        handler = load_handler("retrain_trigger")
        clock = Clock()
        handler.trigger.clock = clock
        yield Platform(
            handler,
            clock,
            sfn,
            sqs,
            events,
            state_machine_arn,
            queues["new-data"],
            queues["drift-capture"],
            queues["package-capture"],
        )


def test_a_burst_of_uploads_starts_one_execution_and_every_decision_is_recorded(platform):
    for index in range(5):
        platform.upload(f"raw/acme/churn/dt=2026-11-24/{index:04d}.jsonl")
    platform.upload("raw/example/breast-cancer/dt=2026-01-01/part-0.jsonl")
    # The platform's own writes: another zone's bucket, and the raw zone's quarantine.
    platform.upload("curated/acme/churn/dt=2026-11-24/part-0.parquet", bucket="mlops-dev-curated-test")
    platform.upload("quarantine/acme/churn/dt=2026-11-24/0005.jsonl")

    messages = platform.drain(platform.new_data_queue)
    keys = sorted(json.loads(message["Body"])["detail"]["object"]["key"] for message in messages)
    assert len(keys) == 6
    assert all(key.startswith("raw/") for key in keys)

    response = platform.handler.handler(platform.sqs_event(messages), CONTEXT)

    assert response == {"batchItemFailures": []}
    [execution] = platform.executions()
    assert json.loads(platform.sfn.describe_execution(executionArn=execution["executionArn"])["input"]) == {
        "tenant": "acme"
    }
    started, ignored = sorted(platform.ledger(), key=lambda item: item["decision"], reverse=True)
    assert (started["decision"], started["tenant"], started["trigger"]) == ("started", "acme", "new-data")
    assert started["execution_name"] == execution["name"]
    assert started["evidence"]["object_count"] == 5
    assert started["evidence"]["datasets"] == ["churn"]
    assert (ignored["decision"], ignored["tenant"]) == ("ignored", "example")
    assert ignored["reason"].startswith("ignored-tenant")

    # SQS delivers at least once: the same batch again starts nothing and says why.
    assert platform.handler.handler(platform.sqs_event(messages), CONTEXT) == {"batchItemFailures": []}
    assert len(platform.executions()) == 1
    assert sorted(item["decision"] for item in platform.ledger() if item["tenant"] == "acme") == [
        "skipped-duplicate",
        "started",
    ]


def test_drift_after_new_data_waits_for_the_cooldown(platform):
    platform.upload("raw/acme/churn/dt=2026-11-24/0000.jsonl")
    platform.handler.handler(platform.sqs_event(platform.drain(platform.new_data_queue)), CONTEXT)
    platform.clock.now += timedelta(hours=1)
    platform.finish(platform.executions()[0]["executionArn"])
    summary = {
        "environment": "dev",
        "tenant": "acme",
        "model": "churn",
        "endpoint": "mlops-dev-acme",
        "drift": True,
        "max_psi": 0.31,
        "drifted_features": ["tenure"],
        "rows": 500,
        "malformed": 0,
        "window_start": "2026-11-24T22:00:00Z",
        "window_end": "2026-11-24T23:00:00Z",
        "report_uri": "s3://mlops-dev-artifacts/artifacts/monitoring/acme/mlops-dev-acme/2026-11-24T23/report.json",
    }
    platform.put("mlops.monitoring", "Drift Summary", summary)
    platform.put("mlops.monitoring", "Drift Summary", {**summary, "environment": "prod"})
    platform.put("mlops.monitoring", "Drift Summary", {**summary, "drift": False})

    [delivered] = platform.drain(platform.drift_queue)
    decision = platform.handler.handler(json.loads(delivered["Body"]), CONTEXT)

    assert decision["decision"] == "skipped-cooldown"
    assert len(platform.executions()) == 1
    assert [item["decision"] for item in platform.ledger()] == ["started", "run-ended", "skipped-cooldown"]
    cooldown = next(item for item in platform.ledger() if item["decision"] == "skipped-cooldown")
    assert cooldown["trigger"] == "drift-event"
    assert cooldown["evidence"]["report_uri"] == summary["report_uri"]
    assert "within the cooldown of 21600 s" in cooldown["reason"]


def test_uploads_landed_by_ingestion_after_a_run_started_start_the_next_run_after_the_cooldown(platform, monkeypatch):
    """The real ingest handler lands records in moto's raw zone, which sends S3's own Object Created events through
    the new-data rule to the queue; the trigger reads them as the event source mapping would hand them over."""
    # As an environment with monitoring.labels_dataset: labels renders it (dev has none).
    monkeypatch.setattr(platform.handler, "settings", replace(platform.handler.settings, labels_dataset="labels"))
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "ingest")
    monkeypatch.setenv("TENANT_QUEUES", ingestion.tenant_queues())
    ingest = load_handler("ingest")

    def land(*bodies: tuple[str, dict[str, Any]]) -> list[str]:
        sent = platform.clock.now
        event = ingestion.sqs_event(*(ingestion.sqs_message(body, mid, sent=sent) for mid, body in bodies))
        assert ingest.handler(event, LambdaContext("ingest", memory_limit_in_mb=512))["batchItemFailures"] == []
        messages = platform.drain(platform.new_data_queue)
        assert platform.handler.handler(platform.sqs_event(messages), CONTEXT) == {"batchItemFailures": []}
        return sorted(json.loads(message["Body"])["detail"]["object"]["key"] for message in messages)

    def records(dataset: str, count: int) -> dict[str, Any]:
        rows = [{"tenure": float(i), "plan": i % 3, "active": i % 2 == 0, "churned": i % 2} for i in range(count)]
        return {"tenant": "acme", "dataset": dataset, "records": rows}

    first = land(("m-1", records("churn", 3)), ("m-2", records("labels", 2)), ("m-3", records("clickstream", 2)))

    day = f"dt={NOW:%Y-%m-%d}"
    # The ingest handler's layout: raw/<tenant>/<dataset>/dt=<day>/<message id>.jsonl.
    assert first == [
        f"raw/acme/churn/{day}/m-1.jsonl",
        f"raw/acme/clickstream/{day}/m-3.jsonl",
        f"raw/acme/labels/{day}/m-2.jsonl",
    ]
    [running] = platform.executions()
    decisions = {item["reason"].split(":")[0]: item for item in platform.ledger()}
    assert decisions["new-data"]["decision"] == "started"
    assert decisions["new-data"]["evidence"]["keys"] == [f"raw/acme/churn/{day}/m-1.jsonl"]
    assert decisions["labels-dataset"]["evidence"]["keys"] == [f"raw/acme/labels/{day}/m-2.jsonl"]
    assert decisions["not-a-training-dataset"]["evidence"]["keys"] == [f"raw/acme/clickstream/{day}/m-3.jsonl"]

    # While the run trains: two more uploads of churn are kept, the labels again start nothing.
    platform.clock.now += timedelta(minutes=20)
    late = land(("m-4", records("churn", 1)), ("m-5", records("churn", 4)), ("m-6", records("labels", 1)))
    assert len(late) == 3
    assert sorted(item["decision"] for item in platform.ledger()[-2:]) == ["deferred", "ignored"]
    assert platform.sweep()["started"] == []

    platform.clock.now += timedelta(hours=2)
    platform.finish(running["executionArn"])
    assert platform.sweep()["started"] == []  # ended, but within the cooldown of dev (6 hours)

    platform.clock.now = NOW + timedelta(seconds=21600)
    [name] = platform.sweep()["started"]

    assert sorted(execution["name"] for execution in platform.executions()) == sorted([running["name"], name])
    started = [item for item in platform.ledger() if item["decision"] == "started"]
    assert [item["execution_name"] for item in started] == [running["name"], name]
    assert started[1]["evidence"]["pending_objects"] == 2
    assert started[1]["evidence"]["pending_datasets"] == ["churn"]
    assert platform.sweep()["started"] == []
