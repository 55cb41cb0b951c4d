"""The lake is queryable: each tenant dataset's Glue table lists its typed columns, computed at synth."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import aws_cdk as cdk
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from aws_cdk import aws_kms as kms
from aws_cdk.assertions import Template

from config.loader import load_pipelines
from config.naming import Names
from config.schema import Retention
from mlops_constructs.data_lake import DataLake
from mlops_constructs.lake_datasets import dataset_columns
from tests.conftest import ROOT
from tests.unit.training.conftest import EXAMPLE_DAY, prepare_example

RETENTION = Retention(
    log_retention_days=14,
    noncurrent_version_expiration_days=7,
    raw_infrequent_access_after_days=30,
    raw_archive_after_days=90,
    query_results_expiration_days=3,
    access_logs_expiration_days=30,
    capture_expiration_days=30,
    quarantine_expiration_days=30,
    predictions_expiration_days=90,
    raw_expiration_days=180,
)
# What Athena's Parquet reader maps each Arrow type prepare writes to (https://docs.aws.amazon.com/athena/latest/ug/data-types.html).
GLUE_OF_ARROW = {
    pa.float64(): "double",
    pa.int64(): "bigint",
    pa.bool_(): "boolean",
    pa.string(): "string",
    pa.timestamp("ms", tz="UTC"): "timestamp",
}


def pipeline(tenant: str, dataset: str, target: str, problem_type: str, features: dict[str, Any]) -> Any:
    """A tenant file's dataset as config/tenants.py models it (Contract 3: short and long feature forms)."""
    return SimpleNamespace(
        tenant=tenant,
        dataset=SimpleNamespace(name=dataset, target=target, problem_type=problem_type, features=features),
    )


def example_pipelines() -> list[Any]:
    return [p for p in load_pipelines(ROOT / "config" / "pipelines") if p.tenant == "example"]


def lake_resources(pipelines: list[Any]) -> dict[str, Any]:
    # The app's feature flags (cdk.json), as every environment synthesizes with them.
    app = cdk.App(context=json.loads((ROOT / "cdk.json").read_text())["context"])
    stack = cdk.Stack(app, "Lake", env=cdk.Environment(account="111111111111", region="eu-west-1"))
    DataLake(
        stack,
        "DataLake",
        names=Names(project="mlops", environment="dev"),
        key=kms.Key(stack, "Key"),
        retention=RETENTION,
        removal_policy=cdk.RemovalPolicy.DESTROY,
        datasets=dataset_columns(pipelines),
    )
    return Template.from_stack(stack).to_json()["Resources"]


def tables(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource["Properties"]["TableInput"]
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::Glue::Table"
    }


WINE = pipeline(
    "vineyard",
    "wine-quality",
    "class",
    "multiclass",
    {
        "alcohol": "double",
        "od280/od315_of_diluted_wines": SimpleNamespace(type="double", required=True),
        "mean radius": "double",
        "Année": "bigint",
        "organic": "boolean",
        "carrier": "categorical",
    },
)
CALLS = pipeline("next-caller", "calls", "duration", "regression", {"carrier": "categorical", "hops": "bigint"})


@pytest.fixture(scope="module")
def lake() -> dict[str, dict[str, Any]]:
    return tables(lake_resources([WINE, CALLS, *example_pipelines()]))


def test_each_tenant_dataset_has_a_table_of_its_typed_columns_under_restricted_names(lake):
    wine = lake["CuratedTableVineyardOfWineQuality"]

    assert wine["Name"] == "vineyard__wine_quality"
    columns = [(column["Name"], column["Type"]) for column in wine["StorageDescriptor"]["Columns"]]
    assert columns == [
        ("record_id", "string"),
        ("received_at", "timestamp"),
        ("alcohol", "double"),
        ("od280_od315_of_diluted_wines", "double"),
        ("mean_radius", "double"),
        ("annee", "bigint"),
        ("organic", "boolean"),
        ("carrier", "string"),
        ("class", "string"),
    ]
    comments = {column["Name"]: column["Comment"] for column in wine["StorageDescriptor"]["Columns"]}
    assert comments["mean_radius"] == "double; source column 'mean radius'"
    assert comments["annee"] == "bigint; source column 'Année'"
    assert comments["carrier"] == "categorical"
    calls = lake["CuratedTableNextCallerOfCalls"]["StorageDescriptor"]["Columns"]
    assert [(c["Name"], c["Type"]) for c in calls][2:] == [
        ("carrier", "string"),
        ("hops", "bigint"),
        ("duration", "double"),
    ]


def test_a_dataset_table_reads_its_own_prefix_partitioned_by_day(lake):
    wine = lake["CuratedTableVineyardOfWineQuality"]

    assert [key["Name"] for key in wine["PartitionKeys"]] == ["dt"]
    location = wine["StorageDescriptor"]["Location"]["Fn::Join"][1]
    assert location[-1] == "/curated/vineyard/wine-quality/"
    parameters = wine["Parameters"]
    assert parameters["storage.location.template"]["Fn::Join"][1][-1] == "/curated/vineyard/wine-quality/dt=${dt}/"
    assert parameters["projection.dt.type"] == "date"
    assert "projection.tenant.type" not in parameters
    assert parameters["classification"] == "parquet"
    # The zone-wide tables keep their envelope columns and their three projected partitions.
    assert [key["Name"] for key in lake["CuratedTable"]["PartitionKeys"]] == ["tenant", "dataset", "dt"]
    assert lake["CuratedTable"]["Parameters"]["projection.tenant.type"] == "injected"


def test_the_example_table_lists_exactly_what_prepare_writes_to_the_curated_zone(lake, tmp_path):
    paths = prepare_example(tmp_path)
    written = pq.read_schema(paths.curated / f"dt={EXAMPLE_DAY}" / "records.parquet")

    declared = lake["CuratedTableExampleOfBreastCancer"]["StorageDescriptor"]["Columns"]

    assert [(c["Name"], c["Type"]) for c in declared] == [(f.name, GLUE_OF_ARROW[f.type]) for f in written]


@pytest.mark.parametrize(
    ("pipelines", "sentence"),
    [
        (
            [pipeline("a", "d", "y", "binary", {"Mean Radius": "double", "mean radius": "double"})],
            "tenant a: columns 'Mean Radius' and 'mean radius' would both be named 'mean_radius'",
        ),
        (
            [pipeline("a", "d", "y", "binary", {"DT": "double"})],
            "tenant a: column 'DT' would be named 'dt', which the curated table already has",
        ),
        (
            [
                pipeline("a--b", "c", "y", "binary", {"x": "double"}),
                pipeline("a", "b--c", "y", "binary", {"x": "double"}),
            ],
            "tenants a (dataset b--c) and a--b (dataset c) would share the Glue table a__b__c",
        ),
    ],
)
def test_names_glue_cannot_tell_apart_stop_synth_with_one_sentence(pipelines, sentence):
    with pytest.raises(ValueError, match="rename") as raised:
        dataset_columns(pipelines)

    assert sentence in str(raised.value)
    assert "\n" not in str(raised.value)
