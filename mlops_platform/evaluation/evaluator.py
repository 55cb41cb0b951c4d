"""Evaluate and register: pick each model's best trial, then, once its baseline exists, register it.

One function, two entries (the state's ``action``), so that the registry's code stays in one place:

- ``evaluate`` (the default): records every trial (the ledger's ``RUN#<run_id>`` / ``TRIAL#<trial>``), picks
  each model's best, writes the run's feature schema and each model's evaluation, and says how to compute each
  chosen model's drift baseline: one ``CreateProcessingJob`` request per model (``baselines``), which the state
  machine's ``Baselines`` Map runs. It registers nothing.
- ``register``: after every baseline job succeeded, creates each model package with its baseline linked
  (``registration``).

The function reads the config, the plan, the Map's results and the baselines, writes evaluations under the
run, and uses DynamoDB's item API only (Get, Put, UpdateItem; no batch writes). Retries are safe: trial
records, evaluation files and baseline requests are rewritten with the same content.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from mlops_platform.aws import error_code, iso, kms_encrypted, utc_now
from mlops_platform.evaluation.baselines import HOLDOUT_SPLITS, baseline_job_request, baseline_uri
from mlops_platform.evaluation.documents import encode, evaluation_document, feature_schema, sha256
from mlops_platform.evaluation.errors import InvalidConfig, NoUsableTrial, ResultsUnreadable, UnknownTenant
from mlops_platform.evaluation.ledger import trial_record
from mlops_platform.evaluation.lookups import TrialLookups
from mlops_platform.evaluation.names import group_name
from mlops_platform.evaluation.registration import Registering
from mlops_platform.evaluation.request import Request, action_of, parse_registration, parse_request, read_objective
from mlops_platform.evaluation.results import ResultReading
from mlops_platform.evaluation.trials import (
    Objective,
    Trial,
    assess,
    best_trials,
    counts,
    failure_causes,
    planned_trial,
    tolerance_exceeded,
)
from mlops_platform.runs.prepared import report_key, run_data

CONFIG_PREFIX = "artifacts/config/pipelines/"


class Evaluator(ResultReading, TrialLookups, Registering):
    """The function's work, given its clients (``Services``): call it with the state's input."""

    def __call__(self, event: Any) -> dict[str, Any]:
        if action_of(event) == "register":
            return self.register_run(parse_registration(event))
        return self.evaluate(parse_request(event))

    def evaluate(self, request: Request) -> dict[str, Any]:
        """Record the trials, choose each model's best, and say how to compute each one's baseline."""
        config = self.read_config(request.tenant)
        objective = read_objective(config, request.tenant)
        run_prefix = f"artifacts/runs/{request.tenant}/{request.run_id}/"
        models_uri = f"s3://{self.settings.artifacts_bucket}/{run_prefix}models"

        trials = {item["trial"]: planned_trial(item) for item in self.read_plan(request)}
        outcomes = self.read_outcomes(self.results_of(request))
        for trial_id, outcome in outcomes.items():
            if trial_id not in trials:
                self.log.warning("a result for a trial the plan does not have", extra={"trial": trial_id})
                trials[trial_id] = planned_trial(outcome.item)
        outcomes.update(self.look_up_open_trials(trials, outcomes))
        stopped = request.stopped is not None
        ordered = [
            assess(trials[key], outcomes.get(key), objective, models_uri, stopped=stopped) for key in sorted(trials)
        ]
        best = best_trials(ordered, objective)
        self.record_trials(request, objective, ordered)
        tally = counts(ordered)
        self.count("TrialsSucceeded", tally["succeeded"])
        self.count("TrialsFailed", tally["failed"])
        self.count("TrialsMissingMetrics", tally["missing_metrics"])
        self.count("TrialsWithoutResult", tally["no_result"])
        tolerated = self.settings.tolerated_failure_percentage
        # The Map stops at the tolerance; results read inline (or a Map that tolerated more) are counted here.
        partial = stopped or tolerance_exceeded(tally, tolerated)
        causes = failure_causes(ordered)
        if stopped:
            failures = (
                f"more than {tolerated}% of the trials failed and the Map stopped: "
                f"{tally['failed']} of {tally['total']} failed"
                + (f" ({causes})" if causes else "")
                + f", {tally['no_result']} without a result (refused by SageMaker or never started)"
            )
        else:
            failures = f"{tally['failed']} of {tally['total']} trials failed (the run tolerates {tolerated}%)" + (
                f": {causes}" if causes else ""
            )
        if not best:
            reason = (
                f"run {request.run_id!r} has no trial with a finite {objective.metric}: {failures}; "
                f"{tally['missing_metrics']} without metrics, {tally['no_result']} without a result"
            )
            self.update_run(
                request.run_id,
                {"status": "no-usable-trial", "evaluated_at": iso(utc_now()), "trials": tally, "reason": reason},
            )
            raise NoUsableTrial(reason)
        if partial:
            # Enough to choose: every model with a usable trial is chosen, and a person approves what it gives.
            self.log.warning(
                "more trials failed than tolerated", extra={"run_id": request.run_id, "failures": failures}
            )
        for model, trial in sorted(best.items()):
            if trial.value is not None:
                self.publish_objective(request.tenant, model, objective.metric, trial.value)

        schema_key = run_prefix + "evaluation/feature-schema.json"
        schema_body = encode(feature_schema(config))
        self.put(schema_key, schema_body)
        schema = {"uri": f"s3://{self.settings.artifacts_bucket}/{schema_key}", "sha256": sha256(schema_body)}

        # What prepare kept and rejected: the run's record and each evaluation (the approval notice) carry it.
        prepared = self.read_prepared(request)
        selected = [
            self.select(
                request, config, objective, model, [t for t in ordered if t.model == model], trial, schema, prepared
            )
            for model, trial in best.items()
        ]
        chosen = [
            {key: entry[key] for key in ("model", "trial", "job_name", "value")} | {"metric": objective.metric}
            for entry in selected
        ]
        without = sorted({trial.model for trial in ordered} - set(best))
        run_values: dict[str, Any] = {
            "status": "evaluated",
            "evaluated_at": iso(utc_now()),
            "trials": tally,
            "best": chosen,
        }
        if prepared is not None:
            run_values["data"] = prepared
        if partial:
            run_values |= {"tolerance_exceeded": True, "reason": failures, "models_without_usable_trial": without}
        self.update_run(request.run_id, run_values)
        return {
            "run_id": request.run_id,
            "tenant": request.tenant,
            "trials": tally,
            # More trials failed than tolerated: packages of this run wait for a person, whatever their value.
            "tolerance_exceeded": partial,
            "failures": failures if partial else None,
            "models_without_usable_trial": without,
            "objective": {
                "metric": objective.metric,
                "direction": objective.direction,
                "threshold": objective.threshold,
            },
            "feature_schema": schema,
            "selected": selected,
        }

    def select(
        self,
        request: Request,
        config: Mapping[str, Any],
        objective: Objective,
        model: str,
        trials: list[Trial],
        best: Trial,
        schema: dict[str, str],
        prepared: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The model's chosen trial: its evaluation written, its package group named, its baseline job described."""
        assert best.value is not None
        assert best.model_data is not None
        group = group_name(self.settings.job_prefix, request.tenant, model)  # a bad name fails before any job runs
        evaluation_key = f"artifacts/runs/{request.tenant}/{request.run_id}/evaluation/{model}.json"
        document = evaluation_document(request, config, objective, model, trials, best) | {"data": prepared}
        self.put(evaluation_key, encode(document))
        dataset = config["dataset"]["name"]
        splits = f"s3://{self.settings.features_bucket}/features/{request.tenant}/{dataset}/dt={request.day}"
        training_data = f"{splits}/{request.run_id}-train.parquet"
        # prepare writes every split file, the test split's possibly empty; validation is never empty.
        holdout_data = {split: f"{splits}/{request.run_id}-{split}.parquet" for split in HOLDOUT_SPLITS}
        baseline = baseline_uri(best.model_data)
        return {
            "model": model,
            "trial": best.trial,
            "job_name": best.job_name,
            "algorithm": best.algorithm,
            "value": best.value,
            "meets_threshold": objective.meets(best.value),
            "model_package_group": group,
            "model_data": best.model_data,
            "training_data": training_data,
            "evaluation": f"s3://{self.settings.artifacts_bucket}/{evaluation_key}",
            "baseline": baseline,
            "baseline_job": baseline_job_request(
                self.settings,
                training_job_name=best.job_name,
                model_data=best.model_data,
                training_data=training_data,
                holdout_data=holdout_data,
                schema=schema["uri"],
                baseline=baseline,
            ),
        }

    def read_prepared(self, request: Request) -> dict[str, Any] | None:
        """``runs.prepared.run_data`` of the run's prepare report; None (logged) where there is none readable."""
        key = report_key(request.tenant, request.run_id)
        try:
            body = self.s3.get_object(Bucket=self.settings.artifacts_bucket, Key=key)["Body"].read()
            data = run_data(json.loads(body))
        except ClientError as error:
            if error_code(error) not in ("NoSuchKey", "404"):
                raise
            data = None
        except ValueError:
            data = None
        if data is None:
            self.log.warning("the run's prepare report is missing or unreadable", extra={"key": key})
        return data

    def read_config(self, tenant: str) -> dict[str, Any]:
        key = f"{CONFIG_PREFIX}{tenant}.json"
        try:
            body = self.s3.get_object(Bucket=self.settings.config_bucket, Key=key)["Body"].read()
        except ClientError as error:
            if error_code(error) in ("NoSuchKey", "404"):
                raise UnknownTenant(
                    f"tenant {tenant!r} has no published pipeline config at s3://{self.settings.config_bucket}/{key}"
                ) from None
            raise
        try:
            config = json.loads(body)
        except ValueError:
            raise InvalidConfig(f"the published config of tenant {tenant!r} is not JSON") from None
        if not isinstance(config, dict):
            raise InvalidConfig(f"the published config of tenant {tenant!r} is not a JSON object")
        return config

    def read_plan(self, request: Request) -> list[dict[str, Any]]:
        text = self.read_text(request.plan_bucket, request.plan_key, "the plan")
        try:
            items = json.loads(text)
        except ValueError:
            raise ResultsUnreadable(f"the plan s3://{request.plan_bucket}/{request.plan_key} is not JSON") from None
        if not isinstance(items, list) or not all(
            isinstance(item, dict) and isinstance(item.get("trial"), str) for item in items
        ):
            raise ResultsUnreadable(f"the plan s3://{request.plan_bucket}/{request.plan_key} is not a list of items")
        return items

    def put(self, key: str, body: bytes) -> None:
        self.s3.put_object(
            Bucket=self.settings.artifacts_bucket,
            Key=key,
            Body=body,
            ContentType="application/json",
            **kms_encrypted(self.settings.kms_key_arn),
        )

    def record_trials(self, request: Request, objective: Objective, trials: list[Trial]) -> None:
        """One ledger row per trial; a retry rewrites the same rows."""
        self.ledger.put_all([trial_record(request.run_id, request.tenant, objective.metric, t) for t in trials])
