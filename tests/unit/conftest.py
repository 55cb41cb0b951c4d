"""Fixtures shared by the configuration tests."""

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
