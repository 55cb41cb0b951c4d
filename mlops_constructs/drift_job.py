"""What a drift monitoring job of one endpoint is given: its name, its arguments, its settings document.

Contracts with the job (mlops_platform/monitoring/job.py), the dashboard and the retrain trigger.
SageMaker caps each job argument at 256 characters, so the settings (the thresholds, however many
features they name) are one JSON document per environment, an asset of the stack, passed by URI.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets

from config.monitoring import Monitoring
from config.naming import Names
from config.serving import EndpointConfig
from mlops_constructs.ingestion import RAW_PREFIX
from mlops_constructs.model_pointers import pointer_name

DRIFT_DETECTED = "DriftDetected"
SUMMARY_DETAIL_TYPE = "Drift Summary"
MONITORING_PREFIX = "artifacts/monitoring/"
BASELINE_FILE = "baseline.json"

SETTINGS_FILE = "settings.json"
SAGEMAKER_NAME_MAX = 63
# CreateProcessingJob's AppSpecification.ContainerArguments: at most 100 items of at most 256 characters
# (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_AppSpecification.html).
MAX_ARGUMENTS = 100
MAX_ARGUMENT_LENGTH = 256
# A token in an argument is a bucket name (at most 63 characters) or the event's time (20): count it as 63.
TOKEN_ROOM = 63
STRING_TOKEN = re.compile(r"\$\{Token\[[^\]]+\]\}")
# ``-YYYYMMDDHHMM``, the event time the state machine appends to an endpoint's job-name stem.
TIME_SUFFIX_LENGTH = 13


def bounded_name(stem: str, key: str, room: int = SAGEMAKER_NAME_MAX) -> str:
    """``<stem>-<key>`` when it fits in ``room`` characters, else ``<stem>-<8 hex digits of sha256(key)>``."""
    name = f"{stem}-{key}"
    return name if len(name) <= room else f"{stem}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def job_stem(names: Names, key: str) -> str:
    """``<project>-<env>-drift-<key>`` (hashed when long): the job name without its ``-YYYYMMDDHHMM``."""
    return bounded_name(names.resource("drift"), key, SAGEMAKER_NAME_MAX - TIME_SUFFIX_LENGTH)


def settings_file(monitoring: Monitoring) -> Path:
    """The job's settings document (``Monitoring.settings_document``) as a file, for an asset of the stack.

    SageMaker caps each ContainerArguments item at 256 characters
    (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_AppSpecification.html); thresholds
    of a few named features pass that, so they travel as an S3 object whose URI is the argument. The
    same settings give the same bytes, file name and asset hash, whichever machine synthesizes.
    """
    body = (json.dumps(monitoring.settings_document(), sort_keys=True, indent=2) + "\n").encode()
    folder = Path(tempfile.gettempdir()) / "mlops-drift-settings" / hashlib.sha256(body).hexdigest()
    target = folder / SETTINGS_FILE
    if not target.is_file() or target.read_bytes() != body:
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{SETTINGS_FILE}.{os.getpid()}"
        partial.write_bytes(body)
        partial.replace(target)  # whole or not at all, should two synths write it at once
    return target


def check_arguments(arguments: list[str], where: str) -> None:
    """Refuse, at synth, arguments SageMaker would refuse at every run: more than 100, or one over 256 characters.

    A token (a bucket name, the event's time) counts as ``TOKEN_ROOM`` characters, its longest value.
    """
    if len(arguments) > MAX_ARGUMENTS:
        raise ValueError(f"{where}: {len(arguments)} job arguments; SageMaker allows at most {MAX_ARGUMENTS}")
    for argument in arguments:
        length = len(STRING_TOKEN.sub("t" * TOKEN_ROOM, argument))
        if length > MAX_ARGUMENT_LENGTH:
            raise ValueError(
                f"{where}: job argument {argument[:60]!r}... can be {length} characters; SageMaker allows "
                f"{MAX_ARGUMENT_LENGTH} (shorten the names it is built from)"
            )


def capture_prefix(endpoint: EndpointConfig, key: str) -> str:
    """``capture/<tenant>/<endpoint key>/``: where the endpoint captures (mlops_constructs/endpoint.py)."""
    return f"capture/{endpoint.tenant}/{key}/"


def report_prefix(endpoint: EndpointConfig, endpoint_name: str) -> str:
    """``artifacts/monitoring/<tenant>/<endpoint name>/``: the monitor's reports."""
    return f"{MONITORING_PREFIX}{endpoint.tenant}/{endpoint_name}/"


def labels_prefix(monitoring: Monitoring, endpoint: EndpointConfig) -> str | None:
    """``raw/<tenant>/<labels dataset>/``, where the tenant's labels are ingested, or None without labels."""
    dataset = monitoring.labels_dataset
    return None if dataset is None else f"{RAW_PREFIX}{endpoint.tenant}/{dataset}/"


def job_arguments(
    *,
    names: Names,
    monitoring: Monitoring,
    key: str,
    endpoint: EndpointConfig,
    capture: s3.IBucket,
    artifacts: s3.IBucket,
    raw: s3.IBucket | None,
    time: str,
    example_baselines: Mapping[str, s3_assets.Asset],
    settings: s3_assets.Asset,
) -> list[str]:
    """The ``monitor`` sub-command's arguments for endpoint ``key``, checked against SageMaker's caps."""
    endpoint_name = names.resource(key)
    arguments: list[str] = [
        "monitor",
        *("--environment", names.environment),
        *("--tenant", endpoint.tenant),
        *("--model", endpoint.model),
        *("--endpoint-name", endpoint_name),
        *("--capture-uri", capture.s3_url_for_object(capture_prefix(endpoint, key))),
        *("--scheduled-time", time),
        *("--window-minutes", str(monitoring.window_minutes)),
        *("--lag-minutes", str(monitoring.window_lag_minutes)),
    ]
    for variant in endpoint.variants:
        arguments += ["--pointer", f"{variant.name}={pointer_name(names, key, variant.name)}"]
    # Each variant's own example model: while its pointer holds the sentinel, its traffic is that model's.
    for variant in endpoint.variants:
        baseline = example_baselines[variant.example_model]
        arguments += ["--example-baseline", f"{variant.name}={baseline.s3_object_url}"]
    arguments += [
        *("--settings", settings.s3_object_url),
        *("--report-uri", artifacts.s3_url_for_object(report_prefix(endpoint, endpoint_name))),
        *("--metrics-namespace", names.drift_namespace),
        *("--event-source", names.monitoring_source),
    ]
    if (labels := labels_prefix(monitoring, endpoint)) is not None:
        assert raw is not None  # DriftMonitor refuses labels without the raw zone
        arguments += ["--labels-uri", raw.s3_url_for_object(labels)]
    check_arguments(arguments, f"endpoint {key}")
    return arguments
