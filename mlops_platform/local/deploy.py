"""Bootstrap the emulated account and deploy a synthesized environment with the pinned CDK CLI.

The same steps as in AWS: ``make bootstrap`` (scripts/bootstrap.py) creates the CloudFormation
execution policy from ``bootstrap/execution-policy.json`` and runs ``cdk bootstrap`` with the
project's ``bootstrap/template.yaml``; ``cdk deploy`` then publishes the assets and deploys every
stack through change sets. Only the endpoint differs (``AWS_ENDPOINT_URL``), and ``CDK_DOCKER``
names the stand-in in ``bin/docker`` (no Docker daemon).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

DOCKER_STANDIN = Path(__file__).resolve().parent / "bin" / "docker"
BOOTSTRAP_TEMPLATE = Path("bootstrap") / "template.yaml"
EXECUTION_POLICY = Path("bootstrap") / "execution-policy.json"
DEPLOY_TIMEOUT_SECONDS = 600


class DeployError(Exception):
    """Why the bootstrap or the deploy failed, in one sentence (the CLI's output is in the log)."""


@dataclass(frozen=True)
class Stack:
    """One stack of the synthesized assembly."""

    artifact: str  # e.g. devFoundation3D911934
    name: str  # e.g. dev-Foundation
    path: str  # e.g. dev/Foundation (what `cdk deploy` selects)
    account: str
    region: str


def assembly_stacks(assembly: Path, environment: str) -> list[Stack]:
    """The environment's stacks, read from the cloud assembly's manifests (the nested stage's)."""
    manifest = assembly / "manifest.json"
    if not manifest.is_file():
        raise DeployError(f"{assembly} holds no cloud assembly (no manifest.json): synthesize {environment} first")
    stage = json.loads(manifest.read_text(encoding="utf-8"))["artifacts"].get(f"assembly-{environment}")
    if stage is None:
        raise DeployError(
            f"the assembly in {assembly} has no {environment} stage: synthesize it with -c environments={environment}"
        )
    nested = assembly / stage["properties"]["directoryName"] / "manifest.json"
    stacks = []
    for artifact, entry in json.loads(nested.read_text(encoding="utf-8"))["artifacts"].items():
        if entry["type"] == "aws:cloudformation:stack":
            account, region = entry["environment"].removeprefix("aws://").split("/")
            path = entry.get("displayName") or artifact
            stacks.append(Stack(artifact, entry["properties"]["stackName"], path, account, region))
    return stacks


def cdk_command(root: Path) -> list[str]:
    """The pinned CLI that `make setup` installs (package.json), run by the project's own Node."""
    cli = root / "node_modules" / ".bin" / "cdk"
    if cli.is_file():
        return [str(cli), "--no-notices"]
    found = shutil.which("cdk")
    if found is None:
        raise DeployError(f"{cli} is missing: run `make setup` (it installs the pinned CDK CLI)")
    return [found, "--no-notices"]


def cli_environment(emulator_environment: Mapping[str, str], root: Path) -> dict[str, str]:
    return {
        **os.environ,
        **emulator_environment,
        "CDK_DOCKER": str(DOCKER_STANDIN),
        "CDK_DISABLE_CLI_TELEMETRY": "true",
        "CDK_DISABLE_VERSION_CHECK": "true",
        "PATH": f"{root / 'node_modules' / '.bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def _run(command: list[str], *, root: Path, environment: Mapping[str, str], log: IO[str], what: str) -> None:
    log.write(f"$ {' '.join(command)}\n")
    log.flush()
    try:
        done = subprocess.run(  # noqa: S603 - argv built here
            command, cwd=root, env=dict(environment), stdout=log, stderr=subprocess.STDOUT,
            timeout=DEPLOY_TIMEOUT_SECONDS, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as error:
        raise DeployError(f"{what} took over {DEPLOY_TIMEOUT_SECONDS} s (see {log.name})") from error
    if done.returncode != 0:
        raise DeployError(f"{what} exited with {done.returncode} (see {log.name})")


def policy_name(project: str) -> str:
    """The name scripts/bootstrap.py gives the execution policy."""
    return f"{project}-cloudformation-execution"


def bootstrap(
    stack: Stack,
    assembly: Path,
    *,
    root: Path,
    project: str,
    emulator_environment: Mapping[str, str],
    log: IO[str],
    iam: Any,
) -> None:
    """What ``make bootstrap ENV=<env>`` does, against the emulator.

    ``--app`` names the synthesized assembly: without it the CLI synthesizes every environment
    again (cdk.json's app) before bootstrapping, about a minute here.
    """
    document = json.loads((root / EXECUTION_POLICY).read_text(encoding="utf-8"))
    policy = iam.create_policy(
        PolicyName=policy_name(project), PolicyDocument=json.dumps(document, separators=(",", ":"))
    )
    command = [
        *cdk_command(root),
        "bootstrap", f"aws://{stack.account}/{stack.region}", "--app", str(assembly),
        "--template", str(BOOTSTRAP_TEMPLATE),
        "--cloudformation-execution-policies", policy["Policy"]["Arn"],
    ]  # fmt: skip
    _run(command, root=root, environment=cli_environment(emulator_environment, root), log=log, what="cdk bootstrap")


def deploy(
    assembly: Path, environment: str, *, root: Path, emulator_environment: Mapping[str, str], log: IO[str]
) -> None:
    """``cdk deploy '<environment>/*'`` from the synthesized assembly, unattended."""
    command = [
        *cdk_command(root),
        "deploy", f"{environment}/*", "--app", str(assembly),
        "--require-approval", "never", "--progress", "events", "--ci",
    ]  # fmt: skip
    _run(command, root=root, environment=cli_environment(emulator_environment, root), log=log, what="cdk deploy")


def stack_statuses(stacks: list[Stack], cloudformation: Any) -> dict[str, str]:
    """Each stack's status in the emulator (DOES_NOT_EXIST when it was never created)."""
    statuses = {}
    for stack in stacks:
        try:
            statuses[stack.name] = cloudformation.describe_stacks(StackName=stack.name)["Stacks"][0]["StackStatus"]
        except cloudformation.exceptions.ClientError:
            statuses[stack.name] = "DOES_NOT_EXIST"
    return statuses


def stack_failures(stacks: list[Stack], cloudformation: Any) -> dict[str, str]:
    """Why each stack that did not complete failed: its first *_FAILED event's reason."""
    failures = {}
    for stack in stacks:
        try:
            events = cloudformation.describe_stack_events(StackName=stack.name)["StackEvents"]
        except cloudformation.exceptions.ClientError:
            continue
        reasons = [e.get("ResourceStatusReason", "") for e in events if e["ResourceStatus"].endswith("_FAILED")]
        if reasons:
            failures[stack.name] = reasons[-1]
    return failures
