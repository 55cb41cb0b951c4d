"""The policy gate lints each template once: clean verdicts are kept by content, the rest linted in parallel."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from cfnlint.api import ManualArgs, lint_file

from scripts import policy_gate
from tests.conftest import ROOT

CLEAN = {"Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"VisibilityTimeout": 30}}}}
BROKEN = {"Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"VisibilityTimeout": "a while"}}}}


def assembly(outdir: Path, templates: dict[str, tuple[dict, str]]) -> Path:
    """A cloud assembly of stacks named as given, each (template, region), with an empty nag report."""
    outdir.mkdir(parents=True, exist_ok=True)
    artifacts = {}
    for name, (template, region) in templates.items():
        (outdir / f"{name}.template.json").write_text(json.dumps(template, indent=1))
        artifacts[name] = {
            "type": "aws:cloudformation:stack",
            "environment": f"aws://111111111111/{region}",
            "properties": {"templateFile": f"{name}.template.json"},
        }
    (outdir / "manifest.json").write_text(json.dumps({"version": "55.0.0", "artifacts": artifacts}))
    (outdir / "validation-report.json").write_text(json.dumps({"pluginReports": []}))
    return outdir


@pytest.fixture(autouse=True)
def cache_beside_the_assembly(monkeypatch):
    """These tests look at the cache `make synth` uses, not the one the suite shares."""
    monkeypatch.delenv(policy_gate.CACHE_ENVIRONMENT_VARIABLE, raising=False)


def test_an_unchanged_template_that_linted_clean_is_not_linted_again(tmp_path, capsys):
    outdir = assembly(tmp_path / "cdk.out", {"A": (CLEAN, "eu-west-1"), "B": (CLEAN, "us-east-1")})

    assert policy_gate.main([str(outdir)]) == 0
    assert "(cfn-lint ran on 2; 0 unchanged since they last linted clean)" in capsys.readouterr().out
    assert policy_gate.main([str(outdir)]) == 0
    assert "(cfn-lint ran on 0; 2 unchanged since they last linted clean)" in capsys.readouterr().out

    changed = {"Resources": {**CLEAN["Resources"], "Other": CLEAN["Resources"]["Queue"]}}
    (outdir / "B.template.json").write_text(json.dumps(changed))
    assert policy_gate.main([str(outdir)]) == 0
    assert "(cfn-lint ran on 1; 1 unchanged since they last linted clean)" in capsys.readouterr().out
    assert len(list((outdir / policy_gate.CACHE_DIR).iterdir())) == 3


def test_a_template_with_findings_is_linted_and_reported_every_time(tmp_path, capsys):
    outdir = assembly(tmp_path / "cdk.out", {"Broken": (BROKEN, "eu-west-1")})

    for _ in range(2):
        assert policy_gate.main([str(outdir)]) == 1
        assert "cfn-lint: E3012 Broken.template.json:" in capsys.readouterr().err
    assert not (outdir / policy_gate.CACHE_DIR).exists()


def test_a_clean_verdict_holds_only_for_the_same_bytes_region_and_cfn_lint_version(tmp_path, monkeypatch):
    outdir = assembly(tmp_path, {"A": (CLEAN, "eu-west-1")})
    template = outdir / "A.template.json"
    key = policy_gate.verdict_key(template, "eu-west-1")

    assert policy_gate.verdict_key(template, "eu-west-1") == key
    assert policy_gate.verdict_key(template, "us-east-1") != key
    template.write_text(template.read_text() + " ")
    assert policy_gate.verdict_key(template, "eu-west-1") != key
    template.write_text(json.dumps(CLEAN, indent=1))
    monkeypatch.setattr(policy_gate, "version", lambda package: "0.0.1")
    assert policy_gate.verdict_key(template, "eu-west-1") != key


def test_a_clean_verdict_holds_across_asset_hashes_only(tmp_path):
    """An edit of packaged code changes only asset hashes (S3 keys, image tags): cfn-lint finds the same."""
    function = {
        "Type": "AWS::Lambda::Function",
        "Properties": {
            "Code": {"S3Bucket": "assets", "S3Key": f"{'a' * 64}.zip"},
            "Handler": "handler.handler",
            "Role": "arn:aws:iam::111111111111:role/r",
            "Runtime": "python3.13",
        },
    }
    outdir = assembly(tmp_path, {"A": ({"Resources": {"Function": function}}, "eu-west-1")})
    template = outdir / "A.template.json"
    key = policy_gate.verdict_key(template, "eu-west-1")

    template.write_text(template.read_text().replace("a" * 64, "0123456789abcdef" * 4))
    assert policy_gate.verdict_key(template, "eu-west-1") == key
    template.write_text(template.read_text().replace("handler.handler", "handler.main"))
    assert policy_gate.verdict_key(template, "eu-west-1") != key
    template.write_text(template.read_text().replace("0123456789abcdef" * 4, "0123456789abcdef" * 3))
    assert policy_gate.verdict_key(template, "eu-west-1") != key  # not an asset hash: a change like any other


def test_templates_linted_in_parallel_get_the_findings_cfn_lint_gives_each_alone(tmp_path):
    templates = {
        "CleanEu": (CLEAN, "eu-west-1"),
        "BrokenEu": (BROKEN, "eu-west-1"),
        "BrokenUs": (BROKEN, "us-east-1"),
    }
    outdir = assembly(tmp_path, templates)
    alone = [
        f"cfn-lint: {match.rule.id} {name}.template.json:{match.linenumber}: {match.message}"
        for name, (_, region) in templates.items()
        for match in lint_file(outdir / f"{name}.template.json", config=ManualArgs(regions=[region]))
    ]

    findings, linted = policy_gate.lint_report(outdir)

    assert linted == 3 >= policy_gate.PARALLEL_FROM
    assert len(alone) == 2
    assert sorted(findings) == sorted(alone)


def test_make_synth_empties_the_assembly_folder_but_keeps_the_gates_verdicts(tmp_path):
    """An app that fails at once: the folder is emptied before the CLI runs it, the verdicts stay."""
    outdir = tmp_path / "cdk.out"
    (outdir / "assembly-gone").mkdir(parents=True)
    (outdir / "manifest.json").write_text("{}")
    (outdir / policy_gate.CACHE_DIR).mkdir()
    (outdir / policy_gate.CACHE_DIR / "0123abcd").touch()

    result = subprocess.run(
        ["make", "--no-print-directory", "synth", f"CDK_OUT={outdir}", "CDK_APP=false"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "MAKEFLAGS": ""},
        check=False,
    )

    assert result.returncode != 0  # the app failed, so no gate ran
    assert "policy gate" not in result.stdout + result.stderr
    assert sorted(path.name for path in outdir.iterdir()) == [policy_gate.CACHE_DIR]
    assert (outdir / policy_gate.CACHE_DIR / "0123abcd").is_file()
