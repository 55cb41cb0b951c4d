"""The loop's training phase: the deployed training state machine, run by the emulator's interpreter.

The machine is the one the Training stack outputs (``StateMachineArn``); it is started with the
tenant's run request (``{"tenant": ..., "models"?: [...]}``, as an operator's ``mlops train`` does)
and runs in moto's Step Functions interpreter (:mod:`.interpreter`): Lambda tasks run the deployed
handlers in this process, and SageMaker jobs run as local processes of the image's entry points
(:mod:`.jobs`), whose status the ``.sync`` tasks wait for. What the run reports comes from its own
output (the Report state: the evaluation's trial counts and the registered best models).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from mlops_platform.local import jobs
from mlops_platform.local.deploy import Stack

MACHINE_OUTPUT = "StateMachineArn"
RUN_TIMEOUT_SECONDS = 900


class TrainingError(Exception):
    """Why the training run could not be started or did not end, in one sentence."""


@dataclass(frozen=True)
class Run:
    execution_arn: str
    status: str  # SUCCEEDED, FAILED, ...
    error: str | None
    cause: str | None
    output: dict[str, Any] | None
    jobs: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, name, status) of every local job

    @property
    def trials(self) -> dict[str, int] | None:
        """Succeeded and failed trials, from the evaluation's tally (every trial is one or the other)."""
        tally = (self.output or {}).get("trials")
        if not isinstance(tally, dict):
            return None
        succeeded = int(tally["succeeded"])
        return {"succeeded": succeeded, "failed": int(tally["total"]) - succeeded}

    @property
    def best(self) -> dict[str, Any] | None:
        """The registered model with the best objective value (the first of equals, by model name)."""
        entries = [entry for entry in (self.output or {}).get("best") or [] if entry.get("value") is not None]
        if not entries:
            return None
        objective = (self.output or {}).get("objective") or {}
        reverse = objective.get("direction", "maximize") != "minimize"
        entries.sort(key=lambda entry: entry["model"])
        chosen = sorted(entries, key=lambda entry: float(entry["value"]), reverse=reverse)[0]
        return {"model": chosen["model"], "metric": chosen.get("metric"), "value": chosen["value"]}


def machine_arn(stacks: list[Stack], cloudformation: Any) -> str:
    for stack in stacks:
        if not stack.name.endswith("-Training"):
            continue
        outputs = cloudformation.describe_stacks(StackName=stack.name)["Stacks"][0].get("Outputs", [])
        for output in outputs:
            if output["OutputKey"] == MACHINE_OUTPUT:
                return str(output["OutputValue"])
    raise TrainingError(f"no deployed Training stack has the output {MACHINE_OUTPUT}")


def train(
    tenant: str,
    *,
    stacks: list[Stack],
    environment: dict[str, str],
    workdir: Path,
    project_root: Path,
    models: list[str] | None = None,
    name: str = "local-run-1",
) -> Run:
    """Start the deployed machine for ``tenant`` and wait for it to end; every job it started has ended too."""
    sfn = boto3.client("stepfunctions")
    arn = machine_arn(stacks, boto3.client("cloudformation"))
    request: dict[str, Any] = {"tenant": tenant}
    if models:
        request["models"] = models
    with jobs.running(workdir, environment, project_root) as runner:
        execution = sfn.start_execution(stateMachineArn=arn, name=name, input=json.dumps(request))["executionArn"]
        deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
        while True:
            described = sfn.describe_execution(executionArn=execution)
            if described["status"] != "RUNNING":
                break
            if time.monotonic() > deadline:
                sfn.stop_execution(executionArn=execution, error="LocalTimeout")
                raise TrainingError(f"the training run did not end within {RUN_TIMEOUT_SECONDS} s")
            time.sleep(0.5)
    output = json.loads(described["output"]) if described.get("output") else None
    return Run(
        execution_arn=execution,
        status=described["status"],
        error=described.get("error"),
        cause=described.get("cause"),
        output=output,
        jobs=list(runner.ran),
    )
