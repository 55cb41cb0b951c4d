"""Point an endpoint variant at an approved model package, after every check the approval path runs.

    mlops promote --environment dev --endpoint churn --variant Champion \\
        --model-package arn:aws:sagemaker:eu-west-1:111111111111:model-package/mlops-dev-churn-xgboost/3 [--dry-run]

The checks (mlops_platform/registry/checks.py): Approved, the endpoint's tenant, one of the
environment's groups and the endpoint's model, an algorithm the variant's flavour serves, the feature
schema, the artifact under the tenant's runs, the drift baseline beside it, and the pointer exists.
A package older than the one the pointer names is refused unless --allow-older (mlops rollback returns
to the model served before). The write takes the environment's deployment lock and is recorded in
the run ledger (PROMOTION#<endpoint>). The endpoint takes the model at the next deploy of the
environment's Serving stack.

Exit status: 0 done (or, with --dry-run, would be), 1 refused or AWS failed, 2 a bad command line or
configuration.
"""

from __future__ import annotations

import argparse
from typing import Any

from mlops_platform.cli import promotion

HELP = "point an endpoint variant at an approved model package (recorded; deploy Serving to apply)"


def configure(parser: argparse.ArgumentParser) -> None:
    promotion.configure(parser, variant=True)
    parser.add_argument("--model-package", required=True, help="the approved model package version's ARN")
    parser.add_argument(
        "--allow-older", action="store_true", help="write a package older than the one the pointer names"
    )


def run(args: argparse.Namespace, **seams: Any) -> int:
    return promotion.execute(promotion.PROMOTE, args, **seams)
