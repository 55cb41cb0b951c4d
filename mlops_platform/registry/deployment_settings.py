"""The deployment workflow's input and settings: a promotion request, and the function's environment.

Each state of the workflow (``deployment``) passes ``{"step", "execution", "request"}``; the request is what
the approval function (``approval``) started the execution with. A malformed one is ``InvalidRequest``,
an error Step Functions names by its class.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlops_platform.environment import read_settings

REQUEST_FIELDS = ("package_arn", "endpoint", "variant", "pointer", "model_data", "tenant", "model")


class InvalidRequest(Exception):
    """The step's input is not a promotion request (Step Functions sees the class name)."""


@dataclass(frozen=True)
class Request:
    package_arn: str
    endpoint: str
    variant: str
    pointer: str
    model_data: str
    tenant: str
    model: str
    share: float | None

    @classmethod
    def parse(cls, value: Any) -> Request:
        if not isinstance(value, dict):
            raise InvalidRequest(f"the request must be an object, not {type(value).__name__}")
        missing = [name for name in REQUEST_FIELDS if not isinstance(value.get(name), str) or not value[name]]
        if missing:
            raise InvalidRequest(f"the request lacks {', '.join(missing)}")
        share = value.get("share")
        return cls(
            **{name: value[name] for name in REQUEST_FIELDS},
            share=float(share) if isinstance(share, int | float) and not isinstance(share, bool) else None,
        )


@dataclass(frozen=True)
class Settings:
    environment: str
    prefix: str
    stack_name: str
    ledger_table: str
    topic_arn: str
    lock_seconds: int

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Settings:
        return read_settings(cls, environ, names={"prefix": "PACKAGE_GROUP_PREFIX", "stack_name": "SERVING_STACK_NAME"})

    def endpoint_name(self, key: str) -> str:
        """``<project>-<env>-<key>``: the endpoint's contract name (config/naming.py, ``Names.resource``)."""
        return f"{self.prefix}-{key}"


def change_set_name(execution: str) -> str:
    """The change set the build creates: starts with a letter, at most 128 of ``[A-Za-z0-9-]``."""
    return f"promotion-{execution}"[:128]
