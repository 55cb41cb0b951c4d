"""Write the project's CDK bootstrap files. Run `make bootstrap-template` after a CDK CLI upgrade or a stack change.

``bootstrap/template.yaml`` is the pinned CLI's bootstrap template (``cdk bootstrap --show-template``)
with ONE statement added to the deploy role (``DeploymentActionRole``): ``ssm:GetParameters`` on the
model pointers, ``/<project>/*/models/*``. The Serving stack reads each pointer as an
``AWS::SSM::Parameter::Value<String>`` parameter. CloudFormation resolves such a parameter with the
caller's rights, at every change set and update (AWS CloudFormation User Guide, "Specify existing
resources at runtime with CloudFormation-supplied parameter types":
https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-supplied-parameter-types.html),
and the caller is the deploy role: CDK's template lets it read only the bootstrap version parameter,
so the change set fails with "AccessDenied. User doesn't have permission to call ssm:GetParameters"
(aws/aws-cdk#20959). That error names the batch action: CloudFormation calls ``GetParameters``, so the
statement grants that one (CDK's own ``ReadVersion`` adds ``GetParameter`` for the CLI, which reads the
version parameter itself). The same role runs the pipeline's deploy stages and the approval workflow's
change sets; the workflow's session policy can only narrow it.

``bootstrap/execution-policy.json`` is the CloudFormation execution policy (scripts/execution_policy.py),
derived from the synthesized templates in ``--assembly`` (``make synth`` writes cdk.out/).

    python -m scripts.bootstrap_template --assembly cdk.out     (or: make bootstrap-template)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from config import ConfigError, load_config
from scripts import execution_policy

ROOT = Path(__file__).resolve().parent.parent
BOOTSTRAP_DIR = ROOT / "bootstrap"
TEMPLATE_FILE = "template.yaml"
DEPLOY_ROLE = "DeploymentActionRole"
ANCHOR_SID = "ReadVersion"  # CDK's statement that reads the bootstrap version; ours follows it
POINTERS_SID = "ReadModelPointers"
# Hide every credential source from the CLI, as the Makefile's OFFLINE does: --show-template needs none.
HIDDEN = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
)


class BootstrapTemplateError(Exception):
    """CDK's template is not shaped as this script expects (a CLI upgrade changed it): one sentence."""


def pinned_cli_version() -> str:
    package = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))
    return str(package["devDependencies"]["aws-cdk"])


def cdk_bootstrap_template() -> str:
    """``cdk bootstrap --show-template`` of the pinned CLI (node_modules), offline: no credentials, no notices."""
    bin_dir = ROOT / "node_modules" / ".bin"
    env = {key: value for key, value in os.environ.items() if key not in HIDDEN}
    env.update(
        {
            "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "CDK_DISABLE_CLI_TELEMETRY": "true",
            "CDK_DISABLE_VERSION_CHECK": "true",
        }
    )
    result = subprocess.run(  # noqa: S603 (a fixed argv: the project's own CLI)
        [str(bin_dir / "cdk"), "--no-notices", "bootstrap", "--show-template"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or not result.stdout.strip():
        raise BootstrapTemplateError(
            f"`cdk bootstrap --show-template` exited {result.returncode}: {result.stderr.strip()[-500:]}"
        )
    return result.stdout


def pointer_parameter_arn(project: str) -> str:
    """Every model pointer of every environment of this project: ``/<project>/<env>/models/<endpoint>/<variant>``."""
    return f"arn:${{AWS::Partition}}:ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter/{project}/*/models/*"


def pointer_statement(project: str) -> dict[str, Any]:
    return {
        "Sid": POINTERS_SID,
        "Effect": "Allow",
        "Action": ["ssm:GetParameters"],
        "Resource": [{"Fn::Sub": pointer_parameter_arn(project)}],
    }


def _statement_lines(project: str, indent: int) -> list[str]:
    pad = " " * indent
    return [
        f"{pad}# Added for this project (scripts/bootstrap_template.py): CloudFormation resolves the model\n",
        f"{pad}# pointers, AWS::SSM::Parameter::Value<String> parameters of the Serving stack, with this role's\n",
        f"{pad}# rights at every change set (https://github.com/aws/aws-cdk/issues/20959).\n",
        f"{pad}- Sid: {POINTERS_SID}\n",
        f"{pad}  Effect: Allow\n",
        f"{pad}  Action:\n",
        f"{pad}    - ssm:GetParameters\n",
        f"{pad}  Resource:\n",
        f"{pad}    - Fn::Sub: {pointer_parameter_arn(project)}\n",
    ]


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _find(lines: list[str], text: str, start: int, what: str) -> int:
    for index in range(start, len(lines)):
        if lines[index].strip() == text:
            return index
    raise BootstrapTemplateError(
        f"CDK's bootstrap template has no {what} ({text!r}); review scripts/bootstrap_template.py"
    )


def header(cli_version: str) -> str:
    return (
        f"# This project's CDK bootstrap template: CDK's own for the pinned CLI (aws-cdk {cli_version},\n"
        "# `cdk bootstrap --show-template`) with one statement added to the deploy role, "
        f"{POINTERS_SID}.\n"
        "# Generated by `make bootstrap-template` (scripts/bootstrap_template.py): do not edit. Bootstrap an\n"
        '# account with `make bootstrap ENV=<env>` (README.md, "Bootstrapping").\n'
    )


def with_pointer_statement(cdk_template: str, project: str, cli_version: str) -> str:
    """CDK's template text, and the pointer statement after ReadVersion in the deploy role's policy.

    Inserted as text, so the rest stays byte for byte what the CLI printed (a diff shows one statement).
    """
    lines = cdk_template.splitlines(keepends=True)
    role = _find(lines, f"{DEPLOY_ROLE}:", 0, f"{DEPLOY_ROLE} resource")
    anchor = _find(lines, f"- Sid: {ANCHOR_SID}", role, f"{ANCHOR_SID} statement in {DEPLOY_ROLE}")
    indent = _indent(lines[anchor])
    end = anchor + 1
    while end < len(lines) and lines[end].strip() and _indent(lines[end]) > indent:
        end += 1
    text = header(cli_version) + "".join(lines[:end] + _statement_lines(project, indent) + lines[end:])
    check_only_the_pointer_statement_added(cdk_template, text, project)
    return text


def deploy_role_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    """The statements of the deploy role's inline policy (CDK's template has one, ``default``)."""
    policies = template["Resources"][DEPLOY_ROLE]["Properties"]["Policies"]
    if len(policies) != 1:
        raise BootstrapTemplateError(f"{DEPLOY_ROLE} has {len(policies)} inline policies; CDK's template has one")
    return list(policies[0]["PolicyDocument"]["Statement"])


def check_only_the_pointer_statement_added(cdk_template: str, ours: str, project: str) -> None:
    """Parsed, ``ours`` is CDK's template plus the pointer statement, right after ReadVersion."""
    theirs_parsed = yaml.safe_load(cdk_template)
    ours_parsed = yaml.safe_load(ours)
    statements = deploy_role_statements(ours_parsed)
    added = [index for index, statement in enumerate(statements) if statement.get("Sid") == POINTERS_SID]
    if len(added) != 1 or statements[added[0]] != pointer_statement(project):
        raise BootstrapTemplateError(f"{DEPLOY_ROLE} must hold exactly one {POINTERS_SID} statement")
    if added[0] == 0 or statements[added[0] - 1].get("Sid") != ANCHOR_SID:
        raise BootstrapTemplateError(f"{POINTERS_SID} must follow {ANCHOR_SID} in {DEPLOY_ROLE}")
    del statements[added[0]]
    ours_parsed["Resources"][DEPLOY_ROLE]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"] = statements
    if ours_parsed != theirs_parsed:
        raise BootstrapTemplateError("the template differs from CDK's by more than the pointer statement")


def write(assembly: Path, output: Path, project: str) -> list[Path]:
    template = with_pointer_statement(cdk_bootstrap_template(), project, pinned_cli_version())
    policy = execution_policy.derive(assembly, project)
    output.mkdir(parents=True, exist_ok=True)
    template_path = output / TEMPLATE_FILE
    policy_path = output / execution_policy.POLICY_FILE
    template_path.write_text(template, encoding="utf-8")
    policy_path.write_text(execution_policy.render(policy), encoding="utf-8")
    return [template_path, policy_path]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assembly", type=Path, default=ROOT / "cdk.out", help="a cloud assembly (make synth)")
    parser.add_argument("--output", type=Path, default=BOOTSTRAP_DIR)
    parser.add_argument("--config-dir", type=Path, default=ROOT / "config")
    args = parser.parse_args(argv)
    if not (args.assembly / "manifest.json").is_file():
        print(f"error: {args.assembly} holds no cloud assembly; run `make synth` first", file=sys.stderr)
        return 2
    try:
        project = load_config(args.config_dir).project.name
        written = write(args.assembly, args.output, project)
    except (ConfigError, BootstrapTemplateError, execution_policy.ExecutionPolicyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
