"""Show a training run's progress: its best trials, a summary, their validation curves.

    mlops progress RUN_ID [--table NAME | --stack dev-Foundation] [--region R]
        [--metric validation:auc] [--direction maximize|minimize] [--top 10] [--output run.png]
        [--follow [--every 30] [--state-machine ARN | --training-stack dev-Training]]

It prints a summary of the run from the progress table (trials per status, the best value, failures
grouped by reason), a table of the --top best trials (ranked by the metric's value at the round each
trial keeps: the value evaluate ranks it by) and draws their curves into a PNG. A trial that ran more
than once (a spot restart, a retry) has a curve per attempt: the latest solid, earlier ones dashed,
never joined.

--follow refreshes every --every seconds until the run's Step Functions execution ends, then exits 0
if it succeeded and 3 otherwise. The execution is RUN_ID of --state-machine, else of the
StateMachineArn output of --training-stack, else of <env>-Training when --stack <env>-Foundation
names the table, else of MLOPS_STATE_MACHINE_ARN.

The table is --table, else the ProgressTableName output of the --stack (the environment's Foundation
stack), else the environment variable MLOPS_PROGRESS_TABLE: a flag given on the command line wins
over one left in the shell. Without --metric the trials' objective (what the training image reports
as objective) is shown, else the first validation:* metric. Whether higher is better is guessed from
the metric's name (losses and errors are minimized) unless --direction says.

Exit status: 0 shown (a followed run succeeded), 1 AWS refused (credentials, permissions, a missing
table), 2 nothing to show (a run without rows, no table or state machine named, a stack without the
output), 3 a followed run ended without succeeding.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mlops_platform.cli import CommandError

HELP = "a training run's best trials and validation curves (--follow: until the run ends)"
DEFAULT_TOP = 10
DEFAULT_EVERY_SECONDS = 30
FAILED = 3


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", metavar="RUN_ID", help="the run: its Step Functions execution name")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--table", help="the progress table's name")
    where.add_argument("--stack", help="read the table's name from this stack's ProgressTableName output")
    parser.add_argument("--region", help="AWS region (default: the SDK's, from AWS_REGION or the profile)")
    parser.add_argument("--metric", help="the metric to show (default: the trials' objective)")
    parser.add_argument("--direction", choices=["maximize", "minimize"], help="whether higher or lower is better")
    parser.add_argument("--top", type=int, default=DEFAULT_TOP, help=f"trials shown and drawn (default {DEFAULT_TOP})")
    parser.add_argument("--output", type=Path, help="the PNG to write (default: training-progress-RUN_ID.png)")
    parser.add_argument("--follow", action="store_true", help="refresh until the run's execution ends")
    parser.add_argument("--every", type=float, default=DEFAULT_EVERY_SECONDS, help="seconds between refreshes")
    machine = parser.add_mutually_exclusive_group()
    machine.add_argument("--state-machine", help="the training state machine's ARN (with --follow)")
    machine.add_argument("--training-stack", help="read it from this stack's StateMachineArn output")


def show(args: argparse.Namespace, dynamodb: Any, table: str, output: Path) -> int:
    """Read the run's standing and its best trials' curves, print and draw them; the number of trials."""
    from mlops_platform.reports import progress_view as view  # matplotlib: only when a run is shown
    from mlops_platform.reports.progress import TRIAL_PREFIX, read_curves, read_rows, trials_of

    trials = trials_of(read_rows(dynamodb, table, args.run_id, TRIAL_PREFIX))
    if not trials:
        return 0
    metric = view.choose_metric(trials, args.metric)
    direction = view.direction_of(metric, args.direction) if metric else (args.direction or "maximize")
    best = view.ranked(trials, metric, direction)[: args.top]
    read_curves(dynamodb, table, args.run_id, best)
    print(view.report_text(args.run_id, table, trials, metric, direction, args.top))
    if metric and not any(trial.value(metric) is not None for trial in trials):
        print(f"mlops progress: no trial reported {metric}", file=sys.stderr)
    view.plot(best, metric, direction, args.run_id, output, total=len(trials))
    print(f"plot: {output}")
    return len(trials)


def run(
    args: argparse.Namespace, environ: Mapping[str, str] = os.environ, sleep: Callable[[float], None] = time.sleep
) -> int:
    if args.top < 1:
        raise CommandError(f"--top has value {args.top}; allowed: a whole number of at least 1")
    if not args.every > 0:
        raise CommandError(f"--every has value {args.every}; allowed: a number of seconds above 0")
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

    from mlops_platform.reports.progress import NothingToShow, resolve_execution, resolve_table

    output = args.output or Path(f"training-progress-{args.run_id}.png")
    try:
        table = resolve_table(args.table, args.stack, args.region, environ)
        dynamodb = boto3.client("dynamodb", region_name=args.region)
        if not args.follow:
            if not show(args, dynamodb, table, output):
                raise NothingToShow(f"run {args.run_id!r} has no rows in table {table!r}")
            return 0
        execution = resolve_execution(
            args.run_id,
            state_machine=args.state_machine,
            training_stack=args.training_stack,
            stack=args.stack,
            region=args.region,
            environ=environ,
        )
        stepfunctions = boto3.client("stepfunctions", region_name=args.region)
        while True:
            # The status first: rows read after it include every one written before the run ended.
            status = stepfunctions.describe_execution(executionArn=execution)["status"]
            print(f"\n-- {time.strftime('%H:%M:%S')} execution {args.run_id}: {status}", flush=True)
            if not show(args, dynamodb, table, output):
                print(f"run {args.run_id}: no trial has reported yet")
            if status != "RUNNING":
                return 0 if status == "SUCCEEDED" else FAILED
            sys.stdout.flush()
            sleep(args.every)
    except NothingToShow as reason:
        raise CommandError(str(reason)) from None
    except (BotoCoreError, ClientError) as error:
        print(f"mlops progress: {error}", file=sys.stderr)
        return 1
