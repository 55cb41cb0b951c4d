"""Declarative training pipelines: ``config/pipelines/<tenant>.yaml``, one file per tenant (seed 000).

A file names the dataset and its feature schema, the candidate models with their hyperparameter
grids, the objective and approval threshold, the training resources and the batch-prediction
input. Grids are checked against the training image's own hyperparameter table
(``mlops_platform/training/hyperparameters.json``), so a typo fails synth, not a job.
"""

from __future__ import annotations

import itertools
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
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
from mlops_platform.schema.columns import restricted_name, restricted_names, source_name_problem
from mlops_platform.training.objective import METRIC_RANGES
from mlops_platform.training.objective import OBJECTIVES as METRICS
from mlops_platform.training.settings import MODEL_HYPERPARAMETERS as HYPERPARAMETERS
from mlops_platform.training.settings import SCHEMA_FILE as HYPERPARAMETERS_FILE  # noqa: F401 (the file's path, for readers)

# One execution's Distributed Map handles up to 10,000 items.
MAX_TRIALS = 10_000

# Version of the JSON that synth publishes for the plan Lambda (docs/training-pipeline.md).
PUBLISHED_SCHEMA_VERSION = 1

NAME = r"^[a-z0-9][a-z0-9-]{0,62}$"
NAME_RULE = "1 to 63 lowercase letters, digits or hyphens, starting with a letter or digit"
Number = StrictInt | StrictFloat

# The schema's types (README, Tenants): what prepare, training and serving read each feature as.
FEATURE_TYPES = ("double", "bigint", "boolean", "categorical")
PROBLEM_TYPES = ("binary", "multiclass", "regression")
# Prepare fails a run whose rejected rows pass this share of the rows read (max_rejected_share).
DEFAULT_MAX_REJECTED_SHARE = 0.01
# Columns prepare adds to a tenant's own (mlops_platform/data/raw_records.py METADATA_COLUMNS).
RESERVED_COLUMNS = ("record_id", "received_at", "split")
MAX_CLASSES = 1000


def _name(value: str, what: str) -> str:
    if not re.fullmatch(NAME, value):
        raise ValueError(f"{what}: {NAME_RULE} (not {value!r})")
    return value


class FeatureSpec(StrictModel):
    """A feature's long form: ``{type: double, required: true}``; the short form is the type alone."""

    type: Literal["double", "bigint", "boolean", "categorical"] = Field(
        description="double, bigint, boolean or categorical"
    )
    required: StrictBool = Field(
        default=False, description="true or false: whether a row without a value is rejected (default false)"
    )


def _long_form(value: Any) -> Any:
    kind = value if isinstance(value, str) else value.get("type") if isinstance(value, dict) else None
    if kind is not None and kind not in FEATURE_TYPES:
        raise ValueError(f"a type of {', '.join(FEATURE_TYPES[:-1])} or {FEATURE_TYPES[-1]}, or {{type, required}}")
    return {"type": value} if isinstance(value, str) else value


class DatasetSpec(StrictModel):
    name: str = Field(description=f"the dataset's name as sent to ingestion: {NAME_RULE}")
    target: str = Field(description="the target's column name, exactly as in the data")
    problem_type: Literal["binary", "multiclass", "regression"] = Field(description="binary, multiclass or regression")
    classes: list[str] | None = Field(
        default=None,
        description="for binary or multiclass, the labels as text in the order the model reports them "
        "(default: the sorted distinct values of the training data)",
    )
    max_rejected_share: Number = Field(
        default=DEFAULT_MAX_REJECTED_SHARE,
        ge=0,
        le=1,
        description="a share of the rows read from 0 to 1 above which prepare fails the run (default 0.01)",
    )
    unknown_columns: Literal["ignore", "reject"] = Field(
        default="ignore", description="ignore (recorded, then ignored) or reject (the row is rejected)"
    )
    features: dict[str, Annotated[FeatureSpec, BeforeValidator(_long_form)]] = Field(
        min_length=1,
        description="a mapping of each feature's column name, exactly as in the data, to its type "
        "(double, bigint, boolean or categorical) or to {type, required}",
    )

    @field_validator("name")
    @classmethod
    def _dataset_name(cls, value: str) -> str:
        return _name(value, "the dataset's name")

    @field_validator("target")
    @classmethod
    def _target_name(cls, value: str) -> str:
        problem = source_name_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("classes")
    @classmethod
    def _distinct_classes(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if value is None:
            return value
        problem_type = info.data.get("problem_type")
        if problem_type == "regression":
            raise ValueError("no classes for a regression problem (remove the key)")
        if len(set(value)) != len(value) or any(not label.strip() for label in value):
            raise ValueError("distinct, non-empty labels")
        low, high = (2, 2) if problem_type == "binary" else (3, MAX_CLASSES)
        if not low <= len(value) <= high:
            wanted = "exactly 2 labels" if problem_type == "binary" else f"3 to {MAX_CLASSES} labels"
            raise ValueError(f"{wanted} for a {problem_type} problem (not {len(value)})")
        return value

    @field_validator("features")
    @classmethod
    def _columns(cls, value: dict[str, FeatureSpec], info: ValidationInfo) -> dict[str, FeatureSpec]:
        target = info.data.get("target")
        if target in value:
            raise ValueError(f"feature columns other than the target {target!r}")
        sources = [*value, *([target] if target else [])]
        reserved = [name for name in sources if restricted_name(name) in RESERVED_COLUMNS]
        if reserved:
            raise ValueError(
                f"column names other than {reserved[0]!r}: {', '.join(RESERVED_COLUMNS)} are the columns prepare adds"
            )
        restricted_names(sources)  # one sentence naming both columns when two would share a restricted name
        return value

    def columns(self) -> list[dict[str, Any]]:
        """Each feature's source name, restricted name, type and whether it is required, in declared order."""
        return [
            {"name": name, "column": restricted_name(name), "type": spec.type, "required": spec.required}
            for name, spec in self.features.items()
        ]


class ModelSpec(StrictModel):
    name: str = Field(description=NAME_RULE)
    algorithm: Literal["xgboost", "linear"] = Field(description="xgboost or linear")
    grid: dict[str, list[Number]] | None = Field(
        default=None, description="a mapping of hyperparameter to a list of values; every combination is trained"
    )
    combinations: list[dict[str, Number]] | None = Field(
        default=None, description="a list of hyperparameter mappings, each trained as given"
    )

    @field_validator("name")
    @classmethod
    def _model_name(cls, value: str) -> str:
        return _name(value, "a model's name")

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
    """What batch transform scores after a run: a split of the training dataset, or a dataset named for scoring.

    A scoring dataset is another dataset of the tenant, ingested like the training one, whose rows
    carry the features and no target (new rows); prepare writes all its rows as the batch input.
    """

    dataset: str = Field(
        description="the training dataset (one of its splits is scored) or another dataset of the tenant, "
        "ingested for scoring: rows with the features and no target"
    )
    split: Literal["train", "validation", "test"] = Field(
        default="test", description="train, validation or test (for the training dataset only)"
    )

    @field_validator("dataset")
    @classmethod
    def _dataset_name(cls, value: str) -> str:
        return _name(value, "a dataset's name")


class PipelineConfig(StrictModel):
    tenant: str = Field(description=f"the tenant's name, the same as the file name: {NAME_RULE}")
    dataset: DatasetSpec
    models: list[ModelSpec] = Field(min_length=1, description="a non-empty list of candidate models")
    objective: Objective
    training: TrainingSpec
    batch_prediction: BatchPrediction

    @field_validator("tenant")
    @classmethod
    def _tenant_name(cls, value: str) -> str:
        return _name(value, "the tenant's name")

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
        problem_type = self.dataset.problem_type
        metrics = METRICS[problem_type]
        if self.objective.metric not in metrics:
            return [
                (
                    "objective.metric",
                    self.objective.metric,
                    f"for a {problem_type} problem, one of {', '.join(metrics)}",
                )
            ]
        if self.objective.direction != metrics[self.objective.metric]:
            return [("objective.direction", self.objective.direction, f"{metrics[self.objective.metric]}")]
        low, high = METRIC_RANGES[self.objective.metric.split(":", 1)[-1]]
        threshold = self.objective.approval_threshold
        if not low <= threshold <= (high if high is not None else float("inf")):
            allowed = f"from {low} to {high}" if high is not None else f"at least {low}"
            return [("objective.approval_threshold", threshold, f"a value of {self.objective.metric} {allowed}")]
        if self.batch_prediction.dataset != self.dataset.name and "split" in self.batch_prediction.model_fields_set:
            return [
                (
                    "batch_prediction.split",
                    self.batch_prediction.split,
                    f"no split when batch_prediction.dataset names a dataset for scoring, not {self.dataset.name!r}",
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
        dataset = document["dataset"]
        # features: column -> type, as before; columns: the same in order with restricted names (Contract 3).
        dataset["features"] = {name: spec.type for name, spec in self.dataset.features.items()}
        dataset["columns"] = self.dataset.columns()
        dataset["target_column"] = restricted_name(self.dataset.target)
        document["batch_prediction"]["scoring"] = self.batch_prediction.dataset != self.dataset.name
        document["training"]["gpu"] = is_gpu(self.training.instance_type)
        document["training"]["local_storage"] = has_local_storage(self.training.instance_type)
        document["metrics"] = list(METRICS[self.dataset.problem_type])
        return {"schema_version": PUBLISHED_SCHEMA_VERSION, **document}
