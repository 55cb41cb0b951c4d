"""Scoring API: real-time and asynchronous scoring on the environment's SageMaker endpoints.

API Gateway (REST, IAM-authenticated, Lambda proxy integration) routes three resources here:

* ``POST /score``: ``{"endpoint": <key>, "instances": [[number, ...], ...], "explain": bool, "variant": name}``
  is scored at once, by the named variant only when ``variant`` is given (else the weights choose).
  200 ``{"endpoint", "variant", "predictions"}``; 400 for a request the checks or the model refuse
  (the model's own reason), 404 for an unknown endpoint key, 429 when throttled, 503 when the
  endpoint is missing or not InService, 504 when it does not answer in time, 502 for anything else.
* ``POST /score/async``: the same body is recorded as ``pending`` under a new tracking id, then
  queued for the worker (``worker.py``). 202 ``{"id", "status": "pending", "location": "/score/<id>"}``.
  The record is written before the message is sent, so the worker always finds it; if sending fails
  the record is marked failed with the reason and the caller gets 503: nothing is lost silently.
  413 for a request larger than a queue message can carry (``MAX_MESSAGE_BYTES``), refused before
  anything is recorded; 503 when the record cannot be written (nothing is queued then).
* ``GET /score/{id}``: the record, with ``predictions`` once succeeded or ``reason`` once failed;
  404 for an id that is unknown, malformed (answered without reading the table) or past its TTL
  (DynamoDB deletes expired items only eventually).

Every error body is ``{"message": <one line>}``, the shape API Gateway's own errors have, and never
carries SageMaker's internals (account ids, ARNs, log links): those go to the logs.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.metrics import MetricUnit
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from scoring_common import (
    BROKEN,
    FAILED,
    REFUSED,
    THROTTLED,
    TIMED_OUT,
    UNAVAILABLE,
    UNREADABLE,
    InvalidRequest,
    Results,
    ScoringFailure,
    ScoringRequest,
    UnknownEndpoint,
    invoke_endpoint,
    is_tracking_id,
    load_endpoints,
    load_variants,
    new_tracking_id,
    one_line,
    parse_request,
    public_view,
    strict_json,
)

# What each scoring failure answers, and the metric it counts under.
FAILURE_STATUS = {
    REFUSED: (400, "ScoreRefused"),
    THROTTLED: (429, "ScoreThrottled"),
    UNAVAILABLE: (503, "ScoreUnavailable"),
    TIMED_OUT: (504, "ScoreTimedOut"),
    BROKEN: (502, "ScoreFailed"),
    UNREADABLE: (502, "ScoreFailed"),
}
NOT_FOUND = "no scoring request has this id (ids expire after their retention period)"
# SQS's largest message is the queue's MaximumMessageSize (256 KiB unless raised): a larger request is
# refused before anything is recorded, rather than recorded and then failed. 2 KiB below it, so that
# the worker's dead-letter copy (the same body plus its reason attributes) fits too.
DEFAULT_MAX_MESSAGE_BYTES = 262_144 - 2_048
# API Gateway gives up on the integration after 29 seconds: two attempts (one retry for a throttled
# or dropped call) of at most 12 seconds each answer before it does. A model that needs longer per
# request is for POST /score/async, whose worker waits the container's full 60 seconds.
RUNTIME_CONFIG = Config(connect_timeout=2, read_timeout=10, retries={"mode": "standard", "max_attempts": 2})

logger = Logger()
# Traces never carry responses (capture_response=False): they hold the callers' predictions, and
# X-Ray drops a segment larger than 64 KB.
tracer = Tracer()
metrics = Metrics()
app = APIGatewayRestResolver()

ENDPOINTS = load_endpoints(os.environ["ENDPOINTS"])
VARIANTS = load_variants(os.environ.get("VARIANTS"))
MAX_INSTANCES = int(os.environ.get("MAX_INSTANCES", "1000"))
RESULT_TTL_DAYS = int(os.environ.get("RESULT_TTL_DAYS", "7"))
MAX_MESSAGE_BYTES = int(os.environ.get("MAX_MESSAGE_BYTES", str(DEFAULT_MAX_MESSAGE_BYTES)))
REQUESTS_QUEUE_URL = os.environ["REQUESTS_QUEUE_URL"]

runtime = boto3.client("sagemaker-runtime", config=RUNTIME_CONFIG)
sqs = boto3.client("sqs")
results = Results(boto3.client("dynamodb"), os.environ["RESULTS_TABLE"])


def answer(status: int, body: dict[str, Any], metric: str, headers: dict[str, str] | None = None) -> Response:
    metrics.add_metric(metric, MetricUnit.Count, 1)
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body, headers=headers)


def refuse(status: int, reason: str, metric: str) -> Response:
    return answer(status, {"message": one_line(reason)}, metric)


def read_request() -> ScoringRequest | Response:
    """The request body as a ScoringRequest, or the 400/404 answer that refuses it."""
    try:
        payload = strict_json(app.current_event.decoded_body)
    except (ValueError, UnicodeDecodeError) as error:
        return refuse(400, f"the body is not valid JSON: {error}", "ScoreInvalid")
    try:
        return parse_request(payload, ENDPOINTS, MAX_INSTANCES, VARIANTS)
    except UnknownEndpoint as error:
        return refuse(404, error.reason, "ScoreUnknownEndpoint")
    except InvalidRequest as error:
        return refuse(400, error.reason, "ScoreInvalid")


@app.post("/score")
@tracer.capture_method(capture_response=False)
def score() -> Response:
    request = read_request()
    if isinstance(request, Response):
        return request
    tracer.put_annotation("endpoint", request.endpoint)
    try:
        scored = invoke_endpoint(
            runtime,
            endpoint_name=ENDPOINTS[request.endpoint],
            request=request,
            inference_id=app.current_event.request_context.request_id,
        )
    except ScoringFailure as failure:
        status, metric = FAILURE_STATUS[failure.kind]
        logger.warning(
            "scoring failed",
            extra={
                "endpoint": request.endpoint,
                "kind": failure.kind,
                "reason": failure.reason,
                "detail": failure.detail,
            },
        )
        return refuse(status, failure.reason, metric)
    logger.info(
        "scored", extra={"endpoint": request.endpoint, "variant": scored.variant, "instances": len(request.instances)}
    )
    return answer(
        200,
        {"endpoint": request.endpoint, "variant": scored.variant, "predictions": scored.predictions},
        "ScoreSucceeded",
    )


@app.post("/score/async")
@tracer.capture_method(capture_response=False)
def submit() -> Response:
    request = read_request()
    if isinstance(request, Response):
        return request
    tracking_id = new_tracking_id()
    message = request.message(tracking_id)
    size = len(message.encode("utf-8"))
    if size > MAX_MESSAGE_BYTES:
        return refuse(
            413,
            f"the request is {size} bytes as a queue message; asynchronous scoring takes at most "
            f"{MAX_MESSAGE_BYTES}: send fewer instances per request",
            "AsyncTooLarge",
        )
    try:
        results.create(tracking_id, request.endpoint, RESULT_TTL_DAYS)
    except (ClientError, BotoCoreError):
        logger.exception("could not record the request", extra={"id": tracking_id})
        return refuse(503, "the request could not be recorded; nothing was queued, try again", "AsyncStoreFailed")
    try:
        sqs.send_message(QueueUrl=REQUESTS_QUEUE_URL, MessageBody=message)
    except (ClientError, BotoCoreError) as error:
        logger.exception("could not queue the request", extra={"id": tracking_id})
        reason = f"the request could not be queued ({type(error).__name__}); submit it again"
        try:
            results.finish(tracking_id, FAILED, reason=reason)
        except (ClientError, BotoCoreError):
            # The record stays pending until its TTL; the caller was told below and holds no id.
            logger.exception("could not mark the unqueued request failed", extra={"id": tracking_id})
        return refuse(503, reason, "AsyncQueueFailed")
    logger.info("queued", extra={"id": tracking_id, "endpoint": request.endpoint, "instances": len(request.instances)})
    location = f"/score/{tracking_id}"
    return answer(
        202,
        {"id": tracking_id, "status": "pending", "location": location},
        "AsyncAccepted",
        headers={"Location": location},
    )


@app.get("/score/<tracking_id>")
@tracer.capture_method(capture_response=False)
def result(tracking_id: str) -> Response:
    if not is_tracking_id(tracking_id):
        return refuse(404, NOT_FOUND, "ResultNotFound")
    item = results.get(tracking_id)
    if item is None or int(item.get("expires_at", 0)) <= int(datetime.now(UTC).timestamp()):
        return refuse(404, NOT_FOUND, "ResultNotFound")
    return answer(200, public_view(item), "ResultFound", headers={"Cache-Control": "no-store"})


@app.not_found
def no_route(error: Exception) -> Response:
    # Registered, or the catch-all below would answer an unknown route with a 500.
    return refuse(404, "no such resource: POST /score, POST /score/async or GET /score/{id}", "RouteNotFound")


@app.exception_handler(Exception)
def internal_error(error: Exception) -> Response:
    """Anything unforeseen: logged with its traceback, answered without it."""
    logger.exception("unhandled error")
    return refuse(500, "internal error; try again later", "InternalError")


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    identity = event.get("requestContext", {}).get("identity") or {}
    logger.append_keys(caller=identity.get("userArn"))
    return app.resolve(event, context)
