"""Why the wildcards in the policies CDK Pipelines writes for its own roles are acceptable.

They come from aws-cdk-lib's grants (``grantReadWrite`` on the artifact bucket and its key, CodeBuild's
log and report-group grants), not from this code; each is acknowledged on the one policy that holds it.
"""

from __future__ import annotations

from aws_cdk import Stack, pipelines
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_iam as iam
from constructs import Construct, IConstruct

from mlops_constructs.nag import acknowledge, acknowledge_wildcard_resource

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


def _policy_of(role: iam.IRole | None) -> IConstruct:
    policy = role.node.try_find_child("DefaultPolicy") if role else None
    if policy is None:
        raise TypeError(f"{role.node.path if role else 'a project'} has no default policy")
    return policy


def acknowledge_generated_grants(scope: Construct, pipeline: pipelines.CodePipeline) -> None:
    """The wildcards of the roles of ``pipeline``, built in ``scope``, each on the one policy that holds it."""
    stack = Stack.of(scope)
    artifacts = pipeline.pipeline.artifact_bucket
    artifact_objects = f"{artifacts.bucket_arn}/*"
    codebuild_arn = f"arn:{stack.partition}:codebuild:{stack.region}:{stack.account}:report-group/"
    logs_arn = f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:/aws/codebuild/"
    projects = [construct for construct in scope.node.find_all() if isinstance(construct, codebuild.Project)]
    users: dict[str, list[codebuild.Project]] = {}
    for project in projects:
        users.setdefault(project.role.node.path if project.role else "", []).append(project)

    def artifacts_grant(policy: IConstruct, *, write: bool, key: bool) -> None:
        for action in ARTIFACT_READ_ACTIONS + (ARTIFACT_WRITE_ACTIONS if write else ()):
            acknowledge(policy, f"AwsSolutions-IAM5[Action::{action}]", ARTIFACT_GRANT_REASON)
        for action in ARTIFACT_KEY_ACTIONS if key else ():
            acknowledge(policy, f"AwsSolutions-IAM5[Action::{action}]", ARTIFACT_KEY_REASON)
        acknowledge_wildcard_resource(policy, artifact_objects, ARTIFACT_GRANT_REASON)

    artifacts_grant(_policy_of(pipeline.pipeline.role), write=True, key=True)
    for construct in pipeline.pipeline.node.find_child("Source").node.find_all():
        if isinstance(construct, iam.Role):  # the source action's role
            artifacts_grant(_policy_of(construct), write=True, key=True)
    for role_path, role_projects in users.items():
        policy = _policy_of(role_projects[0].role)
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
    self_mutation = _policy_of(pipeline.self_mutation_project.role)
    acknowledge(self_mutation, "AwsSolutions-IAM5[Resource::*]", SELF_MUTATION_LOOKUP_REASON)
    acknowledge(
        self_mutation, f"AwsSolutions-IAM5[Resource::arn:*:iam::{stack.account}:role/*]", BOOTSTRAP_ROLES_REASON
    )
