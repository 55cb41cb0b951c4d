"""The retrain trigger's decisions: start a tenant's run, or record why not; end runs; release candidates.

What a request does is decided on the tenant's state item (state.py) with one conditional write, and every
decision is recorded in the run ledger (records.py). The lock is released when the run is seen ended
(``DescribeExecution``), by whichever invocation next finds it held. Releasing reads the run's ``PACKAGE#``
records in the ledger, adds those left for manual approval to the hold, and only then asks SageMaker whether
each is still pending: a decision taken while the run was still going (its batch predictions run after
registration) is not missed, whichever comes first.

Execution names stay deterministic (tenant, model, cause, cooldown window), so Step Functions' name check
still dedupes a start that two invocations race to (``ExecutionAlreadyExists``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from mlops_platform.aws import Log, epoch, error_code, execution_arn, iso, utc_now
from mlops_platform.monitoring.retraining.model import (
    ALL_MODELS,
    CANDIDATE_DECIDED,
    CANDIDATE_EXPIRED,
    CAUSES,
    DEFERRED,
    DRIFT,
    IGNORED,
    MAX_EVIDENCE_KEYS,
    MAX_TEXT,
    NEW_DATA,
    PACKAGE_DECISION,
    REJECTED,
    RUN_ENDED,
    SKIPPED_AWAITING_CANDIDATE,
    SKIPPED_COOLDOWN,
    SKIPPED_DUPLICATE,
    SKIPPED_RUNNING,
    STARTED,
    Decision,
    Ignored,
    Malformed,
    PackageDecision,
    Request,
    StateKeptChanging,
    execution_name,
    iso_of,
    window_of,
)
from mlops_platform.monitoring.retraining.records import PENDING_APPROVAL, DecisionLedger
from mlops_platform.monitoring.retraining.state import (
    AWAITING,
    DUPLICATE,
    RUNNING,
    Blocked,
    TenantState,
    blocker,
)
from mlops_platform.naming import NAME_PATTERN

# DescribeExecution statuses of a run that may still train (a redrive is about to run it again).
LIVE_STATUSES = frozenset({"RUNNING", "PENDING_REDRIVE"})
# DescribeExecution is eventually consistent: a run started this recently may not be visible yet.
# https://docs.aws.amazon.com/step-functions/latest/apireference/API_DescribeExecution.html
START_GRACE_SECONDS = 900
NOT_STARTED = "NOT_STARTED"
# Conditional writes that lost to another writer are tried again, with the item's new state, this often.
MAX_ATTEMPTS = 4
SWEEP_LIMIT = 100  # tenants a sweep starts at most; the next sweep takes the rest


@dataclass
class Trigger:
    """Decides, starts and records; raises only on AWS failures, so a retry repeats a harmless decision.

    ``logger``: the handler's Powertools Logger in Lambda; ``on_record``: called with every decision recorded
    (the handler counts its metric).
    """

    dynamodb: Any
    stepfunctions: Any
    sagemaker: Any
    _: KW_ONLY
    ledger_table: str
    state_machine_arn: str
    cooldown_seconds: int
    candidate_expiry_seconds: int
    pending_index: str = "ByTenant"
    clock: Callable[[], datetime] = utc_now
    logger: Log = field(default_factory=lambda: logging.getLogger(__name__))
    on_record: Callable[[Decision], None] | None = None
    state: TenantState = field(init=False)
    ledger: DecisionLedger = field(init=False)

    def __post_init__(self) -> None:
        if self.cooldown_seconds < 1:
            raise ValueError(f"COOLDOWN_SECONDS must be a whole number of seconds from 1, not {self.cooldown_seconds}")
        if self.candidate_expiry_seconds < 1:
            raise ValueError(
                "CANDIDATE_EXPIRY_SECONDS must be a whole number of seconds from 1, "
                f"not {self.candidate_expiry_seconds}"
            )
        self.state = TenantState(self.dynamodb, table=self.ledger_table, pending_index=self.pending_index)
        self.ledger = DecisionLedger(
            self.dynamodb, table=self.ledger_table, logger=self.logger, on_record=self.on_record
        )

    # Requests: drift, new data, uploads pending.

    def request(self, request: Request, *, pending: bool = False) -> Decision | None:
        """Start the tenant's run, or record why not. ``pending``: the sweep's start of uploads kept while the
        tenant was busy; it records nothing while the tenant still is (a sweep every few minutes would
        otherwise flood the ledger) and returns None."""
        for _ in range(MAX_ATTEMPTS):
            now = self.clock()
            name = execution_name(request.tenant, request.model, request.trigger, window_of(now, self.cooldown_seconds))
            outcome = self.state.acquire(request, name, now, cooldown_seconds=self.cooldown_seconds, pending=pending)
            if not isinstance(outcome, Blocked):
                return self._start(request, name, now, before=outcome)
            before = outcome.item
            why = blocker(before, request, name, now)
            if why == RUNNING:
                ended = self._run_ended(before, now)
                if ended is None:
                    pass  # still training: the lock holds
                else:
                    self._release(request.tenant, before, ended)
                    continue
            elif why is None:
                if pending and "pending_since" not in before:
                    return None  # another invocation started the uploads' run
                continue  # the state changed between the write and its answer: decide again
            if pending:
                return None
            decision = self._refused(request, name, now, before, why)
            if decision is not None:
                return decision
        raise StateKeptChanging(f"the retraining state of tenant {request.tenant!r} changed under {MAX_ATTEMPTS} tries")

    def _refused(self, request: Request, name: str, now: datetime, before: dict[str, Any], why: str) -> Decision | None:
        """Record why the request starts nothing; None if the tenant was freed meanwhile (decide again)."""
        common = self._common(request, name, now)
        if why == DUPLICATE:
            return self.record(
                Decision(
                    decision=SKIPPED_DUPLICATE,
                    reason="already started in this window",
                    execution_arn=before.get("run_arn") or self._execution_arn(name),
                    **common,
                )
            )
        if why == AWAITING:
            held = sorted(before.get("held_packages", ()))
            return self.record(
                Decision(
                    decision=SKIPPED_AWAITING_CANDIDATE,
                    reason=f"{len(held)} candidate(s) of {before.get('held_run')} await approval or rejection "
                    f"until {iso_of(before['held_until'])}",
                    **{**common, "evidence": {**request.evidence, "held_packages": held[:MAX_EVIDENCE_KEYS]}},
                )
            )
        if why == RUNNING:
            reason = f"{before['lock_run']} is running"
        else:
            reason = (
                f"{before.get('run_name')} started at {iso_of(before.get('run_started_at', 0))}, within the cooldown "
                f"of {self.cooldown_seconds} s (until {iso_of(before.get('cooldown_until', 0))})"
            )
        if request.trigger == NEW_DATA:
            if not self.state.defer(request, now):
                return None
            return self.record(
                Decision(
                    decision=DEFERRED,
                    reason=f"{reason}: the uploads start the next run once it has ended and the cooldown has passed",
                    **common,
                )
            )
        return self.record(
            Decision(decision=SKIPPED_RUNNING if why == RUNNING else SKIPPED_COOLDOWN, reason=reason, **common)
        )

    def _start(self, request: Request, name: str, now: datetime, *, before: dict[str, Any]) -> Decision:
        common = self._common(request, name, now)
        if CAUSES[request.trigger] == DRIFT and before.get("held_packages"):
            expired = sorted(before["held_packages"])
            self.record(
                Decision(
                    tenant=request.tenant,
                    trigger=request.trigger,
                    decision=CANDIDATE_EXPIRED,
                    reason=f"{len(expired)} candidate(s) of {before.get('held_run')} were neither approved nor "
                    f"rejected by {iso_of(before.get('held_until', 0))}: drift may start runs again",
                    decided_at=iso(now),
                    evidence={"held_packages": expired[:MAX_EVIDENCE_KEYS], "held_run": before.get("held_run")},
                )
            )
        if "pending_since" in before:
            common["evidence"] = {
                **request.evidence,
                "pending_since": iso_of(before["pending_since"]),
                "pending_objects": int(before.get("pending_objects", 0)),
                "pending_datasets": sorted(before.get("pending_datasets", ())),
            }
        try:
            response = self.stepfunctions.start_execution(
                stateMachineArn=self.state_machine_arn, name=name, input=json.dumps({"tenant": request.tenant})
            )
            arn, reason = response["executionArn"], request.trigger
        except ClientError as error:
            if error_code(error) != "ExecutionAlreadyExists":
                raise
            # Started by an earlier attempt whose records were lost, and closed since.
            arn, reason = self._execution_arn(name), "ExecutionAlreadyExists"
        claimed = self.state.claim(request.tenant, name, arn)
        if reason == request.trigger and not claimed:
            reason = "started concurrently"  # the same name's twin recorded the start
        return self.record(
            Decision(
                decision=STARTED if reason == request.trigger else SKIPPED_DUPLICATE,
                reason=reason,
                execution_arn=arn,
                **common,
            )
        )

    # The lock's run: ended or not, and what it left for review.

    def _run_ended(self, before: dict[str, Any], now: datetime) -> str | None:
        """The lock's run's final status, or None while it may still train."""
        name = before["lock_run"]
        try:
            status = self.stepfunctions.describe_execution(executionArn=self._execution_arn(name))["status"]
        except ClientError as error:
            if error_code(error) != "ExecutionDoesNotExist":
                raise
            # Locked, but the start failed and no retry came (or is not visible yet).
            started = int(before.get("run_started_at", 0))
            return NOT_STARTED if epoch(now) - started >= START_GRACE_SECONDS else None
        return None if status in LIVE_STATUSES else str(status)

    def _release(self, tenant: str, before: dict[str, Any], outcome: str) -> Decision | None:
        """Free the lock of an ended run and hold the candidates it left for manual approval."""
        name = before["lock_run"]
        now = self.clock()
        candidates = self.ledger.candidates(name)
        held_until = epoch(now) + self.candidate_expiry_seconds
        if not self.state.release(tenant, name, outcome, candidates, held_until=held_until):
            return None  # released by another invocation
        # Held first, verified after: a decision taken before the hold existed is found here.
        decided = {arn: status for arn in candidates if (status := self._approval_status(arn)) != PENDING_APPROVAL}
        if decided:
            self.state.unhold(tenant, set(decided))
        awaiting = sorted(set(candidates) - set(decided))
        reason = f"{name} ended {outcome}"
        if awaiting:
            reason += f"; {len(awaiting)} candidate(s) await review: drift starts nothing until they are decided"
        return self.record(
            Decision(
                tenant=tenant,
                trigger=str(before.get("run_trigger") or NEW_DATA),
                decision=RUN_ENDED,
                reason=reason,
                decided_at=iso(now),
                model=before.get("run_model"),
                execution_name=name,
                execution_arn=self._execution_arn(name),
                evidence={"outcome": outcome, "awaiting": awaiting, "decided": decided},
            )
        )

    def _approval_status(self, package_arn: str) -> str:
        try:
            return str(self.sagemaker.describe_model_package(ModelPackageName=package_arn)["ModelApprovalStatus"])
        except ClientError as error:
            if error_code(error) not in ("ValidationException", "ResourceNotFound"):
                raise
            return "Deleted"  # gone: nothing left to wait for

    # Package decisions and the sweep.

    def package_decided(self, event: PackageDecision) -> Decision:
        """Release a held candidate that was approved or rejected; record it either way."""
        now = self.clock()
        for tenant in event.tenants:
            remaining = self.state.unhold_decided(tenant, event.package_arn)
            if remaining is None:
                continue
            reason = f"{event.status}: " + (
                f"{len(remaining)} other candidate(s) still await review"
                if remaining
                else "no candidate awaits review any more: drift may start runs again"
            )
            return self.record(
                Decision(
                    tenant=tenant,
                    trigger=PACKAGE_DECISION,
                    decision=CANDIDATE_DECIDED,
                    reason=reason,
                    decided_at=iso(now),
                    evidence={**event.evidence, "remaining": remaining[:MAX_EVIDENCE_KEYS]},
                )
            )
        return self.ignore(
            Ignored(
                PACKAGE_DECISION,
                "not-held",
                f"{event.package_arn} is no candidate a triggered run left awaiting review",
                None,
                event.evidence,
            )
        )

    def sweep(self) -> list[Decision]:
        """Start the runs of uploads kept while their tenant was busy, once it is free and its cooldown passed."""
        decisions = []
        for item in self.state.pending(SWEEP_LIMIT):
            tenant = item.get("tenant")
            if not isinstance(tenant, str) or not NAME_PATTERN.fullmatch(tenant):
                self.logger.warning("a pending entry without a tenant", extra={"item": str(item)[:MAX_TEXT]})
                continue
            evidence = {"pending_since": iso_of(item.get("pending_since", 0))}
            decision = self.request(Request(tenant, ALL_MODELS, NEW_DATA, evidence), pending=True)
            if decision is not None:
                decisions.append(decision)
        return decisions

    # Records.

    def ignore(self, ignored: Ignored) -> Decision:
        return self.record(
            Decision(
                tenant=ignored.tenant,
                trigger=ignored.trigger,
                decision=IGNORED,
                reason=f"{ignored.reason}: {ignored.detail}",
                decided_at=iso(self.clock()),
                evidence=ignored.evidence,
            )
        )

    def reject(self, trigger: str, problem: Malformed, evidence: dict[str, Any]) -> Decision:
        self.logger.warning("rejected", extra={"reason": problem.reason, "detail": problem.detail, **evidence})
        return self.record(
            Decision(
                tenant=None,
                trigger=trigger,
                decision=REJECTED,
                reason=f"{problem.reason}: {problem.detail}",
                decided_at=iso(self.clock()),
                evidence=evidence,
            )
        )

    def record(self, decision: Decision) -> Decision:
        return self.ledger.record(decision)

    # Helpers.

    def _execution_arn(self, name: str) -> str:
        return execution_arn(self.state_machine_arn, name)

    def _common(self, request: Request, name: str, now: datetime) -> dict[str, Any]:
        return {
            "tenant": request.tenant,
            "trigger": request.trigger,
            "model": request.model,
            "execution_name": name,
            "window": window_of(now, self.cooldown_seconds),
            "decided_at": iso(now),
            "evidence": request.evidence,
        }
