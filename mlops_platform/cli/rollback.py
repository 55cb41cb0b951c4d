"""Return an endpoint variant to the model it served before: its pointer's newest earlier value.

    mlops rollback --environment dev --endpoint churn --variant Challenger [--dry-run]

The variant's pointer returns to its newest earlier version with another value (SSM parameter
history), description included, so the lineage names the package it serves again; refused when
there is none. The write takes the environment's deployment lock and is recorded in the run ledger
(PROMOTION#<endpoint>). Rolling back the Challenger prints the weights that take it out of traffic.

Exit status: 0 done (or, with --dry-run, would be), 1 refused or AWS failed, 2 a bad command line or
configuration.
"""

from __future__ import annotations

import argparse
from typing import Any

from mlops_platform.cli import promotion

HELP = "return an endpoint variant's pointer to the model it served before (recorded; deploy Serving to apply)"


def configure(parser: argparse.ArgumentParser) -> None:
    promotion.configure(parser, variant=True)


def run(args: argparse.Namespace, **seams: Any) -> int:
    return promotion.execute(promotion.ROLLBACK, args, **seams)
