"""A person's promotion: point an endpoint variant at an approved package, or roll its pointer back.

``mlops promote``, ``promote-challenger`` and ``rollback`` are the commands; this is what they do, with
any clients. Every change runs the checks of ``checks`` (the approval path's), takes the environment's
deployment lock (``deploy_lock``, the one the deployment workflow holds from before it writes a pointer
until its deploy is judged), and is recorded in the run ledger (``PROMOTION#<endpoint>``, beside the
approval path's records).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from mlops_platform.registry import deploy_lock
from mlops_platform.registry.checks import check_package
from mlops_platform.registry.ledger import iso, ledger_item, put_once, utc_now
from mlops_platform.registry.packages import EXAMPLE, PromotionRefused, error_code
from mlops_platform.registry.pointers import (
    newer_package,
    pointer_description,
    previous_version,
    read_pointer,
    write_pointer,
)

# Longer than a promotion takes (seconds), short enough that a killed command blocks the workflow
# only briefly: the lock expires, and the workflow waits and asks again meanwhile.
LOCK_SECONDS = 600


@dataclass(frozen=True)
class Promotion:
    """What ``promote`` wrote (or, on a dry run, would write)."""

    pointer: str
    package_arn: str
    model_data: str
    description: str
    previous: str
    tenant: str
    model: str | None
    algorithm: str
    flavour: str
    written: bool

    @property
    def unchanged(self) -> bool:
        return self.previous == self.model_data


@dataclass(frozen=True)
class Rollback:
    """What ``rollback`` wrote (or would write): the pointer's earlier version."""

    pointer: str
    value: str
    description: str | None
    version: int
    previous: str
    package_arn: str | None
    written: bool


def promote(
    *,
    sagemaker: Any,
    s3: Any,
    ssm: Any,
    package_arn: str,
    pointer: str,
    tenant_config: Mapping[str, Any],
    flavour: str,
    group_prefix: str | None = None,
    model: str | None = None,
    dry_run: bool = False,
    expected_model_data: str | None = None,
    allow_older: bool = False,
) -> Promotion:
    """Check the package against the variant, then point the variant at the package's artifact.

    ``group_prefix`` (``Names.prefix``, such as ``mlops-dev``) confines the package to the
    environment's own groups; ``model`` (the endpoint's declared model) to that model's group;
    ``expected_model_data`` to the artifact another pointer already names. ``tenant_config`` is the endpoint's
    tenant's config as synth publishes it (``PipelineConfig.published()``). A package older than the
    one the pointer names is refused unless ``allow_older``. Raises ``PromotionRefused`` before
    writing anything.
    """
    checked = check_package(
        sagemaker=sagemaker,
        s3=s3,
        package_arn=package_arn,
        tenant_config=tenant_config,
        flavour=flavour,
        group_prefix=group_prefix,
        model=model,
    )
    if expected_model_data is not None and checked.model_data != expected_model_data:
        raise PromotionRefused(
            f"model package {package_arn} has the artifact {checked.model_data}, not {expected_model_data} "
            "as the pointer that names it holds; promote the package itself with --model-package"
        )
    current = read_pointer(ssm, pointer)
    newer = newer_package(current, package_arn)
    if newer is not None and not allow_older:
        raise PromotionRefused(
            f"the model pointer {pointer} names {newer}, a newer version than {package_arn}, and an older "
            "package never overwrites a newer one; allowed: a newer package, --rollback to return to the model "
            "served before, or --allow-older to mean it"
        )
    previous = current.value
    description = pointer_description(package_arn)
    if not dry_run:
        write_pointer(ssm, pointer, checked.model_data, description)
    return Promotion(
        pointer=pointer,
        package_arn=package_arn,
        model_data=checked.model_data,
        description=description,
        previous=previous,
        tenant=checked.tenant,
        model=checked.model,
        algorithm=checked.algorithm,
        flavour=flavour,
        written=not dry_run,
    )


def rollback(*, ssm: Any, pointer: str, dry_run: bool = False) -> Rollback:
    """Return a pointer to its newest earlier version with another value; ``PromotionRefused`` when none."""
    current = read_pointer(ssm, pointer)
    try:
        earlier = previous_version(ssm, pointer)
    except ClientError as error:
        raise PromotionRefused(
            f"cannot read the history of the model pointer {pointer} ({error_code(error)})"
        ) from None
    if earlier is None:
        raise PromotionRefused(
            f"the model pointer {pointer} has no earlier version with another value than {current.value} "
            "(SSM keeps the last 100 versions): there is nothing to roll back to"
        )
    if not dry_run:
        write_pointer(ssm, pointer, earlier.value, earlier.description or f"rolled back to version {earlier.version}")
    return Rollback(
        pointer=pointer,
        value=earlier.value,
        description=earlier.description,
        version=earlier.version,
        previous=current.value,
        package_arn=earlier.package_arn,
        written=not dry_run,
    )


def challenger_package(ssm: Any, pointer: str) -> tuple[str, str]:
    """(package ARN, artifact) the Challenger's pointer names; ``PromotionRefused`` when it names no package."""
    current = read_pointer(ssm, pointer)
    if current.value == EXAMPLE or current.package_arn is None:
        raise PromotionRefused(
            f"the Challenger's pointer {pointer} holds {current.value!r} and names no model package "
            f"(description {current.description!r}): there is no challenger model to promote"
        )
    return current.package_arn, current.value


def record(
    dynamodb: Any,
    table: str,
    *,
    endpoint: str,
    variant: str,
    decision: str,
    reason: str,
    tenant: str | None,
    pointer: str,
    value: str,
    previous: str,
    package_arn: str | None,
    by: str | None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The pointer change as a run-ledger record ``PROMOTION#<endpoint>`` / ``<decided_at>#<decision>#<id>``."""
    decided_at = iso(now or utc_now())
    identity = hashlib.sha256(f"{pointer}\n{value}\n{decided_at}".encode()).hexdigest()[:12]
    item: dict[str, Any] = ledger_item(
        endpoint=endpoint,
        decision=decision,
        decided_at=decided_at,
        reason=reason,
        sort_key=f"{decided_at}#{decision}#{identity}",
        tenant=tenant,
        variant=variant,
        pointer=pointer,
        model_data=value,
        previous=previous,
        package_arn=package_arn,
        by=by,
        source="mlops",
    )
    put_once(dynamodb, table, item)
    return item


@contextmanager
def deployment_lock(
    dynamodb: Any, table: str | None, stack: str, caller: str | None, pointer: str, endpoint: str
) -> Iterator[None]:
    """Hold the deployment lock of the Serving stack ``stack`` (``deploy_lock``) for the block; no table
    (a dry run): no lock.

    ``PromotionRefused`` when someone holds it: a deployment workflow between its write and its judgement.
    """
    if table is None:
        yield
        return
    owner = f"mlops (a promotion) by {caller or 'an unknown caller'} ({uuid.uuid4().hex[:8]})"
    holder = deploy_lock.take(
        dynamodb,
        table,
        stack,
        owner=owner,
        now=utc_now(),
        seconds=LOCK_SECONDS,
        fields={"pointer": pointer, "endpoint": endpoint},
    )
    if holder is not None:
        raise PromotionRefused(
            f"the deployment lock of {stack} is held by {deploy_lock.held_by(holder)}: a promotion is being "
            "deployed; nothing was written. Run this again once it ends (its outcome reaches the environment's "
            "topic and the run ledger)"
        )
    try:
        yield
    finally:
        deploy_lock.release(dynamodb, table, stack, owner)
