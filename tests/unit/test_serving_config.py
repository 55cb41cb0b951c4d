"""Serving settings: endpoints and variants in config, the variantWeights context, the deployed-variants record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from config import ConfigError, load_config
from config.deployed import RECORD_FILE, keeps_variant_names
from tests.live_endpoints import record_as_deployed
from tests.unit.conftest import assert_one_sentence, edit

SHIPPED_CHALLENGER = """        - name: Challenger
          flavour: cpu
          instance_type: ml.c5.large
          min_capacity: 1
          max_capacity: 2
          initial_instance_count: 1
          weight: 10
          example_model: linear
"""
CHALLENGER = """        - name: Challenger
          flavour: gpu
          instance_type: ml.g5.xlarge
          min_capacity: 1
          max_capacity: 2
          initial_instance_count: 1
          weight: 10
"""


def with_challenger(config_dir: Path, environment: str = "dev") -> Path:
    """The environment's example endpoint with a GPU Challenger in place of the shipped CPU one."""
    path = config_dir / "environments" / f"{environment}.yaml"
    edit(path, SHIPPED_CHALLENGER, CHALLENGER)
    return path


def weights(config_dir: Path, value: object, environments: str | None = None):
    return load_config(config_dir, selected_environments=environments, variant_weights=value)


def test_every_environment_serves_the_example_tenant_out_of_the_box():
    config = load_config(Path("config"))
    for environment in config.environments:
        endpoint = environment.serving.endpoints["example"]
        assert endpoint.tenant == "example"
        assert endpoint.variants[0].name == "Champion"


@pytest.mark.parametrize("name", ["dev", "staging"])
def test_dev_and_staging_ship_an_a_b_endpoint_of_two_different_models_at_90_10(name):
    endpoint = load_config(Path("config")).environment(name).serving.endpoints["example"]

    assert [(v.name, v.example_model, v.weight) for v in endpoint.variants] == [
        ("Champion", "xgboost", 90.0),
        ("Challenger", "linear", 10.0),
    ]
    assert {v.flavour for v in endpoint.variants} == {"cpu"}


def test_prod_ships_the_cheapest_endpoint_its_rules_allow():
    prod = load_config(Path("config")).environment("prod")
    [variant] = prod.serving.endpoints["example"].variants

    # One variant (an A/B pair would double it), at prod's minimum of two instances, on the smallest c5.
    assert (variant.min_capacity, variant.initial_instance_count, variant.instance_type) == (2, 2, "ml.c5.large")
    assert prod.problems() == []


def test_the_example_model_of_a_variant_is_one_the_repository_ships(config_copy: Path):
    path = config_copy / "environments" / "dev.yaml"
    edit(path, "example_model: linear", "example_model: forest")

    with pytest.raises(ConfigError) as raised:
        load_config(config_copy)

    assert_one_sentence(str(raised.value), path, "serving.endpoints.example.variants.1.example_model", "'forest'")
    assert "'xgboost' or 'linear'" in str(raised.value)


# (text to replace in dev.yaml's Champion, replacement, key named in the error, value named in the error)
BAD_VARIANTS = {
    "gpu family with the cpu image": (
        "instance_type: ml.c5.large",
        "instance_type: ml.g5.xlarge",
        "serving.endpoints.example.variants.0.instance_type",
        "'ml.g5.xlarge'",
    ),
    "cpu family with the gpu image": (
        "flavour: cpu",
        "flavour: gpu",
        "serving.endpoints.example.variants.0.instance_type",
        "'ml.c5.large'",
    ),
    "minimum above maximum": (
        "min_capacity: 1\n          max_capacity: 2",
        "min_capacity: 3\n          max_capacity: 2",
        "serving.endpoints.example.variants.0.max_capacity",
        "2",
    ),
    "initial count outside the capacity": (
        "initial_instance_count: 1",
        "initial_instance_count: 5",
        "serving.endpoints.example.variants.0.initial_instance_count",
        "5",
    ),
    "generic variant name": (
        "name: Champion",
        "name: Variant1",
        "serving.endpoints.example.variants.0.name",
        "'Variant1'",
    ),
    "negative weight": ("weight: 90", "weight: -1", "serving.endpoints.example.variants.0.weight", "-1"),
    "infinite weight": ("weight: 90", "weight: .inf", "serving.endpoints.example.variants.0.weight", "Infinity"),
    "all weights zero": (
        "weight: 90\n          example_model: xgboost\n" + SHIPPED_CHALLENGER,
        "weight: 0\n          example_model: xgboost\n" + SHIPPED_CHALLENGER.replace("weight: 10", "weight: 0"),
        "serving.endpoints.example.variants",
        "Champion",
    ),
}


@pytest.mark.parametrize("case", BAD_VARIANTS.values(), ids=BAD_VARIANTS.keys())
def test_bad_variants_stop_synth_with_one_sentence(config_copy: Path, case: tuple[str, str, str, str]):
    old, new, key, value = case
    path = config_copy / "environments" / "dev.yaml"
    edit(path, old, new)

    with pytest.raises(ConfigError) as raised:
        load_config(config_copy)

    assert_one_sentence(str(raised.value), path, key, value)


def test_duplicate_variant_names_are_refused(config_copy: Path):
    path = with_challenger(config_copy)
    edit(path, "name: Challenger", "name: Champion")
    edit(
        path,
        "flavour: gpu\n          instance_type: ml.g5.xlarge",
        "flavour: cpu\n          instance_type: ml.c5.large",
    )

    with pytest.raises(
        ConfigError, match=r"key 'serving\.endpoints\.example\.variants'.*Champion appears more than once"
    ):
        load_config(config_copy)


def test_production_needs_two_instances_per_variant(config_copy: Path):
    edit(config_copy / "environments" / "prod.yaml", "min_capacity: 2", "min_capacity: 1")

    with pytest.raises(ConfigError) as raised:
        load_config(config_copy)

    message = str(raised.value)
    assert "key 'serving.endpoints.example.variants.0.min_capacity' has value 1" in message
    assert "at least 2 in production" in message


# --- rollout and rollback alarms -----------------------------------------------------------------


def test_a_canary_on_a_variant_of_one_instance_is_refused_in_one_sentence(config_copy: Path):
    """SageMaker's canary is at most half a variant's instances: with one, no canary can exist."""
    path = config_copy / "environments" / "dev.yaml"
    edit(path, "traffic_routing: all_at_once", "traffic_routing: canary")

    with pytest.raises(ConfigError) as raised:
        load_config(config_copy)

    assert_one_sentence(str(raised.value), path, "serving.rollout.traffic_routing", "'canary'")
    assert "all_at_once while a variant runs fewer than 2 instances" in str(raised.value)
    assert "variant Champion has min_capacity 1" in str(raised.value)


def test_a_canary_counts_the_fixed_instances_of_a_variant_without_autoscaling(config_copy: Path):
    path = config_copy / "environments" / "dev.yaml"
    edit(path, "traffic_routing: all_at_once", "traffic_routing: canary")
    for _ in range(2):
        edit(path, "          min_capacity: 1\n          max_capacity: 2\n          initial_instance_count: 1\n", "X\n")
    text = path.read_text().replace(
        "X\n",
        "          min_capacity: 1\n          max_capacity: 2\n          initial_instance_count: 2\n"
        "          autoscaling: false\n",
    )
    path.write_text(text)

    assert load_config(config_copy).environment("dev").serving.rollout.traffic_routing == "canary"


def test_prod_rolls_out_a_canary_and_dev_and_staging_all_at_once():
    config = load_config(Path("config"))

    assert {e.name: e.serving.rollout.traffic_routing for e in config.environments} == {
        "dev": "all_at_once",
        "staging": "all_at_once",
        "prod": "canary",
    }


@pytest.mark.parametrize("value", ["0", "1"])
def test_a_5xx_threshold_a_single_error_would_reach_is_refused(config_copy: Path, value: str):
    path = config_copy / "environments" / "staging.yaml"
    edit(path, "errors_5xx_per_minute: 5", f"errors_5xx_per_minute: {value}")

    with pytest.raises(ConfigError) as raised:
        load_config(config_copy)

    assert_one_sentence(str(raised.value), path, "serving.alarms.errors_5xx_per_minute", value)
    assert "a single error never does" in str(raised.value)


def test_an_endpoint_names_a_configured_tenant_and_model(config_copy: Path):
    edit(config_copy / "environments" / "dev.yaml", "model: xgboost", "model: forest")

    with pytest.raises(ConfigError, match=r"'serving\.endpoints\.example\.model' has value 'forest'.*xgboost, linear"):
        load_config(config_copy)


def test_a_gpu_challenger_beside_a_cpu_champion_is_valid(config_copy: Path):
    with_challenger(config_copy)

    endpoint = load_config(config_copy).environment("dev").serving.endpoints["example"]

    assert [(v.name, v.flavour, v.weight) for v in endpoint.variants] == [
        ("Champion", "cpu", 90.0),
        ("Challenger", "gpu", 10.0),
    ]


# --- the variantWeights context ---------------------------------------------------------------


def test_context_weights_override_only_the_named_variants(config_copy: Path):
    with_challenger(config_copy)

    config = weights(config_copy, json.dumps({"dev": {"example": {"Challenger": 50}}}))

    dev = {v.name: v.weight for v in config.environment("dev").serving.endpoints["example"].variants}
    assert dev == {"Champion": 90.0, "Challenger": 50.0}
    staging = config.environment("staging").serving.endpoints["example"].variants
    assert [v.weight for v in staging] == [90.0, 10.0]


def test_context_weights_may_arrive_parsed(config_copy: Path):
    config = weights(config_copy, {"dev": {"example": {"Champion": 3}}})

    assert config.environment("dev").serving.endpoints["example"].variants[0].weight == 3.0


def test_no_context_keeps_the_configured_weights(config_copy: Path):
    assert weights(config_copy, None) == load_config(config_copy)


BAD_WEIGHTS = {
    "JSON that does not parse": ('{"dev": {"example": {"Champion": 90}}', "variantWeights", "does not parse"),
    "JSON that is not an object": ("[90, 10]", "variantWeights", "a JSON object of environments"),
    "unknown environment": ('{"qa": {"example": {"Champion": 1}}}', "variantWeights.qa", "dev, staging, prod"),
    "environment not synthesized": ('{"prod": {"example": {"Champion": 1}}}', "variantWeights.prod", "dev"),
    "unknown endpoint": ('{"dev": {"churn": {"Champion": 1}}}', "variantWeights.dev.churn", "example"),
    "unknown variant": (
        '{"dev": {"example": {"Candidate": 1}}}',
        "variantWeights.dev.example.Candidate",
        "a variant of example: Champion, Challenger",
    ),
    "negative weight": ('{"dev": {"example": {"Champion": -5}}}', "variantWeights.dev.example.Champion", "at least 0"),
    "NaN weight": ('{"dev": {"example": {"Champion": NaN}}}', "variantWeights.dev.example.Champion", "finite"),
    "infinite weight": (
        '{"dev": {"example": {"Champion": Infinity}}}',
        "variantWeights.dev.example.Champion",
        "finite",
    ),
    "string weight": ('{"dev": {"example": {"Champion": "90"}}}', "variantWeights.dev.example.Champion", "finite"),
    "boolean weight": ('{"dev": {"example": {"Champion": true}}}', "variantWeights.dev.example.Champion", "finite"),
    "all weights zero": (
        '{"dev": {"example": {"Champion": 0, "Challenger": 0}}}',
        "variantWeights.dev.example",
        "at least one variant",
    ),
    "repeated variant": (
        '{"dev": {"example": {"Champion": 1, "Champion": 2}}}',
        "variantWeights",
        "Champion repeats",
    ),
    "endpoint not an object": ('{"dev": {"example": 5}}', "variantWeights.dev.example", "JSON object of variant"),
}


@pytest.mark.parametrize("case", BAD_WEIGHTS.values(), ids=BAD_WEIGHTS.keys())
def test_bad_context_weights_stop_synth_with_one_sentence(config_copy: Path, case: tuple[str, str, str]):
    value, key, allowed = case
    selected = "dev" if "prod" in value else None

    with pytest.raises(ConfigError) as raised:
        weights(config_copy, value, selected)

    message = str(raised.value)
    assert message.startswith(f"CDK context: key '{key}' has value ")
    assert "; allowed: " in message
    assert allowed in message
    assert "\n" not in message


def test_context_weights_can_zero_one_variant_but_not_all(config_copy: Path):
    with_challenger(config_copy)

    config = weights(config_copy, '{"dev": {"example": {"Champion": 0}}}')

    assert [v.weight for v in config.environment("dev").serving.endpoints["example"].variants] == [0.0, 10.0]
    with pytest.raises(ConfigError, match="at least one variant above 0"):
        weights(config_copy, '{"dev": {"example": {"Champion": 0, "Challenger": 0}}}')


# --- the deployed-variants record --------------------------------------------------------------


def test_the_committed_record_is_valid_and_the_script_writes_what_aws_has(config_copy: Path):
    with_challenger(config_copy)

    record_as_deployed(config_copy, "dev")

    deployed = load_config(config_copy).deployed
    assert {name: v.instance_type for name, v in deployed.dev["example"].items()} == {
        "Champion": "ml.c5.large",
        "Challenger": "ml.g5.xlarge",
    }
    assert deployed.staging == {}
    assert (config_copy / RECORD_FILE).read_text().startswith("# Each environment's endpoint variants")


def test_removing_an_autoscaled_variant_in_one_step_is_refused_with_instructions(config_copy: Path):
    path = with_challenger(config_copy)
    record_as_deployed(config_copy, "dev")
    path.write_text(path.read_text().replace(CHALLENGER, ""))

    with pytest.raises(ConfigError) as raised:
        load_config(config_copy)

    message = str(raised.value)
    assert "key 'serving.endpoints.example.variants' has value 'Challenger'" in message
    assert "'autoscaling: false'" in message
    assert "make record-variants ENV=dev" in message


def test_the_two_step_removal_passes(config_copy: Path):
    path = with_challenger(config_copy)
    record_as_deployed(config_copy, "dev")
    # Step 1: deregister the scaling target, deploy, record.
    path.write_text(path.read_text().replace(CHALLENGER, CHALLENGER + "          autoscaling: false\n"))
    record_as_deployed(config_copy, "dev")
    # Step 2: remove it.
    path.write_text(path.read_text().replace(CHALLENGER + "          autoscaling: false\n", ""))

    endpoint = load_config(config_copy).environment("dev").serving.endpoints["example"]

    assert [v.name for v in endpoint.variants] == ["Champion"]


def test_changing_the_instance_type_of_an_autoscaled_variant_is_refused(config_copy: Path):
    record_as_deployed(config_copy, "dev")
    edit(config_copy / "environments" / "dev.yaml", "instance_type: ml.c5.large", "instance_type: ml.m5.large")

    with pytest.raises(ConfigError) as raised:
        load_config(config_copy)

    message = str(raised.value)
    assert "key 'serving.endpoints.example.variants.0.instance_type' has value 'ml.m5.large'" in message
    assert "'ml.c5.large' while the variant is a scaling target" in message


def test_removing_a_whole_endpoint_needs_no_second_step(config_copy: Path):
    record_as_deployed(config_copy, "dev")
    path = config_copy / "environments" / "dev.yaml"
    text = path.read_text()
    path.write_text(text[: text.index("  endpoints:")] + "  endpoints: {}\n" + text[text.index("notifications:") :])

    assert load_config(config_copy).environment("dev").serving.endpoints == {}


SHADOW = CHALLENGER.replace("Challenger", "Shadow")


def test_a_config_that_drops_live_variants_and_adds_new_ones_in_one_deploy_is_refused(config_copy: Path):
    path = with_challenger(config_copy)
    record_as_deployed(config_copy, "dev")  # live: Champion and Challenger
    # Not autoscaled, so removing the Challenger alone would pass; swapping it for a Shadow may not.
    path.write_text(path.read_text().replace(CHALLENGER, CHALLENGER + "          autoscaling: false\n"))
    record_as_deployed(config_copy, "dev")
    path.write_text(path.read_text().replace(CHALLENGER + "          autoscaling: false\n", SHADOW))

    with pytest.raises(ConfigError) as raised:
        load_config(config_copy)

    message = str(raised.value)
    assert_one_sentence(message, config_copy / "environments" / "dev.yaml", "serving.endpoints.example.variants", "")
    assert "has value 'Champion, Shadow'" in message
    assert "the live variants Challenger, Champion (config/deployed-variants.yaml) plus new ones" in message
    assert "add Shadow first" in message
    assert "then remove Challenger" in message
    assert "make record-variants ENV=dev" in message


def test_adding_a_variant_or_removing_one_alone_passes_and_deploys_all_at_once(config_copy: Path):
    path = with_challenger(config_copy)
    with_both = path.read_text()
    path.write_text(with_both.replace(CHALLENGER, ""))
    record_as_deployed(config_copy, "dev")  # live: Champion
    path.write_text(with_both)  # then the Challenger is added

    endpoint = load_config(config_copy).environment("dev").serving.endpoints["example"]
    live = load_config(config_copy).deployed.dev

    assert [v.name for v in endpoint.variants] == ["Champion", "Challenger"]
    assert not keeps_variant_names("example", [v.name for v in endpoint.variants], live)  # no DeploymentConfig
    path.write_text(path.read_text().replace(CHALLENGER, ""))
    assert keeps_variant_names("example", ["Champion"], load_config(config_copy).deployed.dev)


def test_the_record_s_checks_are_off_for_the_command_that_repairs_it(config_copy: Path):
    path = with_challenger(config_copy)
    record_as_deployed(config_copy, "dev")
    path.write_text(path.read_text().replace(CHALLENGER, SHADOW))
    with pytest.raises(ConfigError):
        load_config(config_copy)

    # Someone deployed the swap by hand; the command records what AWS has, and synth agrees again.
    record_as_deployed(config_copy, "dev")

    assert sorted(load_config(config_copy).deployed.dev["example"]) == ["Champion", "Shadow"]


def test_guardrails_apply_only_when_the_live_variant_names_are_kept():
    live = {"churn": {"Champion": object(), "Challenger": object()}}

    assert keeps_variant_names("churn", ["Challenger", "Champion"], live)
    assert not keeps_variant_names("churn", ["Champion"], live)
    assert not keeps_variant_names("churn", ["Champion", "Challenger", "Candidate"], live)
    assert not keeps_variant_names("fraud", ["Champion"], live)
