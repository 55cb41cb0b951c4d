"""Give an endpoint's Champion the model its Challenger serves, after the checks the approval path runs.

    mlops promote-challenger --environment dev --endpoint churn [--dry-run]

The Champion's pointer takes the Challenger's model after the same checks of the package the
Challenger's pointer names, against the Champion's flavour; the Challenger keeps it too. The write
takes the environment's deployment lock and is recorded in the run ledger (PROMOTION#<endpoint>).
It prints the variant weights to apply (context or config) if traffic was shifted during the test.

Exit status: 0 done (or, with --dry-run, would be), 1 refused or AWS failed, 2 a bad command line or
configuration.
"""

from __future__ import annotations

import argparse
from typing import Any

from mlops_platform.cli import promotion

HELP = "give the Champion the Challenger's model (recorded; prints the weights to apply)"


def configure(parser: argparse.ArgumentParser) -> None:
    promotion.configure(parser, variant=False)


def run(args: argparse.Namespace, **seams: Any) -> int:
    return promotion.execute(promotion.PROMOTE_CHALLENGER, args, **seams)
