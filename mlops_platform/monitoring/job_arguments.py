"""The monitor job's ContainerArguments, checked, and the window they describe.

``job``'s docstring describes each argument and the window; a bad argument is a ``UsageError``
naming it (the job exits 2).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mlops_platform.naming import NAME_PATTERN, SAGEMAKER_NAME_PATTERN

MAX_WINDOW_MINUTES = 7 * 24 * 60
MAX_LAG_MINUTES = 24 * 60
# Names as SageMaker (endpoints, variants) and config/tenants.py (tenants, models) allow them.
ENDPOINT_NAME = VARIANT_NAME = SAGEMAKER_NAME_PATTERN
TENANT_NAME = NAME_PATTERN
S3_URI = re.compile(r"s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<key>.*)")


class UsageError(Exception):
    """A bad argument, in one line that names it."""


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class Arguments:
    environment: str
    tenant: str
    model: str
    endpoint: str
    capture: S3Location  # a prefix, ending in /
    scheduled_time: datetime
    window_start: datetime
    window_end: datetime  # scheduled_time less the lag
    pointers: tuple[tuple[str, str], ...]  # (variant, SSM parameter name), sorted by variant
    example_baselines: tuple[tuple[str, S3Location], ...]  # (variant, or "" for every other variant; location)
    settings: S3Location | None
    report: S3Location  # a prefix, ending in /
    metrics_namespace: str
    event_source: str
    labels: S3Location | None  # a prefix, ending in /

    @property
    def window_minutes(self) -> int:
        return int((self.window_end - self.window_start).total_seconds() // 60)

    @property
    def lag_minutes(self) -> int:
        return int((self.scheduled_time - self.window_end).total_seconds() // 60)

    @property
    def dimensions(self) -> dict[str, str]:
        return {"Endpoint": self.endpoint, "Tenant": self.tenant, "Model": self.model}

    def example_baseline(self, variant: str) -> S3Location | None:
        """The baseline of the example model the variant serves while its pointer holds the sentinel."""
        baselines = dict(self.example_baselines)
        return baselines.get(variant) or baselines.get("")

    def report_key(self, name: str) -> S3Location:
        return S3Location(self.report.bucket, f"{self.report.key}{self.window_end:%Y-%m-%dT%H-%M}/{name}")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would print its usage and exit 2 itself
        raise UsageError(message)


def parse_arguments(argv: Sequence[str]) -> Arguments:
    parser = _Parser(
        prog="monitor", description="Compare an endpoint's captured traffic with its baselines.", allow_abbrev=False
    )
    for name in (
        "--environment",
        "--tenant",
        "--model",
        "--endpoint-name",
        "--capture-uri",
        "--scheduled-time",
        "--window-minutes",
        "--report-uri",
        "--metrics-namespace",
        "--event-source",
    ):
        parser.add_argument(name, required=True)
    parser.add_argument("--pointer", action="append", required=True, help="Variant=<SSM parameter name>, repeated")
    parser.add_argument(
        "--example-baseline",
        action="append",
        required=True,
        help="[Variant=]<S3 URI of an example model's baseline.json>, repeated; without a variant: every other one",
    )
    parser.add_argument("--lag-minutes", default="0", help="how long before the scheduled time the window ends")
    parser.add_argument("--settings", help="the settings document's S3 URI")
    parser.add_argument("--labels-uri")
    parsed = parser.parse_args(list(argv))

    for argument, value in (
        ("--environment", parsed.environment),
        ("--tenant", parsed.tenant),
        ("--model", parsed.model),
    ):
        _check(TENANT_NAME.fullmatch(value), argument, value, "lowercase letters, digits and hyphens")
    _check(
        ENDPOINT_NAME.fullmatch(parsed.endpoint_name),
        "--endpoint-name",
        parsed.endpoint_name,
        "a SageMaker endpoint name",
    )
    _check(parsed.metrics_namespace.strip(), "--metrics-namespace", parsed.metrics_namespace, "a CloudWatch namespace")
    _check(parsed.event_source.strip(), "--event-source", parsed.event_source, "an event source")
    scheduled = _time(parsed.scheduled_time, "--scheduled-time")
    minutes, lag = parsed.window_minutes, parsed.lag_minutes
    _check(
        minutes.isdigit() and 1 <= int(minutes) <= MAX_WINDOW_MINUTES,
        "--window-minutes",
        minutes,
        f"a whole number from 1 to {MAX_WINDOW_MINUTES}",
    )
    _check(
        lag.isdigit() and int(lag) <= MAX_LAG_MINUTES,
        "--lag-minutes",
        lag,
        f"a whole number from 0 to {MAX_LAG_MINUTES}",
    )
    end = scheduled - timedelta(minutes=int(lag))
    settings = None if parsed.settings is None else _s3(parsed.settings, "--settings")
    _check(
        settings is None or (settings.key and not settings.key.endswith("/")),
        "--settings",
        parsed.settings,
        "the URI of a file",
    )
    return Arguments(
        environment=parsed.environment,
        tenant=parsed.tenant,
        model=parsed.model,
        endpoint=parsed.endpoint_name,
        capture=_s3(parsed.capture_uri, "--capture-uri", prefix=True),
        scheduled_time=scheduled,
        window_start=end - timedelta(minutes=int(minutes)),
        window_end=end,
        pointers=_pointers(parsed.pointer),
        example_baselines=_example_baselines(parsed.example_baseline),
        settings=settings,
        report=_s3(parsed.report_uri, "--report-uri", prefix=True),
        metrics_namespace=parsed.metrics_namespace,
        event_source=parsed.event_source,
        labels=None if parsed.labels_uri is None else _s3(parsed.labels_uri, "--labels-uri", prefix=True),
    )


def _check(condition: Any, argument: str, value: Any, allowed: str) -> None:
    if not condition:
        raise UsageError(f"argument {argument}: {value!r} is not allowed; allowed: {allowed}")


def _s3(value: str, argument: str, *, prefix: bool = False) -> S3Location:
    match = S3_URI.fullmatch(value)
    _check(match, argument, value, "an s3://bucket/key URI")
    assert match is not None
    key = match["key"]
    if prefix and key and not key.endswith("/"):
        key += "/"  # a prefix names a folder: capture/acme must not also list capture/acme-two
    return S3Location(match["bucket"], key)


def _time(value: str, argument: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"argument {argument}: {value!r} is not allowed; allowed: an ISO-8601 time such as 2026-11-24T23:00:00Z"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _pointers(values: list[str]) -> tuple[tuple[str, str], ...]:
    found: dict[str, str] = {}
    for value in values:
        variant, _, parameter = value.partition("=")
        _check(
            VARIANT_NAME.fullmatch(variant) and parameter.strip(),
            "--pointer",
            value,
            "Variant=<SSM parameter name>, such as Champion=/mlops/dev/models/acme/Champion",
        )
        _check(variant not in found, "--pointer", value, "each variant once")
        found[variant] = parameter
    return tuple(sorted(found.items()))


def _example_baselines(values: list[str]) -> tuple[tuple[str, S3Location], ...]:
    """``Variant=s3://...`` or a bare ``s3://...`` (every variant not named), each at most once."""
    found: dict[str, S3Location] = {}
    for value in values:
        head, _, tail = value.partition("=")
        # An S3 key may hold "=" (dt=...): only a variant name before the first "=" makes it the named form.
        variant, uri = (head, tail) if VARIANT_NAME.fullmatch(head) else ("", value)
        location = _s3(uri, "--example-baseline")
        _check(location.key and not location.key.endswith("/"), "--example-baseline", value, "the URI of a file")
        _check(variant not in found, "--example-baseline", value, "each variant once, and one without a variant")
        found[variant] = location
    return tuple(sorted(found.items()))
