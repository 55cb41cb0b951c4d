"""Deploy the dev environment onto an embedded AWS on this machine and run the example tenant's loop.

No AWS account and no Docker: moto's server runs in this process (mlops_platform/local), the
project's own bootstrap template is deployed with `cdk bootstrap`, and the synthesized dev stacks
with the pinned `cdk deploy`, through AWS_ENDPOINT_URL. Custom resources are answered by their own
handler code; then the example dataset goes through the deployed ingestion queue and function.
What is emulated or stubbed is listed in the README ("What runs locally, and what is emulated").

Each run starts a fresh emulator and stops it at the end: nothing is kept between runs, so running
it twice in a row starts clean both times. `make local` synthesizes dev first (into cdk.out/local).

The last line printed is one JSON object: stacks (each stack's status), stubbed_types,
rows_ingested, trials (succeeded/failed), best (model, metric, value) and seconds. The loop's later
phases (serving, drift) are not built yet: their keys are left out, and a line before the object
says so. Exit status 0 when every stack deployed, the records went through and the training run
succeeded, 1 otherwise (the log says why).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mlops_platform.cli import CommandError

HELP = "deploy dev onto an embedded AWS here (moto, the real CDK CLI) and run the example loop"

ROOT = Path.cwd()
DEFAULT_ASSEMBLY = Path("cdk.out") / "local"
DEFAULT_DATA = Path("data") / "example" / "breast-cancer.jsonl"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--assembly", type=Path, default=DEFAULT_ASSEMBLY,
        help=f"the synthesized cloud assembly holding the environment (default: {DEFAULT_ASSEMBLY})",
    )  # fmt: skip
    parser.add_argument("--environment", default="dev", help="the environment's stage in the assembly (default: dev)")
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA,
        help=f"records to ingest, <tenant>/<dataset>.jsonl (default: {DEFAULT_DATA})",
    )  # fmt: skip
    parser.add_argument("--no-ingest", action="store_true", help="deploy only")
    parser.add_argument(
        "--models", help="train only these of the tenant's models, comma-separated (a smaller grid; default: all)"
    )
    parser.add_argument(
        "--log", type=Path, help="where the CLI's and the handlers' output goes (default: <assembly>/local.log)"
    )


def _project_name(root: Path) -> str:
    """config/project.yaml's name, which `make bootstrap` names the execution policy after."""
    import yaml

    path = root / "config" / "project.yaml"
    if not path.is_file():
        raise CommandError(f"{path} is missing: run mlops local from the repository root")
    return str(yaml.safe_load(path.read_text(encoding="utf-8"))["name"])


def run(args: argparse.Namespace) -> int:
    from mlops_platform.local import deploy, platform

    root = ROOT
    assembly = args.assembly if args.assembly.is_absolute() else root / args.assembly
    data = None if args.no_ingest else (args.data if args.data.is_absolute() else root / args.data)
    if data is not None and not data.is_file():
        raise CommandError(f"--data {args.data} is not a file: give a <tenant>/<dataset>.jsonl of records")
    try:
        deploy.assembly_stacks(assembly, args.environment)
    except deploy.DeployError as error:
        raise CommandError(f"{error} (make local does both)") from error
    log = args.log or assembly / "local.log"
    models = [name.strip() for name in args.models.split(",") if name.strip()] if args.models else None
    summary = platform.run(
        assembly, root=root, project=_project_name(root), environment=args.environment, log_path=log, data=data,
        train=data is not None, models=models,
    )  # fmt: skip

    for stack, status in summary.stacks.items():
        reason = summary.failures.get(stack)
        print(f"{stack:<24} {status}" + (f": {reason}" if reason else ""))
    if summary.stubbed_types:
        print(f"stubbed (moto cannot create them): {', '.join(summary.stubbed_types)}")
    if summary.rows_ingested is not None:
        counts = summary.ingestion
        print(
            f"ingestion: {counts.sent} records sent, {counts.landed} rows landed in the raw zone, "
            f"{counts.quarantined} quarantine objects, {counts.failed_messages} messages failed"
        )
    if summary.training is not None:
        run = summary.training
        jobs = ", ".join(
            f"{sum(1 for kind_, _, _ in run.jobs if kind_ == kind)} {kind}"
            for kind in ("processing", "training", "transform")
        )
        print(f"training run {run.execution_arn.rsplit(':', 1)[-1]}: {run.status}; jobs run locally: {jobs}")
        if summary.as_json().get("trials"):
            print(f"trials: {summary.as_json()['trials']}; best: {summary.as_json().get('best')}")
    print("phases: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in summary.phases.items()))
    if summary.error:
        print(f"failed: {summary.error}")
    print(f"log: {log}")
    print(f"not built yet: the loop's {', '.join(platform.NOT_BUILT)} phases (their keys are left out of the summary)")
    print(json.dumps(summary.as_json(), sort_keys=False))
    ok = summary.deployed and summary.error is None and (data is None or summary.rows_ingested is not None)
    return 0 if ok else 1
