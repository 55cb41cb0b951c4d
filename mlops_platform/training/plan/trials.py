"""The plan's items: one complete ``CreateTrainingJob`` request per trial (all but its name and role)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from mlops_platform.runs.names import run_hash, trial_id
from mlops_platform.training.plan.config import expand, selected_models
from mlops_platform.training.plan.errors import InvalidConfig
from mlops_platform.training.plan.layout import (
    VOLUME_SIZE_GB,
    Layout,
    checked_name,
    training_job_name,
    volume_encrypted,
)
from mlops_platform.training.plan.request import RunRequest
from mlops_platform.training.plan.settings import Settings

MAX_TRIALS = 10_000  # one Distributed Map execution runs at most 10,000 child workflows
# A number as the training image prints it ("{value:.6g}"): 0.981, -3, 1e-05; never nan or inf.
NUMBER_REGEX = r"([-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?)"


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
    selected = selected_models(config, request)
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
    resource_config = volume_encrypted(
        {"InstanceType": training["instance_type"], "InstanceCount": 1, "VolumeSizeInGB": VOLUME_SIZE_GB},
        local_storage=training["local_storage"],
        kms_key_arn=settings.kms_key_arn,
    )
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


def encode_plan(items: list[dict[str, Any]]) -> bytes:
    """Compact, strict JSON: the plan is read by the Map, never by people."""
    return json.dumps(items, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")
