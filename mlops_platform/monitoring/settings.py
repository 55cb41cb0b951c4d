"""The drift monitor's settings document: what the job is told beyond its arguments, read from S3.

SageMaker caps each of a Processing job's ``ContainerArguments`` at 256 characters
(https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_AppSpecification.html), and thresholds
for a handful of named features already pass that. So the settings travel as one JSON object, an
asset of the Monitoring stack written at synth from ``monitoring`` in the environment's config
(mlops_constructs/drift_job.py), and the job gets only its URI (``--settings``)::

    {"schema_version": 1,
     "thresholds": {"default": {"psi": 0.2, "ks_statistic": 0.1, "ks_p_value": 0.01},
                    "features": {"<name>": {...}}, "drifted_share": 0.5, "prediction_psi": 0.2,
                    "min_rows": 30}}

``thresholds`` maps onto ``drift.Thresholds``: every key is optional, a feature's missing keys come
from ``default``, the rest from ``drift``'s defaults. A bad document is a ``SettingsError`` naming the
first bad key and what is allowed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from mlops_platform.monitoring.drift import FeatureThresholds, Thresholds

SCHEMA_VERSION = 1
DOCUMENT_KEYS = ("schema_version", "thresholds")
FEATURE_KEYS = ("psi", "ks_statistic", "ks_p_value")
THRESHOLD_KEYS = ("default", "features", "drifted_share", "prediction_psi", "min_rows")


class SettingsError(Exception):
    """A settings document that cannot be used, in one line that names the key."""


def parse_settings(body: bytes | str) -> Thresholds:
    """The thresholds of a settings document."""
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise SettingsError(f"the document is not JSON: {str(body)[:80]!r}") from None
    _check(isinstance(raw, dict), "", raw, "a JSON object")
    _unknown(raw, DOCUMENT_KEYS, "")
    _check(raw.get("schema_version") == SCHEMA_VERSION, "schema_version", raw.get("schema_version"), SCHEMA_VERSION)
    return parse_thresholds(raw.get("thresholds", {}))


def parse_thresholds(raw: Any) -> Thresholds:
    """``thresholds`` as ``drift.Thresholds``; SettingsError names the first bad key."""
    _check(isinstance(raw, dict), "thresholds", raw, "a JSON object")
    _unknown(raw, THRESHOLD_KEYS, "thresholds.")
    default = _feature_thresholds(raw.get("default", {}), FeatureThresholds(), "thresholds.default")
    features = raw.get("features", {})
    _check(isinstance(features, dict), "thresholds.features", features, "an object of feature names to thresholds")
    fallback = Thresholds()
    drifted_share = raw.get("drifted_share", fallback.drifted_share)
    prediction_psi = raw.get("prediction_psi", fallback.prediction_psi)
    min_rows = raw.get("min_rows", fallback.min_rows)
    _check(_number(drifted_share) and 0 <= drifted_share <= 1, "thresholds.drifted_share", drifted_share, "0 to 1")
    _check(_number(prediction_psi) and prediction_psi > 0, "thresholds.prediction_psi", prediction_psi, "above 0")
    _check(
        isinstance(min_rows, int) and not isinstance(min_rows, bool) and min_rows >= 1,
        "thresholds.min_rows",
        min_rows,
        "a whole number, at least 1",
    )
    return Thresholds(
        default=default,
        features={
            str(name): _feature_thresholds(limits, default, f"thresholds.features.{name}")
            for name, limits in sorted(features.items())
        },
        drifted_share=float(drifted_share),
        prediction_psi=float(prediction_psi),
        min_rows=min_rows,
    )


def _feature_thresholds(raw: Any, fallback: FeatureThresholds, where: str) -> FeatureThresholds:
    _check(isinstance(raw, dict), where, raw, f"an object with {', '.join(FEATURE_KEYS)}")
    _unknown(raw, FEATURE_KEYS, f"{where}.")
    psi = raw.get("psi", fallback.psi)
    ks_statistic = raw.get("ks_statistic", fallback.ks_statistic)
    ks_p_value = raw.get("ks_p_value", fallback.ks_p_value)
    _check(_number(psi) and psi > 0, f"{where}.psi", psi, "above 0")
    _check(_number(ks_statistic) and 0 < ks_statistic <= 1, f"{where}.ks_statistic", ks_statistic, "(0, 1]")
    _check(_number(ks_p_value) and 0 < ks_p_value < 1, f"{where}.ks_p_value", ks_p_value, "(0, 1)")
    return FeatureThresholds(psi=float(psi), ks_statistic=float(ks_statistic), ks_p_value=float(ks_p_value))


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _unknown(raw: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    unknown = sorted(str(key) for key in raw if key not in allowed)
    if unknown:
        raise SettingsError(f"unknown key {where}{unknown[0]!r}; allowed: {', '.join(allowed)}")


def _check(condition: Any, key: str, value: Any, allowed: Any) -> None:
    if not condition:
        where = f"key {key!r} has value {value!r}" if key else f"{value!r} is not allowed"
        raise SettingsError(f"{where}; allowed: {allowed}")
