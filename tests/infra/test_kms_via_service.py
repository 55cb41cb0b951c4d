"""Every role's KMS permissions carry ``kms:ViaService``, or a reviewed reason says why they cannot (issue 17, point 6).

``kms:ViaService`` limits a grant on the key to requests an AWS service makes for the caller
(https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html#conditions-kms-via-service), so a
role that may write a queue or a table cannot call KMS directly with the key. The test lists every ``kms:*``
statement of every IAM policy of every stack of every environment; one without the condition must match an
entry of ``REVIEWED`` (policy logical ID pattern, exact actions), whose reason is the review.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.infra.conftest import ENVIRONMENTS, STACKS

VOLUME_GRANT = (
    "SageMaker creates a grant for the job's ML storage volume (CreateGrant with kms:GrantIsForAWSResource, "
    "which only an integrated AWS service satisfies); AWS documents no kms:ViaService value for that call "
    "(https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ResourceConfig.html, VolumeKmsKeyId)."
)
OUTPUT_KEY = (
    "SageMaker itself calls kms:Encrypt with the job's role for the output key it is given "
    "(https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_OutputDataConfig.html and "
    "API_TransformOutput.html, KmsKeyId); the calling service is not documented, so no ViaService value."
)
# (policy logical ID pattern, actions) -> why the statement carries no kms:ViaService.
REVIEWED: dict[tuple[str, frozenset[str]], str] = {
    (r"(Pipeline\w+|DriftMonitor\w+JobRole)\w*DefaultPolicy\w*", frozenset({"kms:CreateGrant", "kms:DescribeKey"})): (
        VOLUME_GRANT
    ),
    # Each tenant's train and transform roles (mlops_constructs/tenant_job_roles.py).
    (r"PipelineTenantJobRoles\w+TrainRoleDefaultPolicy\w*", frozenset({"kms:Encrypt"})): OUTPUT_KEY,
    (r"PipelineTenantJobRoles\w+TransformRoleDefaultPolicy\w*", frozenset({"kms:Encrypt"})): OUTPUT_KEY,
    (
        r"ApprovalPathDeployRoleDefaultPolicy\w*",
        frozenset({"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"}),
    ): (
        "aws-cdk-lib's CodeBuild Project grants its encryption key to the project's role; CodeBuild encrypts "
        "build output and logs with it in several services "
        "(https://docs.aws.amazon.com/codebuild/latest/userguide/security-encryption.html)."
    ),
    (
        r"CustomCDKBucketDeployment\w*ServiceRoleDefaultPolicy\w*",
        frozenset({"kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"}),
    ): (
        "aws-cdk-lib's BucketDeployment provider (a deploy-time singleton) is granted the destination's key by "
        "CDK; it reaches the key through S3 only, but the grant is CDK's (mlops_constructs/publishing.py)."
    ),
}


def kms_statements(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] not in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::Role"):
            continue
        properties = resource["Properties"]
        documents = [properties["PolicyDocument"]] if "PolicyDocument" in properties else []
        documents += [policy["PolicyDocument"] for policy in properties.get("Policies", [])]
        for document in documents:
            for statement in document["Statement"]:
                actions = statement.get("Action", [])
                actions = actions if isinstance(actions, list) else [actions]
                if statement["Effect"] == "Allow" and any(str(a).lower().startswith("kms:") for a in actions):
                    found.append((logical_id, statement))
    return found


def through_a_service(statement: dict[str, Any]) -> bool:
    return any("kms:ViaService" in tests for tests in statement.get("Condition", {}).values())


def reviewed(logical_id: str, statement: dict[str, Any]) -> str | None:
    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
    for (pattern, listed), reason in REVIEWED.items():
        if re.fullmatch(pattern, logical_id) and frozenset(actions) == listed:
            return reason
    return None


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_kms_permission_of_every_role_is_through_a_service_or_reviewed(synthesized, environment):
    unreviewed = [
        f"{environment}-{stack} {logical_id}: {statement['Action']}"
        for stack in STACKS
        for logical_id, statement in kms_statements(synthesized.template_json(environment, stack))
        if not through_a_service(statement) and reviewed(logical_id, statement) is None
    ]

    assert unreviewed == []


def test_the_review_lists_no_statement_that_no_longer_exists(synthesized):
    """An entry nobody needs any more is an exception nobody reviews again: each must still match."""
    used = {
        key
        for environment in ENVIRONMENTS
        for stack in STACKS
        for logical_id, statement in kms_statements(synthesized.template_json(environment, stack))
        if not through_a_service(statement)
        for key in REVIEWED
        if re.fullmatch(key[0], logical_id)
        and frozenset(statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]) == key[1]
    }

    assert set(REVIEWED) - used == set()
