"""Properties of the ingest parser over arbitrary input: it never raises and accounts for every record."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_platform.data import ingest

MAX_RECORD_BYTES = 120


@pytest.fixture(scope="module")
def parser():
    return ingest


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
names = st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}", fullmatch=True)
records = st.lists(st.dictionaries(st.text(max_size=8), json_values, max_size=5) | json_values, max_size=8)


@settings(max_examples=150, deadline=None)
@given(body=st.text())
def test_any_text_is_either_parsed_or_rejected_whole_and_never_raises(parser, body):
    parsed = parser.parse_message(body, MAX_RECORD_BYTES, tenant="acme")

    assert parsed.tenant == "acme"  # whatever the body says, it is quarantined under the queue's tenant
    if not parsed.routed:
        assert parsed.records == []
        assert len(parsed.rejections) == 1
        assert parsed.rejections[0].index is None


@settings(max_examples=150, deadline=None)
@given(tenant=names, dataset=names, batch=records)
def test_every_record_of_a_routable_message_lands_or_is_rejected_exactly_once(parser, tenant, dataset, batch):
    body = json.dumps({"tenant": tenant, "dataset": dataset, "records": batch})
    parsed = parser.parse_message(body, MAX_RECORD_BYTES, tenant=tenant)

    assert (parsed.tenant, parsed.dataset) == (tenant, dataset)
    landed = [index for index, _ in parsed.records]
    rejected = [rejection.index for rejection in parsed.rejections]
    assert sorted(landed + rejected) == list(range(len(batch)))
    for index, record in parsed.records:
        assert record == batch[index]
        assert isinstance(record, dict)
        assert len(parser.encoded(record)) <= MAX_RECORD_BYTES
    for rejection in parsed.rejections:
        assert rejection.payload == batch[rejection.index]
        if rejection.reason == "oversized":
            assert len(parser.encoded(rejection.payload)) > MAX_RECORD_BYTES
        else:
            assert rejection.reason == "not-an-object"
            assert not isinstance(rejection.payload, dict)


# Raw JSON text, as producers write it: number literals Python parses to inf or nan, repeated keys.
number_literals = st.sampled_from(["1e400", "-1e400", "NaN", "Infinity", "-Infinity", "0", "-0.0", "2.5e-3"])
raw_values = number_literals | json_values.map(json.dumps)


@st.composite
def raw_records(draw) -> str:
    keys = draw(st.lists(st.sampled_from(["a", "b", "c"]), max_size=4))  # repeats are likely
    members = [f"{json.dumps(key)}: {draw(raw_values)}" for key in keys]
    return "{" + ", ".join(members) + "}"


@settings(max_examples=150, deadline=None)
@given(tenant=names, dataset=names, batch=st.lists(raw_records(), max_size=6))
def test_what_lands_is_strict_json_with_nothing_changed(parser, tenant, dataset, batch):
    body = f'{{"tenant": "{tenant}", "dataset": "{dataset}", "records": [{", ".join(batch)}]}}'
    parsed = parser.parse_message(body, 10**6, tenant=tenant)

    assert sorted([i for i, _ in parsed.records] + [r.index for r in parsed.rejections]) == list(range(len(batch)))
    for index, record in parsed.records:
        # Strict JSON (no NaN/Infinity), and no key was repeated in what the producer sent.
        strict = json.loads(
            parser.encoded(record),
            parse_constant=lambda name: pytest.fail(f"{name} landed"),
            object_pairs_hook=lambda pairs: dict(pairs),
        )
        assert strict == record
        raw_keys = list(json.loads(batch[index], object_pairs_hook=lambda pairs: [k for k, _ in pairs]))
        assert len(raw_keys) == len(set(raw_keys))
    for rejection in parsed.rejections:
        assert rejection.reason in {"non-finite-number", "duplicate-key"}
    quarantine = parser.quarantine_lines(parsed, "m-1", "2026-11-24T00:00:00.000Z", body)
    lines = [
        json.loads(line, parse_constant=lambda name: pytest.fail(f"{name} in quarantine"))
        for line in quarantine.decode("ascii").splitlines()
    ]
    assert lines[0]["body"] == body
    assert len(lines) == 1 + len(parsed.rejections)


@settings(max_examples=100, deadline=None)
@given(tenant=names, dataset=names, batch=st.lists(st.dictionaries(st.text(max_size=8), json_values), max_size=6))
def test_landed_lines_round_trip_to_the_records_sent(parser, tenant, dataset, batch):
    body = json.dumps({"tenant": tenant, "dataset": dataset, "records": batch})
    parsed = parser.parse_message(body, 10**6, tenant=tenant)
    lines = parser.raw_lines(parsed, "m-1", "2026-11-24T00:00:00.000Z").decode().splitlines()

    assert [json.loads(line)["record"] for line in lines] == batch
    assert [json.loads(line)["record_id"] for line in lines] == [f"m-1-{i}" for i in range(len(batch))]


@settings(max_examples=100, deadline=None)
@given(queue_tenant=names, claimed=st.none() | st.text(max_size=70) | names, dataset=names)
def test_only_the_queue_s_own_tenant_is_routed(parser, queue_tenant, claimed, dataset):
    body = json.dumps({"tenant": claimed, "dataset": dataset, "record": {}})
    parsed = parser.parse_message(body, 1000, tenant=queue_tenant)

    assert parsed.tenant == queue_tenant
    if parsed.routed and parsed.records:
        assert claimed == queue_tenant
    else:
        assert claimed != queue_tenant
        assert [rejection.reason for rejection in parsed.rejections] == ["spoofed-tenant"]


@settings(max_examples=100, deadline=None)
@given(levels=st.integers(min_value=0, max_value=3000), wrap=st.sampled_from(["[]", "{}"]))
def test_no_depth_of_nesting_raises_and_what_lands_stays_within_the_limit(parser, levels, wrap):
    opening, closing = wrap
    inner = opening + ('"k":' if wrap == "{}" else "")
    value = (inner * levels) + "0" + closing * levels
    body = '{"dataset": "d", "records": [' + ("{}" if levels == 0 else '{"a": ' + value + "}") + "]}"
    parsed = parser.parse_message(body, 10**9, tenant="acme")

    for _, record in parsed.records:
        assert parser.depth(record) <= parser.MAX_DEPTH
        parser.raw_lines(parsed, "m-1", "2026-11-24T00:00:00.000Z")  # encodes without RecursionError
    assert len(parsed.records) + len(parsed.rejections) == 1
    assert all(rejection.reason == "too-deep" for rejection in parsed.rejections)
    parser.quarantine_lines(parsed, "m-1", "2026-11-24T00:00:00.000Z", body)
