"""The state's input, checked: ``evaluate``'s request, ``register``'s registration, and the tenant's objective.

- ``evaluate`` (the default action): ``{"run_id", "tenant", "plan": <the plan λ's output>, "results": <the
  Distributed Map's output>}``; when the Map stopped (more trials failed than tolerated), ``results`` is its
  error ``{"Error", "Cause"}`` and the results lie under the plan's ``results`` prefix.
- ``register``: ``{"action": "register", "run_id", "tenant", "evaluation": <evaluate's output>}``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlops_platform.evaluation.baselines import baseline_uri
from mlops_platform.evaluation.documents import SCHEMA_VERSION
from mlops_platform.evaluation.errors import InvalidConfig, InvalidEvaluationRequest
from mlops_platform.evaluation.results import as_text
from mlops_platform.evaluation.trials import Objective, metric_value
from mlops_platform.naming import NAME_PATTERN as TENANT_PATTERN

RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,80}")
ACTIONS = ("evaluate", "register")


@dataclass(frozen=True)
class Request:
    run_id: str
    tenant: str
    day: str
    plan_bucket: str
    plan_key: str
    results: Any
    # The Map's error when it stopped (more trials failed than tolerated), and where its results are.
    stopped: dict[str, str | None] | None = None
    results_location: tuple[str, str] | None = None


def action_of(event: Any) -> str:
    if not isinstance(event, dict):
        raise InvalidEvaluationRequest(f"the input must be a JSON object, not {type(event).__name__}")
    action = event.get("action", "evaluate")
    if action not in ACTIONS:
        raise InvalidEvaluationRequest(f"'action' has value {action!r}; allowed: {', '.join(ACTIONS)}")
    return str(action)


def _identity(event: dict[str, Any]) -> tuple[str, str]:
    run_id, tenant = event.get("run_id"), event.get("tenant")
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.fullmatch(run_id):
        raise InvalidEvaluationRequest(f"run_id {run_id!r} must be 1-80 letters, digits, hyphens or underscores")
    if not isinstance(tenant, str) or not TENANT_PATTERN.fullmatch(tenant):
        raise InvalidEvaluationRequest(f"tenant {tenant!r} must be 1-63 lowercase letters, digits or hyphens")
    return run_id, tenant


def parse_request(event: Any) -> Request:
    if not isinstance(event, dict):
        raise InvalidEvaluationRequest(f"the input must be a JSON object, not {type(event).__name__}")
    run_id, tenant = _identity(event)
    plan = event.get("plan")
    if not isinstance(plan, dict):
        raise InvalidEvaluationRequest("'plan' must be the plan step's output, with 'day' and 'plan': {Bucket, Key}")
    location = plan.get("plan")
    if (
        not isinstance(location, dict)
        or not isinstance(location.get("Bucket"), str)
        or not isinstance(location.get("Key"), str)
        or not isinstance(plan.get("day"), str)
    ):
        raise InvalidEvaluationRequest("'plan' must be the plan step's output, with 'day' and 'plan': {Bucket, Key}")
    if plan.get("run_id") != run_id or plan.get("tenant") != tenant:
        raise InvalidEvaluationRequest(
            f"the plan is for run {plan.get('run_id')!r} of tenant {plan.get('tenant')!r}, "
            f"not run {run_id!r} of tenant {tenant!r}"
        )
    results = event.get("results")
    details = results.get("ResultWriterDetails") if isinstance(results, dict) else None
    if isinstance(results, dict) and details is None and isinstance(results.get("Error"), str):
        # The Map stopped (States.ExceedToleratedFailureThreshold): its results lie under the plan's prefix.
        written = plan.get("results")
        if not (
            isinstance(written, dict)
            and isinstance(written.get("Bucket"), str)
            and isinstance(written.get("Prefix"), str)
        ):
            raise InvalidEvaluationRequest(
                "'plan' must say where the Map writes its results: results: {Bucket, Prefix}"
            )
        return Request(
            run_id,
            tenant,
            plan["day"],
            location["Bucket"],
            location["Key"],
            results,
            stopped={"error": results["Error"], "cause": as_text(results.get("Cause"))},
            results_location=(written["Bucket"], written["Prefix"]),
        )
    if not isinstance(results, list) and not (
        isinstance(details, dict) and isinstance(details.get("Bucket"), str) and isinstance(details.get("Key"), str)
    ):
        raise InvalidEvaluationRequest(
            "'results' must be the Map's output: {MapRunArn, ResultWriterDetails: {Bucket, Key}}, a list, "
            "or the Map's error {Error, Cause}"
        )
    return Request(run_id, tenant, plan["day"], location["Bucket"], location["Key"], results)


def read_objective(config: Mapping[str, Any], tenant: str) -> Objective:
    """The objective, after checking the fields evaluation reads (synth validated the rest)."""
    objective, dataset = config.get("objective"), config.get("dataset")
    valid = (
        config.get("schema_version") == SCHEMA_VERSION
        and isinstance(objective, dict)
        and isinstance(objective.get("metric"), str)
        and objective.get("direction") in ("maximize", "minimize")
        and isinstance(objective.get("approval_threshold"), int | float)
        and not isinstance(objective.get("approval_threshold"), bool)
        and isinstance(dataset, dict)
        and all(isinstance(dataset.get(key), str) for key in ("name", "target", "problem_type"))
        and isinstance(dataset.get("features"), dict)
    )
    if not valid:
        raise InvalidConfig(f"the published config of tenant {tenant!r} lacks a schema_version 1 objective or dataset")
    assert isinstance(objective, dict)
    return Objective(objective["metric"], objective["direction"], float(objective["approval_threshold"]))


# The fields of each evaluate output's ``selected`` entry that register reads, by type.
SELECTED_TEXT = (
    "model",
    "trial",
    "job_name",
    "algorithm",
    "model_package_group",
    "model_data",
    "training_data",
    "evaluation",
    "baseline",
)


@dataclass(frozen=True)
class Registration:
    """What register reads: evaluate's output, checked."""

    run_id: str
    tenant: str
    trials: dict[str, Any]
    objective: Objective
    feature_schema: dict[str, str]
    selected: list[dict[str, Any]]
    tolerance_exceeded: bool = False


def parse_registration(event: dict[str, Any]) -> Registration:
    run_id, tenant = _identity(event)
    evaluation = event.get("evaluation")
    shape = "'evaluation' must be the evaluate step's output, with objective, feature_schema and selected models"
    if not isinstance(evaluation, dict):
        raise InvalidEvaluationRequest(shape)
    if evaluation.get("run_id") != run_id or evaluation.get("tenant") != tenant:
        raise InvalidEvaluationRequest(
            f"the evaluation is of run {evaluation.get('run_id')!r} of tenant {evaluation.get('tenant')!r}, "
            f"not run {run_id!r} of tenant {tenant!r}"
        )
    objective, schema, selected = (
        evaluation.get("objective"),
        evaluation.get("feature_schema"),
        evaluation.get("selected"),
    )
    if (
        not isinstance(objective, dict)
        or not isinstance(objective.get("metric"), str)
        or objective.get("direction") not in ("maximize", "minimize")
        or metric_value(objective.get("threshold")) is None
        or not isinstance(schema, dict)
        or not all(isinstance(schema.get(key), str) for key in ("uri", "sha256"))
        or not isinstance(selected, list)
        or not selected
        or not isinstance(evaluation.get("trials"), dict)
    ):
        raise InvalidEvaluationRequest(shape)
    for entry in selected:
        if (
            not isinstance(entry, dict)
            or not all(isinstance(entry.get(key), str) for key in SELECTED_TEXT)
            or metric_value(entry.get("value")) is None
            or not isinstance(entry.get("meets_threshold"), bool)
        ):
            raise InvalidEvaluationRequest(
                f"a selected model lacks one of {', '.join(SELECTED_TEXT)}, value, meets_threshold"
            )
        if entry["baseline"] != baseline_uri(entry["model_data"]):
            raise InvalidEvaluationRequest(
                f"model {entry['model']!r}'s baseline {entry['baseline']!r} is not next to its artifact "
                f"{entry['model_data']!r}; the drift monitor would not find it"
            )
    return Registration(
        run_id=run_id,
        tenant=tenant,
        trials=evaluation["trials"],
        objective=Objective(objective["metric"], objective["direction"], float(objective["threshold"])),
        feature_schema={"uri": schema["uri"], "sha256": schema["sha256"]},
        selected=selected,
        tolerance_exceeded=evaluation.get("tolerance_exceeded") is True,
    )
