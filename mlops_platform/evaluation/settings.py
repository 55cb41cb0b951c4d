"""The evaluate function's settings, read once per container from its environment (mlops_constructs sets them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    """The function's environment, read once by ``mlops_platform.environment.read_settings``: each field from the
    variable of its name in capitals."""

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
