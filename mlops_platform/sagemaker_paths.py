"""SageMaker's /opt/ml layout, under a root that tests and laptops can move (``SM_ROOT``).

Processing jobs mount their inputs and outputs under ``/opt/ml/processing`` instead
(``SM_PROCESSING_ROOT``), but read their failure reason from ``/opt/ml/output/message``.
"""

from __future__ import annotations

import os
import sys
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

    @property
    def message(self) -> Path:
        """Where a Processing job's container leaves its exit message (DescribeProcessingJob's ExitMessage)."""
        return self.root / "output" / "message"


@dataclass(frozen=True)
class ProcessingPaths:
    """A Processing job's folders: ProcessingInputs under ``input/``, ProcessingOutputs under ``output/``."""

    root: Path
    message: Path

    @classmethod
    def from_environment(cls) -> ProcessingPaths:
        root = Path(os.environ.get("SM_PROCESSING_ROOT", "/opt/ml/processing"))
        return cls(root=root, message=SageMakerPaths.from_environment().message)

    @property
    def raw(self) -> Path:
        return self.root / "input" / "raw"

    @property
    def score(self) -> Path:
        """The raw prefix of the dataset the tenant names for scoring, when it names one."""
        return self.root / "input" / "score"

    @property
    def curated(self) -> Path:
        return self.root / "output" / "curated"

    @property
    def features(self) -> Path:
        return self.root / "output" / "features"

    @property
    def batch(self) -> Path:
        return self.root / "output" / "batch"

    @property
    def report(self) -> Path:
        return self.root / "output" / "report"


def write_exit_reason(path: Path, job: str, reason: str) -> int:
    """``reason`` in one line (its first 1,000 characters) to ``path`` and to standard error; the exit status, 1.

    ``path`` is the file SageMaker reads back: a training job's ``output/failure`` (FailureReason) or a
    Processing job's ``output/message`` (DescribeProcessingJob's ExitMessage keeps its first 1 KB).
    """
    line = " ".join(reason.split())[:1000]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(line + "\n", encoding="utf-8")
    print(f"{job} failed: {line}", file=sys.stderr, flush=True)
    return 1
