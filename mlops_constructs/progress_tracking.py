"""Live training progress: a custom bus for the jobs' per-round events, SageMaker's own status events
from the default bus, and one Lambda that writes both to the progress table (seed 001).

Training jobs put ``Training Progress`` events on the progress bus (their role may put events on
this bus only). SageMaker's ``Training Job State Change`` events exist only on the default bus, so
a second rule there, filtered to the environment's job-name prefix, brings status, failure reason
included, beside the curves. Both rules retry and keep what they cannot deliver in a dead-letter
queue; the function quarantines malformed events in the same queue with a reason.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from config.naming import Names
from mlops_constructs.alarms import alarm_above_zero, errors, messages_waiting
from mlops_constructs.encryption import grant_table_items
from mlops_constructs.event_delivery import function_target, keep_failed_invocations, quarantine_to
from mlops_constructs.functions import platform_function
from mlops_constructs.queues import dead_letter_queue

PROGRESS_DETAIL_TYPE = "Training Progress"
STATE_CHANGE_DETAIL_TYPE = "SageMaker Training Job State Change"


def event_source(names: Names) -> str:
    """``<project>.training``: the source of the platform's training events."""
    return f"{names.project}.training"


def job_name_prefix(names: Names) -> str:
    """Every SageMaker job the platform starts is named ``<project>-<env>-…``."""
    return f"{names.prefix}-"


class ProgressTracking(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        names: Names,
        key: kms.IKey,
        table: dynamodb.ITableV2,
        alarm_topic: sns.ITopic,
        log_retention_days: int,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, id)
        self.bus = events.EventBus(
            self,
            "Bus",
            description=f"Training progress of the {names.environment} ML platform (one event per round)",
            # Imported by ARN: the key lives in Foundation and its policy already lets EventBridge use
            # it; the construct would otherwise edit Foundation's key policy from this stack (a cycle).
            kms_key=kms.Key.from_key_arn(self, "BusKey", key.key_arn),
        )
        self.dead_letter_queue = dead_letter_queue(
            self,
            "DeadLetterQueue",
            key=key,
            removal_policy=removal_policy,
            last_stop="This queue is the dead-letter and quarantine queue of the progress rules and function.",
        )

        parts = platform_function(
            self,
            "Function",
            folder="progress",
            description="Writes training progress and SageMaker training status events to the progress table",
            role_description="Progress function: writes the progress table, quarantines malformed events",
            names=names,
            key=key,
            environment={
                "TABLE_NAME": table.table_name,
                "QUARANTINE_QUEUE_URL": self.dead_letter_queue.queue_url,
                "JOB_PREFIX": names.prefix,
                "EVENT_SOURCE": event_source(names),
            },
            log_retention_days=log_retention_days,
            removal_policy=removal_policy,
            timeout_seconds=30,
            memory_size=256,
        )
        self.function = parts.function
        grant_table_items(
            parts.role, table, key, ["dynamodb:PutItem"], sid="WriteProgressRows", key_sid="EncryptRowsThroughDynamoDb"
        )
        quarantine_to(parts, self.dead_letter_queue, key)
        # Failed asynchronous invocations (DynamoDB down after Lambda's retries) keep their event.
        keep_failed_invocations(parts, self.dead_letter_queue)
        target = function_target(self.function, dead_letter_queue=self.dead_letter_queue)
        self.progress_rule = events.Rule(
            self,
            "ProgressRule",
            description="Per-round training progress from the platform's training jobs",
            event_bus=self.bus,
            event_pattern=events.EventPattern(source=[event_source(names)], detail_type=[PROGRESS_DETAIL_TYPE]),
            targets=[target],
        )
        self.status_rule = events.Rule(
            self,
            "StatusRule",
            description=f"SageMaker training job status changes of {names.environment}'s jobs (default bus)",
            event_pattern=events.EventPattern(
                source=["aws.sagemaker"],
                detail_type=[STATE_CHANGE_DETAIL_TYPE],
                detail={"TrainingJobName": events.Match.prefix(job_name_prefix(names))},
            ),
            targets=[target],
        )
        self._alarms(alarm_topic)

    def _alarms(self, topic: sns.ITopic) -> None:
        alarms = {
            "DeadLetterAlarm": (
                "Progress events were quarantined or could not be delivered (see the progress dead-letter queue)",
                messages_waiting(self.dead_letter_queue),
            ),
            "ErrorsAlarm": ("The progress function failed invocations", errors(self.function)),
        }
        alarm_above_zero(self, topic, alarms)
