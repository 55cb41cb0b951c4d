"""A scoring request as the API and its queue carry it, checked.

The API takes the endpoint key from the path (``/endpoints/<endpoint>/score``, so IAM can scope a caller to
a tenant's endpoints) and ``{"instances", "explain", "variant"}`` from the body; its queue carries all four
as ``{"id", "endpoint", "instances", "explain", "variant"}``.

A request may name a ``variant`` of its endpoint: it is scored by that variant only (InvokeEndpoint's
``TargetVariant``, which overrides the weights), so each arm of an A/B test can be checked on its
own; the smoke test scores every variant this way.

A row of ``instances`` is what the inference server reads (mlops_platform/serving/codec.py): an array of
values in the model's feature order, or an object keyed by feature name (an absent key is missing). A
value is a number, a string (a categorical feature's category), a boolean or null (missing). Whether a
value fits its feature is the model's to say: the container encodes null and a category training never
saw as missing, and answers 400 with its reason for a value of the wrong type, which the API passes on.
This module checks only what holds for every model: the shape, flat rows (no nested arrays or objects),
and numbers that are finite.

API Gateway validates the body against a JSON schema first; this repeats it because the worker reads the
same shape from a queue that anything with SendMessage can write to, and because a schema cannot say
"all rows have the same length", "all rows of one kind" or "finite".
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlops_platform import strict_json

REQUEST_KEYS = frozenset({"instances", "explain", "variant"})
# A row's value: a JSON number, string, boolean or null. Rows are flat: nothing nests inside a value.
Value = int | float | str | bool | None
Row = list[Value] | dict[str, Value]
# A tracking id is what str(uuid.uuid4()) gives; anything else is unknown without asking the table.
TRACKING_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
# Reasons are shown to callers and stored in the table: one line, bounded.
REASON_LIMIT = 500


class InvalidRequest(Exception):
    """A request that cannot be scored as sent; ``reason`` is one line for the caller."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class UnknownEndpoint(InvalidRequest):
    """The request names an endpoint key that this environment does not serve."""


@dataclass(frozen=True)
class ScoringRequest:
    endpoint: str
    instances: list[Row]
    explain: bool = False
    variant: str | None = None  # score on this variant only (TargetVariant); None: the weights choose

    def message(self, tracking_id: str) -> str:
        """The queue message of an asynchronous request."""
        body: dict[str, Any] = {
            "id": tracking_id,
            "endpoint": self.endpoint,
            "instances": self.instances,
            "explain": self.explain,
        }
        if self.variant is not None:
            body["variant"] = self.variant
        return compact(body)


def one_line(text: str, limit: int = REASON_LIMIT) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def compact(value: Any) -> str:
    """Strict, compact JSON: a NaN or an infinity has no JSON form and fails here instead of downstream."""
    return strict_json.encode(value)


def load_endpoints(text: str | None) -> dict[str, str]:
    """``ENDPOINTS``: endpoint key → SageMaker endpoint name. Read at import, so a bad value fails the
    first invocation loudly rather than every request quietly."""
    endpoints = json.loads(text or "{}")
    if not isinstance(endpoints, dict) or not all(
        isinstance(key, str) and key and isinstance(name, str) and name for key, name in endpoints.items()
    ):
        raise ValueError(f"ENDPOINTS must be a JSON object of endpoint key to endpoint name, not {text!r}")
    return endpoints


def load_variants(text: str | None) -> dict[str, tuple[str, ...]]:
    """``VARIANTS``: endpoint key → its variant names, the ones a request may target."""
    variants = json.loads(text or "{}")
    if not isinstance(variants, dict) or not all(
        isinstance(key, str) and isinstance(names, list) and all(isinstance(n, str) and n for n in names)
        for key, names in variants.items()
    ):
        raise ValueError(f"VARIANTS must be a JSON object of endpoint key to a list of variant names, not {text!r}")
    return {key: tuple(names) for key, names in variants.items()}


def _describe(value: Any) -> str:
    return one_line(repr(value), 40)


def is_finite_number(value: Any) -> bool:
    # bool is an int in Python, not a number in JSON; a huge int overflows float like 1e400 does.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def parse_request(
    payload: Any,
    endpoint: Any,
    endpoints: Mapping[str, str],
    max_instances: int,
    variants: Mapping[str, Sequence[str]] | None = None,
) -> ScoringRequest:
    """A decoded request body for ``endpoint`` (the key the path names) as a ScoringRequest; raises
    InvalidRequest (400) or UnknownEndpoint (404).

    ``variants`` (endpoint key → variant names) are the variants a request may name; without it,
    naming one is refused. An unknown endpoint answers without the known ones: a caller learns nothing
    of other tenants' endpoints.
    """
    if not isinstance(endpoint, str) or endpoint not in endpoints:
        raise UnknownEndpoint(f"unknown endpoint {_describe(endpoint)}")
    if not isinstance(payload, dict):
        raise InvalidRequest(f"the body must be a JSON object, not a JSON {type(payload).__name__}")
    unknown = sorted(set(payload) - REQUEST_KEYS)
    if unknown:
        raise InvalidRequest(f"unexpected keys {unknown}; allowed: {sorted(REQUEST_KEYS)}")
    explain = payload.get("explain", False)
    if not isinstance(explain, bool):
        raise InvalidRequest(f"'explain' must be true or false, not {_describe(explain)}")
    variant = payload.get("variant")
    if variant is not None:
        known = list((variants or {}).get(endpoint, ()))
        if not isinstance(variant, str) or variant not in known:
            raise InvalidRequest(
                f"unknown variant {_describe(variant)} of endpoint {endpoint!r}; known: {known} (or leave it out)"
            )
    instances = payload.get("instances")
    if not isinstance(instances, list) or not instances:
        raise InvalidRequest("'instances' must be a non-empty array of rows")
    if len(instances) > max_instances:
        raise InvalidRequest(f"'instances' has {len(instances)} rows; at most {max_instances} are allowed")
    return ScoringRequest(endpoint=endpoint, instances=_checked_rows(instances), explain=explain, variant=variant)


def _checked_rows(instances: list[Any]) -> list[Row]:
    """Rows all arrays of one length, or all objects of feature names; each value flat (``_check_value``)."""
    kind = list if isinstance(instances[0], list) else dict
    width = None
    for row_number, row in enumerate(instances):
        where = f"instances[{row_number}]"
        if not isinstance(row, list | dict) or not row:
            raise InvalidRequest(f"{where} must be a non-empty array of values or object of feature name to value")
        if not isinstance(row, kind):
            raise InvalidRequest(f"{where} is an {_kind(row)} and instances[0] an {_kind(instances[0])}; send one kind")
        if isinstance(row, dict):
            for name, value in row.items():
                _check_value(value, f"{where}[{name!r}]")
            continue
        for column, value in enumerate(row):
            _check_value(value, f"{where}[{column}]")
        if width is None:
            width = len(row)
        elif len(row) != width:
            raise InvalidRequest(f"{where} has {len(row)} values; instances[0] has {width}")
    return instances


def _check_value(value: Any, where: str) -> None:
    """A number (finite), a string, a boolean or null: whether it fits its feature is the model's to say."""
    if value is None or isinstance(value, str | bool) or is_finite_number(value):
        return
    if isinstance(value, int | float):
        raise InvalidRequest(f"{where} must be a finite number, not {_describe(value)}")
    raise InvalidRequest(f"{where} must be a number, a string, true, false or null, not {_describe(value)}")


def _kind(row: Any) -> str:
    return "array" if isinstance(row, list) else "object"


def is_tracking_id(value: Any) -> bool:
    return isinstance(value, str) and TRACKING_ID.fullmatch(value) is not None


def new_tracking_id() -> str:
    return str(uuid.uuid4())
