"""A reduced `mlops local` in this process: dev deployed onto the embedded AWS by the pinned CDK CLI.

Reduced: the assembly is the session's in-process synth (tests/conftest.py, `synthesized`), not a
fresh `cdk synth`; everything after it is what `make local` runs.
"""

from __future__ import annotations

import shutil
import threading

import pytest

from mlops_platform.local import platform
from mlops_platform.local.ingestion import read_records
from tests.conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.enable_socket]

EXAMPLE_DATA = ROOT / "data" / "example" / "breast-cancer.jsonl"

# What moto 5.2.5 cannot create in dev, asked of moto at deploy time. An emulator upgrade (or a stack
# that gains a type) changes it: update this list, and the README's "What runs locally, and what is
# emulated", on purpose.
STUBBED_IN_DEV = [
    "AWS::ApiGateway::Account",
    "AWS::ApiGateway::Model",
    "AWS::ApiGateway::RequestValidator",
    "AWS::ApiGateway::Stage",
    "AWS::ApplicationAutoScaling::ScalableTarget",
    "AWS::ApplicationAutoScaling::ScalingPolicy",
    "AWS::Athena::WorkGroup",
    "AWS::CloudWatch::Alarm",
    "AWS::CodeBuild::Project",
    "AWS::ECR::RegistryScanningConfiguration",
    "AWS::Glue::Database",
    "AWS::Glue::Table",
    "AWS::Lambda::EventInvokeConfig",
    "AWS::S3::BucketPolicy",
    "AWS::SNS::TopicPolicy",
    "AWS::SQS::QueuePolicy",
]


@pytest.fixture(scope="module")
def cdk_cli():
    if not (ROOT / "node_modules" / ".bin" / "cdk").is_file() and shutil.which("cdk") is None:
        pytest.fail("the pinned CDK CLI is missing: run `make setup`")


def _run(synthesized, tmp_path, data):
    return platform.run(synthesized.outdir, root=ROOT, project="mlops", log_path=tmp_path / "local.log", data=data)


def test_mlops_local_deploys_every_dev_stack_and_ingests_the_example(synthesized, tmp_path, cdk_cli):
    threads_before = set(threading.enumerate())
    summary = _run(synthesized, tmp_path, EXAMPLE_DATA)

    log = (tmp_path / "local.log").read_text(encoding="utf-8")
    assert summary.error is None, f"{summary.error}; {summary.failures}; log tail: {log[-3000:]}"
    assert set(summary.stacks) == {
        f"dev-{name}" for name in ("Foundation", "Ingestion", "Training", "Serving", "Monitoring")
    }
    assert summary.deployed, summary.failures
    assert summary.stubbed_types == STUBBED_IN_DEV
    # Every record of the example went through the deployed queue and handler into the raw zone.
    assert summary.rows_ingested == len(read_records(EXAMPLE_DATA))
    assert summary.ingestion.failed_messages == 0
    assert summary.rows_quarantined == 0
    document = summary.as_json()
    assert list(document) == ["stacks", "stubbed_types", "rows_ingested", "seconds"]  # nothing faked
    # The server thread is joined when the run ends.
    assert set(threading.enumerate()) <= threads_before


def test_mlops_local_runs_twice_in_a_row_each_on_a_fresh_emulator(synthesized, tmp_path, cdk_cli):
    first = _run(synthesized, tmp_path / "first", None)
    second = _run(synthesized, tmp_path / "second", None)
    assert first.deployed, first.failures
    assert second.deployed, second.failures
    # A fresh emulator each time: the second deploy creates, it does not update what the first left.
    assert set(second.stacks.values()) == {"CREATE_COMPLETE"}
