"""The call to a SageMaker endpoint, and what its errors mean for the caller.

The inference container's contract (mlops_platform/serving/codec.py): a JSON body ``{"instances": [row, ...]}``
(a row is an array of values in feature order or an object of feature name to value; a value a number,
a string, a boolean or null), the custom attribute ``explain=true`` when contributions are wanted, and the
answer ``{"predictions": [...]}``, one per instance, all of one shape:

* binary and regression: ``{"score": s}``, with ``"contributions": {feature: c, ..., "bias": b}`` when asked;
* multiclass: ``{"label": l, "probabilities": {class: p, ...}}``, with ``"contributions": {class: {feature:
  c, ..., "bias": b}, ...}`` when asked.

The API passes the predictions on as they are; this module checks their shape, so an answer outside
the contract is a 502 rather than a 200 the caller cannot read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import (  # type: ignore[import-untyped]
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    ReadTimeoutError,
)

from mlops_platform import strict_json
from mlops_platform.serving.api.request import ScoringRequest, compact, is_finite_number, one_line

JSON = "application/json"
EXPLAIN_ATTRIBUTE = "explain=true"

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
# The two shapes of a prediction, and the keys each may have (``id``: echoed when a record carried one).
SCORE = "score"
CLASSES = "classes"
PREDICTION_KEYS = {
    SCORE: frozenset({"score", "contributions", "id"}),
    CLASSES: frozenset({"label", "probabilities", "contributions", "id"}),
}


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
class Scored:
    variant: str
    predictions: list[dict[str, Any]]


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
        answer = strict_json.decode(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise _unreadable(f"not JSON: {error}") from None
    predictions = answer.get("predictions") if isinstance(answer, dict) else None
    if not isinstance(predictions, list):
        raise _unreadable("no 'predictions' array")
    if len(predictions) != expected:
        raise _unreadable(f"{len(predictions)} predictions for {expected} instances")
    shapes = {_shape(item) for item in predictions}
    if None in shapes:
        raise _unreadable("a prediction that is neither {'score'} nor {'label', 'probabilities'}")
    if len(shapes) > 1:
        raise _unreadable("predictions of both shapes, {'score'} and {'label', 'probabilities'}, in one answer")
    return predictions


def _shape(item: Any) -> str | None:
    """SCORE for a binary or regression prediction, CLASSES for a multiclass one, None for anything else."""
    if not isinstance(item, dict):
        return None
    shape = SCORE if "score" in item else CLASSES
    if not set(item) <= PREDICTION_KEYS[shape]:
        return None
    contributions = item.get("contributions")
    if shape == SCORE:
        if not is_finite_number(item["score"]):
            return None
        return shape if contributions is None or _numbers_by_name(contributions) else None
    probabilities = item.get("probabilities")
    if not isinstance(probabilities, dict) or not _numbers_by_name(probabilities):
        return None
    if not isinstance(item.get("label"), str):
        return None
    if item["label"] not in probabilities or not all(0 <= p <= 1 for p in probabilities.values()):
        return None
    if contributions is not None and not (
        isinstance(contributions, dict)
        and set(contributions) == set(probabilities)
        and all(_numbers_by_name(shares) for shares in contributions.values())
    ):
        return None
    return shape


def _numbers_by_name(value: Any) -> bool:
    """A non-empty object of name to finite number."""
    return isinstance(value, dict) and bool(value) and all(is_finite_number(number) for number in value.values())


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
