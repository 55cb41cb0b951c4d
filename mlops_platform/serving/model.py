"""The model the training image wrote, loaded once per worker and scored straight from numpy.

The training image (``mlops_platform.training``) writes ``metadata.json`` (``algorithm``,
``problem_type``, ``features`` in order, ``target``, ...) beside the model itself: ``model.json``,
an XGBoost Booster, or ``model.joblib``, scikit-learn's standard scaler and SGD estimator. This
image reads those files itself, not with ``training.algorithms.load_model``: that one measures
models during training, this one is the hot path of every request.

Scoring is the hot path, so it takes a float32 matrix and makes no frame and no DMatrix:
XGBoost's ``inplace_predict``, and for the linear model one matrix-vector product with the scaler
folded into the weights. Explanations are the slow path, asked for explicitly: XGBoost's SHAP
values (``pred_contribs``), or each coefficient times its standardized value.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mlops_platform.data.encoding import Encoding, plain_encoding
from mlops_platform.model_digest import ArtifactTampered, verify_manifest

log = logging.getLogger(__name__)

ALGORITHMS = ("xgboost", "linear")
PROBLEM_TYPES = ("binary", "multiclass", "regression")
# XGBoost's PredictionType codes for the C prediction call.
PREDICTION_TYPES = {"value": 0, "margin": 1}
# The column name explanations give the bias (XGBoost's expected margin, the linear intercept).
BIAS = "bias"


class ModelError(Exception):
    """Why a model directory cannot be served, in one line."""


@dataclass(frozen=True)
class Metadata:
    algorithm: str
    problem_type: str
    features: tuple[str, ...]  # source names, in model order
    target: str
    encoding: Encoding = field(default_factory=lambda: Encoding([]))  # each feature's type and categories
    classes: tuple[str, ...] = ()  # binary and multiclass: the labels, in the order of the probabilities

    @property
    def width(self) -> int:
        return len(self.features)

    @classmethod
    def read(cls, directory: Path) -> Metadata:
        path = directory / "metadata.json"
        if not path.is_file():
            raise ModelError(f"no model under {directory} (metadata.json is missing)")
        try:
            raw = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ModelError(f"{path} is not JSON: {error}") from None
        if not isinstance(raw, dict):
            raise ModelError(f"{path} is not a JSON object")
        algorithm, problem_type, features = raw.get("algorithm"), raw.get("problem_type"), raw.get("features")
        if algorithm not in ALGORITHMS:
            raise ModelError(f"{path}: algorithm has value {algorithm!r}; allowed: one of {', '.join(ALGORITHMS)}")
        if problem_type not in PROBLEM_TYPES:
            raise ModelError(
                f"{path}: problem_type has value {problem_type!r}; allowed: one of {', '.join(PROBLEM_TYPES)}"
            )
        if not isinstance(features, list) or not features or not all(isinstance(f, str) for f in features):
            raise ModelError(f"{path}: features must be a non-empty list of column names")
        if len(set(features)) != len(features) or BIAS in features:
            raise ModelError(f"{path}: feature names must be unique and none may be {BIAS!r}")
        try:
            encoding = Encoding.from_json(raw["schema"]) if raw.get("schema") else plain_encoding(features)
        except (KeyError, TypeError, ValueError) as error:
            raise ModelError(f"{path}: schema is not a list of features with name, column and type ({error})") from None
        if encoding.names != features:
            raise ModelError(f"{path}: schema names other features than features")
        classes = tuple(str(c) for c in raw.get("classes") or ())
        if problem_type == "multiclass" and len(classes) < 2:
            raise ModelError(f"{path}: a multiclass model's classes must list at least 2 labels")
        return cls(algorithm, problem_type, tuple(features), str(raw.get("target", "")), encoding, classes)


class Model(Protocol):
    """What the server and the batch scorer need of a model; every method takes a float32 matrix, a row per record."""

    metadata: Metadata

    def score(self, features: np.ndarray) -> np.ndarray:
        """Probability of class 1 (binary) or the value (regression), one per row."""
        ...

    def margin(self, features: np.ndarray) -> np.ndarray:
        """The raw output before the link function: the log-odds for binary, the value for regression."""
        ...

    def contributions(self, features: np.ndarray) -> np.ndarray:
        """Each feature's share of the margin, a column per feature, then the bias; each row sums to the margin."""
        ...


def threads() -> int:
    """Threads per scoring call: ``OMP_NUM_THREADS`` (1 unless set), since each worker process is one scorer."""
    text = os.environ.get("OMP_NUM_THREADS", "1")
    return int(text) if text.isdigit() and int(text) > 0 else 1


# Rows from which one request is scored on the GPU (GPU flavour only): below it, copying the rows to
# the device costs more than walking the trees on the CPU. A guess to tune on a GPU instance.
GPU_MIN_ROWS = 1000


def gpu_wanted(environ: dict[str, str] | None = None) -> bool:
    """``MLOPS_DEVICE``: ``cpu``, ``cuda``, or ``auto`` (default: cuda where an NVIDIA device is visible)."""
    device = (environ if environ is not None else os.environ).get("MLOPS_DEVICE", "auto")
    return device == "cuda" or (device == "auto" and Path("/dev/nvidiactl").exists())


def gpu_booster(booster: Any, width: int) -> Any | None:
    """A copy of ``booster`` on the GPU when one is wanted and works, for large batches and explanations."""
    if not gpu_wanted():
        return None
    try:
        copy = booster.copy()
        copy.set_param({"device": "cuda"})
        copy.inplace_predict(np.zeros((1, width), dtype=np.float32))  # fail at load, not on a request
    except Exception:
        log.warning("no usable GPU for XGBoost; scoring on the CPU", exc_info=True)
        return None
    return copy


class XGBoostModel:
    def __init__(self, metadata: Metadata, directory: Path) -> None:
        import xgboost as xgb  # here, so entry points can set OMP_NUM_THREADS before OpenMP starts

        self._xgb = xgb
        self.metadata = metadata
        path = directory / "model.json"
        if not path.is_file():
            raise ModelError(f"no XGBoost model under {directory} (model.json is missing)")
        self.booster = xgb.Booster()
        self.booster.load_model(path)
        # Real-time requests are a few rows, and a copy to a GPU costs more than walking the trees:
        # they score on the CPU. nthread, because OpenMP may have started before OMP_NUM_THREADS was set.
        self.booster.set_param({"device": "cpu", "nthread": threads()})
        if self.booster.num_features() != metadata.width:
            raise ModelError(
                f"{path} expects {self.booster.num_features()} features; metadata.json lists {metadata.width}"
            )
        self._score = DensePrediction.or_inplace(self.booster, "value")
        self._margin = DensePrediction.or_inplace(self.booster, "margin")
        # The GPU flavour: batches of GPU_MIN_ROWS rows and more, and SHAP values (GPUTreeShap), on the GPU.
        self.gpu = gpu_booster(self.booster, metadata.width)

    def score(self, features: np.ndarray) -> np.ndarray:
        if self.gpu is not None and features.shape[0] >= GPU_MIN_ROWS:
            return self.gpu.inplace_predict(features, predict_type="value")
        return self._score(features)

    def margin(self, features: np.ndarray) -> np.ndarray:
        return self._margin(features)

    def contributions(self, features: np.ndarray) -> np.ndarray:
        encoding = self.metadata.encoding
        matrix = self._xgb.DMatrix(
            features,
            feature_names=encoding.columns,
            feature_types=encoding.xgboost_types,
            enable_categorical=encoding.has_categories,
            nthread=threads(),
        )
        return (self.gpu or self.booster).predict(matrix, pred_contribs=True)


class DensePrediction:
    """XGBoost's C prediction call on a float32 matrix, without ``inplace_predict``'s Python around it.

    ``Booster.inplace_predict`` spends about as long in Python (dispatch over pandas, Arrow, cuDF
    and SciPy inputs, arguments encoded as JSON on every call, array wrappers) as the C library
    spends walking 100 trees for one row. This calls the same C function,
    ``XGBoosterPredictFromDense``, with its arguments encoded once. It is xgboost's private
    ``_LIB``, so ``or_inplace`` checks it against ``inplace_predict`` at load and serves with
    ``inplace_predict`` on any difference or error (another xgboost version, say).
    """

    def __init__(self, booster: Any, predict_type: str) -> None:
        import ctypes

        from xgboost import core

        self._ctypes = ctypes
        self._lib, self._check, self._ulong = core._LIB, core._check_call, core.c_bst_ulong
        self._booster = booster  # held, so its handle outlives every call
        self._config = json.dumps(
            {
                "type": PREDICTION_TYPES[predict_type],
                "training": False,
                "iteration_begin": 0,
                # Every tree, as inplace_predict: early stopping already cut the saved model to its best round.
                "iteration_end": 0,
                "missing": float("nan"),
                "strict_shape": False,
                "cache_id": 0,
            }
        ).encode()

    def __call__(self, features: np.ndarray) -> np.ndarray:
        ctypes = self._ctypes
        features = np.ascontiguousarray(features, dtype=np.float32)
        rows, columns = features.shape
        interface = b'{"data": [%d, true], "shape": [%d, %d], "strides": null, "typestr": "<f4", "version": 3}' % (
            features.ctypes.data,
            rows,
            columns,
        )
        shape, dims, output = ctypes.POINTER(self._ulong)(), self._ulong(), ctypes.POINTER(ctypes.c_float)()
        self._check(
            self._lib.XGBoosterPredictFromDense(
                self._booster.handle,
                interface,
                self._config,
                None,
                ctypes.byref(shape),
                ctypes.byref(dims),
                ctypes.byref(output),
            )
        )
        if dims.value not in (1, 2) or shape[0] != rows:
            raise RuntimeError(f"XGBoost answered a {dims.value}-dimensional prediction for {rows} rows")
        if dims.value == 2:  # multiclass: a probability (or margin) per class
            return np.ctypeslib.as_array(output, shape=(rows, int(shape[1]))).copy()
        return np.ctypeslib.as_array(output, shape=(rows,)).copy()  # the booster reuses its buffer

    @classmethod
    def or_inplace(cls, booster: Any, predict_type: str) -> Callable[[np.ndarray], np.ndarray]:
        """The direct call when it answers exactly as ``inplace_predict`` on probe rows, else ``inplace_predict``."""

        def inplace(features: np.ndarray) -> np.ndarray:
            return booster.inplace_predict(features, predict_type=predict_type)

        probe = np.random.default_rng(0).normal(scale=100, size=(16, booster.num_features())).astype(np.float32)
        for column, kind in enumerate(booster.feature_types or ()):
            if kind == "c":  # a category's code: a small whole number, or missing
                probe[:, column] = np.where(np.arange(16) % 4 == 0, np.nan, np.arange(16) % 3)
        try:
            direct = cls(booster, predict_type)
            if np.array_equal(direct(probe), inplace(probe)) and np.array_equal(direct(probe[:1]), inplace(probe[:1])):
                return direct
            log.warning("XGBoost's direct prediction differs from inplace_predict; serving with inplace_predict")
        except Exception:
            log.warning("XGBoost's direct prediction failed; serving with inplace_predict", exc_info=True)
        return inplace


class LinearModel:
    """The linear model's ``linear.json`` (numbers only: preprocessing fitted on the training split, weights).

    A model saved before ``linear.json`` existed (``model.joblib``: a scaler and an SGD estimator, binary or
    regression) is read into the same form: its preprocessing is the scaler, no imputation, no categories.
    """

    def __init__(self, metadata: Metadata, directory: Path) -> None:
        from mlops_platform.training.linear_model import FILE, LinearArtifact

        self.metadata = metadata
        if (directory / FILE).is_file():
            self.artifact = LinearArtifact.load(directory)
        elif (directory / "model.joblib").is_file():
            self.artifact = _legacy_linear(metadata, directory / "model.joblib")
        else:
            raise ModelError(f"no linear model under {directory} ({FILE} is missing)")
        if len(self.artifact.preprocessing.kinds) != metadata.width:
            raise ModelError(
                f"the linear model under {directory} reads {len(self.artifact.preprocessing.kinds)} features; "
                f"metadata.json lists {metadata.width}"
            )

    def margin(self, features: np.ndarray) -> np.ndarray:
        return self.artifact.margin(features)

    def score(self, features: np.ndarray) -> np.ndarray:
        return self.artifact.score(features)

    def contributions(self, features: np.ndarray) -> np.ndarray:
        return self.artifact.contributions(features)


def _legacy_linear(metadata: Metadata, path: Path) -> Any:
    import joblib  # models saved before linear.json: scikit-learn objects pickled by the training image

    from mlops_platform.training.linear_model import LinearArtifact, Preprocessing

    saved: dict[str, Any] = joblib.load(path)
    scaler, estimator = saved["scaler"], saved["estimator"]
    width = metadata.width
    preprocessing = Preprocessing(
        ("number",) * width,
        np.asarray(scaler.mean_, dtype=np.float64),
        np.asarray(scaler.mean_, dtype=np.float64),
        np.asarray(scaler.scale_, dtype=np.float64),
        (0,) * width,
    )
    coefficients = np.asarray(estimator.coef_, dtype=np.float64).reshape(1, -1)
    if coefficients.shape != (1, width):
        raise ModelError(f"{path} has {coefficients.shape[1]} coefficients; metadata.json lists {width} features")
    intercepts = np.asarray(estimator.intercept_, dtype=np.float64).reshape(-1)[:1]
    return LinearArtifact(metadata.problem_type, preprocessing, coefficients, intercepts)


def load(directory: Path) -> Model:
    """The model under ``directory`` (``/opt/ml/model`` in SageMaker), or a ModelError saying why not.

    Its files are checked against the manifest training wrote before any is read (``model_digest``): a
    changed, missing or added file refuses the model, so nothing in it (no legacy ``model.joblib``) is
    ever deserialized unless it is what training wrote.
    """
    if not (directory / "metadata.json").is_file() and not any(directory.glob("*")):
        raise ModelError(f"no model under {directory} (metadata.json is missing)")  # nothing there: no artifact
    try:
        verify_manifest(directory)
    except ArtifactTampered as tampered:
        raise ModelError(str(tampered)) from None
    metadata = Metadata.read(directory)
    loader = XGBoostModel if metadata.algorithm == "xgboost" else LinearModel
    try:
        return loader(metadata, directory)
    except ModelError:
        raise
    except Exception as error:  # a corrupt or foreign file: say which, in one line
        raise ModelError(f"the model under {directory} does not load: {type(error).__name__}: {error}") from None
