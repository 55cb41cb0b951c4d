"""Each tenant's job roles, made from the tenant files at synth, and the mapping the state machine reads them from.

A tenant's prepare, training, transform and baseline jobs run as roles of that tenant
(mlops_constructs/training_roles.py): a job of tenant A cannot read or write a prefix of tenant B.
The state machine stays one definition for every tenant: after the plan it reads the tenant's role
ARNs from ``artifacts/config/job-roles/<tenant>.json`` (published here at deploy time, pruned with
the tenant) and passes them to SageMaker. It may pass exactly these roles: CloudFormation names a
role ``<stack name>-<logical id>-<suffix>``
(https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-name.html),
and only these roles' logical IDs start with this construct's, so ``role/<stack>-<that prefix>*``
matches them and nothing else. (An IAM path would say the same, but every path adds entries to the
bootstrap's execution policy, which has no room left: scripts/execution_policy.py.)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from aws_cdk import Stack
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3_deployment as s3_deployment
from constructs import Construct

from mlops_constructs.training_roles import JobRoles, KeyGrants, Zones, job_roles

JOB_ROLES_PREFIX = "artifacts/config/job-roles/"
JOB_KINDS = ("prepare", "train", "transform", "baseline")


# A generated role name keeps its stack name and logical ID's start within IAM's 64 characters when
# they leave room for the "-" and CloudFormation's suffix (about 13 characters).
ROLE_NAME_MAX = 64
GENERATED_SUFFIX_ROOM = 14


def logical_id_prefix(construct: Construct) -> str:
    """The start of every logical ID CDK derives for resources below ``construct`` (its path's components)."""
    stack = Stack.of(construct)
    components = construct.node.path.split("/")[len(stack.node.path.split("/")) :]
    return "".join(re.sub(r"[^A-Za-z0-9]", "", part) for part in components if part != "Default")


def job_roles_key(tenant: str) -> str:
    return f"{JOB_ROLES_PREFIX}{tenant}.json"


def job_roles_document(arns: Mapping[str, str]) -> dict[str, str]:
    """What ``job_roles_key(tenant)`` holds: the role ARN of each job kind (the state machine's ``$.roles.arns``)."""
    missing = [kind for kind in JOB_KINDS if kind not in arns]
    if missing:
        raise ValueError(f"job roles document: no role for {', '.join(missing)}")
    return {kind: arns[kind] for kind in JOB_KINDS}


class TenantJobRoles(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        tenants: Sequence[str],
        key: kms.IKey,
        grants: KeyGrants,
        zones: Zones,
        progress_bus: events.IEventBus,
        cpu_image: ecr_assets.DockerImageAsset,
        gpu_image: ecr_assets.DockerImageAsset | None,
    ) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        name_prefix = f"{stack.stack_name}-{logical_id_prefix(self)}"
        if len(name_prefix) > ROLE_NAME_MAX - GENERATED_SUFFIX_ROOM:
            raise ValueError(
                f"stack name {stack.stack_name!r} is too long for the tenant job roles' generated names "
                f"({name_prefix!r} must stay within {ROLE_NAME_MAX - GENERATED_SUFFIX_ROOM} characters)"
            )
        self.name_prefix = name_prefix
        self.roles: dict[str, JobRoles] = {
            tenant: job_roles(
                Construct(self, tenant),
                tenant=tenant,
                key=key,
                grants=grants,
                zones=zones,
                progress_bus=progress_bus,
                cpu_image=cpu_image,
                gpu_image=gpu_image,
            )
            for tenant in sorted(tenants)
        }
        # Every tenant job role of this stack, as one IAM resource for iam:PassRole (CDK's tasks take one role).
        self.passable = iam.Role.from_role_arn(
            self, "Passable", f"arn:{stack.partition}:iam::{stack.account}:role/{name_prefix}*", mutable=False
        )
        documents = [
            s3_deployment.Source.json_data(
                f"{tenant}.json",
                job_roles_document(
                    {
                        "prepare": roles.prepare.role_arn,
                        "train": roles.train.role_arn,
                        "transform": roles.transform.role_arn,
                        "baseline": roles.baseline.role_arn,
                    }
                ),
            )
            for tenant, roles in self.roles.items()
        ]
        # An empty placeholder keeps the deployment valid (and prunes removed tenants) with no tenant at all.
        self.mapping = s3_deployment.BucketDeployment(
            self,
            "Mapping",
            sources=documents or [s3_deployment.Source.data(".keep", "")],
            destination_bucket=zones.artifacts,
            destination_key_prefix=JOB_ROLES_PREFIX,
            prune=True,
            retain_on_delete=False,
            content_type="application/json",
            memory_limit=256,
        )
