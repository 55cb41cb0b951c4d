"""What a run's prepare step kept and rejected, as the run's ledger record, its report and its notices carry it.

``prepare`` writes ``report.json`` under the run's ``prepare/`` prefix (``data.prepare_report``); evaluation
reads it, keeps ``run_data`` of it in the run's ledger record (``data``) and in each model's evaluation
document (``data``: the package's model-quality statistics, which the approval notice prints), and the run
report shows it. So rows a run rejected within the tenant's ``max_rejected_share`` are never silent.
Standard library only: the approval function and the CLI read it too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

REPORT_FILE = "prepare/report.json"  # under the run's prefix, artifacts/runs/<tenant>/<run_id>/
# The fields of report.json a run carries: the counts, why rows were rejected, new columns, the warnings.
FIELDS = (
    "rows_read",
    "valid",
    "rejected",
    "rejected_share",
    "max_rejected_share",
    "top_rejections",
    "unknown_columns",
    "warnings",
)


def report_key(tenant: str, run_id: str) -> str:
    return f"artifacts/runs/{tenant}/{run_id}/{REPORT_FILE}"


def run_data(report: Any) -> dict[str, Any] | None:
    """The part of a prepare report.json the run carries; None for anything that is not such a report."""
    if not isinstance(report, dict) or not isinstance(report.get("rows_read"), int):
        return None
    return {name: report.get(name) for name in FIELDS}


def data_lines(data: Mapping[str, Any] | None) -> list[str]:
    """``rows  178 read, 175 valid, 3 rejected (1.69%; at most 5% allowed)``, then each warning."""
    if not data:
        return []
    share = data.get("rejected_share")
    limit = data.get("max_rejected_share")
    lines = [
        f"{data.get('rows_read')} read, {data.get('valid')} valid, {data.get('rejected')} rejected"
        + (f" ({share:.2%}" if isinstance(share, int | float) else " (")
        + (f"; at most {limit:.2%} allowed)" if isinstance(limit, int | float) else ")")
    ]
    for rejection in data.get("top_rejections") or []:
        if isinstance(rejection, dict):
            columns = ", ".join(str(c) for c in rejection.get("columns") or [])
            lines.append(
                f"rejected: {rejection.get('reason')} {rejection.get('rows')}" + (f" ({columns})" if columns else "")
            )
    unknown = data.get("unknown_columns") or {}
    if isinstance(unknown, dict) and unknown:
        lines.append(
            "unknown columns, ignored: " + ", ".join(f"{name} ({count})" for name, count in sorted(unknown.items()))
        )
    lines.extend(f"warning: {warning}" for warning in data.get("warnings") or [])
    return lines
