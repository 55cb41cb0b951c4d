"""Each planned trial's state, and each model's best trial.

Every planned trial ends in exactly one state: ``succeeded`` (its job reported a finite objective metric),
``missing-metrics`` (it completed without one, as moto's jobs do), ``failed`` (its child or job failed; the
cause is kept) or ``no-result`` (neither the results nor SageMaker say how it ended). The best trial of each
model is chosen by the objective's direction, ties to the lower trial number.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlops_platform.evaluation.names import ATTEMPT_SUFFIX
from mlops_platform.evaluation.results import STATUS_RANK, Outcome, failure_reason

SUCCEEDED, MISSING_METRICS, FAILED, NO_RESULT = "succeeded", "missing-metrics", "failed", "no-result"
NOT_RUN = "no result: refused by SageMaker or never started before the Map stopped (more trials failed than tolerated)"
CAUSES_SHOWN = 3
CAUSE_SHOWN_MAX = 200


@dataclass(frozen=True)
class Objective:
    metric: str
    direction: str
    threshold: float

    def better(self, value: float) -> float:
        """A sort key: smaller is better."""
        return -value if self.direction == "maximize" else value

    def meets(self, value: float) -> bool:
        return value >= self.threshold if self.direction == "maximize" else value <= self.threshold


@dataclass
class Trial:
    trial: str
    model: str
    algorithm: str
    job_name: str
    attempt: int
    hyperparameters: dict[str, Any]
    status: str = NO_RESULT
    metrics: dict[str, float] = field(default_factory=dict)
    value: float | None = None
    reason: str | None = None
    model_data: str | None = None
    training_job_arn: str | None = None
    best: bool = False

    def summary(self) -> dict[str, Any]:
        return {
            "trial": self.trial,
            "job_name": self.job_name,
            "attempt": self.attempt,
            "status": self.status,
            "metrics": self.metrics,
            "value": self.value,
            "reason": self.reason,
            "hyperparameters": self.hyperparameters,
            "model_data": self.model_data,
        }


def planned_trial(item: Mapping[str, Any]) -> Trial:
    return Trial(
        trial=item["trial"],
        model=str(item.get("model")),
        algorithm=str(item.get("algorithm")),
        job_name=str(item.get("job_name")),
        attempt=int(item.get("attempt") or 0),
        hyperparameters=dict(item.get("hyperparameters") or {}),
    )


def metric_value(value: Any) -> float | None:
    """A finite float, or None for NaN, infinity, or anything that is not a number."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def identify(trial: Trial, job_name: str, attempt: Any) -> None:
    """The trial's job name, and its attempt: the name's ``-a<n>``, else the given number."""
    trial.job_name = job_name
    suffix = ATTEMPT_SUFFIX.search(job_name)
    if suffix:
        trial.attempt = int(suffix["attempt"])
    elif isinstance(attempt, int) and not isinstance(attempt, bool):
        trial.attempt = attempt


def assess(
    trial: Trial, outcome: Outcome | None, objective: Objective, models_uri: str, *, stopped: bool = False
) -> Trial:
    """Fill in the trial's state from its outcome (pure: the trial object is updated and returned)."""
    if outcome is None:
        trial.status = NO_RESULT
        trial.reason = NOT_RUN if stopped else "the Map's results do not mention this trial"
        return trial
    item = outcome.item
    identify(trial, str(item.get("job_name") or trial.job_name), item.get("attempt"))
    if outcome.status != "SUCCEEDED":
        trial.status = FAILED if STATUS_RANK.get(outcome.status) == 2 else NO_RESULT
        trial.reason = failure_reason(outcome.error or outcome.status, outcome.cause)
        return trial
    job = outcome.job
    if not isinstance(job, dict):
        trial.status, trial.reason = MISSING_METRICS, "the child's output has no 'job'"
        return trial
    # The job's own name: the item keeps attempt 0 while a retried trial ran as ...-a<n>.
    identify(trial, str(job.get("TrainingJobName") or trial.job_name), None)
    trial.training_job_arn = job.get("TrainingJobArn")
    status = job.get("TrainingJobStatus")
    if status is not None and status != "Completed":
        trial.status = FAILED
        trial.reason = failure_reason(f"training job {status}", job.get("FailureReason"))
        return trial
    artifacts = job.get("ModelArtifacts")
    reported = artifacts.get("S3ModelArtifacts") if isinstance(artifacts, dict) else None
    # SageMaker writes <S3OutputPath>/<job name>/output/model.tar.gz; moto's describe may not say so.
    trial.model_data = reported if isinstance(reported, str) else f"{models_uri}/{trial.job_name}/output/model.tar.gz"
    final = job.get("FinalMetricDataList")
    non_finite = []
    for entry in final if isinstance(final, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("MetricName"), str):
            continue
        value = metric_value(entry.get("Value"))
        if value is None:
            non_finite.append(entry["MetricName"])
        else:
            trial.metrics[entry["MetricName"]] = value
    if objective.metric in trial.metrics:
        trial.status, trial.value = SUCCEEDED, trial.metrics[objective.metric]
    elif objective.metric in non_finite:
        trial.status, trial.reason = MISSING_METRICS, f"the objective metric {objective.metric} is not a finite number"
    elif not isinstance(final, list) or not final:
        trial.status, trial.reason = MISSING_METRICS, "the job reported no metrics (no FinalMetricDataList)"
    else:
        trial.status, trial.reason = MISSING_METRICS, f"FinalMetricDataList has no {objective.metric}"
    return trial


def best_trials(trials: list[Trial], objective: Objective) -> dict[str, Trial]:
    """Each model's best usable trial: by the objective's direction, ties to the lower trial number."""
    best: dict[str, Trial] = {}
    ranked: dict[str, tuple[float, str]] = {}
    for trial in trials:
        if trial.status != SUCCEEDED or trial.value is None:
            continue
        rank = (objective.better(trial.value), trial.trial)
        if trial.model not in ranked or rank < ranked[trial.model]:
            best[trial.model], ranked[trial.model] = trial, rank
    for trial in best.values():
        trial.best = True
    return best


def failure_causes(trials: list[Trial], limit: int = CAUSES_SHOWN) -> str:
    """The most frequent reasons trials failed, ``3 trials: reason; 1 trial: reason``, most frequent first."""
    reasons = Counter(
        (trial.reason or "failed")[:CAUSE_SHOWN_MAX] for trial in trials if trial.status == FAILED
    ).most_common()
    shown = [f"{_trials(count)}: {reason}" for reason, count in reasons[:limit]]
    if len(reasons) > limit:
        shown.append(f"{_trials(sum(count for _, count in reasons[limit:]))}: other causes")
    return "; ".join(shown)


def _trials(count: int) -> str:
    return f"{count} trial" + ("" if count == 1 else "s")


def tolerance_exceeded(tally: dict[str, int], tolerated_percentage: int) -> bool:
    """More trials failed than the environment tolerates (what makes the Map stop, counted here too)."""
    return tally["total"] > 0 and 100 * tally["failed"] > tolerated_percentage * tally["total"]


def counts(trials: list[Trial]) -> dict[str, int]:
    statuses = [trial.status for trial in trials]
    return {
        "total": len(trials),
        "succeeded": statuses.count(SUCCEEDED),
        "failed": statuses.count(FAILED),
        "missing_metrics": statuses.count(MISSING_METRICS),
        "no_result": statuses.count(NO_RESULT),
    }
