"""What the handlers do the same way with AWS: error codes, conditional writes, DynamoDB values, write-once
objects, queue message attributes, execution ARNs, and the timestamp of every record they write.

Only boto3 (and botocore) is imported: Lambda's Python runtime provides both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

# boto3 and botocore ship no type hints (pyproject.toml lists no override for their modules).
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer  # type: ignore[import-untyped]
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class Log(Protocol):
    """What the runtime logs with: the handler's Powertools Logger in Lambda (structured, with the invocation's
    keys), so the package never builds its own; a ``logging.Logger`` anywhere else."""

    def info(self, *args: Any, **kwargs: Any) -> Any: ...

    def warning(self, *args: Any, **kwargs: Any) -> Any: ...

    def error(self, *args: Any, **kwargs: Any) -> Any: ...

    def exception(self, *args: Any, **kwargs: Any) -> Any: ...


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def condition_failed(error: ClientError) -> bool:
    """A DynamoDB write whose condition did not hold: an answer to act on, not a failure."""
    return error_code(error) == "ConditionalCheckFailedException"


def to_item(values: Mapping[str, Any]) -> dict[str, Any]:
    """Plain values (str, int, Decimal, bool, None, sets, lists, maps) as DynamoDB attribute values."""
    return {name: _serializer.serialize(value) for name, value in values.items()}


def dynamodb_value(value: Any) -> Any:
    """Python values as DynamoDB takes them: floats as Decimal (``to_item`` refuses floats), no None inside maps."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {str(key): dynamodb_value(item) for key, item in value.items() if item is not None}
    if isinstance(value, list | tuple):
        return [dynamodb_value(item) for item in value]
    return value


def from_item(item: Mapping[str, Any] | None) -> dict[str, Any]:
    """DynamoDB attribute values as plain values (numbers as Decimal); ``{}`` for no item."""
    return {name: _deserializer.deserialize(value) for name, value in (item or {}).items()}


def put_object_once(s3: Any, *, bucket: str, key: str, body: bytes, content_type: str, **extra: Any) -> bool:
    """Write an object only where its key is free; False when an object is there already.

    A retry that derives the same key finds its own object and leaves it be: no new version, no second
    "Object Created" event (conditional writes: https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html).
    """
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type, IfNoneMatch="*", **extra)
    except ClientError as error:
        if error_code(error) != "PreconditionFailed":
            raise
        return False
    return True


def kms_encrypted(key_arn: str) -> dict[str, str]:
    """``PutObject``'s parameters that encrypt the object with the customer-managed key ``key_arn``."""
    return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key_arn}


def string_attributes(**values: str) -> dict[str, dict[str, str]]:
    """SQS message attributes of type String, one per keyword."""
    return {name: {"DataType": "String", "StringValue": value} for name, value in values.items()}


def execution_arn(state_machine_arn: str, name: str) -> str:
    """The ARN of the execution ``name`` of a standard state machine (``...:execution:<machine>:<name>``)."""
    return state_machine_arn.replace(":stateMachine:", ":execution:", 1) + f":{name}"


def iso(moment: datetime) -> str:
    """``2026-11-24T23:59:30.123Z``: UTC, milliseconds; strings of it sort in time order."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch(moment: datetime) -> int:
    """Whole seconds since the epoch, as DynamoDB's TTL and the conditions on times compare them."""
    return math.floor(moment.timestamp())


def utc_now() -> datetime:
    return datetime.now(UTC)
