"""One in-process synth of every environment, shared by the infrastructure and integration tests.

The first synth in a process costs seconds (it starts Node); every test reads the same assembly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk.assertions import Template

from app import build_platform
from config import PlatformConfig
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
