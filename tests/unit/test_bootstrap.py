"""`make bootstrap`: the execution policy created or updated in IAM (moto), then `cdk bootstrap` with the project's
template for the account and region config names; the README's commands are the ones that run."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess

import boto3
import pytest
from moto import mock_aws

from config import load_config
from mlops_platform.cli import bootstrap, build_parser
from tests.conftest import ROOT, mlops

ACCOUNT = "123456789012"  # moto's
DOCUMENT = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sqs:*", "Resource": "*"}]},
    separators=(",", ":"),
)


def target(account: str = ACCOUNT) -> bootstrap.Target:
    return bootstrap.Target(
        source="config/environments/dev.yaml",
        account=account,
        region="eu-west-1",
        trust=None,
        policy_name=bootstrap.policy_name("mlops"),
    )


def document_with(action: str) -> str:
    return DOCUMENT.replace("sqs:*", action)


@pytest.fixture
def iam():
    with mock_aws():
        yield boto3.client("iam", region_name="eu-west-1")


def default_document(iam, arn: str) -> dict:
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    return iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]


def test_put_policy_creates_the_policy_then_leaves_an_unchanged_document_alone(iam):
    assert bootstrap.put_policy(iam, target(), DOCUMENT) == "created"
    assert bootstrap.put_policy(iam, target(), DOCUMENT) == "unchanged"

    assert default_document(iam, target().policy_arn) == json.loads(DOCUMENT)
    assert len(iam.list_policy_versions(PolicyArn=target().policy_arn)["Versions"]) == 1


def test_put_policy_makes_a_changed_document_the_default_version(iam):
    bootstrap.put_policy(iam, target(), DOCUMENT)

    assert bootstrap.put_policy(iam, target(), document_with("sns:*")) == "updated"

    assert default_document(iam, target().policy_arn) == json.loads(document_with("sns:*"))


def test_put_policy_deletes_the_oldest_version_when_iam_holds_five(iam):
    bootstrap.put_policy(iam, target(), document_with("sqs:*"))
    for action in ("sns:*", "s3:*", "kms:*", "logs:*"):
        bootstrap.put_policy(iam, target(), document_with(action))
    versions = iam.list_policy_versions(PolicyArn=target().policy_arn)["Versions"]
    assert len(versions) == 5

    assert bootstrap.put_policy(iam, target(), document_with("lambda:*")) == "updated"

    after = iam.list_policy_versions(PolicyArn=target().policy_arn)["Versions"]
    assert len(after) == 5
    assert "v1" not in {version["VersionId"] for version in after}
    assert default_document(iam, target().policy_arn) == json.loads(document_with("lambda:*"))


def test_credentials_of_another_account_stop_the_bootstrap_before_anything_changes():
    with mock_aws():
        session = boto3.session.Session(region_name="eu-west-1")
        out = io.StringIO()

        with pytest.raises(bootstrap.BootstrapError) as error:
            bootstrap.bootstrap(target("111111111111"), session=session, dry_run=False, out=out)

        assert str(error.value) == (
            f"the AWS credentials are for account {ACCOUNT}, but config/environments/dev.yaml names account "
            "111111111111: use credentials for 111111111111"
        )
        assert session.client("iam").list_policies(Scope="Local")["Policies"] == []
        assert out.getvalue() == ""


def test_the_shipped_policy_document_is_accepted_by_iam(iam):
    """moto validates the grammar of a policy document as IAM does (actions, resources, conditions)."""
    document = bootstrap.read_files()

    assert bootstrap.put_policy(iam, target(), document) == "created"


def test_an_environment_trusts_the_tooling_account_while_the_pipeline_is_configured(tmp_path):
    config = load_config(ROOT / "config")
    assert config.delivery_pipeline is not None

    with_pipeline = bootstrap.environment_target(config, "staging")
    shutil.copytree(ROOT / "config", tmp_path / "config")
    (tmp_path / "config" / "pipeline.yaml").unlink()
    without_pipeline = bootstrap.environment_target(load_config(tmp_path / "config"), "staging")

    assert with_pipeline.trust == config.delivery_pipeline.account
    assert with_pipeline.cdk_command()[-2:] == ["--trust", config.delivery_pipeline.account]
    assert without_pipeline.trust is None
    assert "--trust" not in without_pipeline.cdk_command()
    # Both bootstrap with the project's template and execution policy, never CDK's defaults.
    for each in (with_pipeline, without_pipeline):
        command = each.cdk_command()
        assert command[command.index("--template") + 1] == "bootstrap/template.yaml"
        assert command[command.index("--cloudformation-execution-policies") + 1] == (
            f"arn:aws:iam::{config.environment('staging').account}:policy/mlops-cloudformation-execution"
        )


def test_without_a_pipeline_there_is_no_tooling_account_to_bootstrap(tmp_path, capsys):
    shutil.copytree(ROOT / "config", tmp_path / "config")
    (tmp_path / "config" / "pipeline.yaml").unlink()

    assert mlops(["bootstrap", "--tooling", "--dry-run", "--config-dir", str(tmp_path / "config")]) == 2
    assert capsys.readouterr().err == (
        "mlops bootstrap: config/pipeline.yaml is absent, so there is no tooling account to bootstrap\n"
    )


# ---- the make targets and the README ----


def run_make(*arguments: str) -> subprocess.CompletedProcess[str]:
    """`make -n`: prints the recipe and runs nothing (no credentials are needed, or used)."""
    return subprocess.run(
        ["make", "--no-print-directory", "-n", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "MAKEFLAGS": ""},
        check=False,
    )


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(f"\n### {title}\n")
    end = text.find("\n### ", start + 1)
    return text[start:end]


def make_lines(text: str) -> list[str]:
    """Every `make bootstrap…` command in the text's shell blocks, without its comment."""
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL)
    return [
        line.split("#")[0].strip()
        for block in blocks
        for line in block.splitlines()
        if line.strip().startswith("make bootstrap")
    ]


def test_the_readme_bootstraps_every_account_through_the_make_targets():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = make_lines(readme)

    assert "make bootstrap ENV=dev" in commands
    assert "make bootstrap-tooling" in commands
    assert "make bootstrap-template" in commands
    assert "AdministratorAccess" not in "".join(re.findall(r"```bash\n(.*?)```", readme, flags=re.DOTALL))
    assert "cdk bootstrap" not in "".join(re.findall(r"```bash\n(.*?)```", readme, flags=re.DOTALL))
    for command in commands:
        result = run_make(*command.split()[1:])
        assert result.returncode == 0, result.stderr
        if command.startswith("make bootstrap-template"):
            assert "-m scripts.bootstrap_template" in result.stdout
            continue
        script = next(line for line in result.stdout.splitlines() if "mlops bootstrap " in line)
        arguments = script.split("mlops bootstrap ", 1)[1].split()
        assert build_parser("bootstrap").parse_args(["bootstrap", *arguments])  # the recipe's are the command's
        if "ENV=" in command:
            assert arguments[:2] == ["--environment", command.split("ENV=")[1].split()[0]]
        if "DRY_RUN=1" in command:
            assert "--dry-run" in arguments
        else:
            assert "--dry-run" not in arguments


@pytest.mark.parametrize("arguments", [["--environment", "dev"], ["--tooling"]])
def test_the_readme_shows_what_the_bootstrap_runs_for_the_shipped_config(arguments, capsys):
    assert mlops(["bootstrap", *arguments, "--dry-run"]) == 0
    printed = capsys.readouterr().out.splitlines()

    section = readme_section("Bootstrapping")
    # The README wraps the long command with backslashes; compare it joined.
    shown = re.sub(r" \\\n\s+", " ", section)
    assert len(printed) == 2
    for line in printed:
        assert line in shown
    assert printed[1].startswith("cdk --no-notices bootstrap ")


def test_make_bootstrap_without_an_environment_prints_its_usage():
    result = subprocess.run(
        ["make", "--no-print-directory", "bootstrap"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "MAKEFLAGS": ""},
        check=False,
    )

    assert result.returncode == 2
    assert "usage: make bootstrap ENV=dev|staging|prod" in result.stderr


def test_the_command_reads_the_files_make_bootstrap_template_writes():
    from scripts import bootstrap_template, execution_policy

    assert bootstrap.BOOTSTRAP_DIR == bootstrap_template.BOOTSTRAP_DIR
    assert bootstrap.TEMPLATE_FILE == bootstrap_template.TEMPLATE_FILE
    assert bootstrap.POLICY_FILE == execution_policy.POLICY_FILE
    document = json.loads((bootstrap.BOOTSTRAP_DIR / bootstrap.POLICY_FILE).read_text())
    assert bootstrap.read_files() == execution_policy.compact(document)
