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
        "max_capacity: 4",
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
    "raw data expiring before it is archived": (
        "dev",
        "raw_expiration_days: 180",
        "raw_expiration_days: 90",
        "retention.raw_expiration_days",
        "90",
    ),
    "captured requests kept for ever": (
        "dev",
        "capture_expiration_days: 30",
        "capture_expiration_days: 0",
        "retention.capture_expiration_days",
        "0",
    ),
    "prod without approvers": (
        "prod",
        'approver_role_arns:\n    - "arn:aws:iam::333333333333:role/ModelApprover"',
        "approver_role_arns: []",
        "approval.approver_role_arns",
        "[]",
    ),
    "approver that is no role ARN": (
        "prod",
        '"arn:aws:iam::333333333333:role/ModelApprover"',
        '"arn:aws:sts::333333333333:assumed-role/ModelApprover/alice"',
        "approval.approver_role_arns.0",
        "assumed-role",
    ),
    "approver of another account": (
        "prod",
        '"arn:aws:iam::333333333333:role/ModelApprover"',
        '"arn:aws:iam::111111111111:role/ModelApprover"',
        "approval.approver_role_arns.0",
        "111111111111",
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


@pytest.mark.slow
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


@pytest.mark.slow
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


# -- the delivery pipeline (config/pipeline.yaml) and account singletons ---------------------------------

PLACEHOLDER_CONNECTION = (
    "arn:aws:codeconnections:eu-west-1:000000000000:connection/00000000-0000-0000-0000-000000000000"
)


def test_the_shipped_pipeline_is_a_documented_placeholder():
    delivery = load_config(CONFIG).delivery_pipeline

    assert delivery is not None
    assert delivery.account == "000000000000"
    assert delivery.source.connection_arn == PLACEHOLDER_CONNECTION
    assert "PLACEHOLDER" in (CONFIG / "pipeline.yaml").read_text()


def test_without_a_pipeline_file_there_is_no_pipeline(config_copy):
    (config_copy / "pipeline.yaml").unlink()

    assert load_config(config_copy).delivery_pipeline is None


# (text to replace in pipeline.yaml, replacement, key named in the error, value named in the error)
BAD_PIPELINE_SETTINGS = {
    "connection ARN of another service": (
        PLACEHOLDER_CONNECTION,
        "arn:aws:codecommit:eu-west-1:000000000000:mlops-platform",
        "source.connection_arn",
        "'arn:aws:codecommit:eu-west-1:000000000000:mlops-platform'",
    ),
    "connection ARN without its id": (
        PLACEHOLDER_CONNECTION,
        "arn:aws:codeconnections:eu-west-1:000000000000:connection/",
        "source.connection_arn",
        "connection/'",
    ),
    "missing connection ARN": (
        f"  connection_arn: {PLACEHOLDER_CONNECTION}\n",
        "",
        "source.connection_arn",
        "missing",
    ),
    "connection of another account": (
        PLACEHOLDER_CONNECTION,
        PLACEHOLDER_CONNECTION.replace(":000000000000:", ":999999999999:"),
        "source.connection_arn",
        "999999999999",
    ),
    "repository without its owner": (
        "repository: example-org/mlops-platform",
        "repository: mlops-platform",
        "source.repository",
        "'mlops-platform'",
    ),
    "unquoted tooling account": ('account: "000000000000"', "account: 12", "account", "12"),
    "model the example tenant lacks": (
        "training_models: [xgboost]",
        "training_models: [lightgbm]",
        "smoke_test.training_models.0",
        "'lightgbm'",
    ),
}


@pytest.mark.parametrize(
    ("old", "new", "key", "value"), BAD_PIPELINE_SETTINGS.values(), ids=BAD_PIPELINE_SETTINGS.keys()
)
def test_a_bad_pipeline_setting_is_one_sentence(config_copy, old, new, key, value):
    path = config_copy / "pipeline.yaml"
    edit(path, old, new)

    with pytest.raises(ConfigError) as raised:
        load_config(config_copy)

    assert_one_sentence(str(raised.value), path, key, value)


def test_the_pipeline_needs_the_example_endpoint_in_staging_to_smoke_test(config_copy):
    staging = config_copy / "environments" / "staging.yaml"
    edit(staging, "  endpoints:\n    # The example tenant's endpoint", "  endpoints:\n    # The endpoint")
    edit(staging, "    example:\n      tenant: example", "    other:\n      tenant: example")

    with pytest.raises(ConfigError) as raised:
        load_config(config_copy)

    assert_one_sentence(str(raised.value), config_copy / "pipeline.yaml", "smoke_test", "'example'")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            PLACEHOLDER_CONNECTION,
            "arn:aws:codeconnections:eu-west-1:000000000000:connection/x",
            "source.connection_arn",
        ),
        (f"  connection_arn: {PLACEHOLDER_CONNECTION}\n", "", "required key 'source.connection_arn' is missing"),
    ],
    ids=["bad", "missing"],
)
def test_synth_with_a_bad_or_missing_connection_arn_exits_2_with_one_line(config_copy, tmp_path, old, new, expected):
    edit(config_copy / "pipeline.yaml", old, new)
    context = {"configDir": str(config_copy)}
    environment = {**os.environ, "CDK_CONTEXT_JSON": json.dumps(context), "CDK_OUTDIR": str(tmp_path / "out")}

    result = subprocess.run(
        [sys.executable, str(ROOT / "app.py")], capture_output=True, text=True, env=environment, cwd=ROOT, check=False
    )

    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {config_copy / 'pipeline.yaml'}: ")
    assert expected in lines[0]
    assert "; allowed: " in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "manifest.json").exists()


def share_dev_account(config_copy, environment: str) -> None:
    edit(
        config_copy / "environments" / f"{environment}.yaml",
        '"222222222222"' if environment == "staging" else '"333333333333"',
        '"111111111111"',
    )


def test_every_shipped_environment_owns_the_singletons_of_its_own_account():
    config = load_config(CONFIG)

    assert len({(e.account, e.region) for e in config.environments}) == len(config.environments)
    assert all(e.owns_account_singletons and e.serving.api.owns_account_logging_role for e in config.environments)


def test_two_owners_in_one_account_and_region_are_refused(config_copy):
    share_dev_account(config_copy, "staging")

    with pytest.raises(ConfigError) as raised:
        load_config(config_copy)

    message = str(raised.value)
    assert_one_sentence(message, config_copy / "environments" / "staging.yaml", "owns_account_singletons", "true")
    assert "dev owns the account-wide settings of account 111111111111 in eu-west-1" in message


def test_the_owner_is_checked_across_every_environment_whatever_is_selected(config_copy):
    share_dev_account(config_copy, "staging")

    with pytest.raises(ConfigError, match=r"staging\.yaml: key 'owns_account_singletons' has value true"):
        load_config(config_copy, selected_environments="dev")


def test_an_account_and_region_without_an_owner_is_refused(config_copy):
    share_dev_account(config_copy, "staging")
    for environment in ("dev", "staging"):
        edit(
            config_copy / "environments" / f"{environment}.yaml",
            "owns_account_singletons: true",
            "owns_account_singletons: false",
        )

    with pytest.raises(ConfigError) as raised:
        load_config(config_copy)

    assert_one_sentence(
        str(raised.value), config_copy / "environments" / "dev.yaml", "owns_account_singletons", "false"
    )
    assert "exactly one of dev, staging" in str(raised.value)


def test_one_owner_per_shared_account_passes_and_the_api_logging_role_follows_it(config_copy):
    share_dev_account(config_copy, "staging")
    edit(
        config_copy / "environments" / "staging.yaml",
        "owns_account_singletons: true",
        "owns_account_singletons: false",
    )

    config = load_config(config_copy)

    assert config.environment("dev").serving.api.owns_account_logging_role is True
    assert config.environment("staging").serving.api.owns_account_logging_role is False


def test_the_same_account_in_another_region_has_an_owner_of_its_own(config_copy):
    share_dev_account(config_copy, "staging")
    edit(config_copy / "environments" / "staging.yaml", "region: eu-west-1", "region: eu-central-1")

    assert load_config(config_copy).environment("staging").owns_account_singletons


def test_an_api_logging_role_setting_that_contradicts_the_owner_is_refused(config_copy):
    path = config_copy / "environments" / "prod.yaml"
    edit(path, "    result_ttl_days: 7\n", "    result_ttl_days: 7\n    owns_account_logging_role: false\n")

    with pytest.raises(ConfigError) as raised:
        load_config(config_copy)

    assert_one_sentence(str(raised.value), path, "serving.api.owns_account_logging_role", "false")
    assert "the same as owns_account_singletons" in str(raised.value)


def _settings_models() -> list[type]:
    """Every settings model of config/, found from PlatformConfig down (tenant pipelines included)."""
    from pydantic import BaseModel

    from config.schema import PlatformConfig

    found: list[type] = []
    pending: list[type] = [PlatformConfig]
    while pending:
        model = pending.pop()
        if model in found:
            continue
        found.append(model)
        for field in model.model_fields.values():
            for candidate in (field.annotation, *getattr(field.annotation, "__args__", ())):
                for inner in (candidate, *getattr(candidate, "__args__", ())):
                    if isinstance(inner, type) and issubclass(inner, BaseModel):
                        pending.append(inner)
    return found


# Bounds set by a sibling setting (a validator checks them); their descriptions name that setting.
RELATIVE_BOUNDS = {
    "Retention.raw_archive_after_days",
    "VariantConfig.max_capacity",
    "VariantConfig.initial_instance_count",
    "TrainingSpec.max_wait_seconds",
}


def test_every_whole_number_setting_states_the_bounds_it_accepts():
    """The loader quotes a field's description as what is allowed: it must say the field's own bounds."""
    from annotated_types import Ge, Le

    checked = []
    for model in _settings_models():
        for name, field in model.model_fields.items():
            ge = next((m.ge for m in field.metadata if isinstance(m, Ge)), None)
            le = next((m.le for m in field.metadata if isinstance(m, Le)), None)
            if ge is None or f"{model.__name__}.{name}" in RELATIVE_BOUNDS:
                continue
            expected = f"from {ge} to {le}" if le is not None else f"at least {ge}"
            assert expected in (field.description or ""), f"{model.__name__}.{name}: {field.description!r}"
            checked.append(name)

    assert {"throttle_rate_limit", "cooldown_seconds", "min_capacity", "max_record_bytes"} <= set(checked)
