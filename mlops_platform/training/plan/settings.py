"""The plan function's environment, read once per container (mlops_constructs/training_functions.py sets it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mlops_platform.environment import read_settings


@dataclass(frozen=True)
class Settings:
    """The function's environment, read once: each field from the variable of its name in capitals."""

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
        return read_settings(cls, environ, names={"region": "AWS_REGION"}, defaults={"gpu_training_image_uri": ""})
