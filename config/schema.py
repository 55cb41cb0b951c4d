"""Typed, frozen settings of the platform.

Every field carries a ``description`` that says what is allowed: the loader quotes it when a value
is wrong, so an error names the file, the key, the value and the allowed values in one sentence.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    Field,
    StrictBool,
    StrictInt,
    ValidationInfo,
    field_validator,
)

from config.base import StrictModel
from config.deployed import DeployedVariants
from config.instance_types import check_instance_type
from config.monitoring import Monitoring
from config.serving import Serving
from config.tenants import PipelineConfig

# The pipeline deploys environments in this order; the names are contracts (stage and stack names).
ENVIRONMENT_NAMES: tuple[str, ...] = ("dev", "staging", "prod")

# Regions of the commercial partition, where the managed Powertools layer and every service the
# platform uses are published. Other partitions need other ARNs (and are not supported yet).
# Maintained by hand: add a region here when AWS opens it and the Powertools layer is published there.
COMMERCIAL_REGIONS = (
    "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "ca-west-1", "mx-central-1", "sa-east-1",
    "eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1", "eu-central-2", "eu-north-1", "eu-south-1", "eu-south-2",
    "il-central-1", "me-south-1", "me-central-1", "af-south-1", "ap-east-1", "ap-east-2", "ap-south-1", "ap-south-2",
    "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3",
    "ap-southeast-4", "ap-southeast-5", "ap-southeast-6", "ap-southeast-7",
)  # fmt: skip

# The retention periods CloudWatch Logs accepts (PutRetentionPolicy).
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip


def _check_log_retention(value: int) -> int:
    if value not in LOG_RETENTION_DAYS:
        raise ValueError("one of CloudWatch Logs' retention periods: " + ", ".join(map(str, LOG_RETENTION_DAYS)))
    return value


InstanceType = Annotated[str, AfterValidator(check_instance_type)]
LogRetentionDays = Annotated[StrictInt, AfterValidator(_check_log_retention)]


class ProjectConfig(StrictModel):
    name: str = Field(
        pattern=r"^[a-z][a-z0-9]{1,15}$",
        description="2 to 16 lowercase letters or digits, starting with a letter (it prefixes every contract name)",
    )
    tags: dict[str, str] = Field(
        default_factory=dict,
        description="a mapping of tag keys to string values, applied to every resource",
    )


class Retention(StrictModel):
    log_retention_days: LogRetentionDays = Field(description="one of CloudWatch Logs' retention periods")
    noncurrent_version_expiration_days: StrictInt = Field(ge=1, description="a whole number of days, at least 1")
    raw_infrequent_access_after_days: StrictInt = Field(
        ge=30, description="a whole number of days, at least 30 (S3's minimum before Standard-IA)"
    )
    raw_archive_after_days: StrictInt = Field(
        ge=31, description="a whole number of days after the Standard-IA transition"
    )
    query_results_expiration_days: StrictInt = Field(ge=1, description="a whole number of days, at least 1")
    access_logs_expiration_days: StrictInt = Field(ge=1, description="a whole number of days, at least 1")
    # Captured requests, quarantined records, raw data and predictions may hold personal data: each expires.
    capture_expiration_days: StrictInt = Field(ge=1, description="a whole number of days, at least 1")
    quarantine_expiration_days: StrictInt = Field(ge=1, description="a whole number of days, at least 1")
    predictions_expiration_days: StrictInt = Field(ge=1, description="a whole number of days, at least 1")
    raw_expiration_days: StrictInt = Field(
        ge=1, description="a whole number of days, at least 1 and more than raw_archive_after_days"
    )

    @field_validator("raw_expiration_days")
    @classmethod
    def _expire_after_archive(cls, value: int, info: ValidationInfo) -> int:
        # S3 expires an object only after its last transition ("Lifecycle configuration elements":
        # https://docs.aws.amazon.com/AmazonS3/latest/userguide/intro-lifecycle-rules.html).
        archive = info.data.get("raw_archive_after_days")
        if archive is not None and value <= archive:
            raise ValueError(f"a whole number of days, more than raw_archive_after_days ({archive})")
        return value

    @field_validator("raw_archive_after_days")
    @classmethod
    def _archive_after_infrequent_access(cls, value: int, info: ValidationInfo) -> int:
        # S3 refuses a Glacier transition less than 30 days after the Standard-IA one (and
        # Standard-IA bills 30 days whatever happens).
        infrequent_access = info.data.get("raw_infrequent_access_after_days")
        if infrequent_access is not None and value < infrequent_access + 30:
            raise ValueError(
                f"a whole number of days, at least 30 more than raw_infrequent_access_after_days ({infrequent_access})"
            )
        return value


class InstanceTypes(StrictModel):
    processing: InstanceType = Field(description="the instance type of data-preparation Processing jobs")
    training: InstanceType = Field(description="the default instance type of training jobs")
    inference: InstanceType = Field(description="the default instance type of endpoint variants")
    batch_transform: InstanceType = Field(description="the instance type of batch prediction jobs")


class Capacities(StrictModel):
    training_max_concurrency: StrictInt = Field(
        ge=1, le=10000, description="a whole number from 1 to 10000 (parallel trainings of one run)"
    )
    ingest_batch_size: StrictInt = Field(
        ge=1, le=10, description="a whole number from 1 to 10 (SQS messages per invocation)"
    )
    ingest_max_concurrency: StrictInt = Field(
        ge=2, le=1000, description="a whole number from 2 to 1000 (SQS event source maximum concurrency)"
    )


class Ingestion(StrictModel):
    max_record_bytes: StrictInt = Field(
        ge=1, le=262144, description="a whole number of bytes from 1 to 262144 (one record, encoded as JSON)"
    )
    max_receive_count: StrictInt = Field(
        ge=1, le=1000, description="a whole number from 1 to 1000 (deliveries before a message goes to the DLQ)"
    )
    max_records_per_message: StrictInt = Field(
        default=1000,
        ge=1,
        le=10000,
        description="a whole number from 1 to 10000 (records in one message; a message with more is quarantined)",
    )


# A week: with the state machine's back-off (one wait at most 30 minutes), a trial's waits and polls
# stay inside a child execution's 25,000 history events (tests/infra/test_training.py computes it).
MAX_CAPACITY_WAIT_LIMIT_SECONDS = 604_800


class Training(StrictModel):
    auto_approve: StrictBool = Field(
        description="true or false (approve a model package that meets its tenant's threshold without a person)"
    )
    tolerated_failure_percentage: StrictInt = Field(
        default=50,
        ge=0,
        le=100,
        description="a whole number from 0 to 100 (failed trials a run tolerates before it fails)",
    )
    capacity_wait_limit_seconds: StrictInt = Field(
        default=21_600,
        ge=600,
        le=MAX_CAPACITY_WAIT_LIMIT_SECONDS,
        description=(
            "a whole number of seconds from 600 to 604800 (how long one trial waits out training quota and "
            "throttling before it gives up and notifies)"
        ),
    )
    progress_interval_seconds: StrictInt = Field(
        default=10,
        ge=1,
        le=3600,
        description="a whole number of seconds from 1 to 3600 (at most one progress event per trial this often)",
    )


# An IAM role's ARN (a path allowed) or, for accounts without federation, an IAM user's: what CloudTrail names as
# the session issuer of an assumed role, or the user (userIdentity, https://docs.aws.amazon.com/awscloudtrail/
# latest/userguide/cloudtrail-event-reference-user-identity.html).
APPROVER_ARN = r"^arn:aws:iam::\d{12}:(role|user)/([\w+=,.@-]+/)*[\w+=,.@-]{1,64}$"


class Approval(StrictModel):
    approver_role_arns: tuple[Annotated[str, Field(pattern=APPROVER_ARN)], ...] = Field(
        default=(),
        max_length=50,
        description=(
            "a list of at most 50 IAM role ARNs (arn:aws:iam::<account>:role/<path/><name>, or :user/<name>) of the "
            "environment's account whose approval of a model package promotes it; at least one in prod"
        ),
    )


class Notifications(StrictModel):
    emails: tuple[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")], ...] = Field(
        default=(), description="a list of e-mail addresses subscribed to the environment's notification topic"
    )


class EnvironmentConfig(StrictModel):
    name: Literal["dev", "staging", "prod"] = Field(description="one of dev, staging, prod, the same as the file name")
    account: str = Field(pattern=r"^\d{12}$", description="a 12-digit AWS account id, quoted as a string")
    region: Literal[COMMERCIAL_REGIONS] = Field(  # type: ignore[valid-type]
        description="an AWS commercial region: " + ", ".join(COMMERCIAL_REGIONS)
    )
    termination_protection: StrictBool = Field(description="true or false (protects the stateful stacks)")
    removal_policy: Literal["retain", "destroy"] = Field(
        description="retain or destroy (what happens to buckets, keys and tables when a stack is deleted)"
    )
    retention: Retention
    instance_types: InstanceTypes
    capacities: Capacities
    ingestion: Ingestion
    training: Training
    serving: Serving
    monitoring: Monitoring = Monitoring()
    notifications: Notifications = Notifications()
    approval: Approval = Approval()
    owns_account_singletons: StrictBool = Field(
        default=True,
        description=(
            "true or false (true in exactly one environment per account and region: it owns the settings that "
            "exist once there, ECR registry scanning and API Gateway's CloudWatch Logs role)"
        ),
    )

    @property
    def retains_data(self) -> bool:
        return self.removal_policy == "retain"

    @property
    def is_production(self) -> bool:
        """Production serves customers: at least two instances per variant, in two availability zones."""
        return self.name == "prod"

    def problems(self) -> list[tuple[str, object, str]]:
        """(key, value, what is allowed) for rules that span sections."""
        return [*self.serving.problems(production=self.is_production), *self._approval_problems()]

    def _approval_problems(self) -> list[tuple[str, object, str]]:
        """In prod only listed roles approve; an approver of another account never calls this account's registry."""
        approvers = list(self.approval.approver_role_arns)
        if self.is_production and not approvers:
            return [
                (
                    "approval.approver_role_arns",
                    approvers,
                    "at least one IAM role ARN in prod (only these roles' approvals are promoted)",
                )
            ]
        for index, arn in enumerate(approvers):
            if arn.split(":")[4] != self.account:
                return [
                    (
                        f"approval.approver_role_arns.{index}",
                        arn,
                        f"a role of this environment's account {self.account} (the one whose registry it approves in)",
                    )
                ]
        return []


# The delivery pipeline (config/pipeline.yaml). CodeCommit is closed to new customers, so the source
# is a CodeConnections (formerly CodeStar Connections) connection; both ARN forms are in use.
CONNECTION_ARN = (
    r"^arn:aws:(codeconnections|codestar-connections):[a-z]{2}(-[a-z]+)+-\d:\d{12}:connection/"
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
)
# The environment the pipeline smoke-tests after deploying it, and what it scores and trains there:
# the example tenant, whose models are never promoted, so a smoke test cannot loop into a deployment.
SMOKE_TESTED_ENVIRONMENT = "staging"
SMOKE_TEST_TENANT = "example"
SMOKE_TEST_ENDPOINT = "example"


class PipelineSource(StrictModel):
    connection_arn: str = Field(
        pattern=CONNECTION_ARN,
        description=(
            "the ARN of an available CodeConnections connection in the tooling account, "
            "arn:aws:codeconnections:<region>:<account>:connection/<uuid> (or codestar-connections)"
        ),
    )
    repository: str = Field(
        pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$",
        description="the repository the connection reaches, as owner/name (such as acme/mlops-platform)",
    )
    branch: str = Field(
        pattern=r"^[A-Za-z0-9._/-]{1,255}$",
        description="the branch whose every push runs the pipeline, such as main",
    )


class SmokeTest(StrictModel):
    training_models: tuple[str, ...] = Field(
        default=("xgboost",),
        min_length=1,
        description="a non-empty list of the example tenant's models that the smoke test's training run trains",
    )
    timeout_minutes: StrictInt = Field(
        default=120,
        ge=10,
        le=480,
        description="a whole number of minutes from 10 to 480 (the smoke test's scoring and training run together)",
    )


class DeliveryPipelineConfig(StrictModel):
    """The delivery pipeline: one, in a tooling account; it deploys dev, staging and prod in order."""

    account: str = Field(pattern=r"^\d{12}$", description="the tooling account's 12-digit id, quoted as a string")
    region: Literal[COMMERCIAL_REGIONS] = Field(  # type: ignore[valid-type]
        description="an AWS commercial region: " + ", ".join(COMMERCIAL_REGIONS)
    )
    source: PipelineSource
    smoke_test: SmokeTest = SmokeTest()
    notifications: Notifications = Notifications()

    @property
    def connection_account(self) -> str:
        return self.source.connection_arn.split(":")[4]

    def problems(self) -> list[tuple[str, object, str]]:
        """(key, value, what is allowed) for rules that span sections."""
        # A connection has no resource policy: only principals of the account that owns it can use it.
        if self.connection_account != self.account:
            return [
                (
                    "source.connection_arn",
                    self.source.connection_arn,
                    f"a connection of the tooling account {self.account} (a connection is usable only in its own "
                    "account)",
                )
            ]
        return []


class PlatformConfig(StrictModel):
    """Everything ``app.py`` needs: the project and the environments to synthesize, in pipeline order."""

    project: ProjectConfig
    environments: tuple[EnvironmentConfig, ...]
    pipelines: tuple[PipelineConfig, ...] = ()
    # Each environment's endpoint variants as last deployed (config/deployed-variants.yaml).
    deployed: DeployedVariants = DeployedVariants()
    # The delivery pipeline (config/pipeline.yaml); None when the file is absent: no pipeline.
    delivery_pipeline: DeliveryPipelineConfig | None = None

    def environment(self, name: str) -> EnvironmentConfig:
        for environment in self.environments:
            if environment.name == name:
                return environment
        raise KeyError(name)
