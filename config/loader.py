"""Read ``config/`` once and turn it into a frozen ``PlatformConfig``, or one clear sentence.

Each file is read and validated by config/files.py, which words every error; this module checks what
spans files: environment files against their names and each other (account singletons), endpoints
against the tenants' pipelines and the deployed-variants record, the delivery pipeline against what it
smoke-tests. The ``variantWeights`` context is applied last (config/weights.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from config.deployed import RECORD_FILE, DeployedVariants, replaced_variants, unsafe_changes
from config.files import CONTEXT_SOURCE, ConfigError, display, validate_file
from config.naming import ambiguous_pair, joined
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
from config.tenants import PipelineConfig
from config.weights import apply_variant_weights

__all__ = ["ConfigError", "account_singleton_problems", "load_config", "load_pipeline", "load_pipelines"]


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
    project = validate_file(ProjectConfig, config_dir / "project.yaml")
    environments_dir = config_dir / "environments"
    for path in sorted(environments_dir.glob("*.y*ml")):
        if path.stem not in ENVIRONMENT_NAMES:
            raise ConfigError.bad_value(
                display(path),
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
        raise ConfigError.bad_value(display(environments_dir / f"{name}.yaml"), key, value, allowed)
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
            raise ConfigError.bad_value(display(path), key, value, allowed)
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
            f"{display(environments_dir)}: environment '{name}' has no file {name}.yaml; "
            f"allowed: one YAML file for each of {', '.join(ENVIRONMENT_NAMES)}."
        )
    environment = validate_file(EnvironmentConfig, path)
    if environment.name != name:
        raise ConfigError.bad_value(display(path), "name", environment.name, f"'{name}', the file's own name")
    for key, value, allowed in environment.problems():
        raise ConfigError.bad_value(display(path), key, value, allowed)
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
            display(path),
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
    delivery = validate_file(DeliveryPipelineConfig, path)
    source = display(path)
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
    return validate_file(DeployedVariants, path)


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


def load_pipeline(path: Path) -> PipelineConfig:
    """One tenant's pipeline file, checked as synth checks it (the rules that span tenants aside)."""
    pipeline = validate_file(PipelineConfig, path)
    if pipeline.tenant != path.stem:
        raise ConfigError.bad_value(display(path), "tenant", pipeline.tenant, f"{path.stem!r}, the file's own name")
    for key, value, allowed in pipeline.problems():
        raise ConfigError.bad_value(display(path), key, value, allowed)
    return pipeline


def load_pipelines(directory: Path) -> tuple[PipelineConfig, ...]:
    """Every tenant's pipeline file, in tenant order; the file name is the tenant's name."""
    pipelines, paths = [], []
    for path in sorted(directory.glob("*.y*ml")):
        pipelines.append(load_pipeline(path))
        paths.append(path)
    pairs = [(pipeline.tenant, model.name) for pipeline in pipelines for model in pipeline.models]
    ambiguous = ambiguous_pair(pairs)
    if ambiguous is not None:
        (tenant, model), (other_tenant, other_model) = ambiguous
        path = paths[[pipeline.tenant for pipeline in pipelines].index(other_tenant)]
        raise ConfigError.bad_value(
            display(path),
            "models",
            other_model,
            f"a model name that does not spell, after tenant {other_tenant!r}, the same {joined(tenant, model)!r} "
            f"as tenant {tenant!r}'s model {model!r} (package groups, endpoints and pointers are named "
            "<tenant>-<model>)",
        )
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
