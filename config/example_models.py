"""The example models shipped in ``models/example/<model>/``: what an ``example`` pointer serves.

Foundation creates every model pointer with the sentinel ``example``; a variant whose pointer holds
it serves the shipped example model that its ``example_model`` names (config/serving.py), so an
environment scores requests from its first deploy. There is one per model of the example tenant
(``config/pipelines/example.yaml``, same name and algorithm), each with its drift baseline beside
it; ``scripts/example_model.py`` builds them, byte for byte.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

EXAMPLE_MODELS_DIR = Path(__file__).resolve().parent.parent / "models" / "example"
ExampleModelName = Literal["xgboost", "linear"]
EXAMPLE_MODEL_NAMES: tuple[ExampleModelName, ...] = ("xgboost", "linear")
DEFAULT_EXAMPLE_MODEL: ExampleModelName = "xgboost"
ARCHIVE_FILE = "model.tar.gz"
BASELINE_FILE = "baseline.json"


def archive_path(model: str) -> Path:
    """``models/example/<model>/model.tar.gz``: the artifact SageMaker unpacks into ``/opt/ml/model``."""
    return EXAMPLE_MODELS_DIR / model / ARCHIVE_FILE


def baseline_path(model: str) -> Path:
    """``models/example/<model>/baseline.json``: what the drift monitor compares its traffic with."""
    return EXAMPLE_MODELS_DIR / model / BASELINE_FILE
