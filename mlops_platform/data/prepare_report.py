"""What ``prepare`` read, kept and rejected, and why: ``report.json``, and the run's failure when there is one.

The ceiling on rejected rows (the tenant's ``max_rejected_share``) counts every rejected row whose
record is lost; a duplicate is not lost (its first copy is kept). Above it the run fails with one
sentence naming the most common reasons and the columns they involved; within it the count, the
reasons and the columns go into the report's ``warnings`` and ``top_rejections``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from mlops_platform.data.raw_records import SPLITS


@dataclass
class Report:
    tenant: str
    dataset: str
    run_id: str
    day: str
    batch_split: str
    rows_read: int = 0
    valid: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    # (reason, column) of each rejection that names columns: what the failure sentence quotes.
    rejected_columns: Counter[tuple[str, str]] = field(default_factory=Counter)
    unknown_columns: Counter[str] = field(default_factory=Counter)
    max_rejected_share: float = 0.01
    scoring: dict[str, Any] | None = None
    splits: Counter[str] = field(default_factory=Counter)
    days: dict[str, dict[str, int]] = field(default_factory=dict)
    skipped_files: list[dict[str, str]] = field(default_factory=list)
    status: str = "succeeded"
    failure: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "dataset": self.dataset,
            "run_id": self.run_id,
            "day": self.day,
            "status": self.status,
            "failure": self.failure,
            "rows_read": self.rows_read,
            "valid": self.valid,
            "rejected": sum(self.rejected.values()),
            "rejected_by_reason": dict(sorted(self.rejected.items())),
            "rejected_share": self.rejected_share,
            "max_rejected_share": self.max_rejected_share,
            "top_rejections": self.top_rejections(),
            "unknown_columns": dict(sorted(self.unknown_columns.items())),
            "scoring": self.scoring,
            "splits": {split: self.splits[split] for split in SPLITS},
            "batch_split": self.batch_split,
            "days": self.days,
            "skipped_files": self.skipped_files,
            "warnings": self.warnings(),
        }

    @property
    def lost(self) -> int:
        """Rejected rows whose record is not kept: every rejection but a duplicate (its first copy is kept)."""
        return sum(count for reason, count in self.rejected.items() if reason != "duplicate-record")

    @property
    def rejected_share(self) -> float:
        """The share of rows read that ``max_rejected_share`` bounds: rows lost, duplicates not counted."""
        return round(self.lost / self.rows_read, 6) if self.rows_read else 0.0

    def top_rejections(self, limit: int = 3) -> list[dict[str, Any]]:
        """The most common reasons, each with its count and the columns it named most often."""
        return [
            {
                "reason": reason,
                "rows": count,
                "columns": [
                    column
                    for (why, column), _ in sorted(self.rejected_columns.items(), key=lambda item: -item[1])
                    if why == reason
                ][:5],
            }
            for reason, count in self.rejected.most_common(limit)
        ]

    def rejections_sentence(self) -> str:
        """``wrong-type 40 rows (mean radius, carrier), invalid-target 3 rows (class)``."""
        parts = []
        for entry in self.top_rejections():
            columns = f" ({', '.join(entry['columns'])})" if entry["columns"] else ""
            parts.append(f"{entry['reason']} {entry['rows']} row{'' if entry['rows'] == 1 else 's'}{columns}")
        return ", ".join(parts)

    def warnings(self) -> list[str]:
        """What does not stop training but a later step will notice."""
        warnings = []
        if self.scoring is None and self.valid and not self.splits[self.batch_split]:
            warnings.append(
                f"the batch-prediction split {self.batch_split!r} is empty: batch transform has nothing to score"
            )
        if self.unknown_columns:
            names = ", ".join(sorted(self.unknown_columns)[:5])
            warnings.append(f"records carry columns the schema does not declare, ignored: {names}")
        if self.rejected:
            warnings.append(
                f"{sum(self.rejected.values())} of {self.rows_read} rows rejected ({self.rejected_share:.2%}, "
                f"within max_rejected_share {self.max_rejected_share:g}): {self.rejections_sentence()}"
            )
        return warnings

    def problem(self) -> str | None:
        """Why the run cannot train, in one line, or None."""
        if not self.days:
            return "no raw files under input/raw (expected dt=<yyyy-mm-dd>/<id>.jsonl up to the run's day)"
        if not self.valid:
            reasons = self.rejections_sentence() or "none read"
            return f"none of the {self.rows_read} raw rows is valid: {reasons}; see rejected.jsonl"
        if self.rejected_share > self.max_rejected_share:
            return (
                f"{self.lost} of {self.rows_read} raw rows were rejected ({self.rejected_share:.2%}), "
                f"above the tenant's max_rejected_share of {self.max_rejected_share:g}: {self.rejections_sentence()}; "
                "see rejected.jsonl"
            )
        for split in ("train", "validation"):
            if not self.splits[split]:
                return f"the {split} split is empty ({self.valid} valid rows in all); more records are needed"
        return None
