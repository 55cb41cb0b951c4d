"""The inference image's build files: pinned libraries, tested at the same versions, one Dockerfile for CPU and GPU."""

from __future__ import annotations

from tests.conftest import ROOT

IMAGE = ROOT / "containers" / "inference"


def requirements(path):
    return [
        line.strip() for line in path.read_text().splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]


def pins(path):
    return dict(line.split("==", 1) for line in requirements(path) if "==" in line)


def test_every_library_of_the_image_is_pinned():
    lines = requirements(IMAGE / "requirements.txt")

    assert lines
    assert all("==" in line for line in lines), lines


def test_the_suite_tests_the_inference_image_with_the_image_s_own_library_versions():
    image = pins(IMAGE / "requirements.txt")
    dev = pins(ROOT / "requirements-dev.txt")

    for package, version in image.items():
        tested_as = "xgboost-cpu" if package == "xgboost" else package
        assert dev.get(tested_as) == version, package


def test_the_linear_model_is_read_with_the_scikit_learn_that_wrote_it():
    """The linear model is a pickle: the two images must carry the same scikit-learn."""
    training = pins(ROOT / "containers" / "training" / "requirements.txt")
    inference = pins(IMAGE / "requirements.txt")

    for package in ("scikit-learn", "numpy", "xgboost"):
        assert inference[package] == training[package], package


def test_one_dockerfile_builds_cpu_and_gpu_and_runs_serve_unprivileged():
    dockerfile = (IMAGE / "Dockerfile").read_text()

    assert "ARG BASE_IMAGE=public.ecr.aws/docker/library/python:" in dockerfile
    assert "FROM --platform=linux/amd64 ${BASE_IMAGE}" in dockerfile
    assert 'ENTRYPOINT ["python", "-m", "mlops_platform.serving"]' in dockerfile
    assert "\nUSER model-server\n" in dockerfile
    assert "EXPOSE 8080" in dockerfile
