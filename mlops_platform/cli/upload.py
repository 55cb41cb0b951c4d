"""Deliver a dataset as a file: check its columns against the tenant's schema, then upload it to the raw zone.

    mlops upload FILE --tenant TENANT --environment ENV [--dataset NAME] [--day YYYY-MM-DD]
                 [--config PUBLISHED.json] [--region REGION] [--dry-run]

FILE is a CSV file with a header row, a Parquet file or a JSON Lines file of plain rows (one object
of column to value per line), named ``<name>.csv``, ``<name>.parquet`` or ``<name>.jsonl``. Columns
are the source names the tenant file declares, exactly as written there.

Before anything is written, the file's columns (the CSV header, the Parquet schema, the keys of the
first 1,000 JSON lines) are checked against the schema the environment's ``prepare`` step reads:
the tenant config published to the artifacts zone (``--config`` reads a local copy instead). The
features the tenant marks required and the target must be present (the target may be absent from the
dataset named for scoring); an optional feature may be absent, with a note, and prepare reads it as
missing in every row. A column the schema does not declare stops the upload when the tenant rejects
unknown columns (``unknown_columns: reject``) and is reported otherwise. Then the file goes to
``raw/<tenant>/<dataset>/dt=<day>/<file name>`` in the raw zone (``--day`` defaults to today, UTC),
encrypted with the platform's KMS key, and never over an existing object: a file's rows are named
by its key and row numbers, so a replaced file would give old names to new rows.

The bucket and key come from the ``<environment>-Foundation`` stack's outputs. Exit status: 0
uploaded (or, with ``--dry-run``, would upload), 2 the file or a setting is refused, with one sentence.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from mlops_platform.cli import CommandError
from mlops_platform.naming import NAME_PATTERN

HELP = "Check a CSV, Parquet or JSON Lines file against a tenant's schema, then upload it to the raw zone"

RAW_PREFIX = "raw/"
# Where synth publishes each tenant's config (mlops_constructs/publishing.py, CONFIG_PREFIX).
CONFIG_KEY = "artifacts/config/pipelines/{tenant}.json"
OUTPUTS = {"raw": "RawZoneBucketName", "artifacts": "ArtifactsZoneBucketName", "key": "PlatformKeyArn"}
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
SINGLE_PUT_BYTES = 5 * 1024**3  # PutObject's largest object
PART_BYTES = 100 * 1024**2  # multipart parts: up to 10,000 of them, so files up to about 1 TB
CONTENT_TYPES = {".csv": "text/csv", ".parquet": "application/vnd.apache.parquet", ".jsonl": "application/x-ndjson"}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="the .csv, .parquet or .jsonl file to deliver")
    parser.add_argument("--tenant", required=True, help="the tenant, as named in config/pipelines/<tenant>.yaml")
    parser.add_argument("--environment", required=True, help="the environment whose raw zone receives the file")
    parser.add_argument("--dataset", help="the dataset (default: the one the tenant's models learn)")
    parser.add_argument("--day", help="the dt=<day> folder, yyyy-mm-dd (default: today, UTC)")
    parser.add_argument("--config", type=Path, help="a local copy of the published tenant config (JSON)")
    parser.add_argument("--region", help="the environment's region (default: the AWS configuration's)")
    parser.add_argument("--dry-run", action="store_true", help="check and print the destination; write nothing")


def run(args: Any) -> int:
    import boto3

    path: Path = args.file
    _check_file(path)
    if not NAME_PATTERN.fullmatch(args.tenant):
        raise CommandError(f"--tenant has value {args.tenant!r}; allowed: 1 to 63 lowercase letters, digits or hyphens")
    day = _day(args.day)
    session = boto3.Session(region_name=args.region)
    outputs = _stack_outputs(session, f"{args.environment}-Foundation")
    s3 = session.client("s3")
    config = _published_config(s3, outputs["artifacts"], args.tenant, args.config)
    dataset = args.dataset or config["dataset"]["name"]
    notes = check_columns(path, config, dataset)
    for note in notes:
        print(f"mlops upload: {note}", file=sys.stderr)
    key = f"{RAW_PREFIX}{args.tenant}/{dataset}/dt={day}/{path.name}"
    destination = f"s3://{outputs['raw']}/{key}"
    if _exists(s3, outputs["raw"], key):
        raise CommandError(f"{destination} exists already; deliver the file under a name of its own")
    if args.dry_run:
        print(f"would upload {path} to {destination}")
        return 0
    # SSE-KMS with the platform key, as the bucket's default encryption would apply it; the bucket's S3
    # Bucket Key setting applies to the object (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucket-key.html,
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/specifying-kms-encryption.html).
    encryption = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": outputs["key"]}
    if not write_once(s3, outputs["raw"], key, path, {**encryption, "ContentType": CONTENT_TYPES[path.suffix]}):
        raise CommandError(f"{destination} exists already; deliver the file under a name of its own")
    print(f"uploaded {path} to {destination}")
    return 0


def check_columns(path: Path, config: dict[str, Any], dataset: str) -> list[str]:
    """Notes for the operator; raises CommandError (one sentence) when the file cannot be delivered as it is."""
    from mlops_platform.data.published_config import load_schema
    from mlops_platform.data.raw_records import PrepareError
    from mlops_platform.data.readers import columns_of

    declared = config.get("dataset", {})
    scoring = config.get("batch_prediction", {}).get("dataset")
    if dataset not in (declared.get("name"), scoring):
        allowed = sorted({str(declared.get("name")), str(scoring)})
        raise CommandError(f"--dataset has value {dataset!r}; allowed: {' or '.join(allowed)}")
    try:
        with tempfile.TemporaryDirectory() as folder:
            published = Path(folder) / "tenant.json"
            published.write_text(json.dumps(config), encoding="utf-8")
            schema = load_schema(published)
        columns = columns_of(path)
    except PrepareError as error:
        raise CommandError(str(error).replace(str(published), "the tenant config")) from None
    # Every feature may be missing unless the tenant marks it required: prepare reads an absent optional
    # column as missing in every row. The target is needed to learn, so only a scoring dataset may lack it.
    required = [f.name for f in schema.features if f.required] + ([schema.target] if dataset == schema.dataset else [])
    missing = [column for column in required if column not in columns]
    optional = [f.name for f in schema.features if not f.required and f.name not in columns]
    unknown = [column for column in columns if column not in (*schema.feature_names, schema.target)]
    rejects_unknown = declared.get("unknown_columns", "ignore") == "reject"
    if missing or (unknown and rejects_unknown):
        problems = [f"lacks the columns {_names(missing)}"] if missing else []
        if unknown and rejects_unknown:
            problems.append(f"has columns the schema does not declare, {_names(unknown)}")
        raise CommandError(f"{path.name} {' and '.join(problems)} (tenant {schema.tenant}, dataset {dataset})")
    notes = []
    if optional:
        notes.append(
            f"{path.name} lacks the optional columns {_names(optional)}: prepare reads them as missing in every row"
        )
    if unknown:
        notes.append(f"{path.name} has columns the schema does not declare, {_names(unknown)}: prepare ignores them")
    return notes


def _names(columns: list[str]) -> str:
    shown = ", ".join(repr(column) for column in columns[:10])
    return shown + (f" and {len(columns) - 10} more" if len(columns) > 10 else "")


def _check_file(path: Path) -> None:
    if path.suffix not in CONTENT_TYPES:
        raise CommandError(f"{path.name} must be named <name>.csv, <name>.parquet or <name>.jsonl")
    if not FILE_NAME.fullmatch(path.name):
        raise CommandError(
            f"{path.name!r} cannot name an object; allowed: up to 200 letters, digits, dots, hyphens and underscores"
        )
    if not path.is_file():
        raise CommandError(f"{path} is not a file")


def _day(text: str | None) -> str:
    if text is None:
        return datetime.now(UTC).date().isoformat()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return date.fromisoformat(text).isoformat()
    except ValueError:
        pass
    raise CommandError(f"--day has value {text!r}; allowed: a date as yyyy-mm-dd")


def _stack_outputs(session: Any, stack: str) -> dict[str, str]:
    from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

    try:
        described = describe_stack(session, stack)
    except (BotoCoreError, ClientError) as error:
        raise CommandError(f"the stack {stack} cannot be read ({error})") from None
    found = {output["OutputKey"]: output["OutputValue"] for output in described.get("Outputs", [])}
    missing = [name for name in OUTPUTS.values() if name not in found]
    if missing:
        raise CommandError(f"the stack {stack} has no outputs {', '.join(missing)}; deploy the platform first")
    return {what: found[name] for what, name in OUTPUTS.items()}


def describe_stack(session: Any, stack: str) -> dict[str, Any]:
    """CloudFormation's DescribeStacks answer for one stack."""
    [described] = session.client("cloudformation").describe_stacks(StackName=stack)["Stacks"]
    return dict(described)


def _published_config(s3: Any, bucket: str, tenant: str, local: Path | None) -> dict[str, Any]:
    from botocore.exceptions import BotoCoreError, ClientError

    where = str(local) if local else f"s3://{bucket}/{CONFIG_KEY.format(tenant=tenant)}"
    try:
        text = local.read_text(encoding="utf-8") if local else _read(s3, bucket, CONFIG_KEY.format(tenant=tenant))
        config = json.loads(text)
    except (OSError, ValueError, BotoCoreError, ClientError) as error:
        raise CommandError(f"the tenant config {where} cannot be read ({error})") from None
    if not isinstance(config, dict) or not isinstance(config.get("dataset"), dict):
        raise CommandError(f"the tenant config {where} is not a published tenant config (no 'dataset' object)")
    if config.get("tenant", tenant) != tenant:
        raise CommandError(f"the tenant config {where} is tenant {config.get('tenant')!r}'s, not {tenant!r}'s")
    return config


def _read(s3: Any, bucket: str, key: str) -> str:
    return str(s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8"))


def write_once(s3: Any, bucket: str, key: str, path: Path, extra: dict[str, str]) -> bool:
    """Upload ``path`` to a free key in one conditional request; False when an object is there already.

    The HeadObject check before is only the early, friendly message: two uploads can race past it, so the
    write itself carries ``If-None-Match: *`` (S3 conditional writes, on PutObject and on
    CompleteMultipartUpload: https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html).
    Files up to PutObject's 5 GiB go in one request; larger ones in parts of ``PART_BYTES``.
    """
    from botocore.exceptions import ClientError

    try:
        if path.stat().st_size <= SINGLE_PUT_BYTES:
            with path.open("rb") as body:
                s3.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*", **extra)
            return True
        upload = s3.create_multipart_upload(Bucket=bucket, Key=key, **extra)["UploadId"]
        try:
            parts = []
            with path.open("rb") as stream:
                for number, chunk in enumerate(iter(lambda: stream.read(PART_BYTES), b""), start=1):
                    tag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=chunk)
                    parts.append({"PartNumber": number, "ETag": tag["ETag"]})
            s3.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}, IfNoneMatch="*"
            )
        except BaseException:
            s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)
            raise
    except ClientError as error:
        if str(error.response.get("Error", {}).get("Code")) == "PreconditionFailed":
            return False
        raise
    return True


def _exists(s3: Any, bucket: str, key: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if str(error.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
            return False
        raise CommandError(f"s3://{bucket}/{key} cannot be checked ({error})") from None
    return True
