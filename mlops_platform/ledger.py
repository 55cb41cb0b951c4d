"""The run ledger (one DynamoDB table, ``pk``/``sk``, the ``ByTenant`` index on ``gsi1pk``/``gsi1sk``): its
records are written once.

A record's key derives from what it records (its time, its decision, a digest of its evidence), so a retried
write of the same record finds it and changes nothing, and two different records never overwrite each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from mlops_platform.aws import condition_failed, to_item


def put_once(dynamodb: Any, table: str, record: Mapping[str, Any]) -> bool:
    """Write ``record`` (plain values) unless a record has its key; False when one had."""
    try:
        dynamodb.put_item(TableName=table, Item=to_item(record), ConditionExpression="attribute_not_exists(sk)")
    except ClientError as error:
        if not condition_failed(error):
            raise
        return False
    return True
