"""The layout's guard rails: the constructs package is the real one, lambda/ holds self-contained assets,
the runtime package's image code runs in each image with that image's libraries."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import constructs
import pytest

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


# Module size (issue 15): a module that needs a table of contents is two modules.
MODULE_LIMIT = 400
HANDLER_LIMIT = 150  # a Lambda handler is a thin adapter: parse the event, call mlops_platform, shape the answer
PRODUCT = ("app.py", "config", "stacks", "mlops_constructs", "mlops_platform", "lambda", "scripts", "containers")
# Over their limit today, each shrinking on another branch of issue 15. The list only shrinks: an entry whose
# file is gone or within its limit fails below, so remove it when that branch is merged.
OVER_THE_LIMIT = {}


def _limit(relative: str) -> int:
    parts = relative.split("/")
    is_handler = parts[0] == "lambda" and len(parts) == 3 and parts[2] in ("handler.py", "worker.py")
    return HANDLER_LIMIT if is_handler else MODULE_LIMIT


def _product_modules() -> dict[str, int]:
    """Every Python module of the product, by path from the repository root, with its number of lines."""
    paths = [ROOT / "app.py"]
    for folder in PRODUCT[1:]:
        paths += [path for path in (ROOT / folder).rglob("*.py") if "__pycache__" not in path.parts]
    return {path.relative_to(ROOT).as_posix(): len(path.read_text().splitlines()) for path in paths}


def test_no_product_module_is_over_400_lines_and_no_handler_over_150():
    modules = _product_modules()

    too_long = {
        path: f"{lines} lines, limit {_limit(path)}"
        for path, lines in sorted(modules.items())
        if lines > _limit(path) and path not in OVER_THE_LIMIT
    }

    assert not too_long, f"split by responsibility (or, shrinking on a branch, list in OVER_THE_LIMIT): {too_long}"
    # The walk reaches both kinds of module.
    assert "mlops_constructs/approval_path.py" in modules
    assert "lambda/ingest/handler.py" in modules


def test_the_list_of_modules_over_the_limit_only_names_modules_still_over_it():
    modules = _product_modules()

    settled = [path for path in OVER_THE_LIMIT if modules.get(path, 0) <= _limit(path)]

    assert not settled, f"within the limit or gone now: remove from OVER_THE_LIMIT: {settled}"


def test_a_handler_s_limit_is_the_adapter_s_and_other_modules_the_module_s():
    assert _limit("lambda/plan/handler.py") == _limit("lambda/scoring/worker.py") == HANDLER_LIMIT
    assert _limit("lambda/approval/deployment.py") == _limit("config/loader.py") == MODULE_LIMIT


# What each image runs (its Dockerfile's ENTRYPOINT and the sub-commands of its __main__), and the
# libraries only the other image installs: the whole package is in both images, so an import of
# one of these from an entry point's modules would fail in that image alone, at run time.
IMAGE_ENTRY_POINTS = {
    "training": (
        [
            "mlops_platform.training.__main__",
            "mlops_platform.training.train",
            "mlops_platform.training.serve",
            "mlops_platform.data.prepare",
            "mlops_platform.monitoring.baseline_job",
            "mlops_platform.monitoring.job",
        ],
        {"orjson", "uvicorn", "uvloop", "httptools"},
    ),
    "inference": (
        [
            "mlops_platform.serving.__main__",
            "mlops_platform.serving.serve",
            "mlops_platform.serving.app",
            "mlops_platform.serving.batch",
        ],
        {"boto3", "botocore", "pandas", "pyarrow", "scipy"},
    ),
}
NOT_INSTALLED = """
import importlib, sys
blocked = set(sys.argv[1].split(","))
class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r} (not in this image)", name=name)
sys.meta_path.insert(0, Absent())
for module in sys.argv[2:]:
    importlib.import_module(module)
"""


@pytest.mark.parametrize("image", sorted(IMAGE_ENTRY_POINTS))
def test_each_image_s_entry_points_import_only_that_image_s_libraries(image):
    modules, other_images_libraries = IMAGE_ENTRY_POINTS[image]
    installed = {name.replace("-", "_") for name in _pins(ROOT / "containers" / image / "requirements.txt")}
    assert not other_images_libraries & installed, "the list names a library the image installs"

    done = subprocess.run(
        [sys.executable, "-c", NOT_INSTALLED, ",".join(sorted(other_images_libraries)), *modules],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0, done.stderr


def test_no_image_module_is_over_about_400_lines():
    for package in ("training", "data", "monitoring", "serving"):
        for module in sorted((ROOT / "mlops_platform" / package).rglob("*.py")):
            lines = len(module.read_text().splitlines())
            assert lines <= 400, f"{module.relative_to(ROOT)} has {lines} lines; split it by responsibility"


# The README's "Layout" section (issue 15): every path it names exists, and it names every subpackage of the
# runtime and every subcommand of `mlops`, so the table and the diagram cannot drift from the tree again.
FILE_SUFFIXES = {"py", "yaml", "yml", "json", "md", "txt", "gz", "lock", "dockerignore", "toml"}
FENCED = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
DIAGRAM_FOLDER = re.compile(r"(?<![\w/.<])([a-z_]+/(?:[a-z_]+/)*)")


def _layout_section(readme: str) -> str:
    section = readme.split("\n## Layout\n", 1)[1]
    return section.split("\n## ", 1)[0]


def _is_path(token: str) -> bool:
    if any(character in token for character in " =:") or token.startswith("/"):
        return False
    return "/" in token or (token.rsplit(".", 1)[-1] in FILE_SUFFIXES and "." in token)


def layout_paths(section: str) -> set[str]:
    """The repository paths the section names: backticked paths (a bare file name in a table row is in the
    row's folder; ``<placeholder>`` stands for any name) and the diagram's folders."""
    paths = set()
    for line in FENCED.sub("", section).splitlines():
        cells = line.split("|")
        row_folder = cells[1].strip().strip("`") if len(cells) > 2 and cells[1].strip().endswith("/`") else ""
        for token in re.findall(r"`([^`]+)`", line):
            if _is_path(token):
                paths.add(token if "/" in token else row_folder + token)
    for block in FENCED.findall(section):
        paths.update(DIAGRAM_FOLDER.findall(block))
    return {re.sub(r"<[^>]+>", "*", path) for path in paths}


def _missing(paths: set[str]) -> list[str]:
    return sorted(path for path in paths if not any(ROOT.glob(path.rstrip("/"))))


def test_every_path_the_readme_layout_names_exists():
    paths = layout_paths(_layout_section((ROOT / "README.md").read_text()))

    assert not _missing(paths), f"README's Layout names paths that do not exist: {_missing(paths)}"
    # The scan reaches the table's paths, its bare file names, placeholders and the diagram's folders.
    assert {"config/schema.py", "lambda/*/handler.py", "models/example/*/", "mlops_platform/local/"} <= paths


def test_the_layout_scan_reports_a_path_that_is_not_there():
    section = (
        "| `stacks/` | `stacks/stage.py`, `gone.py` and `stacks/nowhere/` |\n"
        '```mermaid\nflowchart LR\n  a["app.py"] --> b["olddir/"]\n```\n'
    )

    assert _missing(layout_paths(section)) == ["olddir/", "stacks/gone.py", "stacks/nowhere/"]


def test_the_readme_layout_names_every_runtime_subpackage_and_every_mlops_subcommand():
    from mlops_platform.cli import COMMANDS

    section = _layout_section((ROOT / "README.md").read_text())
    subpackages = [
        path.parent.relative_to(ROOT).as_posix() + "/" for path in (ROOT / "mlops_platform").glob("*/__init__.py")
    ]

    assert subpackages
    assert [
        package for package in sorted(subpackages) if f"`{package}`" not in section and package not in section
    ] == []
    assert [command for command in COMMANDS if not re.search(rf"(?<![\w-]){command}(?![\w-])", section)] == []
