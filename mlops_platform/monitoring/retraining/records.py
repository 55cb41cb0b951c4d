"""The retrain trigger's records in the run ledger: one per decision, and the packages a run left for review.

A decision is kept under ``TRIGGER#<tenant>`` / ``<decided_at>#<decision>#<id>`` (``id`` a digest of its
evidence) and, for a known tenant, in the ``ByTenant`` index (``TENANT#<tenant>`` / ``TRIGGER#<decided_at>``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from mlops_platform.aws import Log, from_item, to_item
from mlops_platform.ledger import put_once
from mlops_platform.monitoring.retraining.model import MAX_TEXT, Decision
from mlops_platform.naming import UNROUTED

PENDING_APPROVAL = "PendingManualApproval"


@dataclass
class DecisionLedger:
    """Writes each decision once; ``on_record`` sees every decision recorded (the handler counts it)."""

    dynamodb: Any
    _: KW_ONLY
    table: str
    logger: Log = field(default_factory=lambda: logging.getLogger(__name__))
    on_record: Callable[[Decision], None] | None = None

    def record(self, decision: Decision) -> Decision:
        """One ledger item per decision, written if absent: a retried write of the same decision is a no-op."""
        evidence = {key: value for key, value in decision.evidence.items() if value is not None}
        identity = hashlib.sha256(json.dumps(evidence, sort_keys=True, default=str).encode()).hexdigest()[:12]
        tenant = decision.tenant or UNROUTED
        item: dict[str, Any] = {
            "pk": f"TRIGGER#{tenant}",
            "sk": f"{decision.decided_at}#{decision.decision}#{identity}",
            "kind": "trigger",
            "tenant": tenant,
            "trigger": decision.trigger,
            "decision": decision.decision,
            "reason": decision.reason[:MAX_TEXT],
            "decided_at": decision.decided_at,
            "evidence": evidence,
        }
        if decision.tenant is not None:
            item["gsi1pk"] = f"TENANT#{decision.tenant}"
            item["gsi1sk"] = f"TRIGGER#{decision.decided_at}#{decision.decision}"
        for optional in ("model", "execution_name", "execution_arn", "window"):
            value = getattr(decision, optional)
            if value is not None:
                item[optional] = value
        put_once(self.dynamodb, self.table, item)
        self.logger.info(
            decision.decision,
            extra={"pk": item["pk"], "sk": item["sk"], "reason": item["reason"], "execution": decision.execution_name},
        )
        if self.on_record is not None:
            self.on_record(decision)
        return decision

    def candidates(self, run_name: str) -> list[str]:
        """The packages the run registered for manual approval (its ``RUN#<run>`` / ``PACKAGE#<model>`` records,
        written by lambda/evaluate's ``register``)."""
        paginator = self.dynamodb.get_paginator("query")
        found = []
        for page in paginator.paginate(
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :package)",
            ExpressionAttributeValues=to_item({":pk": f"RUN#{run_name}", ":package": "PACKAGE#"}),
            ConsistentRead=True,
        ):
            for item in map(from_item, page.get("Items", [])):
                if item.get("approval_status") == PENDING_APPROVAL and item.get("model_package_arn"):
                    found.append(str(item["model_package_arn"]))
        return sorted(found)
