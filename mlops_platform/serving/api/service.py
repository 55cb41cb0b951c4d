"""The scoring API's three operations, each answered as a status, a JSON body and the metric it counts under.

Every path names the endpoint (``/endpoints/<endpoint>/...``), so IAM scopes a caller to its tenant's
endpoints before this code runs; this code still refuses what IAM would have (a record of another
endpoint or another principal) so that a too-broad policy does not leak one tenant's results to another.

* ``score``: ``POST /endpoints/<endpoint>/score`` scores at once. 200 ``{"endpoint", "variant", "predictions"}``;
  400 for a request the checks or the model refuse (the model's own reason), 404 for an unknown endpoint key, 429 when
  throttled, 503 when the endpoint is missing or not InService, 504 when it does not answer in time, 502 for
  anything else.
* ``submit``: ``POST /endpoints/<endpoint>/score/async`` records the request as ``pending`` under a new tracking
  id and the caller's principal, then queues it for the worker. 202 ``{"id", "status": "pending",
  "location": "/endpoints/<endpoint>/results/<id>"}``. The record is written before
  the message is sent, so the worker always finds it; if sending fails the record is marked failed with the
  reason and the caller gets 503: nothing is lost silently. 413 for a request larger than a queue message
  can carry, refused before anything is recorded; 503 when the record cannot be written (nothing is queued).
* ``result``: ``GET /endpoints/<endpoint>/results/<id>``: the record, with ``predictions`` once succeeded or
  ``reason`` once failed; 404 for an id that is unknown, malformed (answered without reading the table), past
  its TTL (DynamoDB deletes expired items only eventually), of another endpoint, or submitted by another
  principal: the same answer as an unknown id, so a caller cannot even learn that another's id exists.

Every error body is ``{"message": <one line>}``, the shape API Gateway's own errors have, and never carries
SageMaker's internals (account ids, ARNs, log links): those go to the logs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from mlops_platform import strict_json
from mlops_platform.aws import Log, utc_now
from mlops_platform.serving.api.endpoint import (
    BROKEN,
    REFUSED,
    THROTTLED,
    TIMED_OUT,
    UNAVAILABLE,
    UNREADABLE,
    ScoringFailure,
    invoke_endpoint,
)
from mlops_platform.serving.api.request import (
    InvalidRequest,
    ScoringRequest,
    UnknownEndpoint,
    is_tracking_id,
    new_tracking_id,
    one_line,
    parse_request,
)
from mlops_platform.serving.api.results import FAILED, Results, public_view

# What each scoring failure answers, and the metric it counts under.
FAILURE_STATUS = {
    REFUSED: (400, "ScoreRefused"),
    THROTTLED: (429, "ScoreThrottled"),
    UNAVAILABLE: (503, "ScoreUnavailable"),
    TIMED_OUT: (504, "ScoreTimedOut"),
    BROKEN: (502, "ScoreFailed"),
    UNREADABLE: (502, "ScoreFailed"),
}
NOT_FOUND = "no scoring request of yours has this id on this endpoint (ids expire after their retention period)"
NO_CALLER = "the request carries no IAM caller; sign it with SigV4"
# SQS's largest message is the queue's MaximumMessageSize (256 KiB unless raised): a larger request is
# refused before anything is recorded, rather than recorded and then failed. 2 KiB below it, so that
# the worker's dead-letter copy (the same body plus its reason attributes) fits too.
DEFAULT_MAX_MESSAGE_BYTES = 262_144 - 2_048


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    metric: str
    headers: dict[str, str] | None = None


def refusal(status: int, reason: str, metric: str) -> Answer:
    return Answer(status, {"message": one_line(reason)}, metric)


@dataclass
class ScoringApi:
    """The operations over one environment's endpoints, results table and requests queue."""

    runtime: Any
    sqs: Any
    results: Results
    _: KW_ONLY
    endpoints: Mapping[str, str]
    variants: Mapping[str, Sequence[str]] = field(default_factory=dict)
    requests_queue_url: str
    max_instances: int = 1000
    result_ttl_days: int = 7
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    clock: Callable[[], datetime] = utc_now
    logger: Log = field(default_factory=lambda: logging.getLogger(__name__))

    def read(self, endpoint: str, body: str | None) -> ScoringRequest | Answer:
        """The request body for the endpoint the path names as a ScoringRequest, or the 400/404 answer that
        refuses it."""
        if endpoint not in self.endpoints:
            return refusal(404, f"unknown endpoint {one_line(repr(endpoint), 40)}", "ScoreUnknownEndpoint")
        try:
            payload = strict_json.decode(body)
        except (ValueError, UnicodeDecodeError) as error:
            return refusal(400, f"the body is not valid JSON: {error}", "ScoreInvalid")
        try:
            return parse_request(payload, endpoint, self.endpoints, self.max_instances, self.variants)
        except UnknownEndpoint as error:
            return refusal(404, error.reason, "ScoreUnknownEndpoint")
        except InvalidRequest as error:
            return refusal(400, error.reason, "ScoreInvalid")

    def score(self, request: ScoringRequest, *, inference_id: str | None) -> Answer:
        try:
            scored = invoke_endpoint(
                self.runtime,
                endpoint_name=self.endpoints[request.endpoint],
                request=request,
                inference_id=inference_id,
            )
        except ScoringFailure as failure:
            status, metric = FAILURE_STATUS[failure.kind]
            self.logger.warning(
                "scoring failed",
                extra={
                    "endpoint": request.endpoint,
                    "kind": failure.kind,
                    "reason": failure.reason,
                    "detail": failure.detail,
                },
            )
            return refusal(status, failure.reason, metric)
        self.logger.info(
            "scored",
            extra={"endpoint": request.endpoint, "variant": scored.variant, "instances": len(request.instances)},
        )
        body = {"endpoint": request.endpoint, "variant": scored.variant, "predictions": scored.predictions}
        return Answer(200, body, "ScoreSucceeded")

    def submit(self, request: ScoringRequest, *, principal: str | None) -> Answer:
        if principal is None:
            return refusal(403, NO_CALLER, "AsyncNoCaller")
        tracking_id = new_tracking_id()
        message = request.message(tracking_id)
        size = len(message.encode("utf-8"))
        if size > self.max_message_bytes:
            return refusal(
                413,
                f"the request is {size} bytes as a queue message; asynchronous scoring takes at most "
                f"{self.max_message_bytes}: send fewer instances per request",
                "AsyncTooLarge",
            )
        try:
            self.results.create(tracking_id, request.endpoint, self.result_ttl_days, principal=principal)
        except (ClientError, BotoCoreError):
            self.logger.exception("could not record the request", extra={"id": tracking_id})
            return refusal(503, "the request could not be recorded; nothing was queued, try again", "AsyncStoreFailed")
        try:
            self.sqs.send_message(QueueUrl=self.requests_queue_url, MessageBody=message)
        except (ClientError, BotoCoreError) as error:
            self.logger.exception("could not queue the request", extra={"id": tracking_id})
            reason = f"the request could not be queued ({type(error).__name__}); submit it again"
            try:
                self.results.finish(tracking_id, FAILED, reason=reason)
            except (ClientError, BotoCoreError):
                # The record stays pending until its TTL; the caller was told below and holds no id.
                self.logger.exception("could not mark the unqueued request failed", extra={"id": tracking_id})
            return refusal(503, reason, "AsyncQueueFailed")
        self.logger.info(
            "queued", extra={"id": tracking_id, "endpoint": request.endpoint, "instances": len(request.instances)}
        )
        location = f"/endpoints/{request.endpoint}/results/{tracking_id}"
        body = {"id": tracking_id, "status": "pending", "location": location}
        return Answer(202, body, "AsyncAccepted", headers={"Location": location})

    def result(self, endpoint: str, tracking_id: str, *, principal: str | None) -> Answer:
        if principal is None:
            return refusal(403, NO_CALLER, "ResultNoCaller")
        if endpoint not in self.endpoints or not is_tracking_id(tracking_id):
            return refusal(404, NOT_FOUND, "ResultNotFound")
        item = self.results.get(tracking_id)
        if item is None or int(item.get("expires_at", 0)) <= int(self.clock().timestamp()):
            return refusal(404, NOT_FOUND, "ResultNotFound")
        if item.get("endpoint") != endpoint or item.get("principal") != principal:
            # Another tenant's endpoint or another caller's request: answered as if it did not exist.
            self.logger.warning(
                "result refused to another caller", extra={"id": tracking_id, "endpoint": endpoint, "caller": principal}
            )
            return refusal(404, NOT_FOUND, "ResultNotFound")
        return Answer(200, public_view(item), "ResultFound", headers={"Cache-Control": "no-store"})
