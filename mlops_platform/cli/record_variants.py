"""Record an environment's endpoint variants as AWS has them: run after a deploy, then commit.

``config/deployed-variants.yaml`` tells synth what is live without asking AWS (config/deployed.py):
it refuses to remove a variant, or change its instance type, while the variant is an autoscaling
target, and it uses blue/green guardrails only for updates that keep the live variant names. So the
record must say what AWS has, not what config asked for: a deploy may have failed, or SageMaker may
have rolled an update back. For each endpoint the environment's config declares, it reads the live
variant names (``DescribeEndpoint``), their instance types (``DescribeEndpointConfig`` of the live
config: ``DescribeEndpoint`` has none) and whether each is a registered Application Auto Scaling
target (``DescribeScalableTargets``), with ``mlops_platform/registry/endpoint_check.py``: the code the
delivery pipeline's deploy check compares the committed record with. An endpoint not deployed yet is left out.

    mlops record-variants --environment prod     (or: make record-variants ENV=prod)

Needs credentials for the environment's account (checked) and, there, ``sagemaker:DescribeEndpoint``,
``sagemaker:DescribeEndpointConfig`` and ``application-autoscaling:DescribeScalableTargets``.

Exit status: 0 written; 1 AWS failed or the credentials are for another account; 2 bad configuration.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from config import ConfigError, load_config
from config.deployed import RECORD_FILE, DeployedVariant, DeployedVariants, EnvironmentRecord
from config.naming import Names
from config.schema import ENVIRONMENT_NAMES
from mlops_platform.cli import CommandError
from mlops_platform.registry import endpoint_check

ROOT = Path(__file__).resolve().parents[2]
HELP = "record an environment's deployed endpoint variants in config/deployed-variants.yaml (after a deploy)"
HEADER = """\
# Each environment's endpoint variants as AWS has them: written by `make record-variants ENV=<env>`
# (DescribeEndpoint, DescribeEndpointConfig, DescribeScalableTargets) after a deploy, then committed.
# Synth reads it (config/deployed.py) to refuse removing a variant, or changing its instance type,
# while it is an autoscaling target, and to use blue/green guardrails only when an update keeps the
# live variant names. The delivery pipeline's deploy check fails while it is stale. An empty entry:
# nothing deployed yet.
"""


class WrongAccount(Exception):
    """The credentials are for another account than the environment's."""


@dataclass(frozen=True)
class Clients:
    sagemaker: Any
    autoscaling: Any
    sts: Any

    @classmethod
    def in_region(cls, region: str) -> Clients:
        import boto3  # the command's only: record() takes any clients

        session = boto3.Session(region_name=region)
        return cls(*(session.client(name) for name in ("sagemaker", "application-autoscaling", "sts")))


def render(record: DeployedVariants) -> str:
    data = record.model_dump(mode="json")
    lines = [HEADER.rstrip("\n")]
    for environment, endpoints in data.items():
        if not endpoints:
            lines.append(f"{environment}: {{}}")
            continue
        lines.append(yaml.safe_dump({environment: endpoints}, sort_keys=True, default_flow_style=None).rstrip("\n"))
    return "\n".join(lines) + "\n"


def live_entry(clients: Clients, names: Names, endpoint_keys: list[str]) -> EnvironmentRecord:
    """What AWS has for each endpoint key: the live variants of ``<project>-<env>-<key>``, if it exists."""
    entry: EnvironmentRecord = {}
    for key in sorted(endpoint_keys):
        variants = endpoint_check.live_variants(clients.sagemaker, clients.autoscaling, names.resource(key))
        if variants is not None:
            entry[key] = {name: DeployedVariant.model_validate(value) for name, value in variants.items()}
    return entry


def record(config_dir: Path, environment: str, clients: Clients | None = None) -> DeployedVariants:
    """The record with ``environment``'s entry replaced by what AWS has, written to ``config_dir``."""
    # The record's own checks are off: a stale record is what this command repairs.
    config = load_config(config_dir, selected_environments=environment, check_record=False)
    settings = config.environment(environment)
    clients = clients or Clients.in_region(settings.region)
    account = clients.sts.get_caller_identity()["Account"]
    if account != settings.account:
        raise WrongAccount(f"the AWS credentials are for account {account}; {environment} is {settings.account}")
    names = Names(project=config.project.name, environment=environment)
    entry = live_entry(clients, names, list(settings.serving.endpoints))
    updated = config.deployed.model_copy(update={environment: entry})
    (config_dir / RECORD_FILE).write_text(render(updated))
    return updated


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--environment", required=True, choices=ENVIRONMENT_NAMES, help="the environment")
    parser.add_argument(
        "--config-dir", type=Path, default=ROOT / "config", help="the configuration folder (default: config/)"
    )


def run(args: argparse.Namespace, *, clients: Clients | None = None) -> int:
    try:
        updated = record(args.config_dir, args.environment, clients)
    except ConfigError as error:
        raise CommandError(str(error)) from None
    except (WrongAccount, endpoint_check.Unsettled, BotoCoreError, ClientError) as error:
        print(f"mlops record-variants: {error}", file=sys.stderr)
        return 1
    endpoints = updated.of(args.environment)
    for key, variants in sorted(endpoints.items()):
        listed = ", ".join(
            f"{name} ({v.instance_type}{', autoscaled' if v.autoscaling else ''})" for name, v in variants.items()
        )
        print(f"{args.environment}/{key}: {listed}")
    if not endpoints:
        print(f"{args.environment}: no endpoint deployed yet")
    print(f"wrote {args.config_dir / RECORD_FILE}: commit it")
    return 0
