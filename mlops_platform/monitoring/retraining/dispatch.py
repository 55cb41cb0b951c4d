"""One invocation of the retrain trigger, decided: a directly delivered EventBridge event, or an SQS batch of
S3 events grouped so that a tenant's burst of uploads is one request."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from mlops_platform.monitoring.retraining.configs import PublishedConfigs, Unpublished
from mlops_platform.monitoring.retraining.events import (
    NOT_TRAINED_ON,
    UNKNOWN_TENANT,
    Settings,
    parse_event,
    parse_object_created,
    rejection_of,
)
from mlops_platform.monitoring.retraining.model import (
    ALL_MODELS,
    IGNORED,
    MAX_EVIDENCE_KEYS,
    MAX_TEXT,
    NEW_DATA,
    REJECTED,
    STARTED,
    Arrival,
    Decision,
    Ignored,
    Malformed,
    PackageDecision,
    Request,
    Sweep,
)
from mlops_platform.monitoring.retraining.trigger import Trigger
from mlops_platform.naming import UNROUTED


def handle_event(trigger: Trigger, event: Any, settings: Settings) -> dict[str, Any]:
    """One directly delivered EventBridge event, decided and recorded."""
    try:
        parsed = parse_event(
            event,
            alarm_prefix=settings.alarm_prefix,
            monitoring_source=settings.monitoring_source,
            ignored_tenants=settings.ignored_tenants,
            group_prefix=settings.group_prefix,
        )
    except Malformed as problem:
        kind, evidence = rejection_of(event)
        return answer(trigger.reject(kind, problem, evidence))
    if isinstance(parsed, Sweep):
        started = trigger.sweep()
        return {"decision": "sweep", "started": [decision.execution_name for decision in started]}
    if isinstance(parsed, Ignored):
        return answer(trigger.ignore(parsed))
    if isinstance(parsed, PackageDecision):
        return answer(trigger.package_decided(parsed))
    requested = trigger.request(parsed)
    assert requested is not None  # only the sweep's requests may decide nothing
    return answer(requested)


def answer(decision: Decision) -> dict[str, Any]:
    return {"decision": decision.decision, "reason": decision.reason, "execution_name": decision.execution_name}


class Batch:
    """One SQS batch grouped before anything is decided, so that a tenant's burst is one request.

    Groups: the arrivals of one tenant; the ignored messages of one (reason, tenant); the rejected
    messages of one reason. The handler's BatchProcessor asks ``decide_message`` per message; the first message
    of a group decides for the whole group, and the others share its outcome, a failure included: a transient
    error reports only that group's messages back to SQS.
    """

    def __init__(
        self, trigger: Trigger, records: Iterable[dict[str, Any]], settings: Settings, configs: PublishedConfigs
    ):
        self.trigger = trigger
        self.configs = configs
        self.group_of: dict[str, tuple[str, ...]] = {}
        self.members: dict[tuple[str, ...], list[tuple[str, Arrival | Ignored | Malformed]]] = {}
        self.outcomes: dict[tuple[str, ...], Decision | Exception] = {}
        for record in records:
            message_id = str(record.get("messageId"))
            try:
                parsed: Arrival | Ignored | Malformed = parse_object_created(
                    str(record.get("body", "")),
                    bucket=settings.raw_bucket,
                    raw_prefix=settings.raw_prefix,
                    ignored_tenants=settings.ignored_tenants,
                    labels_dataset=settings.labels_dataset,
                )
            except Malformed as problem:
                parsed = problem
            if isinstance(parsed, Arrival):
                group: tuple[str, ...] = (STARTED, parsed.tenant)
            elif isinstance(parsed, Ignored):
                group = (IGNORED, parsed.reason.split(":")[0], parsed.tenant or UNROUTED)
            else:
                group = (REJECTED, parsed.reason)
            self.group_of[message_id] = group
            self.members.setdefault(group, []).append((message_id, parsed))

    def decide_message(self, message_id: str) -> str:
        """The decision of the message's group, taken once; raises the group's failure."""
        group = self.group_of[message_id]
        if group not in self.outcomes:
            try:
                self.outcomes[group] = self.decide(group)
            except Exception as error:  # shared by the group's messages, each reported back
                self.outcomes[group] = error
        outcome = self.outcomes[group]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome.decision

    def decide(self, group: tuple[str, ...]) -> Decision:
        members = self.members[group]
        message_ids = [message_id for message_id, _ in members][:MAX_EVIDENCE_KEYS]
        if group[0] == STARTED:
            return self.decide_arrivals([parsed for _, parsed in members if isinstance(parsed, Arrival)], message_ids)
        if group[0] == IGNORED:
            ignored = [parsed for _, parsed in members if isinstance(parsed, Ignored)]
            first = ignored[0]
            evidence = {
                "object_count": len(ignored),
                "keys": sorted({key for one in ignored for key in one.evidence["keys"]})[:MAX_EVIDENCE_KEYS],
                "event_ids": sorted({i for one in ignored for i in one.evidence["event_ids"] if i})[:MAX_EVIDENCE_KEYS],
                "message_ids": message_ids,
            }
            return self.trigger.ignore(Ignored(NEW_DATA, first.reason, first.detail, first.tenant, evidence))
        problems = [parsed for _, parsed in members if isinstance(parsed, Malformed)]
        evidence = {"message_count": len(problems), "message_ids": message_ids}
        return self.trigger.reject(NEW_DATA, problems[0], evidence)

    def decide_arrivals(self, arrivals: list[Arrival], message_ids: list[str]) -> Decision:
        """A tenant's uploads: those of the datasets it trains on make one request, the others are recorded."""
        tenant = arrivals[0].tenant
        try:
            trained = self.configs.training_datasets(tenant)
        except Unpublished as unpublished:
            return self.trigger.ignore(
                Ignored(NEW_DATA, UNKNOWN_TENANT, str(unpublished), tenant, arrivals_evidence(arrivals, message_ids))
            )
        others = [arrival for arrival in arrivals if arrival.dataset not in trained]
        mine = [arrival for arrival in arrivals if arrival.dataset in trained]
        ignored = None
        if others:
            detail = f"tenant {tenant!r} trains on {sorted(trained)} only"
            ignored = self.trigger.ignore(
                Ignored(NEW_DATA, NOT_TRAINED_ON, detail, tenant, arrivals_evidence(others, message_ids))
            )
        if not mine:
            assert ignored is not None
            return ignored
        decision = self.trigger.request(Request(tenant, ALL_MODELS, NEW_DATA, arrivals_evidence(mine, message_ids)))
        assert decision is not None  # only the sweep's requests may decide nothing
        return decision


def arrivals_evidence(arrivals: list[Arrival], message_ids: list[str]) -> dict[str, Any]:
    # What these uploads are, however many: a redelivered batch is the same batch, new uploads are another.
    identities = sorted(arrival.event_id or arrival.key for arrival in arrivals)
    return {
        "batch": hashlib.sha256("\n".join(identities).encode()).hexdigest()[:16],
        "object_count": len(arrivals),
        "keys": sorted({arrival.key[:MAX_TEXT] for arrival in arrivals})[:MAX_EVIDENCE_KEYS],
        "datasets": sorted({arrival.dataset for arrival in arrivals}),
        "event_ids": sorted({arrival.event_id for arrival in arrivals if arrival.event_id})[:MAX_EVIDENCE_KEYS],
        "message_ids": message_ids,
    }
