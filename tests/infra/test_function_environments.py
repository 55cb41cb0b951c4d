"""Every Lambda function of every stack imports with exactly the environment its template gives it.

A handler that reads a variable at import (``os.environ["X"]``) fails its cold start, and with it a
custom resource and the whole stack's deployment, when the construct does not set X for that function.
The environments here come from the synthesized templates, never typed by hand; only values resolved at
deploy (Ref, GetAtt, Join) are replaced by a placeholder of the same kind.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest

ENVIRONMENT = "dev"
# What Lambda sets in every Python function's environment.
LAMBDA_RUNTIME = {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-1", "AWS_LAMBDA_FUNCTION_NAME": "f"}
_PROBE = """
import importlib, sys
sys.path.insert(0, sys.argv[1])
importlib.import_module(sys.argv[2])
"""


def _placeholder(value: Any) -> str:
    """A deploy-time value as the string CloudFormation would make: joins and subs rendered, references as ARNs."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(_placeholder(part) for part in parts)
    if isinstance(value, dict) and "Fn::Sub" in value:
        template = value["Fn::Sub"] if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"][0]
        return re.sub(r"\$\{[^}]+\}", "placeholder", template)
    return "arn:aws:service:eu-west-1:111111111111:resource/placeholder"


def _python_functions(synthesized) -> list[tuple[str, str, Path, dict[str, str]]]:
    functions = []
    for stack in synthesized.stages[ENVIRONMENT].node.children:
        if not isinstance(stack, cdk.Stack):
            continue
        template = json.loads((synthesized.outdir / f"assembly-{ENVIRONMENT}" / stack.template_file).read_text())
        for logical_id, resource in template["Resources"].items():
            properties = resource.get("Properties", {})
            if resource["Type"] != "AWS::Lambda::Function":
                continue
            asset = re.search(r"[0-9a-f]{64}", json.dumps(properties.get("Code", {})))
            if not asset:
                continue
            if not str(properties.get("Runtime", "")).startswith("python"):
                continue
            module = properties["Handler"].rsplit(".", 1)[0]
            name = f"asset.{asset.group(0)}"
            folder = next(
                (
                    p
                    for p in (synthesized.outdir / f"assembly-{ENVIRONMENT}" / name, synthesized.outdir / name)
                    if p.is_dir()
                ),
                synthesized.outdir / name,
            )
            if not (folder / f"{module.replace('.', '/')}.py").is_file():
                continue  # CDK's own functions (the provider framework's), not the platform's
            variables = properties.get("Environment", {}).get("Variables", {})
            environment = {name: _placeholder(value) for name, value in variables.items()}
            functions.append((f"{stack.stack_name}/{logical_id}", module, folder, environment))
    return functions


@pytest.fixture(scope="module")
def functions(synthesized):
    found = _python_functions(synthesized)
    assert len(found) >= 8, "the platform's Python functions were not found in the templates"
    return found


def test_every_function_imports_with_the_environment_its_template_gives_it(functions):
    failures = []
    for name, module, folder, environment in functions:
        clean = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG")}
        result = subprocess.run(
            [sys.executable, "-I", "-B", "-c", _PROBE, str(folder), module],
            capture_output=True,
            text=True,
            env={**clean, **LAMBDA_RUNTIME, **environment},
            check=False,
        )
        if result.returncode:
            failures.append(f"{name} ({module}): {result.stderr.strip().splitlines()[-1]}")
    assert not failures, "\n".join(failures)
