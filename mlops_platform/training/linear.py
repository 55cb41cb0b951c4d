"""The linear model: logistic (binary), multinomial (multiclass) or linear regression, by SGD, one epoch per round.

The features go through the preprocessing fitted on the training split (``linear_model.Preprocessing``:
imputation, one-hot encoding, standardization); the model saved is ``linear.json`` (numbers only).
Checkpoints hold the training state (the job's own files, read back only by the same trial's job).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.linear_model import SGDClassifier, SGDRegressor

from mlops_platform.data.encoding import plain_encoding
from mlops_platform.training.algorithms import Dataset, RoundCallback, TrainerBase, TrainingResult, evaluate
from mlops_platform.training.checkpoints import Checkpoints
from mlops_platform.training.linear_model import LinearArtifact, Preprocessing, SoftmaxSGD
from mlops_platform.training.objective import KeptRound


class LinearTrainer(TrainerBase):
    """Logistic, multinomial or linear regression trained by SGD, one epoch per round, on the preprocessed features."""

    name = "linear"
    rounds_hyperparameter = "epochs"

    def fit(
        self,
        train: Dataset,
        validation: Dataset,
        *,
        on_round: RoundCallback,
        checkpoints: Path,
        checkpoint_every: int,
    ) -> TrainingResult:
        store = Checkpoints(checkpoints, "linear", ".joblib")
        patience = int(self.hyperparameters["early_stopping_rounds"])
        latest = store.latest()
        if latest:
            state = joblib.load(latest[1])  # this trial's own checkpoint, written by this code
        else:
            encoding = train.encoding or plain_encoding(train.feature_names)
            state = {
                "preprocessing": Preprocessing.fit(train.features, encoding),
                "estimator": self._estimator(train.class_count),
                "best": None,  # a copy of the estimator at the best round (early stopping only)
                "kept": None,
            }
        kept = KeptRound.restore(self.objective, patience, state["kept"])
        resumed_from = kept.last_round
        preprocessing, estimator = state["preprocessing"], state["estimator"]
        x_train, x_valid = preprocessing.design(train.features), preprocessing.design(validation.features)
        total = int(self.hyperparameters["epochs"])
        history: list[dict[str, float]] = []
        for epoch in range(resumed_from + 1, total + 1):
            if kept.should_stop:
                break
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
            history.append(metrics)
            kept.record(epoch, metrics)
            if patience and kept.is_best:
                state["best"] = copy.deepcopy(estimator)
            on_round(epoch, metrics, kept.kept)
            if epoch % checkpoint_every == 0 or kept.should_stop or epoch == total:
                state["kept"] = kept.state()
                store.save(epoch, lambda path: joblib.dump(state, path))
        kept_round, kept_metrics = kept.kept
        kept_estimator = state["best"] if patience else estimator
        return TrainingResult(
            model=LinearArtifact(
                self.problem_type,
                preprocessing,
                np.atleast_2d(np.asarray(kept_estimator.coef_, dtype=np.float64)),
                np.atleast_1d(np.asarray(kept_estimator.intercept_, dtype=np.float64)),
            ),
            kept_round=kept_round,
            kept_metrics=kept_metrics,
            rounds_run=len(history),
            resumed_from=resumed_from,
            history=history,
        )

    def _estimator(self, classes: int) -> Any:
        alpha, eta0 = self.hyperparameters["alpha"], self.hyperparameters["eta0"]
        if self.problem_type == "multiclass":
            return SoftmaxSGD(classes, alpha=alpha, eta0=eta0)
        estimator_type = SGDClassifier if self.problem_type == "binary" else SGDRegressor
        loss = "log_loss" if self.problem_type == "binary" else "squared_error"
        return estimator_type(loss=loss, alpha=alpha, eta0=eta0, learning_rate="constant", random_state=0)

    def _predict(self, estimator: Any, features: np.ndarray) -> np.ndarray:
        if self.problem_type == "multiclass":
            return estimator.predict_proba(features)
        return estimator.predict_proba(features)[:, 1] if self.problem_type == "binary" else estimator.predict(features)

    @staticmethod
    def save(model: LinearArtifact, directory: Path) -> None:
        model.save(directory)
