"""What the scoring API (``handler.py``) and its asynchronous worker (``worker.py``) share.

Both functions are built from this one asset folder, so this module travels with each of them
without a layer: request validation, the call to the SageMaker endpoint and the classification of
its errors, and the results table. Named ``scoring_common`` rather than ``common`` so that it cannot
be shadowed by, or shadow, a module of that generic name on Lambda's ``sys.path``.

The inference container's contract: a JSON body ``{"instances": [[number, ...], ...]}``, the custom
attribute ``explain=true`` when contributions are wanted, and the answer
``{"predictions": [{"score": s} | {"score": s, "contributions": {...}}, ...]}``, one per instance.

A request may name a ``variant`` of its endpoint: it is scored by that variant only (InvokeEndpoint's
``TargetVariant``, which overrides the weights), so each arm of an A/B test can be checked on its
own; the smoke test scores every variant this way.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    ReadTimeoutError,
)

JSON = "application/json"
EXPLAIN_ATTRIBUTE = "explain=true"
REQUEST_KEYS = frozenset({"endpoint", "instances", "explain", "variant"})
# A tracking id is what str(uuid.uuid4()) gives; anything else is unknown without asking the table.
TRACKING_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
# Reasons are shown to callers and stored in the table: one line, bounded.
REASON_LIMIT = 500

PENDING = "pending"
SUCCEEDED = "succeeded"
FAILED = "failed"
TERMINAL = frozenset({SUCCEEDED, FAILED})

# Failure kinds. Each maps to an HTTP status in the API and to retry-or-not in the worker.
REFUSED = "refused"  # the container rejected the input (its 4xx): the same input fails again
UNAVAILABLE = "unavailable"  # the endpoint is missing, not InService, or SageMaker is unavailable
THROTTLED = "throttled"
TIMED_OUT = "timed-out"
BROKEN = "broken"  # the container's 5xx or any other SageMaker error
UNREADABLE = "unreadable"  # the container answered 200 outside its contract: a retry gets the same
RETRYABLE = frozenset({UNAVAILABLE, THROTTLED, TIMED_OUT, BROKEN})
THROTTLING_CODES = frozenset({"ThrottlingException", "ThrottledException", "TooManyRequestsException"})
UNAVAILABLE_CODES = frozenset({"ValidationError", "ServiceUnavailable", "ModelNotReadyException"})


class InvalidRequest(Exception):
    """A request that cannot be scored as sent; ``reason`` is one line for the caller."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class UnknownEndpoint(InvalidRequest):
    """The request names an endpoint key that this environment does not serve."""


class ScoringFailure(Exception):
    """The endpoint did not score a request. ``reason`` is safe to show the caller (no account ids,
    ARNs or log links); ``detail`` is for the logs."""

    def __init__(self, kind: str, reason: str, detail: str = ""):
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason
        self.detail = detail

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE


@dataclass(frozen=True)
class ScoringRequest:
    endpoint: str
    instances: list[list[int | float]]
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


@dataclass(frozen=True)
class Scored:
    variant: str
    predictions: list[dict[str, Any]]


# Parsing.


def one_line(text: str, limit: int = REASON_LIMIT) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def compact(value: Any) -> str:
    """Strict, compact JSON: a NaN or an infinity has no JSON form and fails here instead of downstream."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def strict_json(text: str | bytes | None) -> Any:
    """Parse JSON without Python's extensions (``NaN``, ``Infinity``); raises ValueError."""
    if text is None or not text.strip():
        raise ValueError("the body is empty")
    return json.loads(text, parse_constant=_no_constants)


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


def _is_finite_number(value: Any) -> bool:
    # bool is an int in Python, not a number in JSON; a huge int overflows float like 1e400 does.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def parse_request(
    payload: Any,
    endpoints: Mapping[str, str],
    max_instances: int,
    variants: Mapping[str, Sequence[str]] | None = None,
) -> ScoringRequest:
    """A decoded request body as a ScoringRequest; raises InvalidRequest (400) or UnknownEndpoint (404).

    ``variants`` (endpoint key → variant names) are the variants a request may name; without it,
    naming one is refused.

    API Gateway validates the body against a JSON schema first; this repeats it because the worker
    reads the same shape from a queue that anything with SendMessage can write to, and because a
    schema cannot say "all rows have the same length" or "finite".
    """
    if not isinstance(payload, dict):
        raise InvalidRequest(f"the body must be a JSON object, not a JSON {type(payload).__name__}")
    unknown = sorted(set(payload) - REQUEST_KEYS)
    if unknown:
        raise InvalidRequest(f"unexpected keys {unknown}; allowed: {sorted(REQUEST_KEYS)}")
    endpoint = payload.get("endpoint")
    if not isinstance(endpoint, str):
        raise InvalidRequest("'endpoint' must be a string naming an endpoint")
    if endpoint not in endpoints:
        raise UnknownEndpoint(f"unknown endpoint {_describe(endpoint)}; known: {sorted(endpoints)}")
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
    width = None
    for row_number, row in enumerate(instances):
        if not isinstance(row, list) or not row:
            raise InvalidRequest(f"instances[{row_number}] must be a non-empty array of numbers")
        for column, value in enumerate(row):
            if not _is_finite_number(value):
                raise InvalidRequest(
                    f"instances[{row_number}][{column}] must be a finite number, not {_describe(value)}"
                )
        if width is None:
            width = len(row)
        elif len(row) != width:
            raise InvalidRequest(f"instances[{row_number}] has {len(row)} values; instances[0] has {width}")
    return ScoringRequest(endpoint=endpoint, instances=instances, explain=explain, variant=variant)


def is_tracking_id(value: Any) -> bool:
    return isinstance(value, str) and TRACKING_ID.fullmatch(value) is not None


def new_tracking_id() -> str:
    return str(uuid.uuid4())


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# The endpoint.


def _container_reason(original: Any) -> str:
    """The container's own words: its JSON ``message``/``error``/``reason``, or its text."""
    if isinstance(original, bytes):
        original = original.decode("utf-8", "replace")
    text = str(original or "").strip()
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        for key in ("message", "error", "reason", "detail"):
            if isinstance(parsed.get(key), str) and parsed[key].strip():
                return one_line(parsed[key])
    return one_line(text) or "the model refused the input"


def classify(error: ClientError, endpoint_key: str) -> ScoringFailure:
    """What an InvokeEndpoint error means for the caller, without SageMaker's internals in ``reason``."""
    response = error.response
    code = response.get("Error", {}).get("Code", "")
    message = one_line(response.get("Error", {}).get("Message", ""), 1000)
    if code == "ModelError":
        status = response.get("OriginalStatusCode")
        detail = f"ModelError: container status {status}: {message}"
        if isinstance(status, int) and status in (408, 429):
            return ScoringFailure(THROTTLED, "the endpoint is busy; retry with back-off", detail)
        if isinstance(status, int) and 400 <= status < 500:
            return ScoringFailure(REFUSED, _container_reason(response.get("OriginalMessage")), detail)
        return ScoringFailure(BROKEN, f"the endpoint {endpoint_key!r} failed to score the request", detail)
    if code in THROTTLING_CODES:
        return ScoringFailure(THROTTLED, f"the endpoint {endpoint_key!r} is throttled; retry with back-off", message)
    if code in UNAVAILABLE_CODES:
        # ValidationError is what InvokeEndpoint answers for an endpoint that does not exist or is not
        # InService: the request was valid (it passed our checks), the endpoint is not there to take it.
        return ScoringFailure(
            UNAVAILABLE, f"the endpoint {endpoint_key!r} is not available; try again later", f"{code}: {message}"
        )
    return ScoringFailure(BROKEN, f"the endpoint {endpoint_key!r} failed to score the request", f"{code}: {message}")


def _unreadable(problem: str) -> ScoringFailure:
    return ScoringFailure(UNREADABLE, "the endpoint answered with an unreadable response", one_line(problem))


def read_predictions(body: bytes, expected: int) -> list[dict[str, Any]]:
    """The container's predictions, one per instance; raises ScoringFailure(UNREADABLE) otherwise."""
    try:
        answer = strict_json(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise _unreadable(f"not JSON: {error}") from None
    predictions = answer.get("predictions") if isinstance(answer, dict) else None
    if not isinstance(predictions, list):
        raise _unreadable("no 'predictions' array")
    if len(predictions) != expected:
        raise _unreadable(f"{len(predictions)} predictions for {expected} instances")
    if not all(isinstance(item, dict) and _is_finite_number(item.get("score")) for item in predictions):
        raise _unreadable("a prediction without a finite 'score'")
    return predictions


def invoke_endpoint(
    runtime: Any, *, endpoint_name: str, request: ScoringRequest, inference_id: str | None = None
) -> Scored:
    """Score a request on its endpoint; raises ScoringFailure with the kind that decides what happens next.

    ``inference_id`` (the tracking id, or API Gateway's request id) lands beside the request in the
    endpoint's data capture, so a captured record can be traced back to its caller.
    """
    parameters: dict[str, Any] = {
        "EndpointName": endpoint_name,
        "ContentType": JSON,
        "Accept": JSON,
        "Body": compact({"instances": request.instances}),
    }
    if request.explain:
        parameters["CustomAttributes"] = EXPLAIN_ATTRIBUTE
    if inference_id:
        parameters["InferenceId"] = inference_id
    if request.variant is not None:
        # https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_runtime_InvokeEndpoint.html: TargetVariant
        # "overrides the default behavior" of routing by weight.
        parameters["TargetVariant"] = request.variant
    try:
        response = runtime.invoke_endpoint(**parameters)
        body = response["Body"].read()
    except ClientError as error:
        raise classify(error, request.endpoint) from error
    except (ReadTimeoutError, ConnectTimeoutError) as error:
        raise ScoringFailure(
            TIMED_OUT, f"the endpoint {request.endpoint!r} did not answer in time", one_line(str(error))
        ) from error
    except BotoCoreError as error:
        raise ScoringFailure(
            BROKEN, f"the endpoint {request.endpoint!r} failed to score the request", one_line(str(error))
        ) from error
    predictions = read_predictions(body, len(request.instances))
    return Scored(variant=str(response.get("InvokedProductionVariant") or ""), predictions=predictions)


# The results table: partition key ``id``, TTL attribute ``expires_at``.


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
        self.clock = clock or (lambda: datetime.now(UTC))
        self._deserializer = TypeDeserializer()

    def create(self, tracking_id: str, endpoint: str, ttl_days: int) -> dict[str, Any]:
        """Record a pending request; the condition keeps an id from ever being reused."""
        moment = self.clock()
        item = {
            "id": tracking_id,
            "status": PENDING,
            "endpoint": endpoint,
            "submitted_at": iso(moment),
            "expires_at": int(moment.timestamp()) + ttl_days * 86400,
        }
        self.dynamodb.put_item(
            TableName=self.table_name,
            Item={
                "id": {"S": tracking_id},
                "status": {"S": PENDING},
                "endpoint": {"S": endpoint},
                "submitted_at": {"S": item["submitted_at"]},
                "expires_at": {"N": str(item["expires_at"])},
            },
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
        return {name: self._deserializer.deserialize(value) for name, value in item.items()}

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
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            return False
        return True


def public_view(item: Mapping[str, Any]) -> dict[str, Any]:
    """A record as ``GET /score/{id}`` shows it: the stored predictions decoded, internals left out."""
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
