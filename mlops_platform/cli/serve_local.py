"""Serve a model artifact on this machine with the inference image's own server, until Ctrl-C.

    mlops serve-local --model DIR/model.tar.gz [--port 8080] [--host 127.0.0.1]

``model.tar.gz`` is what a training job writes (``mlops train-local`` prints each model's path). It
is unpacked into a temporary ``/opt/ml/model`` and served by ``serve``, the hosting container's entry
point (``mlops_platform.serving.serve``), with one worker: ``GET /ping``, ``POST /invocations`` in
CSV, JSON or JSON Lines, explanations with ``?explain=true``. Before serving it prints a curl line
per content type, with a row whose every value is missing (every feature may be: fill in yours).
Ctrl-C stops the server and exits 0; an artifact that cannot be served or a port in use exits 2
with one sentence.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import socket
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from mlops_platform.cli import CommandError

HELP = "Serve a model.tar.gz on this machine with the inference server, until Ctrl-C"

DEFAULT_PORT = 8080
LOCALHOST = "127.0.0.1"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, type=Path, help="the model.tar.gz a training job wrote")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"the port (default {DEFAULT_PORT})")
    parser.add_argument("--host", default=LOCALHOST, help=f"the address to listen on (default {LOCALHOST})")


def run(args: Any) -> int:
    if not 1 <= args.port <= 65535:
        raise CommandError(f"--port has value {args.port}; allowed: a whole number from 1 to 65535")
    with tempfile.TemporaryDirectory(prefix="mlops-serve-local-") as folder:
        root = Path(folder)
        model = load_artifact(args.model, root / "model")
        _check_port(args.host, args.port)
        print(request_examples(model.metadata, args.host, args.port), flush=True)
        from mlops_platform.serving.serve import main as serve

        # The hosting container's settings (mlops_platform.serving.settings), pointed at the unpacked model.
        os.environ.update(
            SM_ROOT=str(root),
            SAGEMAKER_BIND_TO_PORT=str(args.port),
            SAGEMAKER_MODEL_SERVER_WORKERS="1",
            MLOPS_BIND_HOST=args.host,
        )
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        try:
            return serve([])
        except KeyboardInterrupt:  # uvicorn shuts down, then raises the SIGINT it caught again
            return 0


def load_artifact(archive: Path, into: Path) -> Any:
    """``model.tar.gz`` unpacked into ``into`` as SageMaker unpacks it, and loaded as the server loads it."""
    from mlops_platform.serving.model import ModelError, load

    if not archive.is_file():
        raise CommandError(f"--model {archive} is not a file")
    try:
        with tarfile.open(archive, "r:gz") as bundle:
            # The "data" filter refuses absolute paths, links out of the folder and device files.
            bundle.extractall(into, filter="data")
    except (tarfile.TarError, OSError, EOFError) as error:
        raise CommandError(f"--model {archive} is not a readable model.tar.gz ({type(error).__name__})") from None
    try:
        return load(into)
    except ModelError as error:
        raise CommandError(
            f"--model {archive} cannot be served: {str(error).replace(str(into), 'the archive')}"
        ) from None


def _check_port(host: str, port: int) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise CommandError(f"--port {port} on {host} cannot be listened on ({error.strerror})") from None


def request_examples(metadata: Any, host: str, port: int) -> str:
    """How to score a row: one curl line per content type the server accepts, the row's values all missing."""
    url = f"http://{host}:{port}/invocations"
    names = list(metadata.features)
    csv_row = "," * (len(names) - 1)
    record = dict.fromkeys(names)
    bodies = {
        "text/csv": csv_row,
        "application/json": json.dumps({"instances": [record]}),
        "application/jsonlines": json.dumps(record),
    }
    lines = [
        f"serving {metadata.algorithm} {metadata.problem_type} model on {url} (Ctrl-C stops it); "
        f"features in order: {', '.join(names)}",
        "score a row (every value missing here: put yours in; add ?explain=true for each feature's contribution):",
    ]
    lines += [
        f"  curl -s {url} -H 'Content-Type: {kind}' --data-binary {shlex.quote(body)}" for kind, body in bodies.items()
    ]
    return "\n".join(lines)
