"""A training run's progress from the progress table: where the table and the execution are, and its trials.

The progress Lambda (lambda/progress) keeps, under ``RUN#<run_id>`` (docs/training-pipeline.md),
each trial's status and one summary per attempt (``TRIAL#...``: its latest round and the round its
model would keep), and apart from them each attempt's curve (``CURVE#...``). One query of the
``TRIAL#`` rows gives the standing of a run of 10,000 trials; only the curves drawn are read.
``mlops progress`` (mlops_platform/cli/progress.py) shows them; ``progress_view`` ranks and draws them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from typing import Any

import boto3
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from mlops_platform.reports.progress_view import Attempt, Trial

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


def resolve_table(
    table: str | None,
    stack: str | None,
    region: str | None,
    environ: Mapping[str, str],
    cloudformation: Any = None,
    *,
    output_key: str = STACK_OUTPUT,
    variable: str = TABLE_ENVIRONMENT_VARIABLE,
    what: str = "the progress table",
    missing: type[Exception] = NothingToShow,
) -> str:
    """The table: ``table``, else the ``output_key`` output of ``stack`` (``ProgressTableName``), else
    ``environ[variable]`` (``MLOPS_PROGRESS_TABLE``); ``missing`` names ``what`` where none names it.

    The run ledger is found the same way (run_report.resolve_table)."""
    if table:
        return table
    if stack:
        client = cloudformation or boto3.client("cloudformation", region_name=region)
        return progress_table_from_stack(client, stack, output_key)
    if environ.get(variable):
        return environ[variable]
    raise missing(f"name {what}: --table NAME, --stack <env>-Foundation or {variable}")


def resolve_execution(
    run_id: str,
    *,
    state_machine: str | None,
    training_stack: str | None,
    stack: str | None,
    region: str | None,
    environ: Mapping[str, str],
) -> str:
    """The run's execution ARN: ``arn:<partition>:states:<region>:<account>:execution:<machine>:<run_id>``."""
    machine = state_machine
    if not machine and not training_stack and stack and stack.endswith("-Foundation"):
        training_stack = stack.removesuffix("-Foundation") + "-Training"  # stacks/stage.py names them so
    if not machine and training_stack:
        cloudformation = boto3.client("cloudformation", region_name=region)
        machine = progress_table_from_stack(cloudformation, training_stack, STATE_MACHINE_OUTPUT)
    machine = machine or environ.get(STATE_MACHINE_ENVIRONMENT_VARIABLE)
    if not machine:
        raise NothingToShow(
            "--follow needs the run's state machine: --state-machine ARN, --training-stack <env>-Training, "
            f"--stack <env>-Foundation or {STATE_MACHINE_ENVIRONMENT_VARIABLE}"
        )
    if ":stateMachine:" not in machine:
        raise NothingToShow(f"{machine!r} is not a state machine ARN (arn:...:states:...:stateMachine:<name>)")
    return machine.replace(":stateMachine:", ":execution:", 1) + f":{run_id}"


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
