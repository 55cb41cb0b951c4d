"""Make the suite independent of the machine it runs on.

Set before anything imports boto3 or a handler: a region and fake credentials (handlers build
clients at import), no shared AWS config, no instance metadata. pytest-socket (``--disable-socket``
in pyproject.toml) makes any test that would reach the network fail at once.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent

os.environ.update(
    {
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        # Powertools: metrics need a namespace; keep its own tracing off outside Lambda.
        "POWERTOOLS_METRICS_NAMESPACE": "mlops/test",
        "POWERTOOLS_TRACE_DISABLED": "true",
        # jsii runs the project's own Node 22, as `make` does.
        "PATH": f"{ROOT / 'node_modules' / '.bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    }
)
os.environ.pop("AWS_PROFILE", None)
# Importing handlers by path must not leave __pycache__ in lambda/ (the asset folders).
sys.dont_write_bytecode = True

# urllib3 probes for IPv6 support with a socket when first imported; import it here, before
# pytest-socket blocks sockets for each test, so the probe is not reported as a test using the network.
# The X-Ray SDK (Powertools' tracer, lambda/scoring) opens a UDP socket when first imported: same reason.
import aws_xray_sdk.core  # noqa: E402, F401
import urllib3  # noqa: E402, F401


def _parse_each_service_model_once() -> None:
    """Parse each of botocore's JSON files once per process, not once per boto3 session.

    moto gives every ``mock_aws()`` block a new default boto3 session, and a new session parses the
    service models again (megabytes of JSON for SageMaker): a third of a moto test's time. botocore
    already hands one parsed model to every client of a session and never changes it, apart from
    merging its own extras files, which gives the same model each time.
    """
    from botocore.loaders import JSONFileLoader

    load_file = JSONFileLoader.load_file
    parsed: dict[str, object] = {}

    def load_file_once(self: JSONFileLoader, file_path: str) -> object:
        if file_path not in parsed:
            parsed[file_path] = load_file(self, file_path)
        return parsed[file_path]

    JSONFileLoader.load_file = load_file_once  # type: ignore[method-assign]


_parse_each_service_model_once()

_module_numbers = itertools.count()


def load_handler(function: str, module: str = "handler") -> ModuleType:
    """Import ``lambda/<function>/<module>.py`` under a unique module name, reading the current environment.

    The function's folder is on the path while it is imported, as Lambda puts it there: a handler may import
    the modules beside it.
    """
    folder = ROOT / "lambda" / function
    path = folder / f"{module}.py"
    spec = importlib.util.spec_from_file_location(f"lambda_{function}_{module}_{next(_module_numbers)}", path)
    assert spec is not None, path
    assert spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look modules up by name
    sys.path.insert(0, str(folder))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
    return module


# Run in a fresh interpreter: imports ``lambda/<function>/<module>.py`` as Lambda does (the function's folder and,
# beside it in the asset, mlops_platform on the path) and prints the modules that the import loaded.
_IMPORT_PROBE = """
import importlib.util, json, sys
root, function, module = sys.argv[1:4]
folder = f"{root}/lambda/{function}"
sys.path[:0] = [folder, root]
before = set(sys.modules)
spec = importlib.util.spec_from_file_location(module, f"{folder}/{module}.py")
loaded = importlib.util.module_from_spec(spec)
sys.modules[module] = loaded
spec.loader.exec_module(loaded)
added = sorted(set(sys.modules) - before)
print(json.dumps({name: getattr(sys.modules.get(name), "__file__", None) for name in added}))
"""


def imported_modules(function: str, module: str = "handler", **environment: str) -> dict[str, str | None]:
    """The modules (name: file, None for a built-in) that importing ``lambda/<function>/<module>.py`` loads in a
    fresh interpreter, with ``environment`` added to this one's: what the function imports at its cold start."""
    probe = [sys.executable, "-I", "-B", "-c", _IMPORT_PROBE, str(ROOT), function, module]
    result = subprocess.run(probe, capture_output=True, text=True, env={**os.environ, **environment}, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def mlops(argv: list[str], **seams: object) -> int:
    """``mlops <argv>`` through the command's own ``main`` (parsing, one-sentence errors, exit status), with
    ``seams`` (clients, environ, sleep, config, ...) handed to the subcommand's ``run`` as its tests inject them."""
    import functools
    from unittest import mock

    from mlops_platform import cli

    module = importlib.import_module(f"mlops_platform.cli.{cli.COMMANDS[argv[0]]}")
    with mock.patch.object(module, "run", functools.partial(module.run, **seams)):
        return cli.main(argv)


def make_synth(*variables: str, **environment: str) -> subprocess.CompletedProcess[str]:
    """Run `make synth VAR=value ...` as a user would, in its own process (pytest-socket does not reach it)."""
    return subprocess.run(
        ["make", "--no-print-directory", "synth", *variables],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "MAKEFLAGS": "", **environment},
        check=False,
    )


@pytest.fixture(scope="session", autouse=True)
def policy_gate_cache(request, tmp_path_factory) -> Iterator[Path]:
    """Where every policy gate the suite runs records the templates that linted clean (scripts/policy_gate.py).

    The gate runs over several assemblies (`make synth` twice, the planted violation, the in-process
    synths) whose templates are mostly the same bytes, and over the same bytes again next run. A
    verdict is keyed by the template's bytes, its region and the cfn-lint version, so the suite keeps
    them in pytest's cache folder as `make synth` keeps them in cdk.out: a changed template is linted,
    an unchanged one is not linted twice. A fresh clone (CI) lints every template. Without pytest's
    cache (-p no:cacheprovider) the record lasts one run, shared by xdist's workers.
    """
    cache_provider = getattr(request.config, "cache", None)
    if cache_provider is not None:
        cache = cache_provider.mkdir("policy-gate")
    else:
        base = tmp_path_factory.getbasetemp()
        cache = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "policy-gate"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("POLICY_GATE_CACHE", str(cache))
        yield cache


@pytest.fixture(scope="session")
def platform_config():
    from config import load_config

    return load_config(ROOT / "config")


@pytest.fixture(scope="session")
def synthesized(platform_config, tmp_path_factory):
    """Every environment, synthesized once per session (imported here lazily: unit tests need no Node)."""
    from tests.synth import synthesize

    return synthesize(platform_config, tmp_path_factory.mktemp("cdk.out"))


def create_ledger_table(name: str, region: str = "eu-west-1") -> None:
    """The run ledger as Foundation declares it (pk/sk strings, the ByTenant index), in moto."""
    import boto3

    boto3.client("dynamodb", region_name=region).create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"} for key in ("pk", "sk", "gsi1pk", "gsi1sk")],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "ByTenant",
                "KeySchema": [
                    {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                    {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )


# -- pytest-xdist: `make test` runs the suite in one worker per CPU, a module at a time -----------


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, start the modules that hold `slow` tests first, the slowest first.

    pyproject.toml hands xdist whole modules (--dist=loadscope), so a module's fixtures (a synth of
    its own, `make synth` run twice) are built once, in the order collected (--no-loadscope-reorder):
    a long module left to the end would finish alone while the other workers idle. Each module's
    tests keep their order; every worker collects the same order, as xdist requires.
    """
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    slow_tests: dict[Path, int] = {}
    for item in items:
        if item.get_closest_marker("slow"):
            slow_tests[item.path] = slow_tests.get(item.path, 0) + 1
    items.sort(key=lambda item: -slow_tests.get(item.path, 0))  # stable
