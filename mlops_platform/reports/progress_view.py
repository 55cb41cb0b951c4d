"""A training run's standing as text and a PNG: its trials, ranked, their summary and their curves.

``mlops_platform.reports.progress`` reads the progress table into these ``Trial`` objects; this module
ranks them by the value each keeps, summarizes them (trials per status, the best value, failures
grouped by reason), prints the best few as a table and draws their curves, one legend entry a trial
and a curve an attempt, so a run of 10,000 trials reads as well as one of six.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

VALIDATION_PREFIX = "validation:"
# Metrics where lower is better, by the name after "<channel>:": xgboost's and scikit-learn's losses and errors.
MINIMIZED = re.compile(r"(loss|error|rmse|rmsle|mae|mse|mape|mphe|deviance|merror)", re.IGNORECASE)
FAILURE_REASONS_SHOWN = 5


@dataclass
class Attempt:
    """One run of a trial's container: its latest round, the round it would keep, and (when read) its curve."""

    attempt: str
    job: str = "-"
    objective: str | None = None
    epoch: int = 0
    metrics: dict[str, float | None] = field(default_factory=dict)
    kept_epoch: int = 0
    kept_metrics: dict[str, float | None] = field(default_factory=dict)
    # (epoch, metrics) in epoch order; a metric is None for a round where it was not finite.
    curve: list[tuple[int, dict[str, float | None]]] = field(default_factory=list)

    def values(self, metric: str) -> list[tuple[int, float]]:
        """The curve's rounds that reported ``metric`` with a finite value, as (epoch, value)."""
        return [(epoch, value) for epoch, metrics in self.curve if (value := metrics.get(metric)) is not None]


@dataclass
class Trial:
    trial: str
    model: str = "-"
    job: str = "-"
    status: str = "-"
    failure_reason: str | None = None
    attempts: list[Attempt] = field(default_factory=list)  # in the order they ran

    @property
    def current(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    def value(self, metric: str) -> float | None:
        """The metric at the round the trial's model keeps (its latest attempt's): what evaluate ranks it by."""
        return self.current.kept_metrics.get(metric) if self.current else None

    def latest(self, metric: str) -> float | None:
        return self.current.metrics.get(metric) if self.current else None


# Ranking.


def choose_metric(trials: Sequence[Trial], requested: str | None) -> str | None:
    if requested:
        return requested
    objectives = Counter(a.objective for t in trials for a in t.attempts if a.objective)
    if objectives:
        return objectives.most_common(1)[0][0]
    names = {name for trial in trials for attempt in trial.attempts for name in attempt.metrics}
    validation = sorted(name for name in names if name.startswith(VALIDATION_PREFIX))
    return validation[0] if validation else None


def direction_of(metric: str, requested: str | None) -> str:
    if requested:
        return requested
    return "minimize" if MINIMIZED.search(metric.split(":", 1)[-1]) else "maximize"


def ranked(trials: Sequence[Trial], metric: str | None, direction: str) -> list[Trial]:
    """Trials with a value, best first (ties in trial order), then those without one, in trial order."""
    if not metric:
        return list(trials)
    sign = 1 if direction == "minimize" else -1
    values = {trial.trial: value for trial in trials if (value := trial.value(metric)) is not None}
    valued = sorted(
        (trial for trial in trials if trial.trial in values), key=lambda t: (sign * values[t.trial], t.trial)
    )
    return valued + [trial for trial in trials if trial.trial not in values]


# Output.


def shown(value: float | int | str | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def aligned(lines: list[list[str]]) -> list[str]:
    widths = [max(len(line[column]) for line in lines) for column in range(len(lines[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in lines]


def summary_text(trials: Sequence[Trial], order: Sequence[Trial], metric: str | None, direction: str) -> list[str]:
    """How many trials in each status, the best value so far, and the failures grouped by reason."""
    statuses = Counter(trial.status if trial.status != "-" else "without a status yet" for trial in trials)
    lines = [", ".join(f"{count} {status}" for status, count in sorted(statuses.items()))] if trials else []
    if metric:
        valued = [trial for trial in order if trial.value(metric) is not None]
        better = "higher" if direction == "maximize" else "lower"
        lines.append(f"{len(valued)} of {len(trials)} trial(s) reported {metric} ({better} is better)")
        if valued:
            best = valued[0]
            lines.append(f"best {metric}: {shown(best.value(metric))} (trial {best.trial}, {best.model})")
    reasons = Counter(trial.failure_reason for trial in trials if trial.failure_reason)
    if reasons:
        lines.append(f"failures ({sum(reasons.values())} trial(s)):")
        for reason, count in reasons.most_common(FAILURE_REASONS_SHOWN):
            example = next(trial.trial for trial in trials if trial.failure_reason == reason)
            lines.append(f"  {count} x {reason} (e.g. trial {example})")
        if len(reasons) > FAILURE_REASONS_SHOWN:
            lines.append(f"  and {len(reasons) - FAILURE_REASONS_SHOWN} other reason(s)")
    return lines


def table_text(shown_trials: Sequence[Trial], metric: str | None) -> str:
    """An aligned text table, one line per trial shown."""
    label = metric or "metric"
    header = ["trial", "model", "job", "status", "attempts", "round", "kept round", f"latest {label}", f"kept {label}"]
    lines = [header]
    for trial in shown_trials:
        current = trial.current
        lines.append(
            [
                trial.trial,
                trial.model,
                trial.job,
                trial.status,
                shown(len(trial.attempts)),
                shown(current.epoch if current else None),
                shown(current.kept_epoch if current else None),
                shown(trial.latest(metric) if metric else None),
                shown(trial.value(metric) if metric else None),
            ]
        )
    return "\n".join(aligned(lines))


def report_text(run_id: str, table: str, trials: Sequence[Trial], metric: str | None, direction: str, top: int) -> str:
    order = ranked(trials, metric, direction)
    lines = [f"run {run_id}: {len(trials)} trial(s) in {table}", *summary_text(trials, order, metric, direction)]
    if len(trials) > top:
        lines.append(f"the {top} best of {len(trials)} trials by {metric or 'their metric'} (--top to change):")
    lines.append(table_text(order[:top], metric))
    return "\n".join(lines)


def plot(
    trials: Sequence[Trial], metric: str | None, direction: str, run_id: str, output: Path, total: int | None = None
) -> Figure:
    """Each trial's curves of ``metric`` against the round, one legend entry a trial, drawn with Agg."""
    figure = Figure(figsize=(9, 5.5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    drawn = 0
    for trial in trials if metric else []:
        color = f"C{drawn % 10}"
        for attempt in trial.attempts:
            points = attempt.values(metric) if metric else []
            if not points:
                continue
            epochs, values = zip(*points, strict=True)
            latest = attempt is trial.current
            axes.plot(
                epochs,
                values,
                color=color,
                linestyle="-" if latest else "--",
                alpha=1.0 if latest else 0.5,
                marker="o" if len(points) < 30 else None,
                markersize=3,
                label=f"{trial.trial} {trial.model} ({trial.status})" if latest else None,
            )
            drawn += latest
    if drawn:
        axes.legend(fontsize="small", loc="best")
    else:
        axes.text(0.5, 0.5, f"no {metric or 'validation metric'} reported", ha="center", va="center")
    better = "higher" if direction == "maximize" else "lower"
    scope = f", the {len(trials)} best of {total} trials" if total and total > len(trials) else ""
    axes.set_title(f"run {run_id}: {metric or '-'} ({better} is better{scope})")
    axes.set_xlabel("round")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel(metric or "")
    axes.grid(True, alpha=0.3)
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, format="png")
    return figure
