"""Show a training run's progress from the progress table: its best trials, a summary, their validation curves.

    python -m scripts.training_progress RUN_ID [--table NAME | --stack dev-Foundation] [--region R]
        [--metric validation:auc] [--direction maximize|minimize] [--top 10] [--output run.png]
        [--follow [--every 30] [--state-machine ARN | --training-stack dev-Training]]

The progress Lambda (lambda/progress) keeps, under ``RUN#<run_id>`` (docs/training-pipeline.md),
each trial's status and one summary per attempt (``TRIAL#...``: its latest round and the round its
model would keep), and apart from them each attempt's curve (``CURVE#...``). One query of the
``TRIAL#`` rows gives the standing of a run of 10,000 trials; only the curves drawn are read. The
script prints a summary of the run (trials per status, the best value, failures grouped by
reason), a table of the ``--top`` best trials (ranked by the metric's value at the round each
trial keeps: the value evaluate ranks it by) and draws their curves into a PNG. A trial that ran
more than once (a spot restart, a retry) has a curve per attempt: the latest solid, earlier ones
dashed, never joined.

``--follow`` refreshes every ``--every`` seconds until the run's Step Functions execution ends, then
exits 0 if it succeeded and 3 otherwise. The execution is ``RUN_ID`` of ``--state-machine``, else
of the ``StateMachineArn`` output of ``--training-stack``, else of ``<env>-Training`` when
``--stack <env>-Foundation`` names the table, else of ``MLOPS_STATE_MACHINE_ARN``.

The table is ``--table``, else the ``ProgressTableName`` output of the ``--stack`` (the environment's
Foundation stack), else the environment variable ``MLOPS_PROGRESS_TABLE``: a flag given on the
command line wins over one left in the shell. Without ``--metric`` the trials' objective (what the
training image reports as ``objective``) is shown, else the first ``validation:*`` metric. Whether
higher is better is guessed from the metric's name (losses and errors are minimized) unless
``--direction`` says.

Exit status: 0 shown (a followed run succeeded), 1 AWS refused (credentials, permissions, a missing
table), 2 nothing to show (a run without rows, no table or state machine named, a stack without the
output), 3 a followed run ended without succeeding.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from scripts.progress_view import Attempt, Trial, choose_metric, direction_of, plot, ranked, report_text

TABLE_ENVIRONMENT_VARIABLE = "MLOPS_PROGRESS_TABLE"
STATE_MACHINE_ENVIRONMENT_VARIABLE = "MLOPS_STATE_MACHINE_ARN"
STACK_OUTPUT = "ProgressTableName"
STATE_MACHINE_OUTPUT = "StateMachineArn"  # stacks/training.py
TRIAL_PREFIX = "TRIAL#"  # lambda/progress: statuses and attempt summaries
CURVE_PREFIX = "CURVE#"  # lambda/progress: one row per reported round of an attempt
DEFAULT_TOP = 10
DEFAULT_EVERY_SECONDS = 30


class NothingToShow(Exception):
    """A one-line reason to exit with status 2."""


# Where the table and the execution are.


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


def resolve_execution(args: argparse.Namespace, environ: Mapping[str, str]) -> str:
    """The run's execution ARN: ``arn:<partition>:states:<region>:<account>:execution:<machine>:<run_id>``."""
    machine = args.state_machine
    training_stack = args.training_stack
    if not machine and not training_stack and args.stack and args.stack.endswith("-Foundation"):
        training_stack = args.stack.removesuffix("-Foundation") + "-Training"  # stacks/stage.py names them so
    if not machine and training_stack:
        cloudformation = boto3.client("cloudformation", region_name=args.region)
        machine = progress_table_from_stack(cloudformation, training_stack, STATE_MACHINE_OUTPUT)
    machine = machine or environ.get(STATE_MACHINE_ENVIRONMENT_VARIABLE)
    if not machine:
        raise NothingToShow(
            "--follow needs the run's state machine: --state-machine ARN, --training-stack <env>-Training, "
            f"--stack <env>-Foundation or {STATE_MACHINE_ENVIRONMENT_VARIABLE}"
        )
    if ":stateMachine:" not in machine:
        raise NothingToShow(f"{machine!r} is not a state machine ARN (arn:...:states:...:stateMachine:<name>)")
    return machine.replace(":stateMachine:", ":execution:", 1) + f":{args.run_id}"


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


def read_rows(dynamodb: Any, table: str, run_id: str, prefix: str | None = None) -> Iterator[dict[str, Any]]:
    """Every row of the run (whose sort key starts with ``prefix``, if given), in key order."""
    condition = "pk = :pk"
    values: dict[str, Any] = {":pk": {"S": f"RUN#{run_id}"}}
    if prefix:
        condition += " AND begins_with(sk, :prefix)"
        values[":prefix"] = {"S": prefix}
    pages = dynamodb.get_paginator("query").paginate(
        TableName=table, KeyConditionExpression=condition, ExpressionAttributeValues=values
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


def numbers(metrics: Any) -> dict[str, float | None]:
    return {str(name): number(value) for name, value in (metrics or {}).items()}


def trials_of(rows: Iterable[dict[str, Any]]) -> list[Trial]:
    """The run's trials in trial order, from their status and attempt rows (other rows are ignored)."""
    trials: dict[str, Trial] = {}
    for row in rows:
        kind = row.get("kind")
        if kind not in ("status", "attempt"):
            continue
        trial = trials.setdefault(str(row["trial"]), Trial(str(row["trial"])))
        trial.model = str(row.get("model") or trial.model)
        if kind == "status":
            trial.status = str(row.get("status") or "-")
            trial.job = str(row.get("training_job_name") or trial.job)
            trial.failure_reason = row.get("failure_reason") or None
        else:
            trial.attempts.append(
                Attempt(
                    attempt=str(row["attempt"]),
                    job=str(row.get("training_job_name") or "-"),
                    objective=row.get("objective"),
                    epoch=int(row.get("epoch") or 0),
                    metrics=numbers(row.get("metrics")),
                    kept_epoch=int(row.get("kept_epoch") or 0),
                    kept_metrics=numbers(row.get("kept_metrics")),
                )
            )
            if trial.status == "-":  # a status row, which comes last, names the job that ran last
                trial.job = trial.attempts[-1].job
    for trial in trials.values():
        trial.attempts.sort(key=lambda attempt: attempt.attempt)  # start times: the order they ran
    return [trials[name] for name in sorted(trials)]


def read_curves(dynamodb: Any, table: str, run_id: str, trials: Iterable[Trial]) -> None:
    """Fill in the curve of every attempt of ``trials``: one query per attempt."""
    for trial in trials:
        for attempt in trial.attempts:
            rows = read_rows(dynamodb, table, run_id, f"{CURVE_PREFIX}{trial.trial}#{attempt.attempt}#")
            attempt.curve = sorted((int(row["epoch"]), numbers(row.get("metrics"))) for row in rows)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.training_progress", description="A training run's best trials and validation curves."
    )
    parser.add_argument("run_id", metavar="RUN_ID", help="the run: its Step Functions execution name")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--table", help="the progress table's name")
    where.add_argument("--stack", help=f"read the table's name from this stack's {STACK_OUTPUT} output")
    parser.add_argument("--region", help="AWS region (default: the SDK's, from AWS_REGION or the profile)")
    parser.add_argument("--metric", help="the metric to show (default: the trials' objective)")
    parser.add_argument("--direction", choices=["maximize", "minimize"], help="whether higher or lower is better")
    parser.add_argument("--top", type=int, default=DEFAULT_TOP, help=f"trials shown and drawn (default {DEFAULT_TOP})")
    parser.add_argument("--output", type=Path, help="the PNG to write (default: training-progress-RUN_ID.png)")
    parser.add_argument("--follow", action="store_true", help="refresh until the run's execution ends")
    parser.add_argument("--every", type=float, default=DEFAULT_EVERY_SECONDS, help="seconds between refreshes")
    machine = parser.add_mutually_exclusive_group()
    machine.add_argument("--state-machine", help="the training state machine's ARN (with --follow)")
    machine.add_argument("--training-stack", help=f"read it from this stack's {STATE_MACHINE_OUTPUT} output")
    args = parser.parse_args(argv)
    if args.top < 1:
        parser.error(f"--top has value {args.top}; allowed: a whole number of at least 1")
    if not args.every > 0:
        parser.error(f"--every has value {args.every}; allowed: a number of seconds above 0")
    return args


def show(args: argparse.Namespace, dynamodb: Any, table: str, output: Path) -> int:
    """Read the run's standing and its best trials' curves, print and draw them; the number of trials."""
    trials = trials_of(read_rows(dynamodb, table, args.run_id, TRIAL_PREFIX))
    if not trials:
        return 0
    metric = choose_metric(trials, args.metric)
    direction = direction_of(metric, args.direction) if metric else (args.direction or "maximize")
    best = ranked(trials, metric, direction)[: args.top]
    read_curves(dynamodb, table, args.run_id, best)
    print(report_text(args.run_id, table, trials, metric, direction, args.top))
    if metric and not any(trial.value(metric) is not None for trial in trials):
        print(f"training progress: no trial reported {metric}", file=sys.stderr)
    plot(best, metric, direction, args.run_id, output, total=len(trials))
    print(f"plot: {output}")
    return len(trials)


def main(
    argv: Sequence[str], environ: Mapping[str, str] = os.environ, sleep: Callable[[float], None] = time.sleep
) -> int:
    args = parse_args(argv)
    output = args.output or Path(f"training-progress-{args.run_id}.png")
    try:
        table = resolve_table(args, environ)
        dynamodb = boto3.client("dynamodb", region_name=args.region)
        if not args.follow:
            if not show(args, dynamodb, table, output):
                raise NothingToShow(f"run {args.run_id!r} has no rows in table {table!r}")
            return 0
        execution = resolve_execution(args, environ)
        stepfunctions = boto3.client("stepfunctions", region_name=args.region)
        while True:
            # The status first: rows read after it include every one written before the run ended.
            status = stepfunctions.describe_execution(executionArn=execution)["status"]
            print(f"\n-- {time.strftime('%H:%M:%S')} execution {args.run_id}: {status}", flush=True)
            if not show(args, dynamodb, table, output):
                print(f"run {args.run_id}: no trial has reported yet")
            if status != "RUNNING":
                return 0 if status == "SUCCEEDED" else 3
            sys.stdout.flush()
            sleep(args.every)
    except NothingToShow as reason:
        print(f"training progress: {reason}", file=sys.stderr)
        return 2
    except (BotoCoreError, ClientError) as error:
        print(f"training progress: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
