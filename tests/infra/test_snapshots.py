"""One snapshot per stack: any change to a template shows up in review. Update with `make snapshots`."""

from __future__ import annotations

import json
import re

import pytest
from syrupy.extensions.json import JSONSnapshotExtension

from tests.infra.conftest import ENVIRONMENTS, STACKS

# Asset hashes change with any byte of a handler; the snapshot is about the template's shape.
ASSET_HASH = re.compile(r"\b[0-9a-f]{64}\b")


def masked(template: dict) -> dict:
    return json.loads(ASSET_HASH.sub("<asset-hash>", json.dumps(template)))


@pytest.fixture
def snapshot_json(snapshot):
    return snapshot.use_extension(JSONSnapshotExtension)


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_stack_template_matches_its_snapshot(synthesized, snapshot_json, environment, stack):
    assert masked(synthesized.template_json(environment, stack)) == snapshot_json


def test_masking_removes_asset_hashes_and_nothing_else():
    template = {"Code": {"S3Key": "a" * 64 + ".zip"}, "Name": "mlops-dev-analytics"}

    assert masked(template) == {"Code": {"S3Key": "<asset-hash>.zip"}, "Name": "mlops-dev-analytics"}
