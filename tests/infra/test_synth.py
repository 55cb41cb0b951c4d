"""Synth itself: every environment, offline, deterministic, and safe when environments share an account."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import ENVIRONMENTS, Synthesized, synthesize

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
        for pattern in ("assembly-*/*.template.json", "assembly-*/*.assets.json", "assembly-*/manifest.json")
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


def test_two_synths_of_the_same_inputs_are_byte_identical(synthesized, platform_config, tmp_path):
    again = synthesize(platform_config, tmp_path / "again")

    first, second = assembly_files(synthesized.outdir), assembly_files(again.outdir)
    assert len(first) >= 9
    assert first.keys() == second.keys()
    for name in first:
        assert first[name] == second[name], name
    assert sorted(p.name for p in synthesized.outdir.glob("asset.*")) == sorted(
        p.name for p in again.outdir.glob("asset.*")
    )


@pytest.fixture(scope="module")
def shared_account(platform_config, tmp_path_factory) -> Synthesized:
    """dev and staging in one account and region, as a small team would run them."""
    dev = platform_config.environment("dev")
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


def _walk(value: Any):
    if isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)
    else:
        yield value


def test_templates_hold_no_timestamps_or_machine_paths(synthesized):
    for environment in ENVIRONMENTS:
        for stack in ("foundation", "ingestion"):
            for value in _walk(synthesized.template_json(environment, stack)):
                if isinstance(value, str):
                    assert str(Path.home()) not in value
                    assert "/tmp/" not in value
