"""Each tenant's job roles, made from the tenant files at synth, and the mapping the state machine reads them from.

A tenant's prepare, training, transform and baseline jobs run as roles of that tenant
(mlops_constructs/training_roles.py): a job of tenant A cannot read or write a prefix of tenant B.
The state machine stays one definition for every tenant: after the plan it reads the tenant's role
ARNs from ``artifacts/config/job-roles/<tenant>.json`` (published here at deploy time, pruned with
the tenant) and passes them to SageMaker. It may pass exactly the roles under this environment's
IAM path ``/<project>-<env>/tenant-jobs/``, which only these roles have: the role ARN includes the
path, so ``role/<path>*`` matches them and nothing else
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_identifiers.html#identifiers-friendly-names,
"Friendly names and paths").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Stack
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3_deployment as s3_deployment
from constructs import Construct

from config.naming import Names
from mlops_constructs.training_roles import JobRoles, KeyGrants, Zones, job_roles

JOB_ROLES_PREFIX = "artifacts/config/job-roles/"
JOB_KINDS = ("prepare", "train", "transform", "baseline")


def job_roles_path(names: Names) -> str:
    """``/<project>-<env>/tenant-jobs/``: the IAM path of every tenant's job roles in this environment."""
    return f"/{names.prefix}/tenant-jobs/"


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
        names: Names,
        tenants: Sequence[str],
        key: kms.IKey,
        grants: KeyGrants,
        zones: Zones,
        progress_bus: events.IEventBus,
        cpu_image: ecr_assets.DockerImageAsset,
        gpu_image: ecr_assets.DockerImageAsset | None,
    ) -> None:
        super().__init__(scope, id)
        path = job_roles_path(names)
        self.roles: dict[str, JobRoles] = {
            tenant: job_roles(
                Construct(self, tenant),
                tenant=tenant,
                path=path,
                key=key,
                grants=grants,
                zones=zones,
                progress_bus=progress_bus,
                cpu_image=cpu_image,
                gpu_image=gpu_image,
            )
            for tenant in sorted(tenants)
        }
        stack = Stack.of(self)
        # Every role under the path, as one IAM resource for iam:PassRole (CDK's tasks take one role).
        self.passable = iam.Role.from_role_arn(
            self, "Passable", f"arn:{stack.partition}:iam::{stack.account}:role{path}*", mutable=False
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
