"""Per-stack fixtures over the session's one synth of every environment (``synthesized``, tests/conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Template

ENVIRONMENTS = ("dev", "staging", "prod")
STACKS = ("foundation", "ingestion", "training", "serving", "monitoring")


@pytest.fixture(scope="module", params=ENVIRONMENTS)
def environment(request) -> str:
    """Each test of a stack module runs once per environment."""
    return request.param


@pytest.fixture(scope="module")
def settings(platform_config, environment):
    return platform_config.environment(environment)


@pytest.fixture(scope="module")
def template(request, synthesized, environment) -> Template:
    """The template of the stack the test module names in its STACK constant."""
    return synthesized.template(environment, request.module.STACK)


@pytest.fixture(scope="module")
def resources(request, synthesized, environment) -> dict[str, Any]:
    return synthesized.template_json(environment, request.module.STACK)["Resources"]
