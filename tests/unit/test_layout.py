"""The layout's guard rails: the constructs package is the real one, lambda/ holds self-contained assets."""

from __future__ import annotations

import json
import re

import constructs

from tests.conftest import ROOT


def test_constructs_resolves_to_the_installed_package_not_a_folder_of_ours():
    # A root package named `constructs` would shadow the dependency aws-cdk-lib imports (aws/aws-cdk#19301).
    assert "site-packages" in constructs.__file__
    assert not (ROOT / "constructs").exists()


def test_every_lambda_folder_is_a_self_contained_asset():
    functions = [path for path in (ROOT / "lambda").iterdir() if path.is_dir() and path.name != "__pycache__"]

    assert functions, "lambda/ holds no function"
    for function in functions:
        assert (function / "handler.py").is_file(), function
        assert (function / "requirements.txt").is_file(), function
        assert not (function / "__init__.py").exists(), f"{function} is an asset folder, not a package"


def test_the_cdk_cli_is_pinned_to_a_2x_release_that_reads_current_assemblies():
    version = json.loads((ROOT / "package.json").read_text())["devDependencies"]["aws-cdk"]

    major, minor, _ = (int(part) for part in re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", version).groups())
    assert major == 2
    assert minor >= 1148


def test_cdk_json_sets_the_recommended_feature_flags_and_runs_the_project_venv():
    cdk_json = json.loads((ROOT / "cdk.json").read_text())

    assert cdk_json["app"].startswith(".venv/bin/python app.py")
    flags = [key for key in cdk_json["context"] if key.startswith("@aws-cdk")]
    assert len(flags) >= 85


def _pins(path):
    return dict(
        line.split("==", 1)
        for line in path.read_text().splitlines()
        if "==" in line and not line.lstrip().startswith("#")
    )


def test_the_suite_tests_the_training_image_with_the_image_s_own_library_versions():
    image = _pins(ROOT / "containers" / "training" / "requirements.txt")
    dev = _pins(ROOT / "requirements-dev.txt")

    for package, version in image.items():
        tested_as = "xgboost-cpu" if package == "xgboost" else package
        assert dev.get(tested_as) == version, package
