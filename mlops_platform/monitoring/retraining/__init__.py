"""Retraining decisions (lambda/retrain_trigger adapts them): drift and new data start at most one training
run per tenant at a time.

- model.py: requests, decisions and execution names;
- events.py: what an event asks for (pure parsing);
- configs.py: the datasets a tenant trains on, from its published pipeline config;
- state.py: the tenant's state item, changed only by conditional writes;
- records.py: the decision records in the run ledger;
- trigger.py: the decisions themselves;
- dispatch.py: one invocation (an EventBridge event, or an SQS batch grouped by tenant).

Imports boto3 only, as the Lambda runtime provides it.
"""

from mlops_platform.monitoring.retraining.configs import PublishedConfigs
from mlops_platform.monitoring.retraining.dispatch import Batch, handle_event
from mlops_platform.monitoring.retraining.events import Settings, alarm_dimensions, is_sqs_batch, parse_event
from mlops_platform.monitoring.retraining.model import (
    CAUSES,
    METRICS,
    Decision,
    execution_name,
    group_tenants,
    window_of,
)
from mlops_platform.monitoring.retraining.trigger import Trigger

__all__ = [
    "CAUSES",
    "METRICS",
    "Batch",
    "Decision",
    "PublishedConfigs",
    "Settings",
    "Trigger",
    "alarm_dimensions",
    "execution_name",
    "group_tenants",
    "handle_event",
    "is_sqs_batch",
    "parse_event",
    "window_of",
]
