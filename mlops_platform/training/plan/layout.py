"""Where a run's objects live (docs/training-pipeline.md, "Buckets and keys") and what its jobs are named."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlops_platform.runs.names import SAGEMAKER_NAME_MAX, is_sagemaker_name, run_hash
from mlops_platform.training.plan.errors import InvalidName
from mlops_platform.training.plan.request import RunRequest
from mlops_platform.training.plan.settings import Settings

VOLUME_SIZE_GB = 30


def checked_name(name: str, what: str) -> str:
    if not is_sagemaker_name(name):
        raise InvalidName(
            f"{what} {name!r} has {len(name)} characters; SageMaker allows at most {SAGEMAKER_NAME_MAX} "
            "letters, digits and single hyphens (shorten JOB_PREFIX, the tenant or the model name)"
        )
    return name


def volume_encrypted(resources: dict[str, Any], *, local_storage: bool, kms_key_arn: str) -> dict[str, Any]:
    """A job's instance resources with their volume encrypted by the key, unless the instance type has local NVMe
    storage: those reject a volume key (their disks are hardware-encrypted)."""
    return resources if local_storage else {**resources, "VolumeKmsKeyId": kms_key_arn}


def training_job_name(prefix: str, run_id: str, trial: str, attempt: int) -> str:
    """``<prefix>-<h>-<trial>-a<attempt>``: unique per run, trial and attempt, at most 63 characters."""
    return checked_name(f"{prefix}-{run_hash(run_id)}-{trial}-a{attempt}", "training job name")


class Layout:
    """Where a run's objects live (docs/training-pipeline.md, "Buckets and keys")."""

    def __init__(self, settings: Settings, config: Mapping[str, Any], request: RunRequest):
        self.settings = settings
        self.tenant = request.tenant
        self.run_id = request.run_id
        self.day = request.day
        self.dataset = config["dataset"]["name"]
        self.batch_dataset = config["batch_prediction"].get("dataset") or self.dataset
        # A dataset named for scoring (new rows, without the target), not a split of the training data.
        self.scores_other_dataset = self.batch_dataset != self.dataset
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
