"""Scoring API: real-time and asynchronous scoring on the environment's SageMaker endpoints.

API Gateway (REST, IAM-authenticated, Lambda proxy integration) routes three resources of each endpoint here:
``POST /endpoints/<endpoint>/score`` (scored at once; by the named variant only when the body names
``variant``, else the weights choose), ``POST /endpoints/<endpoint>/score/async`` (recorded as ``pending``
under a tracking id and the caller's principal, then queued for the worker, ``worker.py``) and
``GET /endpoints/<endpoint>/results/<id>`` (the record, with its predictions or reason, for the principal
that submitted it only). The endpoint is in the path so that IAM scopes each caller to its tenant's endpoints.
What each answers, and when, is in mlops_platform/serving/api/service.py: every error body is
``{"message": <one line>}`` and never carries SageMaker's internals (those go to the logs).
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.metrics import MetricUnit
from botocore.config import Config

from mlops_platform.serving.api.caller import principal_of
from mlops_platform.serving.api.request import load_endpoints, load_variants
from mlops_platform.serving.api.results import Results
from mlops_platform.serving.api.service import DEFAULT_MAX_MESSAGE_BYTES, Answer, ScoringApi, refusal

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

scoring = ScoringApi(
    boto3.client("sagemaker-runtime", config=RUNTIME_CONFIG),
    boto3.client("sqs"),
    Results(boto3.client("dynamodb"), os.environ["RESULTS_TABLE"]),
    endpoints=load_endpoints(os.environ["ENDPOINTS"]),
    variants=load_variants(os.environ.get("VARIANTS")),
    requests_queue_url=os.environ["REQUESTS_QUEUE_URL"],
    max_instances=int(os.environ.get("MAX_INSTANCES", "1000")),
    result_ttl_days=int(os.environ.get("RESULT_TTL_DAYS", "7")),
    max_message_bytes=int(os.environ.get("MAX_MESSAGE_BYTES", str(DEFAULT_MAX_MESSAGE_BYTES))),
    logger=logger,
)


def respond(answer: Answer) -> Response:
    metrics.add_metric(answer.metric, MetricUnit.Count, 1)
    return Response(
        status_code=answer.status,
        content_type=content_types.APPLICATION_JSON,
        body=answer.body,
        headers=answer.headers,
    )


def caller() -> str | None:
    """The IAM principal that signed the request (mlops_platform/serving/api/caller.py)."""
    return principal_of(app.current_event.get("requestContext", {}).get("identity"))


@app.post("/endpoints/<endpoint>/score")
@tracer.capture_method(capture_response=False)
def score(endpoint: str) -> Response:
    request = scoring.read(endpoint, app.current_event.decoded_body)
    if isinstance(request, Answer):
        return respond(request)
    tracer.put_annotation("endpoint", request.endpoint)
    return respond(scoring.score(request, inference_id=app.current_event.request_context.request_id))


@app.post("/endpoints/<endpoint>/score/async")
@tracer.capture_method(capture_response=False)
def submit(endpoint: str) -> Response:
    request = scoring.read(endpoint, app.current_event.decoded_body)
    return respond(request if isinstance(request, Answer) else scoring.submit(request, principal=caller()))


@app.get("/endpoints/<endpoint>/results/<tracking_id>")
@tracer.capture_method(capture_response=False)
def result(endpoint: str, tracking_id: str) -> Response:
    return respond(scoring.result(endpoint, tracking_id, principal=caller()))


@app.not_found
def no_route(error: Exception) -> Response:
    # Registered, or the catch-all below would answer an unknown route with a 500.
    return respond(
        refusal(
            404,
            "no such resource: POST /endpoints/{endpoint}/score, POST /endpoints/{endpoint}/score/async or "
            "GET /endpoints/{endpoint}/results/{id}",
            "RouteNotFound",
        )
    )


@app.exception_handler(Exception)
def internal_error(error: Exception) -> Response:
    """Anything unforeseen: logged with its traceback, answered without it."""
    logger.exception("unhandled error")
    return respond(refusal(500, "internal error; try again later", "InternalError"))


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    identity = event.get("requestContext", {}).get("identity") or {}
    logger.append_keys(caller=identity.get("userArn"))
    return app.resolve(event, context)
