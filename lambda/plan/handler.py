"""Plan: turn a tenant's published pipeline config into one training request per trial, in S3.

Input, as the state machine builds it: ``{"request": <the execution's input: {"tenant", "models"?}>,
"run_id": <the execution's name>, "started_at": <its start time>, "execution_arn": <its ARN>}``; the
run's day is the start time's UTC date. A flat ``{"tenant", "run_id", "day", "models"?, "started_at"?}``
is accepted too. ``models`` picks a subset of the tenant's models. ``run_id`` is the execution's
name, so a retried or redriven execution plans the same run again.

Why the plan lives in S3 and the output is small: a run may have 10,000 trials (the Distributed
Map's limit) and a Step Functions state carries at most 256 KB. So the items (each a complete
``CreateTrainingJob`` request but its name and role) go to ``artifacts/runs/<tenant>/<run_id>/plan.json``
as one JSON array, which the Map reads with ``ItemReader``; the output says where it is and carries the
prepare (``CreateProcessingJob``) and predict (``CreateTransformJob``) requests, which are copied
verbatim into those API calls.

Everything derives from the request and the config: job names hash the run id, trials are numbered
in model order, and the grid expands in a fixed order (docs/training-pipeline.md). A retry of the
same run writes nothing new: the ledger's run record (with the plan's sha256) and plan.json are
written only if absent, and a retry whose plan differs from the recorded one (the config changed
under the run) is a ``PlanConflict``. The function reads nothing but the config, so its grants stay
at "read configs, write runs, put ledger items".

Errors are typed so that Step Functions sees their class name as the error: ``InvalidRunRequest``,
``UnknownTenant``, ``UnknownModel``, ``InvalidConfig``, ``InvalidName``, ``PlanConflict``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError

SCHEMA_VERSION = 1
MAX_TRIALS = 10_000  # one Distributed Map execution runs at most 10,000 child workflows
TRIAL_DIGITS = 5
HASH_DIGITS = 10
VOLUME_SIZE_GB = 30
PREPARE_MAX_RUNTIME_SECONDS = 3600
TENANT_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
# Execution names allow more, but the run id becomes S3 keys, ledger keys and hyperparameters.
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,80}")
DAY_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}")
EXECUTION_ARN = re.compile(r"arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:execution:[A-Za-z0-9_.-]+:[A-Za-z0-9_-]{1,80}")
# SageMaker's pattern for training, processing and transform job, model and package group names.
SAGEMAKER_NAME_PATTERN = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
SAGEMAKER_NAME_MAX = 63
REQUEST_KEYS = ("tenant", "run_id", "day", "models", "started_at")
WRAPPER_KEYS = ("request", "run_id", "started_at", "execution_arn")
EXECUTION_INPUT_KEYS = ("tenant", "models")
EXAMPLE_INPUT = '{"tenant": "example", "models": ["xgboost"]}'
# A number as the training image prints it ("{value:.6g}"): 0.981, -3, 1e-05; never nan or inf.
NUMBER_REGEX = r"([-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?)"
CONFIG_PREFIX = "artifacts/config/pipelines/"
PROCESSING_ROOT = "/opt/ml/processing"


class PlanError(Exception):
    """A run that cannot be planned, in one sentence; Step Functions sees the subclass's name."""


class InvalidRunRequest(PlanError):
    """The execution's input is malformed."""


class UnknownTenant(PlanError):
    """No published pipeline config for the tenant."""


class UnknownModel(PlanError):
    """The request names a model the tenant's config does not have."""


class InvalidConfig(PlanError):
    """The published config is not what synth publishes (schema version 1)."""


class InvalidName(PlanError):
    """A SageMaker name would be too long or use characters SageMaker rejects."""


class PlanConflict(PlanError):
    """The run already has a different plan or belongs to another tenant."""


@dataclass(frozen=True)
class RunRequest:
    tenant: str
    run_id: str
    day: str
    started_at: str
    models: tuple[str, ...] | None
    execution_arn: str | None = None


@dataclass(frozen=True)
class Settings:
    """The function's environment, read once."""

    config_bucket: str
    artifacts_bucket: str
    raw_bucket: str
    curated_bucket: str
    features_bucket: str
    predictions_bucket: str
    ledger_table: str
    job_prefix: str
    progress_bus_name: str
    event_source: str
    training_image_uri: str
    gpu_training_image_uri: str  # empty where no tenant asks for a GPU instance: the image is not built there
    kms_key_arn: str
    processing_instance_type: str
    processing_local_storage: bool
    batch_transform_instance_type: str
    batch_transform_local_storage: bool
    progress_interval_seconds: str
    region: str

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Settings:
        return cls(
            config_bucket=environ["CONFIG_BUCKET"],
            artifacts_bucket=environ["ARTIFACTS_BUCKET"],
            raw_bucket=environ["RAW_BUCKET"],
            curated_bucket=environ["CURATED_BUCKET"],
            features_bucket=environ["FEATURES_BUCKET"],
            predictions_bucket=environ["PREDICTIONS_BUCKET"],
            ledger_table=environ["LEDGER_TABLE"],
            job_prefix=environ["JOB_PREFIX"],
            progress_bus_name=environ["PROGRESS_BUS_NAME"],
            event_source=environ["EVENT_SOURCE"],
            training_image_uri=environ["TRAINING_IMAGE_URI"],
            gpu_training_image_uri=environ.get("GPU_TRAINING_IMAGE_URI", ""),
            kms_key_arn=environ["KMS_KEY_ARN"],
            processing_instance_type=environ["PROCESSING_INSTANCE_TYPE"],
            processing_local_storage=_flag(environ, "PROCESSING_LOCAL_STORAGE"),
            batch_transform_instance_type=environ["BATCH_TRANSFORM_INSTANCE_TYPE"],
            batch_transform_local_storage=_flag(environ, "BATCH_TRANSFORM_LOCAL_STORAGE"),
            progress_interval_seconds=environ["PROGRESS_INTERVAL_SECONDS"],
            region=environ["AWS_REGION"],
        )


def _flag(environ: Mapping[str, str], name: str) -> bool:
    value = environ[name]
    if value not in ("true", "false"):
        raise ValueError(f"environment variable {name} is {value!r}; allowed: true or false")
    return value == "true"


# ---------------------------------------------------------------------------------------------
# The request


def parse_request(event: Any) -> RunRequest:
    """The run's request, checked; raises ``InvalidRunRequest`` with one sentence.

    Two shapes: the state machine's ``{"request": <the execution's input>, "run_id": <its name>,
    "started_at": <its start time>}``, where the execution's input is ``{"tenant", "models"?}``; or
    a flat ``{"tenant", "run_id", "day", "models"?, "started_at"?}``.
    """
    if not isinstance(event, dict):
        raise InvalidRunRequest(f"the input must be a JSON object, not {type(event).__name__}")
    if "request" in event:
        unknown = sorted(set(event) - set(WRAPPER_KEYS))
        if unknown:
            raise InvalidRunRequest(f"unexpected keys {unknown} in the input; allowed: {list(WRAPPER_KEYS)}")
        execution_input = event["request"]
        if not isinstance(execution_input, dict):
            raise InvalidRunRequest(f"the execution's input must be a JSON object such as {EXAMPLE_INPUT}")
        unknown = sorted(set(execution_input) - set(EXECUTION_INPUT_KEYS))
        if unknown:
            raise InvalidRunRequest(
                f"unexpected keys {unknown} in the execution's input; allowed: {list(EXECUTION_INPUT_KEYS)}"
            )
        execution_arn = event.get("execution_arn")
        if execution_arn is not None and not (
            isinstance(execution_arn, str) and EXECUTION_ARN.fullmatch(execution_arn)
        ):
            raise InvalidRunRequest(f"execution_arn {execution_arn!r} must be a Step Functions execution ARN")
        event = {
            **execution_input,
            "run_id": event.get("run_id"),
            "started_at": event.get("started_at"),
            "execution_arn": execution_arn,
        }
    else:
        unknown = sorted(set(event) - set(REQUEST_KEYS))
        if unknown:
            raise InvalidRunRequest(f"unexpected keys {unknown} in the input; allowed: {list(REQUEST_KEYS)}")
    tenant = event.get("tenant")
    if not isinstance(tenant, str) or not TENANT_PATTERN.fullmatch(tenant):
        raise InvalidRunRequest(f"tenant {tenant!r} must be 1-63 lowercase letters, digits or hyphens")
    run_id = event.get("run_id")
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.fullmatch(run_id):
        raise InvalidRunRequest(f"run_id {run_id!r} must be 1-80 letters, digits, hyphens or underscores")
    started_at = event.get("started_at")
    if started_at is not None and not _is_timestamp(started_at):
        raise InvalidRunRequest(f"started_at {started_at!r} must be an ISO 8601 time such as 2026-01-31T12:00:00Z")
    day = event.get("day", started_at[:10] if isinstance(started_at, str) else None)
    if not isinstance(day, str) or not _is_day(day):
        raise InvalidRunRequest(f"day {day!r} must be a date written yyyy-mm-dd (the execution's start date)")
    models = event.get("models")
    if models is not None:
        if (
            not isinstance(models, list)
            or not models
            or not all(isinstance(name, str) for name in models)
            or len(set(models)) != len(models)
        ):
            raise InvalidRunRequest(f"models {models!r} must be a non-empty list of distinct model names")
        models = tuple(models)
    return RunRequest(
        tenant=tenant,
        run_id=run_id,
        day=day,
        started_at=started_at if isinstance(started_at, str) else day,
        models=models,
        execution_arn=event.get("execution_arn"),
    )


def _is_day(value: Any) -> bool:
    if not isinstance(value, str) or not DAY_PATTERN.fullmatch(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_timestamp(value: Any) -> bool:
    if not isinstance(value, str) or not _is_day(value[:10]):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# Names


def run_hash(run_id: str) -> str:
    """First 10 hex digits of sha256(run_id): short, stable, and the same on every retry."""
    return hashlib.sha256(run_id.encode("utf-8")).hexdigest()[:HASH_DIGITS]


def checked_name(name: str, what: str) -> str:
    if len(name) > SAGEMAKER_NAME_MAX or not SAGEMAKER_NAME_PATTERN.fullmatch(name):
        raise InvalidName(
            f"{what} {name!r} has {len(name)} characters; SageMaker allows at most {SAGEMAKER_NAME_MAX} "
            "letters, digits and single hyphens (shorten JOB_PREFIX, the tenant or the model name)"
        )
    return name


def training_job_name(prefix: str, run_id: str, trial: str, attempt: int) -> str:
    """``<prefix>-<h>-<trial>-a<attempt>``: unique per run, trial and attempt, at most 63 characters."""
    return checked_name(f"{prefix}-{run_hash(run_id)}-{trial}-a{attempt}", "training job name")


def trial_id(number: int) -> str:
    return f"{number:0{TRIAL_DIGITS}d}"


# ---------------------------------------------------------------------------------------------
# The config


def config_key(tenant: str) -> str:
    return f"{CONFIG_PREFIX}{tenant}.json"


def check_config(config: Any, tenant: str) -> dict[str, Any]:
    """The fields the plan reads, with their types; synth validated the rest."""
    if not isinstance(config, dict):
        raise InvalidConfig(f"the published config of tenant {tenant!r} is not a JSON object")
    if config.get("schema_version") != SCHEMA_VERSION:
        raise InvalidConfig(
            f"the published config of tenant {tenant!r} has schema_version {config.get('schema_version')!r}; "
            f"allowed: {SCHEMA_VERSION} (redeploy to republish it)"
        )
    expected: list[tuple[str, type | tuple[type, ...]]] = [
        ("tenant", str),
        ("dataset", dict),
        ("dataset.name", str),
        ("dataset.target", str),
        ("dataset.problem_type", str),
        ("dataset.features", dict),
        ("models", list),
        ("objective", dict),
        ("objective.metric", str),
        ("training", dict),
        ("training.instance_type", str),
        ("training.spot", bool),
        ("training.max_runtime_seconds", int),
        ("training.max_wait_seconds", int),
        ("training.gpu", bool),
        ("training.local_storage", bool),
        ("batch_prediction", dict),
        ("batch_prediction.dataset", str),
        ("batch_prediction.split", str),
        ("metrics", list),
    ]
    for path, kind in expected:
        value: Any = config
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise InvalidConfig(f"the published config of tenant {tenant!r} has no valid {path!r}")
    if config["tenant"] != tenant:
        raise InvalidConfig(f"the published config for tenant {tenant!r} names tenant {config['tenant']!r}")
    if not config["models"] or not all(_valid_model(model) for model in config["models"]):
        raise InvalidConfig(
            f"the published config of tenant {tenant!r} needs a non-empty list of models, each with a name, "
            "an algorithm and a grid or combinations of numbers"
        )
    if not config["metrics"] or not all(isinstance(metric, str) and metric for metric in config["metrics"]):
        raise InvalidConfig(f"the published config of tenant {tenant!r} needs a non-empty list of metric names")
    return config


def _valid_model(model: Any) -> bool:
    if not isinstance(model, dict) or not isinstance(model.get("name"), str) or not model["name"]:
        return False
    if not isinstance(model.get("algorithm"), str):
        return False
    grid, combinations = model.get("grid"), model.get("combinations")
    if grid is not None and not (
        isinstance(grid, dict) and all(isinstance(values, list) and values for values in grid.values())
    ):
        return False
    return combinations is None or (
        isinstance(combinations, list) and all(isinstance(combination, dict) for combination in combinations)
    )


def expand(model: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A model's trials in the contract's order (the same as ``config.tenants.ModelSpec.trials``).

    ``combinations`` as given; else the grid's names sorted and ``itertools.product`` of their value
    lists; a model with neither trains once with the image's defaults.
    """
    combinations = model.get("combinations")
    if combinations is not None:
        return [dict(combination) for combination in combinations] or [{}]
    grid = model.get("grid")
    if not grid:
        return [{}]
    names = sorted(grid)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*(grid[name] for name in names))]


def hyperparameter_value(value: Any) -> str:
    """SageMaker passes hyperparameters as strings; numbers keep Python's shortest round-trip form."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return str(value)


def metric_definitions(metrics: list[str]) -> list[dict[str, str]]:
    """One definition per metric; SageMaker keeps the last match, and the image prints the best round last."""
    return [{"Name": name, "Regex": re.escape(name) + "=" + NUMBER_REGEX} for name in metrics]


# ---------------------------------------------------------------------------------------------
# The plan


class Layout:
    """Where a run's objects live (docs/training-pipeline.md, "Buckets and keys")."""

    def __init__(self, settings: Settings, config: Mapping[str, Any], request: RunRequest):
        self.settings = settings
        self.tenant = request.tenant
        self.run_id = request.run_id
        self.day = request.day
        self.dataset = config["dataset"]["name"]
        self.batch_dataset = config["batch_prediction"]["dataset"]
        self.run_prefix = f"artifacts/runs/{self.tenant}/{self.run_id}/"

    def s3(self, bucket: str, key: str) -> str:
        return f"s3://{bucket}/{key}"

    @property
    def plan_key(self) -> str:
        return self.run_prefix + "plan.json"

    @property
    def results_prefix(self) -> str:
        # No trailing slash: Step Functions writes <Prefix>/<map run id>/manifest.json.
        return self.run_prefix + "results"

    def split(self, split: str) -> str:
        key = f"features/{self.tenant}/{self.dataset}/dt={self.day}/{self.run_id}-{split}.parquet"
        return self.s3(self.settings.features_bucket, key)

    @property
    def models_uri(self) -> str:
        return self.s3(self.settings.artifacts_bucket, self.run_prefix + "models")

    def checkpoints_uri(self, trial: str) -> str:
        return self.s3(self.settings.artifacts_bucket, f"{self.run_prefix}checkpoints/{trial}/")


def _channel(name: str, uri: str) -> dict[str, Any]:
    return {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "FullyReplicated"}
        },
        "ContentType": "application/x-parquet",
    }


def build_items(settings: Settings, config: Mapping[str, Any], request: RunRequest) -> list[dict[str, Any]]:
    """One item per trial: identity, hyperparameters and the ``CreateTrainingJob`` request.

    The request holds every field but ``TrainingJobName`` (the item's ``job_name``) and ``RoleArn``
    (the state machine's). Parts common to all trials are shared objects: they are only serialized.
    """
    layout = Layout(settings, config, request)
    selected = _selected_models(config, request)
    training = config["training"]
    dataset = config["dataset"]
    prefix = settings.job_prefix
    for model in selected:
        checked_name(f"{prefix}-{request.tenant}-{model['name']}", "model package group name")
    trials_per_model = [(model, expand(model)) for model in selected]
    total = sum(len(trials) for _, trials in trials_per_model)
    if total > MAX_TRIALS:
        raise InvalidConfig(f"tenant {request.tenant!r} would train {total} trials; allowed: at most {MAX_TRIALS}")
    training_job_name(prefix, request.run_id, trial_id(total - 1), 0)  # the longest name, checked once

    if training["gpu"] and not settings.gpu_training_image_uri:
        raise InvalidConfig(
            f"tenant {request.tenant!r} trains on {training['instance_type']}, a GPU instance, and this environment "
            "has no GPU training image; allowed: a CPU instance type, or deploy the config that asks for the GPU "
            "(synth builds the GPU image only where a tenant's training.instance_type is a GPU type)"
        )
    spot = training["spot"]
    if spot and training["max_wait_seconds"] < training["max_runtime_seconds"]:
        # Synth derives or checks the wait (config/tenants.py); a config published otherwise would have
        # every trial rejected by CreateTrainingJob, so it fails here, once, before any job starts.
        raise InvalidConfig(
            f"the published config of tenant {request.tenant!r} has training.max_wait_seconds "
            f"{training['max_wait_seconds']} below training.max_runtime_seconds {training['max_runtime_seconds']}; "
            "allowed: a spot wait at least as long as the runtime (redeploy to republish it)"
        )
    algorithm_specification = {
        "TrainingImage": settings.gpu_training_image_uri if training["gpu"] else settings.training_image_uri,
        "TrainingInputMode": "File",
        "MetricDefinitions": metric_definitions(config["metrics"]),
    }
    input_data_config = [
        _channel("train", layout.split("train")),
        _channel("validation", layout.split("validation")),
    ]
    output_data_config = {"S3OutputPath": layout.models_uri, "KmsKeyId": settings.kms_key_arn}
    resource_config: dict[str, Any] = {
        "InstanceType": training["instance_type"],
        "InstanceCount": 1,
        "VolumeSizeInGB": VOLUME_SIZE_GB,
    }
    if not training["local_storage"]:
        # Instance types with local NVMe storage reject a volume key (their disks are hardware-encrypted).
        resource_config["VolumeKmsKeyId"] = settings.kms_key_arn
    stopping_condition = {"MaxRuntimeInSeconds": training["max_runtime_seconds"]}
    if spot:
        stopping_condition["MaxWaitTimeInSeconds"] = training["max_wait_seconds"]
    platform = {
        "mlops_problem_type": dataset["problem_type"],
        "mlops_target": dataset["target"],
        # The metric that picks each trial's kept round: the one evaluate ranks trials by.
        "mlops_objective": config["objective"]["metric"],
        "mlops_tenant": request.tenant,
        "mlops_run_id": request.run_id,
        "mlops_event_bus": settings.progress_bus_name,
        "mlops_event_source": settings.event_source,
        "mlops_region": settings.region,
        "mlops_progress_interval_seconds": settings.progress_interval_seconds,
        "mlops_device": "auto",
    }

    items = []
    number = 0
    for model, trials in trials_per_model:
        for hyperparameters in trials:
            trial = trial_id(number)
            number += 1
            request_fields: dict[str, Any] = {
                "AlgorithmSpecification": algorithm_specification,
                "HyperParameters": {
                    **{name: hyperparameter_value(value) for name, value in hyperparameters.items()},
                    **platform,
                    "mlops_algorithm": model["algorithm"],
                    "mlops_model": model["name"],
                    "mlops_trial": trial,
                },
                "InputDataConfig": input_data_config,
                "OutputDataConfig": output_data_config,
                "ResourceConfig": resource_config,
                "StoppingCondition": stopping_condition,
                "EnableManagedSpotTraining": spot,
                # On every job, not only spot ones: resuming after a spot interruption needs it, a
                # retried attempt resumes from its predecessor's checkpoints, and the state machine
                # copies the field unconditionally (a missing one is a runtime error there).
                "CheckpointConfig": {"S3Uri": layout.checkpoints_uri(trial)},
                "EnableNetworkIsolation": False,  # jobs send progress events to EventBridge
            }
            items.append(
                {
                    "run_id": request.run_id,
                    "tenant": request.tenant,
                    "model": model["name"],
                    "algorithm": model["algorithm"],
                    "trial": trial,
                    "attempt": 0,
                    "job_name": f"{prefix}-{run_hash(request.run_id)}-{trial}-a0",
                    "hyperparameters": hyperparameters,
                    "request": request_fields,
                }
            )
    return items


def _selected_models(config: Mapping[str, Any], request: RunRequest) -> list[dict[str, Any]]:
    models = config["models"]
    if request.models is None:
        return list(models)
    known = [model["name"] for model in models]
    unknown = [name for name in request.models if name not in known]
    if unknown:
        raise UnknownModel(
            f"tenant {request.tenant!r} has no model {unknown[0]!r}; allowed: a subset of {', '.join(known)}"
        )
    # The config's order, whatever the request's: trial numbers must not depend on how a subset is written.
    return [model for model in models if model["name"] in request.models]


def prepare_request(settings: Settings, config: Mapping[str, Any], request: RunRequest) -> dict[str, Any]:
    """The ``CreateProcessingJob`` request (all but ``RoleArn``) that prepares the run's data."""
    layout = Layout(settings, config, request)
    tenant, dataset, run_id, day = request.tenant, layout.dataset, request.run_id, request.day

    def output(name: str, uri: str) -> dict[str, Any]:
        return {
            "OutputName": name,
            "S3Output": {"S3Uri": uri, "LocalPath": f"{PROCESSING_ROOT}/output/{name}", "S3UploadMode": "EndOfJob"},
        }

    cluster: dict[str, Any] = {
        "InstanceCount": 1,
        "InstanceType": settings.processing_instance_type,
        "VolumeSizeInGB": VOLUME_SIZE_GB,
    }
    if not settings.processing_local_storage:
        cluster["VolumeKmsKeyId"] = settings.kms_key_arn
    return {
        "ProcessingJobName": checked_name(f"{settings.job_prefix}-{run_hash(run_id)}-prep", "processing job name"),
        "AppSpecification": {
            "ImageUri": settings.training_image_uri,
            "ContainerArguments": [
                "prepare",
                "--config",
                f"{PROCESSING_ROOT}/input/config/{tenant}.json",
                "--run-id",
                run_id,
                "--day",
                day,
            ],
        },
        "ProcessingInputs": [
            {
                "InputName": "config",
                "S3Input": {
                    "S3Uri": layout.s3(settings.config_bucket, config_key(tenant)),
                    "LocalPath": f"{PROCESSING_ROOT}/input/config",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                    "S3DataDistributionType": "FullyReplicated",
                },
            },
            {
                "InputName": "raw",
                "S3Input": {
                    "S3Uri": layout.s3(settings.raw_bucket, f"raw/{tenant}/{dataset}/"),
                    "LocalPath": f"{PROCESSING_ROOT}/input/raw",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                    "S3DataDistributionType": "FullyReplicated",
                },
            },
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                output("curated", layout.s3(settings.curated_bucket, f"curated/{tenant}/{dataset}/")),
                output("features", layout.s3(settings.features_bucket, f"features/{tenant}/{dataset}/dt={day}/")),
                output("batch", layout.s3(settings.features_bucket, f"batch-input/{tenant}/{dataset}/{run_id}/")),
                output("report", layout.s3(settings.artifacts_bucket, f"{layout.run_prefix}prepare/")),
            ],
            "KmsKeyId": settings.kms_key_arn,
        },
        "ProcessingResources": {"ClusterConfig": cluster},
        "StoppingCondition": {"MaxRuntimeInSeconds": PREPARE_MAX_RUNTIME_SECONDS},
    }


def predict_request(settings: Settings, config: Mapping[str, Any], request: RunRequest) -> dict[str, Any]:
    """The ``CreateTransformJob`` request; ``ModelName`` is also the name of the model created for it."""
    layout = Layout(settings, config, request)
    tenant, dataset, run_id = request.tenant, layout.batch_dataset, request.run_id
    batch_input = f"batch-input/{tenant}/{dataset}/{run_id}/{config['batch_prediction']['split']}.csv"
    name = checked_name(f"{settings.job_prefix}-{run_hash(run_id)}-pred", "transform job name")
    resources: dict[str, Any] = {"InstanceType": settings.batch_transform_instance_type, "InstanceCount": 1}
    if not settings.batch_transform_local_storage:
        resources["VolumeKmsKeyId"] = settings.kms_key_arn
    return {
        "ModelName": name,
        "TransformJobName": name,
        "TransformInput": {
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": layout.s3(settings.features_bucket, batch_input),
                }
            },
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        "TransformOutput": {
            "S3OutputPath": layout.s3(settings.predictions_bucket, f"predictions/{tenant}/{dataset}/{run_id}/"),
            "KmsKeyId": settings.kms_key_arn,
            "Accept": "text/csv",
            "AssembleWith": "Line",
        },
        "TransformResources": resources,
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": 6,
    }


def encode_plan(items: list[dict[str, Any]]) -> bytes:
    """Compact, strict JSON: the plan is read by the Map, never by people."""
    return json.dumps(items, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")


# ---------------------------------------------------------------------------------------------
# Side effects


class Planner:
    def __init__(self, s3_client: Any, dynamodb_client: Any, settings: Settings):
        self.s3 = s3_client
        self.dynamodb = dynamodb_client
        self.settings = settings
        self.serializer = TypeSerializer()

    def __call__(self, event: Any) -> dict[str, Any]:
        request = parse_request(event)
        config = self.read_config(request.tenant)
        items = build_items(self.settings, config, request)
        prepare = prepare_request(self.settings, config, request)
        predict = predict_request(self.settings, config, request)
        layout = Layout(self.settings, config, request)
        models = [model["name"] for model in _selected_models(config, request)]
        body = encode_plan(items)
        # Ledger first: its record holds the plan's digest, so a retry can tell "same plan" from
        # "the config changed under this run" without reading anything back (the function may not).
        self.record_run(request, models, len(items), layout.plan_key, hashlib.sha256(body).hexdigest())
        self.write_plan(layout.plan_key, body)
        return {
            "run_id": request.run_id,
            "tenant": request.tenant,
            "day": request.day,
            "trial_count": len(items),
            "models": models,
            "plan": {"Bucket": self.settings.artifacts_bucket, "Key": layout.plan_key},
            "results": {"Bucket": self.settings.artifacts_bucket, "Prefix": layout.results_prefix},
            "prepare": prepare,
            "predict": predict,
        }

    def read_config(self, tenant: str) -> dict[str, Any]:
        key = config_key(tenant)
        try:
            body = self.s3.get_object(Bucket=self.settings.config_bucket, Key=key)["Body"].read()
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise UnknownTenant(
                    f"tenant {tenant!r} has no published pipeline config at "
                    f"s3://{self.settings.config_bucket}/{key} (add config/pipelines/{tenant}.yaml and deploy)"
                ) from None
            raise
        try:
            config = json.loads(body)
        except ValueError as error:
            raise InvalidConfig(f"the published config of tenant {tenant!r} is not JSON: {error}") from None
        return check_config(config, tenant)

    def write_plan(self, key: str, body: bytes) -> None:
        """Write once. An object already there was written by an attempt the ledger matched: the same plan."""
        try:
            self.s3.put_object(
                Bucket=self.settings.artifacts_bucket,
                Key=key,
                Body=body,
                ContentType="application/json",
                ServerSideEncryption="aws:kms",
                SSEKMSKeyId=self.settings.kms_key_arn,
                IfNoneMatch="*",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "PreconditionFailed":
                raise
            logger.info("plan already written", extra={"key": key})

    def record_run(
        self, request: RunRequest, models: list[str], trial_count: int, plan_key: str, plan_sha256: str
    ) -> None:
        """The ledger's run record, written once: a retry or redrive keeps the first one.

        A retry finds the record (returned with the failed condition, so no read permission is
        needed); a different tenant or plan digest means the run id is not this run's to plan. A
        record without a plan is the run-outcome function's note of an execution that failed before
        its plan was recorded (lambda/run_outcome/handler.py): a redrive that plans the run replaces it.
        """
        record = {
            "pk": f"RUN#{request.run_id}",
            "sk": "RUN",
            "kind": "run",
            "run_id": request.run_id,
            "tenant": request.tenant,
            "models": models,
            "trial_count": trial_count,
            "plan_bucket": self.settings.artifacts_bucket,
            "plan_key": plan_key,
            "plan_sha256": plan_sha256,
            "status": "planned",
            "day": request.day,
            "started_at": request.started_at,
            "planned_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "gsi1pk": f"TENANT#{request.tenant}",
            "gsi1sk": f"RUN#{request.started_at}#{request.run_id}",
        }
        if request.execution_arn:
            record["execution_arn"] = request.execution_arn
        try:
            self.dynamodb.put_item(
                TableName=self.settings.ledger_table,
                Item={name: self.serializer.serialize(value) for name, value in record.items()},
                ConditionExpression="attribute_not_exists(pk) OR attribute_not_exists(plan_sha256)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            existing = error.response.get("Item") or {}
            recorded_tenant = existing.get("tenant", {}).get("S")
            if recorded_tenant != request.tenant:
                raise PlanConflict(
                    f"run {request.run_id!r} is already recorded for tenant {recorded_tenant!r}, not {request.tenant!r}"
                ) from None
            if existing.get("plan_sha256", {}).get("S") != plan_sha256:
                raise PlanConflict(
                    f"run {request.run_id!r} was already planned differently (the config changed since); "
                    "start a new execution"
                ) from None
            logger.info("run already recorded", extra={"run_id": request.run_id})


logger = Logger()
metrics = Metrics()
planner = Planner(boto3.client("s3"), boto3.client("dynamodb"), Settings.from_environment(os.environ))


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = planner(event)
    logger.info(
        "planned",
        extra={"run_id": result["run_id"], "tenant": result["tenant"], "trial_count": result["trial_count"]},
    )
    metrics.add_metric("TrialsPlanned", MetricUnit.Count, result["trial_count"])
    return result
