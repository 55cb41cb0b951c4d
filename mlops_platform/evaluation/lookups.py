"""Trials the Map's results leave open, looked up in SageMaker.

A trial the results leave open (not mentioned, pending, or "succeeded" with only the ``CreateTrainingJob``
response as its ``job``, as when ``.sync`` is removed for moto) is looked up by its job name with
``DescribeTrainingJob``, following its attempts (``-a0``, ``-a1``, …) while they failed. So moto runs, whose
ResultWriter writes no result files, evaluate like real ones. This needs ``sagemaker:DescribeTrainingJob`` on
the environment's training jobs; without it, such trials stay without a result (logged), never a crash.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from mlops_platform.aws import error_code
from mlops_platform.evaluation.names import ATTEMPT_SUFFIX
from mlops_platform.evaluation.results import Outcome, is_open, jsonable
from mlops_platform.evaluation.services import Services

if TYPE_CHECKING:
    from mlops_platform.evaluation.trials import Trial

JOB_LOOKUP_WORKERS = 8  # parallel DescribeTrainingJob calls for trials the results leave open
MAX_ATTEMPT_LOOKUPS = 10  # attempts of one trial looked up, at most (a0 … a9)
JOB_NOT_FOUND_CODES = frozenset({"ValidationException", "ResourceNotFound"})
ACCESS_DENIED_CODES = frozenset({"AccessDeniedException", "AccessDenied"})


class TrialLookups(Services):
    """Describes the jobs of open trials, in parallel; stops asking once SageMaker denies it."""

    _lookups_denied = False

    def look_up_open_trials(self, trials: dict[str, Trial], outcomes: dict[str, Outcome]) -> dict[str, Outcome]:
        """Outcomes from SageMaker itself for trials whose results say nothing about their job."""
        open_trials = [
            (trial, outcomes.get(key)) for key, trial in sorted(trials.items()) if is_open(outcomes.get(key))
        ]
        if not open_trials:
            return {}
        self.log.info("looking up trials the results leave open", extra={"count": len(open_trials)})
        found: dict[str, Outcome] = {}
        self._lookups_denied = False
        with ThreadPoolExecutor(max_workers=JOB_LOOKUP_WORKERS) as pool:
            for trial, outcome in zip(
                (trial for trial, _ in open_trials),
                pool.map(lambda pair: self.look_up(*pair), open_trials),
                strict=True,
            ):
                if outcome is not None:
                    found[trial.trial] = outcome
        return found

    def look_up(self, trial: Trial, outcome: Outcome | None) -> Outcome | None:
        """The trial's latest attempt as SageMaker describes it; None when no attempt exists (or may be read)."""
        item = outcome.item if outcome is not None else {"trial": trial.trial, "job_name": trial.job_name}
        name = trial.job_name if outcome is None else str(item.get("job_name") or trial.job_name)
        latest = None
        for _ in range(MAX_ATTEMPT_LOOKUPS):
            job = self.describe_job(name)
            if job is None:
                break
            latest = job
            suffix = ATTEMPT_SUFFIX.search(name)
            if job.get("TrainingJobStatus") not in ("Failed", "Stopped") or suffix is None:
                break
            name = name[: suffix.start()] + f"-a{int(suffix['attempt']) + 1}"
        if latest is None:
            return None
        status = latest.get("TrainingJobStatus")
        described = jsonable(latest)
        if status == "Completed":
            return Outcome(status="SUCCEEDED", item=item, job=described)
        if status in ("Failed", "Stopped"):
            return Outcome(
                status="FAILED",
                item={**item, "job_name": latest.get("TrainingJobName", name)},
                job=described,
                error=f"training job {status}",
                cause=latest.get("FailureReason"),
            )
        return Outcome(status="RUNNING", item=item, job=described, error=f"training job {status}")

    def describe_job(self, name: str) -> dict[str, Any] | None:
        if self._lookups_denied:
            return None
        try:
            job: dict[str, Any] = self.sagemaker.describe_training_job(TrainingJobName=name)
        except ClientError as error:
            code = error_code(error)
            if code in JOB_NOT_FOUND_CODES:
                return None
            if code in ACCESS_DENIED_CODES:
                self._lookups_denied = True
                self.log.warning("may not describe training jobs; open trials stay without a result")
                return None
            raise
        return job
