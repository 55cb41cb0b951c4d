"""One in-process synth of every environment, shared by all infrastructure tests.

The first synth in a process costs seconds (it starts Node); every test reads the same assembly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from app import build_platform
from config import PlatformConfig, load_config
from stacks.stage import PlatformStage
from tests.conftest import ROOT


@dataclass(frozen=True)
class Synthesized:
    config: PlatformConfig
    outdir: Path
    stages: dict[str, PlatformStage]

    def template_path(self, environment: str, stack: str) -> Path:
        stack_object = getattr(self.stages[environment], stack)
        return self.outdir / f"assembly-{environment}" / stack_object.template_file

    def template_json(self, environment: str, stack: str) -> dict[str, Any]:
        return json.loads(self.template_path(environment, stack).read_text())

    def template(self, environment: str, stack: str) -> Template:
        return Template.from_json(self.template_json(environment, stack))


# The feature flags `cdk synth` passes to app.py: without them an in-process synth builds other templates.
CDK_CONTEXT = json.loads((ROOT / "cdk.json").read_text())["context"]


def synthesize(config: PlatformConfig, outdir: Path) -> Synthesized:
    app = cdk.App(outdir=str(outdir), context=CDK_CONTEXT)
    stages = build_platform(app, config)
    app.synth()
    return Synthesized(config=config, outdir=outdir, stages=stages)


@pytest.fixture(scope="session")
def platform_config() -> PlatformConfig:
    return load_config(ROOT / "config")


@pytest.fixture(scope="session")
def synthesized(platform_config, tmp_path_factory) -> Synthesized:
    return synthesize(platform_config, tmp_path_factory.mktemp("cdk.out"))


ENVIRONMENTS = ("dev", "staging", "prod")
STACKS = ("foundation", "ingestion", "training")


@pytest.fixture(scope="module", params=ENVIRONMENTS)
def environment(request) -> str:
    """Each test of a stack module runs once per environment."""
    return request.param


@pytest.fixture(scope="module")
def settings(platform_config, environment):
    return platform_config.environment(environment)


@pytest.fixture(scope="module")
def template(request, synthesized, environment) -> Template:
    """The template of the stack the test module names in its STACK constant."""
    return synthesized.template(environment, request.module.STACK)


@pytest.fixture(scope="module")
def resources(request, synthesized, environment) -> dict[str, Any]:
    return synthesized.template_json(environment, request.module.STACK)["Resources"]
