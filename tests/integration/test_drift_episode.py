"""Persistent drift, end to end in moto: one drift episode trains once, then waits for its candidate.

Drift is measured against the Champion's baseline, which changes only on promotion: a lasting shift keeps
reporting drift window after window. Here the real drift monitor job (mlops_platform/training/
monitoring/job.py, run as tests/integration/test_drift_to_retraining.py runs it) sees shifted traffic hour after
hour; each Drift Summary it puts goes through the synthesized rule to the retrain trigger. The run it starts
leaves candidates as the training state machine does: the plan handler's plan, the evaluate handler's
evaluation and registration (tests/unit/test_evaluate.py's helpers, trials as AWS reports them), so the
trigger reads the ``PACKAGE#`` records and model packages that code writes. People decide in the registry
(moto's UpdateModelPackage), and SageMaker's ``SageMaker Model Package State Change`` events, shaped as the
example in "Events that Amazon SageMaker AI sends to Amazon EventBridge", reach the trigger through the
synthesized candidate rule.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta
from typing import Any

import boto3
import pandas as pd
import pytest

from tests.conftest import load_handler
from tests.integration import test_retrain_trigger_flow as flow
from tests.integration.test_drift_to_retraining import run_monitor
from tests.integration.test_retrain_trigger_flow import CONTEXT, REGION, Platform
from tests.unit import test_evaluate as evaluation
from tests.unit.test_retrain_trigger import PACKAGE_STATE_CHANGE
from tests.unit.training import test_monitor_job as monitor
from tests.unit.training.test_monitor_job import END, SHIFTED, traffic

monitoring_template = flow.monitoring_template
platform = flow.platform
dataset = monitor.dataset
features = monitor.features
predict = monitor.predict

TENANT = "acme"
HOUR = timedelta(hours=1)
LATE = timedelta(minutes=5)  # the monitor's run ends a few minutes after its window
COOLDOWN = timedelta(seconds=21600)  # dev's retraining.cooldown_seconds
EXPIRY = timedelta(seconds=604800)  # dev's retraining.candidate_expiry_seconds


class Episode:
    """Shifted traffic, window after window, through the monitor and the trigger."""

    def __init__(self, platform: Platform, frame: pd.DataFrame, features: list[str], scores: Any):
        self.platform = platform
        self.frame = frame
        self.features = features
        self.scores = scores
        self.window = 0

    def drifted_window(self, end: datetime | None = None) -> dict[str, Any]:
        """The next hour (or the hour before ``end``): the monitor's run and the trigger's decision on its summary."""
        self.window += 1
        end = end or END + (self.window - 1) * HOUR
        run_monitor(traffic(self.frame, self.features, self.scores, start=end - HOUR), end)
        [delivered] = self.platform.drain(self.platform.drift_queue)
        event = json.loads(delivered["Body"])
        assert (event["detail"]["tenant"], event["detail"]["drift"]) == (TENANT, True)
        assert event["detail"]["window_end"] == end.strftime("%Y-%m-%dT%H:%M:%SZ")
        self.platform.clock.now = end + LATE
        return self.platform.handler.handler(event, CONTEXT)


@pytest.fixture
def episode(platform: Platform, dataset: pd.DataFrame, features, predict) -> Episode:
    shifted = dataset.copy()
    shifted[SHIFTED] = shifted[SHIFTED] * 1.6
    return Episode(platform, shifted, features, predict(shifted))


def register_candidates(run_id: str, monkeypatch, *, auto_approve: bool = False) -> list[dict[str, Any]]:
    """What the training run ``run_id`` registers: its plan, trials, evaluation, baselines and packages, written by
    the plan and evaluate handlers (AUTO_APPROVE off or below the threshold: left for manual approval)."""
    for name, value in {**evaluation.ENVIRONMENT, "LEDGER_TABLE": flow.LEDGER}.items():
        monkeypatch.setenv(name, value)
    s3 = boto3.client("s3", region_name=REGION)
    existing = {bucket["Name"] for bucket in s3.list_buckets()["Buckets"]}
    for bucket in {
        evaluation.ARTIFACTS,
        evaluation.FEATURES,
        "raw-zone",
        "curated-zone",
        "predictions-zone",
    } - existing:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "plan")
    plan = load_handler("plan").handler(
        {"tenant": TENANT, "run_id": run_id, "day": "2026-11-24"}, evaluation.LambdaContext("plan")
    )
    items = json.loads(s3.get_object(Bucket=evaluation.ARTIFACTS, Key=plan["plan"]["Key"])["Body"].read())
    evaluate = evaluation.evaluator(monkeypatch, AUTO_APPROVE="true" if auto_approve else "false")
    # AUC below acme's approval threshold (0.9) for xgboost, above it for linear.
    results = evaluation.write_results(s3, {"SUCCEEDED": evaluation.all_succeeded(items, [0.85, 0.8, 0.95, 0.9])})
    return list(evaluation.run(evaluate, plan, results)["best"])


def decide(platform: Platform, package_arn: str, status: str, *, deliveries: int = 1) -> list[dict[str, Any]]:
    """A person approves or rejects in the registry; SageMaker's event (sent ``deliveries`` times, as SageMaker may)
    goes through the synthesized candidate rule to the trigger."""
    platform.clock.now += timedelta(minutes=10)
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    sagemaker.update_model_package(ModelPackageArn=package_arn, ModelApprovalStatus=status)
    package = sagemaker.describe_model_package(ModelPackageName=package_arn)
    event = copy.deepcopy(PACKAGE_STATE_CHANGE)
    detail = {
        **event["detail"],
        "ModelPackageGroupName": package["ModelPackageGroupName"],
        "ModelPackageVersion": package["ModelPackageVersion"],
        "ModelPackageArn": package_arn,
        "ModelApprovalStatus": status,
        "UpdatedModelPackageFields": ["ModelApprovalStatus"],
    }
    for _ in range(deliveries):
        platform.put("aws.sagemaker", "SageMaker Model Package State Change", detail, [package_arn])
    return [platform.handler.handler(json.loads(m["Body"]), CONTEXT) for m in platform.drain(platform.package_queue)]


def decisions(platform: Platform) -> list[str]:
    return [item["decision"] for item in platform.ledger() if item["tenant"] == TENANT]


def test_a_drift_episode_trains_once_and_waits_for_its_candidates_to_be_decided(episode, platform, monkeypatch):
    first = episode.drifted_window()
    [run] = platform.executions()
    candidates = register_candidates(run["name"], monkeypatch)
    assert [(c["model"], c["approval_status"]) for c in candidates] == [
        ("xgboost", "PendingManualApproval"),
        ("linear", "PendingManualApproval"),
    ]
    second = episode.drifted_window()  # the run still trains
    platform.clock.now += timedelta(minutes=30)
    platform.finish(run["executionArn"])

    # Drift persists for seven more hours, past the cooldown (6 h in dev): each window is recorded, none trains.
    later = [episode.drifted_window() for _ in range(7)]

    assert platform.clock.now - (END + LATE) > COOLDOWN
    assert len(platform.executions()) == 1
    assert {answer["decision"] for answer in later} == {"skipped-awaiting-candidate"}
    assert (first["decision"], second["decision"]) == ("started", "skipped-running")
    ended = next(item for item in platform.ledger() if item["decision"] == "run-ended")
    assert ended["execution_name"] == run["name"]
    assert ended["evidence"]["outcome"] == "SUCCEEDED"
    assert ended["evidence"]["awaiting"] == sorted(c["model_package_arn"] for c in candidates)
    awaiting = [item for item in platform.ledger() if item["decision"] == "skipped-awaiting-candidate"]
    assert all(run["name"] in item["reason"] for item in awaiting)
    assert len({item["evidence"]["report_uri"] for item in awaiting}) == 7  # one record per window's report

    # The xgboost candidate is rejected (SageMaker says so twice): the linear one still holds drift back.
    xgboost, linear = (c["model_package_arn"] for c in candidates)
    rejected = decide(platform, xgboost, "Rejected", deliveries=2)
    assert [answer["decision"] for answer in rejected] == ["candidate-decided", "ignored"]
    assert episode.drifted_window()["decision"] == "skipped-awaiting-candidate"

    approved = decide(platform, linear, "Approved")
    assert [answer["decision"] for answer in approved] == ["candidate-decided"]
    assert "drift may start runs again" in approved[0]["reason"]

    again = episode.drifted_window()

    assert again["decision"] == "started"
    assert len(platform.executions()) == 2
    assert decisions(platform) == [
        "started",
        "skipped-running",
        "run-ended",
        *["skipped-awaiting-candidate"] * 7,
        "candidate-decided",
        "skipped-awaiting-candidate",
        "candidate-decided",
        "started",
    ]
    [rejected_record, approved_record] = [i for i in platform.ledger() if i["decision"] == "candidate-decided"]
    assert rejected_record["evidence"]["remaining"] == [linear]
    assert approved_record["evidence"]["remaining"] == []
    assert rejected_record["evidence"]["status"] == "Rejected"


def test_a_candidate_decided_while_its_run_still_trains_holds_nothing(episode, platform, monkeypatch):
    episode.drifted_window()
    [run] = platform.executions()
    candidates = register_candidates(run["name"], monkeypatch)
    # Both decided before the run ends (its batch predictions run after registration): the events find no hold.
    for candidate, status in zip(candidates, ("Rejected", "Approved"), strict=True):
        assert [a["decision"] for a in decide(platform, candidate["model_package_arn"], status)] == ["ignored"]
    platform.finish(run["executionArn"])

    episode.drifted_window(END + COOLDOWN + HOUR)  # the first window after the cooldown

    assert len(platform.executions()) == 2
    ended = next(item for item in platform.ledger() if item["decision"] == "run-ended")
    assert ended["evidence"]["awaiting"] == []
    assert sorted(ended["evidence"]["decided"].values()) == ["Approved", "Rejected"]


def test_a_candidate_nobody_decides_expires_and_drift_trains_again(episode, platform, monkeypatch):
    episode.drifted_window()
    [run] = platform.executions()
    register_candidates(run["name"], monkeypatch)
    platform.finish(run["executionArn"], status="FAILED")  # batch predictions failed after registration
    held = episode.drifted_window(END + COOLDOWN + HOUR)

    expired = episode.drifted_window(END + COOLDOWN + HOUR + EXPIRY)

    assert held["decision"] == "skipped-awaiting-candidate"
    assert expired["decision"] == "started"
    assert len(platform.executions()) == 2
    assert decisions(platform) == ["started", "run-ended", "skipped-awaiting-candidate", "candidate-expired", "started"]
    record = next(item for item in platform.ledger() if item["decision"] == "candidate-expired")
    assert record["evidence"]["held_run"] == run["name"]
    assert len(record["evidence"]["held_packages"]) == 2


def test_an_approved_candidate_holds_nothing(episode, platform, monkeypatch):
    # Auto-approval registers the linear model Approved and leaves only xgboost (below the threshold) pending.
    episode.drifted_window()
    [run] = platform.executions()
    candidates = register_candidates(run["name"], monkeypatch, auto_approve=True)
    platform.finish(run["executionArn"])

    assert episode.drifted_window(END + COOLDOWN + HOUR)["decision"] == "skipped-awaiting-candidate"
    ended = next(item for item in platform.ledger() if item["decision"] == "run-ended")
    assert ended["evidence"]["awaiting"] == [c["model_package_arn"] for c in candidates if c["model"] == "xgboost"]
