"""Retraining triggers: drift and new data start the training state machine through one Lambda.

* Drift (``retraining.on_drift``): two rules on the default bus deliver to the function directly:
  ``CloudWatch Alarm State Change`` to ``ALARM`` of the environment's drift alarms
  (``<project>-<env>-drift-<endpoint key>``), and the drift monitor's ``Drift Summary`` events of this
  environment that report drift.
* New data (``retraining.on_new_data``): raw-zone uploads reach the function in batches through a queue
  (mlops_constructs/retrain_new_data.py); the function groups a batch per tenant.
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
from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from config.monitoring import Retraining
from config.naming import Names
from mlops_constructs.alarms import alarm_above_zero, errors, messages_waiting
from mlops_constructs.arns import executions_arn, model_packages_arn
from mlops_constructs.encryption import TABLE_ITEM_KEY_ACTIONS, key_used_through
from mlops_constructs.event_delivery import (
    ASYNC_RETRY_ATTEMPTS,
    RULE_MAX_EVENT_AGE,
    function_target,
    package_state_changes,
)
from mlops_constructs.functions import platform_function
from mlops_constructs.ingestion import RAW_PREFIX
from mlops_constructs.nag import acknowledge_wildcard_resource
from mlops_constructs.publishing import CONFIG_PREFIX, EXAMPLE_TENANT
from mlops_constructs.queues import dead_letter_queue
from mlops_constructs.retrain_new_data import new_data_path
from mlops_constructs.tables import TENANT_INDEX

ALARM_DETAIL_TYPE = "CloudWatch Alarm State Change"
DRIFT_DETAIL_TYPE = "Drift Summary"
DECIDED_STATUSES = ("Approved", "Rejected")
# How often kept uploads are looked at: the next run starts at most this long after the cooldown ends.
SWEEP_INTERVAL = Duration.minutes(10)
# Tenants whose data never starts a run: the example tenant's dataset is republished by every deploy.
IGNORED_TENANTS = (EXAMPLE_TENANT,)

FUNCTION_TIMEOUT_SECONDS = 60
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


@jsii.implements(lambda_.IDestination)
class _QueueDestination:
    """An on-failure destination whose permissions the caller grants (CDK's ``SqsDestination``, which
    mlops_constructs/event_delivery.py uses elsewhere, grants every encrypt action of the key)."""

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

        self.dead_letter_queue = dead_letter_queue(
            self,
            "DeadLetterQueue",
            key=key,
            removal_policy=removal_policy,
            last_stop="This is the dead-letter queue of the drift rules and of the function's failed invocations.",
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
        target = function_target(self.function, dead_letter_queue=self.dead_letter_queue)
        if settings.on_drift:
            self._drift_rules(names, target)
        if settings.on_new_data:
            new_data = new_data_path(
                self, parts, raw_bucket=raw_bucket, key=key, settings=settings, removal_policy=removal_policy
            )
            self.queue, self.queue_dead_letter_queue = new_data.queue, new_data.dead_letter_queue
            self.new_data_rule = new_data.rule
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
            event_pattern=package_state_changes(names, DECIDED_STATUSES),
            targets=[target],
        )
        self._alarms(alarm_topic)

    def _allow(self, sid: str, actions: list[str], resource: str) -> None:
        self.role.add_to_policy(iam.PolicyStatement(sid=sid, actions=actions, resources=[resource]))

    def _allow_key_through(self, sid: str, service: str, actions: list[str]) -> None:
        # The key encrypts the whole platform: the function may use it only through this service.
        self.role.add_to_policy(key_used_through(self, self._key, service, actions, sid=sid))

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
        self._allow("StartTraining", ["states:StartExecution"], state_machine.state_machine_arn)
        executions = executions_arn(self, state_machine)
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
            TABLE_ITEM_KEY_ACTIONS,
        )
        # Whether a candidate is still awaiting review.
        packages = model_packages_arn(self, names)
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

    def _alarms(self, topic: sns.ITopic) -> None:
        alarms = {
            "DeadLetterAlarm": (
                "Drift events could not be delivered to the retrain trigger, or it failed on them "
                "(see the retrain trigger's dead-letter queue)",
                messages_waiting(self.dead_letter_queue),
            ),
            "ErrorsAlarm": ("The retrain trigger failed invocations", errors(self.function)),
        }
        if self.queue_dead_letter_queue is not None:
            alarms["NewDataDeadLetterAlarm"] = (
                "New-data events reached the retrain trigger's new-data dead-letter queue: redrive them",
                messages_waiting(self.queue_dead_letter_queue),
            )
        alarm_above_zero(self, topic, alarms)
