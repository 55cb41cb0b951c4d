"""Declarative training pipelines: ``config/pipelines/<tenant>.yaml``, one file per tenant (seed 000).

A file names the dataset and its feature schema, the candidate models with their hyperparameter
grids, the objective and approval threshold, the training resources and the batch-prediction
input. Grids are checked against the training image's own hyperparameter table
(``mlops_platform/training/hyperparameters.json``), so a typo fails synth, not a job.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from config.base import StrictModel
from config.instance_types import check_instance_type, has_local_storage, is_gpu

# The training image's own tables, read from its pure modules (no libraries, no AWS): its
# hyperparameters with their bounds, and the metrics it reports with the direction they improve in.
from mlops_platform.training.objective import OBJECTIVES as METRICS
from mlops_platform.training.settings import MODEL_HYPERPARAMETERS as HYPERPARAMETERS
from mlops_platform.training.settings import SCHEMA_FILE as HYPERPARAMETERS_FILE  # noqa: F401 (the file's path, for readers)

# One execution's Distributed Map handles up to 10,000 items.
MAX_TRIALS = 10_000

# Version of the JSON that synth publishes for the plan Lambda (docs/training-pipeline.md).
PUBLISHED_SCHEMA_VERSION = 1

NAME = r"^[a-z0-9][a-z0-9-]{0,62}$"
COLUMN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
Number = StrictInt | StrictFloat


class DatasetSpec(StrictModel):
    name: str = Field(pattern=NAME, description="1 to 63 lowercase letters, digits or hyphens (as sent to ingestion)")
    target: str = Field(pattern=COLUMN, description="the target column: letters, digits and underscores")
    problem_type: Literal["binary", "regression"] = Field(description="binary or regression")
    features: dict[Annotated[str, Field(pattern=COLUMN)], Literal["double", "bigint", "boolean"]] = Field(
        min_length=1, description="a mapping of feature column to double, bigint or boolean"
    )

    @field_validator("features")
    @classmethod
    def _target_is_not_a_feature(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        if info.data.get("target") in value:
            raise ValueError(f"feature columns other than the target {info.data['target']!r}")
        return value


class ModelSpec(StrictModel):
    name: str = Field(pattern=NAME, description="1 to 63 lowercase letters, digits or hyphens")
    algorithm: Literal["xgboost", "linear"] = Field(description="xgboost or linear")
    grid: dict[str, list[Number]] | None = Field(
        default=None, description="a mapping of hyperparameter to a list of values; every combination is trained"
    )
    combinations: list[dict[str, Number]] | None = Field(
        default=None, description="a list of hyperparameter mappings, each trained as given"
    )

    @field_validator("grid", "combinations")
    @classmethod
    def _known_hyperparameters_within_bounds(cls, value: Any, info: ValidationInfo) -> Any:
        algorithm = info.data.get("algorithm")
        if value is None or algorithm not in HYPERPARAMETERS:
            return value
        schema = HYPERPARAMETERS[algorithm]
        items = (
            [(name, v) for name, values in value.items() for v in values]
            if isinstance(value, dict)
            else [(name, v) for combination in value for name, v in combination.items()]
        )
        for name, number in items:
            spec = schema.get(name)
            if spec is None:
                raise ValueError(f"{algorithm} hyperparameters, one of {', '.join(sorted(schema))} (not {name!r})")
            if spec["type"] == "int" and not float(number).is_integer():
                raise ValueError(f"a whole number for {name} (not {number})")
            if not spec["min"] <= number <= spec["max"]:
                raise ValueError(f"{name} from {spec['min']} to {spec['max']} (not {number})")
        if isinstance(value, dict) and any(not values for values in value.values()):
            raise ValueError("a non-empty list of values for every hyperparameter")
        return value

    def trials(self) -> list[dict[str, Number]]:
        """Every hyperparameter combination this model trains, in a stable order."""
        if self.combinations is not None:
            return [dict(combination) for combination in self.combinations] or [{}]
        if not self.grid:
            return [{}]
        names = sorted(self.grid)
        return [dict(zip(names, values, strict=True)) for values in itertools.product(*(self.grid[n] for n in names))]


class Objective(StrictModel):
    metric: str = Field(description="a validation metric the training image reports for the problem type")
    direction: Literal["maximize", "minimize"] = Field(description="maximize or minimize")
    approval_threshold: Number = Field(description="the metric value a model must reach to be approved")


# SageMaker's longest MaxRuntimeInSeconds and MaxWaitTimeInSeconds (28 days), CreateTrainingJob StoppingCondition.
MAX_JOB_SECONDS = 2_419_200
DEFAULT_MAX_RUNTIME_SECONDS = 3600


def default_max_wait_seconds(max_runtime_seconds: int) -> int:
    """Twice the runtime (as long again to wait for spot capacity), within SageMaker's 28 days."""
    return min(2 * max_runtime_seconds, MAX_JOB_SECONDS)


class TrainingSpec(StrictModel):
    instance_type: Annotated[str, AfterValidator(check_instance_type)] = Field(
        description="an ML instance type, CPU or GPU"
    )
    spot: StrictBool = Field(default=True, description="true or false (managed spot training)")
    max_runtime_seconds: StrictInt = Field(
        default=DEFAULT_MAX_RUNTIME_SECONDS,
        ge=60,
        le=MAX_JOB_SECONDS,
        description="a whole number of seconds from 60 to 2419200 (28 days)",
    )
    # Without a value it is derived from the runtime (default_max_wait_seconds), never a fixed number:
    # pydantic does not validate defaults, and a fixed default below a tenant's runtime would make
    # SageMaker reject every spot trial (MaxWaitTimeInSeconds must be >= MaxRuntimeInSeconds).
    max_wait_seconds: StrictInt = Field(
        ge=60,
        le=MAX_JOB_SECONDS,
        description="a whole number of seconds from max_runtime_seconds to 2419200 (default: twice the runtime)",
    )

    @model_validator(mode="before")
    @classmethod
    def _derive_max_wait(cls, data: Any) -> Any:
        if isinstance(data, dict) and "max_wait_seconds" not in data:
            runtime = data.get("max_runtime_seconds", DEFAULT_MAX_RUNTIME_SECONDS)
            if isinstance(runtime, int) and not isinstance(runtime, bool) and 0 < runtime <= MAX_JOB_SECONDS:
                data = {**data, "max_wait_seconds": default_max_wait_seconds(runtime)}
        return data

    @field_validator("max_wait_seconds")
    @classmethod
    def _wait_covers_runtime(cls, value: int, info: ValidationInfo) -> int:
        # SageMaker: MaxWaitTimeInSeconds >= MaxRuntimeInSeconds for managed spot training.
        runtime = info.data.get("max_runtime_seconds")
        if runtime is not None and value < runtime:
            raise ValueError(f"a whole number of seconds, at least max_runtime_seconds ({runtime})")
        return value


class BatchPrediction(StrictModel):
    dataset: str = Field(pattern=NAME, description="the tenant's dataset whose features are scored")
    split: Literal["train", "validation", "test"] = Field(default="test", description="train, validation or test")


class PipelineConfig(StrictModel):
    tenant: str = Field(pattern=NAME, description="the tenant's name, the same as the file name")
    dataset: DatasetSpec
    models: list[ModelSpec] = Field(min_length=1, description="a non-empty list of candidate models")
    objective: Objective
    training: TrainingSpec
    batch_prediction: BatchPrediction

    @field_validator("models")
    @classmethod
    def _unique_names_and_bounded_trials(cls, value: list[ModelSpec]) -> list[ModelSpec]:
        names = [model.name for model in value]
        if len(set(names)) != len(names):
            raise ValueError(f"models with distinct names (not {names})")
        total = sum(len(model.trials()) for model in value)
        if total > MAX_TRIALS:
            raise ValueError(f"at most {MAX_TRIALS} trials in all (the grids make {total})")
        return value

    def problems(self) -> list[tuple[str, Any, str]]:
        """(key, value, what is allowed) for rules that span sections."""
        metrics = METRICS[self.dataset.problem_type]
        if self.objective.metric not in metrics:
            return [
                (
                    "objective.metric",
                    self.objective.metric,
                    f"for a {self.dataset.problem_type} problem, one of {', '.join(metrics)}",
                )
            ]
        if self.objective.direction != metrics[self.objective.metric]:
            return [("objective.direction", self.objective.direction, f"{metrics[self.objective.metric]}")]
        if self.batch_prediction.dataset != self.dataset.name:
            return [
                (
                    "batch_prediction.dataset",
                    self.batch_prediction.dataset,
                    f"{self.dataset.name!r}, the dataset the models learn",
                )
            ]
        return []

    @property
    def trial_count(self) -> int:
        return sum(len(model.trials()) for model in self.models)

    def published(self) -> dict[str, Any]:
        """The JSON the plan Lambda reads: the validated file plus what synth already knows.

        Instance-type facts (GPU image, KMS volume key allowed) and the metrics the image reports
        are computed here, so the Lambda needs neither a YAML parser nor a copy of these tables.
        """
        document = self.model_dump(mode="json")
        document["training"]["gpu"] = is_gpu(self.training.instance_type)
        document["training"]["local_storage"] = has_local_storage(self.training.instance_type)
        document["metrics"] = list(METRICS[self.dataset.problem_type])
        return {"schema_version": PUBLISHED_SCHEMA_VERSION, **document}
