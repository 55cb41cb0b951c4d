"""Show a training run's progress from the progress table: each trial's status and its validation curve.

    python -m scripts.training_progress RUN_ID [--table NAME | --stack dev-Foundation] [--region R]
        [--metric validation:auc] [--direction maximize|minimize] [--output run.png]

The progress Lambda (lambda/progress) writes one row per reported round and one status row per
trial under ``RUN#<run_id>`` (docs/training-pipeline.md), so one query gives the whole run. This
prints a table of the run's trials (status, rounds reported, the latest and the best value of the
metric, why a trial failed) and draws the trials' curves of that metric into a PNG.

The table is ``--table``, else the ``ProgressTableName`` output of the ``--stack`` (the environment's
Foundation stack), else the environment variable ``MLOPS_PROGRESS_TABLE``: a flag given on the
command line wins over one left in the shell. Without ``--metric`` the first ``validation:*``
metric (by name) is shown. Whether higher is better is guessed from the metric's name (losses and
errors are minimized) unless ``--direction`` says.

Exit status: 0 shown, 1 AWS refused (credentials, permissions, a missing table), 2 nothing to show
(a run without rows, no table named, a stack without the output).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

TABLE_ENVIRONMENT_VARIABLE = "MLOPS_PROGRESS_TABLE"
STACK_OUTPUT = "ProgressTableName"
VALIDATION_PREFIX = "validation:"
# Metrics where lower is better, by the name after "<channel>:": xgboost's and scikit-learn's losses and errors.
MINIMIZED = re.compile(r"(loss|error|rmse|rmsle|mae|mse|mape|mphe|deviance|merror)", re.IGNORECASE)
STATUS_SUFFIX = "#STATUS"


class NothingToShow(Exception):
    """A one-line reason to exit with status 2."""


@dataclass
class Trial:
    trial: str
    model: str = "-"
    job: str = "-"
    status: str = "-"
    failure_reason: str | None = None
    # (epoch, metrics) in epoch order; a metric is None for a round where it was not finite.
    rounds: list[tuple[int, dict[str, float | None]]] = field(default_factory=list)

    def values(self, metric: str) -> list[tuple[int, float]]:
        """The rounds that reported ``metric`` with a finite value, as (epoch, value)."""
        return [(epoch, value) for epoch, metrics in self.rounds if (value := metrics.get(metric)) is not None]


# Where the table is.


def progress_table_from_stack(cloudformation: Any, stack_name: str, output_key: str = STACK_OUTPUT) -> str:
    """The ``ProgressTableName`` output (or ``output_key``) of a deployed stack, such as ``dev-Foundation``."""
    try:
        [stack] = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ValidationError":
            raise NothingToShow(f"stack {stack_name!r} does not exist in this account and region") from None
        raise
    for output in stack.get("Outputs", []):
        if output.get("OutputKey") == output_key:
            return str(output["OutputValue"])
    raise NothingToShow(f"stack {stack_name!r} has no output {output_key!r}; is it the environment's Foundation?")


def resolve_table(args: argparse.Namespace, environ: Mapping[str, str], cloudformation: Any | None = None) -> str:
    if args.table:
        return str(args.table)
    if args.stack:
        client = cloudformation or boto3.client("cloudformation", region_name=args.region)
        return progress_table_from_stack(client, args.stack)
    if environ.get(TABLE_ENVIRONMENT_VARIABLE):
        return environ[TABLE_ENVIRONMENT_VARIABLE]
    raise NothingToShow(
        f"name the progress table: --table NAME, --stack <env>-Foundation or {TABLE_ENVIRONMENT_VARIABLE}"
    )


# Reading and shaping the rows.


def plain(value: Any) -> Any:
    """A DynamoDB attribute value (``{"S": ...}``, ``{"N": ...}``, ``{"M": ...}``, ...) as Python."""
    [(kind, inner)] = value.items()
    if kind == "S":
        return inner
    if kind == "N":
        return Decimal(inner)
    if kind == "NULL":
        return None
    if kind == "BOOL":
        return bool(inner)
    if kind == "M":
        return {name: plain(item) for name, item in inner.items()}
    if kind == "L":
        return [plain(item) for item in inner]
    return inner  # sets and binary: not written by the progress Lambda; kept as DynamoDB returns them


def read_rows(dynamodb: Any, table: str, run_id: str) -> Iterator[dict[str, Any]]:
    """Every row of the run, in key order (each trial's rounds in epoch order, then its status)."""
    pages = dynamodb.get_paginator("query").paginate(
        TableName=table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"RUN#{run_id}"}},
    )
    for page in pages:
        for item in page.get("Items", []):
            yield {name: plain(value) for name, value in item.items()}


def number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


def trials_of(rows: Iterable[dict[str, Any]]) -> list[Trial]:
    """The run's trials in trial order, from its progress and status rows."""
    trials: dict[str, Trial] = {}
    for row in rows:
        name = str(row.get("trial") or row["sk"].split("#")[1])
        trial = trials.setdefault(name, Trial(name))
        trial.model = str(row.get("model") or trial.model)
        if row.get("kind") == "status" or row["sk"].endswith(STATUS_SUFFIX):
            trial.status = str(row.get("status") or "-")
            trial.job = str(row.get("training_job_name") or trial.job)
            trial.failure_reason = row.get("failure_reason") or None
        else:
            metrics = row.get("metrics") or {}
            trial.rounds.append((int(row["epoch"]), {str(k): number(v) for k, v in metrics.items()}))
            if trial.status == "-":  # a status row, which comes last, names the job that ran last
                trial.job = str(row.get("training_job_name") or trial.job)
    for trial in trials.values():
        trial.rounds.sort(key=lambda item: item[0])
    return [trials[name] for name in sorted(trials)]


def choose_metric(trials: Sequence[Trial], requested: str | None) -> str | None:
    if requested:
        return requested
    names = {name for trial in trials for _, metrics in trial.rounds for name in metrics}
    validation = sorted(name for name in names if name.startswith(VALIDATION_PREFIX))
    return validation[0] if validation else None


def direction_of(metric: str, requested: str | None) -> str:
    if requested:
        return requested
    return "minimize" if MINIMIZED.search(metric.split(":", 1)[-1]) else "maximize"


def best(values: Sequence[float], direction: str) -> float | None:
    if not values:
        return None
    return min(values) if direction == "minimize" else max(values)


# Output.


def shown(value: float | int | str | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def table_text(trials: Sequence[Trial], metric: str | None, direction: str) -> str:
    """An aligned text table, one line per trial, then one line per failure reason."""
    label = metric or "metric"
    header = ["trial", "model", "job", "status", "rounds", "last round", f"latest {label}", f"best {label}"]
    lines = [header]
    for trial in trials:
        values = [value for _, value in trial.values(metric)] if metric else []
        lines.append(
            [
                trial.trial,
                trial.model,
                trial.job,
                trial.status,
                shown(len(trial.rounds)),
                shown(trial.rounds[-1][0] if trial.rounds else None),
                shown(values[-1] if values else None),
                shown(best(values, direction)),
            ]
        )
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    rendered = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in lines
    ]
    failures = [trial for trial in trials if trial.failure_reason]
    if failures:
        rendered.append("")
        rendered.extend(f"trial {trial.trial} ({trial.status}): {trial.failure_reason}" for trial in failures)
    return "\n".join(rendered)


def plot(trials: Sequence[Trial], metric: str | None, direction: str, run_id: str, output: Path) -> None:
    """Each trial's curve of ``metric`` against the round, drawn with Agg (no display needed)."""
    figure = Figure(figsize=(9, 5.5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    curves = [(trial, trial.values(metric)) for trial in trials] if metric else []
    drawn = 0
    for trial, points in curves:
        if not points:
            continue
        epochs, values = zip(*points, strict=True)
        label = f"{trial.trial} {trial.model} ({trial.status})"
        axes.plot(epochs, values, marker="o" if len(points) < 30 else None, markersize=3, label=label)
        drawn += 1
    if drawn:
        axes.legend(fontsize="small", loc="best")
    else:
        axes.text(0.5, 0.5, f"no {metric or 'validation metric'} reported", ha="center", va="center")
    better = "higher" if direction == "maximize" else "lower"
    axes.set_title(f"run {run_id}: {metric or '-'} ({better} is better)")
    axes.set_xlabel("round")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel(metric or "")
    axes.grid(True, alpha=0.3)
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, format="png")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.training_progress", description="A training run's trials and validation curves."
    )
    parser.add_argument("run_id", metavar="RUN_ID", help="the run: its Step Functions execution name")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--table", help="the progress table's name")
    where.add_argument("--stack", help=f"read the table's name from this stack's {STACK_OUTPUT} output")
    parser.add_argument("--region", help="AWS region (default: the SDK's, from AWS_REGION or the profile)")
    parser.add_argument("--metric", help="the metric to show (default: the first validation:* metric)")
    parser.add_argument("--direction", choices=["maximize", "minimize"], help="whether higher or lower is better")
    parser.add_argument("--output", type=Path, help="the PNG to write (default: training-progress-RUN_ID.png)")
    return parser.parse_args(argv)


def main(argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> int:
    args = parse_args(argv)
    output = args.output or Path(f"training-progress-{args.run_id}.png")
    try:
        table = resolve_table(args, environ)
        rows = list(read_rows(boto3.client("dynamodb", region_name=args.region), table, args.run_id))
        if not rows:
            raise NothingToShow(f"run {args.run_id!r} has no rows in table {table!r}")
    except NothingToShow as reason:
        print(f"training progress: {reason}", file=sys.stderr)
        return 2
    except (BotoCoreError, ClientError) as error:
        print(f"training progress: {error}", file=sys.stderr)
        return 1
    trials = trials_of(rows)
    metric = choose_metric(trials, args.metric)
    direction = direction_of(metric, args.direction) if metric else (args.direction or "maximize")
    print(f"run {args.run_id}: {len(trials)} trial(s) in {table}")
    print(table_text(trials, metric, direction))
    if metric and not any(trial.values(metric) for trial in trials):
        print(f"training progress: no trial reported {metric}", file=sys.stderr)
    plot(trials, metric, direction, args.run_id, output)
    print(f"plot: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
