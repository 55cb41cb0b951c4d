"""Each Lambda asset carries its handler folder and the runtime package ``mlops_platform/``, built without Docker.

mlops_constructs/functions.py bundles every function's asset locally at synth (``PackageBundling``): the
files of ``lambda/<folder>/`` and of ``mlops_platform/``, without tool leftovers or the test-only
requirements, hashed by what they hold (``AssetHashType.OUTPUT``). The first test reads the session's
synthesized assembly; the second synthesizes a bare stack in a process of its own, with a ``docker``
that records any call, from copies of the folders it then changes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import ROOT
from tests.infra.conftest import ENVIRONMENTS, STACKS

LEFTOVERS = ("__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache")


def shipped_files(folder: Path, *, top_requirements: bool = False) -> set[str]:
    """The files of ``folder`` a function needs at run time: not caches, not compiled files, not requirements.txt."""
    return {
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file()
        and not set(path.relative_to(folder).parts) & set(LEFTOVERS)
        and path.suffix != ".pyc"
        and path.name != "requirements.txt"
    }


def platform_functions(synthesized: Any) -> list[tuple[str, str, str]]:
    """(folder, handler module, asset hash) of every function platform_function made, in every template."""
    found = []
    for environment in ENVIRONMENTS:
        for stack in STACKS:
            resources = synthesized.template_json(environment, stack)["Resources"]
            for resource in resources.values():
                if resource["Type"] != "AWS::Lambda::Function":
                    continue
                properties = resource["Properties"]
                service = properties.get("Environment", {}).get("Variables", {}).get("POWERTOOLS_SERVICE_NAME")
                if service is None:
                    continue  # CDK's own functions (the custom-resource Provider framework)
                module = properties["Handler"].rsplit(".", 1)[0]
                found.append((service.replace("-", "_"), module, properties["Code"]["S3Key"].removesuffix(".zip")))
    return found


def test_every_function_asset_holds_its_folder_and_the_runtime_package_and_nothing_else(synthesized):
    functions = platform_functions(synthesized)
    package = shipped_files(ROOT / "mlops_platform")

    assert {folder for folder, _, _ in functions} == {
        path.name for path in (ROOT / "lambda").iterdir() if path.is_dir() and path.name not in LEFTOVERS
    }
    assert "__init__.py" in package
    for folder, module, asset_hash in functions:
        asset = synthesized.outdir / f"asset.{asset_hash}"
        expected = shipped_files(ROOT / "lambda" / folder) | {f"mlops_platform/{name}" for name in package}
        assert shipped_files(asset) == expected, folder
        assert (asset / "mlops_platform" / "__init__.py").is_file(), folder
        assert (asset / f"{module}.py").read_bytes() == (ROOT / "lambda" / folder / f"{module}.py").read_bytes()
        assert not list(asset.rglob("__pycache__")), folder
        assert not (asset / "requirements.txt").exists(), folder


SYNTH_COPIES = """
import json, sys
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_kms as kms

from config.naming import Names
from mlops_constructs import functions

work = Path(sys.argv[1])
functions.LAMBDA_ROOT = work / "lambda"
functions.PACKAGE_ROOT = work / "mlops_platform"


def synth(name):
    cdk.AssetStaging.clear_asset_hash_cache()  # as a new `cdk synth` process starts without one
    app = cdk.App(outdir=str(work / name))
    stack = cdk.Stack(app, "Bare", env=cdk.Environment(account="111111111111", region="eu-west-1"))
    functions.platform_function(
        stack, "Approval", folder="approval", description="d", role_description="r",
        names=Names(project="mlops", environment="dev"), key=kms.Key(stack, "Key"), environment={},
        log_retention_days=7, removal_policy=cdk.RemovalPolicy.DESTROY,
    )
    app.synth()
    template = json.loads((work / name / "Bare.template.json").read_text())
    [code] = [r["Properties"]["Code"] for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    return code["S3Key"].removesuffix(".zip")


hashes = {"first": synth("first"), "second": synth("second")}
leftovers = work / "mlops_platform" / "registry" / "__pycache__"
leftovers.mkdir()
(leftovers / "ledger.cpython-311.pyc").write_bytes(b"compiled")
(work / "lambda" / "approval" / "requirements.txt").write_text("boto3==1.0.0\\n")
hashes["leftovers"] = synth("leftovers")
ledger = work / "mlops_platform" / "registry" / "ledger.py"
ledger.write_text(ledger.read_text() + "# changed\\n")
hashes["changed"] = synth("changed")
print(json.dumps(hashes))
"""


def test_the_asset_hash_follows_the_package_s_files_and_synth_never_calls_docker(tmp_path):
    work = tmp_path / "work"
    ignore = shutil.ignore_patterns(*LEFTOVERS, "*.pyc")
    shutil.copytree(ROOT / "lambda" / "approval", work / "lambda" / "approval", ignore=ignore)
    shutil.copytree(ROOT / "mlops_platform", work / "mlops_platform", ignore=ignore)
    calls = tmp_path / "docker-calls"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(f'#!/bin/sh\necho "$@" >> "{calls}"\nexit 1\n')
    docker.chmod(0o755)

    result = subprocess.run(
        [sys.executable, "-c", SYNTH_COPIES, str(work)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "CDK_DOCKER": str(docker),  # the executable CDK bundling would run
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONPATH": str(ROOT),
        },
        check=False,
        timeout=300,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    hashes = json.loads(result.stdout.strip().splitlines()[-1])
    assert hashes["second"] == hashes["first"]  # the same files, the same asset
    assert hashes["leftovers"] == hashes["first"]  # caches, compiled files and requirements.txt are not shipped
    assert hashes["changed"] != hashes["first"]  # a change to the package is a new asset, so new code deploys
    assert not calls.exists(), calls.read_text()
    for name in ("first", "changed"):
        asset = work / name / f"asset.{hashes[name]}"
        assert (asset / "mlops_platform" / "registry" / "ledger.py").is_file()
        assert (asset / "handler.py").is_file()
    changed = work / "changed" / f"asset.{hashes['changed']}" / "mlops_platform" / "registry" / "ledger.py"
    assert changed.read_text().endswith("# changed\n")
