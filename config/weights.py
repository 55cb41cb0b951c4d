"""The ``variantWeights`` context: traffic weights that override the configured ones for one synth."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from config.files import CONTEXT_SOURCE, ConfigError
from config.schema import EnvironmentConfig
from config.serving import check_weight

WEIGHTS_KEY = "variantWeights"
WEIGHTS_EXAMPLE = '{"prod": {"churn": {"Champion": 90, "Challenger": 10}}}'


def apply_variant_weights(environments: Sequence[EnvironmentConfig], value: object) -> list[EnvironmentConfig]:
    """The environments with the ``variantWeights`` context's weights in place of the configured ones.

    Only the named variants change; every other variant keeps its configured weight. The context
    is checked whole before anything is applied, and each bad value stops synth with one sentence.
    """
    if value is None:
        return list(environments)
    overrides = _parse_weights(value)
    by_name: dict[str, EnvironmentConfig] = {environment.name: environment for environment in environments}
    result = dict(by_name)
    for env_name, endpoints in overrides.items():
        environment = by_name.get(env_name)
        if environment is None:
            raise ConfigError.bad_value(
                CONTEXT_SOURCE,
                f"{WEIGHTS_KEY}.{env_name}",
                endpoints,
                "a synthesized environment: " + ", ".join(by_name),
            )
        if not isinstance(endpoints, Mapping):
            raise ConfigError.bad_value(
                CONTEXT_SOURCE, f"{WEIGHTS_KEY}.{env_name}", endpoints, "a JSON object of endpoints, " + WEIGHTS_EXAMPLE
            )
        configured = environment.serving.endpoints
        updated = dict(configured)
        for endpoint_key, weights in endpoints.items():
            where = f"{WEIGHTS_KEY}.{env_name}.{endpoint_key}"
            endpoint = configured.get(endpoint_key)
            if endpoint is None:
                raise ConfigError.bad_value(
                    CONTEXT_SOURCE, where, weights, f"an endpoint of {env_name}: " + (", ".join(configured) or "none")
                )
            if not isinstance(weights, Mapping) or not weights:
                raise ConfigError.bad_value(
                    CONTEXT_SOURCE, where, weights, "a non-empty JSON object of variant weights, " + WEIGHTS_EXAMPLE
                )
            names = [variant.name for variant in endpoint.variants]
            variants = []
            for variant_name, weight in weights.items():
                if variant_name not in names:
                    raise ConfigError.bad_value(
                        CONTEXT_SOURCE,
                        f"{where}.{variant_name}",
                        weight,
                        f"a variant of {endpoint_key}: " + ", ".join(names),
                    )
                try:
                    check_weight(weight)
                except ValueError as error:
                    raise ConfigError.bad_value(CONTEXT_SOURCE, f"{where}.{variant_name}", weight, str(error)) from None
            for variant in endpoint.variants:
                weight = weights.get(variant.name, variant.weight)
                variants.append(variant.model_copy(update={"weight": float(weight)}))
            if all(variant.weight == 0 for variant in variants):
                raise ConfigError.bad_value(
                    CONTEXT_SOURCE,
                    where,
                    weights,
                    "weights that leave at least one variant above 0 (with all at 0 the endpoint serves nothing)",
                )
            updated[endpoint_key] = endpoint.model_copy(update={"variants": tuple(variants)})
        serving = environment.serving.model_copy(update={"endpoints": updated})
        result[env_name] = environment.model_copy(update={"serving": serving})
    return [result[environment.name] for environment in environments]


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are distinct: ``{"Champion": 90, "Champion": 10}`` is a mistake, not 10."""
    keys = [key for key, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise ConfigError.bad_value(
            CONTEXT_SOURCE, WEIGHTS_KEY, dict(pairs), f"JSON objects with distinct keys; {', '.join(repeated)} repeats"
        )
    return dict(pairs)


def _parse_weights(value: object) -> Mapping[str, Any]:
    parsed: Any = value
    if isinstance(value, str):
        try:
            # NaN and Infinity parse as floats in Python's json; check_weight refuses them later.
            parsed = json.loads(value, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as error:
            raise ConfigError.bad_value(
                CONTEXT_SOURCE,
                WEIGHTS_KEY,
                value,
                f"JSON such as {WEIGHTS_EXAMPLE} (it does not parse: {error.msg} at character {error.pos})",
            ) from None
    if not isinstance(parsed, Mapping):
        raise ConfigError.bad_value(
            CONTEXT_SOURCE, WEIGHTS_KEY, value, f"a JSON object of environments, such as {WEIGHTS_EXAMPLE}"
        )
    return parsed
