"""The retrain trigger's new-data path: raw-zone uploads gathered in a queue, handed to the function in batches.

The raw zone sends ``Object Created`` to EventBridge; a rule keeps the ``raw/`` keys of data files
(ingested ``.jsonl`` records, tenants' ``.csv``, ``.parquet`` and ``.jsonl`` files) of this environment's
raw bucket (never curated, features or predictions, which live in other buckets, nor ``quarantine/``)
and sends them to an SQS queue, whose event source mapping waits ``batching_window_seconds`` before it
hands one batch to the function: a burst of uploads arrives as one batch, and the function groups it per
tenant.
"""

from __future__ import annotations

from dataclasses import dataclass

import jsii
from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from aws_cdk.interfaces.aws_events import IRuleRef
from constructs import Construct

from config.monitoring import Retraining
from mlops_constructs.event_delivery import RULE_MAX_EVENT_AGE, RULE_RETRY_ATTEMPTS
from mlops_constructs.functions import PlatformFunction
from mlops_constructs.ingestion import RAW_PREFIX
from mlops_constructs.queues import dead_letter_queue, encrypted_queue

OBJECT_CREATED = "Object Created"
# The raw files prepare reads: ingested records and tenants' files (mlops_platform/data/readers.py SUFFIXES;
# the trigger checks the same list, mlops_platform/monitoring/retraining/events.py DATA_SUFFIXES).
DATA_SUFFIXES = (".jsonl", ".csv", ".parquet")
# A burst of uploads should arrive as one batch. Lambda takes up to 10,000 SQS messages per batch
# once a batching window is set, within its 6 MB payload; an S3 event is about 1.5 KB as an SQS
# record, so 1,000 stays well inside it. Without a window Lambda allows at most 10.
BURST_BATCH_SIZE = 1000
UNBATCHED_BATCH_SIZE = 10
# The fewest concurrent batches an SQS event source mapping allows: fewer racing batches, and the
# deterministic execution name makes the races that remain harmless.
MAX_CONCURRENT_BATCHES = 2
MAX_RECEIVE_COUNT = 5


def batch_size(batching_window_seconds: int) -> int:
    return BURST_BATCH_SIZE if batching_window_seconds > 0 else UNBATCHED_BATCH_SIZE


@jsii.implements(events.IRuleTarget)
class _QueueTarget:
    """An SQS target that grants nothing by itself (CDK's ``SqsQueue`` lets every rule of the account send
    to an encrypted queue, and edits the key's policy in another stack); the queue's policy is written
    beside it, for the one rule."""

    def __init__(self, queue: sqs.IQueue, *, dead_letter_queue: sqs.IQueue) -> None:
        self._queue = queue
        self._dead_letter_queue = dead_letter_queue

    def bind(self, rule: IRuleRef, id: str | None = None) -> events.RuleTargetConfig:
        return events.RuleTargetConfig(
            arn=self._queue.queue_arn,
            dead_letter_config=events.CfnRule.DeadLetterConfigProperty(arn=self._dead_letter_queue.queue_arn),
            retry_policy=events.CfnRule.RetryPolicyProperty(
                maximum_retry_attempts=RULE_RETRY_ATTEMPTS,
                maximum_event_age_in_seconds=int(RULE_MAX_EVENT_AGE.to_seconds()),
            ),
        )


@dataclass(frozen=True)
class NewDataPath:
    queue: sqs.Queue
    dead_letter_queue: sqs.Queue
    rule: events.Rule


def new_data_path(
    scope: Construct,
    parts: PlatformFunction,
    *,
    raw_bucket: s3.IBucket,
    key: kms.IKey,
    settings: Retraining,
    removal_policy: RemovalPolicy,
) -> NewDataPath:
    """``NewDataDeadLetterQueue``, ``NewDataQueue``, ``NewDataRule`` and ``NewDataMapping`` in ``scope`` (flat),
    delivering to ``parts``' function, whose role's policy the mapping waits for."""
    window = settings.batching_window_seconds
    timeout = parts.function.timeout
    assert timeout is not None, "every platform function sets its timeout"
    dead_letters = dead_letter_queue(
        scope,
        "NewDataDeadLetterQueue",
        key=key,
        removal_policy=removal_policy,
        last_stop=(
            "This is the dead-letter queue of the new-data queue and of its rule; a DLQ of a DLQ would only move "
            "the problem."
        ),
    )
    queue = encrypted_queue(
        scope,
        "NewDataQueue",
        key=key,
        # AWS's advice for SQS event sources: six times the function timeout plus the batching
        # window, so a batch is not redelivered while it is still being decided.
        visibility_timeout=Duration.seconds(6 * int(timeout.to_seconds()) + window),
        retention_period=Duration.days(4),
        dead_letter_queue=sqs.DeadLetterQueue(queue=dead_letters, max_receive_count=MAX_RECEIVE_COUNT),
        removal_policy=removal_policy,
    )
    rule = events.Rule(
        scope,
        "NewDataRule",
        description="Objects created under raw/ of the raw zone, gathered in the new-data queue",
        event_pattern=events.EventPattern(
            source=["aws.s3"],
            detail_type=[OBJECT_CREATED],
            detail={
                "bucket": {"name": [raw_bucket.bucket_name]},
                # Keys under raw/ that end as a data file does: ingested records and tenants' files (CSV,
                # Parquet, JSON Lines). Wildcard filters (https://docs.aws.amazon.com/eventbridge/latest/userguide/
                # eb-create-pattern-operators.html#eb-filtering-wildcard-matching): "*" matches any characters,
                # slashes included; the values of one field are alternatives.
                "object": {
                    "key": events.Match.any_of(
                        *(events.Match.wildcard(f"{RAW_PREFIX}*{suffix}") for suffix in DATA_SUFFIXES)
                    )
                },
            },
        ),
        targets=[_QueueTarget(queue, dead_letter_queue=dead_letters)],
    )
    # Only this rule may send to the queue and, for what it cannot deliver, to its dead-letter queue.
    for sid, receiver in (("NewDataRuleSends", queue), ("NewDataRuleDeadLetters", dead_letters)):
        receiver.add_to_resource_policy(
            iam.PolicyStatement(
                sid=sid,
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["sqs:SendMessage"],
                resources=[receiver.queue_arn],
                conditions={"ArnEquals": {"aws:SourceArn": rule.rule_arn}},
            )
        )

    # Not SqsEventSource: its grant adds kms:Decrypt on the key with no condition. Lambda checks
    # these grants when it creates the mapping, hence the dependency.
    parts.role.add_to_policy(
        iam.PolicyStatement(
            sid="ConsumeNewDataQueue",
            actions=[
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility",
                "sqs:GetQueueAttributes",
            ],
            resources=[queue.queue_arn],
        )
    )
    mapping = lambda_.EventSourceMapping(
        scope,
        "NewDataMapping",
        target=parts.function,
        event_source_arn=queue.queue_arn,
        batch_size=batch_size(window),
        max_batching_window=Duration.seconds(window) if window > 0 else None,
        max_concurrency=MAX_CONCURRENT_BATCHES,
        report_batch_item_failures=True,
    )
    mapping.node.add_dependency(parts.policy)
    return NewDataPath(queue=queue, dead_letter_queue=dead_letters, rule=rule)
