"""``serve`` over a real localhost socket: the entry point SageMaker runs, with pre-forked workers."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlops_platform.serving.serve import main
from tests.conftest import ROOT
from tests.unit.inference.conftest import csv_body, features_of

pytestmark = pytest.mark.enable_socket


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def workers(pid: int) -> list[int]:
    """The server's worker processes (multiprocessing's spawned children, not its resource tracker)."""
    found = []
    for child in children(pid):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue  # ended meanwhile
        if b"spawn_main" in command and b"resource_tracker" not in command:
            found.append(child)
    return found


def wait_until(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


@pytest.fixture(scope="module")
def server(xgboost_dir):
    """``python -m mlops_platform.serving serve`` with two workers on a free port, as SageMaker starts it."""
    port = free_port()
    environment = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SM_ROOT": str(xgboost_dir.parent),
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "SAGEMAKER_MODEL_SERVER_WORKERS": "2",
        "MLOPS_BIND_HOST": "127.0.0.1",
        "MLOPS_MAX_PAYLOAD_BYTES": "100000",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "mlops_platform.serving", "serve"],
        env=environment,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )

    def ready():
        try:
            return request(port, "GET", "/ping")[0] == 200
        except OSError:
            return False

    try:
        assert wait_until(ready), "the server did not answer /ping"
        yield process, port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stderr.close()


def request(port, method, path, body=b"", headers=None, connection=None):
    connection = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    return response.status, response.getheader("Content-Type"), response.read()


def test_the_server_scores_and_survives_bad_requests_on_one_keep_alive_connection(server, xgboost_dir):
    _, port = server
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    features = features_of("binary", rows=10)
    csv = {"Content-Type": "text/csv"}

    assert request(port, "GET", "/ping", connection=connection)[0] == 200
    assert request(port, "POST", "/invocations", b"1,2\n", csv, connection)[:2] == (400, "text/plain; charset=utf-8")
    assert request(port, "POST", "/invocations", b"{}", {"Content-Type": "text/html"}, connection)[0] == 415
    assert request(port, "POST", "/invocations", b"1", {**csv, "Accept": "image/png"}, connection)[0] == 406
    status, content_type, body = request(port, "POST", "/invocations", csv_body(features), csv, connection)
    assert (status, content_type) == (200, "text/csv")
    assert len(body.splitlines()) == 10
    connection.close()


def test_explanations_come_with_sagemaker_s_custom_attributes_header(server):
    _, port = server
    features = features_of("binary", rows=2)

    status, content_type, body = request(
        port,
        "POST",
        "/invocations",
        json.dumps({"instances": features.tolist()}).encode(),
        {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "X-Amzn-SageMaker-Custom-Attributes": "explain=true",
        },
    )

    assert (status, content_type) == (200, "application/json")
    assert all("bias" in p["contributions"] for p in json.loads(body)["predictions"])


def test_a_body_over_the_limit_is_refused_before_it_is_read(server):
    """A declared length is refused at once; test_app covers a chunked body, counted as it arrives."""
    _, port = server
    declared = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    declared.putrequest("POST", "/invocations")
    declared.putheader("Content-Type", "text/csv")
    declared.putheader("Content-Length", str(100_001))
    declared.endheaders()
    response = declared.getresponse()
    assert (response.status, response.getheader("Connection")) == (413, "close")
    assert response.read() == b"the body is 100001 bytes; allowed: up to 100000 (MLOPS_MAX_PAYLOAD_BYTES)"
    declared.close()

    assert request(port, "GET", "/ping")[0] == 200


def test_a_worker_that_dies_is_replaced_and_the_other_keeps_serving(server):
    process, port = server
    assert wait_until(lambda: len(workers(process.pid)) == 2)
    victim = workers(process.pid)[0]

    os.kill(victim, signal.SIGKILL)

    assert request(port, "GET", "/ping")[0] == 200
    assert wait_until(lambda: victim not in workers(process.pid) and len(workers(process.pid)) == 2)
    assert all(request(port, "GET", "/ping")[0] == 200 for _ in range(10))


def test_serve_without_a_model_exits_1_with_a_reason(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SM_ROOT", str(tmp_path))

    assert main([]) == 1
    assert capsys.readouterr().err == f"serve failed: no model under {tmp_path / 'model'} (metadata.json is missing)\n"


def test_serve_refuses_a_bad_setting_with_a_reason(xgboost_dir, monkeypatch, capsys):
    monkeypatch.setenv("SM_ROOT", str(xgboost_dir.parent))
    monkeypatch.setenv("SAGEMAKER_MODEL_SERVER_WORKERS", "many")

    assert main([]) == 1
    assert "SAGEMAKER_MODEL_SERVER_WORKERS has value 'many'; allowed: a whole number" in capsys.readouterr().err
