"""Promotion records of the run ledger (DynamoDB), each written once.

A record is ``PROMOTION#<endpoint>`` / ``<sort key>``; for a known tenant the ``ByTenant`` index holds it
too (``TENANT#<tenant>`` / ``PROMOTION#<decided_at>#<decision>``). Writers choose sort keys that name the
decision (``PACKAGE#<group>/<version>#<decision>``, ``EXECUTION#<execution>#<outcome>``), so a retried or
duplicate event finds its record and does nothing twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlops_platform import ledger
from mlops_platform.aws import dynamodb_value, iso, utc_now

__all__ = ["iso", "ledger_item", "put_once", "utc_now"]  # iso and utc_now: the promotion modules' clock


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
    return ledger.put_once(dynamodb, table, {key: dynamodb_value(value) for key, value in item.items()})
