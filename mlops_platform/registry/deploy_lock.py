"""The deployment lock of an environment's Serving stack: one writer of its model pointers at a time.

A ledger item ``LOCK#<stack>`` / ``LOCK`` taken with a conditional write by its owner's name. The approval
path's deployment workflow (``deployment``) holds it from before it writes a pointer until its deploy is
judged; ``mlops promote`` (``promotion.deployment_lock``) holds it while it checks and writes one.
So a person's promotion never lands between a workflow's write and its judgement, and two promotions
never interleave. The lock expires (``expires_at``, epoch seconds), so an owner that died cannot block
the others forever; whoever finds it expired takes it over.

Ordering is not the lock's job: the lock serializes writers, whatever order they come in. Each writer
checks, under the lock, that it does not put an older package over a newer one
(``pointers.newer_package``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from mlops_platform.registry.ledger import iso
from mlops_platform.registry.packages import error_code


def lock_key(stack_name: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": f"LOCK#{stack_name}"}, "sk": {"S": "LOCK"}}


def plain(item: Mapping[str, Any] | None) -> dict[str, str]:
    """A DynamoDB item's string and number attributes as Python strings."""
    return {key: next(iter(value.values())) for key, value in (item or {}).items() if set(value) & {"S", "N"}}


def take(
    dynamodb: Any,
    table: str,
    stack_name: str,
    *,
    owner: str,
    now: datetime,
    seconds: int,
    fields: Mapping[str, str] | None = None,
) -> dict[str, str] | None:
    """Take (or keep, for the same owner) the lock; the holder's item when another owner has it.

    ``fields`` are strings recorded on the lock (what the owner is about to write), for people reading it.
    Keeping it renews ``expires_at``; ``acquired_at`` stays the first take's.
    """
    epoch = int(now.timestamp())
    extra = dict(sorted((fields or {}).items()))
    names = {"#owner": "owner", **{f"#f{i}": name for i, name in enumerate(extra)}}
    values = {
        ":me": {"S": owner},
        ":expires": {"N": str(epoch + seconds)},
        ":now": {"N": str(epoch)},
        ":at": {"S": iso(now)},
        **{f":f{i}": {"S": value} for i, value in enumerate(extra.values())},
    }
    assignments = ["#owner = :me", "expires_at = :expires", "acquired_at = if_not_exists(acquired_at, :at)"]
    assignments += [f"#f{i} = :f{i}" for i in range(len(extra))]
    try:
        dynamodb.update_item(
            TableName=table,
            Key=lock_key(stack_name),
            UpdateExpression="SET " + ", ".join(assignments),
            ConditionExpression="attribute_not_exists(pk) OR #owner = :me OR expires_at < :now",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as error:
        if error_code(error) != "ConditionalCheckFailedException":
            raise
        return plain(error.response.get("Item")) or {"owner": "another writer"}
    return None


def read(dynamodb: Any, table: str, stack_name: str) -> dict[str, str]:
    """The lock item as it is now (empty when nobody holds it)."""
    return plain(dynamodb.get_item(TableName=table, Key=lock_key(stack_name), ConsistentRead=True).get("Item"))


def keep_previous(
    dynamodb: Any, table: str, stack_name: str, owner: str, *, value: str, description: str, written: str
) -> None:
    """Record on the lock, while ``owner`` holds it, the pointer's value and description before the owner
    wrote ``written``: what a failed deploy restores."""
    dynamodb.update_item(
        TableName=table,
        Key=lock_key(stack_name),
        UpdateExpression="SET previous_value = :value, previous_description = :description, written = :written",
        ConditionExpression="#owner = :me",
        ExpressionAttributeNames={"#owner": "owner"},
        ExpressionAttributeValues={
            ":me": {"S": owner},
            ":value": {"S": value},
            ":description": {"S": description},
            ":written": {"S": written},
        },
    )


def release(dynamodb: Any, table: str, stack_name: str, owner: str) -> None:
    """Give the lock up if ``owner`` still holds it (a lock taken over after it expired is not ours)."""
    try:
        dynamodb.delete_item(
            TableName=table,
            Key=lock_key(stack_name),
            ConditionExpression="#owner = :me",
            ExpressionAttributeNames={"#owner": "owner"},
            ExpressionAttributeValues={":me": {"S": owner}},
        )
    except ClientError as error:
        if error_code(error) != "ConditionalCheckFailedException":
            raise


def held_by(holder: Mapping[str, str]) -> str:
    """``<owner> (until <time>)``: who holds the lock, for a message."""
    owner = holder.get("owner", "another writer")
    expires = holder.get("expires_at")
    if expires and expires.isdigit():
        return f"{owner} (until {iso(datetime.fromtimestamp(int(expires), UTC))} at the latest)"
    return owner
