"""The shipped example models' files as S3 file assets, one per example model the environment's variants use.

A variant whose model pointer holds the sentinel ``example`` serves the archive its ``example_model``
names (config/example_models.py), and the drift monitor compares its traffic with that model's
baseline. Only the models some variant uses are assets, so an environment uploads nothing it never
serves.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from config.example_models import archive_path, baseline_path
from config.serving import EndpointConfig


def example_models_of(endpoints: Iterable[EndpointConfig]) -> list[str]:
    """The example models the endpoints' variants serve while their pointers hold the sentinel, sorted."""
    return sorted({variant.example_model for endpoint in endpoints for variant in endpoint.variants})


class ExampleModelFiles(Construct):
    """``archives`` (``model.tar.gz``, for the Serving stack) or ``baselines`` (``baseline.json``, for monitoring)."""

    def __init__(
        self, scope: Construct, id: str, *, models: Iterable[str], kind: Literal["archives", "baselines"]
    ) -> None:
        super().__init__(scope, id)
        path_of = archive_path if kind == "archives" else baseline_path
        self.assets: dict[str, s3_assets.Asset] = {
            name: s3_assets.Asset(self, name.capitalize(), path=str(path_of(name))) for name in sorted(set(models))
        }

    def of(self, model: str) -> s3_assets.Asset:
        return self.assets[model]
