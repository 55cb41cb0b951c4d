"""Taken training job names: decide what a trial does when its job name is already taken (``ResourceInUse``).

Training job names stay taken forever, and the plan derives them from run, trial and attempt, so a
retried or redriven execution that calls ``CreateTrainingJob`` again gets ``ResourceInUse`` instead of
starting a duplicate. The job under that name is this trial's own earlier attempt, and what to do
depends on its state:

* ``InProgress`` or ``Stopping``: ``wait`` (the state machine waits, then asks again);
* ``Completed``: ``reuse`` it; ``job`` holds the fields the ``.sync`` task would have returned;
* ``Failed`` or ``Stopped``: ``retry`` under the next attempt's name (``...-a<n+1>``), or ``give-up``
  once ``MAX_ATTEMPTS`` attempts (``a0`` … ``a<MAX_ATTEMPTS-1>``) have been made.

Input, as the state machine builds it: ``{"item": <the plan item>, "current": {"job_name",
"attempt"}}``, ``current`` naming the attempt whose create failed (the item keeps attempt 0). Without
``current``, the item's own ``job_name`` is used, and an ``error`` key (the caught error) is allowed.
Output: ``{"action", "job_name", "attempt", "job"}``: the name and attempt to use next (the same
ones for ``wait``, ``reuse`` and ``give-up``), and the trimmed description (``null`` for ``wait``).

Errors (Step Functions sees the class name): ``InvalidResolverInput``, ``TrainingJobNotFound`` (the
name is not taken after all: nothing to resolve), ``JobNameCollision`` (the job belongs to another
run or trial), ``InvalidName`` (the next attempt's name would exceed 63 characters).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from mlops_platform.aws import Log, error_code
from mlops_platform.runs.names import SAGEMAKER_NAME_MAX, is_sagemaker_name

ATTEMPT_SUFFIX = re.compile(r"^(?P<stem>.+)-a(?P<attempt>\d+)$")
WAIT_STATUSES = frozenset({"InProgress", "Stopping"})
RETRY_STATUSES = frozenset({"Failed", "Stopped"})
# DescribeTrainingJob's fields a decision returns: the job's identity, and what the .sync task's output holds that
# evaluation reads (reuse) or what says why it failed (retry, give-up).
JOB_FIELDS = ("TrainingJobName", "TrainingJobArn", "TrainingJobStatus")
REUSED_FIELDS = (*JOB_FIELDS, "FinalMetricDataList", "ModelArtifacts", "HyperParameters")
FAILED_FIELDS = (*JOB_FIELDS, "SecondaryStatus", "FailureReason")
NOT_FOUND_CODES = frozenset({"ValidationException", "ResourceNotFound"})


class ResolverError(Exception):
    """A name conflict that cannot be resolved, in one sentence."""


class InvalidResolverInput(ResolverError):
    """The input has no usable item."""


class TrainingJobNotFound(ResolverError):
    """DescribeTrainingJob does not know the job the create call said exists."""


class JobNameCollision(ResolverError):
    """The job under this name was started for another run or trial."""


class InvalidName(ResolverError):
    """The next attempt's name breaks SageMaker's naming rules."""


def parse_item(event: Any) -> dict[str, Any]:
    """The trial's identity and the job name to resolve: ``current.job_name`` if given, else the item's."""
    if not isinstance(event, dict) or not isinstance(event.get("item"), dict):
        raise InvalidResolverInput("the input must be an object with an 'item' (the trial's plan item)")
    item = event["item"]
    for key in ("job_name", "run_id", "trial"):
        if not isinstance(item.get(key), str) or not item[key]:
            raise InvalidResolverInput(f"the item has no {key!r} string")
    current = event.get("current")
    if current is not None:
        if not isinstance(current, dict) or not isinstance(current.get("job_name"), str):
            raise InvalidResolverInput("'current' must be an object with the attempt's 'job_name'")
        item = {**item, "job_name": current["job_name"]}
    if not ATTEMPT_SUFFIX.match(item["job_name"]):
        raise InvalidResolverInput(f"job name {item['job_name']!r} does not end in -a<attempt>")
    return item


def attempt_of(job_name: str) -> int:
    """The attempt number the name carries: the name, not the item's counter, is what SageMaker knows."""
    match = ATTEMPT_SUFFIX.match(job_name)
    assert match is not None, job_name
    return int(match["attempt"])


def next_job_name(job_name: str) -> str:
    """``...-a<n>`` -> ``...-a<n+1>``, checked against SageMaker's 63-character limit."""
    match = ATTEMPT_SUFFIX.match(job_name)
    assert match is not None, job_name
    name = f"{match['stem']}-a{int(match['attempt']) + 1}"
    if not is_sagemaker_name(name):
        raise InvalidName(f"the next attempt's job name {name!r} would exceed {SAGEMAKER_NAME_MAX} characters")
    return name


def jsonable(value: Any) -> Any:
    """A describe response as Step Functions can carry it: times as ISO strings, no NaN or infinity."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return value


def trimmed(job: Mapping[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    return {field: jsonable(job[field]) for field in fields if field in job}


def decide(item: Mapping[str, Any], job: Mapping[str, Any], max_attempts: int) -> dict[str, Any]:
    """The action for the trial given its job's description; pure, so every branch is tested alone."""
    job_name = item["job_name"]
    attempt = attempt_of(job_name)
    identity = job.get("HyperParameters") or {}
    for key, expected in (("mlops_run_id", item["run_id"]), ("mlops_trial", item["trial"])):
        if key in identity and identity[key] != expected:
            raise JobNameCollision(
                f"training job {job_name!r} has {key}={identity[key]!r}, not {expected!r}: "
                "another run or trial holds this name"
            )
    status = job.get("TrainingJobStatus")
    if status in WAIT_STATUSES:
        return _result("wait", job_name, attempt, None)
    if status == "Completed":
        return _result("reuse", job_name, attempt, trimmed(job, REUSED_FIELDS))
    if status in RETRY_STATUSES:
        if attempt + 1 >= max_attempts:
            return _result("give-up", job_name, attempt, trimmed(job, FAILED_FIELDS))
        return _result("retry", next_job_name(job_name), attempt + 1, trimmed(job, FAILED_FIELDS))
    raise ResolverError(f"training job {job_name!r} has an unexpected status {status!r}")


def _result(action: str, job_name: str, attempt: int, job: Any) -> dict[str, Any]:
    return {"action": action, "job_name": job_name, "attempt": attempt, "job": job}


class Resolver:
    def __init__(self, sagemaker_client: Any, *, max_attempts: int, log: Log):
        if max_attempts < 1:
            raise ValueError(f"MAX_ATTEMPTS is {max_attempts}; allowed: 1 or more")
        self.sagemaker = sagemaker_client
        self.max_attempts = max_attempts
        self.log = log

    def __call__(self, event: Any) -> dict[str, Any]:
        item = parse_item(event)
        error = event["error"] if isinstance(event.get("error"), dict) else {}
        self.log.info(
            "resolving a taken job name",
            extra={"job_name": item["job_name"], "error": error.get("Error"), "cause": str(error.get("Cause"))[:500]},
        )
        try:
            job = self.sagemaker.describe_training_job(TrainingJobName=item["job_name"])
        except ClientError as failure:
            if error_code(failure) in NOT_FOUND_CODES:
                raise TrainingJobNotFound(
                    f"training job {item['job_name']!r} cannot be described "
                    f"({failure.response['Error'].get('Message', '')}); the create call's error was not ResourceInUse"
                ) from None
            raise
        return decide(item, job, self.max_attempts)
