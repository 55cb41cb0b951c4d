"""Retraining triggers: drift and new data start the training state machine through one Lambda.

* Drift (``retraining.on_drift``): two rules on the default bus deliver to the function directly:
  ``CloudWatch Alarm State Change`` to ``ALARM`` of the environment's drift alarms
  (``<project>-<env>-drift-<endpoint key>``), and the drift monitor's ``Drift Summary`` events of this
  environment that report drift.
* New data (``retraining.on_new_data``): the raw zone sends ``Object Created`` to EventBridge; a rule
  keeps the ``raw/`` keys of this environment's raw bucket (never curated, features or predictions,
  which live in other buckets, nor ``quarantine/``) and sends them to an SQS queue, whose event
  source mapping waits ``batching_window_seconds`` before it hands one batch to the function: a
  burst of uploads arrives as one batch, and the function groups it per tenant.

* Candidates (always): ``SageMaker Model Package State Change`` of this environment's package groups to
  ``Approved`` or ``Rejected`` reach the function directly; a decided candidate of a triggered run no longer
  holds drift back.
* Kept uploads (``retraining.on_new_data``): a scheduled rule every ``SWEEP_INTERVAL`` lets the function start
  the runs of uploads that arrived while their tenant was busy, once it is free and its cooldown has passed.

The function (lambda/retrain_trigger) keeps one state item per tenant in the run ledger and changes it
with one conditional write per decision: one run per tenant at a time, the cooldown, uploads kept for the
next run, drift held while a candidate awaits review. Every decision is recorded in the run ledger.
Whatever cannot be delivered or processed ends in a dead-letter queue that alarms.
"""

from __future__ import annotations

import jsii
from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk.interfaces.aws_events import IRuleRef
from constructs import Construct

from config.monitoring import Retraining
from config.naming import Names
from mlops_constructs.alarms import alarm_above_zero
from mlops_constructs.functions import platform_function
from mlops_constructs.ingestion import RAW_PREFIX
from mlops_constructs.nag import acknowledge, acknowledge_wildcard_resource
from mlops_constructs.publishing import CONFIG_PREFIX, EXAMPLE_TENANT
from mlops_constructs.queues import dead_letter_queue, encrypted_queue
from mlops_constructs.tables import TENANT_INDEX

ALARM_DETAIL_TYPE = "CloudWatch Alarm State Change"
DRIFT_DETAIL_TYPE = "Drift Summary"
OBJECT_CREATED = "Object Created"
PACKAGE_DETAIL_TYPE = "SageMaker Model Package State Change"
DECIDED_STATUSES = ("Approved", "Rejected")
# How often kept uploads are looked at: the next run starts at most this long after the cooldown ends.
SWEEP_INTERVAL = Duration.minutes(10)
# Tenants whose data never starts a run: the example tenant's dataset is republished by every deploy.
IGNORED_TENANTS = (EXAMPLE_TENANT,)

FUNCTION_TIMEOUT_SECONDS = 60
# A burst of uploads should arrive as one batch. Lambda takes up to 10,000 SQS messages per batch
# once a batching window is set, within its 6 MB payload; an S3 event is about 1.5 KB as an SQS
# record, so 1,000 stays well inside it. Without a window Lambda allows at most 10.
BURST_BATCH_SIZE = 1000
UNBATCHED_BATCH_SIZE = 10
# The fewest concurrent batches an SQS event source mapping allows: fewer racing batches, and the
# deterministic execution name makes the races that remain harmless.
MAX_CONCURRENT_BATCHES = 2
MAX_RECEIVE_COUNT = 5
# EventBridge's and Lambda's asynchronous retries: hours of an outage, then the dead-letter queue.
RULE_RETRY_ATTEMPTS = 8
RULE_MAX_EVENT_AGE = Duration.hours(6)
ASYNC_RETRY_ATTEMPTS = 2
# The function's Powertools service name (its folder) and the metric it publishes per decision
# (lambda/retrain_trigger/handler.py, METRICS): the dashboard graphs them.
SERVICE = "retrain-trigger"
DECISION_METRICS = (
    "RetrainingStarted",
    "RetrainingDuplicates",
    "RetrainingRunningSkips",
    "RetrainingCooldownSkips",
    "RetrainingAwaitingCandidate",
    "RetrainingDeferred",
    "RetrainingRunsEnded",
    "RetrainingCandidatesDecided",
    "RetrainingCandidatesExpired",
    "TriggerEventsIgnored",
    "TriggerEventsRejected",
)


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


@jsii.implements(lambda_.IDestination)
class _QueueDestination:
    """An on-failure destination whose permissions the caller grants (CDK's ``SqsDestination`` grants
    every encrypt action of the key, wildcards included)."""

    def __init__(self, queue: sqs.IQueue) -> None:
        self._queue = queue

    def bind(
        self, scope: Construct, fn: lambda_.IFunction, *, type: lambda_.DestinationType
    ) -> lambda_.DestinationConfig:
        return lambda_.DestinationConfig(destination=self._queue.queue_arn)


class RetrainTrigger(Construct):
    """The retrain-trigger function, its rules, the new-data queue, dead-letter queues and alarms."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        names: Names,
        settings: Retraining,
        key: kms.IKey,
        raw_bucket: s3.IBucket,
        config_bucket: s3.IBucket,
        labels_dataset: str | None,
        ledger: dynamodb.ITableV2,
        state_machine: sfn.StateMachine,  # not an IStateMachine: its name scopes DescribeExecution
        alarm_topic: sns.ITopic,
        log_retention_days: int,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, id)
        self._key = key
        self._region = Stack.of(self).region

        self.dead_letter_queue = dead_letter_queue(self, "DeadLetterQueue", key=key, removal_policy=removal_policy)
        acknowledge(
            self.dead_letter_queue,
            "AwsSolutions-SQS3",
            "This is the dead-letter queue of the drift rules and of the function's failed invocations.",
        )
        parts = platform_function(
            self,
            "Function",
            folder="retrain_trigger",
            description="Starts at most one training run per tenant at a time on drift or new raw data",
            role_description=(
                "Retrain trigger: starts and follows training runs, reads tenant configs and candidates, keeps the "
                "tenant's state and decisions in the run ledger"
            ),
            names=names,
            key=key,
            environment={
                "STATE_MACHINE_ARN": state_machine.state_machine_arn,
                "LEDGER_TABLE": ledger.table_name,
                "LEDGER_INDEX": TENANT_INDEX,
                "COOLDOWN_SECONDS": str(settings.cooldown_seconds),
                "CANDIDATE_EXPIRY_SECONDS": str(settings.candidate_expiry_seconds),
                "RAW_BUCKET": raw_bucket.bucket_name,
                "RAW_PREFIX": RAW_PREFIX,
                "CONFIG_BUCKET": config_bucket.bucket_name,
                "CONFIG_PREFIX": CONFIG_PREFIX,
                "LABELS_DATASET": labels_dataset or "",
                "IGNORED_TENANTS": ",".join(IGNORED_TENANTS),
                "ALARM_NAME_PREFIX": names.drift_alarm_prefix,
                "MONITORING_SOURCE": names.monitoring_source,
                "PACKAGE_GROUP_PREFIX": names.prefix,
            },
            log_retention_days=log_retention_days,
            removal_policy=removal_policy,
            timeout_seconds=FUNCTION_TIMEOUT_SECONDS,
            memory_size=256,
        )
        self.function = parts.function
        self.role = parts.role
        self.policy = self._grant_least_privilege(
            state_machine=state_machine, ledger=ledger, config_bucket=config_bucket, names=names
        )

        self.drift_rules: list[events.Rule] = []
        self.new_data_rule: events.Rule | None = None
        self.sweep_rule: events.Rule | None = None
        self.queue: sqs.Queue | None = None
        self.queue_dead_letter_queue: sqs.Queue | None = None
        target = targets.LambdaFunction(
            self.function,
            dead_letter_queue=self.dead_letter_queue,
            retry_attempts=RULE_RETRY_ATTEMPTS,
            max_event_age=RULE_MAX_EVENT_AGE,
        )
        if settings.on_drift:
            self._drift_rules(names, target)
        if settings.on_new_data:
            self._new_data(raw_bucket, settings=settings, removal_policy=removal_policy)
            self.sweep_rule = events.Rule(
                self,
                "PendingSweepRule",
                description="Starts the runs of uploads kept while their tenant was busy, once its cooldown passed",
                schedule=events.Schedule.rate(SWEEP_INTERVAL),
                targets=[target],
            )
        self.package_rule = events.Rule(
            self,
            "CandidateDecisionRule",
            description=f"Approved and rejected model packages of {names.environment}'s groups (default bus)",
            event_pattern=events.EventPattern(
                source=["aws.sagemaker"],
                detail_type=[PACKAGE_DETAIL_TYPE],
                detail={
                    "ModelPackageGroupName": events.Match.prefix(f"{names.prefix}-"),
                    "ModelApprovalStatus": list(DECIDED_STATUSES),
                },
            ),
            targets=[target],
        )
        self._alarms(alarm_topic)

    def _allow(self, sid: str, actions: list[str], resource: str) -> None:
        self.role.add_to_policy(iam.PolicyStatement(sid=sid, actions=actions, resources=[resource]))

    def _allow_key_through(self, sid: str, service: str, actions: list[str]) -> None:
        # The key encrypts the whole platform: the function may use it only through this service.
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid=sid,
                actions=actions,
                resources=[self._key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"{service}.{self._region}.amazonaws.com"}},
            )
        )

    def _grant_least_privilege(
        self,
        *,
        state_machine: sfn.StateMachine,
        ledger: dynamodb.ITableV2,
        config_bucket: s3.IBucket,
        names: Names,
    ) -> iam.Policy:
        # Actions and resource types from the Service Authorization Reference:
        # https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsstepfunctions.html
        # (StartExecution on stateMachine, DescribeExecution on execution),
        # https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazondynamodb.html
        # (PutItem, UpdateItem, Query on table; Query on index),
        # https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsagemaker.html
        # (DescribeModelPackage on model-package),
        # https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html
        # (GetObject on object, ListBucket on bucket).
        stack = Stack.of(self)
        self._allow("StartTraining", ["states:StartExecution"], state_machine.state_machine_arn)
        executions = stack.format_arn(
            service="states",
            resource="execution",
            resource_name=f"{state_machine.state_machine_name}:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        # Whether the run holding a tenant's lock has ended.
        self._allow("FollowTrainingRuns", ["states:DescribeExecution"], executions)
        # One state item per tenant (conditional UpdateItem), one item per decision (PutItem), a run's PACKAGE#
        # records (Query on the table) and the tenants with kept uploads (Query on the ByTenant index).
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="KeepStateAndRecordDecisions",
                actions=["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"],
                resources=[ledger.table_arn],
            )
        )
        self._allow("FindKeptUploads", ["dynamodb:Query"], f"{ledger.table_arn}/index/{TENANT_INDEX}")
        self._allow_key_through(
            "EncryptLedgerThroughDynamoDb",
            "dynamodb",
            ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
        )
        # Whether a candidate is still awaiting review.
        packages = stack.format_arn(service="sagemaker", resource="model-package", resource_name=f"{names.prefix}-*/*")
        self._allow("DescribeCandidates", ["sagemaker:DescribeModelPackage"], packages)
        # The dataset each tenant trains on: its published pipeline config, listed before it is read.
        configs = config_bucket.arn_for_objects(f"{CONFIG_PREFIX}*")
        self._allow("ReadTenantConfigs", ["s3:GetObject"], configs)
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="ListTenantConfigs",
                actions=["s3:ListBucket"],
                resources=[config_bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{CONFIG_PREFIX}*"]}},
            )
        )
        self._allow_key_through("DecryptConfigsThroughS3", "s3", ["kms:Decrypt"])
        # Failed asynchronous invocations (drift rules) keep their event in the dead-letter queue.
        self._allow("KeepFailedInvocations", ["sqs:SendMessage"], self.dead_letter_queue.queue_arn)
        self._allow_key_through("EncryptMessagesThroughSqs", "sqs", ["kms:GenerateDataKey", "kms:Decrypt"])
        policy = self.role.node.find_child("DefaultPolicy")
        assert isinstance(policy, iam.Policy)
        for resource, reason in (
            (
                executions,
                "Runs are named per tenant, cause and window; the grant stops at this state machine.",
            ),
            (packages, "Model package groups are data, one per tenant and model; the grant stops at this environment."),
            (configs, "Tenant configs are published per tenant; reads stop at the config prefix."),
        ):
            acknowledge_wildcard_resource(policy, resource, reason)
        self.function.configure_async_invoke(
            on_failure=_QueueDestination(self.dead_letter_queue),
            retry_attempts=ASYNC_RETRY_ATTEMPTS,
            max_event_age=RULE_MAX_EVENT_AGE,
        )
        # Lambda checks the role may send to the destination when the configuration is created.
        self.function.node.find_child("EventInvokeConfig").node.add_dependency(policy)
        return policy

    def _drift_rules(self, names: Names, target: events.IRuleTarget) -> None:
        self.drift_rules = [
            events.Rule(
                self,
                "DriftAlarmRule",
                description=f"{names.environment}'s drift alarms going to ALARM start a retraining",
                event_pattern=events.EventPattern(
                    source=["aws.cloudwatch"],
                    detail_type=[ALARM_DETAIL_TYPE],
                    detail={
                        "alarmName": events.Match.prefix(names.drift_alarm_prefix),
                        "state": {"value": ["ALARM"]},
                    },
                ),
                targets=[target],
            ),
            events.Rule(
                self,
                "DriftSummaryRule",
                description=f"The drift monitor's summaries of {names.environment} that report drift",
                event_pattern=events.EventPattern(
                    source=[names.monitoring_source],
                    detail_type=[DRIFT_DETAIL_TYPE],
                    detail={"environment": [names.environment], "drift": [True]},
                ),
                targets=[target],
            ),
        ]

    def _new_data(self, raw_bucket: s3.IBucket, *, settings: Retraining, removal_policy: RemovalPolicy) -> None:
        window = settings.batching_window_seconds
        self.queue_dead_letter_queue = dead_letter_queue(
            self, "NewDataDeadLetterQueue", key=self._key, removal_policy=removal_policy
        )
        acknowledge(
            self.queue_dead_letter_queue,
            "AwsSolutions-SQS3",
            "This is the dead-letter queue of the new-data queue and of its rule; a DLQ of a DLQ would only move "
            "the problem.",
        )
        self.queue = encrypted_queue(
            self,
            "NewDataQueue",
            key=self._key,
            # AWS's advice for SQS event sources: six times the function timeout plus the batching
            # window, so a batch is not redelivered while it is still being decided.
            visibility_timeout=Duration.seconds(6 * FUNCTION_TIMEOUT_SECONDS + window),
            retention_period=Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.queue_dead_letter_queue, max_receive_count=MAX_RECEIVE_COUNT
            ),
            removal_policy=removal_policy,
        )
        self.new_data_rule = events.Rule(
            self,
            "NewDataRule",
            description="Objects created under raw/ of the raw zone, gathered in the new-data queue",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=[OBJECT_CREATED],
                detail={
                    "bucket": {"name": [raw_bucket.bucket_name]},
                    "object": {"key": events.Match.prefix(RAW_PREFIX)},
                },
            ),
            targets=[_QueueTarget(self.queue, dead_letter_queue=self.queue_dead_letter_queue)],
        )
        # Only this rule may send to the queue and, for what it cannot deliver, to its dead-letter queue.
        for sid, queue in (("NewDataRuleSends", self.queue), ("NewDataRuleDeadLetters", self.queue_dead_letter_queue)):
            queue.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=sid,
                    principals=[iam.ServicePrincipal("events.amazonaws.com")],
                    actions=["sqs:SendMessage"],
                    resources=[queue.queue_arn],
                    conditions={"ArnEquals": {"aws:SourceArn": self.new_data_rule.rule_arn}},
                )
            )

        # Not SqsEventSource: its grant adds kms:Decrypt on the key with no condition. Lambda checks
        # these grants when it creates the mapping, hence the dependency.
        self._allow(
            "ConsumeNewDataQueue",
            ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"],
            self.queue.queue_arn,
        )
        mapping = lambda_.EventSourceMapping(
            self,
            "NewDataMapping",
            target=self.function,
            event_source_arn=self.queue.queue_arn,
            batch_size=batch_size(window),
            max_batching_window=Duration.seconds(window) if window > 0 else None,
            max_concurrency=MAX_CONCURRENT_BATCHES,
            report_batch_item_failures=True,
        )
        mapping.node.add_dependency(self.policy)

    def _alarms(self, topic: sns.ITopic) -> None:
        alarms = {
            "DeadLetterAlarm": (
                "Drift events could not be delivered to the retrain trigger, or it failed on them "
                "(see the retrain trigger's dead-letter queue)",
                self.dead_letter_queue.metric_approximate_number_of_messages_visible(
                    period=Duration.minutes(5), statistic="Maximum"
                ),
            ),
            "ErrorsAlarm": (
                "The retrain trigger failed invocations",
                self.function.metric_errors(period=Duration.minutes(5), statistic="Sum"),
            ),
        }
        if self.queue_dead_letter_queue is not None:
            alarms["NewDataDeadLetterAlarm"] = (
                "New-data events reached the retrain trigger's new-data dead-letter queue: redrive them",
                self.queue_dead_letter_queue.metric_approximate_number_of_messages_visible(
                    period=Duration.minutes(5), statistic="Maximum"
                ),
            )
        alarm_above_zero(self, topic, alarms)
