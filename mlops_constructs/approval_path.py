"""The approval path: an approved model package becomes its endpoint's Challenger, through a recorded, safe deploy.

docs/approval-path.md has the design and the runbook. In short:

* **Approval function** (``lambda/approval/handler.py``), on two EventBridge rules of the default bus:
  ``SageMaker Model Package State Change`` of this environment's package groups (``<project>-<env>-``)
  that are ``Approved`` or ``PendingManualApproval``, and CloudTrail's record of a successful
  ``UpdateModelPackage`` that approves one (who approved; in prod, only a listed approver's promotes).
  It checks the package (``model_promotion.py``, the checks ``mlops promote`` runs too), and starts
  the deployment workflow for an endpoint with a ``Challenger``; otherwise it records, prepares pointers
  nobody reads yet, and notifies.
* **Deployment workflow** (mlops_constructs/approval_workflow.py): waits for the Serving stack and the
  deployment lock, writes the pointer, runs the deploy project, judges the stack and the endpoint, and
  restores the pointer when the deploy fails.
* **Deploy project** (mlops_constructs/approval_deploy.py): applies ``<env>-Serving`` with its previous
  template, so CloudFormation re-reads the pointers, through a role and an execution role of its own that
  reach only the Serving stack. No Lambda function holds a CloudFormation write permission.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from aws_cdk import Annotations, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from config.instance_types import is_gpu
from config.naming import Names
from config.schema import EnvironmentConfig
from mlops_constructs.alarms import alarm_above_zero, errors, messages_waiting
from mlops_constructs.approval_deploy import build_timeout_minutes, deploy_project, guard_policy
from mlops_constructs.approval_workflow import deployment_workflow, lock_seconds
from mlops_constructs.arns import model_packages_arn
from mlops_constructs.deploy_check import grant_endpoint_check
from mlops_constructs.encryption import grant_table_items, key_used_through
from mlops_constructs.event_delivery import (
    approving_calls,
    function_target,
    keep_failed_invocations,
    package_state_changes,
)
from mlops_constructs.functions import PlatformFunction, platform_function
from mlops_constructs.model_pointers import EXAMPLE, pointer_name
from mlops_constructs.nag import acknowledge_wildcard_resource
from mlops_constructs.publishing import CONFIG_PREFIX
from mlops_constructs.queues import dead_letter_queue

FOLDER = "approval"  # lambda/approval: handler.py, deployment.py, model_promotion.py
STATUSES = ("Approved", "PendingManualApproval")
# Lambda allows 4 KB of environment for names and values together; the rest is the other variables.
MAX_ENDPOINTS_CHARACTERS = 3000


def endpoints_document(environment: EnvironmentConfig) -> str:
    """``ENDPOINTS`` of the approval function (lambda/approval/handler.py, ``load_endpoints``): positional, compact."""
    document = {
        key: [
            endpoint.tenant,
            endpoint.model,
            [
                [
                    variant.name,
                    variant.flavour,
                    variant.instance_type,
                    variant.min_capacity,
                    variant.max_capacity,
                    variant.initial_instance_count,
                    variant.weight,
                ]
                for variant in endpoint.variants
            ],
        ]
        for key, endpoint in sorted(environment.serving.endpoints.items())
    }
    return json.dumps(document, separators=(",", ":"))


def new_variant_document(environment: EnvironmentConfig) -> str:
    """``NEW_VARIANT``: the defaults of a variant the approval function suggests (the environment's inference type)."""
    instance_type = environment.instance_types.inference
    capacity = 2 if environment.is_production else 1
    flavour = "gpu" if is_gpu(instance_type) else "cpu"
    return json.dumps([flavour, instance_type, capacity, capacity * 2, capacity], separators=(",", ":"))


class ApprovalPath(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        names: Names,
        environment: EnvironmentConfig,
        key: kms.IKey,
        topic: sns.ITopic,
        ledger: dynamodb.ITableV2,
        artifacts_bucket: s3.IBucket,
        serving_stack_name: str,
        producer_stack_names: Sequence[str],
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, id)
        self._names = names
        self._environment = environment
        self._key = key
        self._topic = topic
        self._ledger = ledger
        self._stack = Stack.of(self)
        self._removal_policy = removal_policy
        self.serving_stack_name = serving_stack_name
        self.build_timeout_minutes = build_timeout_minutes(environment)
        self.max_waits = self.build_timeout_minutes  # one WAIT a minute, for as long as a deploy may take
        self.lock_seconds = lock_seconds(self.max_waits, self.build_timeout_minutes)
        self._check_endpoints_size()
        log_retention_days = environment.retention.log_retention_days

        self.deployment_function = self._deployment_function()
        self.project = deploy_project(
            self,
            names=names,
            serving_stack_name=serving_stack_name,
            producer_stack_names=producer_stack_names,
            key=key,
            timeout_minutes=self.build_timeout_minutes,
            log_retention_days=log_retention_days,
            removal_policy=removal_policy,
        )
        self.deploy_guard = guard_policy(self, self.project)
        self.state_machine = deployment_workflow(
            self,
            function=self.deployment_function.function,
            project=self.project,
            serving_stack_name=serving_stack_name,
            max_waits=self.max_waits,
            key=key,
            log_retention_days=log_retention_days,
            removal_policy=removal_policy,
        )
        self.approval_function = self._approval_function(artifacts_bucket)
        self.dead_letter_queue = dead_letter_queue(
            self,
            "DeadLetterQueue",
            key=key,
            removal_policy=removal_policy,
            last_stop=(
                "This queue is the dead-letter queue of the approval rule and of the approval function's retries."
            ),
        )
        self.rule = self._rule()
        self.approver_rule = self._approver_rule()
        self._alarms()

    # -- the functions --------------------------------------------------------------------------

    def _common(self) -> dict[str, object]:
        return {
            "names": self._names,
            "key": self._key,
            "log_retention_days": self._environment.retention.log_retention_days,
            "removal_policy": self._removal_policy,
            "folder": FOLDER,
        }

    def _deployment_function(self) -> PlatformFunction:
        parts = platform_function(
            self,
            "DeploymentFunction",
            handler="deployment.handler",
            description="Approval path: the deployment workflow's steps (lock, write and restore a pointer, judge)",
            role_description="Deployment steps: ledger lock and records, model pointers, reads the Serving stack",
            environment={
                "ENVIRONMENT": self._names.environment,
                "PACKAGE_GROUP_PREFIX": self._names.prefix,
                "SERVING_STACK_NAME": self.serving_stack_name,
                "LEDGER_TABLE": self._ledger.table_name,
                "TOPIC_ARN": self._topic.topic_arn,
                "LOCK_SECONDS": str(self.lock_seconds),
            },
            timeout_seconds=60,
            memory_size=256,
            **self._common(),  # type: ignore[arg-type]
        )
        role = parts.role
        self._grant_ledger(
            parts, ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]
        )
        pointers = self._declared_pointers()
        if pointers:
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="WriteDeclaredPointers",
                    actions=["ssm:GetParameterHistory", "ssm:PutParameter"],
                    resources=pointers,
                )
            )
        # Settling reads the stack (DescribeStacks) and checks that the endpoint runs what it deployed.
        grant_endpoint_check(
            role,
            stack_name=self.serving_stack_name,
            endpoint_names=[self._names.resource(key) for key in sorted(self._environment.serving.endpoints)],
            record=False,
            stack_actions=["cloudformation:DescribeStacks"],
        )
        self._grant_packages(parts)
        self._grant_publish(parts)
        return parts

    def _approval_function(self, artifacts_bucket: s3.IBucket) -> PlatformFunction:
        parts = platform_function(
            self,
            "ApprovalFunction",
            handler="handler.handler",
            description="Approval path: checks an approved model package and starts its deployment, or notifies",
            role_description="Approval function: read packages and tenant configs, prepare new pointers, start deploys",
            environment={
                "ENVIRONMENT": self._names.environment,
                "PACKAGE_GROUP_PREFIX": self._names.prefix,
                "POINTER_PREFIX": self._names.parameter("models") + "/",
                "ENDPOINTS": endpoints_document(self._environment),
                "NEW_VARIANT": new_variant_document(self._environment),
                "CONFIG_BUCKET": artifacts_bucket.bucket_name,
                "CONFIG_PREFIX": CONFIG_PREFIX,
                "LEDGER_TABLE": self._ledger.table_name,
                "TOPIC_ARN": self._topic.topic_arn,
                "STATE_MACHINE_ARN": self.state_machine.state_machine_arn,
                "IGNORED_TENANTS": EXAMPLE,
                # Only these roles' approvals are promoted (config: approval.approver_role_arns; required in prod).
                "APPROVER_ROLE_ARNS": ",".join(self._environment.approval.approver_role_arns),
            },
            timeout_seconds=60,
            memory_size=256,
            **self._common(),  # type: ignore[arg-type]
        )
        role, stack = parts.role, self._stack
        self._grant_packages(parts)
        reads = [
            artifacts_bucket.arn_for_objects(f"{CONFIG_PREFIX}*"),
            artifacts_bucket.arn_for_objects("artifacts/runs/*"),
        ]
        role.add_to_policy(
            iam.PolicyStatement(sid="ReadConfigsSchemasBaselines", actions=["s3:GetObject"], resources=reads)
        )
        role.add_to_principal_policy(key_used_through(self, self._key, "s3", ["kms:Decrypt"]))
        for resource in reads:
            acknowledge_wildcard_resource(
                parts.policy,
                resource,
                "Tenant configs, feature schemas, evaluations and baselines are per tenant and run; "
                "reads stop at those prefixes.",
            )
        # Pointers of endpoints not declared yet have names known only at run time; the ones the Serving
        # stack reads are the deployment workflow's alone (explicitly denied here).
        pointers = stack.format_arn(
            service="ssm", resource="parameter", resource_name=self._names.parameter("models")[1:] + "/*"
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="PrepareUnreadPointers",
                actions=["ssm:GetParameterHistory", "ssm:PutParameter"],
                resources=[pointers],
            )
        )
        acknowledge_wildcard_resource(
            parts.policy,
            pointers,
            "Pointers of endpoints not declared yet are named at run time (<tenant>-<model>); the pointers the "
            "Serving stack reads are denied to this function.",
        )
        declared = self._declared_pointers()
        if declared:
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="NeverWriteServedPointers",
                    effect=iam.Effect.DENY,
                    actions=["ssm:PutParameter"],
                    resources=declared,
                )
            )
        self.state_machine.grant_start_execution(role)
        self._grant_ledger(parts, ["dynamodb:PutItem"])
        self._grant_publish(parts)
        return parts

    def _declared_pointers(self) -> list[str]:
        """The ARNs of the pointers the Serving stack reads, one per declared endpoint and variant."""
        return [
            self._stack.format_arn(
                service="ssm",
                resource="parameter",
                resource_name=pointer_name(self._names, key, variant.name)[1:],
            )
            for key, endpoint in sorted(self._environment.serving.endpoints.items())
            for variant in endpoint.variants
        ]

    def _grant_ledger(self, parts: PlatformFunction, actions: list[str]) -> None:
        grant_table_items(parts.role, self._ledger, self._key, actions, sid="Ledger")

    def _grant_packages(self, parts: PlatformFunction) -> None:
        packages = model_packages_arn(self, self._names)
        parts.role.add_to_policy(
            iam.PolicyStatement(
                sid="DescribePackages", actions=["sagemaker:DescribeModelPackage"], resources=[packages]
            )
        )
        acknowledge_wildcard_resource(
            parts.policy,
            packages,
            "Model package groups are data, one per tenant and model; the grant stops at this environment's prefix.",
        )

    def _grant_publish(self, parts: PlatformFunction) -> None:
        parts.role.add_to_policy(
            iam.PolicyStatement(sid="Notify", actions=["sns:Publish"], resources=[self._topic.topic_arn])
        )
        parts.role.add_to_principal_policy(
            key_used_through(self, self._key, "sns", ["kms:Decrypt", "kms:GenerateDataKey"])
        )

    # -- the rule and the alarms ----------------------------------------------------------------

    def _rule(self) -> events.Rule:
        keep_failed_invocations(self.approval_function, self.dead_letter_queue)
        return events.Rule(
            self,
            "ApprovalRule",
            description=f"Approved and pending model packages of {self._names.environment}'s groups (default bus)",
            event_pattern=package_state_changes(self._names, STATUSES),
            targets=[function_target(self.approval_function.function, dead_letter_queue=self.dead_letter_queue)],
        )

    def _approver_rule(self) -> events.Rule:
        """CloudTrail's record of each successful call that approves a package of this environment: who approved.

        CloudTrail delivers management events (UpdateModelPackage is one) to the default bus with the service's
        source and the detail type ``AWS API Call via CloudTrail``
        (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-service-event-cloudtrail.html); a failed call
        carries ``errorCode``, and approved nothing. Where ``approval.approver_role_arns`` is set, this record, not
        the state change, promotes (mlops_platform/registry/approval.py says why that is right in either order).
        """
        environment = self._environment
        return events.Rule(
            self,
            "ApproverRule",
            description=f"Who approved a model package of {self._names.environment}'s groups (CloudTrail, default bus)",
            event_pattern=approving_calls(self._names, environment.region, environment.account),
            targets=[function_target(self.approval_function.function, dead_letter_queue=self.dead_letter_queue)],
        )

    def _alarms(self) -> None:
        period = Duration.minutes(5)
        alarm_above_zero(
            self,
            self._topic,
            {
                "DeadLetterAlarm": (
                    "Model package events could not be handled (see the approval path's dead-letter queue)",
                    messages_waiting(self.dead_letter_queue, period),
                ),
                "ApprovalErrorsAlarm": (
                    "The approval function failed invocations",
                    errors(self.approval_function.function, period),
                ),
                "DeploymentErrorsAlarm": (
                    "A deployment workflow step failed (a promotion may hold the lock until it expires)",
                    errors(self.deployment_function.function, period),
                ),
                "WorkflowStoppedAlarm": (
                    "A model deployment timed out or was stopped by hand: check its pointer and the deployment lock",
                    cloudwatch.MathExpression(
                        expression="timedOut + aborted",
                        using_metrics={
                            "timedOut": self.state_machine.metric_timed_out(period=period, statistic="Sum"),
                            "aborted": self.state_machine.metric_aborted(period=period, statistic="Sum"),
                        },
                        period=period,
                    ),
                ),
            },
        )

    def _check_endpoints_size(self) -> None:
        size = len(endpoints_document(self._environment))
        if size > MAX_ENDPOINTS_CHARACTERS:
            Annotations.of(self).add_error(
                f"serving.endpoints of {self._names.environment} takes {size} characters in the approval function's "
                f"ENDPOINTS variable; allowed: at most {MAX_ENDPOINTS_CHARACTERS} (AWS Lambda's 4 KB of environment, "
                "roughly 25 endpoints of two variants)."
            )
