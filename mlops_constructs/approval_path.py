"""The approval path: an approved model package becomes its endpoint's Challenger, through a recorded, safe deploy.

docs/approval-path.md has the design and the runbook. In short:

* **Approval function** (``lambda/approval/handler.py``), on an EventBridge rule of the default bus:
  ``SageMaker Model Package State Change`` of this environment's package groups (``<project>-<env>-``)
  that are ``Approved`` or ``PendingManualApproval``. It checks the package (``model_promotion.py``, the
  checks ``scripts/promote.py`` runs too), and starts the deployment workflow for an endpoint with a
  ``Challenger``; otherwise it records, prepares pointers nobody reads yet, and notifies.
* **Deployment workflow** (a Step Functions state machine), one execution per package and endpoint
  (its name is derived from both, so a duplicate event starts nothing): waits while the Serving stack
  is busy or someone holds the deployment lock (``scripts/promote.py`` takes it too); ends as
  ``superseded`` when the pointer already names a newer version of the package's group (approvals
  arrive in any order); writes the pointer (``lambda/approval/deployment.py``, keeping the previous
  value); runs the **deploy project**; then judges the stack and the endpoint: deployed when the stack
  is complete with the new pointer *and* the endpoint runs the endpoint config and models the stack
  deployed (``lambda/approval/endpoint_check.py``), else the pointer goes back and people are told.
* **Deploy project** (CodeBuild, no source): applies ``<env>-Serving`` with its *previous template* and
  every parameter ``UsePreviousValue``, so CloudFormation re-reads the SSM-typed pointer parameters and
  nothing else changes (no synth, no source checkout, no assets: exactly the deployed stack with the new
  pointer). Its role may do one thing: assume the CDK bootstrap deploy role of this account and region,
  which passes the bootstrap execution role to CloudFormation, as ``cdk deploy`` does. It assumes it with
  a session policy (``session_policy``) that leaves the deploy role only what the build does: change sets
  of the Serving stack, passing the execution role, reading the stack's SSM parameters. No Lambda
  function holds a CloudFormation write permission.
"""

from __future__ import annotations

import json
import math

from aws_cdk import Annotations, ArnFormat, DefaultStackSynthesizer, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from config.instance_types import is_gpu
from config.naming import Names
from config.schema import EnvironmentConfig
from mlops_constructs.alarms import alarm_above_zero
from mlops_constructs.deploy_check import grant_endpoint_check
from mlops_constructs.functions import PlatformFunction, platform_function
from mlops_constructs.log_retention import retention_days
from mlops_constructs.model_pointers import EXAMPLE, pointer_name
from mlops_constructs.nag import acknowledge, acknowledge_wildcard_resource, ignore_redundant_dependency
from mlops_constructs.publishing import CONFIG_PREFIX
from mlops_constructs.queues import dead_letter_queue
from mlops_constructs.variant_weights import TOTAL_TIMEOUT as WEIGHTS_TIMEOUT

FOLDER = "approval"  # lambda/approval: handler.py, deployment.py, model_promotion.py
SOURCE = "aws.sagemaker"
DETAIL_TYPE = "SageMaker Model Package State Change"
STATUSES = ("Approved", "PendingManualApproval")
# The CDK bootstrap's qualifier: the deploy project assumes cdk-<qualifier>-deploy-role-<account>-<region>.
# A custom qualifier (cdk bootstrap --qualifier) must be set here as in the app's synthesizer.
BOOTSTRAP_QUALIFIER = DefaultStackSynthesizer.DEFAULT_QUALIFIER
# The workflow asks again this often while the stack is busy, and waits for it at most as long as a
# deploy may take (build_timeout); two waits per execution stay far below Step Functions' 25,000 events.
WAIT = Duration.minutes(1)
MAX_BUILD_MINUTES = 2160  # CodeBuild's longest build timeout
# Lambda allows 4 KB of environment for names and values together; the rest is the other variables.
MAX_ENDPOINTS_CHARACTERS = 3000
# The change sets the workflow names (lambda/approval/deployment.py, ``change_set_name``).
CHANGE_SET_PREFIX = "promotion-"


def deploy_role_arn(stack: Stack, qualifier: str = BOOTSTRAP_QUALIFIER) -> str:
    return f"arn:{stack.partition}:iam::{stack.account}:role/cdk-{qualifier}-deploy-role-{stack.account}-{stack.region}"


def execution_role_arn(stack: Stack, qualifier: str = BOOTSTRAP_QUALIFIER) -> str:
    return (
        f"arn:{stack.partition}:iam::{stack.account}:role/cdk-{qualifier}-cfn-exec-role-{stack.account}-{stack.region}"
    )


def session_policy(stack: Stack, *, stack_name: str, pointer_prefix: str, qualifier: str = BOOTSTRAP_QUALIFIER) -> str:
    """The inline session policy the build assumes the deploy role with, as compact JSON (``--policy``).

    The deploy role's own policy reaches every stack of the account, and through the administrator-level
    execution role anything at all; a session's permissions are the intersection of the role's and this
    policy's (IAM User Guide, "Session policies"). So the build may only read and change-set the Serving
    stack, pass the execution role (to CloudFormation only), and read the SSM parameters CloudFormation
    re-reads with the caller's rights: the model pointers (``pointer_prefix``) and the bootstrap version.
    """
    where = f"{stack.region}:{stack.account}"
    cloudformation = f"arn:{stack.partition}:cloudformation:{where}"
    ssm = f"arn:{stack.partition}:ssm:{where}:parameter"
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ServingStackChangeSets",
                "Effect": "Allow",
                "Action": [
                    "cloudformation:DescribeStacks",
                    "cloudformation:DescribeStackEvents",
                    "cloudformation:GetTemplate",
                    "cloudformation:GetTemplateSummary",
                    "cloudformation:CreateChangeSet",
                    "cloudformation:DescribeChangeSet",
                    "cloudformation:ExecuteChangeSet",
                    "cloudformation:DeleteChangeSet",
                ],
                "Resource": [
                    f"{cloudformation}:stack/{stack_name}/*",
                    # The workflow's change sets (lambda/approval/deployment.py, ``change_set_name``).
                    f"{cloudformation}:changeSet/{CHANGE_SET_PREFIX}*/*",
                ],
            },
            {
                "Sid": "PassExecutionRole",
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": execution_role_arn(stack, qualifier),
                "Condition": {"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}},
            },
            {
                "Sid": "ReadStackParameters",
                "Effect": "Allow",
                "Action": "ssm:GetParameters",
                "Resource": [f"{ssm}{pointer_prefix}*", f"{ssm}/cdk-bootstrap/{qualifier}/version"],
            },
        ],
    }
    return json.dumps(document, separators=(",", ":"))


def build_timeout_minutes(environment: EnvironmentConfig) -> int:
    """How long one deploy of the Serving stack may take: the endpoint's whole blue/green deployment, then the
    weights resource's wait for it (mlops_constructs/variant_weights.py), then an hour for the rest."""
    seconds = environment.serving.rollout.maximum_execution_timeout_seconds + WEIGHTS_TIMEOUT.to_seconds() + 3600
    return min(math.ceil(seconds / 60), MAX_BUILD_MINUTES)


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


def buildspec_script(policy: str) -> str:
    """The deploy project's one command: apply the Serving stack as deployed, re-reading its SSM parameters.

    ``policy`` is the session policy (``session_policy``) every assumption of the deploy role carries.
    ``--use-previous-template`` and ``UsePreviousValue`` for every parameter: an SSM-typed parameter's
    value is the parameter's *name*, and CloudFormation fetches the current value of each at every
    stack operation (AWS CloudFormation User Guide, "Systems Manager parameter types"). The change set
    pins the values it read. "No changes" (the stack already serves the pointers' models) is success.
    The deploy role's session lasts an hour; it is renewed while the update runs.
    """
    if "'" in policy:
        raise ValueError("the session policy travels in single quotes and may not contain one")
    header = f"set -euo pipefail\nsession_policy='{policy}'\n"
    return header + BUILD_SCRIPT


# The deploy project's script after its header (``buildspec_script``).
BUILD_SCRIPT = r"""assume() {
  unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN
  read -r AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN < <(aws sts assume-role \
    --role-arn "${DEPLOY_ROLE_ARN}" --role-session-name "${CHANGE_SET_NAME:0:64}" --policy "${session_policy}" \
    --query 'Credentials.[AccessKeyId,SecretAccessKey,SessionToken]' --output text)
  export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN
  assumed_at=${SECONDS}
}
assume
keys=$(aws cloudformation describe-stacks --stack-name "${STACK_NAME}" \
  --query 'Stacks[0].Parameters[].ParameterKey' --output text)
parameters=()
for key in ${keys}; do parameters+=("ParameterKey=${key},UsePreviousValue=true"); done
echo "change set ${CHANGE_SET_NAME} of ${STACK_NAME}: previous template, ${#parameters[@]} parameter(s) re-read"
aws cloudformation create-change-set --stack-name "${STACK_NAME}" --change-set-name "${CHANGE_SET_NAME}" \
  --change-set-type UPDATE --use-previous-template ${parameters[@]+--parameters "${parameters[@]}"} \
  --capabilities CAPABILITY_IAM CAPABILITY_NAMED_IAM CAPABILITY_AUTO_EXPAND \
  --role-arn "${EXECUTION_ROLE_ARN}" --description "Model promotion: re-reads the model pointers"
if ! aws cloudformation wait change-set-create-complete --stack-name "${STACK_NAME}" \
  --change-set-name "${CHANGE_SET_NAME}"; then
  reason=$(aws cloudformation describe-change-set --stack-name "${STACK_NAME}" \
    --change-set-name "${CHANGE_SET_NAME}" --query StatusReason --output text)
  echo "change set not created: ${reason}"
  if [[ "${reason}" == *"didn't contain changes"* || "${reason}" == *"No updates are to be performed"* ]]; then
    aws cloudformation delete-change-set --stack-name "${STACK_NAME}" --change-set-name "${CHANGE_SET_NAME}"
    echo "nothing to change: the stack already serves the pointers' models"
    exit 0
  fi
  exit 1
fi
aws cloudformation execute-change-set --stack-name "${STACK_NAME}" --change-set-name "${CHANGE_SET_NAME}"
while :; do
  if (( SECONDS - assumed_at > 1800 )); then assume; fi
  status=$(aws cloudformation describe-stacks --stack-name "${STACK_NAME}" \
    --query 'Stacks[0].StackStatus' --output text)
  [[ "${status}" == *_IN_PROGRESS ]] || break
  sleep 30
done
echo "stack ${STACK_NAME}: ${status}"
[[ "${status}" == UPDATE_COMPLETE ]]
"""


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
        # Longer than any execution can hold it (two waits and a build), so it never expires under one;
        # an execution stopped by hand leaves it to expire.
        self.lock_seconds = 2 * self.max_waits * int(WAIT.to_seconds()) + self.build_timeout_minutes * 60 + 3600
        self._check_endpoints_size()

        self.deployment_function = self._deployment_function()
        self.project = self._project()
        self.state_machine = self._state_machine()
        self.approval_function = self._approval_function(artifacts_bucket)
        self.dead_letter_queue = dead_letter_queue(self, "DeadLetterQueue", key=key, removal_policy=removal_policy)
        acknowledge(
            self.dead_letter_queue,
            "AwsSolutions-SQS3",
            "This queue is the dead-letter queue of the approval rule and of the approval function's retries.",
        )
        self.rule = self._rule()
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
        self._grant_key_through(role, "s3", ["kms:Decrypt"])
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
        parts.role.add_to_policy(iam.PolicyStatement(sid="Ledger", actions=actions, resources=[self._ledger.table_arn]))
        self._grant_key_through(
            parts.role, "dynamodb", ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
        )

    def _grant_packages(self, parts: PlatformFunction) -> None:
        packages = self._stack.format_arn(
            service="sagemaker", resource="model-package", resource_name=f"{self._names.prefix}-*/*"
        )
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
        self._grant_key_through(parts.role, "sns", ["kms:Decrypt", "kms:GenerateDataKey"])

    def _grant_key_through(self, role: iam.IRole, service: str, actions: list[str]) -> None:
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=actions,
                resources=[self._key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"{service}.{self._stack.region}.amazonaws.com"}},
            )
        )

    # -- the deploy project ---------------------------------------------------------------------

    def _project(self) -> codebuild.Project:
        stack = self._stack
        role = iam.Role(
            self,
            "DeployRole",
            assumed_by=iam.ServicePrincipal("codebuild.amazonaws.com"),
            description=f"Model promotion deploys of {self.serving_stack_name}: may only assume the CDK deploy role",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="AssumeCdkDeployRole", actions=["sts:AssumeRole"], resources=[deploy_role_arn(stack)]
            )
        )
        log_group = logs.LogGroup(
            self,
            "DeployLogs",
            retention=retention_days(self._environment.retention.log_retention_days),
            encryption_key=self._key,
            removal_policy=self._removal_policy,
        )
        policy_document = session_policy(
            stack, stack_name=self.serving_stack_name, pointer_prefix=self._names.parameter("models") + "/"
        )
        script = buildspec_script(policy_document)
        project = codebuild.Project(
            self,
            "DeployProject",
            description=(
                f"Applies {self.serving_stack_name} with its previous template so that it re-reads the model "
                "pointers (started by the approval path's deployment workflow)"
            ),
            role=role,
            build_spec=codebuild.BuildSpec.from_object(
                {"version": "0.2", "env": {"shell": "bash"}, "phases": {"build": {"commands": [script]}}}
            ),
            environment=codebuild.BuildEnvironment(
                build_image=codebuild.LinuxBuildImage.STANDARD_7_0, compute_type=codebuild.ComputeType.SMALL
            ),
            environment_variables={
                "STACK_NAME": codebuild.BuildEnvironmentVariable(value=self.serving_stack_name),
                "DEPLOY_ROLE_ARN": codebuild.BuildEnvironmentVariable(value=deploy_role_arn(stack)),
                "EXECUTION_ROLE_ARN": codebuild.BuildEnvironmentVariable(value=execution_role_arn(stack)),
                "CHANGE_SET_NAME": codebuild.BuildEnvironmentVariable(value="set-by-the-workflow"),
            },
            timeout=Duration.minutes(self.build_timeout_minutes),
            # One build at a time, whoever starts it: the workflow's lock is the first guard, this the second.
            concurrent_build_limit=1,
            # Imported by ARN: the key lives in Foundation; a grant must not edit its key policy from here.
            encryption_key=kms.Key.from_key_arn(self, "BuildKey", self._key.key_arn),
            logging=codebuild.LoggingOptions(cloud_watch=codebuild.CloudWatchLoggingOptions(log_group=log_group)),
            grant_report_group_permissions=False,
        )
        policy = role.node.find_child("DefaultPolicy")
        # aws-cdk-lib grants the project's default log group as well as the one it logs to.
        default_logs = stack.format_arn(
            service="logs",
            resource="log-group",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
            resource_name=f"/aws/codebuild/{project.project_name}",
        )
        for resource in (f"{log_group.log_group_arn}:*", f"{default_logs}:*"):
            acknowledge_wildcard_resource(
                policy, resource, "CodeBuild writes one log stream per build in this project's log group."
            )
        for action in ("kms:GenerateDataKey*", "kms:ReEncrypt*"):
            acknowledge(
                policy,
                f"AwsSolutions-IAM5[Action::{action}]",
                "CodeBuild's encryption-key grant covers the platform key only (build logs and output).",
            )
        return project

    # -- the workflow ---------------------------------------------------------------------------

    def _step(self, id: str, step: str, *, result_path: str, **extra: object) -> tasks.LambdaInvoke:
        task = tasks.LambdaInvoke(
            self,
            id,
            lambda_function=self.deployment_function.function,
            payload=sfn.TaskInput.from_object(
                {
                    "step": step,
                    "execution": sfn.JsonPath.execution_name,
                    "request": sfn.JsonPath.object_at("$.request"),
                    **extra,
                }
            ),
            payload_response_only=True,
            result_path=result_path,
        )
        task.add_retry(errors=["States.ALL"], interval=Duration.seconds(10), max_attempts=3, backoff_rate=2)
        return task

    def _count(self, id: str, counted: str) -> sfn.Pass:
        other = "settle" if counted == "acquire" else "acquire"
        return sfn.Pass(
            self,
            id,
            parameters={
                counted: sfn.JsonPath.math_add(sfn.JsonPath.number_at(f"$.waits.{counted}"), 1),
                other: sfn.JsonPath.number_at(f"$.waits.{other}"),
            },
            result_path="$.waits",
        )

    def _state_machine(self) -> sfn.StateMachine:
        busy = "busy"
        start = sfn.Pass(
            self,
            "Start",
            comment="Keeps the promotion request apart from the steps' results",
            parameters={"request": sfn.JsonPath.entire_payload, "waits": {"acquire": 0, "settle": 0}},
        )
        acquire = self._step("Acquire", "acquire", result_path="$.acquire")
        settle = self._step("Settle", "settle", result_path="$.settle", build=sfn.JsonPath.object_at("$.build"))
        # The pointer may or may not be written when acquiring fails: settling restores it if it was.
        acquire.add_catch(settle, errors=["States.ALL"], result_path="$.build")
        deploy = tasks.CodeBuildStartBuild(
            self,
            "Deploy",
            comment=f"Applies {self.serving_stack_name}: previous template, parameters re-read",
            project=self.project,
            integration_pattern=sfn.IntegrationPattern.RUN_JOB,
            environment_variables_override={
                "CHANGE_SET_NAME": codebuild.BuildEnvironmentVariable(
                    value=sfn.JsonPath.string_at("$.acquire.change_set")
                )
            },
            result_selector={
                "id": sfn.JsonPath.string_at("$.Build.Id"),
                "status": sfn.JsonPath.string_at("$.Build.BuildStatus"),
            },
            result_path="$.build",
        )
        # Whatever the build says, the stack decides: settle reads it.
        deploy.add_catch(settle, errors=["States.ALL"], result_path="$.build")
        deploy.next(settle)

        wait_for_stack = sfn.Wait(self, "WaitForStack", time=sfn.WaitTime.duration(WAIT))
        wait_for_stack.next(self._count("CountStackWait", "acquire")).next(acquire)
        wait_for_deploy = sfn.Wait(self, "WaitForDeploy", time=sfn.WaitTime.duration(WAIT))
        wait_for_deploy.next(self._count("CountDeployWait", "settle")).next(settle)
        give_up_acquire = self._step("GiveUpWaitingForStack", "give_up", result_path="$.settle", phase="acquire")
        give_up_acquire.next(sfn.Fail(self, "StackStayedBusy", error="StackStayedBusy", cause="Nothing was written"))
        give_up_settle = self._step("GiveUpWaitingForDeploy", "give_up", result_path="$.settle", phase="settle")
        give_up_settle.next(sfn.Fail(self, "DeployUnsettled", error="DeployUnsettled", cause="The stack kept updating"))

        acquired = (
            sfn.Choice(self, "Acquired")
            .when(sfn.Condition.string_equals("$.acquire.status", "ready"), deploy)
            .when(
                sfn.Condition.and_(
                    sfn.Condition.string_equals("$.acquire.status", busy),
                    sfn.Condition.number_less_than("$.waits.acquire", self.max_waits),
                ),
                wait_for_stack,
            )
            .when(sfn.Condition.string_equals("$.acquire.status", busy), give_up_acquire)
            .when(sfn.Condition.string_equals("$.acquire.status", "withdrawn"), sfn.Succeed(self, "Withdrawn"))
            # A newer package already serves: recorded and notified, nothing written.
            .when(sfn.Condition.string_equals("$.acquire.status", "superseded"), sfn.Succeed(self, "Superseded"))
            .otherwise(sfn.Fail(self, "Blocked", error="Blocked", cause="The Serving stack cannot take the promotion"))
        )
        settled = (
            sfn.Choice(self, "Settled")
            .when(sfn.Condition.string_equals("$.settle.status", "deployed"), sfn.Succeed(self, "Deployed"))
            .when(
                sfn.Condition.and_(
                    sfn.Condition.string_equals("$.settle.status", busy),
                    sfn.Condition.number_less_than("$.waits.settle", self.max_waits),
                ),
                wait_for_deploy,
            )
            .when(sfn.Condition.string_equals("$.settle.status", busy), give_up_settle)
            .otherwise(
                sfn.Fail(self, "Reverted", error="Reverted", cause="The deploy failed; the pointer was restored")
            )
        )
        settle.next(settled)
        definition = start.next(acquire).next(acquired)

        log_group = logs.LogGroup(
            self,
            "WorkflowLogs",
            retention=retention_days(self._environment.retention.log_retention_days),
            encryption_key=self._key,
            removal_policy=self._removal_policy,
        )
        state_machine = sfn.StateMachine(
            self,
            "Workflow",
            comment=(
                f"Deploys one promoted model package to {self.serving_stack_name}: waits for the stack and the lock, "
                "writes the pointer, deploys, and restores the pointer if the deploy fails"
            ),
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
        )
        ignore_redundant_dependency(state_machine)
        policy = state_machine.role.node.find_child("DefaultPolicy")
        acknowledge_wildcard_resource(
            policy,
            f"{self.deployment_function.function.function_arn}:*",
            "CDK's LambdaInvoke grants the function's versions and aliases as well as the function.",
        )
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray tracing and CloudWatch Logs delivery of the state machine support no resource-level permissions.",
        )
        return state_machine

    # -- the rule and the alarms ----------------------------------------------------------------

    def _rule(self) -> events.Rule:
        function = self.approval_function.function
        function.configure_async_invoke(
            on_failure=destinations.SqsDestination(self.dead_letter_queue),
            retry_attempts=2,
            max_event_age=Duration.hours(6),
        )
        for action in ("kms:ReEncrypt*", "kms:GenerateDataKey*"):
            acknowledge(
                self.approval_function.policy,
                f"AwsSolutions-IAM5[Action::{action}]",
                "CDK's SQS destination grants the key's encrypt actions for the dead-letter queue; "
                "the grant covers the platform key only.",
            )
        return events.Rule(
            self,
            "ApprovalRule",
            description=f"Approved and pending model packages of {self._names.environment}'s groups (default bus)",
            event_pattern=events.EventPattern(
                source=[SOURCE],
                detail_type=[DETAIL_TYPE],
                detail={
                    "ModelPackageGroupName": events.Match.prefix(f"{self._names.prefix}-"),
                    "ModelApprovalStatus": list(STATUSES),
                },
            ),
            targets=[
                targets.LambdaFunction(
                    function,
                    dead_letter_queue=self.dead_letter_queue,
                    retry_attempts=8,
                    max_event_age=Duration.hours(6),
                )
            ],
        )

    def _alarms(self) -> None:
        period = Duration.minutes(5)
        alarm_above_zero(
            self,
            self._topic,
            {
                "DeadLetterAlarm": (
                    "Model package events could not be handled (see the approval path's dead-letter queue)",
                    self.dead_letter_queue.metric_approximate_number_of_messages_visible(
                        period=period, statistic="Maximum"
                    ),
                ),
                "ApprovalErrorsAlarm": (
                    "The approval function failed invocations",
                    self.approval_function.function.metric_errors(period=period, statistic="Sum"),
                ),
                "DeploymentErrorsAlarm": (
                    "A deployment workflow step failed (a promotion may hold the lock until it expires)",
                    self.deployment_function.function.metric_errors(period=period, statistic="Sum"),
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
