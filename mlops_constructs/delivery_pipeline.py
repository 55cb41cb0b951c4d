"""The delivery pipeline (CDK Pipelines): from a push to prod, through the same stages a direct deploy uses.

* ``DeliveryPipeline``: source (a CodeConnections connection) -> synth (``make test``, ``make synth``,
  the README's own commands) -> self-mutation -> asset publishing (the image assets built with
  Docker) -> dev -> staging and its smoke test -> manual approval -> prod. It deploys the very
  ``PlatformStage`` objects that ``cdk deploy "dev/*"`` deploys, so both paths ship byte-identical
  templates. After each environment's deploy, its **deploy check** (``mlops check-deploy``, the
  check ``make deploy`` runs too) fails the stage when an endpoint does not run the endpoint config and
  models its stack deployed, or when ``config/deployed-variants.yaml`` does not record the live variants
  (it prints the ``make record-variants`` command to run). Failed runs and approvals waiting notify the
  pipeline's own topic.
* The roles its smoke test and deploy checks assume in an environment are built in that environment
  (``SmokeTestAccess`` in mlops_constructs/pipeline_access.py, ``DeployCheckAccess`` in
  mlops_constructs/deploy_check.py); the policies CDK Pipelines writes for its own roles are
  acknowledged in mlops_constructs/pipeline_grants.py.

Models are not promoted here: each environment's endpoints read its own model pointers at deploy
time (ARCHITECTURE.md, "Where models live").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import jsii
from aws_cdk import CfnOutput, CfnResource, Duration, RemovalPolicy, Stack, Stage, pipelines
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk.interfaces.aws_events import IRuleRef
from constructs import Construct

from config.naming import Names
from config.schema import SMOKE_TEST_ENDPOINT, SMOKE_TEST_TENANT, DeliveryPipelineConfig
from mlops_constructs.access_logs import access_log_bucket
from mlops_constructs.deploy_check import pipeline_deploy_check_role_name
from mlops_constructs.log_retention import encrypted_log_group
from mlops_constructs.pipeline_access import pipeline_smoke_test_role_name, smoke_test_role_name
from mlops_constructs.pipeline_grants import acknowledge_generated_grants

# CodeBuild's standard:7.0 image has Python 3.11 and Node 20; `make` then runs the Node 22 and CDK
# CLI pinned in package.json from node_modules, as on a laptop.
BUILD_IMAGE = codebuild.LinuxBuildImage.STANDARD_7_0
RUNTIME_VERSIONS = {"python": "3.11", "nodejs": "20"}
SYNTH_COMMANDS = ("make test", "make synth")
SYNTH_OUTPUT = "cdk.out"
# What `mlops smoke-test` and `mlops check-deploy` import, pinned as in requirements*.txt (a test
# keeps them in step).
SMOKE_TEST_REQUIREMENTS = ("boto3==1.44.5", "PyYAML==6.0.3")
SMOKE_TEST_COMMAND = "python -m mlops_platform.cli smoke-test"
INSTALL_COMMAND = "python -m pip install --quiet --disable-pip-version-check " + " ".join(SMOKE_TEST_REQUIREMENTS)
DEPLOY_CHECK_MINUTES = 15
LOG_RETENTION_DAYS = 365
APPROVAL_WAVE = "Approval"
# CDK Pipelines installs cdk-assets from npm to publish assets; pinned so a run is reproducible.
# Move it with aws-cdk-lib (it must read the cloud assembly that version writes).
CDK_ASSETS_VERSION = "4.7.3"
ARTIFACT_LOG_PREFIX = "artifacts/"


def pipeline_name(project: str) -> str:
    return f"{project}-delivery"


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
        """The check's command line (``mlops check-deploy``), every value given: the build has no config loader.

        The role's ARN comes from ``DEPLOY_CHECK_ROLE_ARN`` (its partition is a token at synth)."""
        return (
            f"python -m mlops_platform.cli check-deploy --environment {environment} --stack {self.stack_name} "
            f"--prefix {self.prefix} --region {region}"
        )


@dataclass(frozen=True)
class SmokeTestTarget:
    """The stage the smoke test runs after, and the outputs it reads (stack outputs of that stage)."""

    stage: Stage
    scoring_api_url: CfnOutput
    state_machine_arn: CfnOutput


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
        self.pipeline_name = pipeline_name(project)
        self.logs = encrypted_log_group(
            self, "BuildLogs", key=key, log_retention_days=LOG_RETENTION_DAYS, removal_policy=RemovalPolicy.RETAIN
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
        tested = smoke_test.stage
        tested_role = smoke_test_role_name(Names(project=project, environment=tested.stage_name))
        self.smoke_test_role, tested_role_arn = self._build_role(
            "SmokeTestRole",
            role_name=pipeline_smoke_test_role_name(project),
            description="The delivery pipeline's smoke-test build: assumes the tested environment's smoke-test role",
            account=str(tested.account),
            assumes=tested_role,
        )
        self.smoke_test = pipelines.CodeBuildStep(
            "SmokeTest",
            input=self.source,
            install_commands=[INSTALL_COMMAND],
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
        self._grant_connection(settings.source.connection_arn)
        self._drop_redundant_dependency()
        self.access_logs = self._log_artifact_access()
        acknowledge_generated_grants(self, self.pipeline)
        self._notify(topic)

    def _build_role(
        self, id: str, *, role_name: str, description: str, account: str, assumes: str
    ) -> tuple[iam.Role, str]:
        """A build's role in the tooling account that may assume one role, ``assumes`` of ``account``, and its ARN."""
        role = iam.Role(
            self,
            id,
            role_name=role_name,
            description=description,
            assumed_by=iam.ServicePrincipal("codebuild.amazonaws.com"),
        )
        assumed_arn = f"arn:{Stack.of(self).partition}:iam::{account}:role/{assumes}"
        role.add_to_policy(iam.PolicyStatement(actions=["sts:AssumeRole"], resources=[assumed_arn]))
        return role, assumed_arn

    def _deploy_check(self, project: str, stage: Stage, target: DeployCheckTarget) -> pipelines.CodeBuildStep:
        """After the stage's deploy: its endpoints run what the stack deployed, and the record is current."""
        role, tested_role_arn = self._build_role(
            f"DeployCheckRole{stage.stage_name.capitalize()}",
            role_name=pipeline_deploy_check_role_name(project, stage.stage_name),
            description=f"The delivery pipeline's deploy check of {stage.stage_name}: assumes its deploy-check role",
            account=str(stage.account),
            assumes=target.role_name,
        )
        return pipelines.CodeBuildStep(
            "DeployCheck",
            input=self.source,
            install_commands=[INSTALL_COMMAND],
            commands=[target.command(stage.stage_name, str(stage.region))],
            env={"DEPLOY_CHECK_ROLE_ARN": tested_role_arn},
            role=role,
            timeout=Duration.minutes(DEPLOY_CHECK_MINUTES),
        )

    def _grant_connection(self, connection_arn: str) -> None:
        """CDK grants ``codestar-connections:UseConnection``; a connection made since the rename has a
        ``codeconnections`` ARN, and IAM matches an action's prefix with the resource's, so the source
        action's role needs the new prefix too. https://docs.aws.amazon.com/dtconsole/latest/userguide/rename.html
        """
        prefix = connection_arn.split(":")[2]
        if prefix == "codestar-connections":
            return
        roles = [
            child
            for child in self.pipeline.pipeline.node.find_all()
            if isinstance(child, iam.Role)
            and child.node.path.endswith("/CodePipelineActionRole")
            and "/Source/" in child.node.path
        ]
        assert len(roles) == 1, [role.node.path for role in roles]
        roles[0].add_to_principal_policy(
            iam.PolicyStatement(actions=[f"{prefix}:UseConnection"], resources=[connection_arn])
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
        access_logs = access_log_bucket(
            self,
            "AccessLogsBucket",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireAccessLogs",
                    expiration=Duration.days(LOG_RETENTION_DAYS),
                    noncurrent_version_expiration=Duration.days(30),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                )
            ],
            removal_policy=RemovalPolicy.RETAIN,
            why_not_logged="This bucket receives the artifact bucket's access logs; logging its own access would loop",
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
        artifact_resource = artifacts.node.default_child
        if not isinstance(artifact_resource, s3.CfnBucket):
            raise TypeError(f"{artifacts.node.path} has no CfnBucket")
        artifact_resource.logging_configuration = s3.CfnBucket.LoggingConfigurationProperty(
            destination_bucket_name=access_logs.bucket_name, log_file_prefix=ARTIFACT_LOG_PREFIX
        )
        return access_logs

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
