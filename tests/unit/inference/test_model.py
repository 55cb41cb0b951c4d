"""The inference image reads the training image's models itself and scores exactly as the training code does."""

from __future__ import annotations

import hashlib
import json
import tarfile

import numpy as np
import pytest

from mlops_platform.model_digest import MANIFEST, write_manifest
from mlops_platform.serving import model as model_module
from mlops_platform.serving.model import DensePrediction, LinearModel, Metadata, ModelError, XGBoostModel, load
from mlops_platform.training.algorithms import load_model
from tests.conftest import ROOT
from tests.unit.inference.conftest import MODELS, feature_names, features_of


@pytest.mark.parametrize(("algorithm", "problem_type"), MODELS)
def test_scores_equal_the_training_code_s_own_predictions(model_dirs, algorithm, problem_type):
    directory = model_dirs[(algorithm, problem_type)]
    features = features_of(problem_type)

    model = load(directory)
    _, predict = load_model(directory)

    assert isinstance(model, XGBoostModel if algorithm == "xgboost" else LinearModel)
    assert model.metadata.algorithm == algorithm
    assert model.metadata.problem_type == problem_type
    scores = model.score(features)
    assert scores.shape == (len(features),)
    expected = predict(features)
    if algorithm == "xgboost":
        np.testing.assert_array_equal(scores, expected)  # the same call on the same booster
    else:
        # The scaler folded into the weights: the same sums in another order.
        np.testing.assert_allclose(scores, expected, rtol=1e-6, atol=1e-9)
    if problem_type == "binary":
        assert ((scores >= 0) & (scores <= 1)).all()


@pytest.mark.parametrize(("algorithm", "problem_type"), MODELS)
def test_contributions_and_bias_sum_to_the_margin(model_dirs, algorithm, problem_type):
    model = load(model_dirs[(algorithm, problem_type)])
    features = features_of(problem_type, rows=50)

    contributions = model.contributions(features)
    margin = model.margin(features)

    assert contributions.shape == (50, model.metadata.width + 1)
    np.testing.assert_allclose(contributions.sum(axis=1), margin, rtol=1e-5, atol=1e-4)
    if problem_type == "binary":
        # The margin is the log-odds of the score: the link function is the logistic.
        scores = model.score(features).astype(np.float64)
        np.testing.assert_allclose(np.log(scores / (1 - scores)), margin, rtol=1e-4, atol=1e-4)
    else:
        np.testing.assert_allclose(model.score(features), margin, rtol=1e-6)


def test_the_xgboost_margin_is_xgboost_s_own_output_margin(xgboost_dir):
    import xgboost as xgb

    model = load(xgboost_dir)
    features = features_of("binary", rows=20)
    booster = xgb.Booster()
    booster.load_model(xgboost_dir / "model.json")

    expected = booster.predict(xgb.DMatrix(features, feature_names=feature_names("binary")), output_margin=True)

    np.testing.assert_allclose(model.margin(features), expected, rtol=1e-6)
    np.testing.assert_allclose(model.contributions(features).sum(axis=1), expected, rtol=1e-5, atol=1e-5)


def test_linear_contributions_are_coefficient_times_standardized_value(model_dirs):
    model = load(model_dirs[("linear", "binary")])
    assert isinstance(model, LinearModel)
    features = features_of("binary", rows=3)

    contributions = model.contributions(features)

    preprocessing = model.artifact.preprocessing
    standardized = (features[0].astype(np.float64) - preprocessing.mean) / preprocessing.scale
    np.testing.assert_allclose(contributions[0, :-1], model.artifact.coefficients[0] * standardized)
    assert contributions[0, -1] == model.artifact.intercepts[0]


def copy_model(source, target, **metadata_changes):
    """A copy of a trained model with ``metadata_changes``, its manifest rewritten as training would write it."""
    target.mkdir()
    for path in source.iterdir():
        (target / path.name).write_bytes(path.read_bytes())
    metadata = json.loads((source / "metadata.json").read_text())
    metadata.update(metadata_changes)
    (target / "metadata.json").write_text(json.dumps(metadata))
    write_manifest(target)
    return target


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"algorithm": "forest"}, "algorithm has value 'forest'; allowed: one of xgboost, linear"),
        ({"problem_type": "ternary"}, "problem_type has value 'ternary'"),
        ({"features": []}, "features must be a non-empty list of column names"),
        ({"features": ["a", "a"]}, "feature names must be unique"),
        ({"features": ["a", "b"], "schema": None}, "expects 30 features; metadata.json lists 2"),
        ({"algorithm": "linear"}, "no linear model under"),
    ],
)
def test_a_model_folder_that_does_not_fit_is_refused_with_a_reason(xgboost_dir, tmp_path, changes, reason):
    directory = copy_model(xgboost_dir, tmp_path / "model", **changes)

    with pytest.raises(ModelError) as error:
        load(directory)

    assert reason in str(error.value)
    assert "\n" not in str(error.value)


def test_a_missing_or_corrupt_model_is_refused_with_a_reason(xgboost_dir, tmp_path):
    with pytest.raises(ModelError, match=r"^no model under .* \(metadata\.json is missing\)$"):
        load(tmp_path)  # an empty folder: no artifact at all (a folder of files without a manifest is tampered)

    corrupt = copy_model(xgboost_dir, tmp_path / "corrupt")
    (corrupt / "model.json").write_text("{not a model")
    write_manifest(corrupt)  # corrupt as training wrote it: the digests match, the booster does not load
    with pytest.raises(ModelError, match=r"does not load: XGBoostError"):
        load(corrupt)


# -- the files are what training wrote (issue 17, point 7) ----------------------------------------


@pytest.mark.parametrize(("algorithm", "problem_type"), MODELS)
def test_training_writes_a_manifest_of_every_file_of_the_model(model_dirs, algorithm, problem_type):
    directory = model_dirs[(algorithm, problem_type)]

    lines = (directory / MANIFEST).read_text().splitlines()

    listed = {line.split("  ", 1)[1]: line.split("  ", 1)[0] for line in lines}
    assert sorted(listed) == sorted(p.name for p in directory.iterdir() if p.name != MANIFEST)
    assert all(listed[name] == hashlib.sha256((directory / name).read_bytes()).hexdigest() for name in listed)


def tamper_changed(directory):
    model_file = "model.json" if (directory / "model.json").exists() else "linear.json"
    text = (directory / model_file).read_text()
    (directory / model_file).write_text(text.replace("1", "7", 1))
    return f"{model_file} of the model under {directory} has sha256"


def tamper_added(directory):
    # A pickle beside the model: joblib would run its code on load (the legacy linear format).
    (directory / "model.joblib").write_bytes(b"\x80\x04cos\nsystem\n(S'touch /tmp/pwned'\ntR.")
    return "holds model.joblib, which manifest.sha256 does not list"


def tamper_removed(directory):
    (directory / "metadata.json").unlink()
    return "lacks metadata.json, which manifest.sha256 lists"


def tamper_manifest(directory):
    (directory / MANIFEST).unlink()
    return "has no manifest.sha256"


def tamper_rewritten_line(directory):
    (directory / MANIFEST).write_text("not a digest  metadata.json\n")
    return "line 1 is not '<sha256>  <file>'"


@pytest.mark.parametrize(
    "tamper", [tamper_changed, tamper_added, tamper_removed, tamper_manifest, tamper_rewritten_line]
)
@pytest.mark.parametrize("key", [("xgboost", "binary"), ("linear", "binary")])
def test_a_tampered_model_is_refused_before_any_of_its_files_is_read(model_dirs, tmp_path, monkeypatch, tamper, key):
    directory = tmp_path / "model"
    directory.mkdir()
    for path in model_dirs[key].iterdir():
        (directory / path.name).write_bytes(path.read_bytes())
    reason = tamper(directory)
    opened = []
    monkeypatch.setattr(Metadata, "read", classmethod(lambda cls, d: opened.append(d)))
    monkeypatch.setattr(model_module, "_legacy_linear", lambda *a: opened.append(a))

    with pytest.raises(ModelError) as refused:
        load(directory)

    assert reason in str(refused.value)
    assert "\n" not in str(refused.value)
    assert opened == []  # neither the metadata nor any model file was read


def test_the_shipped_example_archives_carry_a_manifest_the_server_accepts(tmp_path):
    for name in ("xgboost", "linear"):
        with tarfile.open(ROOT / "models" / "example" / name / "model.tar.gz") as archive:
            archive.extractall(tmp_path / name, filter="data")

        assert load(tmp_path / name).metadata.algorithm == name


def test_xgboost_scores_through_the_direct_c_call_exactly_as_inplace_predict(xgboost_dir):
    model = load(xgboost_dir)
    features = features_of("binary", rows=30)

    assert isinstance(model._score, DensePrediction)
    assert isinstance(model._margin, DensePrediction)
    np.testing.assert_array_equal(model.score(features), model.booster.inplace_predict(features))
    np.testing.assert_array_equal(model.score(features[:1]), model.booster.inplace_predict(features[:1]))
    np.testing.assert_array_equal(
        model.margin(features), model.booster.inplace_predict(features, predict_type="margin")
    )


def test_the_direct_c_call_gives_way_to_inplace_predict_when_they_differ(xgboost_dir, monkeypatch):
    model = load(xgboost_dir)
    monkeypatch.setattr(DensePrediction, "__call__", lambda self, features: np.zeros(len(features), np.float32))

    fallback = DensePrediction.or_inplace(model.booster, "value")

    assert not isinstance(fallback, DensePrediction)
    features = features_of("binary", rows=5)
    np.testing.assert_array_equal(fallback(features), model.booster.inplace_predict(features))


def test_the_gpu_is_used_only_where_an_nvidia_device_is_visible_or_asked_for(monkeypatch):
    from mlops_platform.serving.model import gpu_wanted

    assert not gpu_wanted({"MLOPS_DEVICE": "cpu"})
    assert gpu_wanted({"MLOPS_DEVICE": "cuda"})
    monkeypatch.setattr("mlops_platform.serving.model.Path.exists", lambda self: str(self) == "/dev/nvidiactl")
    assert gpu_wanted({})
    monkeypatch.setattr("mlops_platform.serving.model.Path.exists", lambda self: False)
    assert not gpu_wanted({})


def test_large_batches_and_explanations_take_the_gpu_path_with_the_same_answers(xgboost_dir, monkeypatch):
    from mlops_platform.serving import model as model_module

    few = features_of("binary")
    rows = np.resize(few, (model_module.GPU_MIN_ROWS, few.shape[1]))
    monkeypatch.setenv("MLOPS_DEVICE", "cpu")
    on_cpu = XGBoostModel(model_module.Metadata.read(xgboost_dir), xgboost_dir)
    # No GPU here: the "GPU" booster is a copy of the model (xgboost-cpu falls back to the CPU, or
    # refuses and the model keeps none); either way the answers must not change.
    monkeypatch.setenv("MLOPS_DEVICE", "cuda")
    asked = XGBoostModel(model_module.Metadata.read(xgboost_dir), xgboost_dir)

    assert on_cpu.gpu is None
    np.testing.assert_allclose(asked.score(rows), on_cpu.score(rows), rtol=1e-6)
    np.testing.assert_allclose(asked.contributions(rows[:5]), on_cpu.contributions(rows[:5]), rtol=1e-5, atol=1e-6)
