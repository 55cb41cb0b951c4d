"""The baseline: SageMaker's bring-your-own-container example layout (Flask behind gunicorn sync workers).

``app``, as in the ``scikit_bring_your_own`` example's ``predictor.py``: a ``ScoringService`` that
loads the model once per worker on first use, and an ``/invocations`` that reads the CSV body with
pandas, builds an XGBoost DMatrix and predicts, then writes the predictions with pandas. The only
change: the CSV's columns are named from ``metadata.json``, because the training image's booster
checks feature names.

``control_app``: the same Flask and gunicorn with a lean model path (numpy parses the body,
``inplace_predict`` scores it), to tell the cost of the server apart from the cost of pandas and
the DMatrix.

Run as ``gunicorn -k sync -w 2 baseline:app`` (or ``baseline:control_app``) from this folder;
``run.py`` does.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import ClassVar

import flask
import numpy as np
import pandas as pd
import xgboost as xgb

MODEL_PATH = Path(os.environ.get("SM_ROOT", "/opt/ml")) / "model"


class ScoringService:
    model: xgb.Booster | None = None
    features: ClassVar[list[str]] = []

    @classmethod
    def get_model(cls) -> xgb.Booster:
        if cls.model is None:
            cls.features = json.loads((MODEL_PATH / "metadata.json").read_text())["features"]
            booster = xgb.Booster()
            booster.load_model(MODEL_PATH / "model.json")
            cls.model = booster
        return cls.model

    @classmethod
    def predict(cls, data: pd.DataFrame):
        return cls.get_model().predict(xgb.DMatrix(data))


app = flask.Flask(__name__)


@app.route("/ping", methods=["GET"])
def ping():
    health = ScoringService.get_model() is not None
    return flask.Response(response="\n", status=200 if health else 404, mimetype="application/json")


@app.route("/invocations", methods=["POST"])
def transformation():
    if flask.request.content_type != "text/csv":
        return flask.Response(response="This predictor only supports CSV data", status=415, mimetype="text/plain")
    ScoringService.get_model()
    data = pd.read_csv(io.StringIO(flask.request.data.decode("utf-8")), header=None, names=ScoringService.features)
    predictions = ScoringService.predict(data)
    out = io.StringIO()
    pd.DataFrame({"results": predictions}).to_csv(out, header=False, index=False)
    return flask.Response(response=out.getvalue(), status=200, mimetype="text/csv")


control_app = flask.Flask("control")


@control_app.route("/ping", methods=["GET"])
def control_ping():
    return flask.Response(response="\n", status=200 if ScoringService.get_model() else 404, mimetype="application/json")


@control_app.route("/invocations", methods=["POST"])
def control_transformation():
    if flask.request.content_type != "text/csv":
        return flask.Response(response="This predictor only supports CSV data", status=415, mimetype="text/plain")
    rows = np.loadtxt(io.BytesIO(flask.request.get_data()), delimiter=",", dtype=np.float32, ndmin=2)
    predictions = ScoringService.get_model().inplace_predict(rows)
    return flask.Response(response="".join(f"{p:.9g}\n" for p in predictions.tolist()), mimetype="text/csv")
