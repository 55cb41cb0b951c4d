"""The server's settings, read from the environment SageMaker gives a hosting container.

SageMaker sets ``SAGEMAKER_BIND_TO_PORT`` and may set ``SAGEMAKER_MODEL_SERVER_WORKERS`` (the
model's ``Environment`` can set it too); the rest are this image's own, with defaults that fit a
real-time endpoint.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PORT = 8080
# InvokeEndpoint's limit for a real-time request body; batch transform may send up to 100 MB
# (MaxPayloadInMB), so a transform's model sets MLOPS_MAX_PAYLOAD_BYTES higher.
DEFAULT_MAX_PAYLOAD_BYTES = 6 * 1024 * 1024


class SettingsError(Exception):
    """A bad environment variable, in one sentence."""


@dataclass(frozen=True)
class Settings:
    port: int = DEFAULT_PORT
    workers: int = 1
    model_dir: Path = Path("/opt/ml/model")
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    # Every interface: SageMaker reaches the container from outside it.
    host: str = "0.0.0.0"  # noqa: S104

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        return cls(
            port=_whole(environ, "SAGEMAKER_BIND_TO_PORT", DEFAULT_PORT, 1, 65535, "a port"),
            workers=_whole(environ, "SAGEMAKER_MODEL_SERVER_WORKERS", cpu_count(), 1, 1024, "worker processes"),
            model_dir=model_directory(environ),
            max_payload_bytes=_whole(
                environ, "MLOPS_MAX_PAYLOAD_BYTES", DEFAULT_MAX_PAYLOAD_BYTES, 1, 2**31 - 1, "bytes"
            ),
            host=environ.get("MLOPS_BIND_HOST") or cls.host,
        )


def model_directory(environ: Mapping[str, str] | None = None) -> Path:
    """Where SageMaker unpacks model.tar.gz: ``/opt/ml/model``, under ``SM_ROOT`` as in the training image."""
    environ = os.environ if environ is None else environ
    return Path(environ.get("SM_ROOT") or "/opt/ml") / "model"


def cpu_count() -> int:
    """CPUs this process may run on (its affinity, which a container's cpuset narrows), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(len(os.sched_getaffinity(0)), 1)
    return os.cpu_count() or 1


def _whole(environ: Mapping[str, str], name: str, default: int, low: int, high: int, unit: str) -> int:
    text = (environ.get(name) or "").strip()
    if not text:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise SettingsError(f"{name} has value {text!r}; allowed: a whole number from {low} to {high} ({unit})")
    return int(text)
