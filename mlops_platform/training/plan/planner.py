"""The plan's side effects: read the tenant's config, record the run in the ledger, write the plan, once.

A retry of the same run writes nothing new: the ledger's run record (with the plan's sha256) and plan.json
are written only if absent, and a retry whose plan differs from the recorded one (the config changed under
the run) is a ``PlanConflict``. The planner reads nothing but the config, so the function's grants stay at
"read configs, write runs, put ledger items".
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from mlops_platform.aws import Log, condition_failed, error_code, kms_encrypted, put_object_once, to_item
from mlops_platform.training.plan.config import check_config, config_key, selected_models
from mlops_platform.training.plan.errors import InvalidConfig, PlanConflict, UnknownTenant
from mlops_platform.training.plan.jobs import predict_request, prepare_request
from mlops_platform.training.plan.layout import Layout
from mlops_platform.training.plan.request import RunRequest, parse_request
from mlops_platform.training.plan.settings import Settings
from mlops_platform.training.plan.trials import build_items, encode_plan


class Planner:
    def __init__(self, s3_client: Any, dynamodb_client: Any, settings: Settings, *, log: Log):
        self.s3 = s3_client
        self.dynamodb = dynamodb_client
        self.settings = settings
        self.log = log

    def __call__(self, event: Any) -> dict[str, Any]:
        request = parse_request(event)
        config = self.read_config(request.tenant)
        items = build_items(self.settings, config, request)
        prepare = prepare_request(self.settings, config, request)
        predict = predict_request(self.settings, config, request)
        layout = Layout(self.settings, config, request)
        models = [model["name"] for model in selected_models(config, request)]
        body = encode_plan(items)
        # Ledger first: its record holds the plan's digest, so a retry can tell "same plan" from
        # "the config changed under this run" without reading anything back (the function may not).
        self.record_run(request, models, len(items), layout.plan_key, hashlib.sha256(body).hexdigest())
        self.write_plan(layout.plan_key, body)
        return {
            "run_id": request.run_id,
            "tenant": request.tenant,
            "day": request.day,
            "trial_count": len(items),
            "models": models,
            "plan": {"Bucket": self.settings.artifacts_bucket, "Key": layout.plan_key},
            "results": {"Bucket": self.settings.artifacts_bucket, "Prefix": layout.results_prefix},
            "prepare": prepare,
            "predict": predict,
        }

    def read_config(self, tenant: str) -> dict[str, Any]:
        key = config_key(tenant)
        try:
            body = self.s3.get_object(Bucket=self.settings.config_bucket, Key=key)["Body"].read()
        except ClientError as error:
            if error_code(error) in ("NoSuchKey", "404"):
                raise UnknownTenant(
                    f"tenant {tenant!r} has no published pipeline config at "
                    f"s3://{self.settings.config_bucket}/{key} (add config/pipelines/{tenant}.yaml and deploy)"
                ) from None
            raise
        try:
            config = json.loads(body)
        except ValueError as error:
            raise InvalidConfig(f"the published config of tenant {tenant!r} is not JSON: {error}") from None
        return check_config(config, tenant)

    def write_plan(self, key: str, body: bytes) -> None:
        """Write once. An object already there was written by an attempt the ledger matched: the same plan."""
        written = put_object_once(
            self.s3,
            bucket=self.settings.artifacts_bucket,
            key=key,
            body=body,
            content_type="application/json",
            **kms_encrypted(self.settings.kms_key_arn),
        )
        if not written:
            self.log.info("plan already written", extra={"key": key})

    def record_run(
        self, request: RunRequest, models: list[str], trial_count: int, plan_key: str, plan_sha256: str
    ) -> None:
        """The ledger's run record, written once: a retry or redrive keeps the first one.

        A retry finds the record (returned with the failed condition, so no read permission is
        needed); a different tenant or plan digest means the run id is not this run's to plan. A
        record without a plan is the run-outcome function's note of an execution that failed before
        its plan was recorded (mlops_platform/runs/recorder.py): a redrive that plans the run replaces it.
        """
        record = {
            "pk": f"RUN#{request.run_id}",
            "sk": "RUN",
            "kind": "run",
            "run_id": request.run_id,
            "tenant": request.tenant,
            "models": models,
            "trial_count": trial_count,
            "plan_bucket": self.settings.artifacts_bucket,
            "plan_key": plan_key,
            "plan_sha256": plan_sha256,
            "status": "planned",
            "day": request.day,
            "started_at": request.started_at,
            "planned_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "gsi1pk": f"TENANT#{request.tenant}",
            "gsi1sk": f"RUN#{request.started_at}#{request.run_id}",
        }
        if request.execution_arn:
            record["execution_arn"] = request.execution_arn
        try:
            self.dynamodb.put_item(
                TableName=self.settings.ledger_table,
                Item=to_item(record),
                ConditionExpression="attribute_not_exists(pk) OR attribute_not_exists(plan_sha256)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not condition_failed(error):
                raise
            existing = error.response.get("Item") or {}
            recorded_tenant = existing.get("tenant", {}).get("S")
            if recorded_tenant != request.tenant:
                raise PlanConflict(
                    f"run {request.run_id!r} is already recorded for tenant {recorded_tenant!r}, not {request.tenant!r}"
                ) from None
            if existing.get("plan_sha256", {}).get("S") != plan_sha256:
                raise PlanConflict(
                    f"run {request.run_id!r} was already planned differently (the config changed since); "
                    "start a new execution"
                ) from None
            self.log.info("run already recorded", extra={"run_id": request.run_id})
