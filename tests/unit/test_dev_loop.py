"""The fast loop's machinery: test order under xdist, botocore's models parsed once, the benchmark's report."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from moto import mock_aws

from tests import conftest
from tests.conftest import ROOT


def fake_item(module: str, name: str, slow: bool = False) -> SimpleNamespace:
    return SimpleNamespace(
        path=Path(module),
        nodeid=f"{module}::{name}",
        get_closest_marker=lambda marker: object() if slow and marker == "slow" else None,
    )


def collected_order(items: list[SimpleNamespace]) -> list[str]:
    conftest.pytest_collection_modifyitems(config=None, items=items)  # type: ignore[arg-type]
    return [item.nodeid for item in items]


def test_under_xdist_the_modules_with_the_most_slow_tests_start_first_each_in_its_own_order(monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    items = [
        fake_item("a.py", "quick"),
        fake_item("b.py", "one"),
        fake_item("b.py", "slow", slow=True),
        fake_item("c.py", "slow_1", slow=True),
        fake_item("c.py", "between"),
        fake_item("c.py", "slow_2", slow=True),
        fake_item("d.py", "quick"),
    ]

    assert collected_order(items) == [
        "c.py::slow_1",
        "c.py::between",
        "c.py::slow_2",
        "b.py::one",
        "b.py::slow",
        "a.py::quick",
        "d.py::quick",
    ]


def test_without_xdist_tests_run_in_file_order(monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    items = [fake_item("a.py", "quick"), fake_item("b.py", "slow", slow=True)]

    assert collected_order(items) == ["a.py::quick", "b.py::slow"]


def test_every_mock_aws_block_reuses_the_service_models_parsed_before():
    """moto starts each block with a new default session; the model it reads is the one already parsed."""
    models = []
    for _ in range(2):
        with mock_aws():
            client = boto3.client("sagemaker", region_name="eu-west-1")
            models.append(client.meta.service_model)
            assert client.list_model_package_groups()["ModelPackageGroupSummaryList"] == []

    assert models[0] is not models[1]  # two sessions, two clients
    assert models[0]._service_description is models[1]._service_description


@pytest.fixture(scope="module")
def dev_loop():
    spec = importlib.util.spec_from_file_location("dev_loop", ROOT / "benchmarks" / "dev_loop.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


PYTEST_OUTPUT = """\
........                                                                 [100%]
============================= slowest 3 durations ==============================
12.02s setup    tests/infra/test_synth.py::test_make_synth_writes_every_environment_and_passes_the_policy_gate
3.10s call     tests/infra/test_policy.py::test_a_planted_violation_makes_make_synth_fail
0.50s call     tests/unit/test_config.py::test_make_synth_stops_on_a_bad_setting_with_its_sentence
================= 1556 passed, 1 warning in 151.20s (0:02:31) ==================
"""


def test_the_benchmark_reads_pytests_slowest_tests_and_summary(dev_loop):
    slowest = dev_loop.slowest_tests(PYTEST_OUTPUT)

    assert len(slowest) == 3
    assert slowest[0].startswith("12.02s setup    tests/infra/test_synth.py::")
    assert dev_loop.summary(PYTEST_OUTPUT) == "1556 passed, 1 warning in 151.20s (0:02:31)"
    assert dev_loop.slowest_tests("no report") == []
