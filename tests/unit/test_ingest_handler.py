"""The ingest handler against moto S3, in-process: every record lands once or is quarantined with a reason,
and under the tenant of the queue it came from, whatever it claims."""

from __future__ import annotations

import hashlib
import json
import sys
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
# Each tenant's queue, as the construct writes TENANT_QUEUES (tests/infra/test_ingestion.py checks that side).
QUEUES = {
    "acme": "arn:aws:sqs:eu-west-1:111111111111:mlops-test-ingest-acme",
    "globex": "arn:aws:sqs:eu-west-1:111111111111:mlops-test-ingest-globex",
}
ACME = QUEUES["acme"]


def queue_of(tenant: str) -> str:
    """The ingestion queue of ``tenant``, named as the construct names it."""
    return QUEUES.get(tenant, f"arn:aws:sqs:eu-west-1:111111111111:mlops-test-ingest-{tenant}")


def tenant_queues(*tenants: str) -> str:
    """TENANT_QUEUES as the construct writes it, for these tenants and the two above."""
    return json.dumps({queue_of(tenant): tenant for tenant in {*QUEUES, *tenants}})


def sqs_message(
    body: Any, message_id: str, sent: datetime = SENT, receive_count: int = 1, queue: str = ACME
) -> dict[str, Any]:
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
        "eventSourceARN": queue,
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
    monkeypatch.setenv("MAX_RECORDS_PER_MESSAGE", "5")
    monkeypatch.setenv("TENANT_QUEUES", tenant_queues())
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
    header, [line] = quarantined(s3, f"quarantine/acme/_unrouted/{DAY}/m-1.jsonl")
    assert header == {"message_id": "m-1", "received_at": "2026-11-24T23:59:30.000Z", "body": body}
    assert line["reason"] == "malformed-json"
    assert line["index"] is None


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ({"tenant": "Acme Corp", "dataset": "calls", "record": {}}, "spoofed-tenant"),
        ({"tenant": None, "dataset": "calls", "record": {}}, "spoofed-tenant"),
        ({"tenant": "globex", "dataset": "calls", "record": {}}, "spoofed-tenant"),
        ({"tenant": "acme", "dataset": "../etc", "record": {}}, "invalid-dataset"),
        ({"tenant": "acme", "dataset": 7, "record": {}}, "invalid-dataset"),
        ({"tenant": "acme", "dataset": "calls"}, "missing-records"),
        ({"tenant": "acme", "dataset": "calls", "record": {}, "records": []}, "missing-records"),
        ({"tenant": "acme", "dataset": "calls", "records": {"a": 1}}, "invalid-records"),
        ({"tenant": "acme", "dataset": "calls", "record": {}, "extra": 1}, "unknown-field"),
        (["tenant", "acme"], "not-an-object"),
        ("NaN", "not-an-object"),
        ('{"tenant": "acme", "tenant": "acme", "dataset": "calls", "record": {}}', "duplicate-key"),
        ({"dataset": "calls", "records": [{"i": i} for i in range(6)]}, "too-many-records"),
    ],
)
def test_a_message_that_cannot_be_routed_is_quarantined_whole(ingest, s3, message, reason):
    body = message if isinstance(message, str) else json.dumps(message)
    assert run(ingest, sqs_event(sqs_message(body, "m-1"))) == []

    assert objects(s3, "raw/") == {}
    header, [line] = quarantined(s3, f"quarantine/acme/_unrouted/{DAY}/m-1.jsonl")
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


def test_the_tenant_is_the_queue_s_so_a_message_without_one_lands_under_it(ingest, s3):
    run(ingest, sqs_event(sqs_message({"dataset": "calls", "record": {"a": 1}}, "m-1", queue=QUEUES["globex"])))

    assert list(objects(s3)) == [f"raw/globex/calls/{DAY}/m-1.jsonl"]


def test_a_producer_of_one_tenant_cannot_land_records_in_another_tenant_s_raw_zone(ingest, s3):
    """Issue 17: a message with one producer's identity and another tenant's name landed in that tenant's raw/."""
    spoofed = {"tenant": "globex", "dataset": "calls", "records": [{"a": 1}, {"a": 2}]}
    assert run(ingest, sqs_event(sqs_message(spoofed, "m-1", queue=ACME))) == []

    assert objects(s3, "raw/") == {}
    assert list(objects(s3)) == [f"quarantine/acme/_unrouted/{DAY}/m-1.jsonl"]  # the sender's tenant, not the claim
    header, [line] = quarantined(s3, f"quarantine/acme/_unrouted/{DAY}/m-1.jsonl")
    assert (line["reason"], line["index"]) == ("spoofed-tenant", None)
    assert "'globex'" in line["detail"]
    assert "'acme'" in line["detail"]
    assert header["body"] == json.dumps(spoofed)  # kept whole: both records are still there


def test_a_message_from_a_queue_no_tenant_owns_is_quarantined_unrouted(ingest, s3):
    stranger = "arn:aws:sqs:eu-west-1:111111111111:someone-elses"
    run(ingest, sqs_event(sqs_message({"dataset": "calls", "record": {}}, "m-1", queue=stranger)))

    assert objects(s3, "raw/") == {}
    _, [line] = quarantined(s3, f"quarantine/_unrouted/_unrouted/{DAY}/m-1.jsonl")
    assert line["reason"] == "unknown-queue"


def test_records_per_message_are_capped_and_the_cap_itself_lands(ingest, s3):
    at_cap = {"dataset": "calls", "records": [{"i": i} for i in range(5)]}
    over = {"dataset": "calls", "records": [{"i": i} for i in range(6)]}
    run(ingest, sqs_event(sqs_message(at_cap, "m-1"), sqs_message(over, "m-2")))

    assert len(objects(s3, "raw/")[f"raw/acme/calls/{DAY}/m-1.jsonl"]) == 5
    assert f"raw/acme/calls/{DAY}/m-2.jsonl" not in objects(s3, "raw/")  # never part of a message
    header, [line] = quarantined(s3, f"quarantine/acme/_unrouted/{DAY}/m-2.jsonl")
    assert (line["reason"], line["index"]) == ("too-many-records", None)
    assert "6 records" in line["detail"]
    assert "at most 5" in line["detail"]
    assert json.loads(header["body"]) == over


def nested(levels: int) -> str:
    """A record of ``levels`` nested lists inside one object, as raw JSON text."""
    return '{"a":' + "[" * levels + "]" * levels + "}"


@pytest.mark.parametrize("levels", [40, sys.getrecursionlimit() - 10, sys.getrecursionlimit() * 5])
def test_a_deeply_nested_record_is_quarantined_not_retried_into_the_dead_letter_queue(ingest, s3, levels):
    """Near the recursion limit, today's parser accepted the record and then raised RecursionError writing
    its raw line: the message failed, SQS retried it, and it ended in the dead-letter queue."""
    body = '{"dataset": "calls", "records": [{"i": 0}, ' + nested(levels) + "]}"

    assert run(ingest, sqs_event(sqs_message(body, "m-1"))) == []  # accounted for, not retried

    everything = objects(s3)
    rejections = [line for key, lines in everything.items() if key.startswith("quarantine/") for line in lines[1:]]
    assert [line["reason"] for line in rejections] == ["too-deep"]
    if rejections[0]["index"] is not None:  # parsed: its neighbour landed
        assert [line["record"] for line in everything[f"raw/acme/calls/{DAY}/m-1.jsonl"]] == [{"i": 0}]
        assert rejections[0]["payload"] is None  # the body keeps it; its JSON line would nest too deep again


def test_a_record_at_the_depth_limit_lands(ingest, s3):
    from mlops_platform.data.ingest import MAX_DEPTH

    body = '{"dataset": "calls", "record": ' + nested(MAX_DEPTH - 1) + "}"
    run(ingest, sqs_event(sqs_message(body, "m-1")))

    assert list(objects(s3)) == [f"raw/acme/calls/{DAY}/m-1.jsonl"]
