"""Each tenant dataset's typed columns, as the Glue catalog lists them so Athena reads the curated zone.

``prepare`` writes a tenant dataset's valid rows to ``curated/<tenant>/<dataset>/dt=<day>/records.parquet``
whatever way they arrived (records through ingestion, or files), with the restricted names of the
tenant's columns (mlops_platform/schema/columns.py) as Parquet columns. The data lake declares one Glue
table per dataset over that prefix (mlops_constructs/data_lake.py), with these columns, computed at
synth from the tenant file:

- ``record_id`` (string) and ``received_at`` (timestamp), as prepare writes them;
- each feature in declared order: ``double``, ``bigint``, ``boolean``, and ``categorical`` as ``string``;
- the target: ``bigint`` (binary, 0 or 1), ``double`` (regression), ``string`` (multiclass: the labels as text).

Athena types: https://docs.aws.amazon.com/athena/latest/ug/data-types.html; a Glue column is a name, a
type and a comment (https://docs.aws.amazon.com/glue/latest/webapi/API_Column.html: names of 1 to 255
characters, comments up to 255).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from config.tenants import PipelineConfig
from mlops_platform.schema.columns import restricted_name, restricted_names

GLUE_TYPES = {"double": "double", "bigint": "bigint", "boolean": "boolean", "categorical": "string"}
TARGET_GLUE_TYPES = {"binary": "bigint", "regression": "double", "multiclass": "string"}
ENVELOPE = (
    ("record_id", "string", "Stable id of the row: <SQS message id>-<index>, or <file>#<row> for a delivered file"),
    ("received_at", "timestamp", "When the record's message was accepted; a file's rows: midnight UTC of its day"),
)
PARTITION = "dt"
# Names the dataset's table has already: a tenant column restricted to one of them would be ambiguous.
TAKEN = frozenset({*(name for name, _, _ in ENVELOPE), PARTITION})
MAX_COMMENT = 255


@dataclass(frozen=True)
class DatasetColumns:
    """One tenant dataset's Glue table: its name, pinned logical ID and columns (name, type, comment)."""

    tenant: str
    dataset: str
    columns: tuple[tuple[str, str, str], ...]

    @property
    def table_name(self) -> str:
        """``<tenant>__<dataset>`` with hyphens as underscores: Glue's names are lowercase, digits and ``_``."""
        return f"{self.tenant}__{self.dataset}".replace("-", "_")

    @property
    def logical_id(self) -> str:
        return "CuratedTable" + _pascal(self.tenant) + "Of" + _pascal(self.dataset)

    @property
    def location(self) -> str:
        """The dataset's prefix in the curated zone (lambda/plan writes prepare's curated output there)."""
        return f"curated/{self.tenant}/{self.dataset}/"


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))


def dataset_columns(pipelines: Sequence[PipelineConfig]) -> tuple[DatasetColumns, ...]:
    """Every tenant dataset's table; raises ValueError (one sentence) for names Glue or Athena cannot tell apart."""
    found: list[DatasetColumns] = []
    for pipeline in sorted(pipelines, key=lambda p: p.tenant):
        spec = pipeline.dataset
        kinds = {source: _type(feature) for source, feature in spec.features.items()}
        try:
            names = restricted_names([*kinds, spec.target])
        except ValueError as error:
            raise ValueError(f"tenant {pipeline.tenant}: {error}") from None
        for source, name in names.items():
            if name not in TAKEN:
                continue
            raise ValueError(
                f"tenant {pipeline.tenant}: column {source!r} would be named {name!r}, which the curated table "
                "already has (record_id, received_at and the partition dt); rename the column"
            )
        columns = [
            *ENVELOPE,
            *((names[source], GLUE_TYPES[kind], _comment(source, kind)) for source, kind in kinds.items()),
            (names[spec.target], TARGET_GLUE_TYPES[spec.problem_type], _comment(spec.target, "target")),
        ]
        found.append(DatasetColumns(pipeline.tenant, spec.name, tuple(columns)))
    for attribute in ("table_name", "logical_id"):
        seen: dict[str, DatasetColumns] = {}
        for table in found:
            other = seen.setdefault(getattr(table, attribute), table)
            if other is not table:
                raise ValueError(
                    f"tenants {other.tenant} (dataset {other.dataset}) and {table.tenant} (dataset {table.dataset}) "
                    f"would share the Glue table {getattr(table, attribute)}; rename one of them"
                )
    return tuple(found)


def _type(feature: Any) -> str:
    """A feature's type: the short form is the type itself, the long form ``{type: ..., required: ...}`` names it."""
    return feature if isinstance(feature, str) else str(feature.type)


def _comment(source: str, kind: str) -> str:
    text = f"{kind}; source column {source!r}" if restricted_name(source) != source else kind
    return text[:MAX_COMMENT]
