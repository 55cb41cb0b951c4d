"""Drift, end to end in moto: the real drift monitor job on shifted traffic, its Drift Summary through the
synthesized rule, the retrain trigger, one training execution.

The job (mlops_platform/monitoring/job.py) runs as plain Python against moto's S3, SSM,
CloudWatch and EventBridge, for a tenant other than the example one (the trigger never retrains that one);
the event it puts is read back from the queue behind the retrain trigger's ``Drift Summary`` rule, created
with the pattern dev's template synthesizes (tests/integration/test_retrain_trigger_flow.py), and handed to
the handler as EventBridge would invoke it, then once more, as a redelivery, and the drift alarm of the same
run after it.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime
from typing import Any

import boto3
import pandas as pd

from mlops_platform.monitoring import job
from tests.infra.test_retrain_trigger_wiring import matches, pattern
from tests.integration import test_retrain_trigger_flow as flow
from tests.integration.test_retrain_trigger_flow import CONTEXT, REGION, Platform
from tests.unit.test_retrain_trigger import ALARM
from tests.unit.training import test_monitor_job as monitor
from tests.unit.training.test_monitor_job import (
    ARTIFACTS,
    END,
    EXAMPLE_BASELINE,
    EXAMPLE_BASELINE_KEY,
    LAKE,
    NAMESPACE,
    SHIFTED,
    SOURCE,
    START,
    traffic,
)

# Fixtures reused from the two modules: the trigger's platform in moto, and the example model's traffic.
monitoring_template = flow.monitoring_template
platform = flow.platform
dataset = monitor.dataset
features = monitor.features
predict = monitor.predict

TENANT = "acme"
MODEL = "xgboost"
ENDPOINT = "mlops-dev-acme"
CAPTURE_PREFIX = f"capture/{TENANT}/{TENANT}/"
REPORT_PREFIX = f"artifacts/monitoring/{TENANT}/{ENDPOINT}/"
POINTER = f"/mlops/dev/models/{TENANT}/Champion"
SETTINGS_KEY = "assets/settings.json"


def run_monitor(lines: list[str], end: datetime = END) -> None:
    """Lay out the capture, the baseline and the pointer in moto and run the job as the state machine would, for
    the hour before ``end`` (again for each later window: the buckets and the pointer are laid out once)."""
    s3 = boto3.client("s3", region_name=REGION)
    existing = {bucket["Name"] for bucket in s3.list_buckets()["Buckets"]}
    for bucket in {LAKE, ARTIFACTS} - existing:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket=ARTIFACTS, Key=EXAMPLE_BASELINE_KEY, Body=EXAMPLE_BASELINE.read_bytes())
    settings = {"schema_version": 1, "thresholds": {"drifted_share": 0.1}}
    s3.put_object(Bucket=ARTIFACTS, Key=SETTINGS_KEY, Body=json.dumps(settings).encode())
    key = f"{CAPTURE_PREFIX}{ENDPOINT}/Champion/{end - (END - START):%Y/%m/%d/%H}/part-0.jsonl"
    s3.put_object(Bucket=LAKE, Key=key, Body=("\n".join(lines) + "\n").encode())
    # The sentinel pointer: the variant is compared with the example model's baseline.
    boto3.client("ssm", region_name=REGION).put_parameter(Name=POINTER, Value="example", Type="String", Overwrite=True)
    argv = [
        *("--environment", "dev"),
        *("--tenant", TENANT),
        *("--model", MODEL),
        *("--endpoint-name", ENDPOINT),
        *("--capture-uri", f"s3://{LAKE}/{CAPTURE_PREFIX}"),
        *("--scheduled-time", end.strftime("%Y-%m-%dT%H:%M:%SZ")),
        *("--window-minutes", "60"),
        *("--pointer", f"Champion={POINTER}"),
        *("--example-baseline", f"s3://{ARTIFACTS}/{EXAMPLE_BASELINE_KEY}"),
        *("--settings", f"s3://{ARTIFACTS}/{SETTINGS_KEY}"),
        *("--report-uri", f"s3://{ARTIFACTS}/{REPORT_PREFIX}"),
        *("--metrics-namespace", NAMESPACE),
        *("--event-source", SOURCE),
    ]
    assert job.main(argv) == 0


def drift_alarm() -> dict[str, Any]:
    """The drift alarm of the same run: dev's alarm of endpoint acme, on (Tenant acme, Model xgboost)."""
    event = copy.deepcopy(ALARM)
    event["detail"]["alarmName"] = f"mlops-dev-drift-{TENANT}"
    return event


def test_drift_found_by_the_monitor_starts_one_training_execution_once(
    platform: Platform, monitoring_template: dict[str, Any], dataset: pd.DataFrame, features, predict
):
    shifted = dataset.copy()
    shifted[SHIFTED] = shifted[SHIFTED] * 1.6
    run_monitor(traffic(shifted, features, predict(shifted)))

    [delivered] = platform.drain(platform.drift_queue)
    event = json.loads(delivered["Body"])
    assert (event["source"], event["detail-type"]) == (SOURCE, "Drift Summary")
    assert (event["detail"]["tenant"], event["detail"]["drift"]) == (TENANT, True)
    assert matches(pattern(monitoring_template["Resources"], "Drift Summary"), event)

    first = platform.handler.handler(event, CONTEXT)
    redelivered = platform.handler.handler(event, CONTEXT)
    alarm = platform.handler.handler(drift_alarm(), CONTEXT)

    assert first["decision"] == "started"
    assert redelivered == {**first, "decision": "skipped-duplicate", "reason": "already started in this window"}
    assert alarm == {**first, "decision": "skipped-duplicate", "reason": "already started in this window"}
    [execution] = platform.executions()
    assert execution["name"] == first["execution_name"]
    assert json.loads(platform.sfn.describe_execution(executionArn=execution["executionArn"])["input"]) == {
        "tenant": TENANT
    }
    ledger = [item for item in platform.ledger() if item["tenant"] == TENANT]
    assert sorted((item["decision"], item["trigger"]) for item in ledger) == [
        ("skipped-duplicate", "drift-alarm"),
        ("skipped-duplicate", "drift-event"),
        ("started", "drift-event"),
    ]
    assert {item["execution_name"] for item in ledger} == {execution["name"]}
    [started] = [item for item in ledger if item["decision"] == "started"]
    assert started["execution_arn"] == execution["executionArn"]
    assert started["evidence"]["report_uri"] == event["detail"]["report_uri"]
    assert started["evidence"]["report_uri"].startswith(f"s3://{ARTIFACTS}/{REPORT_PREFIX}")
    assert started["evidence"]["event_id"] == event["id"]
