"""The checkpoint folder: one file per checkpointed round, written whole, only the latest ``KEEP`` kept.

SageMaker copies the folder (``CheckpointConfig.LocalPath``, ``/opt/ml/checkpoints``) to S3 while the
job runs, deletes from S3 what is deleted here, and copies S3's checkpoints back into the folder when
a job starts ("Checkpoints in Amazon SageMaker AI",
https://docs.aws.amazon.com/sagemaker/latest/dg/model-checkpoints.html). So every file left here is
uploaded and, on a resume, downloaded again: a 100,000-round job that kept every checkpoint would
fill its volume and download all of them to resume from one.

Two are kept, not one: while SageMaker uploads the newest, the one before it is still whole in S3,
so an interruption during that upload still leaves a checkpoint to resume from. A file is written
under a dotted ``.partial`` name and renamed (atomic), so a torn write is never taken for a
checkpoint; partial files an interrupted job left behind are removed before the next write.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

KEEP = 2
ROUND_DIGITS = 6  # up to round 999,999; a model's rounds are at most 100,000 (hyperparameters.json)


class Checkpoints:
    """``<directory>/<name>-<round, 6 digits><suffix>`` files, newest last."""

    def __init__(self, directory: Path, name: str, suffix: str, keep: int = KEEP) -> None:
        if keep < 1:
            raise ValueError(f"keep must be at least 1, not {keep}")
        self.directory = directory
        self.name = name
        self.suffix = suffix
        self.keep = keep
        self._pattern = re.compile(rf"^{re.escape(name)}-(\d+){re.escape(suffix)}$")

    def files(self) -> list[tuple[int, Path]]:
        """(round, path) of every whole checkpoint, oldest first."""
        if not self.directory.is_dir():
            return []
        found = [
            (int(match.group(1)), path)
            for path in self.directory.iterdir()
            if path.is_file() and (match := self._pattern.match(path.name))
        ]
        return sorted(found)

    def latest(self) -> tuple[int, Path] | None:
        files = self.files()
        return files[-1] if files else None

    def save(self, round_number: int, write: Callable[[Path], None]) -> Path:
        """Write round ``round_number``'s checkpoint with ``write(path)``, then remove all but the newest ``keep``."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for stale in self.directory.glob(f".{self.name}-*.partial{self.suffix}"):
            stale.unlink(missing_ok=True)
        target = self.directory / f"{self.name}-{round_number:0{ROUND_DIGITS}d}{self.suffix}"
        # The suffix last: XGBoost picks the format from the file's extension.
        partial = self.directory / f".{target.stem}.partial{self.suffix}"
        write(partial)
        # Room for the new one first, so the folder never holds more than `keep` whole checkpoints.
        existing = self.files()
        for _, old in existing[: max(len(existing) - (self.keep - 1), 0)]:
            old.unlink(missing_ok=True)
        partial.replace(target)
        return target
