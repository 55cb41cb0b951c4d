#!/usr/bin/env python3
"""The CDK app: read configuration and context once, validate them, build one Stage per environment
and, when config/pipeline.yaml exists, the delivery pipeline that deploys those same Stages.

This is the only module that reads files, context or the process environment; everything below it
receives typed, frozen settings. Context keys:

* ``environments``: a comma-separated subset of dev, staging, prod to synthesize (default: all);
* ``configDir``: another configuration folder (default: ``config/`` beside this file);
* ``variantWeights``: JSON such as ``{"prod": {"churn": {"Champion": 90, "Challenger": 10}}}``,
  weights that override the configured ones of the named variants (README, "Shifting traffic").
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from config import ENVIRONMENT_NAMES, ConfigError, PlatformConfig, load_config
from config.schema import SMOKE_TESTED_ENVIRONMENT
from stacks.pipeline import PipelineStack, add_deploy_check_access, add_smoke_test_access
from stacks.stage import PlatformStage

ROOT = Path(__file__).resolve().parent


def read_config(app: cdk.App) -> PlatformConfig:
    config_dir = Path(str(app.node.try_get_context("configDir") or "config"))
    return load_config(
        config_dir if config_dir.is_absolute() else ROOT / config_dir,
        selected_environments=app.node.try_get_context("environments"),
        variant_weights=app.node.try_get_context("variantWeights"),
    )


def pinned_cdk_cli_version() -> str:
    """The CDK CLI version package.json pins: the pipeline's builds install the same one."""
    package = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))
    return str(package["devDependencies"]["aws-cdk"])


def build_platform(app: cdk.App, config: PlatformConfig) -> dict[str, PlatformStage]:
    """Every environment's Stage, the delivery pipeline when configured, and the AwsSolutions checks over all."""
    stages: dict[str, PlatformStage] = {
        environment.name: PlatformStage(
            app,
            project=config.project,
            environment=environment,
            pipelines=config.pipelines,
            deployed=config.deployed.of(environment.name),
        )
        for environment in config.environments
    }
    delivery = config.delivery_pipeline
    if delivery is not None:
        # Whichever path deploys staging, its template keeps the role the smoke test assumes.
        if SMOKE_TESTED_ENVIRONMENT in stages:
            add_smoke_test_access(stages[SMOKE_TESTED_ENVIRONMENT], project=config.project, settings=delivery)
        # And every environment's the role the deploy check after its stage assumes.
        for stage in stages.values():
            add_deploy_check_access(stage, project=config.project, settings=delivery)
        # The pipeline deploys these same Stage objects (not copies nested under it), so each
        # environment is synthesized once; it needs them all, so `-c environments=dev` leaves it out.
        if tuple(stages) == ENVIRONMENT_NAMES:
            PipelineStack(
                app,
                "Pipeline",
                stack_name=f"{config.project.name}-Pipeline",
                env=cdk.Environment(account=delivery.account, region=delivery.region),
                project=config.project,
                settings=delivery,
                stages=list(stages.values()),
                cli_version=pinned_cdk_cli_version(),
                description="ML platform delivery pipeline: tests and synth, images, dev, staging, approval, prod",
            )
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return stages


def main() -> int:
    app = cdk.App()
    try:
        config = read_config(app)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    build_platform(app, config)
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
