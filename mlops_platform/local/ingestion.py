"""The loop's first phase: a dataset's records through the deployed ingestion queue and function.

The records are sent to the tenant's queue, which the Ingestion stack outputs
(``IngestQueueUrl<tenant id>``), as producers do. Lambda's SQS poller is what the emulator cannot
run (moto invokes functions through Docker), so this module plays it, as the deployed event source
mapping says: it receives up to the mapping's batch size, hands the batch to the mapped function's
own handler (:mod:`.functions`) in Lambda's SQS event shape, and deletes what the handler did not
report as failed (partial batch response).

A data file ``<folder>/<tenant>/<dataset>.jsonl`` holds one record per line, either the record itself
or the raw zone's form ``{"record": {...}, ...}`` (data/example/ ships that form).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import boto3

from mlops_platform.local import functions
from mlops_platform.local.deploy import Stack
from mlops_platform.naming import tenant_id

RECORDS_PER_MESSAGE = 50  # ~1 KiB a record: far below SQS's 256 KiB a message
QUEUE_OUTPUT = "IngestQueueUrl"  # + the tenant's id (mlops_platform.naming.tenant_id)


class IngestionError(Exception):
    """Why the records could not go through ingestion, in one sentence."""


@dataclass(frozen=True)
class Counts:
    sent: int  # records sent
    landed: int  # rows in the raw zone objects of the messages sent
    quarantined: int  # quarantine objects of the messages sent
    failed_messages: int  # reported failed by the handler (left on the queue, as SQS would retry them)


def read_records(data: Path) -> list[Any]:
    records = []
    for number, line in enumerate(data.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as error:
            raise IngestionError(f"{data} line {number} is not JSON ({error}): give one JSON object a line") from error
        records.append(value["record"] if isinstance(value, dict) and isinstance(value.get("record"), dict) else value)
    return records


def queue_url(stacks: list[Stack], cloudformation: Any, tenant: str) -> str:
    """The URL of the tenant's own ingestion queue: the queue is what names the tenant of a message."""
    key = QUEUE_OUTPUT + tenant_id(tenant)
    for stack in stacks:
        outputs = cloudformation.describe_stacks(StackName=stack.name)["Stacks"][0].get("Outputs", [])
        for output in outputs:
            if output["OutputKey"] == key:
                return str(output["OutputValue"])
    raise IngestionError(f"no deployed stack has the output {key}, so tenant {tenant} has no ingestion queue")


def ingest(data: Path, *, stacks: list[Stack], account: str, region: str) -> Counts:
    tenant, dataset = data.parent.name, data.stem
    records = read_records(data)
    sqs, lambdas, s3 = boto3.client("sqs"), boto3.client("lambda"), boto3.client("s3")
    url = queue_url(stacks, boto3.client("cloudformation"), tenant)
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    mappings = lambdas.list_event_source_mappings(EventSourceArn=queue_arn)["EventSourceMappings"]
    if not mappings:
        raise IngestionError(f"no function reads the ingestion queue {queue_arn} (no event source mapping)")
    mapping = mappings[0]
    sent_ids = set()
    for start in range(0, len(records), RECORDS_PER_MESSAGE):
        body = json.dumps(
            {"tenant": tenant, "dataset": dataset, "records": records[start : start + RECORDS_PER_MESSAGE]}
        )
        sent_ids.add(sqs.send_message(QueueUrl=url, MessageBody=body)["MessageId"])
    failed = _poll(sqs, url, queue_arn, mapping, account=account, region=region)
    environment = lambdas.get_function_configuration(FunctionName=mapping["FunctionArn"])["Environment"]["Variables"]
    landed = _count(s3, environment["RAW_BUCKET"], environment.get("RAW_PREFIX", "raw/"), sent_ids, rows=True)
    quarantined = _count(s3, environment["RAW_BUCKET"], environment.get("QUARANTINE_PREFIX", "quarantine/"), sent_ids)
    return Counts(sent=len(records), landed=landed, quarantined=quarantined, failed_messages=failed)


def _poll(sqs: Any, url: str, queue_arn: str, mapping: dict[str, Any], *, account: str, region: str) -> int:
    """Lambda's SQS poller: batches to the handler until the queue is empty; returns the failed count."""
    failed = 0
    batch_size = min(int(mapping.get("BatchSize", 10)), 10)
    while True:
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=batch_size, AttributeNames=["All"], VisibilityTimeout=300
        ).get("Messages", [])
        if not messages:
            return failed
        event = {"Records": [_sqs_record(message, queue_arn, region) for message in messages]}
        answer = functions.invoke(mapping["FunctionArn"], event, account=account, region=region) or {}
        failures = {item["itemIdentifier"] for item in answer.get("batchItemFailures", [])}
        failed += len(failures)
        done = [m for m in messages if m["MessageId"] not in failures]
        if done:
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )


def _sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One record of Lambda's SQS event (docs: with-sqs.html, "Example standard queue message event")."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": message.get("MessageAttributes", {}),
        "md5OfBody": hashlib.md5(message["Body"].encode("utf-8")).hexdigest(),  # noqa: S324 - SQS's own checksum
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def _count(s3: Any, bucket: str, prefix: str, message_ids: set[str], *, rows: bool = False) -> int:
    """Objects (or their JSON Lines rows) that the sent messages left under ``prefix``."""
    total = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if PurePosixPath(item["Key"]).stem not in message_ids:
                continue
            if not rows:
                total += 1
                continue
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode("utf-8")
            total += sum(1 for line in body.splitlines() if line.strip())
    return total
