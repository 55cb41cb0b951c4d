"""The retrain trigger against moto DynamoDB, Step Functions, S3 and SageMaker, in-process: one run per tenant at
a time, one execution per burst and duplicate, kept uploads, candidates awaited, every decision in the ledger.

The event samples in ``events/`` follow AWS's documentation: ``cloudwatch_alarm_state_change.json`` is the
single-metric example of "Alarm events and EventBridge" (CloudWatch user guide) with the drift alarm's name
and dimensions; ``s3_object_created.json`` is the ``Object Created`` example of "Amazon S3 event notifications
with EventBridge" with the raw bucket and a raw key; ``drift_summary.json`` is the drift monitor's own event;
``sagemaker_model_package_state_change.json`` is the example of "Events that Amazon SageMaker AI sends to Amazon
EventBridge" (SageMaker developer guide), given this environment's package and its status.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from mlops_platform.monitoring.retraining import execution_name, group_tenants
from tests.conftest import create_ledger_table, load_handler
from tests.lambda_context import LambdaContext

EVENTS = Path(__file__).parent / "events"
ALARM = json.loads((EVENTS / "cloudwatch_alarm_state_change.json").read_text())
OBJECT_CREATED = json.loads((EVENTS / "s3_object_created.json").read_text())
DRIFT = json.loads((EVENTS / "drift_summary.json").read_text())
PACKAGE_STATE_CHANGE = json.loads((EVENTS / "sagemaker_model_package_state_change.json").read_text())
LEDGER = "ledger-test"
BUCKET = "mlops-dev-raw"
CONFIGS = "mlops-dev-artifacts"
CONFIG_PREFIX = "artifacts/config/pipelines/"
LABELS = "labels"
# The datasets the tenants of these tests train on (dataset.name of their published configs).
TRAINS_ON = {"acme": "churn", "beta": "sales"}
COOLDOWN = 3600
EXPIRY = 7 * 86400
# 100 s into a window, so a test can move within it or past it.
START = datetime.fromtimestamp((1_795_000_000 // COOLDOWN) * COOLDOWN + 100, UTC)
EXECUTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")


CONTEXT = LambdaContext("retrain-trigger")


class Clock:
    def __init__(self, now: datetime = START):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Harness:
    module: Any
    clock: Clock
    sfn: Any
    dynamodb: Any
    state_machine_arn: str

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        return self.module.handler(event, CONTEXT)

    def executions(self) -> list[dict[str, Any]]:
        return self.sfn.list_executions(stateMachineArn=self.state_machine_arn)["executions"]

    def ledger(self, *, states: bool = False) -> list[dict[str, Any]]:
        """The decision records (and with ``states`` the tenants' state items), in key order."""
        items = boto3.resource("dynamodb", region_name="eu-west-1").Table(LEDGER).scan()["Items"]
        kept = [item for item in items if states or item["sk"] != "STATE"]
        return sorted(kept, key=lambda item: (item["pk"], item["sk"]))

    def decisions(self, tenant: str | None = None) -> list[str]:
        records = [item for item in self.ledger() if tenant is None or item["tenant"] == tenant]
        return [item["decision"] for item in sorted(records, key=lambda item: item["sk"])]

    def state(self, tenant: str = "acme") -> dict[str, Any]:
        key = {"pk": f"TRIGGER#{tenant}", "sk": "STATE"}
        return boto3.resource("dynamodb", region_name="eu-west-1").Table(LEDGER).get_item(Key=key).get("Item", {})

    def finish(self, execution_arn: str, status: str = "SUCCEEDED") -> None:
        """The run ends (moto runs no training: its execution is set to how a real one ends)."""
        from moto.stepfunctions.models import stepfunctions_backends

        backend = stepfunctions_backends["123456789012"]["eu-west-1"]
        execution = backend.describe_execution(execution_arn)
        execution.status = status
        execution.stop_date = self.clock.now.isoformat()

    def sweep(self) -> dict[str, Any]:
        """The scheduled rule's tick (the "Scheduled Event" of EventBridge's user guide)."""
        return self(
            {
                "version": "0",
                "id": "89d1a02d-5ec7-412e-82f5-13505f849b41",
                "detail-type": "Scheduled Event",
                "source": "aws.events",
                "account": "123456789012",
                "time": iso(self.clock.now),
                "region": "eu-west-1",
                "resources": ["arn:aws:events:eu-west-1:123456789012:rule/mlops-dev-retrain-sweep"],
                "detail": {},
            }
        )


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def publish(tenant: str, dataset: str) -> None:
    """A tenant's pipeline config as synth publishes it; the trigger reads only ``dataset.name``."""
    boto3.client("s3", region_name="eu-west-1").put_object(
        Bucket=CONFIGS, Key=f"{CONFIG_PREFIX}{tenant}.json", Body=json.dumps({"schema_version": 1, "tenant": tenant,
        "dataset": {"name": dataset}}).encode()
    )  # fmt: skip


@pytest.fixture
def harness(monkeypatch):
    with mock_aws(config={"stepfunctions": {"execute_state_machine": False}}):
        create_ledger_table(LEDGER)
        boto3.client("s3", region_name="eu-west-1").create_bucket(
            Bucket=CONFIGS, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        for tenant, dataset in TRAINS_ON.items():
            publish(tenant, dataset)
        sfn = boto3.client("stepfunctions", region_name="eu-west-1")
        arn = sfn.create_state_machine(
            name="mlops-dev-training",
            definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
            roleArn="arn:aws:iam::123456789012:role/training",
        )["stateMachineArn"]
        for name, value in {
            "LEDGER_TABLE": LEDGER,
            "STATE_MACHINE_ARN": arn,
            "COOLDOWN_SECONDS": str(COOLDOWN),
            "CANDIDATE_EXPIRY_SECONDS": str(EXPIRY),
            "RAW_BUCKET": BUCKET,
            "CONFIG_BUCKET": CONFIGS,
            "CONFIG_PREFIX": CONFIG_PREFIX,
            "LABELS_DATASET": LABELS,
            "ALARM_NAME_PREFIX": "mlops-dev-drift-",
            "MONITORING_SOURCE": "mlops.monitoring",
            "PACKAGE_GROUP_PREFIX": "mlops-dev",
        }.items():
            monkeypatch.setenv(name, value)
        module = load_handler("retrain_trigger")
        clock = Clock()
        module.trigger.clock = clock
        yield Harness(module, clock, sfn, boto3.client("dynamodb", region_name="eu-west-1"), arn)


def alarm(**state: Any) -> dict[str, Any]:
    event = copy.deepcopy(ALARM)
    event["detail"]["state"].update(state)
    return event


def drift(**detail: Any) -> dict[str, Any]:
    event = copy.deepcopy(DRIFT)
    event["detail"].update(detail)
    return event


def object_created(key: str, index: int = 0, bucket: str = BUCKET) -> str:
    event = copy.deepcopy(OBJECT_CREATED)
    event["id"] = f"17793124-05d4-b198-2fde-{index:012d}"
    event["detail"]["bucket"]["name"] = bucket
    event["detail"]["object"]["key"] = key
    return json.dumps(event)


def sqs_event(*bodies: str, prefix: str = "m") -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"{prefix}-{index}",
                "receiptHandle": f"handle-{prefix}-{index}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1795000000000"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:eu-west-1:111111111111:retrain-trigger",
                "awsRegion": "eu-west-1",
            }
            for index, body in enumerate(bodies)
        ]
    }


def test_a_duplicate_alarm_starts_one_execution(harness):
    first = harness(alarm())
    harness.clock.now += timedelta(seconds=30)
    second = harness(alarm())

    assert first["decision"] == "started"
    assert second == {**first, "decision": "skipped-duplicate", "reason": "already started in this window"}
    [execution] = harness.executions()
    assert execution["name"] == first["execution_name"]
    assert json.loads(harness.sfn.describe_execution(executionArn=execution["executionArn"])["input"]) == {
        "tenant": "acme"
    }
    started, duplicate = harness.ledger()
    assert started["pk"] == duplicate["pk"] == "TRIGGER#acme"
    assert started["sk"].startswith("2026-")
    assert "#started#" in started["sk"]
    assert (started["gsi1pk"], started["gsi1sk"]) == ("TENANT#acme", f"TRIGGER#{started['decided_at']}#started")
    assert started["model"] == "xgboost"
    assert started["trigger"] == "drift-alarm"
    assert started["execution_arn"] == execution["executionArn"]
    assert started["evidence"]["alarm_name"] == "mlops-dev-drift-acme-xgboost"
    assert started["evidence"]["state_reason"].startswith("Threshold Crossed")
    assert started["evidence"]["event_id"] == ALARM["id"]


def emitted(capsys) -> list[dict[str, list[float]]]:
    """The metrics each invocation since the last call published (CloudWatch embedded metric format)."""
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    return [
        {metric["Name"]: blob[metric["Name"]] for directive in blob["_aws"]["CloudWatchMetrics"]
         for metric in directive["Metrics"]}
        for blob in blobs
    ]  # fmt: skip


def test_every_decision_an_invocation_records_is_counted_in_its_metric(harness, capsys):
    capsys.readouterr()
    harness(alarm())
    assert emitted(capsys) == [{"RetrainingStarted": [1.0]}]

    [execution] = harness.executions()
    harness.finish(execution["executionArn"])
    harness.clock.now += timedelta(seconds=COOLDOWN)
    harness(alarm())  # the ended run's lock is released, then the next run starts: two decisions, one invocation

    assert harness.decisions("acme") == ["started", "run-ended", "started"]
    assert emitted(capsys) == [{"RetrainingRunsEnded": [1.0], "RetrainingStarted": [1.0]}]


def test_the_alarm_and_the_summary_of_one_drift_run_start_one_execution(harness):
    # One drift monitor run publishes DriftDetected (-> the alarm) and a Drift Summary: both kinds ask for one name.
    first = harness(alarm())
    harness.clock.now += timedelta(seconds=60)
    second = harness(drift())

    assert (first["decision"], second["decision"]) == ("started", "skipped-duplicate")
    assert second["execution_name"] == first["execution_name"]
    assert "-drift-xgboost-" in first["execution_name"]
    [execution] = harness.executions()
    assert execution["name"] == first["execution_name"]
    started, duplicate = sorted(harness.ledger(), key=lambda item: item["decided_at"])
    assert (started["trigger"], duplicate["trigger"]) == ("drift-alarm", "drift-event")
    assert duplicate["execution_arn"] == execution["executionArn"]


def test_the_alarm_and_the_summary_racing_start_one_execution(harness):
    # The alarm arrives while the summary's invocation is between taking the lock and starting: both ask for the
    # same name, Step Functions answers a second start of a running execution with the same name and input with
    # that execution, and only the first to record the start says "started".
    arrive_during_start(harness, alarm())
    first = harness(drift())

    [execution] = harness.executions()
    assert first["execution_name"] == execution["name"]
    records = sorted(harness.ledger(), key=lambda item: item["trigger"])
    assert [(item["trigger"], item["decision"]) for item in records] == [
        ("drift-alarm", "started"),
        ("drift-event", "skipped-duplicate"),
    ]
    assert {item["execution_arn"] for item in records} == {execution["executionArn"]}


def test_an_alarm_back_to_ok_or_of_another_family_is_ignored(harness):
    harness(alarm(value="OK"))
    foreign = copy.deepcopy(ALARM)
    foreign["detail"]["alarmName"] = "mlops-dev-latency-acme"

    assert harness(foreign)["decision"] == "ignored"
    assert harness.executions() == []
    reasons = sorted(item["reason"].split(":")[0] for item in harness.ledger())
    assert reasons == ["foreign-alarm", "not-in-alarm"]


def test_a_drift_summary_starts_a_run_and_one_without_drift_is_ignored(harness):
    assert harness(drift(drift=False))["decision"] == "ignored"
    started = harness(drift())

    assert started["decision"] == "started"
    assert len(harness.executions()) == 1
    record = next(item for item in harness.ledger() if item["decision"] == "started")
    assert record["trigger"] == "drift-event"
    assert record["evidence"]["report_uri"] == DRIFT["detail"]["report_uri"]
    assert str(record["evidence"]["max_psi"]) == "0.31"


def test_drift_of_the_example_tenant_is_recorded_and_never_starts_a_run(harness):
    # The example endpoint is monitored like any other, but the smoke-test tenant is never retrained.
    example_alarm = alarm()
    for metric in example_alarm["detail"]["configuration"]["metrics"]:
        metric["metricStat"]["metric"]["dimensions"]["Tenant"] = "example"

    assert harness(drift(tenant="example"))["decision"] == "ignored"
    assert harness(example_alarm)["decision"] == "ignored"

    assert harness.executions() == []
    assert [item["reason"].split(":")[0] for item in harness.ledger()] == ["ignored-tenant", "ignored-tenant"]


def test_a_burst_of_uploads_starts_one_run_and_its_redelivery_none(harness):
    keys = [f"raw/acme/churn/dt=2026-11-24/{index:04d}.jsonl" for index in range(20)]
    batch = sqs_event(*(object_created(key, index) for index, key in enumerate(keys)))

    assert harness(batch) == {"batchItemFailures": []}
    harness.clock.now += timedelta(minutes=5)
    assert harness(batch) == {"batchItemFailures": []}

    assert len(harness.executions()) == 1
    started, duplicate = harness.ledger()
    assert (started["decision"], duplicate["decision"]) == ("started", "skipped-duplicate")
    assert started["model"] == "all"
    assert started["trigger"] == "new-data"
    assert started["evidence"]["object_count"] == 20
    assert started["evidence"]["datasets"] == ["churn"]
    assert len(started["evidence"]["keys"]) == 20
    assert started["evidence"]["message_ids"][0] == "m-0"


def test_cooldown_skips_a_later_trigger_and_records_it(harness):
    harness.clock.now += timedelta(seconds=COOLDOWN - 200)  # near the window's end
    first = harness(alarm())
    harness.finish(harness.executions()[0]["executionArn"])
    harness.clock.now += timedelta(seconds=300)  # the next window, still within the cooldown
    second = harness(drift())

    assert (first["decision"], second["decision"]) == ("started", "skipped-cooldown")
    assert harness.decisions() == ["started", "run-ended", "skipped-cooldown"]
    assert second["execution_name"] != first["execution_name"]
    assert len(harness.executions()) == 1
    skipped = next(item for item in harness.ledger() if item["decision"] == "skipped-cooldown")
    assert first["execution_name"] in skipped["reason"]
    assert skipped["evidence"]["endpoint"] == "mlops-dev-acme"

    harness.clock.now += timedelta(seconds=COOLDOWN)
    assert harness(drift())["decision"] == "started"
    assert len(harness.executions()) == 2


def test_the_example_tenant_and_every_other_prefix_are_ignored(harness):
    keys = [
        "raw/example/breast-cancer/dt=2026-11-24/seed.jsonl",
        "curated/acme/churn/dt=2026-11-24/records.parquet",
        "features/acme/churn/dt=2026-11-24/run-train.parquet",
        "predictions/acme/churn/run/part-0.csv.out",
        "quarantine/acme/churn/dt=2026-11-24/m.jsonl",
        "artifacts/runs/acme/run/plan.json",
        "raw/acme/",
    ]
    batch = sqs_event(*(object_created(key, index) for index, key in enumerate(keys)))
    batch["Records"].append(
        sqs_event(object_created("raw/acme/churn/x.jsonl", bucket="other"), prefix="o")["Records"][0]
    )

    assert harness(batch) == {"batchItemFailures": []}
    assert harness.executions() == []
    ledger = harness.ledger()
    assert {item["decision"] for item in ledger} == {"ignored"}
    example = next(item for item in ledger if item["pk"] == "TRIGGER#example")
    assert example["reason"].startswith("ignored-tenant")
    assert example["gsi1pk"] == "TENANT#example"
    outside = next(item for item in ledger if item["reason"].startswith("outside-raw"))
    assert outside["pk"] == "TRIGGER#_unrouted"
    assert "gsi1pk" not in outside
    assert outside["evidence"]["object_count"] == 6
    assert sorted(outside["evidence"]["keys"]) == sorted(keys[1:])
    assert any(item["reason"].startswith("foreign-bucket") for item in ledger)


@pytest.mark.parametrize(
    "event",
    [
        {"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification", "detail": {}},
        {**ALARM, "detail": {**ALARM["detail"], "configuration": {"metrics": []}}},
        {**ALARM, "detail": "ALARM"},
        {**DRIFT, "detail": {**DRIFT["detail"], "drift": "yes"}},
        {**DRIFT, "detail": {**DRIFT["detail"], "tenant": "Acme Corp"}},
        ["not", "an", "object"],
    ],
    ids=["unknown-event", "no-tenant-dimension", "detail-not-object", "drift-not-bool", "bad-tenant", "not-object"],
)
def test_a_malformed_event_is_recorded_as_rejected(harness, event):
    result = harness(event)

    assert result["decision"] == "rejected"
    assert harness.executions() == []
    [record] = harness.ledger()
    assert record["decision"] == "rejected"
    assert record["pk"] == "TRIGGER#_unrouted"


def test_malformed_messages_are_rejected_without_failing_the_batch(harness):
    batch = sqs_event(
        "not json", json.dumps({"source": "aws.s3", "detail": {}}), object_created("raw/acme/churn/a.jsonl")
    )

    assert harness(batch) == {"batchItemFailures": []}
    assert len(harness.executions()) == 1
    [rejected] = [item for item in harness.ledger() if item["decision"] == "rejected"]
    assert rejected["evidence"]["message_ids"] == ["m-0", "m-1"]  # one record per reason and batch
    assert rejected["evidence"]["message_count"] == 2


def test_an_execution_already_closed_counts_as_a_duplicate(harness):
    started = harness(alarm())
    harness.sfn.stop_execution(executionArn=harness.executions()[0]["executionArn"])
    for item in harness.ledger(states=True):  # the start's ledger writes were lost
        harness.dynamodb.delete_item(TableName=LEDGER, Key={"pk": {"S": item["pk"]}, "sk": {"S": item["sk"]}})

    again = harness(alarm())

    assert again["decision"] == "skipped-duplicate"
    assert again["reason"] == "ExecutionAlreadyExists"
    assert again["execution_name"] == started["execution_name"]
    assert len(harness.executions()) == 1


def test_a_transient_failure_retries_only_its_tenants_messages(harness):
    real = harness.module.trigger.stepfunctions

    class Throttled:
        def start_execution(self, **request: Any) -> dict[str, Any]:
            if json.loads(request["input"])["tenant"] == "acme":
                raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "StartExecution")
            return real.start_execution(**request)

    harness.module.trigger.stepfunctions = Throttled()
    batch = sqs_event(
        object_created("raw/acme/churn/a.jsonl"),
        object_created("raw/beta/sales/a.csv"),
        object_created("raw/acme/churn/b.parquet"),
    )

    assert harness(batch) == {"batchItemFailures": [{"itemIdentifier": "m-0"}, {"itemIdentifier": "m-2"}]}
    assert [
        json.loads(harness.sfn.describe_execution(executionArn=e["executionArn"])["input"])
        for e in harness.executions()
    ] == [{"tenant": "beta"}]

    # SQS redelivers acme's messages: the lock its failed start took is its own, and the retry starts the run.
    harness.module.trigger.stepfunctions = real
    harness.clock.now += timedelta(minutes=6)
    assert harness(sqs_event(object_created("raw/acme/churn/a.jsonl"), object_created("raw/acme/churn/b.parquet"))) == {
        "batchItemFailures": []
    }
    assert sorted(json.loads(harness.sfn.describe_execution(executionArn=e["executionArn"])["input"])["tenant"]
                  for e in harness.executions()) == ["acme", "beta"]  # fmt: skip
    assert harness.decisions("acme") == ["started"]


def test_execution_names_fit_step_functions_and_differ_by_every_part():
    longest = "a" * 63
    name = execution_name(longest, longest, "drift-alarm", 10**10)
    assert len(name) <= 80
    assert EXECUTION_NAME.fullmatch(name)
    names = {
        execution_name(tenant, model, trigger, window)
        for tenant in ("acme", "acme-x")
        for model in ("all", "x-all")
        for trigger in ("drift-alarm", "new-data")
        for window in (1, 2)
    }
    assert len(names) == 16
    assert execution_name("acme", "all", "new-data", 7) == execution_name("acme", "all", "new-data", 7)
    assert execution_name("acme", "x", "drift-alarm", 7) == execution_name("acme", "x", "drift-event", 7)


# -- one run per tenant at a time -----------------------------------------------------------------------------------


def arrive_during_start(harness: Harness, event: dict[str, Any]) -> list[dict[str, Any]]:
    """Hand ``event`` to a second invocation while the next invocation is about to call StartExecution, i.e.
    after it decided to start: the two race as a drift rule and the new-data queue's poller can."""
    real = harness.module.trigger.stepfunctions
    answers: list[dict[str, Any]] = []

    class Interleaved:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def start_execution(self, **request: Any) -> dict[str, Any]:
            harness.module.trigger.stepfunctions = real  # the second invocation runs undisturbed
            answers.append(harness(event))
            return real.start_execution(**request)

    harness.module.trigger.stepfunctions = Interleaved()
    return answers


@pytest.mark.parametrize("first", ["drift", "new-data"])
def test_a_drift_trigger_and_a_new_data_trigger_racing_start_one_run(harness, first):
    uploads = sqs_event(object_created("raw/acme/churn/dt=2026-11-24/0000.jsonl"))
    outer, inner = (drift(), uploads) if first == "drift" else (uploads, drift())
    answers = arrive_during_start(harness, inner)

    harness(outer)

    assert len(answers) == 1  # the second trigger really arrived mid-start
    [execution] = harness.executions()
    assert json.loads(harness.sfn.describe_execution(executionArn=execution["executionArn"])["input"]) == {
        "tenant": "acme"
    }
    state = harness.state()
    assert state["lock_run"] == state["run_name"] == execution["name"]
    # The uploads are kept for the next run when they lost; drift is just skipped.
    lost = "deferred" if first == "drift" else "skipped-running"
    assert sorted(harness.decisions("acme")) == sorted(["started", lost])
    [skipped] = [item for item in harness.ledger() if item["decision"] == lost]
    assert execution["name"] in skipped["reason"]


def test_the_labels_dataset_never_triggers_retraining(harness):
    keys = [f"raw/acme/{LABELS}/dt=2026-11-24/{index:04d}.jsonl" for index in range(3)]

    assert harness(sqs_event(*(object_created(key, index) for index, key in enumerate(keys)))) == {
        "batchItemFailures": []
    }

    assert harness.executions() == []
    [ignored] = harness.ledger()
    assert (ignored["tenant"], ignored["decision"]) == ("acme", "ignored")
    assert ignored["reason"].startswith("labels-dataset")
    assert sorted(ignored["evidence"]["keys"]) == keys


def test_new_data_triggers_only_for_the_datasets_the_tenant_trains_on(harness):
    keys = {
        "trained": "raw/acme/churn/dt=2026-11-24/0000.jsonl",
        "other": "raw/acme/clickstream/dt=2026-11-24/0001.jsonl",
        "labels": f"raw/acme/{LABELS}/dt=2026-11-24/0002.jsonl",
        "beta's other": "raw/beta/churn/dt=2026-11-24/0003.jsonl",  # acme's dataset name, not beta's
        "unknown tenant": "raw/gamma/churn/dt=2026-11-24/0004.jsonl",  # no published config
    }
    batch = sqs_event(*(object_created(key, index) for index, key in enumerate(keys.values())))

    assert harness(batch) == {"batchItemFailures": []}

    [execution] = harness.executions()
    assert json.loads(harness.sfn.describe_execution(executionArn=execution["executionArn"])["input"]) == {
        "tenant": "acme"
    }
    by_reason = {(item["tenant"], item["reason"].split(":")[0]): item for item in harness.ledger()}
    assert sorted(by_reason) == [
        ("acme", "labels-dataset"),
        ("acme", "new-data"),
        ("acme", "not-a-training-dataset"),
        ("beta", "not-a-training-dataset"),
        ("gamma", "unknown-tenant"),
    ]
    assert by_reason["acme", "new-data"]["decision"] == "started"
    assert by_reason["acme", "new-data"]["evidence"]["keys"] == [keys["trained"]]
    assert by_reason["acme", "not-a-training-dataset"]["evidence"]["keys"] == [keys["other"]]
    assert "['churn']" in by_reason["acme", "not-a-training-dataset"]["reason"]
    assert by_reason["beta", "not-a-training-dataset"]["evidence"]["keys"] == [keys["beta's other"]]


@pytest.mark.parametrize("name", ["delivery.csv", "delivery.parquet", "delivery.jsonl"])
def test_a_tenant_s_file_starts_a_run_like_records_and_other_objects_under_raw_do_not(harness, name):
    others = ["raw/acme/churn/dt=2026-11-24/_SUCCESS", "raw/acme/churn/dt=2026-11-24/delivery.csv.tmp"]

    assert harness(sqs_event(*(object_created(key, index) for index, key in enumerate(others)))) == {
        "batchItemFailures": []
    }
    assert harness.executions() == []
    [ignored] = harness.ledger()
    assert ignored["reason"].startswith("not-a-data-file")
    assert sorted(ignored["evidence"]["keys"]) == sorted(others)

    key = f"raw/acme/churn/dt=2026-11-24/{name}"
    assert harness(sqs_event(object_created(key, 9), prefix="f")) == {"batchItemFailures": []}

    [execution] = harness.executions()
    assert json.loads(harness.sfn.describe_execution(executionArn=execution["executionArn"])["input"]) == {
        "tenant": "acme"
    }
    [started] = [item for item in harness.ledger() if item["decision"] == "started"]
    assert started["evidence"]["keys"] == [key]


def test_the_trigger_the_rule_and_prepare_agree_on_what_a_data_file_is():
    from mlops_constructs.retrain_new_data import DATA_SUFFIXES as RULE_SUFFIXES
    from mlops_platform.data.readers import SUFFIXES
    from mlops_platform.monitoring.retraining.events import DATA_SUFFIXES

    assert set(DATA_SUFFIXES) == set(RULE_SUFFIXES) == set(SUFFIXES) == {".jsonl", ".csv", ".parquet"}


def test_uploads_after_a_run_started_start_the_next_run_once_it_ended_and_the_cooldown_passed(harness):
    first = harness(sqs_event(object_created("raw/acme/churn/dt=2026-11-24/0000.jsonl")))
    [running] = harness.executions()
    harness.clock.now += timedelta(minutes=10)
    late = [f"raw/acme/churn/dt=2026-11-24/{index:04d}.jsonl" for index in range(1, 4)]

    assert first == {"batchItemFailures": []}
    assert harness(sqs_event(*(object_created(key, index) for index, key in enumerate(late, 1)))) == {
        "batchItemFailures": []
    }
    deferred = next(item for item in harness.ledger() if item["decision"] == "deferred")
    assert running["name"] in deferred["reason"]
    assert harness.state()["pending_objects"] == 3

    # The sweep starts nothing while the run trains, nor once it ended while the cooldown lasts.
    assert harness.sweep() == {"decision": "sweep", "started": []}
    harness.clock.now += timedelta(minutes=30)
    harness.finish(running["executionArn"])
    assert harness.sweep() == {"decision": "sweep", "started": []}
    assert harness.state()["pending_objects"] == 3  # still kept
    assert len(harness.executions()) == 1

    harness.clock.now = START + timedelta(seconds=COOLDOWN)  # the cooldown of the first run has passed
    swept = harness.sweep()

    [name] = swept["started"]
    assert {execution["name"] for execution in harness.executions()} == {running["name"], name}
    started = [item for item in harness.ledger() if item["decision"] == "started"]
    assert [item["execution_name"] for item in started] == [running["name"], name]
    assert started[1]["evidence"]["pending_objects"] == 3
    assert started[1]["evidence"]["pending_datasets"] == ["churn"]
    state = harness.state()
    assert "pending_since" not in state
    assert "gsi1pk" not in state  # no longer listed for the sweep
    assert harness.sweep() == {"decision": "sweep", "started": []}
    assert harness.decisions("acme") == ["started", "deferred", "run-ended", "started"]


def test_a_lock_whose_start_never_happened_is_released_after_a_grace(harness):
    # A start that failed after taking the lock and was never retried (its events expired): the tenant is not
    # locked forever.
    real = harness.module.trigger.stepfunctions

    class Down:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def start_execution(self, **request: Any) -> dict[str, Any]:
            raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "down"}}, "StartExecution")

    harness.module.trigger.stepfunctions = Down()
    with pytest.raises(ClientError):
        harness(drift())
    harness.module.trigger.stepfunctions = real
    harness.clock.now += timedelta(minutes=5)
    assert harness(sqs_event(object_created("raw/acme/churn/a.jsonl")))["batchItemFailures"] == []
    assert harness.decisions("acme") == ["deferred"]  # the lock may still be starting

    harness.clock.now += timedelta(seconds=COOLDOWN)
    assert harness.sweep()["started"]
    assert [item["decision"] for item in harness.ledger() if item["tenant"] == "acme"][-2:] == ["run-ended", "started"]
    ended = next(item for item in harness.ledger() if item["decision"] == "run-ended")
    assert ended["evidence"]["outcome"] == "NOT_STARTED"


# -- candidates --------------------------------------------------------------------------------------------------


def package_event(arn: str, status: str, group: str = "mlops-dev-acme-xgboost") -> dict[str, Any]:
    event = copy.deepcopy(PACKAGE_STATE_CHANGE)
    event["resources"] = [arn]
    event["detail"].update(ModelPackageArn=arn, ModelPackageGroupName=group, ModelApprovalStatus=status)
    return event


def test_a_decided_package_no_triggered_run_left_awaiting_is_recorded_and_changes_nothing(harness):
    arn = "arn:aws:sagemaker:eu-west-1:123456789012:model-package/mlops-dev-acme-xgboost/3"

    decided = harness(package_event(arn, "Approved"))
    foreign = harness(package_event(arn.replace("mlops-dev", "other"), "Rejected", group="other-acme-xgboost"))
    pending = harness(package_event(arn, "PendingManualApproval"))

    assert [decided["decision"], foreign["decision"], pending["decision"]] == ["ignored"] * 3
    reasons = sorted(item["reason"].split(":")[0] for item in harness.ledger())
    assert reasons == ["foreign-group", "not-decided", "not-held"]
    assert harness.executions() == []


@pytest.mark.parametrize(
    "detail",
    [{"ModelPackageArn": None}, {"ModelApprovalStatus": 7}, {"ModelPackageGroupName": ""}],
    ids=["no-arn", "status-not-text", "empty-group"],
)
def test_a_malformed_package_event_is_rejected(harness, detail):
    event = package_event("arn:aws:sagemaker:eu-west-1:123456789012:model-package/mlops-dev-acme-x/1", "Approved")
    event["detail"].update(detail)

    assert harness(event)["decision"] == "rejected"
    [record] = harness.ledger()
    assert record["trigger"] == "package-decision"


def test_group_names_give_every_tenant_they_can_belong_to():
    tenants = group_tenants

    assert tenants("mlops-dev-acme-xgboost", "mlops-dev") == ("acme",)
    assert tenants("mlops-dev-acme-corp-xgboost-v2", "mlops-dev") == ("acme", "acme-corp", "acme-corp-xgboost")
    assert tenants("mlops-prod-acme-xgboost", "mlops-dev") == ()
    assert tenants("mlops-dev-acme", "mlops-dev") == ()
