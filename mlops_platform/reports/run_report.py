"""A training run's report from the run ledger: the run, its trials per model, the chosen trials, the packages.

The ledger keeps a run under ``RUN#<run_id>`` (docs/training-pipeline.md): the run record (``RUN``,
written by the plan Lambda, updated by evaluate), one ``TRIAL#<trial>`` record per planned trial and
one ``PACKAGE#<model>`` record per registered model package (both written by the evaluate Lambda).
One query gives them all. The report shows:

- the run: tenant, status, when it started and ended, the tally. The plan step records ``planned``,
  evaluation ``evaluated`` or ``no-usable-trial``; how the execution ended comes last, from Step
  Functions' own status events (lambda/run_outcome/handler.py): ``succeeded``, ``failed``,
  ``timed-out`` or ``aborted``, with the state it failed in, the error and the cause, and
  ``running`` again while a redrive runs. A run whose trials failed beyond the tolerance says so;
- per model, a table of its trials (job name, hyperparameters, the objective metric's value, status
  and why a trial is not usable), the chosen trial marked ``*``;
- each registered package with its approval status as SageMaker's ``DescribeModelPackage`` says
  now (a person may have approved or rejected it since), else as the ledger recorded it at
  registration; the report says which.

Trials are recorded when the run is evaluated: a run still training shows none here (its progress
is in ``mlops progress``). Records of kinds this report does not know (later
issues add ``DECISION#``, ``APPROVAL#``, ``POINTER#``) are counted, not shown.

``mlops run-report`` (mlops_platform/cli/run_report.py) prints it, as text or JSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from mlops_platform.reports import progress
from mlops_platform.reports.progress import progress_table_from_stack
from mlops_platform.runs.prepared import data_lines

TABLE_ENVIRONMENT_VARIABLE = "MLOPS_LEDGER_TABLE"
STACK_OUTPUT = "RunLedgerTableName"  # stacks/foundation.py
FROM_SAGEMAKER, FROM_LEDGER = "sagemaker", "ledger"
# mlops_platform/evaluation/trials.py: counts() keys and the statuses they tally, in the order shown.
TALLY = [
    ("succeeded", "succeeded"),
    ("failed", "failed"),
    ("missing_metrics", "without metrics"),
    ("no_result", "without a result"),
]


class NoTableNamed(Exception):
    """A one-line reason to exit with status 2."""


# Where the ledger is.


def ledger_table_from_stack(cloudformation: Any, stack_name: str) -> str:
    """The ``RunLedgerTableName`` output of a deployed stack, such as ``dev-Foundation``."""
    return progress_table_from_stack(cloudformation, stack_name, STACK_OUTPUT)


def resolve_table(
    table: str | None, stack: str | None, region: str | None, environ: Mapping[str, str], cloudformation: Any = None
) -> str:
    """The ledger: ``table``, else the ``RunLedgerTableName`` output of ``stack``, else ``MLOPS_LEDGER_TABLE``."""
    return progress.resolve_table(
        table,
        stack,
        region,
        environ,
        cloudformation,
        output_key=STACK_OUTPUT,
        variable=TABLE_ENVIRONMENT_VARIABLE,
        what="the run ledger",
        missing=NoTableNamed,
    )


# Shaping the records.


def jsonable(value: Any) -> Any:
    """A ledger value as JSON carries it: Decimals as int or float."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(item) for item in value]
    return value


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def trial_entry(record: Mapping[str, Any]) -> dict[str, Any]:
    """A ``TRIAL#`` record as the report shows it (evaluate leaves out attributes whose value is None)."""
    return {
        "trial": str(record.get("trial") or str(record["sk"]).split("#", 1)[1]),
        "job_name": record.get("job_name"),
        "attempt": record.get("attempt"),
        "status": record.get("status"),
        "reason": record.get("reason"),
        "hyperparameters": record.get("hyperparameters") or {},
        "objective_metric": record.get("objective_metric"),
        "objective_value": _number(record.get("objective_value")),
        "metrics": record.get("metrics") or {},
        "best": bool(record.get("best")),
        "training_job_arn": record.get("training_job_arn"),
        "model_data": record.get("model_data"),
    }


def approval_of(sagemaker: Any, record: Mapping[str, Any]) -> dict[str, Any]:
    """The package's approval status now, from SageMaker; else the one the ledger recorded, with why."""
    recorded = record.get("approval_status")
    arn = record.get("model_package_arn")
    if sagemaker is None or not arn:
        return {"approval_status": recorded, "approval_source": FROM_LEDGER, "approval_note": "not looked up"}
    try:
        package = sagemaker.describe_model_package(ModelPackageName=arn)
        return {"approval_status": str(package["ModelApprovalStatus"]), "approval_source": FROM_SAGEMAKER}
    except ClientError as error:
        note = str(error.response.get("Error", {}).get("Code") or error)
    except (BotoCoreError, KeyError) as error:
        note = type(error).__name__
    return {"approval_status": recorded, "approval_source": FROM_LEDGER, "approval_note": note}


def package_entry(record: Mapping[str, Any], sagemaker: Any) -> dict[str, Any]:
    return {
        "model": record.get("model"),
        "trial": record.get("trial"),
        "job_name": record.get("job_name"),
        "model_package_group": record.get("model_package_group"),
        "model_package_arn": record.get("model_package_arn"),
        "metric": record.get("metric"),
        "value": _number(record.get("value")),
        "created_at": record.get("created_at"),
        "recorded_approval_status": record.get("approval_status"),
        **approval_of(sagemaker, record),
        "evaluation": record.get("evaluation"),
        "model_data": record.get("model_data"),
    }


def report(run_id: str, table: str, rows: Iterable[Mapping[str, Any]], sagemaker: Any = None) -> dict[str, Any]:
    """The run's report as one JSON-ready document; ``sagemaker`` (a client, or None) reads approvals live."""
    run: dict[str, Any] = {}
    trials: list[dict[str, Any]] = []
    packages: list[dict[str, Any]] = []
    other = 0
    tenants = set()
    for row in (jsonable(dict(row)) for row in rows):
        sk = str(row.get("sk", ""))
        if row.get("tenant"):
            tenants.add(str(row["tenant"]))
        if sk == "RUN":
            run = row
        elif sk.startswith("TRIAL#") and sk.count("#") == 1:
            trials.append({"model": row.get("model") or "-", "algorithm": row.get("algorithm"), **trial_entry(row)})
        elif sk.startswith("PACKAGE#"):
            packages.append(row)
        else:
            other += 1
    # Models in the plan's order, then any the trials name that the run record does not.
    order = [str(model) for model in run.get("models") or []]
    order += sorted({trial["model"] for trial in trials} - set(order))
    package_order = {model: index for index, model in enumerate(order)}
    records = sorted(
        packages,
        key=lambda package: (package_order.get(str(package.get("model")), len(order)), str(package.get("model"))),
    )
    packages = [package_entry(record, sagemaker) for record in records]  # read live in the order shown
    models: list[dict[str, Any]] = []
    for model in order:
        own = sorted((trial for trial in trials if trial["model"] == model), key=lambda trial: trial["trial"])
        chosen = [trial["trial"] for trial in own if trial["best"]]
        algorithms = {trial["algorithm"] for trial in own} - {None}
        own = [{key: value for key, value in trial.items() if key not in ("model", "algorithm")} for trial in own]
        models.append(
            {
                "model": model,
                "algorithm": algorithms.pop() if len(algorithms) == 1 else None,
                "best_trial": chosen[0] if chosen else None,
                "trials": own,
            }
        )
    metrics = {trial["objective_metric"] for model in models for trial in model["trials"]} - {None}
    return {
        "run_id": run_id,
        "table": table,
        "run": {
            "tenant": run.get("tenant") or (tenants.pop() if len(tenants) == 1 else None),
            "status": run.get("status"),
            "started_at": run.get("started_at"),
            "finished_at": run.get("finished_at"),
            "evaluated_at": run.get("evaluated_at"),
            "failed_state": run.get("failed_state"),
            "error": run.get("error"),
            "cause": run.get("cause"),
            "reason": run.get("reason"),
            "tolerance_exceeded": bool(run.get("tolerance_exceeded")),
            "redrive_count": run.get("redrive_count") or 0,
            "day": run.get("day"),
            "models": run.get("models") or [],
            "trial_count": run.get("trial_count"),
            "trials": run.get("trials"),
            "objective_metric": metrics.pop() if len(metrics) == 1 else None,
            "data": run.get("data"),  # what prepare kept and rejected (runs.prepared)
            "recorded": bool(run),
        },
        "models": models,
        "packages": packages,
        "other_records": other,
    }


# Output.


def shown(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def hyperparameters_text(values: Mapping[str, Any]) -> str:
    return " ".join(f"{name}={shown(value)}" for name, value in sorted(values.items())) or "defaults"


def aligned(lines: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(line[column]) for line in lines) for column in range(len(lines[0]))]
    return [
        indent + "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    ]


def text(document: Mapping[str, Any]) -> str:
    run, models, packages = document["run"], document["models"], document["packages"]
    metric = run["objective_metric"] or "objective"
    lines = [f"run {document['run_id']} of tenant {shown(run['tenant'])}: {shown(run['status'])}"]
    if not run["recorded"]:
        lines.append("  (the ledger has no RUN record for it: the plan step never recorded this run)")
    lines.append(f"  started    {shown(run['started_at'])}")
    if run["finished_at"]:
        lines.append(f"  finished   {run['finished_at']}")
    elif run["evaluated_at"]:
        lines.append(f"  evaluated  {run['evaluated_at']} (the execution's end is not recorded yet)")
    else:
        lines.append("  finished   -")
    if run["redrive_count"]:
        lines.append(f"  redriven   {run['redrive_count']} time(s)")
    if run["status"] in ("failed", "timed-out", "aborted"):
        lines.append(
            f"  failed in  {shown(run['failed_state'])}: {shown(run['error'])}"
            + (f": {run['cause']}" if run["cause"] else "")
        )
    if run["reason"]:
        label = "more trials failed than tolerated" if run["tolerance_exceeded"] else "reason"
        lines.append(f"  {label}: {run['reason']}")
    tally = run["trials"]
    if isinstance(tally, dict):
        parts = ", ".join(f"{tally.get(key, 0)} {label}" for key, label in TALLY)
        lines.append(f"  trials     {tally.get('total', 0)}: {parts}")
    else:
        lines.append(f"  trials     {shown(run['trial_count'])} planned")
    for index, line in enumerate(data_lines(run["data"])):
        lines.append(f"  {'rows' if index == 0 else '':<9}  {line}")
    lines.append(f"  objective  {shown(run['objective_metric'])}")
    lines.append(f"  ledger     {document['table']}")
    for model in models:
        lines.append("")
        best = next((trial for trial in model["trials"] if trial["trial"] == model["best_trial"]), None)
        if best:
            chosen = f"chosen trial {best['trial']}, {metric} {shown(best['objective_value'])}"
        elif model["trials"]:
            chosen = "no usable trial"
        else:
            chosen = "no trial recorded (trials are recorded when the run is evaluated)"
        algorithm = f" ({model['algorithm']})" if model["algorithm"] else ""
        lines.append(f"model {model['model']}{algorithm}: {chosen}")
        if not model["trials"]:
            continue
        table = [["", "trial", "job", "hyperparameters", metric, "status", "reason"]]
        for trial in model["trials"]:
            table.append(
                [
                    "*" if trial["best"] else "",
                    trial["trial"],
                    shown(trial["job_name"]),
                    hyperparameters_text(trial["hyperparameters"]),
                    shown(trial["objective_value"]),
                    shown(trial["status"]),
                    shown(trial["reason"]),
                ]
            )
        lines.extend(aligned(table))
    lines.append("")
    if packages:
        lines.append("model packages")
        table = [["model", "trial", metric, "approval", "from", "package"]]
        for package in packages:
            source = package["approval_source"]
            if package.get("approval_note"):
                source += f" ({package['approval_note']})"
            table.append(
                [
                    shown(package["model"]),
                    shown(package["trial"]),
                    shown(package["value"]),
                    shown(package["approval_status"]),
                    source,
                    shown(package["model_package_arn"]),
                ]
            )
        lines.extend(aligned(table))
    else:
        lines.append("model packages: none registered")
    if document["other_records"]:
        lines.append(f"({document['other_records']} other ledger record(s) of the run not shown)")
    return "\n".join(lines)
