"""SageMaker's /opt/ml layout, under a root that tests and laptops can move (``SM_ROOT``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SageMakerPaths:
    root: Path
    checkpoints: Path

    @classmethod
    def from_environment(cls) -> SageMakerPaths:
        root = Path(os.environ.get("SM_ROOT", "/opt/ml"))
        # CheckpointConfig.LocalPath defaults to /opt/ml/checkpoints; SM_CHECKPOINT_DIR moves it.
        return cls(root=root, checkpoints=Path(os.environ.get("SM_CHECKPOINT_DIR", str(root / "checkpoints"))))

    @property
    def hyperparameters(self) -> Path:
        return self.root / "input" / "config" / "hyperparameters.json"

    def channel(self, name: str) -> Path:
        return self.root / "input" / "data" / name

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def failure(self) -> Path:
        return self.root / "output" / "failure"
