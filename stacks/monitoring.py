"""Monitoring: the drift monitor's schedules and jobs, the retraining triggers, the approval path and the dashboard.

Stateless. It builds on every stack before it (ARCHITECTURE.md): Foundation's key, topic, zones,
ledger and model pointers; Ingestion's queues; Training's image and state machine; Serving's
endpoints and example model.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from constructs import Construct

from config.tenants import PipelineConfig
from mlops_constructs.approval_path import ApprovalPath
from mlops_constructs.dashboard import PlatformDashboard, QueueDepth
from mlops_constructs.drift_monitor import DriftMonitor, DriftMonitorZones
from mlops_constructs.example_models import ExampleModelFiles, example_models_of
from mlops_constructs.retrain_trigger import RetrainTrigger
from stacks.ingestion import IngestionStack
from stacks.inputs import StackInputs
from stacks.serving import ServingStack
from stacks.training import TrainingStack


class MonitoringStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        inputs: StackInputs,
        ingestion: IngestionStack,
        training: TrainingStack,
        serving: ServingStack,
        pipelines: tuple[PipelineConfig, ...] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        self.removal_policy = inputs.removal_policy
        self.environment_config = inputs.environment
        self.names = inputs.names
        self.foundation = inputs.foundation
        self.ingestion = ingestion
        self.training = training
        self.serving = serving
        self.pipelines = pipelines

        # Each part is built by its own method, one construct module each (mlops_constructs/).
        self._drift_monitoring()
        self._retraining_triggers()
        self._approval_path()
        self._training_alarms()
        self._dashboard()

    def _drift_monitoring(self) -> None:
        """The drift monitor (platform engine) or Model Monitor schedules, per endpoint with data capture."""
        # The example models' baselines: the job reads a variant's while its pointer is the sentinel.
        self.example_baselines = ExampleModelFiles(
            self,
            "ExampleBaselines",
            models=example_models_of(self.environment_config.serving.endpoints.values()),
            kind="baselines",
        )
        lake = self.foundation.lake.zones
        self.drift_monitor = DriftMonitor(
            self,
            "DriftMonitor",
            names=self.names,
            environment=self.environment_config,
            key=self.foundation.key,
            topic=self.foundation.topic,
            zones=DriftMonitorZones(capture=lake["capture"], artifacts=lake["artifacts"], raw=lake["raw"]),
            image=self.training.images.cpu,
            example_baselines=self.example_baselines.assets,
            removal_policy=self.removal_policy,
        )

    def _retraining_triggers(self) -> None:
        """Drift and new data → the retrain-trigger λ → the training state machine."""
        retraining = self.environment_config.monitoring.retraining
        self.retrain_trigger: RetrainTrigger | None = None
        if not (retraining.on_drift or retraining.on_new_data):
            return  # nothing would ever invoke it
        self.retrain_trigger = RetrainTrigger(
            self,
            "RetrainTrigger",
            names=self.names,
            settings=retraining,
            key=self.foundation.key,
            raw_bucket=self.foundation.lake.raw,
            config_bucket=self.foundation.lake.zones["artifacts"],
            labels_dataset=self.environment_config.monitoring.labels_dataset,
            ledger=self.foundation.ledger_table,
            state_machine=self.training.pipeline.state_machine,
            alarm_topic=self.foundation.topic,
            log_retention_days=self.environment_config.retention.log_retention_days,
            removal_policy=self.removal_policy,
        )

    def _approval_path(self) -> None:
        """Model package approvals → model pointer → a deployment of the Serving stack."""
        self.approval_path = ApprovalPath(
            self,
            "ApprovalPath",
            names=self.names,
            environment=self.environment_config,
            key=self.foundation.key,
            topic=self.foundation.topic,
            ledger=self.foundation.ledger_table,
            artifacts_bucket=self.foundation.lake.zones["artifacts"],
            serving_stack_name=self.serving.stack_name,
            # The stacks whose outputs Serving reads (Fn::GetStackOutput): Foundation, and Training in staging.
            producer_stack_names=[self.foundation.stack_name, self.training.stack_name],
            removal_policy=self.removal_policy,
        )
        # docs/approval-path.md's runbook starts and inspects promotions with these.
        CfnOutput(self, "PromotionWorkflowArn", value=self.approval_path.state_machine.state_machine_arn)
        CfnOutput(self, "PromotionDeployProjectName", value=self.approval_path.project.project_name)
        # Operators attach it to people's roles: it refuses overridden buildspecs of the deploy project.
        CfnOutput(self, "PromotionDeployGuardArn", value=self.approval_path.deploy_guard.managed_policy_arn)

    def _training_alarms(self) -> None:
        """A training execution that failed, timed out or was stopped notifies the environment's topic."""
        machine = self.training.pipeline.state_machine
        period = Duration.minutes(5)
        self.training_failed_alarm = cloudwatch.Alarm(
            self,
            "TrainingFailedAlarm",
            alarm_name=self.names.resource("training-failed"),
            alarm_description=(
                "A training execution failed, timed out or was aborted: read its history in the Step Functions "
                "console and its run in the ledger"
            ),
            metric=cloudwatch.MathExpression(
                expression="failed + timedOut + aborted",
                using_metrics={
                    "failed": machine.metric_failed(period=period, statistic="Sum"),
                    "timedOut": machine.metric_timed_out(period=period, statistic="Sum"),
                    "aborted": machine.metric_aborted(period=period, statistic="Sum"),
                },
                label="Failed, timed-out and aborted training executions",
                period=period,
            ),
            threshold=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.training_failed_alarm.add_alarm_action(cloudwatch_actions.SnsAction(self.foundation.topic))

    def _dashboard(self) -> None:
        """One CloudWatch dashboard for the environment."""
        queues = [
            *(QueueDepth(f"Ingest queue {tenant}", queue) for tenant, queue in self.ingestion.pipeline.queues.items()),
            QueueDepth("Ingest DLQ", self.ingestion.pipeline.dead_letter_queue, dead_letter=True),
            QueueDepth("Scoring queue", self.serving.scoring.queue),
            QueueDepth("Scoring DLQ", self.serving.scoring.dead_letter_queue, dead_letter=True),
            QueueDepth("Training progress DLQ", self.training.progress.dead_letter_queue, dead_letter=True),
            QueueDepth("Approval path DLQ", self.approval_path.dead_letter_queue, dead_letter=True),
        ]
        trigger = self.retrain_trigger
        if trigger is not None:
            if trigger.queue is not None and trigger.queue_dead_letter_queue is not None:
                queues.append(QueueDepth("Retrain new-data queue", trigger.queue))
                queues.append(QueueDepth("Retrain new-data DLQ", trigger.queue_dead_letter_queue, dead_letter=True))
            queues.append(QueueDepth("Retrain trigger DLQ", trigger.dead_letter_queue, dead_letter=True))
        self.dashboard = PlatformDashboard(
            self,
            "Dashboard",
            names=self.names,
            serving=self.environment_config.serving,
            monitoring=self.environment_config.monitoring,
            pipelines=self.pipelines,
            state_machine=self.training.pipeline.state_machine,
            queues=queues,
        )
