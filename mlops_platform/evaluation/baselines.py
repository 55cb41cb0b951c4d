"""Each chosen model's drift baseline: where it lies, the job that computes it, and the check that it exists.

A model's baseline is ``baseline.json`` next to its artifact: ``.../output/model.tar.gz`` has its baseline at
``.../output/baseline.json``. The drift monitor derives it from the model pointer by that rule, so it is a
contract (docs/training-pipeline.md). The baseline job (``mlops_platform.monitoring.baseline_job``) is one
``CreateProcessingJob`` request (all but ``RoleArn``) per model, which the state machine's ``Baselines`` Map
runs, named after the trial's training job (``names.baseline_job_name``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from mlops_platform.aws import error_code
from mlops_platform.evaluation.documents import sha256
from mlops_platform.evaluation.errors import BaselineMissing, ResultsUnreadable
from mlops_platform.evaluation.names import baseline_job_name
from mlops_platform.evaluation.settings import Settings
from mlops_platform.training.plan.layout import volume_encrypted

PROCESSING_ROOT = "/opt/ml/processing"
MODEL_ARTIFACT = "model.tar.gz"
BASELINE_FILE = "baseline.json"  # next to the model artifact: a contract with the drift monitor
# The splits a model never trained on (prepare's): the baseline job scores them for the predictions' baseline.
HOLDOUT_SPLITS = ("validation", "test")
BASELINE_SCHEMA_VERSION = 1
BASELINE_VOLUME_SIZE_GB = 30
BASELINE_MAX_RUNTIME_SECONDS = 3600
MAX_BASELINE_BYTES = 10 * 1024 * 1024  # a baseline is tens of KB; anything near this is not one


def baseline_uri(model_data: str) -> str:
    """``.../output/model.tar.gz`` -> ``.../output/baseline.json``: the drift monitor finds it by this rule."""
    folder, _, name = model_data.rpartition("/")
    if not model_data.startswith("s3://") or name != MODEL_ARTIFACT or not folder:
        raise ResultsUnreadable(
            f"the model artifact {model_data!r} is not an s3://.../{MODEL_ARTIFACT}; its baseline has no place"
        )
    return f"{folder}/{BASELINE_FILE}"


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

    cluster = volume_encrypted(
        {
            "InstanceCount": 1,
            "InstanceType": settings.processing_instance_type,
            "VolumeSizeInGB": BASELINE_VOLUME_SIZE_GB,
        },
        local_storage=settings.processing_local_storage,
        kms_key_arn=settings.kms_key_arn,
    )
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


def check_baseline(s3: Any, model: str, uri: str) -> dict[str, str]:
    """The baseline object exists (HeadObject) and is a baseline; its sha256."""
    bucket, key = split_uri(uri)
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error_code(error) in ("404", "NoSuchKey", "NotFound"):
            raise BaselineMissing(
                f"the baseline of model {model!r} does not exist at {uri}; its baseline job must write it "
                "before the model is registered"
            ) from None
        raise
    if head["ContentLength"] > MAX_BASELINE_BYTES:
        raise BaselineMissing(f"the baseline of model {model!r} at {uri} is {head['ContentLength']} bytes; not one")
    # IfMatch: the bytes hashed are the object just checked, not one written since.
    body = s3.get_object(Bucket=bucket, Key=key, IfMatch=head["ETag"])["Body"].read()
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if not isinstance(document, dict) or document.get("schema_version") != BASELINE_SCHEMA_VERSION:
        raise BaselineMissing(
            f"the baseline of model {model!r} at {uri} is not a schema_version {BASELINE_SCHEMA_VERSION} baseline"
        )
    return {"uri": uri, "sha256": sha256(body)}
