"""How long the development loop takes: `make synth` and `make test`, cold and warm, and the slowest tests.

Cold is a fresh clone's first run once `make setup` has installed everything: an empty `cdk.out`
(so no policy-gate verdicts) for `make synth`; no mypy, ruff or pytest cache (so no policy-gate
verdicts either) for `make test`. Warm is the same command run again right after. Every run writes
into a temporary folder (CDK_OUT, MYPY_CACHE_DIR, RUFF_CACHE_DIR, pytest's cache_dir), so the
working tree's own cdk.out and caches are neither used nor touched.

Each figure is the wall-clock time and the CPU time (user + system) of the command and everything
it waited for. On a shared machine the wall-clock time grows with the other load and the CPU time
much less: compare CPU times across machines or busy hours, wall-clock times only within one run.

    .venv/bin/python benchmarks/dev_loop.py                    # both, cold and warm (about 8 minutes, 2 CPUs)
    .venv/bin/python benchmarks/dev_loop.py --targets synth    # make synth only (about a minute)
    .venv/bin/python benchmarks/dev_loop.py --serial           # also make test in one process, the baseline
    .venv/bin/python benchmarks/dev_loop.py --repo ../before   # another checkout (an earlier commit), same machine
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SLOWEST = 15
REPOSITORY = ROOT  # --repo: another checkout, to time a commit before a change on the same machine


@dataclass(frozen=True)
class Run:
    label: str
    wall: float
    cpu: float
    output: str


def cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def make(label: str, target: str, variables: list[str], environment: dict[str, str], log: Path) -> Run:
    """`make <target>` as a user runs it, in the checkout measured; exits with its output when it fails."""
    command = ["make", "--no-print-directory", "-C", str(REPOSITORY), target, *variables]
    cpu, start = cpu_of_children(), time.perf_counter()
    with log.open("w") as out:
        result = subprocess.run(  # noqa: S603 (make, with the script's own arguments)
            command,
            cwd=REPOSITORY,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "MAKEFLAGS": "", **environment},
            check=False,
        )
    run = Run(label, time.perf_counter() - start, cpu_of_children() - cpu, log.read_text())
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}):\n{run.output[-5000:]}")
    return run


def synth_runs(scratch: Path) -> list[Run]:
    outdir = [f"CDK_OUT={scratch / 'cdk.out'}"]
    return [
        make("make synth, cold (empty cdk.out)", "synth", outdir, {}, scratch / "synth-cold.log"),
        make("make synth, warm (unchanged templates)", "synth", outdir, {}, scratch / "synth-warm.log"),
    ]


def test_runs(scratch: Path, workers: str, serial: bool) -> list[Run]:
    caches = scratch / "caches"
    environment = {
        "MYPY_CACHE_DIR": str(caches / "mypy"),
        "RUFF_CACHE_DIR": str(caches / "ruff"),
        "PYTEST_ADDOPTS": f"-o cache_dir={caches / 'pytest'} --durations={SLOWEST}",
    }
    variables = [f"TEST_WORKERS={workers}"]
    runs = [
        make("make test, cold (no caches)", "test", variables, environment, scratch / "test-cold.log"),
        make("make test, warm", "test", variables, environment, scratch / "test-warm.log"),
    ]
    if serial:
        serial_log = scratch / "test-serial.log"
        runs.append(make("make test, warm, one process", "test", ["TEST_WORKERS=0"], environment, serial_log))
    return runs


def slowest_tests(output: str) -> list[str]:
    """The lines of pytest's --durations report."""
    match = re.search(r"=+ slowest \d+ durations =+\n(.*?)\n(?:=|\n)", output, re.DOTALL)
    return match.group(1).splitlines() if match else []


def summary(output: str) -> str:
    lines = [line for line in output.splitlines() if re.search(r"\d+ passed", line)]
    return lines[-1].strip("= ") if lines else ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--targets", nargs="+", choices=("synth", "test"), default=["synth", "test"])
    parser.add_argument("--workers", default="auto", help="TEST_WORKERS for make test (default: auto, one per CPU)")
    parser.add_argument("--serial", action="store_true", help="also time a warm make test in one process")
    parser.add_argument("--repo", type=Path, default=ROOT, help="the checkout to time (default: this one)")
    arguments = parser.parse_args()
    global REPOSITORY
    REPOSITORY = arguments.repo.resolve()

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    machine = platform.processor() or platform.machine()
    print(f"{REPOSITORY}: {machine}, {cpus} CPUs, Python {platform.python_version()}")
    print(f"load average before: {os.getloadavg()[0]:.2f} (1 min)")
    with tempfile.TemporaryDirectory(prefix="dev-loop-") as folder:
        scratch = Path(folder)
        runs = []
        if "synth" in arguments.targets:
            runs += synth_runs(scratch)
        if "test" in arguments.targets:
            runs += test_runs(scratch, arguments.workers, arguments.serial)
    print(f"load average after: {os.getloadavg()[0]:.2f} (1 min)\n")
    width = max(len(run.label) for run in runs)
    print(f"{'':{width}}  {'wall':>8}  {'CPU':>8}")
    for run in runs:
        print(f"{run.label:{width}}  {run.wall:7.1f}s  {run.cpu:7.1f}s  {summary(run.output)}")
    warm_tests = [run for run in runs if run.label == "make test, warm"]
    if warm_tests:
        print(f"\nslowest {SLOWEST} tests of the warm make test (each test's own time; setup includes its fixtures):")
        for line in slowest_tests(warm_tests[0].output):
            print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
