"""The saved model, the metrics the job reports and the round they name are one, in every configuration.

Real tiny models: the training entry point run as plain Python on scikit-learn's datasets, then the
saved model read back from ``model/`` as serving and the baseline job read it, and scored.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import xgboost as xgb

from mlops_platform.training.algorithms import TRAINERS, evaluate, load_model
from mlops_platform.training.objective import OBJECTIVES, Objective
from mlops_platform.training.settings import parse
from mlops_platform.training.train import datasets, main, read_channel
from tests.unit.training.conftest import job
from tests.unit.training.test_train import metric_lines

ROUNDS = {"xgboost": {"num_round": "60", "eta": "0.3"}, "linear": {"epochs": "30", "eta0": "0.05"}}
# Settings under which the validation loss turns up well before the last round.
OVERFITTING = {
    "xgboost": {"num_round": "60", "eta": "0.3", "max_depth": "6"},
    "linear": {"epochs": "40", "eta0": "0.5"},
}
# Every objective the image reports, for both problem types, with early stopping off and on. At 60
# rounds the XGBoost validation logloss is best at round 42: without early stopping, round 60 is kept.
CONFIGURATIONS = [
    (algorithm, problem_type, objective, patience)
    for algorithm in TRAINERS
    for problem_type, objectives in OBJECTIVES.items()
    for objective in objectives
    for patience in ("0", "3")
]


def saved_metrics(paths, problem_type: str) -> dict[str, float]:
    """The saved model's metrics on the job's channels, computed here from its predictions."""
    _, predict = load_model(paths.model)
    measured = {}
    splits = datasets(
        read_channel(paths.channel("train"), "target"),
        read_channel(paths.channel("validation"), "target"),
        problem_type,
    )
    for split, data in zip(("train", "validation"), splits, strict=True):
        for name, value in evaluate(problem_type, data.target, predict(data.features)).items():
            measured[f"{split}:{name}"] = value
    return measured


def best_round(per_round: dict[int, dict[str, float]], objective: Objective) -> int:
    """The first round with the best value of the objective."""
    values = {number: metrics[objective.metric] for number, metrics in per_round.items()}
    best = max(values.values()) if objective.maximize else min(values.values())
    return min(number for number, value in values.items() if value == best)


@pytest.mark.parametrize(("algorithm", "problem_type", "objective", "patience"), CONFIGURATIONS)
def test_the_saved_model_reproduces_the_metrics_the_job_reports_for_the_round_it_names(
    sagemaker_root, capsys, algorithm, problem_type, objective, patience
):
    hyperparameters = {**ROUNDS[algorithm], "early_stopping_rounds": patience, "mlops_objective": objective}
    paths = sagemaker_root(problem_type, job(algorithm, problem_type, **hyperparameters))

    assert main(paths) == 0

    lines = metric_lines(capsys.readouterr().out)
    per_round = {number: metrics for kind, number, metrics in lines if kind == "round"}
    kind, kept_round, reported = lines[-1]
    metadata = json.loads((paths.model / "metadata.json").read_text())
    measured = saved_metrics(paths, problem_type)
    # What SageMaker keeps (the last line), what metadata.json says and what the artifact scores agree.
    assert kind == "kept round"
    assert metadata["metrics"] == pytest.approx(measured, rel=1e-9)
    assert reported == pytest.approx(measured, rel=1e-5)  # the line prints 6 significant digits
    assert metadata["round"] == kept_round
    assert metadata["objective"] == objective
    # ... and are the named round's: the curve's values at that round are the artifact's.
    assert per_round[kept_round][objective] == pytest.approx(measured[objective], rel=1e-5)
    total = int(ROUNDS[algorithm]["num_round" if algorithm == "xgboost" else "epochs"])
    if patience == "0":
        # No early stopping: every round trained, the last one kept, the model as trained.
        assert kept_round == max(per_round) == total
    else:
        # The best round by the tenant's objective, not by logloss; training went `patience` past it.
        assert kept_round == best_round(per_round, Objective.of(problem_type, objective))
        assert max(per_round) == min(total, kept_round + int(patience))
    if algorithm == "xgboost":
        booster = xgb.Booster()
        booster.load_model(paths.model / "model.json")
        assert booster.num_boosted_rounds() == kept_round
        assert booster.attributes() == {}  # no checkpoint state in a served model


def test_the_best_round_follows_the_objective_where_the_objectives_disagree(sagemaker_root, capsys):
    """A deep, fast XGBoost: validation AUC peaks around round 20 while logloss improves to the end."""
    kept = {}
    for objective in ("validation:logloss", "validation:auc"):
        hyperparameters = {"num_round": "60", "eta": "0.6", "max_depth": "8", "early_stopping_rounds": "60"}
        paths = sagemaker_root("binary", job("xgboost", "binary", mlops_objective=objective, **hyperparameters))
        assert main(paths) == 0
        kept[objective] = metric_lines(capsys.readouterr().out)[-1][1]
        for file in paths.checkpoints.iterdir():
            file.unlink()  # the next objective trains from scratch

    assert kept["validation:logloss"] != kept["validation:auc"]


@pytest.mark.parametrize("algorithm", list(TRAINERS))
def test_a_job_interrupted_after_its_best_round_keeps_that_round_when_it_resumes(sagemaker_root, algorithm):
    """A spot interruption lands past the best round: the resumed job still keeps the best, not the best since."""
    reference = sagemaker_root("binary", job(algorithm, "binary"))
    hyperparameters = parse({**job(algorithm, "binary"), **OVERFITTING[algorithm], "early_stopping_rounds": "1000"})
    trainer = TRAINERS[algorithm]("binary", hyperparameters.model)
    train, validation = datasets(
        read_channel(reference.channel("train"), "target"),
        read_channel(reference.channel("validation"), "target"),
        "binary",
    )
    uninterrupted = trainer.fit(
        train, validation, on_round=lambda *_: None, checkpoints=reference.root / "uninterrupted", checkpoint_every=1
    )
    assert uninterrupted.kept_round < uninterrupted.rounds_run  # the curve went on past its best

    class SpotInterruption(Exception):
        pass

    def interrupt_after_best(number: int, metrics: dict, kept: tuple) -> None:
        if number == uninterrupted.kept_round + 2:
            raise SpotInterruption

    folder = reference.root / "interrupted"
    with pytest.raises(SpotInterruption):
        trainer.fit(train, validation, on_round=interrupt_after_best, checkpoints=folder, checkpoint_every=1)
    resumed = trainer.fit(train, validation, on_round=lambda *_: None, checkpoints=folder, checkpoint_every=1)

    assert resumed.resumed_from == uninterrupted.kept_round + 1
    assert resumed.kept_round == uninterrupted.kept_round
    assert resumed.kept_metrics == pytest.approx(uninterrupted.kept_metrics, rel=1e-6)
    predict = _predictor(algorithm, resumed.model)
    reference_predict = _predictor(algorithm, uninterrupted.model)
    np.testing.assert_allclose(predict(validation.features), reference_predict(validation.features), rtol=1e-5)


def _predictor(algorithm: str, model):
    if algorithm == "xgboost":
        return model.inplace_predict
    return model.score  # the fitted LinearArtifact: preprocessing, then the model's probability of class 1


def test_the_image_reports_the_metrics_the_tenant_config_allows_as_objectives():
    """config/tenants.py validates tenants' objectives at synth; the image must report each, in that direction."""
    from config.tenants import METRICS

    assert METRICS == OBJECTIVES
