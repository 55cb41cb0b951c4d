"""The run's other SageMaker jobs: prepare (``CreateProcessingJob``) and predict (``CreateTransformJob``).

When ``batch_prediction.dataset`` names a dataset other than the training one, prepare also reads that
dataset's raw prefix (input ``score``) and writes its rows to ``score.csv``, which the transform job scores
(predictions under the scoring dataset's name); otherwise the transform scores ``batch_prediction.split``.

The state machine copies these requests verbatim into its API calls, adding the role.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlops_platform.runs.names import run_hash
from mlops_platform.training.plan.config import config_key
from mlops_platform.training.plan.layout import VOLUME_SIZE_GB, Layout, checked_name, volume_encrypted
from mlops_platform.training.plan.request import RunRequest
from mlops_platform.training.plan.settings import Settings

PREPARE_MAX_RUNTIME_SECONDS = 3600
PROCESSING_ROOT = "/opt/ml/processing"
# prepare's batch input when the tenant names a dataset for scoring (data.prepare's, which needs pyarrow; a test
# keeps the two equal).
SCORING_FILE = "score.csv"


def prepare_request(settings: Settings, config: Mapping[str, Any], request: RunRequest) -> dict[str, Any]:
    """The ``CreateProcessingJob`` request (all but ``RoleArn``) that prepares the run's data."""
    layout = Layout(settings, config, request)
    tenant, dataset, run_id, day = request.tenant, layout.dataset, request.run_id, request.day

    def output(name: str, uri: str) -> dict[str, Any]:
        return {
            "OutputName": name,
            "S3Output": {"S3Uri": uri, "LocalPath": f"{PROCESSING_ROOT}/output/{name}", "S3UploadMode": "EndOfJob"},
        }

    def raw_input(name: str, raw_dataset: str) -> dict[str, Any]:
        # Every object under the prefix is copied to LocalPath before the job starts:
        # https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ProcessingS3Input.html
        return {
            "InputName": name,
            "S3Input": {
                "S3Uri": layout.s3(settings.raw_bucket, f"raw/{tenant}/{raw_dataset}/"),
                "LocalPath": f"{PROCESSING_ROOT}/input/{name}",
                "S3DataType": "S3Prefix",
                "S3InputMode": "File",
                "S3DataDistributionType": "FullyReplicated",
            },
        }

    cluster = volume_encrypted(
        {"InstanceCount": 1, "InstanceType": settings.processing_instance_type, "VolumeSizeInGB": VOLUME_SIZE_GB},
        local_storage=settings.processing_local_storage,
        kms_key_arn=settings.kms_key_arn,
    )
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
            raw_input("raw", dataset),
            # The dataset the tenant names for scoring (new rows, no target): prepare reads input/score.
            *([raw_input("score", layout.batch_dataset)] if layout.scores_other_dataset else []),
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
    # prepare writes the batch input under the training dataset's prefix: score.csv (the rows of the dataset
    # named for scoring) or the split's rows (<split>.csv).
    split = config["batch_prediction"].get("split", "test")
    batch_file = SCORING_FILE if layout.scores_other_dataset else f"{split}.csv"
    batch_input = f"batch-input/{tenant}/{layout.dataset}/{run_id}/{batch_file}"
    name = checked_name(f"{settings.job_prefix}-{run_hash(run_id)}-pred", "transform job name")
    resources = volume_encrypted(
        {"InstanceType": settings.batch_transform_instance_type, "InstanceCount": 1},
        local_storage=settings.batch_transform_local_storage,
        kms_key_arn=settings.kms_key_arn,
    )
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
