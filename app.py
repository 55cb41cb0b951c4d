#!/usr/bin/env python3
"""The CDK app: read configuration and context once, validate them, build one Stage per environment.

This is the only module that reads files, context or the process environment; everything below it
receives typed, frozen settings. Context keys:

* ``environments``: a comma-separated subset of dev, staging, prod to synthesize (default: all);
* ``configDir``: another configuration folder (default: ``config/`` beside this file);
* ``variantWeights``: JSON such as ``{"prod": {"churn": {"Champion": 90, "Challenger": 10}}}``,
  weights that override the configured ones of the named variants (README, "Shifting traffic").
"""

from __future__ import annotations

import sys
from pathlib import Path

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from config import ConfigError, PlatformConfig, load_config
from stacks.stage import PlatformStage

ROOT = Path(__file__).resolve().parent


def read_config(app: cdk.App) -> PlatformConfig:
    config_dir = Path(str(app.node.try_get_context("configDir") or "config"))
    return load_config(
        config_dir if config_dir.is_absolute() else ROOT / config_dir,
        selected_environments=app.node.try_get_context("environments"),
        variant_weights=app.node.try_get_context("variantWeights"),
    )


def build_platform(app: cdk.App, config: PlatformConfig) -> dict[str, PlatformStage]:
    """Every environment's Stage, with the AwsSolutions checks run over all of them at synth."""
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
