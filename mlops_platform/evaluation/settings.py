"""The evaluate function's settings, read once per container from its environment (mlops_constructs sets them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


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
