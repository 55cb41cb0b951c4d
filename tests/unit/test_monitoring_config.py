"""Monitoring settings: schedule forms, drift thresholds, the lag, the engine; a bad value is one sentence."""

from __future__ import annotations

import json

import pytest

from config import ConfigError, load_config
from config.monitoring import MAX_NAMED_FEATURES, Monitoring, interval_hours
from tests.conftest import ROOT
from tests.unit.conftest import assert_one_sentence, edit

CONFIG = ROOT / "config"
SCHEDULE = 'schedule: "cron(0 * ? * * *)"'
DEFAULTS = "default: {psi: 0.2, ks_statistic: 0.1, ks_p_value: 0.01}"
FEATURES = "features: {}"


def test_every_shipped_environment_runs_the_platform_engine_hourly_on_an_hour_of_capture():
    for environment in load_config(CONFIG).environments:
        assert environment.monitoring.engine == "platform"
        assert environment.monitoring.schedule == "cron(0 * ? * * *)"
        assert environment.monitoring.window_minutes == 60


@pytest.mark.parametrize(
    ("schedule", "hours"),
    [
        ("cron(0 * ? * * *)", 1),
        ("cron(0 0/1 ? * * *)", 1),
        ("cron(0 0/2 ? * * *)", 2),
        ("cron(0 5/6 ? * * *)", 6),
        ("cron(0 11/12 ? * * *)", 12),
        ("cron(0 0 ? * * *)", 24),
        ("cron(0 23 ? * * *)", 24),
    ],
)
def test_each_schedule_form_gives_its_window(config_copy, schedule, hours):
    edit(config_copy / "environments" / "dev.yaml", SCHEDULE, f'schedule: "{schedule}"')

    monitoring = load_config(config_copy, selected_environments="dev").environment("dev").monitoring

    assert interval_hours(schedule) == hours
    assert monitoring.window_minutes == hours * 60


BAD_SCHEDULES = {
    "minutes other than 0": "cron(30 * ? * * *)",
    "every 5 hours (does not divide a day)": "cron(0 0/5 ? * * *)",
    "a 24th hour": "cron(0 24 ? * * *)",
    "a start hour past 23": "cron(0 24/2 ? * * *)",
    "a start hour past the step (23/12 fires once a day)": "cron(0 23/12 ? * * *)",
    "a start hour equal to the step": "cron(0 6/6 ? * * *)",
    "a rate expression": "rate(1 hour)",
    "a step written */N": "cron(0 */2 ? * * *)",
    "a day-of-week schedule": "cron(0 0 ? * MON *)",
    "a bare cron body": "0 * ? * * *",
}


@pytest.mark.parametrize("schedule", BAD_SCHEDULES.values(), ids=BAD_SCHEDULES.keys())
def test_a_schedule_of_another_form_is_one_sentence_naming_the_allowed_forms(config_copy, schedule):
    path = config_copy / "environments" / "dev.yaml"
    edit(path, SCHEDULE, f'schedule: "{schedule}"')

    with pytest.raises(ConfigError) as raised:
        load_config(config_copy)

    message = str(raised.value)
    assert_one_sentence(message, path, "monitoring.schedule", schedule)
    assert "cron(0 * ? * * *) (hourly)" in message
    assert "cron(0 H/N ? * * *)" in message
    assert "N one of 1, 2, 3, 4, 6, 8, 12" in message
    assert "H from 0 to N - 1" in message


# (text to replace in dev.yaml's monitoring section, replacement, key, value)
BAD_SETTINGS = {
    "PSI of 0": (
        DEFAULTS,
        "default: {psi: 0, ks_statistic: 0.1, ks_p_value: 0.01}",
        "monitoring.thresholds.default.psi",
        "0",
    ),
    "KS distance above 1": (
        DEFAULTS,
        "default: {psi: 0.2, ks_statistic: 1.5, ks_p_value: 0.01}",
        "monitoring.thresholds.default.ks_statistic",
        "1.5",
    ),
    "KS p-value of 1": (
        DEFAULTS,
        "default: {psi: 0.2, ks_statistic: 0.1, ks_p_value: 1}",
        "monitoring.thresholds.default.ks_p_value",
        "1",
    ),
    "PSI as text": (
        DEFAULTS,
        "default: {psi: '0.2', ks_statistic: 0.1, ks_p_value: 0.01}",
        "monitoring.thresholds.default.psi",
        "'0.2'",
    ),
    "unknown threshold": (
        DEFAULTS,
        "default: {psi: 0.2, ks_statistic: 0.1, ks_p_value: 0.01, chi2: 3}",
        "monitoring.thresholds.default.chi2",
        "3",
    ),
    "a named feature's threshold": (
        FEATURES,
        "features: {mean_radius: {psi: -0.1}}",
        "monitoring.thresholds.features.mean_radius.psi",
        "-0.1",
    ),
    "drifted share above 1": (
        "drifted_share: 0.5",
        "drifted_share: 1.5",
        "monitoring.thresholds.drifted_share",
        "1.5",
    ),
    "prediction PSI of 0": (
        "prediction_psi: 0.2",
        "prediction_psi: 0",
        "monitoring.thresholds.prediction_psi",
        "0",
    ),
    "no rows needed": ("min_rows: ", "min_rows: 0  # was ", "monitoring.thresholds.min_rows", "0"),
    "unknown engine": (
        "engine: platform",
        "engine: evidently",
        "monitoring.engine",
        "'evidently'",
    ),
    "runtime past the hour": (
        "max_runtime_seconds: 1800",
        "max_runtime_seconds: 7200",
        "monitoring.max_runtime_seconds",
        "7200",
    ),
    "a lag longer than three hours": (
        "window_lag_minutes: 15",
        "window_lag_minutes: 181",
        "monitoring.window_lag_minutes",
        "181",
    ),
    "a negative lag": (
        "window_lag_minutes: 15",
        "window_lag_minutes: -1",
        "monitoring.window_lag_minutes",
        "-1",
    ),
    "labels dataset not a dataset name": (
        "max_runtime_seconds: 1800",
        "max_runtime_seconds: 1800\n  labels_dataset: Labels/2026",
        "monitoring.labels_dataset",
        "'Labels/2026'",
    ),
    "unknown instance type": (
        "max_runtime_seconds: 1800",
        "max_runtime_seconds: 1800\n  instance_type: ml.q9.large",
        "monitoring.instance_type",
        "'ml.q9.large'",
    ),
}


@pytest.mark.parametrize(("old", "new", "key", "value"), BAD_SETTINGS.values(), ids=BAD_SETTINGS.keys())
def test_a_bad_monitoring_setting_is_one_sentence_naming_key_value_and_what_is_allowed(
    config_copy, old, new, key, value
):
    path = config_copy / "environments" / "dev.yaml"
    edit(path, old, new)

    with pytest.raises(ConfigError) as raised:
        load_config(config_copy)

    assert_one_sentence(str(raised.value), path, key, value)


def test_each_run_reads_the_window_that_ended_a_quarter_of_an_hour_before_it_by_default():
    assert Monitoring().window_lag_minutes == 15
    for environment in load_config(CONFIG).environments:
        assert environment.monitoring.window_lag_minutes == 15


def test_the_settings_document_holds_every_threshold_for_the_job():
    monitoring = Monitoring.model_validate(
        {"thresholds": {"features": {"mean_radius": {"psi": 0.1}}, "drifted_share": 0.3}}
    )

    document = monitoring.settings_document()

    assert document["schema_version"] == 1
    assert document["thresholds"]["features"] == {"mean_radius": {"psi": 0.1, "ks_statistic": 0.1, "ks_p_value": 0.01}}
    assert document["thresholds"]["drifted_share"] == 0.3
    assert json.loads(json.dumps(document)) == document


def test_labels_are_off_by_default_and_named_by_a_dataset(config_copy):
    assert Monitoring().labels_dataset is None
    edit(
        config_copy / "environments" / "dev.yaml",
        "max_runtime_seconds: 1800",
        "max_runtime_seconds: 1800\n  labels_dataset: churn-labels",
    )

    monitoring = load_config(config_copy, selected_environments="dev").environment("dev").monitoring

    assert monitoring.labels_dataset == "churn-labels"


def test_a_feature_name_that_is_not_a_column_name_is_refused(config_copy):
    path = config_copy / "environments" / "dev.yaml"
    edit(path, FEATURES, "features: {Mean Radius: {psi: 0.1}}")

    with pytest.raises(ConfigError) as raised:
        load_config(config_copy)

    message = str(raised.value)
    assert message.startswith(f"{path}: key 'monitoring.thresholds.features.Mean Radius")
    assert "has value 'Mean Radius'; allowed: a feature's column name: a lowercase letter" in message
    assert "\n" not in message


def test_more_named_features_than_the_schema_allows_are_refused(config_copy):
    path = config_copy / "environments" / "dev.yaml"
    features = {f"feature_{index}": {"psi": 0.1} for index in range(MAX_NAMED_FEATURES + 1)}
    edit(path, FEATURES, f"features: {json.dumps(features)}")

    with pytest.raises(ConfigError) as raised:
        load_config(config_copy)

    assert_one_sentence(str(raised.value), path, "monitoring.thresholds.features", "feature_0")
    assert f"at most {MAX_NAMED_FEATURES} feature names" in str(raised.value)


def test_named_features_take_their_missing_thresholds_from_the_defaults_of_the_job(config_copy):
    edit(config_copy / "environments" / "dev.yaml", FEATURES, "features: {mean_radius: {psi: 0.1}}")

    thresholds = load_config(config_copy, selected_environments="dev").environment("dev").monitoring.thresholds

    assert thresholds.features["mean_radius"].psi == 0.1
    assert thresholds.features["mean_radius"].ks_statistic == 0.1


# -- engine: SageMaker Model Monitor is not offered ----------------------------------------------------


def test_model_monitor_is_refused_in_one_sentence_that_says_where_to_read_why(config_copy):
    path = config_copy / "environments" / "dev.yaml"
    edit(path, "engine: platform", "engine: model-monitor")

    with pytest.raises(ConfigError) as raised:
        load_config(config_copy)

    message = str(raised.value)
    assert_one_sentence(message, path, "monitoring.engine", "'model-monitor'")
    assert "SageMaker Model Monitor is not offered" in message
    assert "README.md" in message
