"""The images' libraries are locked with hashes, transitive ones included, and installed with hash checking
(issue 17, point 7). Lambda functions install nothing: their assets are their folder and mlops_platform/
(mlops_constructs/functions.py copies files, no pip), and their libraries come from the pinned Powertools layer."""

from __future__ import annotations

import re

import pytest

from tests.conftest import ROOT

IMAGES = ("training", "inference")
REQUIREMENT = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+?)(?:\s*\\)?$")
HASH = re.compile(r"^--hash=sha256:[0-9a-f]{64}(?:\s*\\)?$")


def pins(text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        match = REQUIREMENT.match(line.strip())
        if match:
            found[match["name"].lower().replace("_", "-")] = match["version"]
    return found


def entries(text: str) -> list[list[str]]:
    """Each requirement of a lock with its continuation lines (comments left out)."""
    blocks: list[list[str]] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if line.startswith((" ", "\t")):
            blocks[-1].append(stripped)
        else:
            blocks.append([stripped])
    return blocks


@pytest.mark.parametrize("image", IMAGES)
def test_the_lock_holds_every_pin_of_the_image_s_requirements_at_its_version(image):
    wanted = pins((ROOT / "containers" / image / "requirements.txt").read_text())
    locked = pins((ROOT / "containers" / image / "requirements.lock").read_text())

    assert wanted
    assert {name: locked.get(name) for name in wanted} == wanted


@pytest.mark.parametrize("image", IMAGES)
def test_every_locked_library_is_pinned_with_at_least_one_sha256(image):
    blocks = entries((ROOT / "containers" / image / "requirements.lock").read_text())

    assert blocks
    for block in blocks:
        assert REQUIREMENT.match(block[0]), block[0]
        hashes = block[1:]
        assert hashes, block[0]
        assert all(HASH.match(line) for line in hashes), block[0]


@pytest.mark.parametrize("image", IMAGES)
def test_the_image_installs_only_from_its_lock_with_hash_checking(image):
    dockerfile = (ROOT / "containers" / image / "Dockerfile").read_text()
    installs = [line for line in dockerfile.splitlines() if "pip install" in line]

    assert installs == ["RUN pip install --no-cache-dir --require-hashes --no-deps -r /opt/program/requirements.lock"]
    assert f"COPY containers/{image}/requirements.lock /opt/program/requirements.lock" in dockerfile


@pytest.mark.parametrize("image", IMAGES)
def test_a_base_image_is_pinned_by_digest_or_says_why_not(image):
    dockerfile = (ROOT / "containers" / image / "Dockerfile").read_text()
    [default] = re.findall(r"^ARG BASE_IMAGE=(\S+)$", dockerfile, re.MULTILINE)

    assert "@sha256:" in default or "Not pinned by digest" in dockerfile


def test_lambda_assets_install_no_libraries():
    functions = (ROOT / "mlops_constructs" / "functions.py").read_text()

    assert "pip" not in re.sub(r"no pip|pip run", "", functions)
