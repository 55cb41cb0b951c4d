"""The drift monitor's core: baselines from training data, captured traffic, and the comparison.

Plain Python on numpy, pandas and scipy, with no AWS calls, so the same code runs in the training
state machine's baseline step, in the scheduled monitor job and on a laptop:

- ``compute_baseline``: a small JSON document (binned distributions, ranges, missing rates and a
  quantile sketch per feature and for the predictions), attached to the model package;
- ``read_capture``: SageMaker data-capture JSON Lines become a ``CaptureWindow``; malformed lines
  are counted by reason, never raised;
- ``compare``: a ``DriftReport`` with PSI and KS per feature, data quality, prediction shift per
  variant, and its JSON, HTML and CloudWatch metrics.

The jobs around them, imported on their own (they talk to AWS or the Processing folders):
``baseline_job`` (``python -m mlops_training baseline``) writes a model's baseline beside its
artifact; ``job`` (``python -m mlops_training monitor``) is the scheduled drift monitor: it reads an
endpoint's capture window from S3, compares it with each variant's baseline, reports model quality
where labels arrived, and publishes the report, CloudWatch metrics and a ``Drift Summary`` event.
"""

from mlops_training.monitoring.baseline import SCHEMA_VERSION, compute_baseline
from mlops_training.monitoring.capture import MALFORMED_REASONS, CaptureWindow, read_capture
from mlops_training.monitoring.drift import DriftReport, FeatureThresholds, Metric, Thresholds, compare

__all__ = [
    "MALFORMED_REASONS",
    "SCHEMA_VERSION",
    "CaptureWindow",
    "DriftReport",
    "FeatureThresholds",
    "Metric",
    "Thresholds",
    "compare",
    "compute_baseline",
    "read_capture",
]
