"""The algorithms: XGBoost (boosting rounds) and a linear model (SGD epochs), each binary or regression.

Both report every round to a callback, stop early on the validation metric by default, checkpoint
so a spot interruption resumes where it stopped, and return the best round's metrics.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import joblib
import numpy as np
import xgboost as xgb
from sklearn.linear_model import SGDClassifier, SGDRegressor
from sklearn.metrics import accuracy_score, log_loss, mean_absolute_error, roc_auc_score, root_mean_squared_error
from sklearn.preprocessing import StandardScaler

RoundCallback = Callable[[int, dict[str, float]], None]


class Trainer(Protocol):
    name: str

    def __init__(self, problem_type: str, hyperparameters: dict[str, Any], *, device: str = "auto") -> None: ...

    def fit(
        self, train: Dataset, validation: Dataset, *, on_round: RoundCallback, checkpoints: Path, checkpoint_every: int
    ) -> TrainingResult: ...

    @staticmethod
    def save(model: Any, directory: Path) -> None: ...


# The metric early stopping watches, per problem type, and whether lower is better.
OBJECTIVE = {"binary": ("validation:logloss", "minimize"), "regression": ("validation:rmse", "minimize")}


@dataclass
class Dataset:
    features: np.ndarray
    target: np.ndarray
    feature_names: list[str]


@dataclass
class TrainingResult:
    model: Any
    best_round: int
    best_metrics: dict[str, float]
    rounds_run: int
    resumed_from: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


def evaluate(problem_type: str, target: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    """Metrics of one split, named without the split's prefix."""
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


def gpu_available() -> bool:
    """A GPU SageMaker exposed to the container (nvidia-smi lists it)."""
    if not shutil.which("nvidia-smi"):
        return False
    result = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)  # noqa: S607
    return result.returncode == 0 and "GPU" in result.stdout


class XGBoostTrainer:
    name = "xgboost"

    def __init__(self, problem_type: str, hyperparameters: dict[str, Any], *, device: str = "auto") -> None:
        self.problem_type = problem_type
        self.hyperparameters = dict(hyperparameters)
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
        params.update(
            objective="binary:logistic" if self.problem_type == "binary" else "reg:squarederror",
            eval_metric=["logloss", "auc", "error"] if self.problem_type == "binary" else ["rmse", "mae"],
            device=self.device,
            tree_method="hist",
        )
        dtrain = xgb.DMatrix(train.features, label=train.target, feature_names=train.feature_names)
        dvalid = xgb.DMatrix(validation.features, label=validation.target, feature_names=validation.feature_names)
        resume_model, resumed_from = _latest_xgboost_checkpoint(checkpoints)
        total = int(self.hyperparameters["num_round"])
        history: list[dict[str, float]] = []
        callbacks: list[xgb.callback.TrainingCallback] = [
            _RoundReporter(resumed_from, on_round, history, self.problem_type),
            _Checkpointer(checkpoints, checkpoint_every, resumed_from),
        ]
        patience = int(self.hyperparameters["early_stopping_rounds"])
        if patience:
            metric = "logloss" if self.problem_type == "binary" else "rmse"
            callbacks.append(
                xgb.callback.EarlyStopping(rounds=patience, metric_name=metric, data_name="validation", save_best=True)
            )
        booster = xgb.train(
            params,
            dtrain,
            num_boost_round=max(total - resumed_from, 0),
            evals=[(dtrain, "train"), (dvalid, "validation")],
            callbacks=callbacks,
            xgb_model=resume_model,
            verbose_eval=False,
        )
        best_index = _best_index(history, self.problem_type)
        return TrainingResult(
            model=booster,
            # Rounds before a resume are in the checkpointed model, not in this run's history.
            best_round=resumed_from + best_index + 1,
            best_metrics=history[best_index] if history else {},
            rounds_run=len(history),
            resumed_from=resumed_from,
            history=history,
        )

    @staticmethod
    def save(model: xgb.Booster, directory: Path) -> None:
        model.save_model(directory / "model.json")


class _RoundReporter(xgb.callback.TrainingCallback):
    def __init__(self, offset: int, on_round: RoundCallback, history: list[dict[str, float]], problem_type: str):
        self.offset = offset
        self.on_round = on_round
        self.history = history
        self.problem_type = problem_type

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        metrics = {
            f"{split}:{'accuracy' if name == 'error' else name}": (1 - values[-1] if name == "error" else values[-1])
            for split, named in evals_log.items()
            for name, values in named.items()
        }
        self.history.append(metrics)
        self.on_round(self.offset + len(self.history), metrics)
        return False


class _Checkpointer(xgb.callback.TrainingCallback):
    """Saves the booster every few rounds, named by its round, so a restarted job resumes from it."""

    def __init__(self, directory: Path, every: int, offset: int) -> None:
        self.directory = directory
        self.every = every
        self.offset = offset

    def after_iteration(self, model: xgb.Booster, epoch: int, evals_log: Any) -> bool:
        done = self.offset + epoch + 1
        if done % self.every == 0:
            self.directory.mkdir(parents=True, exist_ok=True)
            partial = self.directory / f".xgboost-{done:06d}.partial.json"  # the extension picks the format
            model.save_model(partial)
            partial.rename(self.directory / f"xgboost-{done:06d}.json")  # atomic: never a torn checkpoint
        return False


def _latest_xgboost_checkpoint(directory: Path) -> tuple[xgb.Booster | None, int]:
    candidates = sorted(directory.glob("xgboost-*.json")) if directory.is_dir() else []
    if not candidates:
        return None, 0
    latest = candidates[-1]
    booster = xgb.Booster()
    booster.load_model(latest)
    return booster, int(latest.stem.split("-")[1])


def _best_index(history: list[dict[str, float]], problem_type: str) -> int:
    metric, _ = OBJECTIVE[problem_type]
    values = [round_metrics.get(metric, float("inf")) for round_metrics in history]
    return int(np.argmin(values)) if values else 0


class LinearTrainer:
    """Logistic or linear regression trained by SGD, one epoch per round, features standardized."""

    name = "linear"

    def __init__(self, problem_type: str, hyperparameters: dict[str, Any], *, device: str = "auto") -> None:
        self.problem_type = problem_type
        self.hyperparameters = dict(hyperparameters)

    def fit(
        self,
        train: Dataset,
        validation: Dataset,
        *,
        on_round: RoundCallback,
        checkpoints: Path,
        checkpoint_every: int,
    ) -> TrainingResult:
        state_path = checkpoints / "linear.joblib"
        if state_path.is_file():
            state = joblib.load(state_path)
        else:
            estimator_type = SGDClassifier if self.problem_type == "binary" else SGDRegressor
            loss = "log_loss" if self.problem_type == "binary" else "squared_error"
            state = {
                "scaler": StandardScaler().fit(train.features),
                "estimator": estimator_type(
                    loss=loss,
                    alpha=self.hyperparameters["alpha"],
                    eta0=self.hyperparameters["eta0"],
                    learning_rate="constant",
                    random_state=0,
                ),
                "history": [],
                "best": None,
                "best_index": 0,
            }
        resumed_from = len(state["history"])
        scaler, estimator = state["scaler"], state["estimator"]
        x_train, x_valid = scaler.transform(train.features), scaler.transform(validation.features)
        patience = int(self.hyperparameters["early_stopping_rounds"])
        metric, _ = OBJECTIVE[self.problem_type]
        for epoch in range(resumed_from + 1, int(self.hyperparameters["epochs"]) + 1):
            if self.problem_type == "binary":
                estimator.partial_fit(x_train, train.target, classes=np.array([0, 1]))
            else:
                estimator.partial_fit(x_train, train.target)
            metrics = {
                **{
                    f"train:{k}": v
                    for k, v in evaluate(self.problem_type, train.target, self._predict(estimator, x_train)).items()
                },
                **{
                    f"validation:{k}": v
                    for k, v in evaluate(
                        self.problem_type, validation.target, self._predict(estimator, x_valid)
                    ).items()
                },
            }
            state["history"].append(metrics)
            on_round(epoch, metrics)
            if metrics[metric] <= state["history"][state["best_index"]][metric]:
                state["best_index"] = epoch - 1
                state["best"] = copy.deepcopy(estimator)
            if epoch % checkpoint_every == 0:
                checkpoints.mkdir(parents=True, exist_ok=True)
                joblib.dump(state, state_path.with_suffix(".partial"))
                state_path.with_suffix(".partial").rename(state_path)
            if patience and epoch - 1 - state["best_index"] >= patience:
                break
        history = state["history"]
        return TrainingResult(
            model={"scaler": scaler, "estimator": state["best"] or estimator},
            best_round=state["best_index"] + 1,
            best_metrics=history[state["best_index"]],
            rounds_run=len(history) - resumed_from,
            resumed_from=resumed_from,
            history=history,
        )

    def _predict(self, estimator: Any, features: np.ndarray) -> np.ndarray:
        return estimator.predict_proba(features)[:, 1] if self.problem_type == "binary" else estimator.predict(features)

    @staticmethod
    def save(model: dict[str, Any], directory: Path) -> None:
        joblib.dump(model, directory / "model.joblib")


TRAINERS: dict[str, type[Trainer]] = {"xgboost": XGBoostTrainer, "linear": LinearTrainer}


def load_model(directory: Path) -> tuple[dict[str, Any], Callable[[np.ndarray], np.ndarray]]:
    """(metadata, predict) of a model the training image wrote; predict returns probabilities or values."""
    metadata = json.loads((directory / "metadata.json").read_text())
    if metadata["algorithm"] == "xgboost":
        booster = xgb.Booster()
        booster.load_model(directory / "model.json")

        def predict(features: np.ndarray) -> np.ndarray:
            return booster.inplace_predict(features)

        return metadata, predict
    model = joblib.load(directory / "model.joblib")
    scaler, estimator = model["scaler"], model["estimator"]

    def predict_linear(features: np.ndarray) -> np.ndarray:
        scaled = scaler.transform(features)
        return (
            estimator.predict_proba(scaled)[:, 1] if metadata["problem_type"] == "binary" else estimator.predict(scaled)
        )

    return metadata, predict_linear
