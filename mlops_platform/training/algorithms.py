"""The algorithms: XGBoost (boosting rounds) and a linear model (SGD epochs), each binary or regression.

Both report every round to a callback, keep the round the tenant's objective chooses (see
``objective``: the best one under early stopping, the last one without), checkpoint so a spot
interruption resumes where it stopped (see ``checkpoints``: the latest two files only), and return
the kept round's model.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import xgboost as xgb
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    roc_auc_score,
    root_mean_squared_error,
)

from mlops_platform.data.encoding import Encoding
from mlops_platform.training.checkpoints import Checkpoints
from mlops_platform.training.linear_model import LinearArtifact
from mlops_platform.training.objective import KeptRound, Objective

# (round, its metrics, (the round the model would keep if training ended now, that round's metrics)).
RoundCallback = Callable[[int, dict[str, float], tuple[int, dict[str, float]]], None]
Predict = Callable[[np.ndarray], np.ndarray]
# The booster attribute a checkpoint carries the kept-round tracker in; never in a saved model.
STATE_ATTRIBUTE = "mlops_kept_round"


class Trainer(Protocol):
    name: str
    rounds_hyperparameter: str

    def __init__(
        self,
        problem_type: str,
        hyperparameters: dict[str, Any],
        *,
        device: str = "auto",
        objective: Objective | None = None,
    ) -> None: ...

    def fit(
        self, train: Dataset, validation: Dataset, *, on_round: RoundCallback, checkpoints: Path, checkpoint_every: int
    ) -> TrainingResult: ...

    @staticmethod
    def save(model: Any, directory: Path) -> None: ...


@dataclass
class Dataset:
    features: np.ndarray  # float32, NaN where missing; categories as codes (mlops_platform.data.encoding)
    target: np.ndarray  # the class's index (binary, multiclass) or the value (regression)
    feature_names: list[str]  # the restricted names: XGBoost's feature names
    encoding: Encoding | None = None  # None: every feature a double
    classes: list[str] | None = None  # binary and multiclass: the labels, in the model's order

    @property
    def feature_types(self) -> list[str] | None:
        return self.encoding.xgboost_types if self.encoding else None

    @property
    def class_count(self) -> int:
        return len(self.classes) if self.classes else 2


@dataclass
class TrainingResult:
    model: Any
    kept_round: int  # the round the model is: the best one under early stopping, else the last
    kept_metrics: dict[str, float]  # that round's metrics as training measured them
    rounds_run: int  # rounds trained by this process (a resumed job trained the others before)
    resumed_from: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


def evaluate(problem_type: str, target: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    """Metrics of one split, named without the split's prefix.

    ``prediction``: class 1's probability (binary), a row of class probabilities (multiclass), or the value.
    """
    if problem_type == "multiclass":
        labels = list(range(prediction.shape[1]))
        probability = np.clip(prediction, 1e-15, 1.0)
        predicted = prediction.argmax(axis=1)
        return {
            "mlogloss": float(log_loss(target, probability / probability.sum(axis=1, keepdims=True), labels=labels)),
            "accuracy": float(accuracy_score(target, predicted)),
            "f1_macro": float(f1_score(target, predicted, labels=labels, average="macro", zero_division=0)),
        }
    if problem_type == "binary":
        probability = np.clip(prediction, 1e-15, 1 - 1e-15)
        metrics = {"logloss": float(log_loss(target, probability, labels=[0, 1]))}
        metrics["accuracy"] = float(accuracy_score(target, probability >= 0.5))
        if len(np.unique(target)) == 2:
            metrics["auc"] = float(roc_auc_score(target, probability))
        return metrics
    return {
        "rmse": float(root_mean_squared_error(target, prediction)),
        "mae": float(mean_absolute_error(target, prediction)),
    }


def measure(problem_type: str, predict: Predict, splits: dict[str, Dataset]) -> dict[str, float]:
    """``<split>:<metric>`` of a model's predictions on each split."""
    return {
        f"{split}:{name}": value
        for split, data in splits.items()
        for name, value in evaluate(problem_type, data.target, predict(data.features)).items()
    }


def gpu_available() -> bool:
    """A GPU SageMaker exposed to the container (nvidia-smi lists it)."""
    if not shutil.which("nvidia-smi"):
        return False
    result = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)  # noqa: S607
    return result.returncode == 0 and "GPU" in result.stdout


class TrainerBase:
    """What every trainer holds (``Trainer``'s constructor): the problem type, a copy of its hyperparameters
    and the objective its rounds are kept by. ``device`` matters to XGBoost only."""

    def __init__(
        self,
        problem_type: str,
        hyperparameters: dict[str, Any],
        *,
        device: str = "auto",
        objective: Objective | None = None,
    ) -> None:
        self.problem_type = problem_type
        self.hyperparameters = dict(hyperparameters)
        self.objective = objective or Objective.of(problem_type)


class XGBoostTrainer(TrainerBase):
    name = "xgboost"
    rounds_hyperparameter = "num_round"

    def __init__(
        self,
        problem_type: str,
        hyperparameters: dict[str, Any],
        *,
        device: str = "auto",
        objective: Objective | None = None,
    ) -> None:
        super().__init__(problem_type, hyperparameters, objective=objective)
        self.device = ("cuda" if gpu_available() else "cpu") if device == "auto" else device

    def fit(
        self,
        train: Dataset,
        validation: Dataset,
        *,
        on_round: RoundCallback,
        checkpoints: Path,
        checkpoint_every: int,
    ) -> TrainingResult:
        params = {k: v for k, v in self.hyperparameters.items() if k not in ("num_round", "early_stopping_rounds")}
        params.update(XGBOOST_OBJECTIVES[self.problem_type], device=self.device, tree_method="hist")
        if self.problem_type == "multiclass":
            params["num_class"] = train.class_count
        dtrain, dvalid = dmatrix(train), dmatrix(validation)
        total = int(self.hyperparameters["num_round"])
        patience = int(self.hyperparameters["early_stopping_rounds"])
        store = Checkpoints(checkpoints, "xgboost", ".json")
        resume_model, kept = None, KeptRound(self.objective, patience)
        latest = store.latest()
        if latest:
            resume_model = xgb.Booster()
            resume_model.load_model(latest[1])
            saved = resume_model.attr(STATE_ATTRIBUTE)
            kept = KeptRound.restore(self.objective, patience, json.loads(saved) if saved else None)
        resumed_from = resume_model.num_boosted_rounds() if resume_model else 0
        rounds = _Rounds(kept, on_round, store, checkpoint_every, offset=resumed_from, total=total)
        booster = xgb.train(
            params,
            dtrain,
            num_boost_round=0 if kept.should_stop else max(total - resumed_from, 0),
            evals=[(dtrain, "train"), (dvalid, "validation")],
            callbacks=[rounds],
            xgb_model=resume_model,
            verbose_eval=False,
            custom_metric=_f1_macro if self.problem_type == "multiclass" else None,
        )
        kept_round, kept_metrics = kept.kept
        # Under early stopping the booster holds rounds past the best one: cut them, so the model
        # is the round whose metrics are reported.
        model = booster[:kept_round] if 0 < kept_round < booster.num_boosted_rounds() else booster
        model.set_attr(**{STATE_ATTRIBUTE: None})
        return TrainingResult(
            model=model,
            kept_round=kept_round,
            kept_metrics=kept_metrics,
            rounds_run=len(rounds.history),
            resumed_from=resumed_from,
            history=rounds.history,
        )

    @staticmethod
    def save(model: xgb.Booster, directory: Path) -> None:
        model.save_model(directory / "model.json")


XGBOOST_OBJECTIVES: dict[str, dict[str, Any]] = {
    "binary": {"objective": "binary:logistic", "eval_metric": ["logloss", "auc", "error"]},
    # merror becomes accuracy (1 - merror); f1_macro is a custom metric (_f1_macro).
    "multiclass": {"objective": "multi:softprob", "eval_metric": ["mlogloss", "merror"]},
    "regression": {"objective": "reg:squarederror", "eval_metric": ["rmse", "mae"]},
}
# XGBoost's error metrics, reported as accuracy (1 - error).
ERROR_METRICS = ("error", "merror")


def dmatrix(data: Dataset) -> xgb.DMatrix:
    """Missing values (NaN) and categories (codes, feature type ``c``) as XGBoost reads them natively."""
    return xgb.DMatrix(
        data.features,
        label=data.target,
        feature_names=data.feature_names,
        feature_types=data.feature_types,
        enable_categorical=bool(data.encoding and data.encoding.has_categories),
    )


def _f1_macro(prediction: np.ndarray, matrix: xgb.DMatrix) -> tuple[str, float]:
    labels = matrix.get_label().astype(np.int64)
    predicted = prediction.reshape(len(labels), -1).argmax(axis=1)
    classes = list(range(prediction.reshape(len(labels), -1).shape[1]))
    return "f1_macro", float(f1_score(labels, predicted, labels=classes, average="macro", zero_division=0))


class _Rounds(xgb.callback.TrainingCallback):
    """Each round: its metrics to the tracker and the callback; a checkpoint every few rounds and at the end."""

    def __init__(
        self, kept: KeptRound, on_round: RoundCallback, store: Checkpoints, every: int, *, offset: int, total: int
    ) -> None:
        self.kept = kept
        self.on_round = on_round
        self.store = store
        self.every = every
        self.offset = offset  # rounds in the model the job resumed from
        self.total = total
        self.history: list[dict[str, float]] = []

    def after_iteration(self, model: xgb.Booster, epoch: int, evals_log: Any) -> bool:
        number = self.offset + epoch + 1
        metrics = {
            f"{split}:{'accuracy' if name in ERROR_METRICS else name}": (
                1 - values[-1] if name in ERROR_METRICS else values[-1]
            )
            for split, named in evals_log.items()
            for name, values in named.items()
        }
        self.history.append(metrics)
        self.kept.record(number, metrics)
        self.on_round(number, metrics, self.kept.kept)
        stop = self.kept.should_stop
        # At the end too: a job restarted after it finished resumes to the same model, training nothing.
        if number % self.every == 0 or stop or number >= self.total:
            model.set_attr(**{STATE_ATTRIBUTE: json.dumps(self.kept.state())})
            self.store.save(number, model.save_model)
        return stop


def _trainers() -> dict[str, type[Trainer]]:
    from mlops_platform.training.linear import LinearTrainer

    return {"xgboost": XGBoostTrainer, "linear": LinearTrainer}


TRAINERS: dict[str, type[Trainer]] = _trainers()


def load_model(directory: Path) -> tuple[dict[str, Any], Predict]:
    """(metadata, predict) of a model the training image wrote; predict returns probabilities or values."""
    metadata = json.loads((directory / "metadata.json").read_text())
    return metadata, load_predictor(directory, metadata["algorithm"], metadata["problem_type"])


def load_predictor(directory: Path, algorithm: str, problem_type: str) -> Predict:
    """The predict function of the model file ``save`` wrote to ``directory`` (a float32 matrix, NaN where missing)."""
    if algorithm == "xgboost":
        booster = xgb.Booster()
        booster.load_model(directory / "model.json")

        def predict(features: np.ndarray) -> np.ndarray:
            return booster.inplace_predict(features)

        return predict
    return LinearArtifact.load(directory).score
