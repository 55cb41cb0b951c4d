"""Evaluate and register: pick each model's best trial, then, once its baseline exists, register it.

One function, two entries (the state's ``action``), so that the registry's code stays in one place:

- ``evaluate`` (the default): input ``{"run_id", "tenant", "plan": <the plan λ's output>, "results":
  <the Distributed Map's output>}``. Records every trial, picks each model's best, writes the run's
  feature schema and each model's evaluation, and says how to compute each chosen model's drift
  baseline: one ``CreateProcessingJob`` request (all but ``RoleArn``) per model, which the state
  machine's ``Baselines`` Map runs. It registers nothing.
- ``register``: input ``{"action": "register", "run_id", "tenant", "evaluation": <evaluate's
  output>}``, after every baseline job succeeded. Checks that each baseline object exists
  (``HeadObject``), records its sha256, and creates each model package with the baseline linked
  (``CustomerMetadataProperties`` ``baseline`` and ``baseline_sha256``, and
  ``DriftCheckBaselines.ModelDataQuality.Statistics``). Every baseline is checked before any package
  is created: a missing one (``BaselineMissing``) registers nothing.

A model's baseline is ``baseline.json`` next to its artifact: ``.../output/model.tar.gz`` has its
baseline at ``.../output/baseline.json``. The drift monitor derives it from the model pointer by
that rule, so it is a contract (docs/training-pipeline.md). The baseline job is named after the
trial's training job: ``<prefix>-<h>-<trial>-bl``.

The Map's results: with a ``ResultWriter`` the Map's output is ``{"MapRunArn",
"ResultWriterDetails": {"Bucket", "Key"}}``, the key naming ``manifest.json``:
``{"DestinationBucket", "MapRunArn", "ResultFiles": {"SUCCEEDED": [{"Key", "Size"}], "FAILED": [...],
"PENDING": [...]}}``, each result file a JSON array (or JSON Lines) of ``{"Input", "Output", "Status",
"Error", "Cause", ...}`` with ``Input`` and ``Output`` as JSON strings. moto 5.2.5 writes the manifest
with empty lists and no result files; a Map without a ``ResultWriter`` returns the children's outputs
inline, as a list, which is accepted too (moto tests). A succeeded child's output is ``{"item": <plan
item>, "job": <DescribeTrainingJob output>}`` (the ``.sync`` task's, or the training-job λ's trimmed one
on reuse); a child's input is ``{"item", ...}``. The item keeps attempt 0, so a trial's job name and
attempt are the job's own (``...-a<n>``).

A trial the results leave open (not mentioned, pending, or "succeeded" with only the
``CreateTrainingJob`` response as its ``job``, as when ``.sync`` is removed for moto) is looked up
by its job name with ``DescribeTrainingJob``, following its attempts (``-a0``, ``-a1``, …) while
they failed. So moto runs, whose ResultWriter writes no result files, evaluate like real ones. This
needs ``sagemaker:DescribeTrainingJob`` on the environment's training jobs; without it, such trials
stay without a result (logged), never a crash.

The function reads the config, the plan, the Map's results and the baselines, writes evaluations
under the run, and uses DynamoDB's item API only (Get, Put, UpdateItem; no batch writes).

Every planned trial ends in exactly one state, recorded in the ledger (``RUN#<run_id>`` /
``TRIAL#<trial>``): ``succeeded`` (its job reported a finite objective metric), ``missing-metrics``
(it completed without one, as moto's jobs do), ``failed`` (its child or job failed; the cause is
kept) or ``no-result`` (neither the results nor SageMaker say how it ended). The best trial of
each model (by the objective's direction, ties to the lower trial number) becomes a version in the
package group ``<prefix>-<tenant>-<model>``, approved if its value meets the tenant's threshold and
the environment auto-approves, else pending manual approval.

Retries are safe: trial records, evaluation files and baseline requests are rewritten with the same
content, a package is created with a ``ClientToken`` derived from group and run, and the ledger's
``PACKAGE#<model>`` record (written once, with the baseline's URI and sha256) makes a second
registration of the run reuse the package instead of adding one.

Errors (Step Functions sees the class name): ``InvalidEvaluationRequest``, ``UnknownTenant``,
``InvalidConfig``, ``ResultsUnreadable``, ``InvalidName``, ``NoUsableTrial`` (raised after the trials
are recorded), ``BaselineMissing`` (register: a baseline object is absent or not a baseline).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

SCHEMA_VERSION = 1
TENANT_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,80}")
SAGEMAKER_NAME_PATTERN = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
SAGEMAKER_NAME_MAX = 63
ATTEMPT_SUFFIX = re.compile(r"-a(?P<attempt>\d+)$")
CONFIG_PREFIX = "artifacts/config/pipelines/"
# Precedence when a trial appears more than once (a redriven Map run lists a child again).
STATUS_RANK = {"SUCCEEDED": 3, "FAILED": 2, "TIMED_OUT": 2, "ABORTED": 2, "PENDING": 1, "RUNNING": 1}
SUCCEEDED, MISSING_METRICS, FAILED, NO_RESULT = "succeeded", "missing-metrics", "failed", "no-result"
REASON_MAX = 1000
# CustomerMetadataProperties: values of 1-256 characters from letters, digits, spaces and _.:/=+-@.
METADATA_VALUE_MAX = 256
METADATA_UNSAFE = re.compile(r"[^\w .:/=+\-@]")
CLIENT_TOKEN_LENGTH = 32  # the API allows 36 of [a-zA-Z0-9-]
# The best trial's objective per tenant and model (mlops_constructs/dashboard.py graphs it).
BEST_OBJECTIVE_METRIC = "BestObjective"
LEDGER_WRITERS = 16  # parallel PutItem calls when recording trials
JOB_LOOKUP_WORKERS = 8  # parallel DescribeTrainingJob calls for trials the results leave open
MAX_ATTEMPT_LOOKUPS = 10  # attempts of one trial looked up, at most (a0 … a9)
JOB_NOT_FOUND_CODES = frozenset({"ValidationException", "ResourceNotFound"})
ACCESS_DENIED_CODES = frozenset({"AccessDeniedException", "AccessDenied"})
QUALITY_SECTION = {"binary": "binary_classification_metrics", "regression": "regression_metrics"}
# The baseline job (mlops_training.monitoring.baseline_job), run by the state machine's Baselines Map.
PROCESSING_ROOT = "/opt/ml/processing"
MODEL_ARTIFACT = "model.tar.gz"
BASELINE_FILE = "baseline.json"  # next to the model artifact: a contract with the drift monitor
# The splits a model never trained on (prepare's): the baseline job scores them for the predictions' baseline.
HOLDOUT_SPLITS = ("validation", "test")
BASELINE_SCHEMA_VERSION = 1
BASELINE_VOLUME_SIZE_GB = 30
BASELINE_MAX_RUNTIME_SECONDS = 3600
MAX_BASELINE_BYTES = 10 * 1024 * 1024  # a baseline is tens of KB; anything near this is not one
ACTIONS = ("evaluate", "register")
NOT_RUN = "no result: refused by SageMaker or never started before the Map stopped (more trials failed than tolerated)"
CAUSES_SHOWN = 3
CAUSE_SHOWN_MAX = 200


class EvaluationError(Exception):
    """A run that cannot be evaluated, in one sentence; Step Functions sees the subclass's name."""


class InvalidEvaluationRequest(EvaluationError):
    """The state's input is malformed."""


class UnknownTenant(EvaluationError):
    """No published pipeline config for the tenant."""


class InvalidConfig(EvaluationError):
    """The published config lacks what evaluation reads."""


class ResultsUnreadable(EvaluationError):
    """The plan, the Map's manifest or a result file is missing or not JSON."""


class InvalidName(EvaluationError):
    """The model package group name breaks SageMaker's naming rules."""


class NoUsableTrial(EvaluationError):
    """No trial of any model completed with a usable objective metric."""


class BaselineMissing(EvaluationError):
    """A model's baseline object is absent or not a baseline: nothing of the run is registered."""


@dataclass(frozen=True)
class Settings:
    config_bucket: str
    artifacts_bucket: str
    features_bucket: str
    ledger_table: str
    job_prefix: str
    auto_approve: bool
    serving_image_uri: str
    inference_instance_type: str
    batch_transform_instance_type: str
    kms_key_arn: str
    baseline_image_uri: str
    processing_instance_type: str
    processing_local_storage: bool
    tolerated_failure_percentage: int

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Settings:
        return cls(
            config_bucket=environ["CONFIG_BUCKET"],
            artifacts_bucket=environ["ARTIFACTS_BUCKET"],
            features_bucket=environ["FEATURES_BUCKET"],
            ledger_table=environ["LEDGER_TABLE"],
            job_prefix=environ["JOB_PREFIX"],
            auto_approve=_flag(environ, "AUTO_APPROVE"),
            serving_image_uri=environ["SERVING_IMAGE_URI"],
            inference_instance_type=environ["INFERENCE_INSTANCE_TYPE"],
            batch_transform_instance_type=environ["BATCH_TRANSFORM_INSTANCE_TYPE"],
            kms_key_arn=environ["KMS_KEY_ARN"],
            baseline_image_uri=environ["BASELINE_IMAGE_URI"],
            processing_instance_type=environ["PROCESSING_INSTANCE_TYPE"],
            processing_local_storage=_flag(environ, "PROCESSING_LOCAL_STORAGE"),
            tolerated_failure_percentage=int(environ["TOLERATED_FAILURE_PERCENTAGE"]),
        )


def _flag(environ: Mapping[str, str], name: str) -> bool:
    value = environ[name]
    if value not in ("true", "false"):
        raise ValueError(f"environment variable {name} is {value!r}; allowed: true or false")
    return value == "true"


@dataclass(frozen=True)
class Request:
    run_id: str
    tenant: str
    day: str
    plan_bucket: str
    plan_key: str
    results: Any
    # The Map's error when it stopped (more trials failed than tolerated), and where its results are.
    stopped: dict[str, str | None] | None = None
    results_location: tuple[str, str] | None = None


@dataclass(frozen=True)
class Objective:
    metric: str
    direction: str
    threshold: float

    def better(self, value: float) -> float:
        """A sort key: smaller is better."""
        return -value if self.direction == "maximize" else value

    def meets(self, value: float) -> bool:
        return value >= self.threshold if self.direction == "maximize" else value <= self.threshold


@dataclass
class Outcome:
    """What the Map's results say about one child."""

    status: str
    item: dict[str, Any]
    job: Any = None
    error: str | None = None
    cause: str | None = None


@dataclass
class Trial:
    trial: str
    model: str
    algorithm: str
    job_name: str
    attempt: int
    hyperparameters: dict[str, Any]
    status: str = NO_RESULT
    metrics: dict[str, float] = field(default_factory=dict)
    value: float | None = None
    reason: str | None = None
    model_data: str | None = None
    training_job_arn: str | None = None
    best: bool = False

    def summary(self) -> dict[str, Any]:
        return {
            "trial": self.trial,
            "job_name": self.job_name,
            "attempt": self.attempt,
            "status": self.status,
            "metrics": self.metrics,
            "value": self.value,
            "reason": self.reason,
            "hyperparameters": self.hyperparameters,
            "model_data": self.model_data,
        }


# ---------------------------------------------------------------------------------------------
# The request and the config


def action_of(event: Any) -> str:
    if not isinstance(event, dict):
        raise InvalidEvaluationRequest(f"the input must be a JSON object, not {type(event).__name__}")
    action = event.get("action", "evaluate")
    if action not in ACTIONS:
        raise InvalidEvaluationRequest(f"'action' has value {action!r}; allowed: {', '.join(ACTIONS)}")
    return str(action)


def _identity(event: dict[str, Any]) -> tuple[str, str]:
    run_id, tenant = event.get("run_id"), event.get("tenant")
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.fullmatch(run_id):
        raise InvalidEvaluationRequest(f"run_id {run_id!r} must be 1-80 letters, digits, hyphens or underscores")
    if not isinstance(tenant, str) or not TENANT_PATTERN.fullmatch(tenant):
        raise InvalidEvaluationRequest(f"tenant {tenant!r} must be 1-63 lowercase letters, digits or hyphens")
    return run_id, tenant


def parse_request(event: Any) -> Request:
    if not isinstance(event, dict):
        raise InvalidEvaluationRequest(f"the input must be a JSON object, not {type(event).__name__}")
    run_id, tenant = _identity(event)
    plan = event.get("plan")
    if not isinstance(plan, dict):
        raise InvalidEvaluationRequest("'plan' must be the plan step's output, with 'day' and 'plan': {Bucket, Key}")
    location = plan.get("plan")
    if (
        not isinstance(location, dict)
        or not isinstance(location.get("Bucket"), str)
        or not isinstance(location.get("Key"), str)
        or not isinstance(plan.get("day"), str)
    ):
        raise InvalidEvaluationRequest("'plan' must be the plan step's output, with 'day' and 'plan': {Bucket, Key}")
    if plan.get("run_id") != run_id or plan.get("tenant") != tenant:
        raise InvalidEvaluationRequest(
            f"the plan is for run {plan.get('run_id')!r} of tenant {plan.get('tenant')!r}, "
            f"not run {run_id!r} of tenant {tenant!r}"
        )
    results = event.get("results")
    details = results.get("ResultWriterDetails") if isinstance(results, dict) else None
    if isinstance(results, dict) and details is None and isinstance(results.get("Error"), str):
        # The Map stopped (States.ExceedToleratedFailureThreshold): its results lie under the plan's prefix.
        written = plan.get("results")
        if not (
            isinstance(written, dict)
            and isinstance(written.get("Bucket"), str)
            and isinstance(written.get("Prefix"), str)
        ):
            raise InvalidEvaluationRequest(
                "'plan' must say where the Map writes its results: results: {Bucket, Prefix}"
            )
        return Request(
            run_id,
            tenant,
            plan["day"],
            location["Bucket"],
            location["Key"],
            results,
            stopped={"error": results["Error"], "cause": _text(results.get("Cause"))},
            results_location=(written["Bucket"], written["Prefix"]),
        )
    if not isinstance(results, list) and not (
        isinstance(details, dict) and isinstance(details.get("Bucket"), str) and isinstance(details.get("Key"), str)
    ):
        raise InvalidEvaluationRequest(
            "'results' must be the Map's output: {MapRunArn, ResultWriterDetails: {Bucket, Key}}, a list, "
            "or the Map's error {Error, Cause}"
        )
    return Request(run_id, tenant, plan["day"], location["Bucket"], location["Key"], results)


def read_objective(config: Mapping[str, Any], tenant: str) -> Objective:
    """The objective, after checking the fields evaluation reads (synth validated the rest)."""
    objective, dataset = config.get("objective"), config.get("dataset")
    valid = (
        config.get("schema_version") == SCHEMA_VERSION
        and isinstance(objective, dict)
        and isinstance(objective.get("metric"), str)
        and objective.get("direction") in ("maximize", "minimize")
        and isinstance(objective.get("approval_threshold"), int | float)
        and not isinstance(objective.get("approval_threshold"), bool)
        and isinstance(dataset, dict)
        and all(isinstance(dataset.get(key), str) for key in ("name", "target", "problem_type"))
        and isinstance(dataset.get("features"), dict)
    )
    if not valid:
        raise InvalidConfig(f"the published config of tenant {tenant!r} lacks a schema_version 1 objective or dataset")
    assert isinstance(objective, dict)
    return Objective(objective["metric"], objective["direction"], float(objective["approval_threshold"]))


def group_name(prefix: str, tenant: str, model: str) -> str:
    name = f"{prefix}-{tenant}-{model}"
    if len(name) > SAGEMAKER_NAME_MAX or not SAGEMAKER_NAME_PATTERN.fullmatch(name):
        raise InvalidName(
            f"model package group name {name!r} has {len(name)} characters; SageMaker allows at most "
            f"{SAGEMAKER_NAME_MAX} letters, digits and single hyphens"
        )
    return name


# The fields of each evaluate output's ``selected`` entry that register reads, by type.
SELECTED_TEXT = (
    "model",
    "trial",
    "job_name",
    "algorithm",
    "model_package_group",
    "model_data",
    "training_data",
    "evaluation",
    "baseline",
)


@dataclass(frozen=True)
class Registration:
    """What register reads: evaluate's output, checked."""

    run_id: str
    tenant: str
    trials: dict[str, Any]
    objective: Objective
    feature_schema: dict[str, str]
    selected: list[dict[str, Any]]
    tolerance_exceeded: bool = False


def parse_registration(event: dict[str, Any]) -> Registration:
    run_id, tenant = _identity(event)
    evaluation = event.get("evaluation")
    shape = "'evaluation' must be the evaluate step's output, with objective, feature_schema and selected models"
    if not isinstance(evaluation, dict):
        raise InvalidEvaluationRequest(shape)
    if evaluation.get("run_id") != run_id or evaluation.get("tenant") != tenant:
        raise InvalidEvaluationRequest(
            f"the evaluation is of run {evaluation.get('run_id')!r} of tenant {evaluation.get('tenant')!r}, "
            f"not run {run_id!r} of tenant {tenant!r}"
        )
    objective, schema, selected = (
        evaluation.get("objective"),
        evaluation.get("feature_schema"),
        evaluation.get("selected"),
    )
    if (
        not isinstance(objective, dict)
        or not isinstance(objective.get("metric"), str)
        or objective.get("direction") not in ("maximize", "minimize")
        or metric_value(objective.get("threshold")) is None
        or not isinstance(schema, dict)
        or not all(isinstance(schema.get(key), str) for key in ("uri", "sha256"))
        or not isinstance(selected, list)
        or not selected
        or not isinstance(evaluation.get("trials"), dict)
    ):
        raise InvalidEvaluationRequest(shape)
    for entry in selected:
        if (
            not isinstance(entry, dict)
            or not all(isinstance(entry.get(key), str) for key in SELECTED_TEXT)
            or metric_value(entry.get("value")) is None
            or not isinstance(entry.get("meets_threshold"), bool)
        ):
            raise InvalidEvaluationRequest(
                f"a selected model lacks one of {', '.join(SELECTED_TEXT)}, value, meets_threshold"
            )
        if entry["baseline"] != baseline_uri(entry["model_data"]):
            raise InvalidEvaluationRequest(
                f"model {entry['model']!r}'s baseline {entry['baseline']!r} is not next to its artifact "
                f"{entry['model_data']!r}; the drift monitor would not find it"
            )
    return Registration(
        run_id=run_id,
        tenant=tenant,
        trials=evaluation["trials"],
        objective=Objective(objective["metric"], objective["direction"], float(objective["threshold"])),
        feature_schema={"uri": schema["uri"], "sha256": schema["sha256"]},
        selected=selected,
        tolerance_exceeded=evaluation.get("tolerance_exceeded") is True,
    )


# ---------------------------------------------------------------------------------------------
# Baselines


def baseline_uri(model_data: str) -> str:
    """``.../output/model.tar.gz`` -> ``.../output/baseline.json``: the drift monitor finds it by this rule."""
    folder, _, name = model_data.rpartition("/")
    if not model_data.startswith("s3://") or name != MODEL_ARTIFACT or not folder:
        raise ResultsUnreadable(
            f"the model artifact {model_data!r} is not an s3://.../{MODEL_ARTIFACT}; its baseline has no place"
        )
    return f"{folder}/{BASELINE_FILE}"


def baseline_job_name(training_job_name: str) -> str:
    """``<prefix>-<h>-<trial>-a<n>`` -> ``<prefix>-<h>-<trial>-bl``: no longer than the trial's first job name,
    which the plan checked against SageMaker's limit, so a run that trains can always name its baselines."""
    name = ATTEMPT_SUFFIX.sub("", training_job_name) + "-bl"
    if len(name) > SAGEMAKER_NAME_MAX or not SAGEMAKER_NAME_PATTERN.fullmatch(name):
        raise InvalidName(
            f"baseline job name {name!r} has {len(name)} characters; SageMaker allows at most "
            f"{SAGEMAKER_NAME_MAX} letters, digits and single hyphens"
        )
    return name


def split_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def baseline_job_request(
    settings: Settings,
    *,
    training_job_name: str,
    model_data: str,
    training_data: str,
    holdout_data: Mapping[str, str],
    schema: str,
    baseline: str,
) -> dict[str, Any]:
    """The ``CreateProcessingJob`` request (all but ``RoleArn``) of one model's baseline job.

    ``holdout_data`` (split name -> URI) are rows the model never trained on: the job scores them for
    the predictions' baseline, so live predictions are compared with what unseen rows look like.
    """

    def s3_input(name: str, uri: str, folder: str | None = None) -> dict[str, Any]:
        return {
            "InputName": name,
            "S3Input": {
                "S3Uri": uri,
                "LocalPath": f"{PROCESSING_ROOT}/input/{folder or name}",
                "S3DataType": "S3Prefix",
                "S3InputMode": "File",
                "S3DataDistributionType": "FullyReplicated",
            },
        }

    cluster: dict[str, Any] = {
        "InstanceCount": 1,
        "InstanceType": settings.processing_instance_type,
        "VolumeSizeInGB": BASELINE_VOLUME_SIZE_GB,
    }
    if not settings.processing_local_storage:
        cluster["VolumeKmsKeyId"] = settings.kms_key_arn
    schema_file = schema.rpartition("/")[2]
    return {
        "ProcessingJobName": baseline_job_name(training_job_name),
        "AppSpecification": {
            "ImageUri": settings.baseline_image_uri,
            "ContainerArguments": [
                "baseline",
                "--model",
                f"{PROCESSING_ROOT}/input/model/{MODEL_ARTIFACT}",
                "--training-data",
                f"{PROCESSING_ROOT}/input/training",
                "--holdout-data",
                f"{PROCESSING_ROOT}/input/holdout",
                "--schema",
                f"{PROCESSING_ROOT}/input/schema/{schema_file}",
                "--output",
                f"{PROCESSING_ROOT}/output/baseline",
            ],
        },
        # Exact object keys as prefixes: each folder receives the one object.
        "ProcessingInputs": [
            s3_input("model", model_data),
            s3_input("training", training_data),
            *(s3_input(split, uri, f"holdout/{split}") for split, uri in holdout_data.items()),
            s3_input("schema", schema),
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "baseline",
                    "S3Output": {
                        # The folder of model.tar.gz: the job writes baseline.json alone, so it lands beside it.
                        "S3Uri": baseline.rpartition("/")[0],
                        "LocalPath": f"{PROCESSING_ROOT}/output/baseline",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ],
            "KmsKeyId": settings.kms_key_arn,
        },
        "ProcessingResources": {"ClusterConfig": cluster},
        "StoppingCondition": {"MaxRuntimeInSeconds": BASELINE_MAX_RUNTIME_SECONDS},
    }


# ---------------------------------------------------------------------------------------------
# The Map's results


def _json(value: Any) -> Any:
    """``Input``/``Output`` are JSON strings in result files; tolerate objects (and garbage)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def outcome_of(entry: Any, listed_status: str | None) -> Outcome | None:
    """One result entry as an ``Outcome``; ``None`` when it names no trial."""
    if isinstance(entry, dict) and any(key in entry for key in ("Status", "Input", "Output", "ExecutionArn")):
        # The default NONE transformation: execution metadata around the child's input and output.
        status = str(entry.get("Status") or listed_status or "SUCCEEDED")
        output, child_input = _json(entry.get("Output")), _json(entry.get("Input"))
        error, cause = entry.get("Error"), entry.get("Cause")
    else:
        # COMPACT or FLATTEN, or a Map without a ResultWriter: the child's output itself.
        output, child_input, error, cause = entry, None, None, None
        status = listed_status or "SUCCEEDED"
        if isinstance(entry, dict) and "Error" in entry and "item" not in entry:
            status, error, cause = "FAILED", entry.get("Error"), entry.get("Cause")
    item = output.get("item") if isinstance(output, dict) else None
    if not isinstance(item, dict) and isinstance(child_input, dict):
        item = child_input.get("item") if isinstance(child_input.get("item"), dict) else child_input
    if not isinstance(item, dict) or not isinstance(item.get("trial"), str):
        return None
    job = output.get("job") if isinstance(output, dict) else None
    return Outcome(status=status, item=item, job=job, error=_text(error), cause=_text(cause))


def is_open(outcome: Outcome | None) -> bool:
    """No outcome, a pending or running child, or a success whose ``job`` is only a create response
    (it has no status, so it is not a description)."""
    if outcome is None or STATUS_RANK.get(outcome.status, 0) <= 1:
        return True
    return outcome.status == "SUCCEEDED" and not (isinstance(outcome.job, dict) and "TrainingJobStatus" in outcome.job)


def jsonable(value: Any) -> Any:
    """A describe response as JSON would carry it: times as ISO strings."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return value


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, default=str)


def merge(outcomes: dict[str, Outcome], outcome: Outcome) -> None:
    trial = outcome.item["trial"]
    previous = outcomes.get(trial)
    if previous is None or STATUS_RANK.get(outcome.status, 0) >= STATUS_RANK.get(previous.status, 0):
        outcomes[trial] = outcome


def parse_result_file(text: str) -> list[Any]:
    """A result file: a JSON array (``OutputType: JSON``) or JSON Lines."""
    stripped = text.strip()
    if not stripped:
        return []
    if stripped.startswith("["):
        entries = json.loads(stripped)
        if not isinstance(entries, list):
            raise ValueError("not a JSON array")
        return entries
    return [json.loads(line) for line in stripped.splitlines() if line.strip()]


def failure_reason(error: str | None, cause: str | None) -> str:
    """``Error: cause``, with SageMaker's ``FailureReason`` pulled out of a describe-shaped cause."""
    detail = cause or ""
    parsed = _json(cause)
    if isinstance(parsed, dict):
        detail = str(parsed.get("FailureReason") or parsed.get("errorMessage") or cause)
    text = f"{error or 'failed'}: {detail}" if detail else (error or "failed")
    return " ".join(text.split())[:REASON_MAX]


# ---------------------------------------------------------------------------------------------
# Trials


def planned_trial(item: Mapping[str, Any]) -> Trial:
    return Trial(
        trial=item["trial"],
        model=str(item.get("model")),
        algorithm=str(item.get("algorithm")),
        job_name=str(item.get("job_name")),
        attempt=int(item.get("attempt") or 0),
        hyperparameters=dict(item.get("hyperparameters") or {}),
    )


def metric_value(value: Any) -> float | None:
    """A finite float, or None for NaN, infinity, or anything that is not a number."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def identify(trial: Trial, job_name: str, attempt: Any) -> None:
    """The trial's job name, and its attempt: the name's ``-a<n>``, else the given number."""
    trial.job_name = job_name
    suffix = ATTEMPT_SUFFIX.search(job_name)
    if suffix:
        trial.attempt = int(suffix["attempt"])
    elif isinstance(attempt, int) and not isinstance(attempt, bool):
        trial.attempt = attempt


def assess(
    trial: Trial, outcome: Outcome | None, objective: Objective, models_uri: str, *, stopped: bool = False
) -> Trial:
    """Fill in the trial's state from its outcome (pure: the trial object is updated and returned)."""
    if outcome is None:
        trial.status = NO_RESULT
        trial.reason = NOT_RUN if stopped else "the Map's results do not mention this trial"
        return trial
    item = outcome.item
    identify(trial, str(item.get("job_name") or trial.job_name), item.get("attempt"))
    if outcome.status != "SUCCEEDED":
        trial.status = FAILED if STATUS_RANK.get(outcome.status) == 2 else NO_RESULT
        trial.reason = failure_reason(outcome.error or outcome.status, outcome.cause)
        return trial
    job = outcome.job
    if not isinstance(job, dict):
        trial.status, trial.reason = MISSING_METRICS, "the child's output has no 'job'"
        return trial
    # The job's own name: the item keeps attempt 0 while a retried trial ran as ...-a<n>.
    identify(trial, str(job.get("TrainingJobName") or trial.job_name), None)
    trial.training_job_arn = job.get("TrainingJobArn")
    status = job.get("TrainingJobStatus")
    if status is not None and status != "Completed":
        trial.status = FAILED
        trial.reason = failure_reason(f"training job {status}", job.get("FailureReason"))
        return trial
    artifacts = job.get("ModelArtifacts")
    reported = artifacts.get("S3ModelArtifacts") if isinstance(artifacts, dict) else None
    # SageMaker writes <S3OutputPath>/<job name>/output/model.tar.gz; moto's describe may not say so.
    trial.model_data = reported if isinstance(reported, str) else f"{models_uri}/{trial.job_name}/output/model.tar.gz"
    final = job.get("FinalMetricDataList")
    non_finite = []
    for entry in final if isinstance(final, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("MetricName"), str):
            continue
        value = metric_value(entry.get("Value"))
        if value is None:
            non_finite.append(entry["MetricName"])
        else:
            trial.metrics[entry["MetricName"]] = value
    if objective.metric in trial.metrics:
        trial.status, trial.value = SUCCEEDED, trial.metrics[objective.metric]
    elif objective.metric in non_finite:
        trial.status, trial.reason = MISSING_METRICS, f"the objective metric {objective.metric} is not a finite number"
    elif not isinstance(final, list) or not final:
        trial.status, trial.reason = MISSING_METRICS, "the job reported no metrics (no FinalMetricDataList)"
    else:
        trial.status, trial.reason = MISSING_METRICS, f"FinalMetricDataList has no {objective.metric}"
    return trial


def best_trials(trials: list[Trial], objective: Objective) -> dict[str, Trial]:
    """Each model's best usable trial: by the objective's direction, ties to the lower trial number."""
    best: dict[str, Trial] = {}
    ranked: dict[str, tuple[float, str]] = {}
    for trial in trials:
        if trial.status != SUCCEEDED or trial.value is None:
            continue
        rank = (objective.better(trial.value), trial.trial)
        if trial.model not in ranked or rank < ranked[trial.model]:
            best[trial.model], ranked[trial.model] = trial, rank
    for trial in best.values():
        trial.best = True
    return best


def failure_causes(trials: list[Trial], limit: int = CAUSES_SHOWN) -> str:
    """The most frequent reasons trials failed, ``3 trials: reason; 1 trial: reason``, most frequent first."""
    reasons = Counter(
        (trial.reason or "failed")[:CAUSE_SHOWN_MAX] for trial in trials if trial.status == FAILED
    ).most_common()
    shown = [f"{_trials(count)}: {reason}" for reason, count in reasons[:limit]]
    if len(reasons) > limit:
        shown.append(f"{_trials(sum(count for _, count in reasons[limit:]))}: other causes")
    return "; ".join(shown)


def _trials(count: int) -> str:
    return f"{count} trial" + ("" if count == 1 else "s")


def tolerance_exceeded(tally: dict[str, int], tolerated_percentage: int) -> bool:
    """More trials failed than the environment tolerates (what makes the Map stop, counted here too)."""
    return tally["total"] > 0 and 100 * tally["failed"] > tolerated_percentage * tally["total"]


def counts(trials: list[Trial]) -> dict[str, int]:
    statuses = [trial.status for trial in trials]
    return {
        "total": len(trials),
        "succeeded": statuses.count(SUCCEEDED),
        "failed": statuses.count(FAILED),
        "missing_metrics": statuses.count(MISSING_METRICS),
        "no_result": statuses.count(NO_RESULT),
    }


def metadata_value(value: Any) -> str:
    """A CustomerMetadataProperties value: allowed characters only, 1-256 of them (long ones keep a hash)."""
    text = METADATA_UNSAFE.sub("-", str(value)) or "-"
    if len(text) > METADATA_VALUE_MAX:
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
        text = text[: METADATA_VALUE_MAX - len(digest) - 3] + "..." + digest
    return text


def number_text(value: float) -> str:
    return repr(value)


def encode(document: Any) -> bytes:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=True, allow_nan=False).encode("ascii")


def feature_schema(config: Mapping[str, Any]) -> dict[str, Any]:
    dataset = config["dataset"]
    return {
        "schema_version": SCHEMA_VERSION,
        "tenant": config.get("tenant"),
        "dataset": dataset["name"],
        # In schema order: the batch-prediction CSV has these columns, in this order, without a header.
        "features": [{"name": name, "type": kind} for name, kind in dataset["features"].items()],
        "target": dataset["target"],
        "problem_type": dataset["problem_type"],
    }


def evaluation_document(
    request: Request, config: Mapping[str, Any], objective: Objective, model: str, trials: list[Trial], best: Trial
) -> dict[str, Any]:
    """The model's evaluation: all its trials, the best one, the objective and the threshold.

    Also given to the package as its model-quality statistics; the ``*_metrics`` section follows
    SageMaker's model-quality layout (``{"auc": {"value": ...}}``) so Studio can show it.
    """
    assert best.value is not None
    section = QUALITY_SECTION.get(config["dataset"]["problem_type"], "metrics")
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": request.run_id,
        "tenant": request.tenant,
        "model": model,
        "algorithm": best.algorithm,
        "objective": {"metric": objective.metric, "direction": objective.direction},
        "threshold": objective.threshold,
        "meets_threshold": objective.meets(best.value),
        "best": best.summary(),
        "trials": [trial.summary() for trial in sorted(trials, key=lambda t: t.trial)],
        section: {name.split(":", 1)[-1]: {"value": value} for name, value in sorted(best.metrics.items())},
    }


def dynamodb_value(value: Any) -> Any:
    """Python values as the DynamoDB resource takes them: floats as Decimal, no None inside maps."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {str(key): dynamodb_value(item) for key, item in value.items() if item is not None}
    if isinstance(value, list | tuple):
        return [dynamodb_value(item) for item in value]
    return value


def plain(value: Any) -> Any:
    """A ledger value back as JSON: Decimals as int or float."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


# ---------------------------------------------------------------------------------------------
# Side effects


class Ledger:
    """The run ledger through DynamoDB's item API only: the function is granted Get, Put and UpdateItem."""

    def __init__(self, dynamodb_client: Any, table: str, *, workers: int = LEDGER_WRITERS):
        self.dynamodb = dynamodb_client
        self.table = table
        self.workers = workers
        self.serializer = TypeSerializer()
        self.deserializer = TypeDeserializer()

    def _item(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {name: self.serializer.serialize(value) for name, value in dynamodb_value(values).items()}

    def _plain(self, item: Mapping[str, Any]) -> dict[str, Any]:
        return plain({name: self.deserializer.deserialize(value) for name, value in item.items()})

    def get(self, pk: str, sk: str) -> dict[str, Any] | None:
        item = self.dynamodb.get_item(
            TableName=self.table, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True
        ).get("Item")
        return self._plain(item) if item else None

    def put(self, values: Mapping[str, Any]) -> None:
        self.dynamodb.put_item(TableName=self.table, Item=self._item(values))

    def put_all(self, records: list[dict[str, Any]]) -> None:
        """Many puts in parallel (a 10,000-trial run is 10,000 rows); the client is thread-safe."""
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for _ in pool.map(self.put, records):
                pass

    def put_new(self, values: Mapping[str, Any]) -> dict[str, Any] | None:
        """Put if absent; when present, the record already there (returned with the failed condition)."""
        try:
            self.dynamodb.put_item(
                TableName=self.table,
                Item=self._item(values),
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            existing = error.response.get("Item")
            return self._plain(existing) if existing else self.get(values["pk"], values["sk"])
        return None

    def update(self, pk: str, sk: str, values: Mapping[str, Any]) -> None:
        names = {f"#a{index}": name for index, name in enumerate(values)}
        self.dynamodb.update_item(
            TableName=self.table,
            Key={"pk": {"S": pk}, "sk": {"S": sk}},
            UpdateExpression="SET " + ", ".join(f"{alias} = :{alias[1:]}" for alias in names),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={
                f":{alias[1:]}": self.serializer.serialize(dynamodb_value(values[name]))
                for alias, name in names.items()
            },
        )


class Evaluator:
    def __init__(self, s3_client: Any, sagemaker_client: Any, ledger: Ledger, settings: Settings):
        self.s3 = s3_client
        self.sagemaker = sagemaker_client
        self.ledger = ledger
        self.settings = settings
        self._lookups_denied = False

    def __call__(self, event: Any) -> dict[str, Any]:
        if action_of(event) == "register":
            return self.register_run(parse_registration(event))
        return self.evaluate(parse_request(event))

    def evaluate(self, request: Request) -> dict[str, Any]:
        """Record the trials, choose each model's best, and say how to compute each one's baseline."""
        config = self.read_config(request.tenant)
        objective = read_objective(config, request.tenant)
        run_prefix = f"artifacts/runs/{request.tenant}/{request.run_id}/"
        models_uri = f"s3://{self.settings.artifacts_bucket}/{run_prefix}models"

        trials = {item["trial"]: planned_trial(item) for item in self.read_plan(request)}
        outcomes = self.read_outcomes(self.results_of(request))
        for trial_id, outcome in outcomes.items():
            if trial_id not in trials:
                logger.warning("a result for a trial the plan does not have", extra={"trial": trial_id})
                trials[trial_id] = planned_trial(outcome.item)
        outcomes.update(self.look_up_open_trials(trials, outcomes))
        stopped = request.stopped is not None
        ordered = [
            assess(trials[key], outcomes.get(key), objective, models_uri, stopped=stopped) for key in sorted(trials)
        ]
        best = best_trials(ordered, objective)
        self.record_trials(request, objective, ordered)
        tally = counts(ordered)
        metrics.add_metric("TrialsSucceeded", MetricUnit.Count, tally["succeeded"])
        metrics.add_metric("TrialsFailed", MetricUnit.Count, tally["failed"])
        metrics.add_metric("TrialsMissingMetrics", MetricUnit.Count, tally["missing_metrics"])
        metrics.add_metric("TrialsWithoutResult", MetricUnit.Count, tally["no_result"])
        tolerated = self.settings.tolerated_failure_percentage
        # The Map stops at the tolerance; results read inline (or a Map that tolerated more) are counted here.
        partial = stopped or tolerance_exceeded(tally, tolerated)
        causes = failure_causes(ordered)
        if stopped:
            failures = (
                f"more than {tolerated}% of the trials failed and the Map stopped: "
                f"{tally['failed']} of {tally['total']} failed"
                + (f" ({causes})" if causes else "")
                + f", {tally['no_result']} without a result (refused by SageMaker or never started)"
            )
        else:
            failures = f"{tally['failed']} of {tally['total']} trials failed (the run tolerates {tolerated}%)" + (
                f": {causes}" if causes else ""
            )
        if not best:
            reason = (
                f"run {request.run_id!r} has no trial with a finite {objective.metric}: {failures}; "
                f"{tally['missing_metrics']} without metrics, {tally['no_result']} without a result"
            )
            self.update_run(
                request.run_id,
                {"status": "no-usable-trial", "evaluated_at": _now(), "trials": tally, "reason": reason},
            )
            raise NoUsableTrial(reason)
        if partial:
            # Enough to choose: every model with a usable trial is chosen, and a person approves what it gives.
            logger.warning("more trials failed than tolerated", extra={"run_id": request.run_id, "failures": failures})
        for model, trial in sorted(best.items()):
            publish_best_objective(request.tenant, model, objective.metric, trial.value)

        schema_key = run_prefix + "evaluation/feature-schema.json"
        schema_body = encode(feature_schema(config))
        self.put(schema_key, schema_body)
        schema = {"uri": f"s3://{self.settings.artifacts_bucket}/{schema_key}", "sha256": _sha256(schema_body)}

        selected = [
            self.select(request, config, objective, model, [t for t in ordered if t.model == model], trial, schema)
            for model, trial in best.items()
        ]
        chosen = [
            {key: entry[key] for key in ("model", "trial", "job_name", "value")} | {"metric": objective.metric}
            for entry in selected
        ]
        without = sorted({trial.model for trial in ordered} - set(best))
        run_values: dict[str, Any] = {"status": "evaluated", "evaluated_at": _now(), "trials": tally, "best": chosen}
        if partial:
            run_values |= {"tolerance_exceeded": True, "reason": failures, "models_without_usable_trial": without}
        self.update_run(request.run_id, run_values)
        return {
            "run_id": request.run_id,
            "tenant": request.tenant,
            "trials": tally,
            # More trials failed than tolerated: packages of this run wait for a person, whatever their value.
            "tolerance_exceeded": partial,
            "failures": failures if partial else None,
            "models_without_usable_trial": without,
            "objective": {
                "metric": objective.metric,
                "direction": objective.direction,
                "threshold": objective.threshold,
            },
            "feature_schema": schema,
            "selected": selected,
        }

    def select(
        self,
        request: Request,
        config: Mapping[str, Any],
        objective: Objective,
        model: str,
        trials: list[Trial],
        best: Trial,
        schema: dict[str, str],
    ) -> dict[str, Any]:
        """The model's chosen trial: its evaluation written, its package group named, its baseline job described."""
        assert best.value is not None
        assert best.model_data is not None
        group = group_name(self.settings.job_prefix, request.tenant, model)  # a bad name fails before any job runs
        evaluation_key = f"artifacts/runs/{request.tenant}/{request.run_id}/evaluation/{model}.json"
        self.put(evaluation_key, encode(evaluation_document(request, config, objective, model, trials, best)))
        dataset = config["dataset"]["name"]
        splits = f"s3://{self.settings.features_bucket}/features/{request.tenant}/{dataset}/dt={request.day}"
        training_data = f"{splits}/{request.run_id}-train.parquet"
        # prepare writes every split file, the test split's possibly empty; validation is never empty.
        holdout_data = {split: f"{splits}/{request.run_id}-{split}.parquet" for split in HOLDOUT_SPLITS}
        baseline = baseline_uri(best.model_data)
        return {
            "model": model,
            "trial": best.trial,
            "job_name": best.job_name,
            "algorithm": best.algorithm,
            "value": best.value,
            "meets_threshold": objective.meets(best.value),
            "model_package_group": group,
            "model_data": best.model_data,
            "training_data": training_data,
            "evaluation": f"s3://{self.settings.artifacts_bucket}/{evaluation_key}",
            "baseline": baseline,
            "baseline_job": baseline_job_request(
                self.settings,
                training_job_name=best.job_name,
                model_data=best.model_data,
                training_data=training_data,
                holdout_data=holdout_data,
                schema=schema["uri"],
                baseline=baseline,
            ),
        }

    def register_run(self, registration: Registration) -> dict[str, Any]:
        """Each selected model's package, its baseline linked; every baseline is checked before any is created."""
        existing = {
            entry["model"]: self.ledger.get(f"RUN#{registration.run_id}", f"PACKAGE#{entry['model']}")
            for entry in registration.selected
        }
        baselines = {
            entry["model"]: self.check_baseline(entry["model"], entry["baseline"])
            for entry in registration.selected
            if not existing[entry["model"]]
        }
        registered = []
        for entry in registration.selected:
            record = existing[entry["model"]]
            if record:
                logger.info("reusing the run's model package", extra={"model": entry["model"]})
                registered.append(self.entry_from_record(record))
            else:
                registered.append(self.register(registration, entry, baselines[entry["model"]]))
        objective = registration.objective
        approved = [entry for entry in registered if entry["approval_status"] == "Approved"]
        approved.sort(key=lambda entry: (objective.better(entry["value"]), entry["trial"]))
        predict = (
            {key: approved[0][key] for key in ("model", "trial", "model_package_arn", "model_data")}
            if approved
            else self.previously_approved(registration.tenant, sorted(e["model"] for e in registration.selected))
        )
        best_list = [{key: value for key, value in entry.items() if key != "model_data"} for entry in registered]
        self.update_run(registration.run_id, {"registered_at": _now(), "best": best_list})
        metrics.add_metric("ModelPackagesApproved", MetricUnit.Count, len(approved))
        return {
            "run_id": registration.run_id,
            "tenant": registration.tenant,
            "trials": registration.trials,
            "best": best_list,
            "predict": predict,
        }

    def check_baseline(self, model: str, uri: str) -> dict[str, str]:
        """The baseline object exists (HeadObject) and is a baseline; its sha256."""
        bucket, key = split_uri(uri)
        try:
            head = self.s3.head_object(Bucket=bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise BaselineMissing(
                    f"the baseline of model {model!r} does not exist at {uri}; its baseline job must write it "
                    "before the model is registered"
                ) from None
            raise
        if head["ContentLength"] > MAX_BASELINE_BYTES:
            raise BaselineMissing(f"the baseline of model {model!r} at {uri} is {head['ContentLength']} bytes; not one")
        # IfMatch: the bytes hashed are the object just checked, not one written since.
        body = self.s3.get_object(Bucket=bucket, Key=key, IfMatch=head["ETag"])["Body"].read()
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        if not isinstance(document, dict) or document.get("schema_version") != BASELINE_SCHEMA_VERSION:
            raise BaselineMissing(
                f"the baseline of model {model!r} at {uri} is not a schema_version {BASELINE_SCHEMA_VERSION} baseline"
            )
        return {"uri": uri, "sha256": _sha256(body)}

    def previously_approved(self, tenant: str, models: list[str]) -> dict[str, Any] | None:
        """The newest package a person (or an earlier run) approved in the tenant's groups, if any.

        Where nothing of this run is approved (prod: a person approves later), batch predictions
        still run with the model the tenant already trusts.
        """
        newest: tuple[Any, str, dict[str, Any]] | None = None
        for model in models:
            try:
                listed = self.sagemaker.list_model_packages(
                    ModelPackageGroupName=group_name(self.settings.job_prefix, tenant, model),
                    ModelApprovalStatus="Approved",
                    SortBy="CreationTime",
                    SortOrder="Descending",
                    MaxResults=1,
                )["ModelPackageSummaryList"]
            except ClientError as error:
                logger.warning("could not list approved packages", extra={"model": model, "error": str(error)})
                continue
            if listed and (newest is None or listed[0]["CreationTime"] > newest[0]):
                newest = (listed[0]["CreationTime"], model, listed[0])
        if newest is None:
            return None
        _, model, package = newest
        return {"model": model, "trial": None, "model_package_arn": package["ModelPackageArn"], "model_data": None}

    # -- reading

    def read_config(self, tenant: str) -> dict[str, Any]:
        key = f"{CONFIG_PREFIX}{tenant}.json"
        try:
            body = self.s3.get_object(Bucket=self.settings.config_bucket, Key=key)["Body"].read()
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise UnknownTenant(
                    f"tenant {tenant!r} has no published pipeline config at s3://{self.settings.config_bucket}/{key}"
                ) from None
            raise
        try:
            config = json.loads(body)
        except ValueError:
            raise InvalidConfig(f"the published config of tenant {tenant!r} is not JSON") from None
        if not isinstance(config, dict):
            raise InvalidConfig(f"the published config of tenant {tenant!r} is not a JSON object")
        return config

    def _read(self, bucket: str, key: str, what: str) -> str:
        try:
            return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise ResultsUnreadable(f"{what} s3://{bucket}/{key} does not exist") from None
            raise

    def read_plan(self, request: Request) -> list[dict[str, Any]]:
        text = self._read(request.plan_bucket, request.plan_key, "the plan")
        try:
            items = json.loads(text)
        except ValueError:
            raise ResultsUnreadable(f"the plan s3://{request.plan_bucket}/{request.plan_key} is not JSON") from None
        if not isinstance(items, list) or not all(
            isinstance(item, dict) and isinstance(item.get("trial"), str) for item in items
        ):
            raise ResultsUnreadable(f"the plan s3://{request.plan_bucket}/{request.plan_key} is not a list of items")
        return items

    def results_of(self, request: Request) -> Any:
        """The Map's results; when it stopped, the newest manifest its ResultWriter left under the run's prefix."""
        if request.results_location is None:
            return request.results
        bucket, prefix = request.results_location
        listed = self.s3.list_objects_v2(Bucket=bucket, Prefix=prefix.rstrip("/") + "/")
        manifests = [o for o in listed.get("Contents", []) if o["Key"].endswith("/manifest.json")]
        if not manifests:
            logger.warning("the stopped Map left no manifest; trials are looked up", extra={"prefix": prefix})
            return []
        newest = max(manifests, key=lambda listed_object: listed_object["LastModified"])
        return {"ResultWriterDetails": {"Bucket": bucket, "Key": newest["Key"]}}

    def read_outcomes(self, results: Any) -> dict[str, Outcome]:
        outcomes: dict[str, Outcome] = {}
        unattributed = 0
        for listed_status, entry in self.result_entries(results):
            outcome = outcome_of(entry, listed_status)
            if outcome is None:
                unattributed += 1
            else:
                merge(outcomes, outcome)
        if unattributed:
            logger.warning("result entries that name no trial", extra={"count": unattributed})
        return outcomes

    def result_entries(self, results: Any) -> Iterator[tuple[str | None, Any]]:
        if isinstance(results, list):
            for entry in results:
                yield None, entry
            return
        bucket, key = results["ResultWriterDetails"]["Bucket"], results["ResultWriterDetails"]["Key"]
        try:
            manifest = json.loads(self._read(bucket, key, "the Map's manifest"))
            files = manifest["ResultFiles"]
            listed = [(status, entry["Key"]) for status, entries in files.items() for entry in entries or []]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ResultsUnreadable(f"the Map's manifest s3://{bucket}/{key} has no ResultFiles") from None
        if not listed:
            logger.warning("the Map's manifest lists no result files", extra={"key": key})
        for status, file_key in listed:
            # Keys are full object keys; a bare file name is taken as relative to the manifest.
            full_key = file_key if "/" in file_key else key.rsplit("/", 1)[0] + "/" + file_key
            try:
                entries = parse_result_file(self._read(bucket, full_key, "the result file"))
            except ValueError:
                raise ResultsUnreadable(f"the result file s3://{bucket}/{full_key} is not JSON") from None
            for entry in entries:
                yield status, entry

    def look_up_open_trials(self, trials: dict[str, Trial], outcomes: dict[str, Outcome]) -> dict[str, Outcome]:
        """Outcomes from SageMaker itself for trials whose results say nothing about their job."""
        open_trials = [
            (trial, outcomes.get(key)) for key, trial in sorted(trials.items()) if is_open(outcomes.get(key))
        ]
        if not open_trials:
            return {}
        logger.info("looking up trials the results leave open", extra={"count": len(open_trials)})
        found: dict[str, Outcome] = {}
        self._lookups_denied = False
        with ThreadPoolExecutor(max_workers=JOB_LOOKUP_WORKERS) as pool:
            for trial, outcome in zip(
                (trial for trial, _ in open_trials),
                pool.map(lambda pair: self.look_up(*pair), open_trials),
                strict=True,
            ):
                if outcome is not None:
                    found[trial.trial] = outcome
        return found

    def look_up(self, trial: Trial, outcome: Outcome | None) -> Outcome | None:
        """The trial's latest attempt as SageMaker describes it; None when no attempt exists (or may be read)."""
        item = outcome.item if outcome is not None else {"trial": trial.trial, "job_name": trial.job_name}
        name = trial.job_name if outcome is None else str(item.get("job_name") or trial.job_name)
        latest = None
        for _ in range(MAX_ATTEMPT_LOOKUPS):
            job = self.describe_job(name)
            if job is None:
                break
            latest = job
            suffix = ATTEMPT_SUFFIX.search(name)
            if job.get("TrainingJobStatus") not in ("Failed", "Stopped") or suffix is None:
                break
            name = name[: suffix.start()] + f"-a{int(suffix['attempt']) + 1}"
        if latest is None:
            return None
        status = latest.get("TrainingJobStatus")
        described = jsonable(latest)
        if status == "Completed":
            return Outcome(status="SUCCEEDED", item=item, job=described)
        if status in ("Failed", "Stopped"):
            return Outcome(
                status="FAILED",
                item={**item, "job_name": latest.get("TrainingJobName", name)},
                job=described,
                error=f"training job {status}",
                cause=latest.get("FailureReason"),
            )
        return Outcome(status="RUNNING", item=item, job=described, error=f"training job {status}")

    def describe_job(self, name: str) -> dict[str, Any] | None:
        if self._lookups_denied:
            return None
        try:
            job: dict[str, Any] = self.sagemaker.describe_training_job(TrainingJobName=name)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code in JOB_NOT_FOUND_CODES:
                return None
            if code in ACCESS_DENIED_CODES:
                self._lookups_denied = True
                logger.warning("may not describe training jobs; open trials stay without a result")
                return None
            raise
        return job

    # -- writing

    def put(self, key: str, body: bytes) -> None:
        self.s3.put_object(
            Bucket=self.settings.artifacts_bucket,
            Key=key,
            Body=body,
            ContentType="application/json",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=self.settings.kms_key_arn,
        )

    def record_trials(self, request: Request, objective: Objective, trials: list[Trial]) -> None:
        """One ledger row per trial; a retry rewrites the same rows."""
        self.ledger.put_all(
            [
                {
                    "pk": f"RUN#{request.run_id}",
                    "sk": f"TRIAL#{trial.trial}",
                    "kind": "trial",
                    "run_id": request.run_id,
                    "tenant": request.tenant,
                    "model": trial.model,
                    "algorithm": trial.algorithm,
                    "trial": trial.trial,
                    "attempt": trial.attempt,
                    "job_name": trial.job_name,
                    "status": trial.status,
                    "metrics": trial.metrics,
                    "objective_metric": objective.metric,
                    "objective_value": trial.value,
                    "reason": trial.reason,
                    "hyperparameters": trial.hyperparameters,
                    "training_job_arn": trial.training_job_arn,
                    "model_data": trial.model_data,
                    "best": trial.best,
                }
                for trial in trials
            ]
        )

    def update_run(self, run_id: str, values: dict[str, Any]) -> None:
        self.ledger.update(f"RUN#{run_id}", "RUN", values)

    def ensure_group(self, name: str, tenant: str, model: str) -> None:
        """Create the package group if absent; a concurrent creator's group is as good as ours."""
        try:
            self.sagemaker.describe_model_package_group(ModelPackageGroupName=name)
            return
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in ("ValidationException", "ResourceNotFound"):
                raise
        try:
            self.sagemaker.create_model_package_group(
                ModelPackageGroupName=name,
                ModelPackageGroupDescription=f"Model {model} of tenant {tenant}",
            )
            logger.info("created model package group", extra={"group": name})
        except ClientError as create_error:
            try:
                self.sagemaker.describe_model_package_group(ModelPackageGroupName=name)
            except ClientError:
                raise create_error from None
            logger.info("model package group created concurrently", extra={"group": name})

    def register(self, registration: Registration, entry: dict[str, Any], baseline: dict[str, str]) -> dict[str, Any]:
        """A new package for the selected model, with its evaluation and its baseline."""
        model, group, run_id = entry["model"], entry["model_package_group"], registration.run_id
        objective = registration.objective
        self.ensure_group(group, registration.tenant, model)
        # A run that lost more trials than it tolerates chose among the rest: a person looks before it serves.
        automatic = self.settings.auto_approve and entry["meets_threshold"] and not registration.tolerance_exceeded
        approval = "Approved" if automatic else "PendingManualApproval"
        value = float(entry["value"])
        response = self.sagemaker.create_model_package(
            ModelPackageGroupName=group,
            ModelPackageDescription=(
                f"{registration.tenant}/{model}: trial {entry['trial']} of run {run_id}, "
                f"{objective.metric}={number_text(value)}"
            ),
            InferenceSpecification={
                "Containers": [{"Image": self.settings.serving_image_uri, "ModelDataUrl": entry["model_data"]}],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
                "SupportedRealtimeInferenceInstanceTypes": [self.settings.inference_instance_type],
                "SupportedTransformInstanceTypes": [self.settings.batch_transform_instance_type],
            },
            ModelMetrics={
                "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": entry["evaluation"]}}
            },
            # What the model's inputs looked like in training: the drift monitor compares traffic with it.
            DriftCheckBaselines={
                "ModelDataQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": baseline["uri"]}}
            },
            CustomerMetadataProperties={
                name: metadata_value(value)
                for name, value in {
                    "run_id": run_id,
                    "tenant": registration.tenant,
                    "model": model,
                    "algorithm": entry["algorithm"],  # scripts/promote.py checks it against the variant's flavour
                    "trial": entry["trial"],
                    "training_job_name": entry["job_name"],
                    "objective_metric": objective.metric,
                    "objective_value": number_text(value),
                    "training_data": entry["training_data"],
                    "feature_schema": registration.feature_schema["uri"],
                    "feature_schema_sha256": registration.feature_schema["sha256"],
                    "baseline": baseline["uri"],
                    "baseline_sha256": baseline["sha256"],
                }.items()
            },
            ModelApprovalStatus=approval,
            ClientToken=client_token(group, run_id),
        )
        created_at = _now()
        record = {
            "pk": f"RUN#{run_id}",
            "sk": f"PACKAGE#{model}",
            "kind": "package",
            "run_id": run_id,
            "tenant": registration.tenant,
            "model": model,
            "trial": entry["trial"],
            "job_name": entry["job_name"],
            "model_package_group": group,
            "model_package_arn": response["ModelPackageArn"],
            "approval_status": approval,
            "metric": objective.metric,
            "value": value,
            "model_data": entry["model_data"],
            "evaluation": entry["evaluation"],
            "baseline": baseline["uri"],
            "baseline_sha256": baseline["sha256"],
            "created_at": created_at,
            "gsi1pk": f"TENANT#{registration.tenant}",
            "gsi1sk": f"PACKAGE#{created_at}#{run_id}",
        }
        winner = self.ledger.put_new(record)
        if winner is not None:
            logger.info("another registration recorded the package first", extra={"model": model})
            return self.entry_from_record(winner)
        metrics.add_metric("ModelPackagesCreated", MetricUnit.Count, 1)
        return self.entry_from_record(record)

    def entry_from_record(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The output's ``best`` entry for a package record, with the package's approval status now."""
        status = record["approval_status"]
        try:
            status = self.sagemaker.describe_model_package(ModelPackageName=record["model_package_arn"])[
                "ModelApprovalStatus"
            ]
        except (ClientError, KeyError):
            logger.warning("cannot read the package's approval status", extra={"arn": record["model_package_arn"]})
        return {
            "model": record["model"],
            "trial": record["trial"],
            "job_name": record["job_name"],
            "metric": record["metric"],
            "value": record["value"],
            "model_package_arn": record["model_package_arn"],
            "approval_status": status,
            "model_data": record["model_data"],
            "baseline": record.get("baseline"),
        }


def client_token(group: str, run_id: str) -> str:
    return hashlib.sha256(f"{group}/{run_id}".encode()).hexdigest()[:CLIENT_TOKEN_LENGTH]


def _sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def publish_best_objective(tenant: str, model: str, objective_metric: str, value: float | None) -> None:
    """``BestObjective`` of one model in this run, by Tenant, Model and Metric: the dashboard's line per tenant."""
    if value is None:
        return
    with single_metric(name=BEST_OBJECTIVE_METRIC, unit=MetricUnit.NoUnit, value=value) as emitted:
        emitted.add_dimension(name="Tenant", value=tenant)
        emitted.add_dimension(name="Model", value=model)
        emitted.add_dimension(name="Metric", value=objective_metric)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


logger = Logger()
metrics = Metrics()
_settings = Settings.from_environment(os.environ)
evaluator = Evaluator(
    boto3.client("s3"),
    boto3.client("sagemaker"),
    Ledger(boto3.client("dynamodb"), _settings.ledger_table),
    _settings,
)


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = evaluator(event)
    if "selected" in result:
        logger.info(
            "evaluated",
            extra={
                "run_id": result["run_id"],
                "trials": result["trials"],
                "selected": [e["model"] for e in result["selected"]],
            },
        )
    else:
        logger.info("registered", extra={"run_id": result["run_id"], "best": result["best"]})
    return result
