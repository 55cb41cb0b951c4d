"""The datasets each tenant trains on, read from the pipeline configs synth publishes."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from mlops_platform.aws import error_code


class Unpublished(Exception):
    """A tenant without a readable published pipeline config: nothing to train."""


class PublishedConfigs:
    """The datasets each tenant trains on, from the configs synth publishes (``<CONFIG_PREFIX><tenant>.json``, as
    the plan function reads them), looked up once per invocation: a tenant onboarded since is seen at once."""

    def __init__(self, s3: Any, *, bucket: str, prefix: str):
        self.s3 = s3
        self.bucket = bucket
        self.prefix = prefix
        self._datasets: dict[str, frozenset[str]] = {}

    def forget(self) -> None:
        """Read every config again: one published since the last batch counts."""
        self._datasets.clear()

    def training_datasets(self, tenant: str) -> frozenset[str]:
        if tenant not in self._datasets:
            key = f"{self.prefix}{tenant}.json"
            # Listed first: GetObject answers a missing key with NoSuchKey only to a caller allowed to list the
            # bucket unconditionally, and AccessDenied otherwise; listing under the prefix needs no more than
            # ListBucket on it (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html, Permissions).
            listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=key, MaxKeys=1).get("Contents", [])
            if not any(entry.get("Key") == key for entry in listed):
                raise Unpublished(f"tenant {tenant!r} has no published pipeline config ({key})")
            try:
                body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            except ClientError as error:
                if error_code(error) in ("NoSuchKey", "404"):  # unpublished since
                    raise Unpublished(f"tenant {tenant!r} has no published pipeline config ({key})") from None
                raise
            try:
                dataset = json.loads(body)["dataset"]["name"]
            except (ValueError, KeyError, TypeError):
                raise Unpublished(f"the published config {key} names no dataset.name") from None
            if not isinstance(dataset, str):
                raise Unpublished(f"the published config {key} names no dataset.name")
            self._datasets[tenant] = frozenset({dataset})
        return self._datasets[tenant]
