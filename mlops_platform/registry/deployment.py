"""Deployment workflow steps: write a model pointer under a lock, then judge the Serving stack's deploy.

The deployment workflow (mlops_constructs/approval_path.py) runs one execution per promoted package and
endpoint, started by the approval function (``approval``). Its input is the promotion request
(``deployment_settings.Request``): ``package_arn``, ``endpoint``, ``variant``, ``pointer`` (the SSM name),
``model_data`` (the artifact's S3 URI), ``tenant``, ``model`` and ``share`` (the variant's percentage of the
traffic). Each state invokes the deployment function (lambda/approval/deployment.py) with ``{"step",
"execution", "request"}`` (and, for ``settle``, ``build``: the build's error, if any):

* ``acquire``: takes the environment's deployment lock (``deploy_lock``: a ledger item ``LOCK#<stack>`` /
  ``LOCK``, owned by the execution's name, expiring after ``LOCK_SECONDS`` so an abandoned execution cannot
  block forever; ``mlops promote`` takes the same lock), re-reads the package (a package rejected in
  the meantime is ``withdrawn``), reads the pointer (a package older than the one it names is
  ``superseded``: approvals arrive in any order, and an older one never overwrites a newer one) and reads
  the Serving stack. ``busy`` while someone else holds the lock or the stack is in any ``*_IN_PROGRESS``
  state (the workflow waits and asks again); ``blocked`` when the stack is missing, in a state no update
  can start from, or does not read the pointer (the variant is not deployed yet); else ``ready``: the
  pointer's current value and description are kept in the lock item, then the pointer is written (value
  the artifact, description ``model package <ARN>``). A retried ``acquire`` of the same execution keeps
  the value it kept first.
* ``settle``: after the deploy (the CodeBuild build that applies the Serving stack), succeeded or not.
  ``busy`` while the stack is in progress (whoever updates it); ``deployed`` when the stack is complete,
  CloudFormation resolved the pointer to the artifact (DescribeStacks' ``ResolvedValue``), whatever the
  build reported, and the endpoint runs the endpoint config and models the stack deployed
  (``endpoint_check``: a guardrail's rollback leaves the stack complete and the endpoint on its old
  config); else ``reverted``: the pointer returns to the kept value and description, unless someone
  changed it since (then it is left alone, and the notice says so), so a bad model never blocks later
  deploys. Either way the ledger records it, people are notified and the lock is released.
* ``give_up``: the workflow waited too long (``phase``: ``acquire`` or ``settle``); records, notifies and
  releases the lock. After ``acquire`` nothing was written; after ``settle`` the stack is still updating
  and the pointer is left as written.

Records: ``PROMOTION#<endpoint>`` / ``EXECUTION#<execution>#<outcome>``, once per execution and outcome.
This function has no CloudFormation write permission: the build applies the stack through the CDK
bootstrap deploy role.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from mlops_platform.registry import deploy_lock
from mlops_platform.registry.deployment_settings import InvalidRequest, Request, Settings, change_set_name
from mlops_platform.registry.endpoint_check import StackMissing, check_stack, is_stack_missing
from mlops_platform.registry.ledger import iso, ledger_item, put_once
from mlops_platform.registry.notices import Recorder, publish
from mlops_platform.registry.packages import PromotionRefused, describe_package
from mlops_platform.registry.pointers import find_pointer, newer_package, pointer_description, write_pointer

READY, BUSY, BLOCKED, WITHDRAWN, SUPERSEDED = "ready", "busy", "blocked", "withdrawn", "superseded"
DEPLOYED, REVERTED, ABANDONED, UNSETTLED = "deployed", "reverted", "abandoned", "unsettled"
# Stack states an update can start from; any *_IN_PROGRESS is busy; the rest need a person.
UPDATABLE = frozenset(
    {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE", "IMPORT_ROLLBACK_COMPLETE"}
)
# Stack states that mean the last update applied.
APPLIED = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"})
RESTORED_DESCRIPTION = "restored by the approval path after a failed deployment"
CAUSE_MAX = 1500
METRICS = {
    DEPLOYED: "PromotionsDeployed",
    REVERTED: "PromotionsReverted",
    BLOCKED: "PromotionsBlocked",
    WITHDRAWN: "PromotionsWithdrawn",
    SUPERSEDED: "PromotionsSuperseded",
    ABANDONED: "PromotionsAbandoned",
    UNSETTLED: "PromotionsUnsettled",
}


@dataclass(kw_only=True)
class Steps(Recorder):
    """The workflow's steps; ``log`` and ``count`` are the function's logger and metric counter."""

    CLIENTS = (*Recorder.CLIENTS, "cloudformation", "ssm", "sagemaker")

    cloudformation: Any
    ssm: Any
    sagemaker: Any
    settings: Settings

    # -- the steps ------------------------------------------------------------------------------

    def acquire(self, request: Request, execution: str) -> dict[str, Any]:
        holder = self.lock(request, execution)
        if holder is not None:
            return {"status": BUSY, "reason": f"the deployment lock is held by {holder}"}
        try:
            status = describe_package(self.sagemaker, request.package_arn).get("ModelApprovalStatus")
        except PromotionRefused as refusal:
            status, reason = None, str(refusal)
        else:
            reason = f"model package {request.package_arn} is {status} now, no longer Approved"
        if status != "Approved":
            return self.conclude(request, execution, WITHDRAWN, reason, release=True)
        # Under the lock, so that nothing writes the pointer between this reading and this execution's write.
        newer = newer_package(find_pointer(self.ssm, request.pointer), request.package_arn)
        if newer is not None:
            reason = (
                f"the pointer {request.pointer} already names {newer}, a newer version than {request.package_arn}; "
                "an older package never overwrites a newer one (approvals can arrive in any order), so nothing "
                "was written"
            )
            return self.conclude(request, execution, SUPERSEDED, reason, release=True)

        stack = self.stack()
        if stack is None:
            return self.conclude(
                request, execution, BLOCKED, f"stack {self.settings.stack_name} does not exist", release=True
            )
        state = stack["StackStatus"]
        if state.endswith("_IN_PROGRESS"):
            return {"status": BUSY, "reason": f"stack {self.settings.stack_name} is {state}"}
        if state not in UPDATABLE:
            reason = (
                f"stack {self.settings.stack_name} is {state} ({stack.get('StackStatusReason', 'no reason given')}), "
                "a state no update starts from; a person must repair it first"
            )
            return self.conclude(request, execution, BLOCKED, reason, release=True)
        if not any(p.get("ParameterValue") == request.pointer for p in stack.get("Parameters", [])):
            reason = (
                f"stack {self.settings.stack_name} does not read the pointer {request.pointer}: variant "
                f"{request.variant} of endpoint {request.endpoint} is not deployed yet (deploy the environment first)"
            )
            return self.conclude(request, execution, BLOCKED, reason, release=True)

        try:
            lock = self.keep_previous(request, execution)
        except PromotionRefused as refusal:
            return self.conclude(request, execution, BLOCKED, str(refusal), release=True)
        write_pointer(self.ssm, request.pointer, request.model_data, pointer_description(request.package_arn))
        self.log.info("pointer written", extra={"pointer": request.pointer, "previous": lock.get("previous_value")})
        return {
            "status": READY,
            "change_set": change_set_name(execution),
            "stack_status": state,
            "previous": lock.get("previous_value"),
        }

    def settle(self, request: Request, execution: str, build: Any = None) -> dict[str, Any]:
        stack = self.stack()
        state = stack["StackStatus"] if stack else "missing"
        if state.endswith("_IN_PROGRESS"):
            return {"status": BUSY, "reason": f"stack {self.settings.stack_name} is {state}"}
        resolved = next(
            (
                p.get("ResolvedValue")
                for p in (stack or {}).get("Parameters", [])
                if p.get("ParameterValue") == request.pointer
            ),
            None,
        )
        applied = state in APPLIED and resolved == request.model_data
        problems = self.endpoint_problems(request) if applied else []
        if applied and not problems:
            return self.conclude(
                request,
                execution,
                DEPLOYED,
                f"stack {self.settings.stack_name} is {state} and variant {request.variant} of endpoint "
                f"{request.endpoint} serves {request.model_data}: the endpoint runs the endpoint config and "
                "models the stack deployed",
                release=True,
            )
        cause = self.cause(build)
        stack_reason = (stack or {}).get("StackStatusReason")
        why = f"stack {self.settings.stack_name} is {state}" + (f" ({stack_reason})" if stack_reason else "")
        if problems:
            why += (
                f" and resolved the pointer to {request.model_data}, but the endpoint does not run what it "
                f"deployed: {'; '.join(problems)}; the next deploy of the stack, with the pointer restored, "
                "brings the two together again"
            )
        elif state in APPLIED:
            why += f"; it resolved the pointer to {resolved}, not {request.model_data}"
        if cause:
            why += f"; the deploy failed: {cause}"
        restored = self.revert(request, execution)
        return self.conclude(request, execution, REVERTED, f"{why}; the pointer {restored}", release=True)

    def give_up(self, request: Request, execution: str, phase: str) -> dict[str, Any]:
        if phase == "settle":
            reason = (
                f"stack {self.settings.stack_name} was still updating when the workflow stopped waiting; the "
                f"pointer {request.pointer} is left naming {request.model_data}: check the stack's events"
            )
            return self.conclude(request, execution, UNSETTLED, reason, release=True)
        reason = (
            f"stack {self.settings.stack_name} stayed busy (or the deployment lock taken) for the whole wait; "
            "nothing was written: start the promotion again (docs/approval-path.md)"
        )
        return self.conclude(request, execution, ABANDONED, reason, release=True)

    # -- the lock -------------------------------------------------------------------------------

    def lock(self, request: Request, execution: str) -> str | None:
        """Take (or keep) the deployment lock; who holds it when someone else does."""
        holder = deploy_lock.take(
            self.dynamodb,
            self.settings.ledger_table,
            self.settings.stack_name,
            owner=execution,
            now=self.clock(),
            seconds=self.settings.lock_seconds,
            fields={"package_arn": request.package_arn, "endpoint": request.endpoint, "pointer": request.pointer},
        )
        return deploy_lock.held_by(holder) if holder is not None else None

    def keep_previous(self, request: Request, execution: str) -> dict[str, str]:
        """The lock item, with the pointer's value and description before this execution wrote it (kept once)."""
        lock = deploy_lock.read(self.dynamodb, self.settings.ledger_table, self.settings.stack_name)
        if lock.get("owner") == execution and "written" in lock:
            return lock  # a retried acquire: the value kept first is the one to restore
        current = find_pointer(self.ssm, request.pointer)
        if current is None:
            raise PromotionRefused(f"the model pointer {request.pointer} does not exist")
        deploy_lock.keep_previous(
            self.dynamodb,
            self.settings.ledger_table,
            self.settings.stack_name,
            execution,
            value=current.value,
            description=current.description or "",
            written=request.model_data,
        )
        return {
            **lock,
            "previous_value": current.value,
            "previous_description": current.description or "",
            "written": request.model_data,
        }

    def release(self, execution: str) -> None:
        deploy_lock.release(self.dynamodb, self.settings.ledger_table, self.settings.stack_name, execution)

    def revert(self, request: Request, execution: str) -> str:
        """Return the pointer to the value this execution kept, if it wrote it and nobody changed it since."""
        lock = deploy_lock.read(self.dynamodb, self.settings.ledger_table, self.settings.stack_name)
        if lock.get("owner") != execution or "written" not in lock:
            return "was not written by this promotion"
        current = find_pointer(self.ssm, request.pointer)
        if current is None or current.value != lock["written"]:
            shown = current.value if current else "nothing"
            return f"was left at {shown}: it changed after this promotion wrote it"
        write_pointer(
            self.ssm, request.pointer, lock["previous_value"], lock.get("previous_description") or RESTORED_DESCRIPTION
        )
        return f"was restored to {lock['previous_value']}"

    # -- reading, recording, telling -------------------------------------------------------------

    def stack(self) -> dict[str, Any] | None:
        try:
            stacks = self.cloudformation.describe_stacks(StackName=self.settings.stack_name)["Stacks"]
        except ClientError as error:
            if is_stack_missing(error):
                return None
            raise
        return stacks[0] if stacks else None

    def endpoint_problems(self, request: Request) -> list[str]:
        """How the request's endpoint differs from what the Serving stack deployed (``endpoint_check``)."""
        name = self.settings.endpoint_name(request.endpoint)
        try:
            found = check_stack(self.cloudformation, self.sagemaker, self.settings.stack_name, [name])
        except StackMissing as missing:
            return [str(missing)]
        return found.get(name, [])

    @staticmethod
    def cause(build: Any) -> str | None:
        """The build's failure, as the Catch of the deploy state passes it (``{"Error", "Cause"}``)."""
        if not isinstance(build, dict) or not (build.get("Error") or build.get("Cause")):
            return None
        text = f"{build.get('Error') or 'error'}: {build.get('Cause') or ''}".strip().rstrip(":")
        return text if len(text) <= CAUSE_MAX else text[: CAUSE_MAX - 3] + "..."

    def conclude(self, request: Request, execution: str, outcome: str, reason: str, *, release: bool) -> dict[str, Any]:
        decided_at = iso(self.clock())
        item = ledger_item(
            endpoint=request.endpoint,
            decision=outcome,
            decided_at=decided_at,
            reason=reason,
            sort_key=f"EXECUTION#{execution}#{outcome}",
            tenant=request.tenant,
            model=request.model,
            variant=request.variant,
            package_arn=request.package_arn,
            pointer=request.pointer,
            model_data=request.model_data,
            execution_name=execution,
        )
        written = put_once(self.dynamodb, self.settings.ledger_table, item)
        if written:
            self.count(METRICS[outcome])
            self.notify(request, execution, outcome, reason)
        if release:
            self.release(execution)
        self.log.info(outcome, extra={"reason": reason, "execution": execution, "written": written})
        return {"status": outcome, "reason": item["reason"]}

    def notify(self, request: Request, execution: str, outcome: str, reason: str) -> None:
        title = f"{request.tenant}/{request.model} to {request.endpoint}/{request.variant}: {outcome}"
        lines = [
            f"Promotion of model package {request.package_arn} to variant {request.variant} of endpoint "
            f"{request.endpoint} in {self.settings.environment}: {outcome}.",
            "",
            reason,
            "",
            f"Pointer: {request.pointer}",
            f"Artifact: {request.model_data}",
            f"Workflow execution: {execution}",
        ]
        if outcome == DEPLOYED and request.share is not None:
            lines.insert(
                2, f"It serves {request.share:g}% of the endpoint's traffic (the variant's configured weight)."
            )
        if outcome == SUPERSEDED:
            lines += ["", 'Nothing to do: the variant keeps the newer model (docs/approval-path.md, "In order").']
        elif outcome in (REVERTED, BLOCKED, ABANDONED, UNSETTLED):
            lines += ["", 'What to do: docs/approval-path.md, "When a promotion fails".']
        publish(self.sns, self.settings.topic_arn, self.settings.prefix, title, lines)

    # -- entry point ----------------------------------------------------------------------------

    def run(self, event: Any) -> dict[str, Any]:
        if not isinstance(event, dict):
            raise InvalidRequest(f"the step's input must be an object, not {type(event).__name__}")
        execution = event.get("execution")
        if not isinstance(execution, str) or not execution:
            raise InvalidRequest("the step's input lacks the execution's name")
        request = Request.parse(event.get("request"))
        step = event.get("step")
        if step == "acquire":
            return self.acquire(request, execution)
        if step == "settle":
            return self.settle(request, execution, event.get("build"))
        if step == "give_up":
            return self.give_up(request, execution, str(event.get("phase")))
        raise InvalidRequest(f"unknown step {step!r}; allowed: acquire, settle, give_up")
