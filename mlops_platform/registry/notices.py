"""What the registry tells people (SNS notices) and operators (logs and metrics), without owning either.

``Recorder`` is what every maker of decisions (``approval.Approvals``, ``deployment.Steps``) holds: the
ledger's and the topic's clients, a clock, a log and a metric counter. The Lambda handlers plug in their
Powertools ``Logger`` and a counter over their ``Metrics``; the commands use the standard library's
logging and count nothing. So this package runs wherever boto3 does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol, Self

from mlops_platform.registry.ledger import utc_now

SUBJECT_MAX = 100  # SNS: at most 100 printable ASCII characters, no line breaks

Count = Callable[[str], None]
"""Adds one to the named metric (a handler's Powertools ``Metrics``)."""


class Log(Protocol):
    """What the registry logs with: the standard library's Logger and Powertools' Logger both fit."""

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None: ...

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None: ...


def count_nothing(name: str) -> None:
    """The default counter: outside Lambda nothing collects metrics."""


def default_log(name: str) -> Log:
    return logging.getLogger(name)


def subject(prefix: str, text: str) -> str:
    """``[<prefix>] <text>`` as SNS takes a subject: one line of ASCII, at most ``SUBJECT_MAX`` characters."""
    line = f"[{prefix}] {text}".replace("\n", " ")
    line = line.encode("ascii", "replace").decode("ascii")
    return line if len(line) <= SUBJECT_MAX else line[: SUBJECT_MAX - 3] + "..."


def publish(sns: Any, topic_arn: str, prefix: str, title: str, lines: Sequence[str]) -> None:
    sns.publish(TopicArn=topic_arn, Subject=subject(prefix, title), Message="\n".join(lines))


@dataclass(kw_only=True)
class Recorder:
    """What every maker of decisions holds: the ledger's and the topic's clients, a clock, a log and a counter.

    Subclasses add their clients (``CLIENTS``, boto3 service names as field names) and settings.
    """

    CLIENTS: ClassVar[tuple[str, ...]] = ("dynamodb", "sns")

    dynamodb: Any
    sns: Any
    clock: Callable[[], datetime] = utc_now
    log: Log = field(default_factory=lambda: default_log("mlops_platform.registry"))
    count: Count = count_nothing

    @classmethod
    def with_clients(cls, **fields: Any) -> Self:
        """One boto3 client per name in ``CLIENTS``, in the region of the environment (a Lambda function's)."""
        import boto3  # only here: tests and commands pass their own clients

        return cls(**{name: boto3.client(name) for name in cls.CLIENTS}, **fields)
