"""Monitoring: the drift monitor's core, the jobs around it, and model quality from labels.

The core is plain Python on numpy, pandas and scipy, with no AWS calls, so the same code runs in
the training state machine's baseline step, in the scheduled monitor job and on a laptop:

- ``baseline.compute_baseline``: a small JSON document (binned distributions, ranges, missing rates
  and a quantile sketch per feature and for the predictions), attached to the model package;
- ``capture.read_capture``: SageMaker data-capture JSON Lines become a ``CaptureWindow``; malformed
  lines are counted by reason, never raised;
- ``drift.compare``: a ``DriftReport`` with PSI and KS per feature, data quality, prediction shift
  per variant, and its JSON, HTML and CloudWatch metrics.

The jobs around them (they talk to AWS or the Processing folders): ``baseline_job`` (``python -m
mlops_platform.training baseline``) writes a model's baseline beside its artifact; ``job``
(``python -m mlops_platform.training monitor``) is the scheduled drift monitor: it reads an
endpoint's capture window from S3, compares it with each variant's baseline, reports model quality
where labels arrived (``labels``), and publishes the report, CloudWatch metrics and a ``Drift
Summary`` event. The package itself imports nothing, so a Lambda function can import its modules
that need no numpy.
"""
