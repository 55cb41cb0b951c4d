"""Serving settings of one environment: its endpoints, their A/B variants, scaling, rollout and the scoring API.

An endpoint serves one tenant's model. Its variants are named for what they are (``Champion``,
``Challenger``), never ``Variant1``: the names appear in metrics, alarms, the scoring API's answers
and the ``variantWeights`` context. Which model a variant serves is not configuration: it is read
at deploy time from the variant's model pointer (ARCHITECTURE.md, "Where models live").
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StrictBool, StrictFloat, StrictInt, ValidationInfo, field_validator

from config.base import StrictModel, at_least, not_below, whole_number
from config.example_models import DEFAULT_EXAMPLE_MODEL, EXAMPLE_MODEL_NAMES, ExampleModelName
from config.instance_types import GPU_FAMILIES, check_instance_type, family_of, is_gpu

Flavour = Literal["cpu", "gpu"]
TrafficRouting = Literal["canary", "all_at_once"]
# SageMaker's canary is at most 50% of a variant's instances, and one instance cannot be halved: a
# variant needs two to have one (CanarySize, https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/
# aws-properties-sagemaker-endpoint-trafficroutingconfig.html).
CANARY_MINIMUM_INSTANCES = 2
ENDPOINT_KEY = r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$"
VARIANT_NAME = re.compile(r"^[A-Z][A-Za-z0-9]{1,30}$")
GENERIC_VARIANT_NAME = re.compile(r"^(Variant|AllTraffic)\d*$", re.IGNORECASE)


def _check_variant_name(value: str) -> str:
    if not VARIANT_NAME.match(value) or GENERIC_VARIANT_NAME.match(value):
        raise ValueError(
            "a domain name of 2 to 31 letters or digits starting with a capital, such as Champion or Challenger "
            "(not Variant1: the name shows in metrics, alarms and answers)"
        )
    return value


def check_weight(value: float) -> float:
    """A traffic weight: finite and not negative (SageMaker routes weight / sum(weights) to a variant)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError("a finite number at least 0 (traffic goes to each variant in proportion to its weight)")
    return float(value)


Weight = Annotated[StrictInt | StrictFloat, AfterValidator(check_weight)]
VariantName = Annotated[str, AfterValidator(_check_variant_name)]


class VariantConfig(StrictModel):
    name: VariantName = Field(description="a domain name such as Champion or Challenger")
    flavour: Flavour = Field(description="cpu or gpu (the inference image's flavour; the instance family must match)")
    instance_type: str = Field(description="an ML instance type whose family matches the flavour")
    min_capacity: StrictInt = at_least(1, "autoscaling's minimum")
    max_capacity: StrictInt = Field(ge=1, description="a whole number, at least min_capacity (autoscaling's maximum)")
    initial_instance_count: StrictInt = Field(
        ge=1, description="a whole number from min_capacity to max_capacity (instances when the variant is created)"
    )
    weight: Weight = Field(description="a finite number at least 0 (relative share of the endpoint's traffic)")
    autoscaling: StrictBool = Field(
        default=True,
        description=(
            "true or false (false deregisters the variant's scaling target: the first step of removing the "
            "variant or changing its instance type)"
        ),
    )
    example_model: ExampleModelName = Field(
        default=DEFAULT_EXAMPLE_MODEL,
        description=(
            f"one of {', '.join(EXAMPLE_MODEL_NAMES)} (the shipped example model, models/example/<name>/, that the "
            "variant serves while its model pointer holds the sentinel 'example')"
        ),
    )

    @property
    def fewest_instances(self) -> int:
        """The fewest instances the variant runs: autoscaling's minimum, or its fixed count."""
        return self.min_capacity if self.autoscaling else self.initial_instance_count

    @field_validator("instance_type")
    @classmethod
    def _family_matches_flavour(cls, value: str, info: ValidationInfo) -> str:
        check_instance_type(value)
        flavour = info.data.get("flavour")
        if flavour == "gpu" and not is_gpu(value):
            raise ValueError(
                f"a GPU instance type for the gpu flavour (family one of {', '.join(sorted(GPU_FAMILIES))}); "
                f"{family_of(value)} has no GPU"
            )
        if flavour == "cpu" and is_gpu(value):
            raise ValueError(
                f"a CPU instance type for the cpu flavour; {family_of(value)} is a GPU family "
                "(use flavour: gpu, or a CPU family such as ml.c5 or ml.m5)"
            )
        return value

    _max_not_below_min = not_below("max_capacity", "min_capacity", "a whole number at least min_capacity")

    @field_validator("initial_instance_count")
    @classmethod
    def _initial_within_capacity(cls, value: int, info: ValidationInfo) -> int:
        low, high = info.data.get("min_capacity"), info.data.get("max_capacity")
        if low is not None and high is not None and not low <= value <= high:
            raise ValueError(f"a whole number from min_capacity ({low}) to max_capacity ({high})")
        return value


class EndpointConfig(StrictModel):
    tenant: str = Field(description="the tenant whose model the endpoint serves (a file in config/pipelines/)")
    model: str = Field(description="the name of one of the tenant's models (its model package group)")
    variants: tuple[VariantConfig, ...] = Field(
        min_length=1, max_length=10, description="1 to 10 variants with distinct names (SageMaker allows 10)"
    )

    @field_validator("variants")
    @classmethod
    def _distinct_names_some_traffic(cls, variants: tuple[VariantConfig, ...]) -> tuple[VariantConfig, ...]:
        names = [variant.name for variant in variants]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"variants with distinct names; {', '.join(duplicates)} appears more than once")
        if all(variant.weight == 0 for variant in variants):
            raise ValueError("at least one variant with a weight above 0 (all weights are 0)")
        return variants

    def variant(self, name: str) -> VariantConfig:
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise KeyError(name)


class Scaling(StrictModel):
    target_invocations_per_instance: StrictInt = at_least(
        1, "InvocationsPerInstance per minute that target tracking holds"
    )
    scale_in_cooldown_seconds: StrictInt = whole_number(0, 3600, unit="seconds")
    scale_out_cooldown_seconds: StrictInt = whole_number(0, 3600, unit="seconds")


class Rollout(StrictModel):
    traffic_routing: TrafficRouting = Field(
        description=(
            "canary or all_at_once (canary needs every variant at 2 instances or more: SageMaker's canary is at most "
            "half a variant's instances)"
        ),
    )
    canary_percentage: StrictInt = whole_number(1, 50, "share of the new fleet's capacity in the canary step")
    canary_wait_seconds: StrictInt = whole_number(
        0, 3600, "canary baking time before all traffic shifts", unit="seconds"
    )
    termination_wait_seconds: StrictInt = whole_number(
        0,
        3600,
        "the final baking period: the old fleet stays this long after all traffic shifted, and the rollback alarms "
        "still roll back",
        unit="seconds",
    )
    maximum_execution_timeout_seconds: StrictInt = whole_number(
        600, 14400, "the whole blue/green deployment", unit="seconds"
    )


class ServingAlarms(StrictModel):
    latency_p99_milliseconds: StrictInt = at_least(1, "p99 ModelLatency of a variant that alarms", unit="milliseconds")
    errors_5xx_per_minute: StrictInt = at_least(
        2,
        "the endpoint's 5XX invocation errors in one minute, every variant and both fleets together, at which it "
        "alarms and a deployment rolls back: a single error never does",
    )


class ScoringApi(StrictModel):
    throttle_rate_limit: StrictInt = whole_number(1, 10000, unit="requests per second")
    throttle_burst_limit: StrictInt = whole_number(1, 5000, unit="requests")
    result_ttl_days: StrictInt = whole_number(1, 365, unit="days")
    max_instances: StrictInt = whole_number(1, 10000, "rows in one scoring request", default=1000)
    owns_account_logging_role: StrictBool = Field(
        default=True,
        description=(
            "true or false (true in exactly one environment per account and region: it sets API Gateway's "
            "account-wide CloudWatch Logs role, without which a stage cannot log)"
        ),
    )


class Serving(StrictModel):
    data_capture_percentage: StrictInt = whole_number(0, 100, "share of requests captured for drift monitoring")
    scaling: Scaling
    rollout: Rollout
    alarms: ServingAlarms
    api: ScoringApi
    endpoints: dict[Annotated[str, Field(pattern=ENDPOINT_KEY)], EndpointConfig] = Field(
        description="a mapping of endpoint keys (2-32 lowercase letters, digits, hyphens) to endpoints"
    )

    def problems(self, *, production: bool) -> list[tuple[str, object, str]]:
        """(key, value, what is allowed) for the rules that depend on the environment."""
        found: list[tuple[str, object, str]] = []
        for key, endpoint in list(self.endpoints.items()) if production else []:
            for index, variant in enumerate(endpoint.variants):
                for field in ("min_capacity", "initial_instance_count"):
                    value = getattr(variant, field)
                    if value < 2:
                        found.append(
                            (
                                f"serving.endpoints.{key}.variants.{index}.{field}",
                                value,
                                "at least 2 in production (instances in two availability zones)",
                            )
                        )
        return [*found, *self._canary_problems()]

    def _canary_problems(self) -> list[tuple[str, object, str]]:
        """A canary on a variant of one instance cannot work: SageMaker's canary is at most half its instances."""
        if self.rollout.traffic_routing != "canary":
            return []
        for key, endpoint in self.endpoints.items():
            for variant in endpoint.variants:
                if variant.fewest_instances < CANARY_MINIMUM_INSTANCES:
                    field = "min_capacity" if variant.autoscaling else "initial_instance_count"
                    return [
                        (
                            "serving.rollout.traffic_routing",
                            "canary",
                            f"all_at_once while a variant runs fewer than {CANARY_MINIMUM_INSTANCES} instances "
                            f"(endpoint {key}, variant {variant.name} has {field} {variant.fewest_instances}, and "
                            "SageMaker's canary is at most half of a variant's instances, and one cannot be halved)",
                        )
                    ]
        return []
