"""Bootstrap one account and region for the platform, with the project's template and execution policy.

Needs AWS credentials for that account. For an environment (``config/environments/<env>.yaml``) or the
delivery pipeline's tooling account (``config/pipeline.yaml``):

1. creates the customer managed policy ``<project>-cloudformation-execution`` from
   ``bootstrap/execution-policy.json`` or, when the document changed, makes the new document its default
   version (deleting the oldest other version when IAM's five are taken);
2. runs ``cdk bootstrap aws://<account>/<region> --template bootstrap/template.yaml
   --cloudformation-execution-policies <that policy>``, with ``--trust <tooling account>`` for an
   environment when ``config/pipeline.yaml`` exists, so the pipeline may publish and deploy there.

    mlops bootstrap --environment dev     (or: make bootstrap ENV=dev)
    mlops bootstrap --tooling             (or: make bootstrap-tooling)

--dry-run prints what it would do and calls nothing. Both files come from `make bootstrap-template`
(scripts/bootstrap_template.py and scripts/execution_policy.py, build-time tools that write them).

Exit status: the status of cdk bootstrap; 2 a bad command line or configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config import ENVIRONMENT_NAMES, ConfigError, PlatformConfig, load_config
from mlops_platform.cli import CommandError

ROOT = Path(__file__).resolve().parents[2]
HELP = "bootstrap one account with bootstrap/: the execution policy, then cdk bootstrap (--dry-run: print only)"
# What `make bootstrap-template` writes (scripts/bootstrap_template.py, scripts/execution_policy.py; a test
# keeps these names equal to theirs).
BOOTSTRAP_DIR = ROOT / "bootstrap"
TEMPLATE_FILE = "template.yaml"
POLICY_FILE = "execution-policy.json"
MAX_POLICY_VERSIONS = 5  # IAM keeps at most five versions of a managed policy


class BootstrapError(Exception):
    """Why the bootstrap cannot go on, in one sentence."""


@dataclass(frozen=True)
class Target:
    """One account and region to bootstrap, and the account its bootstrap roles trust besides its own."""

    source: str  # the config file that names it
    account: str
    region: str
    trust: str | None
    policy_name: str

    @property
    def policy_arn(self) -> str:
        # config allows commercial regions only: the partition is aws.
        return f"arn:aws:iam::{self.account}:policy/{self.policy_name}"

    def cdk_command(self) -> list[str]:
        command = [
            "cdk",
            "--no-notices",
            "bootstrap",
            f"aws://{self.account}/{self.region}",
            "--template",
            f"{BOOTSTRAP_DIR.name}/{TEMPLATE_FILE}",
            "--cloudformation-execution-policies",
            self.policy_arn,
        ]
        if self.trust:
            command += ["--trust", self.trust]
        return command


def policy_name(project: str) -> str:
    """Not under a prefix the policy itself may manage (the stacks' names), so it cannot rewrite itself."""
    return f"{project}-cloudformation-execution"


def environment_target(config: PlatformConfig, environment: str) -> Target:
    settings = config.environment(environment)
    pipeline = config.delivery_pipeline
    return Target(
        source=f"config/environments/{environment}.yaml",
        account=settings.account,
        region=settings.region,
        trust=pipeline.account if pipeline is not None and pipeline.account != settings.account else None,
        policy_name=policy_name(config.project.name),
    )


def tooling_target(config: PlatformConfig) -> Target:
    pipeline = config.delivery_pipeline
    if pipeline is None:
        raise BootstrapError("config/pipeline.yaml is absent, so there is no tooling account to bootstrap")
    return Target(
        source="config/pipeline.yaml",
        account=pipeline.account,
        region=pipeline.region,
        trust=None,
        policy_name=policy_name(config.project.name),
    )


def check_account(sts: Any, target: Target) -> None:
    account = sts.get_caller_identity()["Account"]
    if account != target.account:
        raise BootstrapError(
            f"the AWS credentials are for account {account}, but {target.source} names account {target.account}: "
            f"use credentials for {target.account}"
        )


def put_policy(iam: Any, target: Target, document: str) -> str:
    """Create the managed policy, or make ``document`` its default version; say which ("created", ...)."""
    try:
        policy = iam.get_policy(PolicyArn=target.policy_arn)["Policy"]
    except iam.exceptions.NoSuchEntityException:
        iam.create_policy(
            PolicyName=target.policy_name,
            PolicyDocument=document,
            Description="CloudFormation execution policy of the CDK bootstrap (bootstrap/execution-policy.json)",
        )
        return "created"
    current = iam.get_policy_version(PolicyArn=target.policy_arn, VersionId=policy["DefaultVersionId"])
    if _document(current["PolicyVersion"]["Document"]) == json.loads(document):
        return "unchanged"
    versions = iam.list_policy_versions(PolicyArn=target.policy_arn)["Versions"]
    if len(versions) >= MAX_POLICY_VERSIONS:
        oldest = min((v for v in versions if not v["IsDefaultVersion"]), key=lambda version: version["CreateDate"])
        iam.delete_policy_version(PolicyArn=target.policy_arn, VersionId=oldest["VersionId"])
    iam.create_policy_version(PolicyArn=target.policy_arn, PolicyDocument=document, SetAsDefault=True)
    return "updated"


def _document(value: Any) -> Any:
    """boto3 decodes policy documents into dicts; a client without that handler returns the JSON text."""
    return json.loads(value) if isinstance(value, str) else value


def read_files(directory: Path = BOOTSTRAP_DIR) -> str:
    """The policy document, compact; both files must exist (``make bootstrap-template`` writes them)."""
    for name in (TEMPLATE_FILE, POLICY_FILE):
        if not (directory / name).is_file():
            raise BootstrapError(f"{directory / name} is missing: run `make bootstrap-template`")
    document = json.loads((directory / POLICY_FILE).read_text(encoding="utf-8"))
    return json.dumps(document, separators=(",", ":"))  # as IAM receives it (execution_policy.compact)


def bootstrap(target: Target, *, session: Any, dry_run: bool, out: Any = None) -> int:
    out = out or sys.stdout
    document = read_files()
    command = target.cdk_command()
    if dry_run:
        print(
            f"create or update IAM policy {target.policy_arn} from {BOOTSTRAP_DIR.name}/{POLICY_FILE}",
            file=out,
        )
        print(shlex.join(command), file=out)
        return 0
    check_account(session.client("sts", region_name=target.region), target)
    outcome = put_policy(session.client("iam", region_name=target.region), target, document)
    print(f"IAM policy {target.policy_arn}: {outcome}", file=out)
    print(shlex.join(command), file=out, flush=True)
    env = {**os.environ, "PATH": f"{ROOT / 'node_modules' / '.bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode  # noqa: S603 (argv built above)


def configure(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--environment", choices=ENVIRONMENT_NAMES, help="an environment's account and region")
    which.add_argument("--tooling", action="store_true", help="the delivery pipeline's account (config/pipeline.yaml)")
    parser.add_argument("--dry-run", action="store_true", help="print what would run; call nothing")
    parser.add_argument(
        "--config-dir", type=Path, default=ROOT / "config", help="the configuration folder (default: config/)"
    )


def run(args: argparse.Namespace, *, session: Any = None) -> int:
    try:
        config = load_config(args.config_dir)
        target = tooling_target(config) if args.tooling else environment_target(config, args.environment)
        if session is None and not args.dry_run:
            import boto3

            session = boto3.session.Session()
        return bootstrap(target, session=session, dry_run=args.dry_run)
    except (ConfigError, BootstrapError) as error:
        raise CommandError(str(error)) from None
