"""SageMaker's hosting contract as one pure function: a request in, a response out, never an exception.

``GET /ping`` answers 200 once the model is loaded; ``POST /invocations`` scores CSV, JSON or JSON
Lines (``codec``) and answers in the type ``Accept`` names (the request's own type when it names
none, or ``*/*``). Explanations are asked for with ``explain=true`` in the
``X-Amzn-SageMaker-Custom-Attributes`` header (what InvokeEndpoint's ``CustomAttributes``
forwards) or in the query string (for local use). ``GET /execution-parameters`` tells batch
transform how to call the container. The socket lives in ``app``; tests call ``handle`` directly.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import orjson

from mlops_platform.serving import codec
from mlops_platform.serving.model import Model
from mlops_platform.serving.settings import Settings

log = logging.getLogger(__name__)

PLAIN_TEXT = "text/plain; charset=utf-8"
ROUTES = "GET /ping, POST /invocations, GET /execution-parameters"
_TOKEN_SEPARATORS = re.compile(r"[;,&\s]+")
# What a wildcard of each family answers when the request is of another family.
_FAMILIES = {"text/*": codec.CSV, "application/*": codec.JSON}


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: str = ""
    content_type: str | None = None
    accept: str | None = None
    custom_attributes: str | None = None
    body: bytes = b""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = PLAIN_TEXT
    # The request's body was left unread (too large): the connection cannot carry another request.
    close: bool = False


def refuse(status: int, reason: str, *, close: bool = False) -> Response:
    """A 4xx or 5xx with its reason as one line of plain text."""
    return Response(status, " ".join(reason.split())[:1000].encode(), PLAIN_TEXT, close)


def handle(request: Request, model: Model | None, settings: Settings) -> Response:
    if request.path == "/invocations":
        if request.method != "POST":
            return refuse(405, f"{request.method} /invocations is not allowed; allowed: POST")
        if model is None:
            return refuse(503, "no model loaded")
        return invocations(request, model, settings)
    if request.path == "/ping":
        if request.method not in ("GET", "HEAD"):
            return refuse(405, f"{request.method} /ping is not allowed; allowed: GET")
        return Response(200) if model is not None else refuse(503, "no model loaded")
    if request.path == "/execution-parameters" and request.method == "GET":
        return Response(200, execution_parameters(settings), codec.JSON)
    return refuse(404, f"no route {request.method} {request.path}; allowed: {ROUTES}")


def invocations(request: Request, model: Model, settings: Settings) -> Response:
    if len(request.body) > settings.max_payload_bytes:
        return refuse(413, too_large(len(request.body), settings), close=True)
    request_type = media_type(request.content_type)
    if request_type not in codec.CONTENT_TYPES:
        return refuse(
            415,
            f"content type {request.content_type or 'none'!r} is not supported; "
            f"allowed: {', '.join(codec.CONTENT_TYPES)}",
        )
    response_type = negotiate(request.accept, request_type)
    if response_type is None:
        return refuse(
            406, f"accept {request.accept!r} names no supported type; allowed: {', '.join(codec.CONTENT_TYPES)}"
        )
    try:
        batch = codec.parse(request_type, request.body, model.metadata.encoding)
    except codec.BadRequest as error:
        return refuse(400, str(error))
    try:
        scored = score(model, batch, explain=wants_explanation(request))
    except Exception as error:  # the worker outlives a failed prediction
        log.exception("prediction failed")
        return refuse(500, f"prediction failed: {type(error).__name__}: {error}")
    return Response(200, codec.format_body(response_type, scored, batch, model.metadata), response_type)


def score(model: Model, batch: codec.Batch, *, explain: bool) -> codec.Scored:
    """Every row in one call to the model."""
    scores = model.score(batch.features)
    return codec.Scored(scores, model.contributions(batch.features) if explain else None)


def too_large(size: int | None, settings: Settings) -> str:
    """Why a body is refused; ``size`` None for a chunked body, refused once it passed the limit."""
    stated = f"{size} bytes" if size is not None else f"over {settings.max_payload_bytes} bytes"
    return f"the body is {stated}; allowed: up to {settings.max_payload_bytes} (MLOPS_MAX_PAYLOAD_BYTES)"


def media_type(header: str | None) -> str:
    """``text/csv; charset=utf-8`` → ``text/csv``."""
    return (header or "").split(";", 1)[0].strip().lower()


def negotiate(accept: str | None, request_type: str) -> str | None:
    """The response's type: the most preferred one ``Accept`` names that the server writes, or None.

    No header, an empty one or ``*/*`` means the request's own type; ``text/*`` and
    ``application/*`` mean the request's type when it is of that family, else the family's first
    (CSV, JSON); ``q=0`` rules a type out.
    """
    if not accept or accept == request_type or accept == "*/*" or not accept.strip():
        return request_type  # what nearly every request sends: skip the parsing
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept.split(",")):
        media, *parameters = part.split(";")
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0 and media.strip():
            ranked.append((-quality, position, media.strip().lower()))
    for _, _, media in sorted(ranked):
        if media in codec.CONTENT_TYPES:
            return media
        if media == "*/*":
            return request_type
        if media in _FAMILIES:
            return request_type if request_type.startswith(media[:-1]) else _FAMILIES[media]
    return None


def wants_explanation(request: Request) -> bool:
    """``explain=true`` among the custom attributes (``;``, ``,`` or space separated) or the query string."""
    for source in (request.custom_attributes, request.query):
        if source and "explain" in source.lower() and "explain=true" in _TOKEN_SEPARATORS.split(source.lower()):
            return True
    return False


def execution_parameters(settings: Settings) -> bytes:
    """What batch transform asks before its first request: parallel requests, records per request, request size."""
    return orjson.dumps(
        {
            "MaxConcurrentTransforms": settings.workers,
            "BatchStrategy": "MULTI_RECORD",
            "MaxPayloadInMB": max(1, min(100, settings.max_payload_bytes // (1024 * 1024))),
        }
    )
