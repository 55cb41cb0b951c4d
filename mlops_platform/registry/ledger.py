"""Promotion records of the run ledger (DynamoDB), each written once.

A record is ``PROMOTION#<endpoint>`` / ``<sort key>``; for a known tenant the ``ByTenant`` index holds it
too (``TENANT#<tenant>`` / ``PROMOTION#<decided_at>#<decision>``). Writers choose sort keys that name the
decision (``PACKAGE#<group>/<version>#<decision>``, ``EXECUTION#<execution>#<outcome>``), so a retried or
duplicate event finds its record and does nothing twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeSerializer  # type: ignore[import-untyped]
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from mlops_platform.registry.packages import error_code


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """``2026-11-24T12:00:00.000Z``: the ledger's time stamps."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ledger_item(
    *,
    endpoint: str,
    decision: str,
    decided_at: str,
    reason: str,
    sort_key: str,
    tenant: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """One promotion record of the run ledger: ``PROMOTION#<endpoint>`` / ``sort_key``, and for a known
    tenant the ``ByTenant`` index (``TENANT#<tenant>`` / ``PROMOTION#<decided_at>#<decision>``).

    Plain Python values (strings, numbers, lists, maps); None fields are left out.
    """
    item: dict[str, Any] = {
        "pk": f"PROMOTION#{endpoint}",
        "sk": sort_key,
        "kind": "promotion",
        "endpoint": endpoint,
        "decision": decision,
        "reason": reason[:1024],
        "decided_at": decided_at,
        **{key: value for key, value in fields.items() if value is not None},
    }
    if tenant:
        item["tenant"] = tenant
        item["gsi1pk"] = f"TENANT#{tenant}"
        item["gsi1sk"] = f"PROMOTION#{decided_at}#{decision}"
    return item


def put_once(dynamodb: Any, table: str, item: Mapping[str, Any]) -> bool:
    """Write a ledger item unless its key exists; True when written (False: a duplicate, or a retried write)."""
    serializer = TypeSerializer()
    try:
        dynamodb.put_item(
            TableName=table,
            Item={key: serializer.serialize(_dynamodb_value(value)) for key, value in item.items()},
            ConditionExpression="attribute_not_exists(sk)",
        )
    except ClientError as error:
        if error_code(error) != "ConditionalCheckFailedException":
            raise
        return False
    return True


def _dynamodb_value(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {key: _dynamodb_value(inner) for key, inner in value.items() if inner is not None}
    if isinstance(value, list | tuple):
        return [_dynamodb_value(inner) for inner in value]
    return value
