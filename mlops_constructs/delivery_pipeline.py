"""The delivery pipeline (CDK Pipelines) and the access its smoke test needs in the tested environment.

* ``DeliveryPipeline``: source (a CodeConnections connection) -> synth (``make test``, ``make synth``,
  the README's own commands) -> self-mutation -> asset publishing (the image assets built with
  Docker) -> dev -> staging and its smoke test -> manual approval -> prod. It deploys the very
  ``PlatformStage`` objects that ``cdk deploy "dev/*"`` deploys, so both paths ship byte-identical
  templates. After each environment's deploy, its **deploy check** (``scripts/check_deploy.py``, the
  check ``make deploy`` runs too) fails the stage when an endpoint does not run the endpoint config and
  models its stack deployed, or when ``config/deployed-variants.yaml`` does not record the live variants
  (it prints the ``make record-variants`` command to run). Failed runs and approvals waiting notify the
  pipeline's own topic.
* ``SmokeTestAccess``: a role in the tested environment that only the pipeline's smoke-test build
  may assume, allowed to score through the scoring API and to run and watch the training state
  machine, nothing else.

Models are not promoted here: each environment's endpoints read its own model pointers at deploy
time (ARCHITECTURE.md, "Where models live").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import jsii
from aws_cdk import ArnFormat, CfnOutput, CfnResource, Duration, RemovalPolicy, Stack, Stage, pipelines
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk.interfaces.aws_events import IRuleRef
from constructs import Construct, IConstruct

from config.naming import Names
from config.schema import SMOKE_TEST_ENDPOINT, SMOKE_TEST_TENANT, DeliveryPipelineConfig
from mlops_constructs.deploy_check import pipeline_deploy_check_role_name
from mlops_constructs.log_retention import retention_days
from mlops_constructs.nag import acknowledge, acknowledge_wildcard_resource

# CodeBuild's standard:7.0 image has Python 3.11 and Node 20; `make` then runs the Node 22 and CDK
# CLI pinned in package.json from node_modules, as on a laptop.
BUILD_IMAGE = codebuild.LinuxBuildImage.STANDARD_7_0
RUNTIME_VERSIONS = {"python": "3.11", "nodejs": "20"}
SYNTH_COMMANDS = ("make test", "make synth")
SYNTH_OUTPUT = "cdk.out"
# What scripts/smoke_test.py and scripts/check_deploy.py import, pinned as in requirements*.txt (a test
# keeps them in step).
SMOKE_TEST_REQUIREMENTS = ("boto3==1.44.5", "PyYAML==6.0.3")
SMOKE_TEST_COMMAND = "python -m scripts.smoke_test"
DEPLOY_CHECK_MINUTES = 15
SCORING_STAGE = "v1"
LOG_RETENTION_DAYS = 365
APPROVAL_WAVE = "Approval"
# CDK Pipelines installs cdk-assets from npm to publish assets; pinned so a run is reproducible.
# Move it with aws-cdk-lib (it must read the cloud assembly that version writes).
CDK_ASSETS_VERSION = "4.7.3"
ARTIFACT_LOG_PREFIX = "artifacts/"

# Why the wildcards of CDK Pipelines' own grants are acceptable (see _acknowledge_generated_grants).
ARTIFACT_READ_ACTIONS = ("s3:GetBucket*", "s3:GetObject*", "s3:List*")
ARTIFACT_WRITE_ACTIONS = ("s3:Abort*", "s3:DeleteObject*")
ARTIFACT_KEY_ACTIONS = ("kms:GenerateDataKey*", "kms:ReEncrypt*")
ARTIFACT_GRANT_REASON = (
    "aws-cdk-lib's grant on the pipeline's own artifact bucket, which holds nothing but this pipeline's "
    "sources, cloud assemblies and build outputs"
)
ARTIFACT_KEY_REASON = "aws-cdk-lib's grant on the artifact bucket's own key, which encrypts nothing else"
OWN_LOGS_REASON = "CodeBuild's default log group of this one project (its streams are named per build)"
OWN_REPORTS_REASON = "CodeBuild's report groups of this one project (named after it, per report)"
SHARED_LOGS_REASON = (
    "One asset-publishing role serves a CodeBuild project per asset group, whose log groups CDK names after "
    "each project; the grant stays within CodeBuild's log groups in the tooling account"
)
SHARED_REPORTS_REASON = (
    "One asset-publishing role serves a CodeBuild project per asset group; the grant stays within CodeBuild's "
    "report groups in the tooling account"
)
ASSETS_BUILDS_REASON = (
    "CDK Pipelines lets the asset-publishing role start and watch its CodeBuild builds, which have no ARN "
    "before they start"
)
SELF_MUTATION_LOOKUP_REASON = (
    "The CDK CLI reads the bootstrap stack's version (cloudformation:DescribeStacks) and lists buckets before "
    "it deploys the pipeline stack; neither action can be scoped to a resource known at synth"
)
BOOTSTRAP_ROLES_REASON = (
    "Self-mutation assumes the CDK bootstrap roles of the tooling account only; a condition on their "
    "aws-cdk:bootstrap-role tag (deploy, file-publishing, image-publishing) narrows the wildcard"
)


def smoke_test_role_name(names: Names) -> str:
    """The tested environment's role that the smoke test assumes: ``mlops-staging-smoke-test``."""
    return names.resource("smoke-test")


def pipeline_smoke_test_role_name(project: str) -> str:
    """The smoke-test build's own role in the tooling account; the tested environment trusts it by name."""
    return f"{project}-delivery-smoke-test"


def pipeline_name(project: str) -> str:
    return f"{project}-delivery"


class SmokeTestAccess(Construct):
    """A role the pipeline's smoke-test build assumes in the tested environment (a cross-account hop)."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        names: Names,
        api: apigateway.RestApi,
        state_machine: sfn.StateMachine,
        tooling_account: str,
        tooling_role_name: str,
    ) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        # Trust the one build role by ARN as a condition, not as a principal: IAM checks that a role
        # principal exists, and a direct `cdk deploy` may come before the pipeline stack does.
        build_role_arn = f"arn:{stack.partition}:iam::{tooling_account}:role/{tooling_role_name}"
        self.role = iam.Role(
            self,
            "Role",
            role_name=smoke_test_role_name(names),
            description=f"The delivery pipeline's smoke test in {names.environment}: scores and trains the example",
            assumed_by=iam.AccountPrincipal(tooling_account).with_conditions(
                {"ArnEquals": {"aws:PrincipalArn": build_role_arn}}
            ),
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["execute-api:Invoke"],
                resources=[api.arn_for_execute_api("POST", "/score", SCORING_STAGE)],
            )
        )
        state_machine.grant_start_execution(self.role)
        executions = stack.format_arn(
            service="states",
            resource="execution",
            resource_name=f"{state_machine.state_machine_name}:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["states:DescribeExecution", "states:StopExecution"], resources=[executions])
        )
        policy = self.role.node.find_child("DefaultPolicy")
        acknowledge_wildcard_resource(
            policy,
            executions,
            "Execution ARNs end in the execution's name, chosen when the smoke test starts it; the "
            "wildcard stays within this one state machine's executions",
        )


@jsii.implements(events.IRuleTarget)
class _TopicTarget:
    """An SNS target that grants nothing more: the topic's policy and the key's already let EventBridge
    publish for this account only (CDK's ``SnsTopic`` would add grants without that condition)."""

    def __init__(self, topic: sns.ITopic, message: events.RuleTargetInput) -> None:
        self._topic = topic
        self._message = message

    def bind(self, rule: IRuleRef, id: str | None = None) -> events.RuleTargetConfig:
        return events.RuleTargetConfig(arn=self._topic.topic_arn, input=self._message)


@dataclass(frozen=True)
class DeployCheckTarget:
    """What an environment's deploy check reads: its Serving stack, its endpoints' prefix, the role it assumes."""

    stack_name: str
    prefix: str
    role_name: str

    def command(self, environment: str, region: str) -> str:
        """The check's command line (scripts/check_deploy.py), every value given: the build has no config loader.

        The role's ARN comes from ``DEPLOY_CHECK_ROLE_ARN`` (its partition is a token at synth)."""
        return (
            f"python -m scripts.check_deploy --environment {environment} --stack {self.stack_name} "
            f"--prefix {self.prefix} --region {region}"
        )


@dataclass(frozen=True)
class SmokeTestTarget:
    """The stage the smoke test runs after, and the outputs it reads (stack outputs of that stage)."""

    stage: Stage
    scoring_api_url: CfnOutput
    state_machine_arn: CfnOutput


class PipelineKey(Construct):
    """The pipeline stack's own key: its build logs and its topic. Only the services that write them may use it."""

    def __init__(self, scope: Construct, id: str, *, alias: str) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        self.key = kms.Key(
            self,
            "Key",
            alias=alias,
            description=f"Encrypts the delivery pipeline's build logs and notifications ({alias})",
            enable_key_rotation=True,
            pending_window=Duration.days(30),
            removal_policy=RemovalPolicy.RETAIN,
        )
        # EventBridge delivers the pipeline's events to the encrypted topic; without this grant AWS
        # drops them silently.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowEventsToUseKey",
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            )
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchLogsToUseKey",
                principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
                actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": (
                            f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:*"
                        )
                    }
                },
            )
        )


class DeliveryPipeline(Construct):
    """CDK Pipelines over the environments' stages, in order, with the smoke test and the approval."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        project: str,
        settings: DeliveryPipelineConfig,
        stages: Sequence[Stage],
        smoke_test: SmokeTestTarget,
        deploy_checks: Mapping[str, DeployCheckTarget],
        cli_version: str,
        key: kms.IKey,
        topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        self.pipeline_name = pipeline_name(project)
        self.logs = logs.LogGroup(
            self,
            "BuildLogs",
            encryption_key=key,
            retention=retention_days(LOG_RETENTION_DAYS),
            removal_policy=RemovalPolicy.RETAIN,
        )
        build_defaults = pipelines.CodeBuildOptions(
            build_environment=codebuild.BuildEnvironment(
                build_image=BUILD_IMAGE, compute_type=codebuild.ComputeType.MEDIUM
            ),
            partial_build_spec=codebuild.BuildSpec.from_object(
                {"phases": {"install": {"runtime-versions": RUNTIME_VERSIONS}}}
            ),
            logging=codebuild.LoggingOptions(cloud_watch=codebuild.CloudWatchLoggingOptions(log_group=self.logs)),
        )
        self.source = pipelines.CodePipelineSource.connection(
            settings.source.repository,
            settings.source.branch,
            connection_arn=settings.source.connection_arn,
            trigger_on_push=True,
        )
        # The synth step runs what a person runs: the whole test suite, then the offline synth with
        # its policy gate. Nothing reaches AWS: make hides every credential from the CDK CLI.
        self.synth = pipelines.ShellStep(
            "Synth", input=self.source, commands=list(SYNTH_COMMANDS), primary_output_directory=SYNTH_OUTPUT
        )
        self.pipeline = pipelines.CodePipeline(
            self,
            "Pipeline",
            pipeline_name=self.pipeline_name,
            synth=self.synth,
            self_mutation=True,
            cross_account_keys=True,
            enable_key_rotation=True,
            cli_version=cli_version,
            cdk_assets_cli_version=CDK_ASSETS_VERSION,
            docker_enabled_for_synth=False,
            docker_enabled_for_self_mutation=False,
            # One publishing project per asset type: the Docker one builds the training and
            # inference images (CPU and GPU) in privileged mode, which CDK turns on for image assets.
            publish_assets_in_parallel=False,
            code_build_defaults=build_defaults,
            synth_code_build_defaults=pipelines.CodeBuildOptions(timeout=Duration.minutes(60)),
            asset_publishing_code_build_defaults=pipelines.CodeBuildOptions(
                build_environment=codebuild.BuildEnvironment(compute_type=codebuild.ComputeType.LARGE),
                timeout=Duration.minutes(120),
            ),
        )
        self.smoke_test_role = iam.Role(
            self,
            "SmokeTestRole",
            role_name=pipeline_smoke_test_role_name(project),
            description="The delivery pipeline's smoke-test build: assumes the tested environment's smoke-test role",
            assumed_by=iam.ServicePrincipal("codebuild.amazonaws.com"),
        )
        tested = smoke_test.stage
        tested_role_arn = f"arn:{stack.partition}:iam::{tested.account}:role/" + smoke_test_role_name(
            Names(project=project, environment=tested.stage_name)
        )
        self.smoke_test_role.add_to_policy(iam.PolicyStatement(actions=["sts:AssumeRole"], resources=[tested_role_arn]))
        self.smoke_test = pipelines.CodeBuildStep(
            "SmokeTest",
            input=self.source,
            install_commands=[
                "python -m pip install --quiet --disable-pip-version-check " + " ".join(SMOKE_TEST_REQUIREMENTS)
            ],
            commands=[SMOKE_TEST_COMMAND],
            env={
                "SMOKE_TEST_ROLE_ARN": tested_role_arn,
                "SMOKE_TEST_ENDPOINT": SMOKE_TEST_ENDPOINT,
                "SMOKE_TEST_TENANT": SMOKE_TEST_TENANT,
                "SMOKE_TEST_MODELS": ",".join(settings.smoke_test.training_models),
                "SMOKE_TEST_TIMEOUT_SECONDS": str(settings.smoke_test.timeout_minutes * 60 - 300),
            },
            env_from_cfn_outputs={
                "SCORING_API_URL": smoke_test.scoring_api_url,
                "STATE_MACHINE_ARN": smoke_test.state_machine_arn,
            },
            role=self.smoke_test_role,
            timeout=Duration.minutes(settings.smoke_test.timeout_minutes),
        )
        for stage in stages:
            if stage.stage_name == "prod":
                self.pipeline.add_wave(
                    APPROVAL_WAVE,
                    pre=[
                        pipelines.ManualApprovalStep(
                            "PromoteToProd",
                            comment=(
                                "staging is deployed and its smoke test passed: approve to deploy the same "
                                "templates to prod"
                            ),
                        )
                    ],
                )
            check = self._deploy_check(project, stage, deploy_checks[stage.stage_name])
            post: list[pipelines.Step] = [check]
            if stage is tested:
                # Scoring a rolled-back endpoint, or one the record does not describe, proves nothing.
                self.smoke_test.add_step_dependency(check)
                post.append(self.smoke_test)
            self.pipeline.add_stage(stage, post=post)
        self.pipeline.build_pipeline()
        self._drop_redundant_dependency()
        self.access_logs = self._log_artifact_access()
        self._acknowledge_generated_grants()
        self._notify(topic)

    def _deploy_check(self, project: str, stage: Stage, target: DeployCheckTarget) -> pipelines.CodeBuildStep:
        """After the stage's deploy: its endpoints run what the stack deployed, and the record is current."""
        role = iam.Role(
            self,
            f"DeployCheckRole{stage.stage_name.capitalize()}",
            role_name=pipeline_deploy_check_role_name(project, stage.stage_name),
            description=f"The delivery pipeline's deploy check of {stage.stage_name}: assumes its deploy-check role",
            assumed_by=iam.ServicePrincipal("codebuild.amazonaws.com"),
        )
        stack = Stack.of(self)
        tested_role_arn = f"arn:{stack.partition}:iam::{stage.account}:role/{target.role_name}"
        role.add_to_policy(iam.PolicyStatement(actions=["sts:AssumeRole"], resources=[tested_role_arn]))
        return pipelines.CodeBuildStep(
            "DeployCheck",
            input=self.source,
            install_commands=[
                "python -m pip install --quiet --disable-pip-version-check " + " ".join(SMOKE_TEST_REQUIREMENTS)
            ],
            commands=[target.command(stage.stage_name, str(stage.region))],
            env={"DEPLOY_CHECK_ROLE_ARN": tested_role_arn},
            role=role,
            timeout=Duration.minutes(DEPLOY_CHECK_MINUTES),
        )

    def _drop_redundant_dependency(self) -> None:
        """Keep the pipeline's DependsOn on its role's policy only (cfn-lint W3005).

        aws-cdk-lib makes the pipeline depend on its role and the role's policy; the role is already
        a dependency through the ARN the pipeline reads. Ignoring W3005 in the resource's metadata
        instead makes cfn-lint 1.x check the pipeline's action role ARNs with a stricter rule set
        than every other template gets (E3703 on CDK's Fn::Join ARNs).
        """
        pipeline = self.pipeline.pipeline
        resource = pipeline.node.default_child
        policy = pipeline.role.node.try_find_child("DefaultPolicy")
        policy_resource = policy.node.default_child if policy else None
        if not isinstance(resource, CfnResource) or not isinstance(policy_resource, CfnResource):
            raise TypeError(f"{pipeline.node.path} has no role policy to depend on")
        resource.add_override("DependsOn", [Stack.of(self).get_logical_id(policy_resource)])
        # cfn-lint knows a CDK template by this entry, which `cdk synth` writes on every resource and
        # an in-process synth (the tests) on none; without it cfn-lint reports CDK Pipelines' own
        # Fn::Join role ARNs in the pipeline's actions (E3703, "prefer Fn::Sub"). The same value
        # either way, so both synths give the same template.
        resource.add_metadata("aws:cdk:path", resource.node.path)

    def _log_artifact_access(self) -> s3.Bucket:
        """Server access logs of the artifact bucket (sources, templates, assets of every run).

        CDK creates that bucket (KMS, TLS only, no public access) with no access logging and no
        property to ask for it, so the logging configuration is set on its CloudFormation resource.
        """
        stack = Stack.of(self)
        artifacts = self.pipeline.pipeline.artifact_bucket
        # S3 server access logging delivers only to buckets encrypted with S3-managed keys (SSE-S3).
        access_logs = s3.Bucket(
            self,
            "AccessLogsBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireAccessLogs",
                    expiration=Duration.days(LOG_RETENTION_DAYS),
                    noncurrent_version_expiration=Duration.days(30),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                )
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        access_logs.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowS3ServerAccessLogs",
                principals=[iam.ServicePrincipal("logging.s3.amazonaws.com")],
                actions=["s3:PutObject"],
                resources=[access_logs.arn_for_objects(f"{ARTIFACT_LOG_PREFIX}*")],
                conditions={
                    "ArnLike": {"aws:SourceArn": artifacts.bucket_arn},
                    "StringEquals": {"aws:SourceAccount": stack.account},
                },
            )
        )
        acknowledge(
            access_logs,
            "AwsSolutions-S1",
            "This bucket receives the artifact bucket's access logs; logging its own access would loop",
        )
        artifact_resource = artifacts.node.default_child
        if not isinstance(artifact_resource, s3.CfnBucket):
            raise TypeError(f"{artifacts.node.path} has no CfnBucket")
        artifact_resource.logging_configuration = s3.CfnBucket.LoggingConfigurationProperty(
            destination_bucket_name=access_logs.bucket_name, log_file_prefix=ARTIFACT_LOG_PREFIX
        )
        return access_logs

    def _acknowledge_generated_grants(self) -> None:
        """The wildcards in the policies CDK Pipelines writes for its roles, each on the one policy that holds it.

        They come from aws-cdk-lib's grants (``grantReadWrite`` on the artifact bucket and its key,
        CodeBuild's log and report-group grants), not from this code.
        """
        stack = Stack.of(self)
        artifacts = self.pipeline.pipeline.artifact_bucket
        artifact_objects = f"{artifacts.bucket_arn}/*"
        codebuild_arn = f"arn:{stack.partition}:codebuild:{stack.region}:{stack.account}:report-group/"
        logs_arn = f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:/aws/codebuild/"
        projects = [construct for construct in self.node.find_all() if isinstance(construct, codebuild.Project)]
        users: dict[str, list[codebuild.Project]] = {}
        for project in projects:
            users.setdefault(project.role.node.path if project.role else "", []).append(project)

        def policy_of(role: iam.IRole | None) -> IConstruct:
            policy = role.node.try_find_child("DefaultPolicy") if role else None
            if policy is None:
                raise TypeError(f"{role.node.path if role else 'a project'} has no default policy")
            return policy

        def artifacts_grant(policy: IConstruct, *, write: bool, key: bool) -> None:
            for action in ARTIFACT_READ_ACTIONS + (ARTIFACT_WRITE_ACTIONS if write else ()):
                acknowledge(policy, f"AwsSolutions-IAM5[Action::{action}]", ARTIFACT_GRANT_REASON)
            for action in ARTIFACT_KEY_ACTIONS if key else ():
                acknowledge(policy, f"AwsSolutions-IAM5[Action::{action}]", ARTIFACT_KEY_REASON)
            acknowledge_wildcard_resource(policy, artifact_objects, ARTIFACT_GRANT_REASON)

        pipeline_role = self.pipeline.pipeline.role
        artifacts_grant(policy_of(pipeline_role), write=True, key=True)
        for construct in self.pipeline.pipeline.node.find_child("Source").node.find_all():
            if isinstance(construct, iam.Role):  # the source action's role
                artifacts_grant(policy_of(construct), write=True, key=True)
        for role_path, role_projects in users.items():
            role = role_projects[0].role
            policy = policy_of(role)
            publishing = "/Assets/" in role_path
            if publishing:
                # CDK Pipelines grants its asset-publishing roles for any project they may serve.
                acknowledge_wildcard_resource(policy, f"{logs_arn}*", SHARED_LOGS_REASON)
                acknowledge_wildcard_resource(policy, f"{codebuild_arn}*", SHARED_REPORTS_REASON)
                acknowledge(policy, "AwsSolutions-IAM5[Resource::*]", ASSETS_BUILDS_REASON)
            else:
                (project,) = role_projects
                acknowledge_wildcard_resource(policy, f"{logs_arn}{project.project_name}:*", OWN_LOGS_REASON)
                acknowledge_wildcard_resource(policy, f"{codebuild_arn}{project.project_name}-*", OWN_REPORTS_REASON)
            synth = role_path.endswith("/Build/Synth/CdkBuildProject/Role")
            artifacts_grant(policy, write=synth, key=not publishing)
        self_mutation = policy_of(self.pipeline.self_mutation_project.role)
        acknowledge(self_mutation, "AwsSolutions-IAM5[Resource::*]", SELF_MUTATION_LOOKUP_REASON)
        acknowledge(
            self_mutation, f"AwsSolutions-IAM5[Resource::arn:*:iam::{stack.account}:role/*]", BOOTSTRAP_ROLES_REASON
        )

    def _notify(self, topic: sns.ITopic) -> None:
        """A failed run, and an approval waiting for a person, reach the pipeline's topic."""
        name = self.pipeline_name
        execution = events.EventField.from_path("$.detail.execution-id")
        rules: Mapping[str, tuple[events.EventPattern, str]] = {
            "FailedRule": (
                events.EventPattern(
                    source=["aws.codepipeline"],
                    detail_type=["CodePipeline Pipeline Execution State Change"],
                    detail={"pipeline": [name], "state": ["FAILED"]},
                ),
                f"Pipeline {name} failed (execution {execution}).",
            ),
            "ApprovalRule": (
                events.EventPattern(
                    source=["aws.codepipeline"],
                    detail_type=["CodePipeline Action Execution State Change"],
                    detail={"pipeline": [name], "state": ["STARTED"], "type": {"category": ["Approval"]}},
                ),
                f"Pipeline {name} waits for an approval to deploy prod (execution {execution}).",
            ),
        }
        for rule_id, (pattern, message) in rules.items():
            events.Rule(
                self,
                rule_id,
                event_pattern=pattern,
                targets=[_TopicTarget(topic, events.RuleTargetInput.from_text(message))],
            )
