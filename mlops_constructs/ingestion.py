"""Ingestion: producers send ``{tenant, dataset, record | records}`` to SQS; a Lambda lands them in the raw zone."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from config.naming import Names
from config.schema import Capacities, Ingestion
from mlops_constructs.data_lake import QUARANTINE_PREFIX
from mlops_constructs.log_retention import retention_days
from mlops_constructs.nag import acknowledge, acknowledge_wildcard_resource
from mlops_constructs.pinning import pin_logical_id

LAMBDA_ROOT = Path(__file__).resolve().parent.parent / "lambda"
# Files that tests and editors leave beside a handler; excluded so the asset hash (and the
# template) stays the same whatever ran before synth.
ASSET_EXCLUDES = ["__pycache__", "*.pyc", ".pytest_cache", "requirements.txt"]
RAW_PREFIX = "raw/"
FUNCTION_TIMEOUT = Duration.seconds(60)

# The AWS-managed Powertools layer, pinned: dependencies come from AWS, not from a pip run at synth.
# lambda/ingest/requirements.txt pins the same major version for the tests.
POWERTOOLS_LAYER_ACCOUNT = "017000801446"
POWERTOOLS_LAYER_VERSION = 27
RUNTIME = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE = lambda_.Architecture.ARM_64


def powertools_layer(scope: Construct, id: str) -> lambda_.ILayerVersion:
    stack = Stack.of(scope)
    python = RUNTIME.name.replace(".", "")  # python3.14 -> python314
    arn = (
        f"arn:{stack.partition}:lambda:{stack.region}:{POWERTOOLS_LAYER_ACCOUNT}:layer:"
        f"AWSLambdaPowertoolsPythonV3-{python}-arm64:{POWERTOOLS_LAYER_VERSION}"
    )
    return lambda_.LayerVersion.from_layer_version_arn(scope, id, arn)


class IngestionPipeline(Construct):
    """Queue, dead-letter queue, ingest function, alarms and a policy that producers attach."""

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
        log_retention_days: int,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, id)

        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,
            enforce_ssl=True,
            retention_period=Duration.days(14),
            removal_policy=removal_policy,
        )
        pin_logical_id(self.dead_letter_queue, "IngestDeadLetterQueue")
        acknowledge(
            self.dead_letter_queue,
            "AwsSolutions-SQS3",
            "This is the dead-letter queue of the ingest queue; a DLQ of a DLQ would only move the problem.",
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,
            enforce_ssl=True,
            # AWS's advice for SQS event sources: six times the function timeout, so a message is
            # not redelivered while a slow batch is still being written.
            visibility_timeout=Duration.seconds(FUNCTION_TIMEOUT.to_seconds() * 6),
            retention_period=Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letter_queue, max_receive_count=settings.max_receive_count
            ),
            removal_policy=removal_policy,
        )
        # Producers hold the queue's URL, and both queues hold messages: never replace them by accident.
        pin_logical_id(self.queue, "IngestQueue")

        log_group = logs.LogGroup(
            self,
            "FunctionLogs",
            retention=retention_days(log_retention_days),
            encryption_key=key,
            removal_policy=removal_policy,
        )
        role = iam.Role(
            self,
            "FunctionRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Ingest function: reads the ingest queue, writes raw/ and quarantine/ of the raw zone",
        )
        self.function = lambda_.Function(
            self,
            "Function",
            description="Lands SQS records in the raw zone as JSON Lines; quarantines bad ones with a reason",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler="handler.handler",
            code=lambda_.Code.from_asset(str(LAMBDA_ROOT / "ingest"), exclude=ASSET_EXCLUDES),
            layers=[powertools_layer(self, "PowertoolsLayer")],
            role=role,
            log_group=log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            timeout=FUNCTION_TIMEOUT,
            memory_size=512,
            tracing=lambda_.Tracing.ACTIVE,
            environment_encryption=key,
            environment={
                "RAW_BUCKET": raw_bucket.bucket_name,
                "RAW_PREFIX": RAW_PREFIX,
                "QUARANTINE_PREFIX": QUARANTINE_PREFIX,
                "MAX_RECORD_BYTES": str(settings.max_record_bytes),
                "POWERTOOLS_SERVICE_NAME": "ingest",
                "POWERTOOLS_METRICS_NAMESPACE": names.metrics_namespace,
            },
        )
        # CDK makes the function depend on its role explicitly and through Fn::GetAtt; cfn-lint's W3005
        # flags the redundancy. Harmless, and generated by aws-cdk-lib, so acknowledged here only.
        cfn_function = self.function.node.default_child
        assert isinstance(cfn_function, lambda_.CfnFunction)
        cfn_function.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3005"]}})
        policy = self._grant_least_privilege(role, key=key, raw_bucket=raw_bucket, log_group=log_group)
        # Not SqsEventSource: its grant adds kms:Decrypt on the key with no condition, and this key
        # encrypts the whole lake. The function reads the queue with the grants above (KMS only
        # through SQS); Lambda checks them when it creates the mapping, hence the dependency.
        mapping = lambda_.EventSourceMapping(
            self,
            "QueueMapping",
            target=self.function,
            event_source_arn=self.queue.queue_arn,
            batch_size=capacities.ingest_batch_size,
            max_concurrency=capacities.ingest_max_concurrency,
            report_batch_item_failures=True,
        )
        mapping.node.add_dependency(policy)
        self.producer_policy = self._producer_policy(key)
        self._alarms(alarm_topic, names)

    def _grant_least_privilege(
        self, role: iam.Role, *, key: kms.IKey, raw_bucket: s3.IBucket, log_group: logs.LogGroup
    ) -> iam.Policy:
        region = Stack.of(self).region
        log_group.grant_write(role)
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ConsumeIngestQueue",
                actions=[
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:ChangeMessageVisibility",
                    "sqs:GetQueueAttributes",
                ],
                resources=[self.queue.queue_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="DecryptMessagesThroughSqs",
                actions=["kms:Decrypt"],
                resources=[key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"sqs.{region}.amazonaws.com"}},
            )
        )
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
        role.add_to_policy(
            iam.PolicyStatement(
                sid="EncryptObjectsThroughS3",
                actions=["kms:GenerateDataKey", "kms:Decrypt"],
                resources=[key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}},
            )
        )
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
        acknowledge_wildcard_resource(
            policy,
            f"{log_group.log_group_arn}:*",
            "Log streams are created at run time inside this function's own log group.",
        )
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray's PutTraceSegments and PutTelemetryRecords support no resource-level permissions.",
        )
        return policy

    def _producer_policy(self, key: kms.IKey) -> iam.ManagedPolicy:
        """Attach to a producer's role: send to the ingest queue, nothing else."""
        return iam.ManagedPolicy(
            self,
            "ProducerPolicy",
            description="Lets a producer send records to the ML platform's ingest queue",
            statements=[
                iam.PolicyStatement(sid="SendRecords", actions=["sqs:SendMessage"], resources=[self.queue.queue_arn]),
                iam.PolicyStatement(
                    sid="EncryptMessages",
                    actions=["kms:GenerateDataKey", "kms:Decrypt"],
                    resources=[key.key_arn],
                    # The key encrypts the whole lake: producers may use it only through SQS.
                    conditions={"StringEquals": {"kms:ViaService": f"sqs.{Stack.of(self).region}.amazonaws.com"}},
                ),
            ],
        )

    def _alarms(self, topic: sns.ITopic, names: Names) -> None:
        action = cloudwatch_actions.SnsAction(topic)
        alarms = {
            "DeadLetterAlarm": (
                "Messages reached the ingest dead-letter queue: records are waiting to be redriven",
                self.dead_letter_queue.metric_approximate_number_of_messages_visible(
                    period=Duration.minutes(1), statistic="Maximum"
                ),
            ),
            "ErrorsAlarm": (
                "The ingest function failed invocations",
                self.function.metric_errors(period=Duration.minutes(5), statistic="Sum"),
            ),
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
        for id, (description, metric) in alarms.items():
            alarm = cloudwatch.Alarm(
                self,
                id,
                alarm_description=description,
                metric=metric,
                threshold=0,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=1,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            alarm.add_alarm_action(action)
