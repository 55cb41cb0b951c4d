"""The linear model's artifact: its preprocessing and weights as JSON, numbers only (``linear.json``).

Training fits the preprocessing on the training split, and serving applies the same fitted numbers:

- ``double``, ``bigint``, ``boolean``: a missing value becomes the training split's mean, then the
  value is standardized with the training split's mean and standard deviation (after imputation);
- ``categorical``: one column per category the training split held (one-hot, not scaled); a missing
  value or a category training never saw sets none of them.

The file holds numbers and names only, never code: loading it cannot run anything (no pickle), so a
model artifact is safe to open wherever it travels. ``margin`` is ``design(x) · coefficientsᵀ + intercepts``:
one column for binary and regression (the log-odds, the value), one per class for multiclass (softmax).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlops_platform.data.encoding import Encoding

FILE = "linear.json"
FORMAT = "mlops-linear-1"


@dataclass(frozen=True)
class Preprocessing:
    """Per feature: (fill, mean, scale) for numbers, the number of categories for categorical features."""

    kinds: tuple[str, ...]  # "number" or "categorical", per feature
    fill: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    sizes: tuple[int, ...]  # one-hot width per feature (0 for numbers)

    @classmethod
    def fit(cls, matrix: np.ndarray, encoding: Encoding) -> Preprocessing:
        kinds = tuple("categorical" if f.type == "categorical" else "number" for f in encoding.features)
        values = matrix.astype(np.float64)
        with np.errstate(all="ignore"):
            fill = np.nan_to_num(np.nanmean(np.where(np.isnan(values), np.nan, values), axis=0), nan=0.0)
        filled = np.where(np.isnan(values), fill, values)
        mean = filled.mean(axis=0) if len(filled) else np.zeros(len(kinds))
        scale = filled.std(axis=0) if len(filled) else np.ones(len(kinds))
        scale = np.where(scale > 0, scale, 1.0)
        sizes = tuple(len(f.categories) if f.type == "categorical" else 0 for f in encoding.features)
        return cls(kinds, fill, mean, scale, sizes)

    @property
    def groups(self) -> list[int]:
        """The feature each design column comes from."""
        return [i for i, kind in enumerate(self.kinds) for _ in range(self.sizes[i] if kind == "categorical" else 1)]

    def design(self, matrix: np.ndarray) -> np.ndarray:
        values = matrix.astype(np.float64)
        parts = []
        for i, kind in enumerate(self.kinds):
            column = values[:, i]
            if kind == "number":
                parts.append(
                    ((np.where(np.isnan(column), self.fill[i], column) - self.mean[i]) / self.scale[i])[:, None]
                )
            else:
                codes = np.where(np.isnan(column), -1, column).astype(np.int64)
                parts.append((codes[:, None] == np.arange(self.sizes[i])[None, :]).astype(np.float64))
        return np.hstack(parts) if parts else np.zeros((len(values), 0))

    def to_json(self) -> dict[str, Any]:
        return {
            "kinds": list(self.kinds),
            "fill": self.fill.tolist(),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "sizes": list(self.sizes),
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Preprocessing:
        return cls(
            tuple(document["kinds"]),
            np.asarray(document["fill"], dtype=np.float64),
            np.asarray(document["mean"], dtype=np.float64),
            np.asarray(document["scale"], dtype=np.float64),
            tuple(int(size) for size in document["sizes"]),
        )


@dataclass(frozen=True)
class LinearArtifact:
    problem_type: str
    preprocessing: Preprocessing
    coefficients: np.ndarray  # (outputs, design columns)
    intercepts: np.ndarray  # (outputs,)

    def margin(self, matrix: np.ndarray) -> np.ndarray:
        margins = self.preprocessing.design(matrix) @ self.coefficients.T + self.intercepts
        return margins if self.problem_type == "multiclass" else margins[:, 0]

    def score(self, matrix: np.ndarray) -> np.ndarray:
        """Probability of class 1 (binary), each class's probability (multiclass), or the value (regression)."""
        margin = self.margin(matrix)
        if self.problem_type == "binary":
            return 0.5 * (1.0 + np.tanh(0.5 * margin))  # the logistic function, without overflow
        if self.problem_type == "multiclass":
            return softmax(margin)
        return margin

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        """Each feature's share of each output's margin, then the intercept: (rows, features + 1) or
        (rows, classes, features + 1) for multiclass; a categorical feature's share is its one-hot columns' sum."""
        design = self.preprocessing.design(matrix)
        groups = np.asarray(self.preprocessing.groups, dtype=np.int64)
        width = len(self.preprocessing.kinds)
        rows = design.shape[0]
        shares = np.zeros((rows, len(self.intercepts), width + 1))
        for output, weights in enumerate(self.coefficients):
            per_column = design * weights
            for feature in range(width):
                shares[:, output, feature] = per_column[:, groups == feature].sum(axis=1)
            shares[:, output, width] = self.intercepts[output]
        return shares if self.problem_type == "multiclass" else shares[:, 0, :]

    def save(self, directory: Path) -> None:
        document = {
            "format": FORMAT,
            "problem_type": self.problem_type,
            "preprocessing": self.preprocessing.to_json(),
            "coefficients": self.coefficients.tolist(),
            "intercepts": self.intercepts.tolist(),
        }
        (directory / FILE).write_text(json.dumps(document, allow_nan=False))

    @classmethod
    def load(cls, directory: Path) -> LinearArtifact:
        document = json.loads((directory / FILE).read_text())
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise ValueError(f"{directory / FILE} is not a {FORMAT} document")
        coefficients = np.asarray(document["coefficients"], dtype=np.float64)
        intercepts = np.asarray(document["intercepts"], dtype=np.float64)
        preprocessing = Preprocessing.from_json(document["preprocessing"])
        if coefficients.ndim != 2 or coefficients.shape != (len(intercepts), len(preprocessing.groups)):
            raise ValueError(
                f"{directory / FILE}: coefficients of shape {coefficients.shape} do not fit its preprocessing"
            )
        return cls(str(document["problem_type"]), preprocessing, coefficients, intercepts)


def softmax(margin: np.ndarray) -> np.ndarray:
    shifted = margin - margin.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


class SoftmaxSGD:
    """Multinomial logistic regression by plain SGD: one epoch per ``partial_fit``, like scikit-learn's SGD.

    scikit-learn's ``SGDClassifier`` is one-versus-rest for several classes; this is the multinomial
    model (one softmax over all classes), with the same ``alpha`` (L2) and constant ``eta0``.
    """

    def __init__(self, classes: int, alpha: float, eta0: float, batch: int = 32, seed: int = 0) -> None:
        self.classes, self.alpha, self.eta0, self.batch = classes, alpha, eta0, batch
        self.rng = np.random.default_rng(seed)
        self.coef_: np.ndarray | None = None
        self.intercept_ = np.zeros(classes)

    def partial_fit(self, design: np.ndarray, target: np.ndarray) -> SoftmaxSGD:
        if self.coef_ is None:
            self.coef_ = np.zeros((self.classes, design.shape[1]))
        onehot = np.eye(self.classes)[target.astype(np.int64)]
        order = self.rng.permutation(len(design))
        for start in range(0, len(order), self.batch):
            rows = order[start : start + self.batch]
            error = softmax(design[rows] @ self.coef_.T + self.intercept_) - onehot[rows]
            self.coef_ -= self.eta0 * (error.T @ design[rows] / len(rows) + self.alpha * self.coef_)
            self.intercept_ -= self.eta0 * error.mean(axis=0)
        return self

    def predict_proba(self, design: np.ndarray) -> np.ndarray:
        assert self.coef_ is not None
        return softmax(design @ self.coef_.T + self.intercept_)
