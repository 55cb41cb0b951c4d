"""SageMaker's naming rules for what evaluation names: the model package group and the baseline job.

The package group of a tenant's model is ``<prefix>-<tenant>-<model>``; a trial's training job is
``<prefix>-<h>-<trial>-a<n>`` (the plan names it), and its baseline job ``<prefix>-<h>-<trial>-bl``.
"""

from __future__ import annotations

import re

from mlops_platform.evaluation.errors import InvalidName

SAGEMAKER_NAME_PATTERN = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
SAGEMAKER_NAME_MAX = 63
ATTEMPT_SUFFIX = re.compile(r"-a(?P<attempt>\d+)$")


def group_name(prefix: str, tenant: str, model: str) -> str:
    return checked_name(f"{prefix}-{tenant}-{model}", "model package group name")


def baseline_job_name(training_job_name: str) -> str:
    """``<prefix>-<h>-<trial>-a<n>`` -> ``<prefix>-<h>-<trial>-bl``: no longer than the trial's first job name,
    which the plan checked against SageMaker's limit, so a run that trains can always name its baselines."""
    return checked_name(ATTEMPT_SUFFIX.sub("", training_job_name) + "-bl", "baseline job name")


def checked_name(name: str, what: str) -> str:
    """``name`` if SageMaker allows it (at most 63 letters, digits and single hyphens), else ``InvalidName``."""
    if len(name) > SAGEMAKER_NAME_MAX or not SAGEMAKER_NAME_PATTERN.fullmatch(name):
        raise InvalidName(
            f"{what} {name!r} has {len(name)} characters; SageMaker allows at most "
            f"{SAGEMAKER_NAME_MAX} letters, digits and single hyphens"
        )
    return name
