"""Drift on the shapes real features have: integer counts, booleans, zero-heavy amounts, constants, continuous.

The baseline is what ``python -m mlops_platform.training baseline`` writes for a model that the real train entry
point fitted on such a table; live traffic is a fresh sample of the same generator, captured as our
scoring API's JSON. A fresh sample must not drift, whatever the shape; a real shift of one feature must
drift that feature alone.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_platform.monitoring.capture import read_capture
from mlops_platform.monitoring.drift import Thresholds, compare, kolmogorov_smirnov
from mlops_platform.sagemaker_paths import SageMakerPaths
from mlops_platform.training.__main__ import main as entry_point
from mlops_platform.training.serve import Model
from tests.unit.training.conftest import trained_archive

FEATURES = {"visits": "bigint", "is_member": "boolean", "refunds": "double", "version": "bigint", "amount": "double"}
TRAINING_ROWS = 4000
LIVE_ROWS = 1000
# dev's thresholds (config/environments/dev.yaml): the drift monitor's defaults with min_rows 200.
THRESHOLDS = Thresholds(min_rows=200)


def draw(rows: int, seed: int, **shifts: float) -> pd.DataFrame:
    """``rows`` of the generator; ``shifts`` move one parameter (``visits``, ``is_member``, ...) to a new value."""
    rng = np.random.default_rng(seed)
    visits = rng.poisson(shifts.get("visits", 8.0), rows)  # counts: every value repeats
    is_member = rng.random(rows) < shifts.get("is_member", 0.3)
    refunds = np.where(rng.random(rows) < shifts.get("refunds", 0.4), 0.0, rng.lognormal(3, 1, rows).round(2))
    version = np.full(rows, int(shifts.get("version", 5)))  # a constant
    amount = rng.normal(shifts.get("amount", 50.0), 10.0, rows)
    logit = 0.3 * (visits - 8) + 0.8 * is_member + 0.05 * (amount - 50) - 0.01 * refunds
    target = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    columns = {"visits": visits, "is_member": is_member, "refunds": refunds, "version": version, "amount": amount}
    return pd.DataFrame({**columns, "target": target})


def trained_model(root: Path, training: pd.DataFrame) -> Path:
    """model.tar.gz from the real train entry point, packed as SageMaker packs it."""
    paths = SageMakerPaths(root=root / "ml", checkpoints=root / "ml" / "checkpoints")
    for channel, part in (("train", training.iloc[:3000]), ("validation", training.iloc[3000:])):
        paths.channel(channel).mkdir(parents=True)
        part.to_parquet(paths.channel(channel) / f"{channel}.parquet", index=False)
    paths.hyperparameters.parent.mkdir(parents=True)
    paths.hyperparameters.write_text(
        json.dumps(
            {
                "mlops_algorithm": "linear",
                "mlops_problem_type": "binary",
                "mlops_target": "target",
                "mlops_tenant": "shapes",
                "mlops_model": "linear",
                "mlops_run_id": "run-1",
            }
        )
    )
    return trained_archive(paths, root)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[dict, Callable[[pd.DataFrame], np.ndarray]]:
    """The baseline ``python -m mlops_platform.training baseline`` writes, and the model's scoring function."""
    root = tmp_path_factory.mktemp("shapes")
    training = draw(TRAINING_ROWS, seed=1)
    archive = trained_model(root, training)
    data = root / "training" / "run-1-train.parquet"
    data.parent.mkdir()
    training.to_parquet(data, index=False)
    schema = root / "feature-schema.json"
    schema.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "tenant": "shapes",
                "dataset": "shapes",
                "features": [{"name": name, "type": kind} for name, kind in FEATURES.items()],
                "target": "target",
                "problem_type": "binary",
            }
        )
    )
    # The predictions' baseline scores rows the model never trained on: its validation rows.
    holdout = root / "holdout" / "run-1-validation.parquet"
    holdout.parent.mkdir()
    training.iloc[3000:].to_parquet(holdout, index=False)
    output = root / "output"
    argv = ["baseline", "--model", str(archive), "--training-data", str(data), "--schema", str(schema)]
    assert entry_point([*argv, "--holdout-data", str(holdout), "--output", str(output)]) == 0
    model_dir = root / "model"
    with tarfile.open(archive, "r:gz") as bundle:
        bundle.extractall(model_dir, filter="data")
    model = Model.load(model_dir)
    return json.loads((output / "baseline.json").read_text()), lambda frame: np.asarray(
        model.predict(frame[list(FEATURES)].to_numpy(dtype=np.float32)), dtype=float
    )


def captured(frame: pd.DataFrame, scores: np.ndarray) -> list[str]:
    """One request of ten rows a line, as data capture records our scoring API's JSON (booleans as true/false)."""
    rows = frame[list(FEATURES)].astype(object).to_numpy().tolist()
    lines = []
    for start in range(0, len(rows), 10):
        body = {"instances": [[v.item() if hasattr(v, "item") else v for v in row] for row in rows[start : start + 10]]}
        answer = {"predictions": [{"score": float(s)} for s in scores[start : start + 10]]}
        lines.append(
            json.dumps(
                {
                    "captureData": {
                        "endpointInput": {
                            "observedContentType": "application/json",
                            "mode": "INPUT",
                            "data": json.dumps(body),
                            "encoding": "JSON",
                        },
                        "endpointOutput": {
                            "observedContentType": "application/json",
                            "mode": "OUTPUT",
                            "data": json.dumps(answer),
                            "encoding": "JSON",
                        },
                    },
                    "eventMetadata": {"eventId": f"e-{start}", "inferenceTime": "2026-11-24T22:30:00Z"},
                    "eventVersion": "0",
                }
            )
        )
    return lines


def report_of(trained, live: pd.DataFrame):
    baseline, score = trained
    return compare(baseline, read_capture(captured(live, score(live)), list(FEATURES)), THRESHOLDS)


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_a_fresh_sample_of_the_training_distribution_drifts_in_no_shape(trained, seed):
    report = report_of(trained, draw(LIVE_ROWS, seed=seed))

    by_name = {f.name: f for f in report.features}
    assert report.rows == LIVE_ROWS
    assert report.malformed == {}
    for name in FEATURES:
        feature = by_name[name]
        assert not feature.drifted, (name, feature)
        assert feature.ks_statistic is not None
        assert feature.ks_statistic < 0.06, (name, feature.ks_statistic)
        assert feature.psi is not None
        assert feature.psi < 0.05, (name, feature.psi)
    assert by_name["version"].ks_statistic == 0.0  # a constant that stayed constant
    assert not report.drift


@pytest.mark.parametrize(
    ("feature", "shift"),
    [
        ("visits", 11.0),  # more visits per customer
        ("is_member", 0.55),  # members from 30% to 55%
        ("refunds", 0.1),  # no-refund share from 40% to 10%
        ("version", 6),  # every client on the next version
        ("amount", 60.0),  # a one-standard-deviation move
    ],
)
def test_a_real_shift_of_one_feature_drifts_that_feature_alone(trained, feature, shift):
    report = report_of(trained, draw(LIVE_ROWS, seed=5, **{feature: shift}))

    assert report.drifted_features == [feature]
    [moved] = [f for f in report.features if f.name == feature]
    assert moved.ks_statistic is not None
    assert moved.ks_statistic > 0.1
    assert "ks" in moved.reasons


def test_ties_are_a_jump_of_the_baseline_not_a_distance():
    """The issue's numbers: scipy's kstest against the sketch gave D = 0.40 for 40% zeros, 0.127 for Poisson(8)."""
    rng = np.random.default_rng(7)
    zero_heavy = np.where(rng.random(20_000) < 0.4, 0.0, rng.lognormal(0, 1, 20_000))
    counts = rng.poisson(8, 20_000).astype(float)
    for training in (zero_heavy, counts):
        sketch = [float(v) for v in np.quantile(training, np.linspace(0, 1, 51))]
        live = rng.choice(training, 2_000)

        statistic, p_value = kolmogorov_smirnov(live, sketch)

        assert statistic < 0.03
        assert p_value > 0.01
