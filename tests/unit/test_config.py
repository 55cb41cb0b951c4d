"""Configuration: the shipped files validate, and each bad setting stops synth with one sentence."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from config import ENVIRONMENT_NAMES, ConfigError, load_config
from config.instance_types import has_local_storage, is_gpu
from tests.conftest import ROOT, make_synth
from tests.unit.conftest import assert_one_sentence, edit

CONFIG = ROOT / "config"


def test_the_shipped_configuration_declares_dev_staging_and_prod_in_pipeline_order():
    config = load_config(CONFIG)

    assert [environment.name for environment in config.environments] == ["dev", "staging", "prod"]
    assert config.project.name == "mlops"


def test_staging_and_prod_keep_their_data_and_are_protected():
    config = load_config(CONFIG)

    for name in ("staging", "prod"):
        environment = config.environment(name)
        assert environment.retains_data
        assert environment.termination_protection
    assert not config.environment("dev").retains_data


def test_prod_runs_at_least_two_endpoint_instances_across_availability_zones():
    for endpoint in load_config(CONFIG).environment("prod").serving.endpoints.values():
        for variant in endpoint.variants:
            assert variant.min_capacity >= 2
            assert variant.initial_instance_count >= 2


def test_settings_are_frozen():
    environment = load_config(CONFIG).environment("dev")

    with pytest.raises(ValueError, match="frozen"):
        environment.account = "999999999999"  # type: ignore[misc]


def test_the_environments_context_selects_a_subset_in_pipeline_order():
    config = load_config(CONFIG, selected_environments="prod, dev")

    assert [environment.name for environment in config.environments] == ["dev", "prod"]


# (file to edit, text to replace, replacement, key named in the error, value named in the error)
BAD_SETTINGS = {
    "malformed account id": ("dev", 'account: "111111111111"', 'account: "11111"', "account", "'11111'"),
    "region outside the commercial partition": (
        "dev",
        "region: eu-west-1",
        "region: us-gov-west-1",
        "region",
        "'us-gov-west-1'",
    ),
    "region that does not exist": ("dev", "region: eu-west-1", "region: eu-west-9", "region", "'eu-west-9'"),
    "unquoted account id": ("dev", 'account: "111111111111"', "account: 111111111111", "account", "111111111111"),
    "unknown instance type family": (
        "staging",
        "training: ml.m5.xlarge",
        "training: ml.q9.xlarge",
        "instance_types.training",
        "'ml.q9.xlarge'",
    ),
    "negative capacity": (
        "prod",
        "training_max_concurrency: 20",
        "training_max_concurrency: -3",
        "capacities.training_max_concurrency",
        "-3",
    ),
    "maximum below minimum": (
        "prod",
        "max_capacity: 10",
        "max_capacity: 1",
        "serving.endpoints.example.variants.0.max_capacity",
        "1",
    ),
    "missing required key": ("dev", "region: eu-west-1\n", "", "region", "missing"),
    "misspelt key": (
        "dev",
        "termination_protection: false",
        "termination_protection: false\nterminaton_protection: true",
        "terminaton_protection",
        "true",
    ),
    "string for a boolean": (
        "dev",
        "termination_protection: false",
        'termination_protection: "no"',
        "termination_protection",
        "'no'",
    ),
    "unknown removal policy": (
        "prod",
        "removal_policy: retain",
        "removal_policy: snapshot",
        "removal_policy",
        "'snapshot'",
    ),
    "log retention CloudWatch rejects": (
        "dev",
        "log_retention_days: 14",
        "log_retention_days: 10",
        "retention.log_retention_days",
        "10",
    ),
    "archive before infrequent access": (
        "dev",
        "raw_archive_after_days: 90",
        "raw_archive_after_days: 31",
        "retention.raw_archive_after_days",
        "31",
    ),
    "environment name unlike its file": ("dev", "name: dev", "name: prod", "name", "'prod'"),
    "environment name that is not one": ("dev", "name: dev", "name: qa", "name", "'qa'"),
    "malformed e-mail": (
        "dev",
        "emails: []",
        "emails: [ops-at-example.com]",
        "notifications.emails.0",
        "ops-at-example",
    ),
}


@pytest.mark.parametrize(("file", "old", "new", "key", "value"), BAD_SETTINGS.values(), ids=BAD_SETTINGS.keys())
def test_a_bad_setting_is_one_sentence_naming_file_key_value_and_what_is_allowed(
    config_copy, file, old, new, key, value
):
    path = config_copy / "environments" / f"{file}.yaml"
    edit(path, old, new)

    with pytest.raises(ConfigError) as raised:
        load_config(config_copy)

    assert_one_sentence(str(raised.value), path, key, value)


def test_an_unknown_environment_file_is_refused(config_copy):
    (config_copy / "environments" / "qa.yaml").write_text((config_copy / "environments" / "dev.yaml").read_text())

    with pytest.raises(ConfigError, match=r"qa\.yaml: key 'name' has value 'qa'; allowed: one of dev, staging, prod"):
        load_config(config_copy)


def test_a_missing_environment_file_is_refused(config_copy):
    (config_copy / "environments" / "prod.yaml").unlink()

    with pytest.raises(ConfigError, match=r"environment 'prod' has no file prod\.yaml"):
        load_config(config_copy)


def test_an_unknown_environment_in_context_is_refused():
    with pytest.raises(ConfigError, match=r"^CDK context: key 'environments' has value 'dev,qa'; allowed: "):
        load_config(CONFIG, selected_environments="dev,qa")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("region: [eu-west-1\n", "not valid YAML"),
        ("region: a\nregion: b\n", "duplicate key 'region'"),
        ("- a\n", "holds"),
    ],
)
def test_a_file_that_is_not_a_mapping_of_unique_keys_is_refused(config_copy, text, problem):
    (config_copy / "environments" / "dev.yaml").write_text(text)

    with pytest.raises(ConfigError, match=problem):
        load_config(config_copy)


def test_instance_type_families_know_gpus_and_local_storage():
    assert is_gpu("ml.g5.xlarge")
    assert not is_gpu("ml.c5.large")
    assert has_local_storage("ml.g5.xlarge")
    assert has_local_storage("ml.m5d.large")
    assert not has_local_storage("ml.m5.large")


# The bad settings the issue names, each as `cdk synth` meets it: (file edit or context, key, value).
SYNTH_FAILURES = {
    "unknown environment": (None, {"environments": "qa"}, "CDK context: key 'environments' has value 'qa'"),
    "malformed account id": (BAD_SETTINGS["malformed account id"], {}, "key 'account' has value '11111'"),
    "unknown instance type family": (
        BAD_SETTINGS["unknown instance type family"],
        {},
        "key 'instance_types.training' has value 'ml.q9.xlarge'",
    ),
    "negative capacity": (
        BAD_SETTINGS["negative capacity"],
        {},
        "key 'capacities.training_max_concurrency' has value -3",
    ),
    "missing required key": (BAD_SETTINGS["missing required key"], {}, "required key 'region' is missing"),
}


@pytest.mark.parametrize(("edit_spec", "context", "expected"), SYNTH_FAILURES.values(), ids=SYNTH_FAILURES.keys())
def test_synth_with_a_bad_setting_exits_non_zero_with_one_line_and_no_traceback(
    config_copy, tmp_path, edit_spec, context, expected
):
    """What `cdk synth` runs: app.py in a process of its own, context in CDK_CONTEXT_JSON."""
    if edit_spec:
        file, old, new, _, _ = edit_spec
        edit(config_copy / "environments" / f"{file}.yaml", old, new)
    context = {**context, "configDir": str(config_copy)}
    environment = {**os.environ, "CDK_CONTEXT_JSON": json.dumps(context), "CDK_OUTDIR": str(tmp_path / "out")}

    result = subprocess.run(
        [sys.executable, str(ROOT / "app.py")], capture_output=True, text=True, env=environment, cwd=ROOT, check=False
    )

    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert expected in lines[0]
    assert "; allowed: " in lines[0]
    if edit_spec:
        assert lines[0].startswith(f"error: {config_copy / 'environments' / edit_spec[0]}.yaml: ")
    assert "Traceback" not in result.stderr
    assert "jsii" not in result.stderr
    assert not (tmp_path / "out" / "manifest.json").exists()  # nothing half-synthesized


def test_every_environment_name_has_a_file():
    assert sorted(path.stem for path in (CONFIG / "environments").glob("*.yaml")) == sorted(ENVIRONMENT_NAMES)


def test_make_synth_stops_on_a_bad_setting_with_its_sentence(config_copy, tmp_path):
    """The whole path a user runs: make -> cdk CLI -> app.py; the CLI adds one line of its own."""
    edit(config_copy / "environments" / "staging.yaml", "training: ml.m5.xlarge", "training: ml.q9.xlarge")

    result = make_synth(f"CDK_OUT={tmp_path / 'cdk.out'}", f"CDK_SYNTH_FLAGS=-c configDir={config_copy}")

    assert result.returncode != 0
    sentence = (
        f"error: {config_copy / 'environments' / 'staging.yaml'}: key 'instance_types.training' "
        "has value 'ml.q9.xlarge'; allowed: an instance type"
    )
    assert sentence in result.stderr
    assert "Traceback" not in result.stderr
    assert "policy gate" not in result.stdout + result.stderr  # stopped before the gate
