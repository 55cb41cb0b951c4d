"""Fail on any unacknowledged cdk-nag finding or cfn-lint match in a synthesized cloud assembly.

``cdk synth`` exits 0 even when cdk-nag reports violations; they only land in
``validation-report.json``. ``make synth`` runs this gate after synth, and the tests run it too.

    python -m scripts.policy_gate cdk.out

cfn-lint is most of the gate's time (about a second a template, and the rules load once per
process), so the gate lints only what it has not seen lint clean, and spreads that over the CPUs:

* a template's verdict is a function of its bytes (but for asset hashes, which change with every
  edit of the code an asset packages and never what cfn-lint finds), its region, the cfn-lint version
  and the settings below; a clean one is recorded as an empty file named by the hash of those, in
  ``<outdir>/.policy-gate/`` (``make synth`` keeps that folder when it empties ``cdk.out``) or in
  ``$POLICY_GATE_CACHE``. Only clean verdicts are recorded: a template with findings is linted again every time;
* the templates left are linted in up to one process per CPU, each loading the rules once.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from importlib.metadata import version
from multiprocessing import get_context
from pathlib import Path

REPORT = "validation-report.json"
CACHE_DIR = ".policy-gate"
CACHE_ENVIRONMENT_VARIABLE = "POLICY_GATE_CACHE"
# What the gate asks of cfn-lint beyond the region: bump it when the call in _lint_chunk changes,
# so verdicts recorded under other settings no longer count.
LINT_SETTINGS = "cfn-lint defaults, one region per template"
# An asset's hash (sha256: the S3 key of a function's code, an image's tag). Every function bundles
# mlops_platform/, so an edit there changes 12 of the 16 templates in these alone: the key leaves them out.
ASSET_HASH = re.compile(rb"\b[0-9a-f]{64}\b")
# Below this many templates, starting worker processes (each imports cfn-lint and loads its rules)
# costs more than it saves.
PARALLEL_FROM = 3


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


def cache_dir(outdir: Path) -> Path:
    """Where clean verdicts are recorded: ``$POLICY_GATE_CACHE`` (the tests share one), else beside the assembly."""
    configured = os.environ.get(CACHE_ENVIRONMENT_VARIABLE)
    return Path(configured) if configured else outdir / CACHE_DIR


def verdict_key(template: Path, region: str) -> str:
    """The hash a clean verdict is recorded under: everything the verdict depends on, and nothing else."""
    digest = hashlib.sha256()
    for part in (version("cfn-lint"), LINT_SETTINGS, region):
        digest.update(part.encode() + b"\0")
    digest.update(ASSET_HASH.sub(b"<asset hash>", template.read_bytes()))
    return digest.hexdigest()


def _lint_chunk(templates: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    """Findings per template path, with cfn-lint's rules loaded once per region (run in a worker process)."""
    from cfnlint.config import ConfigMixIn
    from cfnlint.runner import Runner

    findings: dict[str, list[str]] = {path: [] for path, _ in templates}
    for region in sorted({region for _, region in templates}):
        paths = [path for path, template_region in templates if template_region == region]
        for match in Runner(ConfigMixIn(["--template", *paths], regions=[region])).run():
            path = str(match.filename)
            finding = f"cfn-lint: {match.rule.id} {Path(path).name}:{match.linenumber}: {match.message}"
            findings.setdefault(path, []).append(finding)
    return findings


def _workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _lint(templates: list[tuple[Path, str]]) -> dict[str, list[str]]:
    """Lint in one process per CPU, the largest templates first so the processes finish together."""
    items = sorted(((str(path), region) for path, region in templates), key=lambda item: -Path(item[0]).stat().st_size)
    workers = min(_workers(), len(items))
    if workers < 2 or len(items) < PARALLEL_FROM:
        return _lint_chunk(items)
    chunks = [items[index::workers] for index in range(workers)]
    # spawn, not fork: the tests call the gate from processes that hold jsii's threads and pipes.
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        return {path: found for chunk in pool.map(_lint_chunk, chunks) for path, found in chunk.items()}


def lint_report(outdir: Path) -> tuple[list[str], int]:
    """cfn-lint findings over every template, and how many templates were linted (the rest were known clean)."""
    cache = cache_dir(outdir)
    templates = list(stack_templates(outdir))
    keys = {template: verdict_key(template, region) for template, region in templates}
    pending = [(template, region) for template, region in templates if not (cache / keys[template]).is_file()]
    found = _lint(pending) if pending else {}
    findings = [finding for template_findings in found.values() for finding in template_findings]
    # A finding cfn-lint did not tie to one of these templates may concern them all: record nothing then.
    if set(found) <= {str(template) for template, _ in pending}:
        for template, _ in pending:
            if not found[str(template)]:
                cache.mkdir(parents=True, exist_ok=True)
                (cache / keys[template]).touch()
    return findings, len(pending)


def lint_findings(outdir: Path) -> list[str]:
    return lint_report(outdir)[0]


def main(argv: list[str]) -> int:
    outdir = Path(argv[0] if argv else "cdk.out")
    if not (outdir / "manifest.json").is_file():
        print(f"policy gate: {outdir} holds no cloud assembly; run `make synth` first", file=sys.stderr)
        return 2
    templates = list(stack_templates(outdir))
    lint, linted = lint_report(outdir)
    findings = nag_findings(outdir) + lint
    for finding in findings:
        print(finding, file=sys.stderr)
    if findings:
        print(f"policy gate: {len(findings)} unacknowledged finding(s) in {outdir}", file=sys.stderr)
        return 1
    print(
        f"policy gate: cdk-nag and cfn-lint clean on {len(templates)} templates in {outdir} "
        f"(cfn-lint ran on {linted}; {len(templates) - linted} unchanged since they last linted clean)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
