"""The ASGI application around ``handle``, driven with ASGI messages instead of a socket."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mlops_platform.serving import app as app_module
from mlops_platform.serving.app import create_app
from mlops_platform.serving.model import load
from tests.unit.inference.conftest import SETTINGS, csv_body, features_of


@pytest.fixture(scope="module")
def model(xgboost_dir):
    return load(xgboost_dir)


def run(coroutine):
    """Drive a coroutine that never truly waits (its messages are at hand), without an event loop:
    an event loop opens a socket pair, which the suite's blocked network refuses."""
    try:
        coroutine.send(None)
    except StopIteration as finished:
        return finished.value
    raise AssertionError("the application waited on something other than its messages")


def call(application, method, path, body_chunks=(b"",), headers=(), query=b""):
    """One request through the application; (status, headers, body) of its answer."""
    messages = [
        {"type": "http.request", "body": chunk, "more_body": index < len(body_chunks) - 1}
        for index, chunk in enumerate(body_chunks)
    ]
    sent = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "query_string": query, "headers": list(headers)}
    run(application(scope, receive, send))
    start, body = sent
    return start["status"], dict(start["headers"]), body["body"]


def test_headers_reach_handle_and_the_body_is_read_across_chunks(model):
    application = create_app(model, SETTINGS)
    body = csv_body(features_of("binary", rows=3))

    status, headers, answer = call(
        application,
        "POST",
        "/invocations",
        (body[:10], body[10:100], body[100:]),
        [
            (b"content-type", b"text/csv"),
            (b"accept", b"application/json"),
            (b"x-amzn-sagemaker-custom-attributes", b"explain=true"),
        ],
    )

    assert status == 200
    assert headers[b"content-type"] == b"application/json"
    assert headers[b"content-length"] == str(len(answer)).encode()
    assert answer.count(b'"contributions"') == 3


def test_a_declared_or_counted_body_over_the_limit_is_413_and_closes(model):
    application = create_app(model, replace(SETTINGS, max_payload_bytes=50))

    declared = call(application, "POST", "/invocations", (b"",), [(b"content-length", b"51")])
    counted = call(application, "POST", "/invocations", (b"1," * 20, b"1," * 20), [(b"content-type", b"text/csv")])

    for status, headers, _ in (declared, counted):
        assert status == 413
        assert headers[b"connection"] == b"close"
    assert declared[2] == b"the body is 51 bytes; allowed: up to 50 (MLOPS_MAX_PAYLOAD_BYTES)"
    assert counted[2] == b"the body is over 50 bytes; allowed: up to 50 (MLOPS_MAX_PAYLOAD_BYTES)"


def test_every_thousandth_response_closes_its_connection_so_clients_spread_over_workers(model, monkeypatch):
    assert app_module.REBALANCE_EVERY == 1000  # the figure containers/README.md gives and the benchmark measured
    monkeypatch.setattr(app_module, "REBALANCE_EVERY", 3)
    application = create_app(model, SETTINGS)

    closes = [b"connection" in call(application, "GET", "/ping")[1] for _ in range(6)]

    assert closes == [False, False, True, False, False, True]


def test_other_asgi_events_are_ignored(model):
    run(create_app(model, SETTINGS)({"type": "lifespan"}, None, None))
