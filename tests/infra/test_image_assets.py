"""The images' build contexts: the repository root, of which only the image's folder and the package count.

An image asset's hash is its tag and decides whether the pipeline rebuilds and redeploys it: a
README, a test or a Lambda function must leave it alone, the runtime package and the image's own
Dockerfile and requirements must change it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import aws_cdk as cdk
import pytest

from mlops_constructs.training_images import INFERENCE_IMAGE, TRAINING_IMAGE, InferenceImages, TrainingImages
from tests.conftest import ROOT

COPIED = ("containers/training", "containers/inference", "mlops_platform")


@pytest.fixture
def repository(tmp_path) -> Path:
    """A copy of what the images build from, with the files around them that they must ignore."""
    root = tmp_path / "repository"
    for folder in COPIED:
        shutil.copytree(ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for path in ("README.md", "containers/README.md", "tests/unit/test_x.py", "lambda/plan/handler.py", "docs/a.md"):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text("before\n")
    return root


def hashes(root: Path) -> dict[str, str]:
    stack = cdk.Stack(cdk.App(), "Images")
    training, inference = (
        TrainingImages(stack, "Training", gpu=True, root=root),
        InferenceImages(stack, "Inference", flavours=["cpu", "gpu"], root=root),
    )
    return {
        "training-cpu": training.cpu.asset_hash,
        "training-gpu": training.of("gpu").asset_hash,
        "inference-cpu": inference.of("cpu").asset_hash,
        "inference-gpu": inference.of("gpu").asset_hash,
    }


@pytest.mark.parametrize(
    "path",
    [
        "README.md",
        "containers/README.md",
        "tests/unit/test_x.py",
        "lambda/plan/handler.py",
        "docs/a.md",
        "mlops_platform/serving/__pycache__/codec.cpython-312.pyc",
        "mlops_platform/.pytest_cache/v/cache/lastfailed",
    ],
)
def test_a_file_the_images_do_not_copy_leaves_every_image_hash_alone(repository, path):
    before = hashes(repository)
    (repository / path).parent.mkdir(parents=True, exist_ok=True)
    (repository / path).write_text("after\n")

    assert hashes(repository) == before


def test_the_runtime_package_changes_both_images(repository):
    before = hashes(repository)
    with (repository / "mlops_platform" / "serving" / "codec.py").open("a") as module:
        module.write("# changed\n")

    after = hashes(repository)

    assert all(after[name] != before[name] for name in before)


@pytest.mark.parametrize(
    ("path", "changed"),
    [
        (f"{TRAINING_IMAGE}/requirements.lock", "training"),
        (f"{TRAINING_IMAGE}/Dockerfile", "training"),
        (f"{INFERENCE_IMAGE}/requirements.lock", "inference"),
        (f"{INFERENCE_IMAGE}/Dockerfile", "inference"),
    ],
)
def test_an_image_s_own_files_change_that_image_alone(repository, path, changed):
    before = hashes(repository)
    with (repository / path).open("a") as file:
        file.write("# changed\n")

    after = hashes(repository)

    for name in before:
        assert (after[name] != before[name]) == name.startswith(changed), name


@pytest.mark.parametrize(("stack", "image"), [("training", TRAINING_IMAGE), ("serving", INFERENCE_IMAGE)])
def test_the_synthesized_build_context_holds_the_dockerfile_its_requirements_and_the_package(synthesized, stack, image):
    template = synthesized.template_path("dev", stack)
    assets = json.loads(template.with_suffix("").with_suffix(".assets.json").read_text())
    assert assets["dockerImages"]
    for asset in assets["dockerImages"].values():
        context = synthesized.outdir / "assembly-dev" / asset["source"]["directory"]
        files = {path.relative_to(context).as_posix() for path in context.rglob("*") if path.is_file()}
        package = {
            path.relative_to(ROOT).as_posix()
            for path in (ROOT / "mlops_platform").rglob("*")
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
        }

        assert asset["source"]["dockerFile"] == f"{image}/Dockerfile"
        assert files == {f"{image}/Dockerfile", f"{image}/requirements.lock", *package}
