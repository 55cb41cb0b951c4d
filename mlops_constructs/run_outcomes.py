"""The run ledger's record of how every training execution ended: Step Functions' status events, recorded.

Step Functions sends a ``Step Functions Execution Status Change`` event to the default bus whenever a
Standard workflow's execution starts, ends or is redriven
(https://docs.aws.amazon.com/step-functions/latest/dg/eventbridge-integration.html). A rule passes
the training state machine's events to the run-outcome function (lambda/run_outcome/handler.py),
which writes the run's final status, the state it failed in and the cause to the ledger, so
``mlops run-report`` tells the truth about failed, timed-out, aborted and redriven runs too.
The rule retries and keeps what it cannot deliver in a dead-letter queue; both that queue and
the function's errors raise an alarm on the environment's topic.
"""

from __future__ import annotations

from aws_cdk import Fn, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from config.naming import Names
from mlops_constructs.alarms import alarm_above_zero, errors, messages_waiting
from mlops_constructs.encryption import grant_table_items
from mlops_constructs.event_delivery import function_target, keep_failed_invocations, quarantine_to
from mlops_constructs.functions import platform_function
from mlops_constructs.nag import acknowledge_wildcard_resource
from mlops_constructs.queues import dead_letter_queue

DETAIL_TYPE = "Step Functions Execution Status Change"
STATUSES = ("RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


class RunOutcomes(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        names: Names,
        key: kms.IKey,
        ledger: dynamodb.ITableV2,
        state_machine: sfn.StateMachine,
        alarm_topic: sns.ITopic,
        log_retention_days: int,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        self.dead_letter_queue = dead_letter_queue(
            self,
            "DeadLetterQueue",
            key=key,
            removal_policy=removal_policy,
            last_stop="This queue is the dead-letter and quarantine queue of the run-outcome rule and function.",
        )
        parts = platform_function(
            self,
            "Function",
            folder="run_outcome",
            description="Records in the run ledger how each training execution ended (status, state, cause)",
            role_description="Run-outcome function: updates run records, reads executions' history",
            names=names,
            key=key,
            environment={
                "LEDGER_TABLE": ledger.table_name,
                "QUARANTINE_QUEUE_URL": self.dead_letter_queue.queue_url,
                "STATE_MACHINE_ARN": state_machine.state_machine_arn,
            },
            log_retention_days=log_retention_days,
            removal_policy=removal_policy,
            timeout_seconds=30,
            memory_size=256,
        )
        self.function = parts.function
        grant_table_items(
            parts.role,
            ledger,
            key,
            ["dynamodb:UpdateItem"],
            sid="UpdateRunRecords",
            key_sid="EncryptRecordsThroughDynamoDb",
        )
        machine_name = Fn.select(6, Fn.split(":", state_machine.state_machine_arn))
        executions = f"arn:{stack.partition}:states:{stack.region}:{stack.account}:execution:{machine_name}:*"
        parts.role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadWhereRunsEnded", actions=["states:GetExecutionHistory"], resources=[executions]
            )
        )
        quarantine_to(parts, self.dead_letter_queue, key)
        acknowledge_wildcard_resource(
            parts.policy, executions, "Executions are named per run at start; the grant stops at this state machine's."
        )
        keep_failed_invocations(parts, self.dead_letter_queue)
        self.rule = events.Rule(
            self,
            "Rule",
            description=f"Status changes of {names.environment}'s training executions (default bus)",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=[DETAIL_TYPE],
                detail={"stateMachineArn": [state_machine.state_machine_arn], "status": list(STATUSES)},
            ),
            targets=[function_target(self.function, dead_letter_queue=self.dead_letter_queue)],
        )
        alarm_above_zero(
            self,
            alarm_topic,
            {
                "DeadLetterAlarm": (
                    "Training status events were quarantined or could not be recorded in the run ledger "
                    "(see the run-outcome dead-letter queue)",
                    messages_waiting(self.dead_letter_queue),
                ),
                "ErrorsAlarm": (
                    "The run-outcome function failed invocations",
                    errors(self.function),
                ),
            },
        )
