"""Retrain trigger: drift and new data start at most one training run per tenant at a time.

Five kinds of invocation, told apart by their structure:

* ``drift-alarm``: an EventBridge ``CloudWatch Alarm State Change`` (source ``aws.cloudwatch``). Only a
  change to ``ALARM`` counts, and only for an alarm whose name starts with ``ALARM_NAME_PREFIX``
  (``<project>-<env>-drift-``). The tenant and model come from the alarm's metric dimensions
  ``Tenant`` and ``Model`` (``Model`` optional: "all"), not from its name: tenant and model names
  may both contain hyphens, so ``<prefix><tenant>-<model>`` cannot be split back reliably. For a
  metric-math alarm every metric that names a tenant must name the same one.
* ``drift-event``: the drift monitor's ``Drift Summary`` (source ``MONITORING_SOURCE``), whose detail
  carries ``tenant``, ``model``, ``endpoint``, ``drift`` (bool), ``max_psi`` and ``report_uri``.
  A summary without drift changes nothing.
* ``new-data``: an SQS batch (raw bucket -> EventBridge -> SQS with a batching window) whose bodies
  are S3 ``Object Created`` events. Only ``raw/<tenant>/<dataset>/...`` keys of ``RAW_BUCKET`` count, those of
  data prepare reads (records and tenants' files: ``.jsonl``, ``.csv``, ``.parquet``), and
  of those only the datasets the tenant trains on (its published pipeline config, ``dataset.name``): the
  labels dataset (``LABELS_DATASET``), other datasets, unknown tenants, the platform's other prefixes and
  the ignored tenants (the example tenant) never start a run. All objects of one batch for one tenant make
  one request: a burst of uploads starts one run.
* ``package-decision``: a ``SageMaker Model Package State Change`` of this environment's groups to
  ``Approved`` or ``Rejected``: a candidate a triggered run left awaiting review is decided, and drift may
  start runs again once none awaits.
* the sweep: an EventBridge ``Scheduled Event`` every few minutes starts the runs of uploads that arrived
  while their tenant was busy, once it is free and the cooldown has passed.

What a request does is decided on the tenant's state item with one conditional write: one run per tenant at a
time, the cooldown, uploads kept for the next run, drift held while a candidate awaits review. The decisions
live in mlops_platform/monitoring/retraining; this module parses the environment, builds the clients and hands
each invocation over. Every decision is written to the run ledger (``started``, ``skipped-duplicate``,
``skipped-running``, ``skipped-cooldown``, ``skipped-awaiting-candidate``, ``deferred``, ``run-ended``,
``candidate-decided``, ``candidate-expired``, ``ignored``, ``rejected``) with its evidence, under
``TRIGGER#<tenant>`` / ``<decided_at>#<decision>#<id>`` and, for a known tenant, the ``ByTenant`` index
(``TENANT#<tenant>`` / ``TRIGGER#<decided_at>``).

A malformed event is logged and recorded as ``rejected``, never raised: no retry can fix it. An AWS
failure raises: a directly invoked event is retried by Lambda (names and conditions keep the retry
harmless); in an SQS batch only the messages of the failed group are reported back (partial batch response).
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from mlops_platform.monitoring.retraining import (
    METRICS,
    Batch,
    Decision,
    PublishedConfigs,
    Settings,
    Trigger,
    handle_event,
    is_sqs_batch,
)

logger = Logger()
metrics = Metrics()


def count(decision: Decision) -> None:
    """One metric per decision recorded (the dashboard graphs them)."""
    metrics.add_metric(METRICS[decision.decision], MetricUnit.Count, 1)


settings = Settings.from_environment(os.environ)
trigger = Trigger(
    boto3.client("dynamodb"),
    boto3.client("stepfunctions"),
    boto3.client("sagemaker"),
    ledger_table=os.environ["LEDGER_TABLE"],
    state_machine_arn=os.environ["STATE_MACHINE_ARN"],
    cooldown_seconds=int(os.environ["COOLDOWN_SECONDS"]),
    candidate_expiry_seconds=int(os.environ["CANDIDATE_EXPIRY_SECONDS"]),
    pending_index=os.environ.get("LEDGER_INDEX", "ByTenant"),
    logger=logger,
    on_record=count,
)
configs = PublishedConfigs(
    boto3.client("s3"),
    bucket=os.environ["CONFIG_BUCKET"],
    prefix=os.environ.get("CONFIG_PREFIX", "artifacts/config/pipelines/"),
)


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if is_sqs_batch(event):
        if not event["Records"]:
            return {"batchItemFailures": []}
        configs.forget()
        batch = Batch(trigger, event["Records"], settings, configs)

        def decide(record: SQSRecord) -> str:
            return batch.decide_message(record.message_id)

        # A failed group is reported, never raised for the whole batch: the other groups stay done.
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        return process_partial_response(event=event, record_handler=decide, processor=processor, context=context)
    return handle_event(trigger, event, settings)
