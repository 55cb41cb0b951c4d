"""Synth itself: every environment, offline, deterministic, and safe when environments share an account."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest

from config.schema import Notifications
from stacks.stage import PlatformStage
from tests.conftest import ROOT, make_synth
from tests.infra.conftest import ENVIRONMENTS
from tests.synth import CDK_CONTEXT, Synthesized, synthesize

# Properties that give a resource a physical name another resource or person relies on.
NAME_PROPERTIES = {
    "AliasName",
    "AlarmName",
    "BucketName",
    "DashboardName",
    "EndpointName",
    "FunctionName",
    "LogGroupName",
    "ManagedPolicyName",
    "ModelPackageGroupName",
    "Name",
    "QueueName",
    "RepositoryName",
    "RoleName",
    "RuleName",
    "StateMachineName",
    "TableName",
    "TopicName",
}


def assembly_files(outdir: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(outdir)): path.read_bytes()
        for pattern in (
            "manifest.json",
            "*.template.json",  # the delivery pipeline's stack
            "buildspec-*.yaml",  # its asset-publishing builds
            "assembly-*/*.template.json",
            "assembly-*/*.assets.json",
            "assembly-*/manifest.json",
        )
        for path in sorted(outdir.glob(pattern))
    }


def physical_names(synthesized: Synthesized, environment: str) -> set[str]:
    """Every literal physical name in an environment's templates, and its stack names."""
    names = set()
    stage = synthesized.stages[environment]
    for stack in stage.stacks:
        names.add(stack.stack_name)
        template = json.loads((synthesized.outdir / f"assembly-{environment}" / stack.template_file).read_text())
        for resource in template["Resources"].values():
            properties = resource.get("Properties", {})
            nested = properties.get("DatabaseInput", {})  # Glue databases name themselves one level down
            for key, value in [*properties.items(), *nested.items()]:
                if key in NAME_PROPERTIES and isinstance(value, str):
                    names.add(value)
        for output in template.get("Outputs", {}).values():
            export = output.get("Export", {}).get("Name")
            if isinstance(export, str):
                names.add(export)
    return names


def test_every_environment_is_synthesized_into_its_own_assembly(synthesized):
    manifest = json.loads((synthesized.outdir / "manifest.json").read_text())
    assemblies = {
        artifact["properties"]["directoryName"]
        for artifact in manifest["artifacts"].values()
        if artifact["type"] == "cdk:cloud-assembly"
    }

    assert assemblies == {f"assembly-{environment}" for environment in ENVIRONMENTS}


def test_stacks_deploy_to_the_configured_account_and_region(synthesized, platform_config):
    for environment in platform_config.environments:
        for stack in synthesized.stages[environment.name].stacks:
            assert stack.account == environment.account
            assert stack.region == environment.region
            assert stack.stack_name.startswith(f"{environment.name}-")


def test_synth_makes_no_lookups(synthesized):
    for manifest_path in synthesized.outdir.glob("assembly-*/manifest.json"):
        manifest = json.loads(manifest_path.read_text())
        assert "missing" not in manifest, manifest.get("missing")


@pytest.fixture(scope="module")
def make_synth_twice(tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """`make synth` as a user runs it, twice, in separate processes with different hash seeds.

    The test process holds fake AWS credentials (tests/conftest.py): the first run is verbose, so
    the test can see the CLI never reach for STS with them.
    """
    base = tmp_path_factory.mktemp("make-synth")
    results = []
    for name, seed, flags in (("first", "1", "--verbose"), ("second", "2", "")):
        result = make_synth(f"CDK_OUT={base / name}", f"CDK_SYNTH_FLAGS={flags}", PYTHONHASHSEED=seed)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        results.append(result)
    return base / "first", base / "second", results[0]


@pytest.mark.slow
def test_make_synth_writes_every_environment_and_passes_the_policy_gate(make_synth_twice):
    first, _, result = make_synth_twice

    assert sorted(path.name for path in first.glob("assembly-*")) == [
        "assembly-dev",
        "assembly-prod",
        "assembly-staging",
    ]
    # 3 environments x 5 stacks, and the delivery pipeline's stack.
    assert "policy gate: cdk-nag and cfn-lint clean on 16 templates" in result.stdout
    assert (first / "Pipeline.template.json").is_file()


@pytest.mark.slow
def test_make_synth_twice_gives_byte_identical_assemblies(make_synth_twice):
    first, second, _ = make_synth_twice

    files_first, files_second = assembly_files(first), assembly_files(second)
    assert len(files_first) >= 15
    assert files_first.keys() == files_second.keys()
    for name in files_first:
        assert files_first[name] == files_second[name], name
    assert sorted(p.name for p in first.glob("asset.*")) == sorted(p.name for p in second.glob("asset.*"))


@pytest.mark.slow
def test_make_synth_makes_no_aws_call_even_with_credentials_in_the_environment(make_synth_twice):
    _, _, verbose = make_synth_twice
    output = verbose.stdout + verbose.stderr

    assert os.environ["AWS_ACCESS_KEY_ID"]  # the credentials were there to be found
    assert "Could not load credentials from any providers" in output
    assert "Looking up default account ID from STS" not in output
    assert "amazonaws.com" not in output.replace("aws:cdk", "")


@pytest.fixture(scope="module")
def shared_account(platform_config, tmp_path_factory) -> Synthesized:
    """dev and staging in one account and region, as a small team would run them."""
    dev = platform_config.environment("dev").model_copy(
        update={"notifications": Notifications(emails=("ml-oncall@example.com",))}
    )
    staging = platform_config.environment("staging").model_copy(update={"account": dev.account, "region": dev.region})
    config = platform_config.model_copy(update={"environments": (dev, staging)})
    return synthesize(config, tmp_path_factory.mktemp("shared"))


def test_environments_sharing_an_account_and_region_have_no_colliding_physical_names(shared_account):
    dev, staging = physical_names(shared_account, "dev"), physical_names(shared_account, "staging")

    assert dev & staging == set()
    assert {"dev-Foundation", "mlops_dev_lake", "mlops-dev-analytics", "alias/mlops/dev/platform"} <= dev


@pytest.mark.parametrize("environment", ["dev", "staging"])
def test_every_physical_name_carries_its_environment(shared_account, environment):
    for name in physical_names(shared_account, environment):
        assert environment in name, name


def test_configured_emails_are_subscribed_to_the_environments_topic(shared_account):
    dev = shared_account.template("dev", "foundation")
    staging = shared_account.template("staging", "foundation")

    dev.has_resource_properties(
        "AWS::SNS::Subscription",
        {"Protocol": "email", "Endpoint": "ml-oncall@example.com", "TopicArn": {"Ref": "NotificationTopic"}},
    )
    staging.resource_count_is("AWS::SNS::Subscription", 0)


def _walk(value: Any):
    if isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)
    else:
        yield value


def test_templates_hold_no_machine_paths(synthesized):
    for environment in ENVIRONMENTS:
        for stack in ("foundation", "ingestion"):
            for value in _walk(synthesized.template_json(environment, stack)):
                if isinstance(value, str):
                    assert str(ROOT) not in value
                    assert str(synthesized.outdir) not in value


def test_templates_name_only_scripts_and_commands_that_exist(synthesized):
    """Descriptions a deployed operator reads (SSM pointers, CloudFormation parameters) point at real tools."""
    import re

    from mlops_platform.cli import COMMANDS

    named: set[tuple[str, str, str]] = set()
    for environment in ENVIRONMENTS:
        for stack in ("foundation", "ingestion", "training", "serving", "monitoring"):
            for value in _walk(synthesized.template_json(environment, stack)):
                if isinstance(value, str):
                    named.update((stack, "script", path) for path in re.findall(r"\bscripts/[\w/]+\.py\b", value))
                    named.update((stack, "command", c) for c in re.findall(r"\bmlops ([a-z][a-z-]*)", value))

    assert ("serving", "command", "promote") in named  # the pointer parameters' descriptions
    assert [path for _, kind, path in named if kind == "script" and not (ROOT / path).is_file()] == []
    assert [c for _, kind, c in named if kind == "command" and c not in COMMANDS] == []


def test_stack_names_stay_the_same_when_the_stage_is_nested_in_a_delivery_pipeline(platform_config):
    app = cdk.App(context=CDK_CONTEXT)
    pipeline_stage = cdk.Stage(app, "Delivery")
    dev = PlatformStage(pipeline_stage, project=platform_config.project, environment=platform_config.environment("dev"))

    assert [stack.stack_name for stack in dev.stacks] == [
        "dev-Foundation",
        "dev-Ingestion",
        "dev-Training",
        "dev-Serving",
        "dev-Monitoring",
    ]
