"""What the retrain trigger decides about: requests, ignored and malformed events, decisions, execution names."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlops_platform.aws import iso
from mlops_platform.naming import NAME_PATTERN

ALL_MODELS = "all"
# Evidence stays well under DynamoDB's 400 KB item limit however large the burst.
MAX_EVIDENCE_KEYS = 20
MAX_TEXT = 1024

# Trigger kinds: recorded in the ledger.
DRIFT_ALARM = "drift-alarm"
DRIFT_EVENT = "drift-event"
NEW_DATA = "new-data"
PACKAGE_DECISION = "package-decision"
# The cause each kind names in the execution name: one drift monitor run publishes both DriftDetected (the
# alarm) and a Drift Summary, and the two must ask for the same execution.
DRIFT = "drift"
CAUSES = {DRIFT_ALARM: DRIFT, DRIFT_EVENT: DRIFT, NEW_DATA: NEW_DATA}

# Decisions: part of the ledger's sort key.
STARTED = "started"
SKIPPED_DUPLICATE = "skipped-duplicate"
SKIPPED_RUNNING = "skipped-running"
SKIPPED_COOLDOWN = "skipped-cooldown"
SKIPPED_AWAITING_CANDIDATE = "skipped-awaiting-candidate"
DEFERRED = "deferred"
RUN_ENDED = "run-ended"
CANDIDATE_DECIDED = "candidate-decided"
CANDIDATE_EXPIRED = "candidate-expired"
IGNORED = "ignored"
REJECTED = "rejected"
# One metric per decision (mlops_constructs/retrain_trigger.py, DECISION_METRICS: the dashboard graphs them).
METRICS = {
    STARTED: "RetrainingStarted",
    SKIPPED_DUPLICATE: "RetrainingDuplicates",
    SKIPPED_RUNNING: "RetrainingRunningSkips",
    SKIPPED_COOLDOWN: "RetrainingCooldownSkips",
    SKIPPED_AWAITING_CANDIDATE: "RetrainingAwaitingCandidate",
    DEFERRED: "RetrainingDeferred",
    RUN_ENDED: "RetrainingRunsEnded",
    CANDIDATE_DECIDED: "RetrainingCandidatesDecided",
    CANDIDATE_EXPIRED: "RetrainingCandidatesExpired",
    IGNORED: "TriggerEventsIgnored",
    REJECTED: "TriggerEventsRejected",
}


class Malformed(Exception):
    """An event that no retry can act on; ``reason`` is one of the rejection reasons of events.py."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class StateKeptChanging(Exception):
    """The tenant's state changed under every attempt; raised so the event is retried."""


@dataclass(frozen=True)
class Request:
    """One reason to retrain a tenant, with what shows it."""

    tenant: str
    model: str
    trigger: str
    evidence: dict[str, Any]


@dataclass(frozen=True)
class Ignored:
    """An event understood and deliberately left alone; recorded so "why did nothing run" has an answer."""

    trigger: str
    reason: str
    detail: str
    tenant: str | None
    evidence: dict[str, Any]


@dataclass(frozen=True)
class PackageDecision:
    """A model package of this environment approved or rejected (SageMaker Model Package State Change)."""

    package_arn: str
    group: str
    status: str
    tenants: tuple[str, ...]  # the tenants the group's name may belong to (names may hold hyphens)
    evidence: dict[str, Any]


@dataclass(frozen=True)
class Arrival:
    """One object under ``raw/<tenant>/<dataset>/``."""

    tenant: str
    dataset: str
    key: str
    event_id: str | None


@dataclass(frozen=True)
class Sweep:
    """The scheduled rule's tick: start the runs of kept uploads."""

    event_id: str | None


@dataclass(frozen=True)
class Decision:
    tenant: str | None
    trigger: str
    decision: str
    reason: str
    decided_at: str
    model: str | None = None
    execution_name: str | None = None
    execution_arn: str | None = None
    window: int | None = None
    evidence: dict[str, Any] = field(default_factory=dict)


def window_of(now: datetime, cooldown_seconds: int) -> int:
    return math.floor(now.timestamp()) // cooldown_seconds


def execution_name(tenant: str, model: str, trigger: str, window: int) -> str:
    """``<tenant[:24]>-<cause>-<model[:16]>-w<window>-<h>``, ``cause`` the trigger's entry in ``CAUSES`` (both
    drift kinds give ``drift``), ``h`` the first 8 hex digits of sha256 of the untruncated parts: readable,
    unique, at most 80 characters of ``[a-z0-9-]`` as Step Functions allows, and a valid ``run_id`` (the
    execution's name) for the plan."""
    cause = CAUSES[trigger]
    digest = hashlib.sha256(f"{tenant}\n{model}\n{cause}\n{window}".encode()).hexdigest()[:8]
    return f"{tenant[:24].rstrip('-')}-{cause}-{model[:16].rstrip('-')}-w{window}-{digest}"


def group_tenants(group: str, prefix: str) -> tuple[str, ...]:
    """Every tenant that ``<prefix>-<tenant>-<model>`` (lambda/evaluate, ``group_name``) can name, shortest first."""
    rest = group.removeprefix(f"{prefix}-") if group.startswith(f"{prefix}-") else ""
    parts = rest.split("-")
    candidates = ("-".join(parts[:index]) for index in range(1, len(parts)))
    return tuple(tenant for tenant in candidates if NAME_PATTERN.fullmatch(tenant))


def iso_of(seconds: Any) -> str:
    return iso(datetime.fromtimestamp(int(seconds), UTC))


def clipped(value: Any) -> Any:
    return value[:MAX_TEXT] if isinstance(value, str) else None
