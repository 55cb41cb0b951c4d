"""Ingest: how SQS messages land in the raw zone as JSON Lines, and what cannot land is quarantined.

A message body is a JSON object ``{"dataset": ..., "record": {...}}`` or, for a batch,
``{"dataset": ..., "records": [{...}, ...]}``, sent to the queue of one tenant. The tenant is the
queue's, never the message's: IAM on the queue ARN is the boundary between producers, so a producer
can write only the tenants whose queues it may send to. A message may still name its ``tenant``; if that
is not the queue's tenant it is quarantined whole (``spoofed-tenant``), under the queue's tenant.

Limits, each quarantined with its own reason rather than retried: at most ``max_records`` records per
message (``too-many-records``, the whole message: landing part of it would be a silent loss), and at
most ``MAX_DEPTH`` levels of nesting in a record (``too-deep``). Without the depth limit a record that
Python's JSON parser accepts could fail to encode once wrapped in its raw line (``RecursionError``
near the interpreter's recursion limit, 1,000 frames), and the message would be retried into the
dead-letter queue instead of quarantined.

Every record is accounted for:

* valid records land in ``raw/<tenant>/<dataset>/dt=<day>/<message id>.jsonl``;
* bad records (and whole messages that cannot be routed) land in
  ``quarantine/<tenant>/<dataset>/dt=<day>/<message id>.jsonl``: the message's exact body, then
  one line per rejection with its reason;
* a message whose writes fail raises, so that the handler reports it back to SQS alone (partial batch
  response) and it is retried.

Object keys and contents derive only from the message (its id and SQS's ``SentTimestamp``), and
objects are written only if absent, so a redelivered or retried message finds its own objects and
duplicates nothing. lambda/ingest/handler.py adapts this module to SQS batches.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import Counter
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlops_platform import strict_json
from mlops_platform.aws import Log, iso, put_object_once
from mlops_platform.naming import NAME_PATTERN, UNROUTED

SAFE_ID_PATTERN = re.compile(r"[A-Za-z0-9-]{1,128}")
MESSAGE_KEYS = frozenset({"tenant", "dataset", "record", "records"})
# Records in one message: a documented limit (README, "Sending data"), and config's default for
# ingestion.max_records_per_message. SQS messages hold at most 1 MiB, so without a cap a message of
# empty objects would be hundreds of thousands of records, each a line and a rejection to account for.
MAX_RECORDS_PER_MESSAGE = 1000
# Nesting levels of one record (the record object itself is level 1): far above any tabular record,
# far below the ~1,000 frames at which json.loads and json.dumps raise RecursionError.
MAX_DEPTH = 32


@dataclass(frozen=True)
class Rejection:
    """Why something did not land; ``index`` is the record's position, ``None`` for the whole message."""

    reason: str
    detail: str
    index: int | None
    payload: Any


@dataclass(frozen=True)
class ParsedMessage:
    tenant: str | None = None
    dataset: str | None = None
    records: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)

    @property
    def routed(self) -> bool:
        return self.tenant is not None and self.dataset is not None


class _ObjectWithDuplicateKeys(dict):
    """A JSON object that repeated a key. Python keeps the last value, which would silently change data."""

    duplicates: tuple[str, ...] = ()


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    flagged = _ObjectWithDuplicateKeys(obj)
    counts = Counter(key for key, _ in pairs)
    flagged.duplicates = tuple(sorted(key for key, count in counts.items() if count > 1))
    return flagged


def _duplicate_keys(value: Any) -> tuple[str, ...]:
    """The repeated keys anywhere inside a parsed value."""
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _ObjectWithDuplicateKeys):
            found.extend(item.duplicates)
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return tuple(sorted(set(found)))


def encoded(record: Any) -> bytes:
    """The record as it is stored: strict, compact JSON, ASCII-only.

    ``allow_nan=False``: a NaN or an out-of-range number such as ``1e400`` (parsed as infinity)
    has no JSON form, and readers such as Athena reject the ``NaN``/``Infinity`` Python would write.
    Escaping non-ASCII keeps characters such as U+2028 or U+0085 out of the bytes: readers that
    split lines on them (Python's ``str.splitlines``) would otherwise cut a record in two.
    """
    return strict_json.encode(record).encode("ascii")


def depth(value: Any) -> int:
    """How many arrays and objects nest at the deepest point of ``value`` (a scalar is 0); iterative,
    so no depth of input can exhaust the stack."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def parse_message(
    body: str, max_record_bytes: int, *, tenant: str | None, max_records: int = MAX_RECORDS_PER_MESSAGE
) -> ParsedMessage:
    """Split a message body into records that may land and rejections with reasons; never raises.

    ``tenant`` is the tenant of the queue the message came from (None: a queue no tenant owns, whose
    messages are all quarantined). Whole-message rejections keep it, so they are quarantined under it.
    """
    if tenant is None:
        return ParsedMessage(
            rejections=[Rejection("unknown-queue", "the message came from a queue that no tenant owns", None, body)]
        )
    try:
        message = json.loads(body, object_pairs_hook=_json_object)
    except RecursionError:
        detail = f"the body nests deeper than Python's JSON parser goes; a record may nest at most {MAX_DEPTH} levels"
        return ParsedMessage(tenant=tenant, rejections=[Rejection("too-deep", detail, None, body)])
    except ValueError as error:
        return ParsedMessage(tenant=tenant, rejections=[Rejection("malformed-json", str(error)[:200], None, body)])
    if not isinstance(message, dict):
        return ParsedMessage(
            tenant=tenant,
            rejections=[Rejection("not-an-object", f"the body is a JSON {type(message).__name__}", None, message)],
        )
    problems = []
    claimed = message.get("tenant", tenant)
    if claimed != tenant:
        problems.append(
            (
                "spoofed-tenant",
                f"the message names the tenant {str(claimed)[:80]!r} but came from the queue of tenant {tenant!r}; "
                "a producer sends each tenant's data to that tenant's own queue",
            )
        )
    if isinstance(message, _ObjectWithDuplicateKeys):
        problems.append(("duplicate-key", f"the message repeats the keys {list(message.duplicates)}"))
    unknown = sorted(set(message) - MESSAGE_KEYS)
    if unknown:
        problems.append(("unknown-field", f"unexpected keys {unknown}; allowed: {sorted(MESSAGE_KEYS)}"))
    dataset = message.get("dataset")
    if not isinstance(dataset, str) or not NAME_PATTERN.fullmatch(dataset):
        problems.append(("invalid-dataset", f"dataset {dataset!r} must be 1-63 lowercase letters, digits or hyphens"))
    if ("record" in message) == ("records" in message):
        problems.append(("missing-records", "give exactly one of 'record' (an object) or 'records' (a list)"))
    elif "records" in message and not isinstance(message["records"], list):
        problems.append(("invalid-records", "'records' must be a list of objects"))
    elif "records" in message and len(message["records"]) > max_records:
        problems.append(
            (
                "too-many-records",
                f"{len(message['records'])} records; a message carries at most {max_records}: split it",
            )
        )
    if problems:
        reason, detail = problems[0]
        return ParsedMessage(tenant=tenant, rejections=[Rejection(reason, detail, None, message)])

    raw_records = [message["record"]] if "record" in message else message["records"]
    parsed = ParsedMessage(tenant=tenant, dataset=dataset)
    for index, record in enumerate(raw_records):
        problem = _record_problem(record, max_record_bytes)
        if problem:
            parsed.rejections.append(Rejection(*problem, index, record))
        else:
            parsed.records.append((index, record))
    return parsed


def _record_problem(record: Any, max_record_bytes: int) -> tuple[str, str] | None:
    """(reason, detail) when a record cannot land as it is; None when it can."""
    if not isinstance(record, dict):
        return "not-an-object", f"a record must be a JSON object, not {type(record).__name__}"
    levels = depth(record)
    if levels > MAX_DEPTH:
        return "too-deep", f"the record nests {levels} levels; at most {MAX_DEPTH} are allowed"
    duplicates = _duplicate_keys(record)
    if duplicates:
        return "duplicate-key", f"the record repeats the keys {list(duplicates)}"
    try:
        size = len(encoded(record))
    except ValueError:
        return "non-finite-number", "a number is NaN or out of range (such as 1e400), which JSON cannot represent"
    if size > max_record_bytes:
        return "oversized", f"{size} bytes encoded; the limit is {max_record_bytes}"
    return None


def object_id(message_id: str) -> str:
    """SQS message ids are UUIDs; anything else is hashed so it cannot escape its key prefix."""
    if SAFE_ID_PATTERN.fullmatch(message_id):
        return message_id
    return hashlib.sha256(message_id.encode("utf-8")).hexdigest()


def sent_at(sent_timestamp: str | int) -> datetime:
    """When SQS accepted the message (its ``SentTimestamp``, epoch milliseconds): the same on every
    redelivery, unlike the time of processing."""
    return datetime.fromtimestamp(int(sent_timestamp) / 1000, tz=UTC)


def raw_lines(parsed: ParsedMessage, message_id: str, received_at: str) -> bytes:
    return b"".join(
        encoded(
            {
                "record_id": f"{message_id}-{index}",
                "message_id": message_id,
                "received_at": received_at,
                "record": record,
            }
        )
        + b"\n"
        for index, record in parsed.records
    )


def faithful(payload: Any) -> Any:
    """The payload, if strict JSON renders it exactly; else None (the message body holds it)."""
    if depth(payload) > MAX_DEPTH or _duplicate_keys(payload):
        return None
    try:
        encoded(payload)
    except ValueError:
        return None
    return payload


def quarantine_lines(parsed: ParsedMessage, message_id: str, received_at: str, body: str) -> bytes:
    """The message's exact body once, then one line per rejection; all strict JSON.

    The body is what a fix-and-resend needs: nothing a parser would change (a repeated key, a
    number such as 1e400) is lost. Each rejection line says which record failed and why, with the
    record itself where strict JSON can render it exactly.
    """
    lines: list[dict[str, Any]] = [{"message_id": message_id, "received_at": received_at, "body": body}]
    lines.extend(
        {
            "message_id": message_id,
            "index": rejection.index,
            "reason": rejection.reason,
            "detail": rejection.detail,
            "payload": None if rejection.index is None else faithful(rejection.payload),
        }
        for rejection in parsed.rejections
    )
    return b"".join(encoded(line) + b"\n" for line in lines)


@dataclass
class Ingestor:
    """Writes one SQS message's records; raising marks only that message as failed."""

    s3: Any
    _: KW_ONLY
    bucket: str
    raw_prefix: str
    quarantine_prefix: str
    max_record_bytes: int
    max_records: int = MAX_RECORDS_PER_MESSAGE
    logger: Log = field(default_factory=lambda: logging.getLogger(__name__))

    def __call__(self, *, message_id: str, body: str, sent: datetime, tenant: str | None) -> dict[str, int]:
        """Land the message ``message_id`` sent at ``sent`` to the queue of ``tenant``; the counts of records
        landed and quarantined."""
        parsed = parse_message(body, self.max_record_bytes, tenant=tenant, max_records=self.max_records)
        received_at = iso(sent)
        tenant = parsed.tenant or UNROUTED
        dataset = parsed.dataset or UNROUTED
        partition = f"{tenant}/{dataset}/dt={sent:%Y-%m-%d}/{object_id(message_id)}.jsonl"
        if parsed.records:
            self._put(self.raw_prefix + partition, raw_lines(parsed, message_id, received_at))
        if parsed.rejections:
            self._put(self.quarantine_prefix + partition, quarantine_lines(parsed, message_id, received_at, body))
            self.logger.warning(
                "quarantined",
                extra={
                    "message_id": message_id,
                    "tenant": tenant,
                    "reasons": sorted({rejection.reason for rejection in parsed.rejections}),
                    "count": len(parsed.rejections),
                },
            )
        return {"landed": len(parsed.records), "quarantined": len(parsed.rejections)}

    def _put(self, key: str, body: bytes) -> None:
        """Write once. A retry finds its object already there (same key, same bytes) and leaves it be,
        so redeliveries create no new version and no second "Object Created" event."""
        if not put_object_once(self.s3, bucket=self.bucket, key=key, body=body, content_type="application/x-ndjson"):
            self.logger.info("already landed", extra={"key": key})
