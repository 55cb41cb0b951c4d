"""The names a training run gives its executions and SageMaker jobs, and the rules they follow.

The execution's name is the run id (the plan derives keys and job names from it, the run-outcome function
finds the run's record by it); SageMaker's name rule bounds every job name the plan derives and every next
attempt's name the job-reuse step derives.
"""

from __future__ import annotations

import hashlib
import re

from mlops_platform.naming import SAGEMAKER_NAME_MAX, SAGEMAKER_NAME_PATTERN

# Execution names allow more, but the run id becomes S3 keys, ledger keys and hyperparameters.
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,80}")
HASH_DIGITS = 10
TRIAL_DIGITS = 5


def is_sagemaker_name(name: str) -> bool:
    """Whether SageMaker accepts ``name`` for a job, model or package group: at most 63 letters, digits and hyphens."""
    return len(name) <= SAGEMAKER_NAME_MAX and SAGEMAKER_NAME_PATTERN.fullmatch(name) is not None


def run_hash(run_id: str) -> str:
    """First 10 hex digits of sha256(run_id): short, stable, and the same on every retry."""
    return hashlib.sha256(run_id.encode("utf-8")).hexdigest()[:HASH_DIGITS]


def trial_id(number: int) -> str:
    return f"{number:0{TRIAL_DIGITS}d}"
