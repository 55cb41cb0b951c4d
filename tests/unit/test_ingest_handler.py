"""The ingest handler against moto S3, in-process: every record lands once or is quarantined with a reason."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from tests.conftest import load_handler
from tests.lambda_context import LambdaContext

BUCKET = "raw-zone-test"
SENT = datetime(2026, 11, 24, 23, 59, 30, tzinfo=UTC)
DAY = "dt=2026-11-24"


def sqs_message(body: Any, message_id: str, sent: datetime = SENT, receive_count: int = 1) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": f"handle-{message_id}",
        "body": body if isinstance(body, str) else json.dumps(body),
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": str(int(sent.timestamp() * 1000)),
            "SenderId": "AIDAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": str(int(sent.timestamp() * 1000) + 5),
        },
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-west-1:111111111111:ingest",
        "awsRegion": "eu-west-1",
    }


def sqs_event(*messages: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(messages)}


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="eu-west-1")
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        yield client


@pytest.fixture
def ingest(s3, monkeypatch):
    monkeypatch.setenv("RAW_BUCKET", BUCKET)
    monkeypatch.setenv("MAX_RECORD_BYTES", "200")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "ingest")
    return load_handler("ingest")


def objects(s3, prefix: str = "") -> dict[str, list[dict[str, Any]]]:
    """Current objects under ``prefix``, each as its parsed JSON lines."""
    listing = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {
        item["Key"]: [
            json.loads(line)
            for line in s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read().decode().splitlines()
        ]
        for item in listing
    }


def quarantined(s3, key: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A quarantine object as (its header line with the exact message body, its rejection lines).

    Parsed strictly: quarantine must be JSON that Athena or jq can read, with no NaN or Infinity.
    """
    text = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode("ascii")
    strict = [
        json.loads(line, parse_constant=lambda name: pytest.fail(f"{name} in quarantine")) for line in text.splitlines()
    ]
    return strict[0], strict[1:]


def run(ingest, event: dict[str, Any]) -> list[str]:
    response = ingest.handler(event, LambdaContext("ingest", memory_limit_in_mb=512))
    return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]


def test_a_single_record_lands_as_json_lines_under_its_tenant_dataset_and_day(ingest, s3):
    failures = run(ingest, sqs_event(sqs_message({"tenant": "acme", "dataset": "calls", "record": {"a": 1}}, "m-1")))

    assert failures == []
    assert objects(s3) == {
        f"raw/acme/calls/{DAY}/m-1.jsonl": [
            {
                "record_id": "m-1-0",
                "message_id": "m-1",
                "received_at": "2026-11-24T23:59:30.000Z",
                "record": {"a": 1},
            }
        ]
    }


def test_a_batch_of_records_lands_in_order_in_one_object(ingest, s3):
    records = [{"i": i, "text": "é"} for i in range(3)]
    run(ingest, sqs_event(sqs_message({"tenant": "acme", "dataset": "calls", "records": records}, "m-1")))

    lines = objects(s3)[f"raw/acme/calls/{DAY}/m-1.jsonl"]
    assert [line["record"] for line in lines] == records
    assert [line["record_id"] for line in lines] == ["m-1-0", "m-1-1", "m-1-2"]


def test_an_empty_batch_writes_nothing_and_reports_no_failure(ingest, s3):
    assert run(ingest, sqs_event()) == []
    assert objects(s3) == {}


def test_an_empty_record_list_writes_nothing(ingest, s3):
    assert run(ingest, sqs_event(sqs_message({"tenant": "acme", "dataset": "calls", "records": []}, "m-1"))) == []
    assert objects(s3) == {}


def test_malformed_json_is_quarantined_with_its_reason_and_original_body(ingest, s3):
    body = '{"tenant": "acme", "dataset": "calls", "record": {'
    failures = run(ingest, sqs_event(sqs_message(body, "m-1")))

    assert failures == []  # accounted for: retrying cannot fix it
    assert objects(s3, "raw/") == {}
    header, [line] = quarantined(s3, f"quarantine/_unrouted/_unrouted/{DAY}/m-1.jsonl")
    assert header == {"message_id": "m-1", "received_at": "2026-11-24T23:59:30.000Z", "body": body}
    assert line["reason"] == "malformed-json"
    assert line["index"] is None


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ({"tenant": "Acme Corp", "dataset": "calls", "record": {}}, "invalid-tenant"),
        ({"dataset": "calls", "record": {}}, "invalid-tenant"),
        ({"tenant": "acme", "dataset": "../etc", "record": {}}, "invalid-dataset"),
        ({"tenant": "acme", "dataset": 7, "record": {}}, "invalid-dataset"),
        ({"tenant": "acme", "dataset": "calls"}, "missing-records"),
        ({"tenant": "acme", "dataset": "calls", "record": {}, "records": []}, "missing-records"),
        ({"tenant": "acme", "dataset": "calls", "records": {"a": 1}}, "invalid-records"),
        ({"tenant": "acme", "dataset": "calls", "record": {}, "extra": 1}, "unknown-field"),
        (["tenant", "acme"], "not-an-object"),
        ("NaN", "not-an-object"),
        ('{"tenant": "acme", "tenant": "acme", "dataset": "calls", "record": {}}', "duplicate-key"),
    ],
)
def test_a_message_that_cannot_be_routed_is_quarantined_whole(ingest, s3, message, reason):
    body = message if isinstance(message, str) else json.dumps(message)
    assert run(ingest, sqs_event(sqs_message(body, "m-1"))) == []

    assert objects(s3, "raw/") == {}
    header, [line] = quarantined(s3, f"quarantine/_unrouted/_unrouted/{DAY}/m-1.jsonl")
    assert header["body"] == body
    assert line["reason"] == reason
    assert line["detail"]


def test_an_oversized_record_is_quarantined_and_its_neighbours_land(ingest, s3):
    big = {"blob": "x" * 500}
    records = [{"i": 0}, big, {"i": 2}, "not an object"]
    run(ingest, sqs_event(sqs_message({"tenant": "acme", "dataset": "calls", "records": records}, "m-1")))

    landed = objects(s3, "raw/")[f"raw/acme/calls/{DAY}/m-1.jsonl"]
    _, rejected = quarantined(s3, f"quarantine/acme/calls/{DAY}/m-1.jsonl")
    assert [line["record"] for line in landed] == [{"i": 0}, {"i": 2}]
    assert [(line["index"], line["reason"]) for line in rejected] == [(1, "oversized"), (3, "not-an-object")]
    assert rejected[0]["payload"] == big  # nothing is lost: the record is kept whole
    # Every record of the message is accounted for exactly once.
    indices = [int(line["record_id"].rsplit("-", 1)[1]) for line in landed] + [line["index"] for line in rejected]
    assert sorted(indices) == list(range(len(records)))


def test_numbers_json_cannot_represent_are_quarantined_and_their_neighbours_land(ingest, s3):
    body = '{"tenant": "acme", "dataset": "calls", "records": [{"x": 1e400}, {"x": 1}, {"x": NaN}, {"x": -Infinity}]}'
    run(ingest, sqs_event(sqs_message(body, "m-1")))

    landed = objects(s3, "raw/")[f"raw/acme/calls/{DAY}/m-1.jsonl"]
    raw_bytes = s3.get_object(Bucket=BUCKET, Key=f"raw/acme/calls/{DAY}/m-1.jsonl")["Body"].read()
    assert [line["record"] for line in landed] == [{"x": 1}]
    assert b"Infinity" not in raw_bytes
    assert b"NaN" not in raw_bytes
    header, rejected = quarantined(s3, f"quarantine/acme/calls/{DAY}/m-1.jsonl")
    assert [(line["index"], line["reason"], line["payload"]) for line in rejected] == [
        (0, "non-finite-number", None),
        (2, "non-finite-number", None),
        (3, "non-finite-number", None),
    ]
    assert header["body"] == body  # the literals themselves (1e400, not "Infinity") are kept


def test_a_record_with_a_repeated_key_is_quarantined_instead_of_silently_losing_a_value(ingest, s3):
    body = '{"tenant": "acme", "dataset": "calls", "records": [{"d": 1, "d": 2}, {"n": {"e": 1, "e": 1}}, {"d": 3}]}'
    run(ingest, sqs_event(sqs_message(body, "m-1")))

    assert [line["record"] for line in objects(s3, "raw/")[f"raw/acme/calls/{DAY}/m-1.jsonl"]] == [{"d": 3}]
    header, rejected = quarantined(s3, f"quarantine/acme/calls/{DAY}/m-1.jsonl")
    assert [(line["index"], line["reason"], line["payload"]) for line in rejected] == [
        (0, "duplicate-key", None),
        (1, "duplicate-key", None),
    ]
    assert "'d'" in rejected[0]["detail"]
    assert "'e'" in rejected[1]["detail"]
    assert header["body"] == body  # both values of "d" are still there


def test_a_redelivered_message_finds_its_objects_and_writes_nothing_again(ingest, s3):
    message = {"tenant": "acme", "dataset": "calls", "records": [{"i": 0}, {"blob": "x" * 500}]}
    first = sqs_event(sqs_message(message, "m-1"))
    # SQS redelivers the same message id and SentTimestamp, a day later and with a new receive count.
    again = sqs_event(sqs_message(message, "m-1", receive_count=2))
    run(ingest, first)
    before = {key: s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in objects(s3)}
    run(ingest, again)
    after = {key: s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in objects(s3)}

    assert after == before
    assert len(after) == 2  # one raw object, one quarantine object
    assert sum(len(lines) for lines in objects(s3).values()) == 3  # a record, the body, a rejection
    # Written only if absent: no second version, so no second "Object Created" event downstream.
    assert len(s3.list_object_versions(Bucket=BUCKET)["Versions"]) == 2


def fail_puts_for(s3, message_id: str, prefix: str = ""):
    """Make S3 fail (as a throttled or unavailable service would) for one message's objects."""
    real_put = s3.put_object

    def put_object(**kwargs):
        if kwargs["Key"].startswith(prefix) and kwargs["Key"].endswith(f"/{message_id}.jsonl"):
            raise ClientError(
                {"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."}}, "PutObject"
            )
        return real_put(**kwargs)

    return put_object


def test_an_s3_failure_mid_batch_reports_only_the_failed_message_and_its_retry_lands_once(ingest, s3, monkeypatch):
    messages = [sqs_message({"tenant": "acme", "dataset": "calls", "record": {"i": i}}, f"m-{i}") for i in range(3)]
    monkeypatch.setattr(ingest.ingest, "s3", type("Flaky", (), {"put_object": staticmethod(fail_puts_for(s3, "m-1"))}))

    assert run(ingest, sqs_event(*messages)) == ["m-1"]
    assert sorted(objects(s3)) == [f"raw/acme/calls/{DAY}/m-0.jsonl", f"raw/acme/calls/{DAY}/m-2.jsonl"]

    # SQS redelivers only the failed message; S3 has recovered.
    monkeypatch.setattr(ingest.ingest, "s3", s3)
    assert run(ingest, sqs_event(messages[1])) == []
    landed = objects(s3, "raw/")
    assert sorted(line["record"]["i"] for lines in landed.values() for line in lines) == [0, 1, 2]


def test_a_failed_quarantine_write_fails_the_message_and_the_retry_duplicates_nothing(ingest, s3, monkeypatch):
    message = sqs_message({"tenant": "acme", "dataset": "calls", "records": [{"i": 0}, [1]]}, "m-1")
    flaky = fail_puts_for(s3, "m-1", prefix="quarantine/")
    monkeypatch.setattr(ingest.ingest, "s3", type("Flaky", (), {"put_object": staticmethod(flaky)}))

    assert run(ingest, sqs_event(message)) == ["m-1"]

    monkeypatch.setattr(ingest.ingest, "s3", s3)
    assert run(ingest, sqs_event(message)) == []
    assert {key: len(lines) for key, lines in objects(s3).items()} == {
        f"raw/acme/calls/{DAY}/m-1.jsonl": 1,
        f"quarantine/acme/calls/{DAY}/m-1.jsonl": 2,  # the body, then the one rejection
    }


def test_when_every_write_fails_every_message_is_reported_not_raised(ingest, s3, monkeypatch):
    monkeypatch.setattr(ingest.ingest, "bucket", "no-such-bucket")
    messages = [sqs_message({"tenant": "acme", "dataset": "calls", "record": {"i": i}}, f"m-{i}") for i in range(2)]

    assert run(ingest, sqs_event(*messages)) == ["m-0", "m-1"]


def test_a_message_id_that_could_escape_its_prefix_is_hashed(ingest, s3):
    message_id = "../../outside"
    run(ingest, sqs_event(sqs_message({"tenant": "acme", "dataset": "calls", "record": {}}, message_id)))

    digest = hashlib.sha256(message_id.encode()).hexdigest()
    assert list(objects(s3)) == [f"raw/acme/calls/{DAY}/{digest}.jsonl"]


def test_the_day_partition_comes_from_when_sqs_accepted_the_message(ingest, s3):
    sent = datetime(2026, 1, 2, 0, 0, 1, tzinfo=UTC)
    run(ingest, sqs_event(sqs_message({"tenant": "acme", "dataset": "calls", "record": {}}, "m-1", sent=sent)))

    assert list(objects(s3)) == ["raw/acme/calls/dt=2026-01-02/m-1.jsonl"]


def test_landed_and_quarantined_counts_are_published_as_the_alarmed_metrics(ingest, s3, capsys):
    message = {"tenant": "acme", "dataset": "calls", "records": [{"i": 0}, {"i": 1}, "bad"]}
    run(ingest, sqs_event(sqs_message(message, "m-1")))

    [emf] = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    directive = emf["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "mlops/test"
    assert directive["Dimensions"] == [["service"]]
    assert emf["service"] == "ingest"
    assert sum(emf["RecordsLanded"]) == 2
    assert sum(emf["RecordsQuarantined"]) == 1
