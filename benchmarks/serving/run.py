"""Serving throughput and tail latency: the inference image's server against SageMaker's example layout.

Trains one XGBoost model (100 trees of depth 6 on 30 synthetic features, binary, the training
image's objective and tree method) into a temporary ``/opt/ml/model``, then, one server at a time
on 127.0.0.1 with the same number of worker processes and the same ``OMP_NUM_THREADS``:

- the baseline: Flask behind gunicorn sync workers, as SageMaker's bring-your-own-container
  examples lay it out (``baseline.py``: pandas ``read_csv`` + DMatrix + predict per request);
- a control: the same Flask and gunicorn with numpy parsing and ``inplace_predict``, which tells
  what the server costs apart from what pandas and the DMatrix cost;
- ``python -m mlops_platform.serving serve``, as the inference image runs it.

Each is driven by wrk (``post.lua`` POSTs the body) with a single-row CSV body and a 100-row CSV
body, for a warm-up and then a bounded measured time; it prints requests/s and p50/p99 latency per
case and how mlops_platform.serving compares. The servers' answers to the 100-row body are compared first.

    apt-get install -y wrk                                  # Debian/Ubuntu (brew install wrk on macOS)
    .venv/bin/pip install -r benchmarks/serving/requirements.txt
    .venv/bin/python benchmarks/serving/run.py [--duration 15] [--connections 4] [--threads 1]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
HERE = Path(__file__).resolve().parent
FEATURES = 30
TREES = 100
ROWS_PER_BATCH = 100


@dataclass(frozen=True)
class Result:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


def missing_tools() -> list[str]:
    """What the benchmark needs and this machine lacks, each with how to install it."""
    problems = []
    if not shutil.which("wrk"):
        problems.append("wrk is not installed: apt-get install -y wrk (Debian/Ubuntu), brew install wrk (macOS)")
    for module in ("flask", "gunicorn", "uvicorn", "httptools", "uvloop", "orjson", "xgboost", "pandas"):
        try:
            __import__(module)
        except ImportError:
            problems.append(
                f"the Python module {module} is missing: .venv/bin/pip install -r requirements-dev.txt "
                "-r benchmarks/serving/requirements.txt"
            )
    return problems


def train_model(model_dir: Path) -> tuple[int, bytes, bytes]:
    """The model in the training image's format (model.json, metadata.json); its leaf count and two CSV bodies."""
    import numpy as np
    import xgboost as xgb
    from sklearn.datasets import make_classification

    features, target = make_classification(
        n_samples=20_000, n_features=FEATURES, n_informative=15, flip_y=0.05, random_state=0
    )
    features = np.round(features, 4).astype(np.float32)  # values like the example tenant's: a few digits
    names = [f"feature_{i:02d}" for i in range(FEATURES)]
    booster = xgb.train(
        {"objective": "binary:logistic", "tree_method": "hist", "max_depth": 6, "eta": 0.3, "nthread": 1, "seed": 0},
        xgb.DMatrix(features, label=target, feature_names=names),
        num_boost_round=TREES,
    )
    model_dir.mkdir(parents=True)
    booster.save_model(model_dir / "model.json")
    metadata = {"algorithm": "xgboost", "problem_type": "binary", "target": "target", "features": names}
    (model_dir / "metadata.json").write_text(json.dumps(metadata, indent=2))
    leaves = sum(tree.count('"leaf"') for tree in booster.get_dump(dump_format="json"))

    def csv(rows: np.ndarray) -> bytes:
        return "".join(",".join(f"{v:g}" for v in row) + "\n" for row in rows.tolist()).encode()

    return leaves, csv(features[:1]), csv(features[1 : 1 + ROWS_PER_BATCH])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def post(port: int, body: bytes) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", "/invocations", body=body, headers={"Content-Type": "text/csv"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def ping(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        connection.request("GET", "/ping")
        ok = connection.getresponse().status == 200
        connection.close()
        return ok
    except OSError:
        return False


@contextmanager
def running(command: list[str], environment: dict[str, str], port: int, cwd: Path) -> Iterator[None]:
    """A server started in its own process group, ready (``/ping`` 200), and stopped afterwards."""
    with tempfile.TemporaryFile() as log:
        # The benchmark's own command lines, built above from fixed parts.
        process = subprocess.Popen(  # noqa: S603
            command, env=environment, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 60
            while not ping(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise SystemExit(f"{command[0]} did not start:\n{log.read().decode(errors='replace')[-2000:]}")
                time.sleep(0.2)
            yield
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # the group this function started
                process.wait()


def drive(port: int, body_file: Path, seconds: int, threads: int, connections: int) -> Result:
    """One wrk run against ``/invocations``; what post.lua's ``done`` reports."""
    result = subprocess.run(  # noqa: S603 (fixed arguments)
        [
            shutil.which("wrk") or "wrk",
            f"--threads={threads}",
            f"--connections={connections}",
            f"--duration={seconds}s",
            "--timeout=5s",
            f"--script={HERE / 'post.lua'}",
            f"http://127.0.0.1:{port}/invocations",
        ],
        env={**os.environ, "WRK_BODY": str(body_file), "WRK_CONTENT_TYPE": "text/csv"},
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    line = next(line for line in result.stdout.splitlines() if line.startswith("WRK_RESULT "))
    report = json.loads(line.removeprefix("WRK_RESULT "))
    errors = sum(report[key] for key in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"))
    return Result(
        requests_per_second=report["requests"] / (report["duration_us"] / 1e6),
        p50_ms=report["p50_us"] / 1000,
        p99_ms=report["p99_us"] / 1000,
        errors=errors,
    )


BASELINE = "baseline: Flask + gunicorn sync, pandas + DMatrix"
CONTROL = "control: Flask + gunicorn sync, numpy + inplace_predict"
OURS = "mlops_platform.serving: uvicorn, bare ASGI"


def servers(workers: int, port: int) -> dict[str, tuple[list[str], Path, dict[str, str]]]:
    """Each server's command, working folder and extra environment: the same workers, the same threads."""

    def gunicorn(app: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "gunicorn",
            "--worker-class=sync",
            f"--workers={workers}",
            f"--bind=127.0.0.1:{port}",
            "--timeout=60",
            app,
        ]

    return {
        BASELINE: (gunicorn("baseline:app"), HERE, {}),
        CONTROL: (gunicorn("baseline:control_app"), HERE, {}),
        OURS: (
            [sys.executable, "-m", "mlops_platform.serving", "serve"],
            ROOT,
            {
                "PYTHONPATH": str(ROOT),
                "SAGEMAKER_BIND_TO_PORT": str(port),
                "SAGEMAKER_MODEL_SERVER_WORKERS": str(workers),
                "MLOPS_BIND_HOST": "127.0.0.1",
            },
        ),
    }  # fmt: skip


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=15, help="measured seconds per case (default 15)")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured seconds before each case (default 3)")
    parser.add_argument("--connections", type=int, default=4, help="wrk's open connections (default 4)")
    parser.add_argument("--threads", type=int, default=1, help="wrk's threads (default 1: wrk shares the CPUs)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of each server (default 2)")
    arguments = parser.parse_args(argv)
    problems = missing_tools()
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="bench-serving-") as scratch:
        root = Path(scratch)
        leaves, single, batch = train_model(root / "model")
        bodies = {"1 row": root / "single.csv", f"{ROWS_PER_BATCH} rows": root / "batch.csv"}
        bodies["1 row"].write_bytes(single)
        bodies[f"{ROWS_PER_BATCH} rows"].write_bytes(batch)
        print(
            f"model: XGBoost binary, {TREES} trees ({leaves} leaves), {FEATURES} features; "
            f"{arguments.workers} workers per server, OMP_NUM_THREADS=1; "
            f"wrk: {arguments.threads} thread(s), {arguments.connections} connections, "
            f"{arguments.warmup} s warm-up + {arguments.duration} s per case; "
            f"{os.cpu_count()} CPUs ({cpu_model()}), Python {platform.python_version()}",
            flush=True,
        )
        # Both servers see the same environment but for their own settings: one scoring thread each.
        environment = {**os.environ, "SM_ROOT": str(root), "OMP_NUM_THREADS": "1"}
        results: dict[tuple[str, str], Result] = {}
        answers: dict[str, list[float]] = {}
        port = free_port()
        for name, (command, cwd, extra) in servers(arguments.workers, port).items():
            with running(command, {**environment, **extra}, port, cwd):
                status, answer = post(port, batch)
                if status != 200:
                    raise SystemExit(f"{name} answered {status} to the {ROWS_PER_BATCH}-row body: {answer[:200]!r}")
                answers[name] = [float(v) for v in answer.split()]
                for case, body_file in bodies.items():
                    drive(port, body_file, arguments.warmup, arguments.threads, arguments.connections)
                    results[(name, case)] = drive(
                        port, body_file, arguments.duration, arguments.threads, arguments.connections
                    )
                    result = results[(name, case)]
                    print(
                        f"  {name}, {case}: {result.requests_per_second:,.0f} req/s, p50 {result.p50_ms:.2f} ms, "
                        f"p99 {result.p99_ms:.2f} ms, {result.errors} errors",
                        flush=True,
                    )
        for name, scores in answers.items():
            reference = answers[BASELINE]
            if len(scores) != len(reference) or any(abs(a - b) > 1e-6 for a, b in zip(scores, reference, strict=True)):
                print(f"warning: {name} scores differently from the baseline", file=sys.stderr)
        print_table(results, list(bodies))
    return 0


def print_table(results: dict[tuple[str, str], Result], cases: list[str]) -> None:
    names = list(dict.fromkeys(name for name, _ in results))
    print()
    print("| case | server | requests/s | p50 | p99 | errors |")
    print("|---|---|---:|---:|---:|---:|")
    for case in cases:
        for name in names:
            r = results[(name, case)]
            row = f"| {case} | {name} | {r.requests_per_second:,.0f} | {r.p50_ms:.2f} ms | {r.p99_ms:.2f} ms |"
            print(f"{row} {r.errors} |")
        ours = results[(OURS, case)]
        for name in (BASELINE, CONTROL):
            other = results[(name, case)]
            print(
                f"| {case} | **mlops_platform.serving vs {name.split(':')[0]}** | "
                f"**{ours.requests_per_second / other.requests_per_second:.1f} x** | "
                f"{other.p50_ms / ours.p50_ms:.1f} x lower | {other.p99_ms / ours.p99_ms:.1f} x lower | |"
            )


if __name__ == "__main__":
    sys.exit(main())
