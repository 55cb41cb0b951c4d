"""Fail on any unacknowledged cdk-nag finding or cfn-lint match in a synthesized cloud assembly.

``cdk synth`` exits 0 even when cdk-nag reports violations; they only land in
``validation-report.json``. ``make synth`` runs this gate after synth, and the tests run it too.

    python -m scripts.policy_gate cdk.out
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

from cfnlint.api import ManualArgs, lint_file

REPORT = "validation-report.json"


def nag_findings(outdir: Path) -> list[str]:
    """One line per unacknowledged finding; a missing report is a finding too (the checks did not run)."""
    report_path = outdir / REPORT
    if not report_path.is_file():
        return [f"{report_path}: no validation report; synthesize with the AwsSolutions checks (app.py adds them)"]
    report = json.loads(report_path.read_text())
    findings = []
    for plugin in report.get("pluginReports", []):
        for violation in plugin.get("violations", []):
            for construct in violation.get("violatingConstructs", []):
                findings.append(
                    f"{plugin['pluginName']}: {violation['ruleName']} at {construct['constructPath']}: "
                    f"{violation['description']}"
                )
        if plugin.get("conclusion") != "success" and not plugin.get("violations"):
            findings.append(f"{plugin['pluginName']}: concluded {plugin.get('conclusion')!r} without violations")
    return findings


def stack_templates(outdir: Path) -> Iterator[tuple[Path, str]]:
    """(template path, region) of every stack in the assembly and its nested (Stage) assemblies."""
    manifest = json.loads((outdir / "manifest.json").read_text())
    for artifact in manifest.get("artifacts", {}).values():
        properties = artifact.get("properties", {})
        if artifact["type"] == "aws:cloudformation:stack":
            region = artifact["environment"].rsplit("/", 1)[-1]
            yield outdir / properties["templateFile"], region
        elif artifact["type"] == "cdk:cloud-assembly":
            yield from stack_templates(outdir / properties["directoryName"])


def lint_findings(outdir: Path) -> list[str]:
    findings = []
    for template, region in stack_templates(outdir):
        for match in lint_file(template, config=ManualArgs(regions=[region])):
            findings.append(f"cfn-lint: {match.rule.id} {template.name}:{match.linenumber}: {match.message}")
    return findings


def main(argv: list[str]) -> int:
    outdir = Path(argv[0] if argv else "cdk.out")
    if not (outdir / "manifest.json").is_file():
        print(f"policy gate: {outdir} holds no cloud assembly; run `make synth` first", file=sys.stderr)
        return 2
    templates = list(stack_templates(outdir))
    findings = nag_findings(outdir) + lint_findings(outdir)
    for finding in findings:
        print(finding, file=sys.stderr)
    if findings:
        print(f"policy gate: {len(findings)} unacknowledged finding(s) in {outdir}", file=sys.stderr)
        return 1
    print(f"policy gate: cdk-nag and cfn-lint clean on {len(templates)} templates in {outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
