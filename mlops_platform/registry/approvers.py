"""Who approved a model package, from CloudTrail's record of the approving ``UpdateModelPackage`` call.

Part of the approval function (``approval.py``'s docstring has the whole design): the approver is recorded
in the ledger; where approvers are listed (prod), a listed approver's call promotes the package and anyone
else's is refused, recorded and notified once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlops_platform.registry.approval_messages import approver_refusal_message
from mlops_platform.registry.approval_settings import APPROVED, Endpoint, StateChange
from mlops_platform.registry.packages import package_version

APPROVED_BY = "approved-by"
APPROVER_REFUSED = "approver-refused"


class ApproverRecords:
    """The approver's half of ``Approvals`` (which provides ``settings``, ``record``, ``ignore``, ``notify``
    and ``promote``)."""

    settings: Any

    # Provided by Approvals (approval.py).
    def record(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        raise NotImplementedError

    def ignore(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        raise NotImplementedError

    def notify(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError

    def promote(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        raise NotImplementedError

    def approved_by(
        self,
        change: StateChange,
        package: Mapping[str, Any],
        metadata: Mapping[str, str],
        endpoints: list[Endpoint],
        keys: list[str],
    ) -> list[dict[str, Any]]:
        """CloudTrail's record of an approving call: who approved is recorded; where approvers are listed, a
        listed one's approval is promoted here and anyone else's is refused (the module's docstring)."""
        approver = change.approver
        assert approver is not None
        tenant, model = metadata["tenant"], metadata["model"]
        if change.status != APPROVED:
            return [self.ignore(key, change, f"the call set {change.status}, not {APPROVED}", tenant) for key in keys]
        restricted = self.settings.approvers_restricted
        listed = approver.role_arn in self.settings.approver_role_arns
        if restricted and not listed:
            decision = APPROVER_REFUSED
            reason = f"{approver.arn} (role {approver.role_arn}) is not one of the configured approvers"
        else:
            decision = APPROVED_BY
            reason = f"approved by {approver.arn} (role {approver.role_arn})"
        group, version = package_version(change.package_arn) or (change.group, 0)
        records = [
            self.record(
                key,
                decision,
                reason,
                change=change,
                tenant=tenant,
                model=model,
                # One record per approving call: CloudTrail's eventID, the same on a redelivery.
                sort_key=f"PACKAGE#{group}/{version}#{decision}#{change.event_id}",
                approver_role=approver.role_arn,
                approved_at=approver.event_time,
            )
            for key in keys
        ]
        if decision == APPROVER_REFUSED:
            if any(record["written"] for record in records):
                self.notify(
                    *approver_refusal_message(
                        self.settings, keys, change.package_arn, tenant, model, approver.arn, approver.role_arn
                    )
                )
            return records
        if not restricted:
            return records  # the package's state change promotes
        status = package.get("ModelApprovalStatus")
        if status != APPROVED:
            return [*records, *(self.ignore(key, change, stale(change, status), tenant) for key in keys)]
        return [*records, *self.promote(change, package, tenant, model, endpoints)]


def stale(change: StateChange, status: object) -> str:
    return f"the event says {change.status}, the package is {status} now (a stale or reordered event)"
