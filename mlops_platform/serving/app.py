"""A bare ASGI application around ``handler.handle``: no framework, no routing table, no middleware.

Each request costs one pass over its headers, one read of its body and one call to ``handle``;
a framework's request objects, routing and middleware would cost as much as scoring a row.
Scoring runs on the event loop: a worker process is one scorer, and the server's concurrency is
its number of worker processes (``serve``).

Worker processes share one listening socket, and a connection stays with the worker that
accepted it. A client that keeps a few connections alive (SageMaker's front end, a load
generator) can end up with most of them on one worker while another idles. So every
``REBALANCE_EVERY``-th response a worker sends says ``Connection: close``: the client reconnects,
and the worker that is idle, waiting in ``accept``, is the one likely to take the new connection.
One reconnect per thousand requests costs nothing measurable.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from mlops_platform.serving.handler import Request, Response, handle, refuse, too_large
from mlops_platform.serving.model import Model, load
from mlops_platform.serving.settings import Settings

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REBALANCE_EVERY = 1000


def create_app(model: Model | None, settings: Settings) -> ASGIApp:
    """The application serving ``model``; each worker process builds its own."""
    responses = 0

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal responses
        if scope["type"] != "http":
            return  # lifespan events are switched off in serve; websockets are not served
        content_type = accept = attributes = None
        length = 0
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"accept":
                accept = value.decode("latin-1")
            elif name == b"x-amzn-sagemaker-custom-attributes":
                attributes = value.decode("latin-1")
            elif name == b"content-length" and value.isdigit():
                length = int(value)
        if length > settings.max_payload_bytes:
            # Answered before the body is read; the connection closes rather than drain it.
            return await respond(send, refuse(413, too_large(length, settings), close=True))
        body = await read_body(receive, settings.max_payload_bytes)
        if body is None:  # a chunked body that grew past the limit
            return await respond(send, refuse(413, too_large(None, settings), close=True))
        request = Request(
            method=scope["method"],
            path=scope["path"],
            query=scope["query_string"].decode("latin-1"),
            content_type=content_type,
            accept=accept,
            custom_attributes=attributes,
            body=body,
        )
        response = handle(request, model, settings)
        if response.status >= 400:
            log.warning("%s %s: %d %s", request.method, request.path, response.status, response.body.decode())
        responses += 1
        await respond(send, response, close=response.close or responses % REBALANCE_EVERY == 0)

    return app


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None once it passes ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b""  # the client went away; the answer goes nowhere
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def respond(send: Send, response: Response, *, close: bool | None = None) -> None:
    headers = [
        (b"content-type", response.content_type.encode("latin-1")),
        (b"content-length", str(len(response.body)).encode("latin-1")),
    ]
    if response.close if close is None else close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


def app_from_environment() -> ASGIApp:
    """What each worker process runs (uvicorn's ``factory``): the model under ``SM_ROOT``, loaded once."""
    settings = Settings.from_environment()
    model = load(settings.model_dir)
    freeze_heap()
    return create_app(model, settings)


def freeze_heap() -> None:
    """Put everything allocated so far (the libraries, the model) out of the garbage collector's sight.

    It all lives as long as the worker, and a full collection walking it takes about 80 ms on two
    cores (benchmarks/serving): a pause in the middle of whichever requests are in flight.
    """
    gc.collect()
    gc.freeze()
