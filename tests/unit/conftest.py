"""Fixtures and checks shared by the configuration tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.fixture
def config_copy(tmp_path: Path) -> Path:
    """A copy of config/ (the YAML files only) that a test may break."""
    target = tmp_path / "config"
    shutil.copytree(ROOT / "config", target, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return target


def edit(path: Path, old: str, new: str) -> None:
    """Replace the first ``old`` in a config file, failing if it is not there (so a test cannot go stale)."""
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def assert_one_sentence(message: str, path: Path, key: str, value: str) -> None:
    """A configuration error as users must see it: the file, the key, the value and what is allowed."""
    assert message.startswith(f"{path}: ")
    assert f"'{key}'" in message
    assert value in message
    assert "; allowed: " in message
    assert message.endswith(".")
    assert "\n" not in message
    assert "pydantic" not in message
    assert "Traceback" not in message
