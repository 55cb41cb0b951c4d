"""Ingestion: each tenant's producers send ``{dataset, record | records}`` to the tenant's own SQS queue; a Lambda
lands them in the raw zone under the queue's tenant.

The queue is the boundary between tenants: a producer gets the managed policy of its tenant, which allows
``sqs:SendMessage`` on that tenant's queue only, and the function takes the tenant from the queue a message
came from, never from the message (a message naming another tenant is quarantined as ``spoofed-tenant``).
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from config.naming import Names
from config.schema import Capacities, Ingestion
from mlops_constructs.alarms import alarm_above_zero, errors, messages_waiting
from mlops_constructs.data_lake import QUARANTINE_PREFIX
from mlops_constructs.encryption import key_used_through
from mlops_constructs.functions import platform_function
from mlops_constructs.nag import acknowledge_wildcard_resource
from mlops_constructs.pinning import pin_logical_id
from mlops_constructs.queues import dead_letter_queue, encrypted_queue
from mlops_constructs.tenant_ids import tenant_id

RAW_PREFIX = "raw/"
FUNCTION_TIMEOUT = Duration.seconds(60)


class IngestionPipeline(Construct):
    """A queue per tenant, one dead-letter queue, the ingest function, alarms, and a policy per tenant that
    the tenant's producers attach."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        names: Names,
        key: kms.IKey,
        raw_bucket: s3.IBucket,
        alarm_topic: sns.ITopic,
        settings: Ingestion,
        capacities: Capacities,
        tenants: Sequence[str],
        log_retention_days: int,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, id)

        self.dead_letter_queue = dead_letter_queue(
            self,
            "DeadLetterQueue",
            key=key,
            removal_policy=removal_policy,
            last_stop="This is the dead-letter queue of the ingest queue; a DLQ of a DLQ would only move the problem.",
        )
        pin_logical_id(self.dead_letter_queue, "IngestDeadLetterQueue")
        # One queue per tenant, encrypted with the platform key. Producers hold a queue's URL, and queues
        # hold messages: pinned logical IDs, so nothing replaces them by accident.
        self.queues: dict[str, sqs.Queue] = {}
        for tenant in tenants:
            queue = encrypted_queue(
                self,
                f"Queue{tenant_id(tenant)}",
                key=key,
                # AWS's advice for SQS event sources: six times the function timeout, so a message is
                # not redelivered while a slow batch is still being written.
                visibility_timeout=Duration.seconds(FUNCTION_TIMEOUT.to_seconds() * 6),
                retention_period=Duration.days(4),
                dead_letter_queue=sqs.DeadLetterQueue(
                    queue=self.dead_letter_queue, max_receive_count=settings.max_receive_count
                ),
                removal_policy=removal_policy,
            )
            pin_logical_id(queue, f"IngestQueue{tenant_id(tenant)}")
            self.queues[tenant] = queue

        parts = platform_function(
            self,
            "Function",
            folder="ingest",
            description="Lands SQS records in the raw zone as JSON Lines; quarantines bad ones with a reason",
            role_description="Ingest function: reads the ingest queue, writes raw/ and quarantine/ of the raw zone",
            names=names,
            key=key,
            environment={
                "RAW_BUCKET": raw_bucket.bucket_name,
                "RAW_PREFIX": RAW_PREFIX,
                "QUARANTINE_PREFIX": QUARANTINE_PREFIX,
                "MAX_RECORD_BYTES": str(settings.max_record_bytes),
                "MAX_RECORDS_PER_MESSAGE": str(settings.max_records_per_message),
                # Queue ARN -> tenant: the handler takes each message's tenant from the queue it came from.
                "TENANT_QUEUES": Stack.of(self).to_json_string(
                    {queue.queue_arn: tenant for tenant, queue in self.queues.items()}
                ),
            },
            log_retention_days=log_retention_days,
            removal_policy=removal_policy,
            timeout_seconds=int(FUNCTION_TIMEOUT.to_seconds()),
        )
        self.function = parts.function
        role = parts.role
        policy = self._grant_least_privilege(role, key=key, raw_bucket=raw_bucket)
        # Not SqsEventSource: its grant adds kms:Decrypt on the key with no condition, and this key
        # encrypts the whole lake. The function reads the queues with the grants above (KMS only
        # through SQS); Lambda checks them when it creates a mapping, hence the dependency. One mapping
        # per queue, each with its own maximum concurrency, so one tenant's backlog cannot hold up the
        # others' (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html).
        for tenant, queue in self.queues.items():
            mapping = lambda_.EventSourceMapping(
                self,
                f"QueueMapping{tenant_id(tenant)}",
                target=self.function,
                event_source_arn=queue.queue_arn,
                batch_size=capacities.ingest_batch_size,
                max_concurrency=capacities.ingest_max_concurrency,
                report_batch_item_failures=True,
            )
            mapping.node.add_dependency(policy)
        self.producer_policies = {
            tenant: self._producer_policy(tenant, queue, key) for tenant, queue in self.queues.items()
        }
        self._alarms(alarm_topic, names)

    def _grant_least_privilege(self, role: iam.Role, *, key: kms.IKey, raw_bucket: s3.IBucket) -> iam.Policy:
        if self.queues:
            # The actions of Lambda's SQS execution role (AWSLambdaSQSQueueExecutionRole), on the tenants' queues only:
            # https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html#events-sqs-permissions
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="ConsumeIngestQueues",
                    actions=[
                        "sqs:ReceiveMessage",
                        "sqs:DeleteMessage",
                        "sqs:ChangeMessageVisibility",
                        "sqs:GetQueueAttributes",
                    ],
                    resources=[queue.queue_arn for queue in self.queues.values()],
                )
            )
        role.add_to_policy(key_used_through(self, key, "sqs", ["kms:Decrypt"], sid="DecryptMessagesThroughSqs"))
        role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteRawAndQuarantine",
                actions=["s3:PutObject"],
                resources=[
                    raw_bucket.arn_for_objects(f"{RAW_PREFIX}*"),
                    raw_bucket.arn_for_objects(f"{QUARANTINE_PREFIX}*"),
                ],
            )
        )
        # SSE-KMS writes: only through S3.
        object_key = ["kms:GenerateDataKey", "kms:Decrypt"]
        role.add_to_policy(key_used_through(self, key, "s3", object_key, sid="EncryptObjectsThroughS3"))
        policy = role.node.find_child("DefaultPolicy")
        assert isinstance(policy, iam.Policy)
        acknowledge_wildcard_resource(
            policy,
            raw_bucket.arn_for_objects(f"{RAW_PREFIX}*"),
            "Objects are keyed by tenant, dataset, day and message id; the grant stops at the raw/ prefix.",
        )
        acknowledge_wildcard_resource(
            policy,
            raw_bucket.arn_for_objects(f"{QUARANTINE_PREFIX}*"),
            "Quarantined records are keyed like raw ones; the grant stops at the quarantine/ prefix.",
        )
        return policy

    def _producer_policy(self, tenant: str, queue: sqs.IQueue, key: kms.IKey) -> iam.ManagedPolicy:
        """Attach to a producer of ``tenant``: send to that tenant's queue, nothing else."""
        return iam.ManagedPolicy(
            self,
            f"ProducerPolicy{tenant_id(tenant)}",
            description=f"Lets a producer send records of tenant {tenant} to that tenant's ingest queue, and no other",
            statements=[
                iam.PolicyStatement(sid="SendRecords", actions=["sqs:SendMessage"], resources=[queue.queue_arn]),
                # The key encrypts the whole lake: producers may use it only through SQS.
                key_used_through(self, key, "sqs", ["kms:GenerateDataKey", "kms:Decrypt"], sid="EncryptMessages"),
            ],
        )

    def _alarms(self, topic: sns.ITopic, names: Names) -> None:
        alarms = {
            "DeadLetterAlarm": (
                "Messages reached the ingest dead-letter queue: records are waiting to be redriven",
                messages_waiting(self.dead_letter_queue, Duration.minutes(1)),
            ),
            "ErrorsAlarm": ("The ingest function failed invocations", errors(self.function)),
            "QuarantineAlarm": (
                "Producers sent records that were quarantined (see quarantine/ in the raw zone)",
                cloudwatch.Metric(
                    namespace=names.metrics_namespace,
                    metric_name="RecordsQuarantined",
                    dimensions_map={"service": "ingest"},
                    period=Duration.minutes(5),
                    statistic="Sum",
                ),
            ),
        }
        alarm_above_zero(self, topic, alarms)
