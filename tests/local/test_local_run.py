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
from mlops_platform.training.plan.config import expand
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


SMALL_GRID = ["linear"]  # the example's linear model: 2 trials (its xgboost grid adds 4)


def _run(synthesized, tmp_path, data, **options):
    return platform.run(
        synthesized.outdir, root=ROOT, project="mlops", log_path=tmp_path / "local.log", data=data, **options
    )


def test_mlops_local_deploys_ingests_and_trains_the_example_with_every_trial_accounted_for(
    synthesized, tmp_path, cdk_cli, platform_config
):
    threads_before = set(threading.enumerate())
    summary = _run(synthesized, tmp_path, EXAMPLE_DATA, models=SMALL_GRID)

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
    # The deployed training machine ran to its end in the interpreter, its jobs as local processes.
    run = summary.training
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    [example] = [pipeline for pipeline in platform_config.pipelines if pipeline.tenant == "example"]
    grid = [trial for model in example.published()["models"] if model["name"] in SMALL_GRID for trial in expand(model)]
    trained = sorted(name for kind, name, _ in run.jobs if kind == "training")
    assert len(trained) == len(grid) == 2
    document = summary.as_json()
    # Every trial of the grid is accounted for, as succeeded or failed, and each one had its job.
    assert document["trials"]["succeeded"] + document["trials"]["failed"] == len(grid)
    assert document["trials"] == {"succeeded": 2, "failed": 0}
    assert {status for _, _, status in run.jobs} == {"Completed"}
    assert [kind for kind, _, _ in run.jobs].count("processing") == 2  # prepare, and the best model's baseline
    assert [kind for kind, _, _ in run.jobs].count("transform") == 1  # predictions with the approved model
    best = document["best"]
    assert best["model"] == "linear"
    assert best["metric"] == run.output["best"][0]["metric"]
    assert 0.5 < best["value"] <= 1.0
    assert list(document) == ["stacks", "stubbed_types", "rows_ingested", "trials", "best", "seconds"]  # nothing faked
    # The server thread is joined when the run ends.
    assert set(threading.enumerate()) <= threads_before


def test_mlops_local_runs_twice_in_a_row_each_on_a_fresh_emulator(synthesized, tmp_path, cdk_cli):
    first = _run(synthesized, tmp_path / "first", None, train=False)
    second = _run(synthesized, tmp_path / "second", None, train=False)
    assert first.deployed, first.failures
    assert second.deployed, second.failures
    # A fresh emulator each time: the second deploy creates, it does not update what the first left.
    assert set(second.stacks.values()) == {"CREATE_COMPLETE"}
