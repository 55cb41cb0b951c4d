"""After a deploy: each endpoint runs what its stack deployed, and the deployed-variants record describes it.

    mlops check-deploy --environment dev        (make deploy ENV=dev runs it after cdk deploy)
    python -m mlops_platform.cli check-deploy --environment dev --stack dev-Serving --prefix mlops-dev \\
        --region eu-west-1 [--role-arn ARN]       (the delivery pipeline, after each stage)

1. **The endpoints run the deploy.** A stack that reached ``UPDATE_COMPLETE`` may still leave an endpoint
   on its old endpoint config: a deployment guardrail's alarm makes SageMaker roll the update back
   (https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-configuration.html). Each
   endpoint of the Serving stack must run the endpoint config the stack deployed, each variant on the
   model the stack deployed (``mlops_platform/registry/endpoint_check.py``, the check the approval path runs).
2. **The record is current.** ``config/deployed-variants.yaml`` must hold, for this environment, the
   variants AWS has (names, instance types, autoscaling registered): synth plans the next update from it.
   When it does not, the check prints the exact command that rewrites it from AWS.

Without ``--stack``, ``--prefix`` and ``--region`` it reads them from config (``<env>-Serving``, the
environment's name prefix and region). ``--role-arn`` (or ``DEPLOY_CHECK_ROLE_ARN``) is a role to assume
first: the pipeline's build assumes the environment's deploy-check role (mlops_constructs/deploy_check.py).

Exit status: 0 both hold; 1 an endpoint does not run its deploy, the record is stale, or AWS failed;
2 a bad command line or configuration. In the pipeline's build only boto3 and PyYAML are installed: this
module reads config/ only when --stack, --prefix or --region is left out.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from mlops_platform.cli import CommandError
from mlops_platform.registry import endpoint_check

ROOT = Path(__file__).resolve().parents[2]
HELP = "after a deploy: every endpoint runs what its stack deployed, and config/deployed-variants.yaml records it"
RECORD = ROOT / "config" / "deployed-variants.yaml"  # config/deployed.py: RECORD_FILE
ROLE_VARIABLE = "DEPLOY_CHECK_ROLE_ARN"
ENVIRONMENTS = ("dev", "staging", "prod")  # config/schema.py: ENVIRONMENT_NAMES (the build has no pydantic)

Record = dict[str, dict[str, dict[str, Any]]]


@dataclass(frozen=True)
class Target:
    environment: str
    stack: str
    prefix: str
    region: str


@dataclass(frozen=True)
class Clients:
    cloudformation: Any
    sagemaker: Any
    autoscaling: Any

    @classmethod
    def in_region(cls, region: str, role_arn: str | None) -> Clients:
        import boto3  # the command's only: main() takes any clients

        session = boto3.Session(region_name=region)
        if role_arn:
            credentials = session.client("sts").assume_role(RoleArn=role_arn, RoleSessionName="deploy-check")[
                "Credentials"
            ]
            session = boto3.Session(
                region_name=region,
                aws_access_key_id=credentials["AccessKeyId"],
                aws_secret_access_key=credentials["SecretAccessKey"],
                aws_session_token=credentials["SessionToken"],
            )
        return cls(*(session.client(name) for name in ("cloudformation", "sagemaker", "application-autoscaling")))


def recorded(path: Path, environment: str) -> Record:
    """The environment's entry of the committed record, as plain values (an absent file or entry: nothing)."""
    document = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    entry = (document or {}).get(environment) or {}
    return {
        str(key): {
            str(name): {"instance_type": variant.get("instance_type"), "autoscaling": variant.get("autoscaling")}
            for name, variant in (variants or {}).items()
        }
        for key, variants in entry.items()
    }


def describe(variants: Mapping[str, Mapping[str, Any]] | None) -> str:
    if not variants:
        return "nothing"
    return ", ".join(
        f"{name} ({variant.get('instance_type')}{', autoscaled' if variant.get('autoscaling') else ''})"
        for name, variant in sorted(variants.items())
    )


def differences(committed: Record, live: Record) -> list[str]:
    """One line per endpoint whose recorded variants differ from the live ones."""
    return [
        f"endpoint {key}: the record has {describe(committed.get(key))}; AWS has {describe(live.get(key))}"
        for key in sorted(set(committed) | set(live))
        if committed.get(key) != live.get(key)
    ]


def check(target: Target, clients: Clients, record_path: Path) -> tuple[list[str], list[str]]:
    """(endpoint problems, record differences): both empty when the deploy is done and recorded."""
    problems = endpoint_check.check_stack(clients.cloudformation, clients.sagemaker, target.stack)
    lines = [problem for name in sorted(problems) for problem in problems[name]]
    live = endpoint_check.live_record(
        clients.cloudformation, clients.sagemaker, clients.autoscaling, target.stack, target.prefix
    )
    return lines, differences(recorded(record_path, target.environment), live)


def target_from_config(environment: str) -> Target:
    """``<env>-Serving``, the environment's name prefix and region, from config."""
    from config.loader import load_config
    from config.naming import Names, serving_stack_name

    config = load_config(ROOT / "config", selected_environments=environment)
    settings = config.environment(environment)
    prefix = Names(project=config.project.name, environment=environment).prefix
    return Target(environment=environment, stack=serving_stack_name(environment), prefix=prefix, region=settings.region)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--environment", required=True, choices=ENVIRONMENTS, help="the environment")
    parser.add_argument("--stack", help="the Serving stack (default: <env>-Serving)")
    parser.add_argument("--prefix", help="the endpoints' name prefix, <project>-<env> (default: from config)")
    parser.add_argument("--region", help="the environment's region (default: from config)")
    parser.add_argument("--role-arn", default=os.environ.get(ROLE_VARIABLE), help=f"a role to assume ({ROLE_VARIABLE})")
    parser.add_argument("--record", type=Path, default=RECORD, help="the deployed-variants record")


def run(args: argparse.Namespace, *, clients: Clients | None = None) -> int:
    environment = args.environment
    if args.stack and args.prefix and args.region:
        target = Target(environment=environment, stack=args.stack, prefix=args.prefix, region=args.region)
    else:
        from config.loader import ConfigError

        try:
            target = target_from_config(environment)
        except ConfigError as error:
            raise CommandError(str(error)) from None
    try:
        clients = clients or Clients.in_region(target.region, args.role_arn)
        problems, stale = check(target, clients, args.record)
    except endpoint_check.StackMissing as missing:
        print(f"mlops check-deploy: {missing}: deploy {environment} first", file=sys.stderr)
        return 1
    except endpoint_check.Unsettled as unsettled:
        print(f"mlops check-deploy: {unsettled}", file=sys.stderr)
        return 1
    except (BotoCoreError, ClientError) as error:
        print(f"mlops check-deploy: AWS failed: {error}", file=sys.stderr)
        return 1
    if problems:
        print(
            f"mlops check-deploy: {target.stack} is deployed, but its endpoints do not run the deploy:", file=sys.stderr
        )
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        print(
            "  The endpoints serve what they served before. Find why in the endpoint's events and its rollback "
            "alarms; if a promoted model caused it, roll its pointer back (mlops rollback ...) "
            f"and deploy again (make deploy ENV={environment}).",
            file=sys.stderr,
        )
    if stale:
        print(
            f"mlops check-deploy: config/deployed-variants.yaml does not record {environment}'s live endpoint "
            "variants:",
            file=sys.stderr,
        )
        for line in stale:
            print(f"  - {line}", file=sys.stderr)
        print(
            f"  Run: make record-variants ENV={environment}   (with credentials for {environment}), "
            "then commit config/deployed-variants.yaml.",
            file=sys.stderr,
        )
    if problems or stale:
        return 1
    print(f"{target.stack}: every endpoint runs the endpoint config and models the stack deployed")
    print(f"config/deployed-variants.yaml records {environment}'s live variants")
    return 0
