"""The feature schema evaluation writes lists the features in the order prepare and train use.

The published config is written with sorted keys (mlops_constructs/publishing.py), so its
``dataset.features`` mapping is alphabetical; ``dataset.columns`` keeps the declared order. The
baseline job refused every model of the example (`mlops local` found it) while the schema followed
the mapping.
"""

from __future__ import annotations

import json

from mlops_platform.data.published_config import load_schema
from mlops_platform.evaluation.documents import feature_schema


def test_the_schema_keeps_the_declared_column_order_of_the_config_as_published(platform_config, tmp_path):
    [example] = platform_config.pipelines
    published = json.loads(json.dumps(example.published(), indent=2, sort_keys=True))  # as publishing writes it
    path = tmp_path / "example.json"
    path.write_text(json.dumps(published), encoding="utf-8")

    names = [feature["name"] for feature in feature_schema(published)["features"]]

    assert names == [column.name for column in load_schema(path).features]  # what prepare and train read
    assert names != sorted(names)  # the example declares them unsorted, so the test can tell
