"""The run ledger as evaluation writes it: one row per trial (``RUN#<run>`` / ``TRIAL#<trial>``), the run's
row (``RUN``), and one row per registered package (``PACKAGE#<model>``, written once).

Through DynamoDB's item API only: the function is granted GetItem, PutItem and UpdateItem.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from mlops_platform.aws import condition_failed, dynamodb_value, from_item, to_item

if TYPE_CHECKING:
    from mlops_platform.evaluation.trials import Trial

LEDGER_WRITERS = 16  # parallel PutItem calls when recording trials


def plain(value: Any) -> Any:
    """A ledger value back as JSON: Decimals as int or float."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


class Ledger:
    """The run ledger through DynamoDB's item API only: the function is granted Get, Put and UpdateItem."""

    def __init__(self, dynamodb_client: Any, table: str, *, workers: int = LEDGER_WRITERS):
        self.dynamodb = dynamodb_client
        self.table = table
        self.workers = workers

    def _item(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return to_item(dynamodb_value(values))

    def _plain(self, item: Mapping[str, Any]) -> dict[str, Any]:
        return plain(from_item(item))

    def get(self, pk: str, sk: str) -> dict[str, Any] | None:
        item = self.dynamodb.get_item(
            TableName=self.table, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True
        ).get("Item")
        return self._plain(item) if item else None

    def put(self, values: Mapping[str, Any]) -> None:
        self.dynamodb.put_item(TableName=self.table, Item=self._item(values))

    def put_all(self, records: list[dict[str, Any]]) -> None:
        """Many puts in parallel (a 10,000-trial run is 10,000 rows); the client is thread-safe."""
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for _ in pool.map(self.put, records):
                pass

    def put_new(self, values: Mapping[str, Any]) -> dict[str, Any] | None:
        """Put if absent; when present, the record already there (returned with the failed condition)."""
        try:
            self.dynamodb.put_item(
                TableName=self.table,
                Item=self._item(values),
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not condition_failed(error):
                raise
            existing = error.response.get("Item")
            return self._plain(existing) if existing else self.get(values["pk"], values["sk"])
        return None

    def update(self, pk: str, sk: str, values: Mapping[str, Any]) -> None:
        names = {f"#a{index}": name for index, name in enumerate(values)}
        self.dynamodb.update_item(
            TableName=self.table,
            Key={"pk": {"S": pk}, "sk": {"S": sk}},
            UpdateExpression="SET " + ", ".join(f"{alias} = :{alias[1:]}" for alias in names),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=to_item(
                {f":{alias[1:]}": dynamodb_value(values[name]) for alias, name in names.items()}
            ),
        )


def trial_record(run_id: str, tenant: str, objective_metric: str, trial: Trial) -> dict[str, Any]:
    """A trial's row: ``RUN#<run>`` / ``TRIAL#<trial>``; a retry rewrites the same row."""
    return {
        "pk": f"RUN#{run_id}",
        "sk": f"TRIAL#{trial.trial}",
        "kind": "trial",
        "run_id": run_id,
        "tenant": tenant,
        "model": trial.model,
        "algorithm": trial.algorithm,
        "trial": trial.trial,
        "attempt": trial.attempt,
        "job_name": trial.job_name,
        "status": trial.status,
        "metrics": trial.metrics,
        "objective_metric": objective_metric,
        "objective_value": trial.value,
        "reason": trial.reason,
        "hyperparameters": trial.hyperparameters,
        "training_job_arn": trial.training_job_arn,
        "model_data": trial.model_data,
        "best": trial.best,
    }


def package_record(
    tenant: str,
    run_id: str,
    entry: Mapping[str, Any],
    *,
    arn: str,
    approval: str,
    metric: str,
    value: float,
    baseline: Mapping[str, str],
    created_at: str,
) -> dict[str, Any]:
    """A registered package's row (``RUN#<run>`` / ``PACKAGE#<model>``, written once), also in the ``ByTenant``
    index (``TENANT#<tenant>`` / ``PACKAGE#<created_at>#<run>``); ``entry`` is evaluate's selected model."""
    return {
        "pk": f"RUN#{run_id}",
        "sk": f"PACKAGE#{entry['model']}",
        "kind": "package",
        "run_id": run_id,
        "tenant": tenant,
        "model": entry["model"],
        "trial": entry["trial"],
        "job_name": entry["job_name"],
        "model_package_group": entry["model_package_group"],
        "model_package_arn": arn,
        "approval_status": approval,
        "metric": metric,
        "value": value,
        "model_data": entry["model_data"],
        "evaluation": entry["evaluation"],
        "baseline": baseline["uri"],
        "baseline_sha256": baseline["sha256"],
        "created_at": created_at,
        "gsi1pk": f"TENANT#{tenant}",
        "gsi1sk": f"PACKAGE#{created_at}#{run_id}",
    }
