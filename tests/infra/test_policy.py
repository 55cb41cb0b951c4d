"""Policy gates: cdk-nag (AwsSolutions) and cfn-lint report nothing unacknowledged, and a planted violation fails."""

from __future__ import annotations

import json
import sys

import aws_cdk as cdk
import pytest

from mlops_constructs.nag import acknowledge, render_for_nag
from scripts import policy_gate
from tests.conftest import make_synth


def test_cdk_nag_reports_no_unacknowledged_finding_on_any_stage(synthesized):
    report = json.loads((synthesized.outdir / "validation-report.json").read_text())

    assert policy_gate.nag_findings(synthesized.outdir) == []
    assert all(plugin["conclusion"] == "success" for plugin in report["pluginReports"])


def test_cfn_lint_reports_nothing_on_any_template(synthesized):
    templates = list(policy_gate.stack_templates(synthesized.outdir))

    assert len(templates) == 6
    assert policy_gate.lint_findings(synthesized.outdir) == []


def test_a_planted_violation_makes_make_synth_fail(tmp_path):
    outdir = tmp_path / "cdk.out"
    result = make_synth(f"CDK_OUT={outdir}", f"CDK_APP={sys.executable} tests/infra/planted_violation_app.py")

    assert result.returncode != 0, result.stdout + result.stderr
    # `cdk synth` itself succeeded (the assembly is there); the gate is what failed.
    assert (outdir / "manifest.json").is_file()
    assert "AwsSolutions-S1 at dev/Foundation/PlantedBucket/Resource" in result.stderr
    assert "AwsSolutions-S10 at dev/Foundation/PlantedBucket/Resource" in result.stderr
    assert "policy gate: 2 unacknowledged finding(s)" in result.stderr


def test_the_gate_fails_when_no_validation_report_was_written(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"version": "55.0.0", "artifacts": {}}))

    assert policy_gate.main([str(tmp_path)]) == 1


def test_the_gate_fails_on_a_cfn_lint_error(tmp_path):
    template = {
        "Resources": {
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"VisibilityTimeout": "a while"}},
        }
    }
    (tmp_path / "Broken.template.json").write_text(json.dumps(template))
    manifest = {
        "version": "55.0.0",
        "artifacts": {
            "Broken": {
                "type": "aws:cloudformation:stack",
                "environment": "aws://111111111111/eu-west-1",
                "properties": {"templateFile": "Broken.template.json"},
            }
        },
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "validation-report.json").write_text(json.dumps({"pluginReports": []}))

    findings = policy_gate.lint_findings(tmp_path)

    assert findings
    assert all(finding.startswith("cfn-lint: E") for finding in findings)
    assert policy_gate.main([str(tmp_path)]) == 1


def acknowledgments(synthesized) -> dict[str, dict[str, str]]:
    """Construct path -> {acknowledged finding: reason}, for the whole app."""
    app = synthesized.stages["dev"].node.root
    found: dict[str, dict[str, str]] = {}
    for construct in app.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                assert not isinstance(construct, cdk.Stack | cdk.Stage | cdk.App), construct.node.path
                found.setdefault(construct.node.path, {}).update(entry.data)
    return found


def test_every_acknowledgment_sits_on_one_resource_with_a_reason_and_is_known(synthesized):
    found = acknowledgments(synthesized)

    expected_by_environment = {
        "Foundation/DataLake/AccessLogsBucket": {"AwsSolutions-S1"},
        "Ingestion/Ingest/DeadLetterQueue": {"AwsSolutions-SQS3"},
        "Ingestion/Ingest/FunctionRole/DefaultPolicy": {
            "AwsSolutions-IAM5[Resource::*]",
            "AwsSolutions-IAM5[Resource::<IngestFunctionLogs3AD22061.Arn>:*]",
            "AwsSolutions-IAM5[Resource::{raw}/raw/*]",
            "AwsSolutions-IAM5[Resource::{raw}/quarantine/*]",
        },
    }
    for environment in ("dev", "staging", "prod"):
        raw = json.dumps(
            {
                "Fn::GetStackOutput": {
                    "StackName": f"{environment}-Foundation",
                    "Region": "eu-west-1",
                    "OutputName": "PublishOutputFnGetAttRawZoneBucketArnF1E28F1A",
                }
            },
            separators=(",", ":"),
        )
        for path, findings in expected_by_environment.items():
            acknowledged = found.pop(f"{environment}/{path}")
            assert {finding.split("::", 1)[1] for finding in acknowledged} == {f.format(raw=raw) for f in findings}
            assert all(len(reason) >= 20 for reason in acknowledged.values())
    assert found == {}, "an acknowledgment this test does not know: add it here, with its reason reviewed"


def test_an_acknowledgment_needs_a_real_reason(synthesized):
    with pytest.raises(ValueError, match="needs a reason"):
        acknowledge(synthesized.stages["dev"].foundation, "AwsSolutions-S1", "ok")


@pytest.mark.parametrize(
    ("resolved", "rendered"),
    [
        ({"Fn::Join": ["", [{"Fn::GetAtt": ["Logs", "Arn"]}, ":*"]]}, "<Logs.Arn>:*"),
        ({"Fn::Join": ["", [{"Fn::ImportValue": "dev-A:Export"}, "/raw/*"]]}, "dev-A:Export/raw/*"),
        ({"Ref": "Bucket"}, "<Bucket>"),
        (
            {"Fn::GetStackOutput": {"StackName": "s", "Region": "r", "OutputName": "o"}},
            '{"Fn::GetStackOutput":{"StackName":"s","Region":"r","OutputName":"o"}}',
        ),
    ],
)
def test_wildcard_findings_are_named_as_cdk_nag_renders_them(resolved, rendered):
    assert render_for_nag(resolved) == rendered
