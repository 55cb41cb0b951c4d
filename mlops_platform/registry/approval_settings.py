"""The approval function's settings and input: the endpoints it serves, and a package's state change.

Synth writes the settings into the function's environment (mlops_constructs/approval_path.py);
EventBridge delivers ``SageMaker Model Package State Change`` events of the default bus, and CloudTrail's
record of each successful ``UpdateModelPackage`` call that approves one of this environment's packages
(``AWS API Call via CloudTrail``), which names the approver. A malformed event is ``Malformed``: no retry
can act on it, so the function records it and moves on.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlops_platform.registry.packages import EXAMPLE, package_version

SOURCE = "aws.sagemaker"
DETAIL_TYPE = "SageMaker Model Package State Change"
# CloudTrail's record of an API call, on the default bus with the calling service's source
# (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-service-event-cloudtrail.html); its detail is the
# CloudTrail record: ``userIdentity`` (https://docs.aws.amazon.com/awscloudtrail/latest/userguide/
# cloudtrail-event-reference-user-identity.html), ``requestParameters`` the request in lower camel case
# (UpdateModelPackage: ``modelPackageArn``, ``modelApprovalStatus``,
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_UpdateModelPackage.html).
API_CALL_DETAIL_TYPE = "AWS API Call via CloudTrail"
API_EVENT_SOURCE = "sagemaker.amazonaws.com"
APPROVING_CALL = "UpdateModelPackage"
APPROVED = "Approved"
PENDING = "PendingManualApproval"
CHAMPION = "Champion"
CHALLENGER = "Challenger"
# config/serving.py: ENDPOINT_KEY.
ENDPOINT_KEY = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")


class Malformed(Exception):
    """An event that no retry can act on."""


@dataclass(frozen=True)
class Variant:
    name: str
    flavour: str
    instance_type: str
    min_capacity: int
    max_capacity: int
    initial_instance_count: int
    weight: float


@dataclass(frozen=True)
class Endpoint:
    key: str
    tenant: str
    model: str
    variants: tuple[Variant, ...]

    def variant(self, name: str) -> Variant | None:
        return next((variant for variant in self.variants if variant.name == name), None)

    def share(self, name: str) -> float:
        """The percentage of traffic a variant gets: SageMaker routes weight / sum(weights) to it."""
        total = sum(variant.weight for variant in self.variants)
        variant = self.variant(name)
        return round(100 * variant.weight / total, 2) if variant and total else 0.0


def load_variant(name: str, entry: list[Any]) -> Variant:
    flavour, instance_type, min_capacity, max_capacity, initial_instance_count, weight = entry
    return Variant(name, flavour, instance_type, min_capacity, max_capacity, initial_instance_count, float(weight))


def load_endpoints(text: str) -> dict[str, Endpoint]:
    """``ENDPOINTS``, the environment's ``serving.endpoints`` as synth writes it (mlops_constructs/approval_path.py),
    positional to fit Lambda's 4 KB of environment: ``{"<key>": ["<tenant>", "<model>", [["<variant>", "<flavour>",
    "<instance type>", <min>, <max>, <initial count>, <weight>], ...]]}``."""
    return {
        key: Endpoint(key, tenant, model, tuple(load_variant(entry[0], entry[1:]) for entry in variants))
        for key, (tenant, model, variants) in json.loads(text).items()
    }


@dataclass(frozen=True)
class Settings:
    environment: str
    region: str
    group_prefix: str
    pointer_prefix: str
    endpoints: dict[str, Endpoint]
    new_variant: Variant
    config_bucket: str
    config_prefix: str
    ledger_table: str
    topic_arn: str
    state_machine_arn: str
    ignored_tenants: frozenset[str]
    # The IAM roles (or users) whose approval promotes a package; empty: anyone's (then the state change
    # promotes). Non-empty (prod): only the approving call's CloudTrail record promotes (approval.py).
    approver_role_arns: frozenset[str] = frozenset()

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Settings:
        return cls(
            environment=environ["ENVIRONMENT"],
            region=environ.get("AWS_REGION", "eu-west-1"),
            group_prefix=environ["PACKAGE_GROUP_PREFIX"],
            pointer_prefix=environ["POINTER_PREFIX"],
            endpoints=load_endpoints(environ["ENDPOINTS"]),
            # ["<flavour>", "<instance type>", <min>, <max>, <initial count>]: a new variant's defaults.
            new_variant=load_variant(CHAMPION, [*json.loads(environ["NEW_VARIANT"]), 100]),
            config_bucket=environ["CONFIG_BUCKET"],
            config_prefix=environ.get("CONFIG_PREFIX", "artifacts/config/pipelines/"),
            ledger_table=environ["LEDGER_TABLE"],
            topic_arn=environ["TOPIC_ARN"],
            state_machine_arn=environ["STATE_MACHINE_ARN"],
            ignored_tenants=frozenset(
                t.strip() for t in environ.get("IGNORED_TENANTS", EXAMPLE).split(",") if t.strip()
            ),
            approver_role_arns=frozenset(
                arn.strip() for arn in environ.get("APPROVER_ROLE_ARNS", "").split(",") if arn.strip()
            ),
        )

    @property
    def approvers_restricted(self) -> bool:
        return bool(self.approver_role_arns)

    def pointer(self, endpoint: str, variant: str) -> str:
        return f"{self.pointer_prefix}{endpoint}/{variant}"


@dataclass(frozen=True)
class StateChange:
    package_arn: str
    group: str
    status: str
    event_id: str | None
    approver: Approver | None = None


@dataclass(frozen=True)
class Approver:
    """Who made an approving call: ``arn`` as CloudTrail names the caller (``userIdentity.arn``, for a role an
    ``assumed-role/<role>/<session>`` ARN), ``role_arn`` the IAM role behind it (``sessionContext.sessionIssuer``)
    or, for an IAM user, the user's ARN: what the configured approvers are compared with."""

    arn: str
    role_arn: str
    event_time: str | None


def is_api_call(event: Any) -> bool:
    return isinstance(event, dict) and event.get("detail-type") == API_CALL_DETAIL_TYPE


def parse_api_call(event: Any) -> StateChange:
    """The approval that a CloudTrail ``UpdateModelPackage`` record says happened, with its approver."""
    if not isinstance(event, dict) or (event.get("source"), event.get("detail-type")) != (SOURCE, API_CALL_DETAIL_TYPE):
        raise Malformed(f"not an {API_CALL_DETAIL_TYPE!r} event from {SOURCE}")
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise Malformed("detail must be an object")
    if (detail.get("eventSource"), detail.get("eventName")) != (API_EVENT_SOURCE, APPROVING_CALL):
        raise Malformed(f"detail is not a {APPROVING_CALL} call of {API_EVENT_SOURCE}")
    if detail.get("errorCode"):
        raise Malformed(f"the call failed ({detail.get('errorCode')}): nothing was approved")
    request = detail.get("requestParameters")
    identity = detail.get("userIdentity")
    if not isinstance(request, dict) or not isinstance(identity, dict):
        raise Malformed("detail lacks requestParameters or userIdentity")
    arn, status = request.get("modelPackageArn"), request.get("modelApprovalStatus")
    parsed = package_version(arn) if isinstance(arn, str) else None
    if parsed is None:
        raise Malformed(f"requestParameters.modelPackageArn {arn!r} is not a model package version ARN")
    if not isinstance(status, str) or not status:
        raise Malformed("requestParameters lacks modelApprovalStatus")
    caller = identity.get("arn")
    if not isinstance(caller, str) or not caller:
        raise Malformed("userIdentity lacks arn")
    issuer = (identity.get("sessionContext") or {}).get("sessionIssuer") or {}
    role_arn = issuer.get("arn") if identity.get("type") == "AssumedRole" else caller
    time = detail.get("eventTime")
    return StateChange(
        package_arn=str(arn),
        group=parsed[0],
        status=status,
        # CloudTrail's eventID: a redelivery of the same call carries it again.
        event_id=detail.get("eventID") if isinstance(detail.get("eventID"), str) else event.get("id"),
        approver=Approver(
            arn=caller,
            role_arn=role_arn if isinstance(role_arn, str) and role_arn else caller,
            event_time=time if isinstance(time, str) else None,
        ),
    )


def parse_event(event: Any) -> StateChange:
    if not isinstance(event, dict) or (event.get("source"), event.get("detail-type")) != (SOURCE, DETAIL_TYPE):
        raise Malformed(f"not a {DETAIL_TYPE!r} event from {SOURCE}")
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise Malformed("detail must be an object")
    values = {name: detail.get(name) for name in ("ModelPackageArn", "ModelPackageGroupName", "ModelApprovalStatus")}
    missing = sorted(name for name, value in values.items() if not isinstance(value, str) or not value)
    if missing:
        raise Malformed(f"detail lacks {', '.join(missing)}")
    if package_version(str(values["ModelPackageArn"])) is None:
        raise Malformed(f"detail.ModelPackageArn {values['ModelPackageArn']!r} is not a model package version ARN")
    return StateChange(
        package_arn=str(values["ModelPackageArn"]),
        group=str(values["ModelPackageGroupName"]),
        status=str(values["ModelApprovalStatus"]),
        event_id=event.get("id") if isinstance(event.get("id"), str) else None,
    )


def execution_name(endpoint: str, package_arn: str) -> str:
    """``<endpoint>-v<version>-<h>``, ``h`` 12 hex digits of sha256 of endpoint and ARN: unique per package and
    endpoint, at most 80 characters of ``[a-z0-9-]`` (Step Functions), starting with a letter (the change set's
    name is derived from it)."""
    parsed = package_version(package_arn)
    version = parsed[1] if parsed else 0
    digest = hashlib.sha256(f"{endpoint}\n{package_arn}".encode()).hexdigest()[:12]
    return f"{endpoint}-v{version}-{digest}"
