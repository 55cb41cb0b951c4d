"""The delivery pipeline's smoke test of an environment: score through its API, then train and wait.

    python -m mlops_platform.cli smoke-test [--api-url URL] [--state-machine-arn ARN] [--role-arn ARN]
        [--environment staging] [--endpoint example] [--variants Champion,Challenger]
        [--tenant example] [--models xgboost] [--timeout-seconds 6900]

The pipeline runs it after staging deploys, with every setting in the environment (SCORING_API_URL and
STATE_MACHINE_ARN from the stacks' outputs, SMOKE_TEST_ROLE_ARN, SMOKE_TEST_ENDPOINT, SMOKE_TEST_TENANT,
SMOKE_TEST_MODELS, SMOKE_TEST_TIMEOUT_SECONDS, and optionally SMOKE_TEST_ENVIRONMENT and
SMOKE_TEST_VARIANTS); a flag on the command line wins. It scores one sample of the example dataset on
each variant of the endpoint (SigV4), then trains the tenant's models and waits for the run; a run
still going at the timeout is stopped (mlops_platform/delivery/smoke.py).

Exit status: 0 both passed, 1 a check failed (one line saying which and why), 2 a setting is missing
or malformed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mlops_platform.cli import CommandError, build_parser
from mlops_platform.delivery.smoke import (
    OPTIONS,
    Send,
    SettingError,
    Settings,
    SmokeTestFailure,
    one_line,
    send_https,
    session_for,
    settings_from,
    smoke_test,
)

HELP = "the delivery pipeline's smoke test: score each variant through the API, then train and wait"


def configure(parser: argparse.ArgumentParser) -> None:
    for name, (variable, default) in OPTIONS.items():
        where = f"{variable}, else {default}" if variable and default else variable or default or "generated"
        parser.add_argument(f"--{name.replace('_', '-')}", help=f"default: {where}")


def parse_settings(argv: Sequence[str], environ: Mapping[str, str]) -> Settings:
    """The settings of ``mlops smoke-test <argv>`` with ``environ``: SettingError for a bad one."""
    args = build_parser("smoke-test").parse_args(["smoke-test", *argv])
    return settings_from(vars(args), environ)


def run(
    args: argparse.Namespace,
    environ: Mapping[str, str] | None = None,
    *,
    sts: Any | None = None,
    send: Send = send_https,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

    try:
        settings = settings_from(vars(args), os.environ if environ is None else environ)
    except SettingError as error:
        raise CommandError(str(error)) from None
    try:
        smoke_test(settings, session=session_for(settings, sts), send=send, sleep=sleep, clock=clock)
    except SmokeTestFailure as error:
        print(f"smoke test failed: {error}", file=sys.stderr)
        return 1
    except (ClientError, BotoCoreError) as error:
        print(f"smoke test failed: AWS refused ({one_line(error)})", file=sys.stderr)
        return 1
    print("smoke test passed")
    return 0
