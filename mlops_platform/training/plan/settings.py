"""The plan function's environment, read once per container (mlops_constructs/training_pipeline.py sets it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


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
