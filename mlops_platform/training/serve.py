"""``serve``: SageMaker's hosting contract, so batch transform can score with the training image.

A stop-gap until a dedicated inference image exists, hence the standard library only (no web
framework in a training image): a threaded HTTP server on ``SAGEMAKER_BIND_TO_PORT`` (default
8080) that loads ``<SM_ROOT>/model`` once at start, answers ``GET /ping`` with 200, and
``POST /invocations`` (``text/csv``: rows of features in schema order, no header, as ``prepare``
writes the batch input) with one prediction a line: the probability of class 1 for a binary model,
the value for a regression. A bad request gets 4xx with a one-line reason and never stops the
server. ``handle`` holds the request logic, so tests call it without a socket. A body is read as the
inference image reads CSV carefully (``serving.csv_rows``: the standard library only, none of that
image's libraries).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from mlops_platform.data.encoding import Encoding, ValueProblem
from mlops_platform.sagemaker_paths import SageMakerPaths
from mlops_platform.serving.csv_rows import BadRequest, csv_cells
from mlops_platform.serving.model import Metadata, ModelError, load

log = logging.getLogger(__name__)

DEFAULT_PORT = 8080
# Batch transform's MaxPayloadInMB is at most 100; anything larger is not from SageMaker.
MAX_BODY_BYTES = 100 * 1024 * 1024
CSV = "text/csv"


@dataclass(frozen=True)
class Response:
    status: int
    body: str = ""
    content_type: str = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class Model:
    metadata: dict[str, Any]
    predict: Callable[[np.ndarray], np.ndarray]  # a float32 matrix (NaN: missing) to scores
    served: Metadata  # the features' types and categories, the classes

    @property
    def width(self) -> int:
        return len(self.metadata["features"])

    @classmethod
    def load(cls, directory: Path) -> Model:
        """The model as the inference image loads it (``serving.model``), so both images score alike."""
        if not (directory / "metadata.json").is_file():
            raise ServeError(f"no model under {directory} (metadata.json is missing)")
        try:
            model = load(directory)
        except ModelError as error:
            raise ServeError(str(error)) from None
        metadata = json.loads((directory / "metadata.json").read_text())
        return cls(metadata=metadata, predict=model.score, served=model.metadata)


class ServeError(Exception):
    """Why the server cannot start, in one line."""


def handle(method: str, path: str, content_type: str | None, body: bytes, model: Model | None) -> Response:
    """The response to one request; never raises."""
    route = path.split("?", 1)[0]
    if route == "/ping":
        if method != "GET":
            return Response(405, f"{method} /ping is not allowed; allowed: GET")
        return Response(200) if model else Response(503, "no model loaded")
    if route == "/invocations":
        if method != "POST":
            return Response(405, f"{method} /invocations is not allowed; allowed: POST")
        if model is None:
            return Response(503, "no model loaded")
        return invocations(content_type, body, model)
    return Response(404, f"no route {route!r}; allowed: GET /ping, POST /invocations")


def invocations(content_type: str | None, body: bytes, model: Model) -> Response:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != CSV:
        return Response(415, f"content type {content_type or 'none'!r} is not supported; allowed: {CSV}")
    try:
        features = parse_csv(body, model.served.encoding)
    except BadRequest as error:
        return Response(400, str(error))
    try:
        predictions = model.predict(features)
    except Exception as error:  # the server outlives a failed prediction
        log.exception("prediction failed")
        return Response(500, " ".join(f"prediction failed: {type(error).__name__}: {error}".split())[:1000])
    if predictions.ndim == 2:  # multiclass: the label, then each class's probability in the model's order
        classes = model.served.classes
        lines = (
            ",".join([classes[int(np.argmax(row))], *(f"{float(p):.9g}" for p in row)]) + "\n" for row in predictions
        )
        return Response(200, "".join(lines), CSV)
    return Response(200, "".join(f"{float(value):.9g}\n" for value in predictions), CSV)


def parse_csv(body: bytes, encoding: Encoding) -> np.ndarray:
    """Rows of the model's features, no header, as a float32 matrix: an empty cell or a category training
    never saw is NaN (missing); BadRequest names the first bad cell."""
    rows = []
    for number, cells in csv_cells(body, encoding.width):
        row = []
        for i, cell in enumerate(cells):
            try:
                row.append(encoding.text(i, cell.strip()))
            except ValueProblem as problem:
                raise BadRequest(f"row {number}, column {i + 1} {problem}") from None
        rows.append(row)
    return np.asarray(rows, dtype=np.float32)


class Handler(BaseHTTPRequestHandler):
    """Reads a request, lets ``handle`` answer it; the model sits on the server."""

    protocol_version = "HTTP/1.1"  # keep-alive: batch transform sends many requests on one connection
    server: Server

    def do_GET(self) -> None:
        self._respond(handle("GET", self.path, self.headers.get("Content-Type"), b"", self.server.model))

    def do_POST(self) -> None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True
            return self._respond(Response(411, "a Content-Length is required; chunked bodies are not supported"))
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            return self._respond(Response(400, "the Content-Length is not a whole number"))
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True  # the body is left unread
            return self._respond(Response(413, f"the body is {length} bytes; allowed: up to {MAX_BODY_BYTES}"))
        body = self.rfile.read(length)
        self._respond(handle("POST", self.path, self.headers.get("Content-Type"), body, self.server.model))

    def _respond(self, response: Response) -> None:
        payload = (response.body or ("" if response.status < 400 else "error")).encode("utf-8")
        if response.status >= 400:
            log.warning("%s %s: %d %s", self.command, self.path, response.status, response.body)
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format, *args)


class Server(ThreadingHTTPServer):
    daemon_threads = True  # a hung client never holds the process up at shutdown

    def __init__(self, address: tuple[str, int], model: Model | None) -> None:
        super().__init__(address, Handler)
        self.model = model


def port_from_environment() -> int:
    text = os.environ.get("SAGEMAKER_BIND_TO_PORT") or str(DEFAULT_PORT)
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ServeError(f"SAGEMAKER_BIND_TO_PORT has value {text!r}; allowed: a port from 1 to 65535")
    return int(text)


def main(argv: list[str] | None = None, paths: SageMakerPaths | None = None) -> int:
    paths = paths or SageMakerPaths.from_environment()
    if argv:
        print(f"serve takes no arguments (got {argv}); set SAGEMAKER_BIND_TO_PORT and SM_ROOT", file=sys.stderr)
        return 2
    try:
        port = port_from_environment()
        model = Model.load(paths.model)
    except ServeError as error:
        print(f"serve failed: {error}", file=sys.stderr, flush=True)
        return 1
    except Exception as error:  # a corrupt model: say which, in one line
        print(
            f"serve failed: the model under {paths.model} does not load: {type(error).__name__}: {error}",
            file=sys.stderr,
            flush=True,
        )
        return 1
    # Every interface: SageMaker reaches the container from outside it.
    server = Server(("0.0.0.0", port), model)  # noqa: S104
    log.info("serving %s model (%d features) on port %d", model.metadata["algorithm"], model.width, port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
