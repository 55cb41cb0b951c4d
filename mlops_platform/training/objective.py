"""Which round a trial keeps: the tenant's objective picks the best round, early stopping ends the search.

The model a job saves, the metrics it reports (its last metric line, which SageMaker keeps, and
``metadata.json``) and the baseline computed from the saved model all describe one round, the
*kept* round:

- early stopping on (``early_stopping_rounds`` > 0): the best round by the objective metric
  (``mlops_objective``: the tenant's ``objective.metric``; logloss or rmse when none is given).
  Training stops once that many rounds pass without improving it; XGBoost's model is cut back to
  the kept round, the linear model is the copy taken at that round.
- early stopping off (0): every round is trained and the last one is kept: the model as trained.

A round improves on the best only with a finite value that is strictly better: a tie keeps the
earlier, smaller model. The state is plain JSON so a checkpoint carries it, and a job resumed
after a spot interruption keeps the best round it found before the interruption.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

# Every validation metric the image reports, per problem type, and the direction in which it
# improves. config/tenants.py validates tenants' objectives against the same table (a test keeps
# the two equal).
OBJECTIVES: dict[str, dict[str, str]] = {
    "binary": {"validation:auc": "maximize", "validation:accuracy": "maximize", "validation:logloss": "minimize"},
    "multiclass": {
        "validation:mlogloss": "minimize",
        "validation:accuracy": "maximize",
        "validation:f1_macro": "maximize",
    },
    "regression": {"validation:rmse": "minimize", "validation:mae": "minimize"},
}
DEFAULT_OBJECTIVE = {
    "binary": "validation:logloss",
    "multiclass": "validation:mlogloss",
    "regression": "validation:rmse",
}
# The values each metric can take, (lowest, highest or None): an approval threshold outside them is never met.
METRIC_RANGES: dict[str, tuple[float, float | None]] = {
    "auc": (0, 1),
    "accuracy": (0, 1),
    "f1_macro": (0, 1),
    "logloss": (0, None),
    "mlogloss": (0, None),
    "rmse": (0, None),
    "mae": (0, None),
}


@dataclass(frozen=True)
class Objective:
    metric: str
    maximize: bool

    @classmethod
    def of(cls, problem_type: str, metric: str | None = None) -> Objective:
        """The objective ``metric`` (default: the problem type's loss); KeyError for one the image does not report."""
        name = metric or DEFAULT_OBJECTIVE[problem_type]
        return cls(metric=name, maximize=OBJECTIVES[problem_type][name] == "maximize")

    def value(self, metrics: dict[str, float]) -> float | None:
        value = metrics.get(self.metric)
        return float(value) if value is not None and math.isfinite(value) else None

    def improves(self, metrics: dict[str, float], best: dict[str, float]) -> bool:
        value, incumbent = self.value(metrics), self.value(best)
        if value is None:
            return False
        if incumbent is None:
            return True
        return value > incumbent if self.maximize else value < incumbent


@dataclass
class KeptRound:
    """The best and the last round seen so far, and from them the round the model keeps."""

    objective: Objective
    patience: int
    best_round: int = 0
    best_metrics: dict[str, float] = field(default_factory=dict)
    last_round: int = 0
    last_metrics: dict[str, float] = field(default_factory=dict)

    def record(self, round_number: int, metrics: dict[str, float]) -> None:
        if self.best_round == 0 or self.objective.improves(metrics, self.best_metrics):
            self.best_round, self.best_metrics = round_number, dict(metrics)
        self.last_round, self.last_metrics = round_number, dict(metrics)

    @property
    def is_best(self) -> bool:
        """Whether the last round recorded is the best so far."""
        return self.best_round == self.last_round

    @property
    def should_stop(self) -> bool:
        return bool(self.patience) and self.last_round - self.best_round >= self.patience

    @property
    def kept(self) -> tuple[int, dict[str, float]]:
        """(round, metrics) of the model the job saves if training ends now."""
        if self.patience:
            return self.best_round, self.best_metrics
        return self.last_round, self.last_metrics

    def state(self) -> dict[str, Any]:
        return {
            "objective": self.objective.metric,
            "best_round": self.best_round,
            "best_metrics": self.best_metrics,
            "last_round": self.last_round,
            "last_metrics": self.last_metrics,
        }

    @classmethod
    def restore(cls, objective: Objective, patience: int, state: dict[str, Any] | None) -> KeptRound:
        """The tracker a checkpoint saved; a fresh one without a state, or with another objective's."""
        kept = cls(objective=objective, patience=patience)
        if state and state.get("objective") == objective.metric:
            kept.best_round, kept.best_metrics = int(state["best_round"]), dict(state["best_metrics"])
            kept.last_round, kept.last_metrics = int(state["last_round"]), dict(state["last_metrics"])
        return kept
