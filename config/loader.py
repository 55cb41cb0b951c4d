"""Read ``config/`` once and turn it into a frozen ``PlatformConfig``, or one clear sentence.

A wrong setting must stop synth with a sentence that names the file, the key, the value and what
is allowed: never a pydantic dump, never a jsii traceback from deep inside a construct.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from config.deployed import RECORD_FILE, DeployedVariants, replaced_variants, unsafe_changes
from config.schema import (
    ENVIRONMENT_NAMES,
    SMOKE_TEST_ENDPOINT,
    SMOKE_TEST_TENANT,
    SMOKE_TESTED_ENVIRONMENT,
    DeliveryPipelineConfig,
    EnvironmentConfig,
    PlatformConfig,
    ProjectConfig,
)
from config.serving import check_weight
from config.tenants import PipelineConfig

CONTEXT_SOURCE = "CDK context"
M = TypeVar("M", bound=BaseModel)


class ConfigError(Exception):
    """A bad setting, stated in one sentence."""

    @classmethod
    def bad_value(cls, source: str, key: str, value: Any, allowed: str) -> ConfigError:
        return cls(f"{source}: key '{key}' has value {_render(value)}; allowed: {allowed}.")


def load_config(
    config_dir: Path, *, selected_environments: object = None, variant_weights: object = None, check_record: bool = True
) -> PlatformConfig:
    """Validate ``project.yaml``, ``environments/<name>.yaml``, ``pipelines/``, the deployed-variants record
    and, when present, ``pipeline.yaml`` (the delivery pipeline).

    ``selected_environments`` is the ``environments`` context value (``"dev,staging"``); ``None``
    selects all of them. ``variant_weights`` is the ``variantWeights`` context value (JSON text or
    an already parsed mapping) whose weights override the configured ones. ``check_record=False`` leaves
    out the checks of config against the deployed-variants record (``make record-variants`` rewrites a
    stale record). Raises ``ConfigError`` on the first bad setting.
    """
    project = _validate(ProjectConfig, config_dir / "project.yaml")
    environments_dir = config_dir / "environments"
    for path in sorted(environments_dir.glob("*.y*ml")):
        if path.stem not in ENVIRONMENT_NAMES:
            raise ConfigError.bad_value(
                _display(path),
                "name",
                path.stem,
                f"one of {', '.join(ENVIRONMENT_NAMES)} (an environment file is named after its environment)",
            )
    selection = _selection(selected_environments)
    environments = [_load_environment(environments_dir, name, required=True) for name in selection]
    # Ownership of account singletons spans environments: an unselected one may own them, so every
    # environment file takes part in that check, whatever `-c environments=` selects.
    everyone: dict[str, EnvironmentConfig] = {environment.name: environment for environment in environments}
    for name in ENVIRONMENT_NAMES:
        if name not in everyone and (environments_dir / f"{name}.yaml").is_file():
            everyone[name] = _load_environment(environments_dir, name, required=False)
    all_environments = [everyone[name] for name in ENVIRONMENT_NAMES if name in everyone]
    for key, value, allowed, name in account_singleton_problems(all_environments):
        raise ConfigError.bad_value(_display(environments_dir / f"{name}.yaml"), key, value, allowed)
    pipelines = load_pipelines(config_dir / "pipelines")
    deployed = _load_deployed(config_dir / RECORD_FILE)
    for environment in environments:
        path = environments_dir / f"{environment.name}.yaml"
        record = deployed.of(environment.name) if check_record else {}
        for key, value, allowed in [
            *_unknown_models(environment, pipelines),
            *unsafe_changes(environment, record),
            *replaced_variants(environment, record),
        ]:
            raise ConfigError.bad_value(_display(path), key, value, allowed)
    delivery_pipeline = _load_delivery_pipeline(config_dir / PIPELINE_FILE, everyone, pipelines)
    environments = apply_variant_weights(environments, variant_weights)
    return PlatformConfig(
        project=project,
        environments=tuple(environments),
        pipelines=pipelines,
        deployed=deployed,
        delivery_pipeline=delivery_pipeline,
    )


def _load_environment(environments_dir: Path, name: str, *, required: bool) -> EnvironmentConfig:
    path = environments_dir / f"{name}.yaml"
    if required and not path.is_file():
        raise ConfigError(
            f"{_display(environments_dir)}: environment '{name}' has no file {name}.yaml; "
            f"allowed: one YAML file for each of {', '.join(ENVIRONMENT_NAMES)}."
        )
    environment = _validate(EnvironmentConfig, path)
    if environment.name != name:
        raise ConfigError.bad_value(_display(path), "name", environment.name, f"'{name}', the file's own name")
    for key, value, allowed in environment.problems():
        raise ConfigError.bad_value(_display(path), key, value, allowed)
    return _with_singleton_ownership(environment, path)


# Settings that exist once per account and region, each owned by the environment whose
# owns_account_singletons is true. The key each follows, where a construct reads its own.
LOGGING_ROLE_KEY = "serving.api.owns_account_logging_role"
OWNERSHIP_KEY = "owns_account_singletons"


def _with_singleton_ownership(environment: EnvironmentConfig, path: Path) -> EnvironmentConfig:
    """The environment whose API Gateway logging role follows ``owns_account_singletons``.

    ``serving.api.owns_account_logging_role`` predates the one ownership key: it may be left out
    (it follows), or set to the same value; a different value would split the ownership.
    """
    api = environment.serving.api
    owns = environment.owns_account_singletons
    if "owns_account_logging_role" in api.model_fields_set and api.owns_account_logging_role != owns:
        raise ConfigError.bad_value(
            _display(path),
            LOGGING_ROLE_KEY,
            api.owns_account_logging_role,
            f"{str(owns).lower()}, the same as {OWNERSHIP_KEY}, or left out (it follows {OWNERSHIP_KEY})",
        )
    serving = environment.serving.model_copy(update={"api": api.model_copy(update={"owns_account_logging_role": owns})})
    return environment.model_copy(update={"serving": serving})


def account_singleton_problems(environments: Sequence[EnvironmentConfig]) -> list[tuple[str, object, str, str]]:
    """(key, value, what is allowed, environment) where an account and region has no owner, or two.

    Environments sharing an account and region would otherwise fight over its registry scanning
    and API Gateway settings (two owners), or leave them unset (none).
    """
    groups: dict[tuple[str, str], list[EnvironmentConfig]] = {}
    for environment in environments:
        groups.setdefault((environment.account, environment.region), []).append(environment)
    found: list[tuple[str, object, str, str]] = []
    for (account, region), members in groups.items():
        owners = [environment for environment in members if environment.owns_account_singletons]
        names = ", ".join(environment.name for environment in members)
        if not owners:
            found.append(
                (
                    OWNERSHIP_KEY,
                    False,
                    f"true in exactly one of {names}, which share account {account} in {region} "
                    "(none owns its account-wide settings)",
                    members[0].name,
                )
            )
        for extra in owners[1:]:
            found.append(
                (
                    OWNERSHIP_KEY,
                    True,
                    f"false, since {owners[0].name} owns the account-wide settings of account {account} in "
                    f"{region} (exactly one environment per account and region owns them)",
                    extra.name,
                )
            )
    return found


PIPELINE_FILE = "pipeline.yaml"


def _load_delivery_pipeline(
    path: Path, environments: Mapping[str, EnvironmentConfig], pipelines: Sequence[PipelineConfig]
) -> DeliveryPipelineConfig | None:
    """``config/pipeline.yaml``, checked against what the pipeline smoke-tests; None without the file."""
    if not path.is_file():
        return None
    delivery = _validate(DeliveryPipelineConfig, path)
    source = _display(path)
    for key, value, allowed in delivery.problems():
        raise ConfigError.bad_value(source, key, value, allowed)
    tenant = next((pipeline for pipeline in pipelines if pipeline.tenant == SMOKE_TEST_TENANT), None)
    if tenant is None:
        raise ConfigError.bad_value(
            source,
            "smoke_test",
            SMOKE_TEST_TENANT,
            f"a pipeline with the {SMOKE_TEST_TENANT} tenant's file config/pipelines/{SMOKE_TEST_TENANT}.yaml, "
            "which the smoke test trains",
        )
    models = [model.name for model in tenant.models]
    for index, model in enumerate(delivery.smoke_test.training_models):
        if model not in models:
            raise ConfigError.bad_value(
                source,
                f"smoke_test.training_models.{index}",
                model,
                f"one of the example tenant's models: {', '.join(models)}",
            )
    tested = environments.get(SMOKE_TESTED_ENVIRONMENT)
    endpoint = tested.serving.endpoints.get(SMOKE_TEST_ENDPOINT) if tested else None
    if tested is not None and (endpoint is None or endpoint.tenant != SMOKE_TEST_TENANT):
        raise ConfigError.bad_value(
            source,
            "smoke_test",
            SMOKE_TEST_ENDPOINT,
            f"a {SMOKE_TESTED_ENVIRONMENT} environment whose serving.endpoints has the {SMOKE_TEST_ENDPOINT} "
            f"endpoint of the {SMOKE_TEST_TENANT} tenant, which the smoke test scores",
        )
    return delivery


def _load_deployed(path: Path) -> DeployedVariants:
    """The deployed-variants record; an absent file means nothing is deployed yet."""
    if not path.is_file():
        return DeployedVariants()
    return _validate(DeployedVariants, path)


def _unknown_models(
    environment: EnvironmentConfig, pipelines: Sequence[PipelineConfig]
) -> list[tuple[str, object, str]]:
    tenants = {pipeline.tenant: pipeline for pipeline in pipelines}
    for key, endpoint in environment.serving.endpoints.items():
        pipeline = tenants.get(endpoint.tenant)
        if pipeline is None:
            return [
                (
                    f"serving.endpoints.{key}.tenant",
                    endpoint.tenant,
                    "a tenant with a file in config/pipelines/: " + (", ".join(sorted(tenants)) or "none yet"),
                )
            ]
        models = [model.name for model in pipeline.models]
        if endpoint.model not in models:
            return [
                (
                    f"serving.endpoints.{key}.model",
                    endpoint.model,
                    f"one of tenant {endpoint.tenant}'s models: {', '.join(models)}",
                )
            ]
    return []


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


def load_pipelines(directory: Path) -> tuple[PipelineConfig, ...]:
    """Every tenant's pipeline file, in tenant order; the file name is the tenant's name."""
    pipelines = []
    for path in sorted(directory.glob("*.y*ml")):
        pipeline = _validate(PipelineConfig, path)
        if pipeline.tenant != path.stem:
            raise ConfigError.bad_value(
                _display(path), "tenant", pipeline.tenant, f"{path.stem!r}, the file's own name"
            )
        for key, value, allowed in pipeline.problems():
            raise ConfigError.bad_value(_display(path), key, value, allowed)
        pipelines.append(pipeline)
    return tuple(pipelines)


def _selection(value: object) -> tuple[str, ...]:
    if value is None:
        return ENVIRONMENT_NAMES
    parts = value if isinstance(value, list | tuple) else str(value).split(",")
    names = tuple(str(part).strip() for part in parts)
    if not names or any(name not in ENVIRONMENT_NAMES for name in names) or len(set(names)) != len(names):
        raise ConfigError.bad_value(
            CONTEXT_SOURCE,
            "environments",
            value,
            f"a comma-separated list of distinct names from {', '.join(ENVIRONMENT_NAMES)}",
        )
    # Keep pipeline order whatever order the user typed.
    return tuple(name for name in ENVIRONMENT_NAMES if name in names)


def _validate(model: type[M], path: Path) -> M:
    source = _display(path)
    data = _read_yaml(path, source)
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_sentence(source, model, error)) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys silently; a config file must not."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def _read_yaml(path: Path, source: str) -> Any:
    if not path.is_file():
        raise ConfigError(f"{source}: the file is missing; allowed: a YAML mapping of settings at this path.")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(
            f"{source}: the file is not valid YAML ({problem}{where}); allowed: a YAML mapping of settings."
        ) from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the file holds {_render(data)}; allowed: a YAML mapping of settings.")
    return data


def _sentence(source: str, model: type[BaseModel], error: ValidationError) -> str:
    """The first problem of a pydantic error as one sentence; the count of the others in brackets."""
    errors = error.errors()
    # A misspelt key shows up twice, as unknown and as a required key missing: name the misspelling.
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    key = ".".join(str(part) for part in first["loc"])
    more = error.error_count() - 1
    tail = f" ({more} more problem{'s' if more > 1 else ''} in this file)" if more else ""
    kind = first["type"]
    if kind == "missing":
        return f"{source}: required key '{key}' is missing; allowed: {_allowed(model, first['loc'])}{tail}."
    if kind == "extra_forbidden":
        parent = _model_at(model, first["loc"][:-1])
        known = ", ".join(parent.model_fields) if parent else "none"
        return (
            f"{source}: key '{key}' (value {_render(first['input'])}) is not a known setting; "
            f"allowed: one of {known}{tail}."
        )
    # A validator's own message already says what is allowed; otherwise the field's description does.
    allowed = str(first["ctx"]["error"]) if kind == "value_error" else _allowed(model, first["loc"]) or first["msg"]
    return f"{source}: key '{key}' has value {_render(first['input'])}; allowed: {allowed}{tail}."


def _model_at(model: type[BaseModel], loc: Sequence[Any]) -> type[BaseModel] | None:
    current: type[BaseModel] | None = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        field = current.model_fields.get(part)
        annotation = field.annotation if field else None
        current = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return current


def _allowed(model: type[BaseModel], loc: Sequence[Any]) -> str:
    parent = _model_at(model, [p for p in loc[:-1] if not isinstance(p, int)])
    name = next((p for p in reversed(loc) if not isinstance(p, int)), None)
    field = parent.model_fields.get(name) if parent and name else None
    if field is None:
        return ""
    if field.description:
        return field.description
    nested = _model_at(parent, [name]) if parent else None
    if nested:
        return "a mapping with the keys " + ", ".join(nested.model_fields)
    return ""


def _render(value: Any) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
