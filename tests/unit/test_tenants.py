"""Tenant pipeline files: the example validates, grids expand, and each mistake is one sentence."""

from __future__ import annotations

import pytest
from sklearn.datasets import load_breast_cancer

from config import ConfigError, load_config
from config.tenants import HYPERPARAMETERS_FILE, MAX_JOB_SECONDS, MAX_TRIALS, TrainingSpec
from tests.conftest import ROOT
from tests.unit.conftest import assert_one_sentence, edit

CONFIG = ROOT / "config"


def test_the_example_tenant_validates_and_expands_its_grids_into_trials():
    [example] = load_config(CONFIG).pipelines

    assert example.tenant == "example"
    trials = {model.name: model.trials() for model in example.models}
    assert trials["xgboost"] == [
        {"eta": 0.1, "max_depth": 3},
        {"eta": 0.1, "max_depth": 6},
        {"eta": 0.3, "max_depth": 3},
        {"eta": 0.3, "max_depth": 6},
    ]
    assert trials["linear"] == [{"alpha": 0.0001}, {"alpha": 0.001, "eta0": 0.05}]
    assert example.trial_count == 6


def test_the_example_features_are_the_shipped_datasets_columns():
    [example] = load_config(CONFIG).pipelines
    columns = [str(c).replace(" ", "_") for c in load_breast_cancer(as_frame=True).frame.columns]

    assert [*example.dataset.features, example.dataset.target] == columns


def test_grids_are_checked_against_the_training_images_own_table():
    from mlops_platform.training.settings import SCHEMA_FILE

    assert HYPERPARAMETERS_FILE.resolve() == SCHEMA_FILE.resolve()


@pytest.mark.parametrize("runtime", [60, 3600, 3601, 10_000, MAX_JOB_SECONDS])
def test_without_a_spot_wait_the_wait_covers_the_runtime(runtime):
    training = TrainingSpec(instance_type="ml.m5.large", max_runtime_seconds=runtime)

    assert training.spot is True
    assert runtime <= training.max_wait_seconds <= MAX_JOB_SECONDS


def test_the_defaults_alone_make_a_valid_spot_job():
    training = TrainingSpec(instance_type="ml.m5.large")

    assert training.max_wait_seconds >= training.max_runtime_seconds


def test_a_tenant_file_with_a_long_runtime_and_no_wait_loads_and_publishes_a_wait_that_covers_it(config_copy):
    path = config_copy / "pipelines" / "example.yaml"
    edit(path, "  max_runtime_seconds: 1800\n  max_wait_seconds: 3600\n", "  max_runtime_seconds: 10000\n")

    [example] = load_config(config_copy).pipelines

    published = example.published()["training"]
    assert published["max_runtime_seconds"] == 10_000
    assert published["max_wait_seconds"] >= 10_000


BAD_PIPELINES = {
    "unknown hyperparameter": ("max_depth: [3, 6]", "learning_rate: [0.1]", "models.0.grid", "learning_rate"),
    "hyperparameter out of bounds": ("max_depth: [3, 6]", "max_depth: [3, 99]", "models.0.grid", "99"),
    "fraction for a whole number": ("max_depth: [3, 6]", "max_depth: [3.5]", "models.0.grid", "3.5"),
    "empty list of values": ("max_depth: [3, 6]", "max_depth: []", "models.0.grid", "[]"),
    "unknown algorithm": ("algorithm: linear", "algorithm: forest", "models.1.algorithm", "'forest'"),
    "metric of another problem type": ("metric: validation:auc", "metric: validation:rmse", "objective.metric", "rmse"),
    "wrong direction": ("direction: maximize", "direction: minimize", "objective.direction", "'minimize'"),
    "spot wait shorter than runtime": (
        "max_wait_seconds: 3600",
        "max_wait_seconds: 600",
        "training.max_wait_seconds",
        "600",
    ),
    "unknown instance family": (
        "instance_type: ml.m5.large",
        "instance_type: ml.z9.large",
        "training.instance_type",
        "z9",
    ),
    "tenant unlike its file": ("tenant: example", "tenant: acme", "tenant", "'acme'"),
    "duplicate model names": ("  - name: linear\n", "  - name: xgboost\n", "models", "xgboost"),
    "target among the features": ("    mean_radius: double", "    target: double", "dataset.features", "target"),
    "a split of a dataset named for scoring": (
        "  dataset: breast-cancer\n  split",
        "  dataset: churn\n  split",
        "batch_prediction.split",
        "'test'",
    ),
    "two columns with one restricted name": (
        "    mean_texture: double",
        '    "Mean Radius": double',
        "dataset.features",
        "'Mean Radius'",
    ),
    "a type the schema lacks": (
        "    mean_radius: double",
        "    mean_radius: string",
        "dataset.features.mean_radius",
        "'string'",
    ),
    "a control character in a column name": (
        "    mean_radius: double",
        '    "mean\\tradius": double',
        "dataset.features",
        "control",
    ),
    "a dataset name with spaces": ("  name: breast-cancer", "  name: Breast Cancer", "dataset.name", "'Breast Cancer'"),
    "three classes for a binary problem": (
        "  problem_type: binary\n",
        "  problem_type: binary\n  classes: [a, b, c]\n",
        "dataset.classes",
        "exactly 2 labels",
    ),
    "a threshold the metric never reaches": (
        "approval_threshold: 0.95",
        "approval_threshold: 1.5",
        "objective.approval_threshold",
        "1.5",
    ),
    "a rejected share above 1": (
        "  problem_type: binary\n",
        "  problem_type: binary\n  max_rejected_share: 2\n",
        "dataset.max_rejected_share",
        "2",
    ),
    "misspelt section": ("batch_prediction:", "batch_predictions:", "batch_predictions", "dataset"),
}


@pytest.mark.parametrize(("old", "new", "key", "value"), BAD_PIPELINES.values(), ids=BAD_PIPELINES.keys())
def test_a_bad_pipeline_setting_is_one_sentence_naming_file_key_value_and_what_is_allowed(
    config_copy, old, new, key, value
):
    path = config_copy / "pipelines" / "example.yaml"
    edit(path, old, new)

    with pytest.raises(ConfigError) as raised:
        load_config(config_copy)

    assert_one_sentence(str(raised.value), path, key, value)


def test_no_setting_error_shows_a_regular_expression(config_copy):
    path = config_copy / "pipelines" / "example.yaml"
    for old, new in [("    mean_radius: double", '    "x\\ty": double'), ("tenant: example", "tenant: Example!")]:
        text = path.read_text()
        edit(path, old, new)
        with pytest.raises(ConfigError) as raised:
            load_config(config_copy)
        assert not any(mark in str(raised.value) for mark in ("^", "$", "[a-z", "{0,")), str(raised.value)
        path.write_text(text)


WINE = """\
tenant: wine
dataset:
  name: wine
  target: class
  problem_type: multiclass
  classes: ["0", "1", "2"]
  max_rejected_share: 0.02
  features:
    alcohol: double
    "od280/od315_of_diluted_wines": {type: double, required: true}
    magnesium: bigint
    region: categorical
models:
  - {name: xgboost, algorithm: xgboost, grid: {max_depth: [3]}}
  - {name: linear, algorithm: linear}
objective: {metric: "validation:f1_macro", direction: maximize, approval_threshold: 0.9}
training: {instance_type: ml.m5.large}
batch_prediction: {dataset: wine-new}
"""


def test_a_multiclass_tenant_with_names_as_the_data_has_them_publishes_each_column_s_restricted_name(config_copy):
    (config_copy / "pipelines" / "wine.yaml").write_text(WINE)

    wine = next(p for p in load_config(config_copy).pipelines if p.tenant == "wine")

    published = wine.published()
    dataset = published["dataset"]
    assert dataset["features"] == {
        "alcohol": "double",
        "od280/od315_of_diluted_wines": "double",
        "magnesium": "bigint",
        "region": "categorical",
    }
    assert dataset["columns"][1] == {
        "name": "od280/od315_of_diluted_wines",
        "column": "od280_od315_of_diluted_wines",
        "type": "double",
        "required": True,
    }
    assert (dataset["classes"], dataset["unknown_columns"], dataset["max_rejected_share"]) == (
        ["0", "1", "2"],
        "ignore",
        0.02,
    )
    assert published["metrics"] == ["validation:mlogloss", "validation:accuracy", "validation:f1_macro"]
    assert published["batch_prediction"]["scoring"] is True


def test_a_binary_metric_is_refused_for_a_multiclass_tenant(config_copy):
    path = config_copy / "pipelines" / "wine.yaml"
    path.write_text(WINE.replace("validation:f1_macro", "validation:auc"))

    with pytest.raises(ConfigError) as raised:
        load_config(config_copy)

    assert_one_sentence(str(raised.value), path, "objective.metric", "validation:auc")
    assert "validation:mlogloss, validation:accuracy, validation:f1_macro" in str(raised.value)


def test_more_trials_than_one_execution_can_run_are_refused(config_copy):
    path = config_copy / "pipelines" / "example.yaml"
    values = ", ".join(str(0.01 * i) for i in range(1, 101))
    path.write_text(path.read_text().replace("eta: [0.1, 0.3]", f"eta: [{values}]\n      gamma: [{values}]"))

    with pytest.raises(ConfigError, match=rf"allowed: at most {MAX_TRIALS} trials in all \(the grids make 20002\)"):
        load_config(config_copy)


def test_a_new_tenant_is_one_more_file(config_copy):
    example = (config_copy / "pipelines" / "example.yaml").read_text()
    (config_copy / "pipelines" / "acme.yaml").write_text(example.replace("tenant: example", "tenant: acme"))

    assert [pipeline.tenant for pipeline in load_config(config_copy).pipelines] == ["acme", "example"]


def test_two_tenants_whose_tenant_and_model_spell_the_same_names_are_refused(config_copy):
    example = (config_copy / "pipelines" / "example.yaml").read_text()
    for tenant, model in (("a", "b-c"), ("a-b", "c")):
        text = example.replace("tenant: example", f"tenant: {tenant}").replace("- name: xgboost", f"- name: {model}")
        (config_copy / "pipelines" / f"{tenant}.yaml").write_text(text)

    with pytest.raises(ConfigError) as refused:
        load_config(config_copy)

    # Files load in name order: a-b.yaml, then a.yaml, whose model repeats the name.
    message = str(refused.value)
    assert "a.yaml: key 'models' has value 'b-c'" in message
    assert "the same 'a-b-c' as tenant 'a-b''s model 'c'" in message
    assert "\n" not in message


def test_tenants_whose_names_share_a_prefix_load_when_no_joined_name_repeats(config_copy):
    example = (config_copy / "pipelines" / "example.yaml").read_text()
    for tenant in ("a", "a-b"):
        (config_copy / "pipelines" / f"{tenant}.yaml").write_text(
            example.replace("tenant: example", f"tenant: {tenant}")
        )

    assert [pipeline.tenant for pipeline in load_config(config_copy).pipelines] == ["a-b", "a", "example"]
