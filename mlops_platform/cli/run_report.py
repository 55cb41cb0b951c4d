"""Print a training run's report from the run ledger: the run, its trials per model, the chosen trials, the packages.

    mlops run-report RUN_ID [--table NAME | --stack dev-Foundation] [--region R] [--json]

The report shows the run (tenant, status, when it started and ended, how its execution ended), a
table of each model's trials (job name, hyperparameters, the objective metric's value, status and
why a trial is not usable, the chosen trial marked *) and each registered package with its approval
status as SageMaker says now, else as the ledger recorded it. A run still training has no trials
here yet: its progress is in `mlops progress`.

The table is --table, else the RunLedgerTableName output of the --stack (the environment's
Foundation stack), else the environment variable MLOPS_LEDGER_TABLE.

Exit status: 0 shown, 1 nothing to show or AWS refused (a run without records, a missing stack or
output, credentials, permissions, a missing table), 2 a bad command line (no table named).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping

from mlops_platform.cli import CommandError

HELP = "a training run's report from the run ledger: trials, metrics, chosen models, approvals"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", metavar="RUN_ID", help="the run: its Step Functions execution name")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--table", help="the run ledger table's name")
    where.add_argument("--stack", help="read the table's name from this stack's RunLedgerTableName output")
    parser.add_argument("--region", help="AWS region (default: the SDK's, from AWS_REGION or the profile)")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON document")


def run(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> int:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

    from mlops_platform.reports.progress import NothingToShow, read_rows
    from mlops_platform.reports.run_report import NoTableNamed, report, resolve_table, text

    try:
        table = resolve_table(args.table, args.stack, args.region, environ)
        rows = list(read_rows(boto3.client("dynamodb", region_name=args.region), table, args.run_id))
        if not rows:
            raise NothingToShow(f"run {args.run_id!r} has no records in table {table!r}")
        has_packages = any(str(row.get("sk", "")).startswith("PACKAGE#") for row in rows)
        sagemaker = boto3.client("sagemaker", region_name=args.region) if has_packages else None
        document = report(args.run_id, table, rows, sagemaker)
    except NoTableNamed as reason:
        raise CommandError(str(reason)) from None
    except NothingToShow as reason:
        print(f"mlops run-report: {reason}", file=sys.stderr)
        return 1
    except (BotoCoreError, ClientError) as error:
        print(f"mlops run-report: {error}", file=sys.stderr)
        return 1
    print(json.dumps(document, indent=2, sort_keys=True) if args.json else text(document))
    return 0
