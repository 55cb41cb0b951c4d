"""``serve``: what SageMaker runs in a hosting container (``docker run <image> serve``).

uvicorn with httptools (HTTP parsing in C) and uvloop (libuv's event loop) serves ``app`` from
``SAGEMAKER_MODEL_SERVER_WORKERS`` pre-started worker processes (default: one per CPU), each with
its own copy of the model, one scoring thread (``OMP_NUM_THREADS=1`` unless set: N processes of
one thread use N cores without OpenMP's threads fighting over them) and its own event loop.
uvicorn's parent process restarts a worker that dies. The model is loaded once here first, so a
bad model stops the container at once with a one-line reason instead of a loop of failing workers.
"""

from __future__ import annotations

import sys
from typing import Any

from mlops_platform.serving.app import create_app, freeze_heap
from mlops_platform.serving.model import ModelError, load
from mlops_platform.serving.settings import Settings, SettingsError

# Longer than a client's idle connections last (SageMaker's front end keeps its connections
# open between requests), so the server is never the side that closes a connection a request is
# already travelling on.
KEEP_ALIVE_SECONDS = 75


def main(argv: list[str] | None = None) -> int:
    if argv:
        print(f"serve takes no arguments (got {argv}); see SAGEMAKER_BIND_TO_PORT and SM_ROOT", file=sys.stderr)
        return 2
    try:
        settings = Settings.from_environment()
        model = load(settings.model_dir)
    except (SettingsError, ModelError) as error:
        print(f"serve failed: {error}", file=sys.stderr, flush=True)
        return 1

    import uvicorn

    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop",
        "http": "httptools",
        "lifespan": "off",
        "access_log": False,  # a log line per request costs more than scoring one row
        "server_header": False,
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
    }
    print(
        f"serving {model.metadata.algorithm} {model.metadata.problem_type} model "
        f"({model.metadata.width} features) on port {settings.port} with {settings.workers} worker(s)",
        file=sys.stderr,
        flush=True,
    )
    if settings.workers == 1:
        freeze_heap()
        uvicorn.run(create_app(model, settings), **options)
    else:
        del model  # checked; each worker imports the application and loads its own (spawned, not forked)
        uvicorn.run(
            "mlops_platform.serving.app:app_from_environment", factory=True, workers=settings.workers, **options
        )
    return 0
