"""The results table of asynchronous scoring requests: partition key ``id``, TTL attribute ``expires_at``.

Each record keeps the ``principal`` that submitted it (caller.py), and only that principal reads it back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, ClassVar

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from mlops_platform.aws import condition_failed, from_item, iso, to_item, utc_now
from mlops_platform.serving.api.request import one_line

PENDING = "pending"
SUCCEEDED = "succeeded"
FAILED = "failed"
TERMINAL = frozenset({SUCCEEDED, FAILED})


class Results:
    """Asynchronous requests and their outcomes. Predictions are stored as a JSON string in ``result``
    (DynamoDB would need every float as a Decimal, and the API returns them as JSON anyway)."""

    # Every attribute name goes through a placeholder: "status" and "result" are DynamoDB reserved words.
    _NAMES: ClassVar[dict[str, str]] = {
        "#id": "id",
        "#status": "status",
        "#finished_at": "finished_at",
        "#variant": "variant",
        "#result": "result",
        "#reason": "reason",
    }

    def __init__(self, dynamodb: Any, table_name: str, clock: Callable[[], datetime] | None = None):
        self.dynamodb = dynamodb
        self.table_name = table_name
        self.clock = clock or utc_now

    def create(self, tracking_id: str, endpoint: str, ttl_days: int, *, principal: str) -> dict[str, Any]:
        """Record a pending request of ``principal``; the condition keeps an id from ever being reused."""
        moment = self.clock()
        item = {
            "id": tracking_id,
            "status": PENDING,
            "endpoint": endpoint,
            "principal": principal,
            "submitted_at": iso(moment),
            "expires_at": int(moment.timestamp()) + ttl_days * 86400,
        }
        self.dynamodb.put_item(
            TableName=self.table_name,
            Item=to_item(item),
            ConditionExpression="attribute_not_exists(#id)",
            ExpressionAttributeNames={"#id": "id"},
        )
        return item

    def get(self, tracking_id: str) -> dict[str, Any] | None:
        """The record, strongly consistent (a GET right after the 202 sees it), or None."""
        response = self.dynamodb.get_item(
            TableName=self.table_name, Key={"id": {"S": tracking_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        if item is None:
            return None
        return from_item(item)

    def finish(
        self,
        tracking_id: str,
        status: str,
        *,
        variant: str | None = None,
        result: str | None = None,
        reason: str | None = None,
    ) -> bool:
        """Move a pending record to ``status``; False when it was not pending (finished before, or absent).

        The condition is what makes at-least-once delivery harmless: whoever finishes a request
        first wins, and a redelivery or a racing duplicate changes nothing.
        """
        fields: dict[str, str] = {"status": status, "finished_at": iso(self.clock())}
        if variant is not None:
            fields["variant"] = variant
        if result is not None:
            fields["result"] = result
        if reason is not None:
            fields["reason"] = one_line(reason)
        values = {f":{name}": {"S": value} for name, value in fields.items()}
        values[":pending"] = {"S": PENDING}
        names = {f"#{name}": self._NAMES[f"#{name}"] for name in fields}
        names["#id"] = "id"
        try:
            self.dynamodb.update_item(
                TableName=self.table_name,
                Key={"id": {"S": tracking_id}},
                UpdateExpression="SET " + ", ".join(f"#{name} = :{name}" for name in fields),
                ConditionExpression="attribute_exists(#id) AND #status = :pending",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if not condition_failed(error):
                raise
            return False
        return True


def public_view(item: Mapping[str, Any]) -> dict[str, Any]:
    """A record as ``GET /endpoints/{endpoint}/results/{id}`` shows it: the stored predictions decoded, internals
    (the principal among them) left out."""
    view: dict[str, Any] = {
        "id": item["id"],
        "status": item["status"],
        "endpoint": item.get("endpoint"),
        "submitted_at": item.get("submitted_at"),
    }
    for name in ("finished_at", "variant"):
        if item.get(name) is not None:
            view[name] = item[name]
    if item["status"] == SUCCEEDED and isinstance(item.get("result"), str):
        view["predictions"] = json.loads(item["result"])
    if item["status"] == FAILED:
        view["reason"] = item.get("reason") or "the request failed"
    return view
