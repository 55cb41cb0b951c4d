"""The operator command `mlops`: every subcommand answers --help through the real entry point, and refuses
bad input with one sentence and a non-zero exit status, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_platform.cli import COMMANDS, build_parser
from tests.conftest import ROOT

# Each subcommand with input it must refuse (checked before any AWS call), and the sentence it says.
BAD_INPUT = {
    "promote": (
        ["--environment", "dev", "--endpoint", "example", "--variant", "Champion", "--model-package", "x"],
        "mlops promote: the example endpoint serves the example model shipped with the repository",
    ),
    "promote-challenger": (
        ["--environment", "moon", "--endpoint", "churn"],
        "mlops promote-challenger: Argument --environment: invalid choice: 'moon'",
    ),
    "rollback": (
        ["--environment", "dev", "--endpoint", "nowhere", "--variant", "Champion"],
        "mlops rollback: environment dev has no endpoint 'nowhere'; allowed:",
    ),
    "progress": (
        ["run-1", "--table", "t", "--top", "0"],
        "mlops progress: --top has value 0; allowed: a whole number of at least 1",
    ),
    "run-report": (["run-1"], "mlops run-report: name the run ledger: --table NAME, --stack <env>-Foundation or"),
    "record-variants": (
        ["--environment", "dev", "--config-dir", "/nonexistent"],
        "mlops record-variants: /nonexistent/project.yaml",
    ),
    "check-deploy": (
        ["--environment", "qa", "--stack", "s", "--prefix", "p", "--region", "eu-west-1"],
        "mlops check-deploy: Argument --environment: invalid choice: 'qa' (choose from 'dev', 'staging', 'prod').",
    ),
    "bootstrap": (["--tooling", "--dry-run", "--config-dir", "/nonexistent"], "mlops bootstrap: "),
    "smoke-test": (["--api-url", "http://example.com"], "mlops smoke-test: the scoring API URL (--api-url or"),
    "upload": (
        ["/nonexistent.csv", "--tenant", "example", "--environment", "dev"],
        "mlops upload: /nonexistent.csv is not a file",
    ),
    "local": (["--assembly", "/nonexistent"], "mlops local: /nonexistent holds no cloud assembly (no manifest.json)"),
    "train-local": (
        ["--tenant", "config/pipelines/example.yaml", "--data", "/nonexistent.csv"],
        "mlops train-local: --data /nonexistent.csv is not a file",
    ),
    "serve-local": (["--model", "/nonexistent.tar.gz"], "mlops serve-local: --model /nonexistent.tar.gz is not a file"),
}


def mlops(*argv: str, program: tuple[str, ...] = (sys.executable, "-m", "mlops_platform.cli")):
    environment = {
        **os.environ,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        environment.pop(name, None)
    return subprocess.run(
        [*program, *argv], cwd=ROOT, capture_output=True, text=True, env=environment, check=False, timeout=120
    )


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_subcommand_has_help_through_the_entry_point(command):
    done = mlops(command, "--help")

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: mlops {command} ")
    assert done.stderr == ""


def test_mlops_help_lists_every_subcommand_with_its_one_line_help_in_process_too():
    """``mlops --help`` reads each HELP from the module's file, whatever loader an import hook puts in front
    (pytest's assertion rewriter claims modules named like tests: ``smoke_test.py`` once did)."""
    parser = build_parser()
    choices = next(action for action in parser._actions if action.dest == "command")._choices_actions

    helps = {choice.dest: choice.help for choice in choices}

    assert list(helps) == list(COMMANDS)
    assert all(helps.values()), helps


def test_the_installed_entry_point_is_the_package_s_command():
    """``make setup`` installs ``.venv/bin/mlops`` (pyproject.toml's entry point, editable): it runs
    ``mlops_platform.cli:main`` of the checkout the virtual environment was made in."""
    from importlib.metadata import entry_points

    installed = Path(sys.executable).parent / "mlops"
    assert installed.exists(), f"{installed} is missing: run make setup (it installs the entry point)"
    [entry] = [point for point in entry_points(group="console_scripts") if point.name == "mlops"]

    done = mlops("--help", program=(str(installed),))

    assert entry.value == "mlops_platform.cli:main"
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: mlops [-h] <command> ...")
    checkout = subprocess.run(
        [str(installed.parent / "python"), "-c", "import mlops_platform; print(mlops_platform.__file__)"],
        cwd="/",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if Path(checkout).resolve().parent.parent == ROOT:  # a worktree with a shared .venv runs its own checkout
        for command in COMMANDS:
            assert f"    {command}" in done.stdout


def test_every_subcommand_has_a_bad_input_case():
    """A new entry of COMMANDS (upload, train-local, serve-local, ...) adds its line to BAD_INPUT."""
    assert set(BAD_INPUT) == set(COMMANDS)


@pytest.mark.parametrize("command", sorted(BAD_INPUT))
def test_bad_input_is_refused_with_one_sentence_and_no_traceback(command):
    arguments, sentence = BAD_INPUT[command]

    done = mlops(command, *arguments)

    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith(sentence), line


# What `pip install boto3 PyYAML` brings (the pipeline's builds install nothing else), beside the standard library.
PIPELINE_BUILD_MODULES = {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six", "yaml"}


def test_the_pipeline_s_deploy_check_and_smoke_test_need_only_boto3_and_pyyaml():
    """The delivery pipeline's builds install boto3 and PyYAML alone (SMOKE_TEST_REQUIREMENTS), then run
    ``python -m mlops_platform.cli check-deploy`` (every value given) and ``smoke-test``."""
    blocker = (
        "import sys\n"
        f"allowed = {sorted(PIPELINE_BUILD_MODULES | {'mlops_platform'})!r}\n"
        "class Absent:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        top = name.split('.')[0]\n"
        "        if top not in allowed and top not in sys.stdlib_module_names and not top.startswith('_'):\n"
        "            raise ModuleNotFoundError(f'{name} is not installed in the build', name=name)\n"
        "sys.meta_path.insert(0, Absent())\n"
        "import mlops_platform.cli.check_deploy, mlops_platform.cli.smoke\n"
        "from mlops_platform.cli import main\n"
        "for command in ('check-deploy', 'smoke-test'):\n"
        "    try:\n"
        "        main([command, '--help'])\n"
        "    except SystemExit as done:\n"
        "        assert done.code == 0, command\n"
    )

    done = subprocess.run([sys.executable, "-c", blocker], cwd=ROOT, capture_output=True, text=True, check=False)

    assert done.returncode == 0, done.stderr
