"""Pure checks behind the collector: SPEC §1 rules, body splitting, Segment mapping."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingestion.collector import evaluate_event
from ingestion.collector.bodies import BodyError, decompress, split_events
from ingestion.event_schema import (
    check_event,
    epoch_seconds,
    future_limit,
    has_card_number_like_value,
    parse_rfc3339,
)

NOW = datetime(2026, 1, 20, 0, 0, tzinfo=UTC)
BASE = {"id": "e1", "type": "api.request", "subject": "acme", "time": "2026-01-10T10:00:00Z"}


def reason(event: object, now: datetime = NOW) -> str | None:
    raw = event if isinstance(event, str) else json.dumps(event)
    return check_event(raw, now=now).reason


def with_(**fields: object) -> dict[str, object]:
    event = dict(BASE)
    for key, value in fields.items():
        if value is ...:
            event.pop(key, None)
        else:
            event[key] = value
    return event


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (BASE, None),
        (with_(source="mobile", data={"tokens": 1.50, "n": "42"}), None),
        (with_(data=None), None),  # data: null counts as no data
        (with_(data={"blob": "x" * 70_000}), "too_large"),
        ('{"id": "e1", "type": "api.request"', "invalid_json"),
        ("[1, 2]", "invalid_json"),  # valid JSON, not an object
        ('{"id": "e1", "n": NaN}', "invalid_json"),  # RFC 8259 has no NaN
        ('{"id": "\\ud800"}', "invalid_json"),  # lone surrogate
        (with_(id=...), "missing_field:id"),
        (with_(id=None), "missing_field:id"),
        (with_(id=""), "missing_field:id"),
        (with_(type=""), "missing_field:type"),
        (with_(subject=None), "missing_field:subject"),
        (with_(time=...), "missing_field:time"),
        (with_(id=42), "invalid_id"),
        (with_(id="x" * 257), "invalid_id"),
        (with_(id="x" * 256), None),
        (with_(time="2026-01-12 10:00:00"), "invalid_time"),
        (with_(time="2026-01-12T10:00:00"), "invalid_time"),  # no offset
        (with_(time=1768000000), "invalid_time"),
        (with_(data="oops"), "invalid_data"),
        (with_(data=[1, 2]), "invalid_data"),
        (with_(time="2026-01-20T00:10:00Z"), "time_in_future"),
        (with_(time="2026-01-20T00:04:00Z"), None),  # within the 5-minute slack
        (with_(data={"note": "4111111111111111"}), "card_number_like_value"),
        (with_(data={"deep": [{"card": "4111111111111111"}]}), "card_number_like_value"),
        (with_(data={"ref": "4111111111111112"}), None),  # fails Luhn
        (with_(data={"n": 4111111111111111}), None),  # a number, not a digit string
        (with_(data={"4111111111111111": "key"}), None),  # keys are not values
    ],
)
def test_each_spec_reason(event: object, expected: str | None) -> None:
    assert reason(event) == expected


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        # the first failing rule in SPEC order wins
        (with_(id=..., time="bad"), "missing_field:id"),
        (with_(type=..., subject=...), "missing_field:type"),
        (with_(id=7, time="bad"), "invalid_id"),
        (with_(time="bad", data="oops"), "invalid_time"),
        (with_(data="oops", time="2027-01-01T00:00:00Z"), "invalid_data"),
        (with_(time="2027-01-01T00:00:00Z", data={"c": "4111111111111111"}), "time_in_future"),
    ],
)
def test_first_failing_rule_wins(event: dict[str, object], expected: str) -> None:
    assert reason(event) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-31T23:59:59Z",
        "2026-01-31T23:59:59+02:00",
        "2026-01-31T23:59:59-00:00",
        "2026-01-31t23:59:59z",  # RFC 3339 allows lower case
        "2026-01-31T23:59:59.123456789Z",
        "2024-02-29T00:00:00Z",
        "0001-01-01T00:00:00Z",
    ],
)
def test_rfc3339_accepts(text: str) -> None:
    assert parse_rfc3339(text) is not None


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-31",
        "2026-01-31T23:59Z",  # seconds are required
        "2026-01-31 23:59:59Z",  # not the RFC 3339 grammar
        "2026-01-31T23:59:59",
        "2026-01-31T23:59:59+0200",
        "2026-02-29T00:00:00Z",  # not a leap year
        "2026-13-01T00:00:00Z",
        "2026-01-31T24:00:00Z",
        "2026-01-31T23:59:60Z",  # leap second: no storable instant
        "2026-01-31T23:59:59+24:00",
        "2026-01-31T23:59:59.Z",
        "２０２６-01-31T23:59:59Z",  # non-ASCII digits
        " 2026-01-31T23:59:59Z",
    ],
)
def test_rfc3339_rejects(text: str) -> None:
    assert parse_rfc3339(text) is None


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    ),
    st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59),
)
def test_rfc3339_instant_matches_datetime(moment: datetime, offset_minutes: int) -> None:
    local = moment.astimezone(__import__("datetime").timezone(timedelta(minutes=offset_minutes)))
    assert parse_rfc3339(local.isoformat()) == epoch_seconds(moment)


def test_time_in_future_is_exact_at_the_boundary() -> None:
    limit = NOW + timedelta(minutes=5)
    at = limit.strftime("%Y-%m-%dT%H:%M:%S")
    assert reason(with_(time=at + "Z")) is None
    assert reason(with_(time=at + ".000000000Z")) is None
    assert reason(with_(time=at + ".0000000001Z")) == "time_in_future"
    assert reason(with_(time=at + "+00:00")) is None
    assert (
        reason(with_(time=(limit + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S+01:00"))) is None
    )
    assert future_limit(NOW) == epoch_seconds(NOW) + 300


@given(st.from_regex(r"[0-9]{13,19}", fullmatch=True))
def test_card_check_is_luhn_on_13_to_19_digits(digits: str) -> None:
    total = sum(
        (d * 2 - 9 if d * 2 > 9 else d * 2) if i % 2 else d
        for i, d in enumerate(int(c) for c in reversed(digits))
    )
    assert has_card_number_like_value({"a": digits}) == (total % 10 == 0)
    assert not has_card_number_like_value({"a": digits + "0" * (20 - len(digits))})


# --- bodies -------------------------------------------------------------------------


def test_ndjson_skips_blank_lines_and_keeps_raw_text() -> None:
    body = b'{"id":"a","data":{"x":1.50}}\r\n\n   \n{"id":"b"}\nnot json'
    assert split_events(body, "application/x-ndjson") == [
        b'{"id":"a","data":{"x":1.50}}',
        b'{"id":"b"}',
        b"not json",
    ]
    assert split_events(body, None) == split_events(body, "application/x-ndjson")


def test_array_elements_keep_their_literal_text_on_one_line() -> None:
    body = b'[ {"id": "a",\n "data": {"x": 1.50, "y": 1e3}} ,7, {"id":"b"} ]\n'
    assert split_events(body, "application/json") == [
        b'{"id": "a",  "data": {"x": 1.50, "y": 1e3}}',
        b"7",
        b'{"id":"b"}',
    ]
    assert split_events(b"[]", None) == []


def test_single_object_even_pretty_printed_is_one_event() -> None:
    assert split_events(b'{\n  "id": "a",\n  "n": 0.10\n}\n', None) == [
        b'{   "id": "a",   "n": 0.10 }'
    ]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"", "empty_body"),
        (b"  \n", "empty_body"),
        (b'[{"id": 1},', "invalid_json_array"),
        (b"[1] 2", "invalid_json_array"),
        (b"[1 2]", "invalid_json_array"),
    ],
)
def test_unreadable_bodies(body: bytes, error: str) -> None:
    with pytest.raises(BodyError) as caught:
        split_events(body, None)
    assert caught.value.error == error and caught.value.status == 400


def test_gzip_by_header_or_magic_and_limits() -> None:
    raw = b'{"id":"a"}\n' * 10
    packed = gzip.compress(raw)
    assert decompress(packed, "gzip", 1 << 20) == raw
    assert decompress(packed, None, 1 << 20) == raw  # magic bytes, no header
    assert decompress(packed + gzip.compress(raw), "gzip", 1 << 20) == raw + raw  # two members
    with pytest.raises(BodyError) as too_big:
        decompress(packed, "gzip", 50)
    assert too_big.value.status == 413
    with pytest.raises(BodyError) as broken:
        decompress(packed[:-10], "gzip", 1 << 20)
    assert broken.value.status == 400
    with pytest.raises(BodyError) as unsupported:
        decompress(raw, "br", 1 << 20)
    assert unsupported.value.status == 415


# --- Segment ------------------------------------------------------------------------

SEGMENT = (
    '{"type": "track", "messageId": "m-1", "event": "llm.call", "userId": "acme",'
    ' "timestamp": "2026-01-10T10:00:00.000Z",'
    ' "properties": {"tokens": 1.50, "big": 12345678901234567890.0,'
    ' "model": "gpt-4o", "nested": {"e": 1e-1}}, "context": {"ip": "10.0.0.1"}}'
)


def test_segment_track_maps_fields_and_keeps_number_literals() -> None:
    limit = future_limit(NOW)
    reason_, event_id, line = evaluate_event(SEGMENT.encode(), limit)
    assert (reason_, event_id) == (None, "m-1")
    assert line == (
        b'{"id":"m-1","type":"llm.call","subject":"acme","time":"2026-01-10T10:00:00.000Z",'
        b'"data":{"tokens":1.50,"big":12345678901234567890.0,"model":"gpt-4o","nested":{"e":1e-1}}}'
    )


def test_segment_messages_are_checked_as_the_events_they_become() -> None:
    limit = future_limit(NOW)
    no_user = json.dumps({"messageId": "m-2", "event": "x", "timestamp": "2026-01-10T10:00:00Z"})
    identify = json.dumps({"type": "identify", "messageId": "m-3", "userId": "acme"})
    card = json.dumps(
        {
            "messageId": "m-4",
            "event": "x",
            "userId": "acme",
            "timestamp": "2026-01-10T10:00:00Z",
            "properties": {"c": "4111111111111111"},
        }
    )
    assert evaluate_event(no_user.encode(), limit)[:2] == ("missing_field:subject", "m-2")
    assert evaluate_event(identify.encode(), limit)[:2] == ("unsupported_segment_type", "m-3")
    assert evaluate_event(card.encode(), limit)[:2] == ("card_number_like_value", "m-4")


def test_segment_batch_envelope_is_split_into_messages() -> None:
    body = json.dumps({"batch": [json.loads(SEGMENT), {"messageId": "m-9"}], "sentAt": "x"})
    lines = split_events(body.replace("1.5", "1.50").encode(), "application/json")
    assert len(lines) == 2
    assert b'"tokens":1.50' in lines[0]
    assert evaluate_event(lines[1], future_limit(NOW))[0] == "missing_field:type"


def test_epoch_seconds_is_exact() -> None:
    moment = datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)
    assert epoch_seconds(moment) == Decimal("1767225600.123456")


# --- agreement with the bulk validation of landed files -----------------------------

_TIMES = st.one_of(
    st.sampled_from(
        [
            "2026-01-10T10:00:00Z",
            "2026-01-10t10:00:00z",
            "2026-01-10T10:00:00.123456789+05:30",
            "2026-01-20T00:05:00Z",  # exactly at the limit
            "2026-01-20T00:05:00.0000001Z",  # just after it
            "2026-01-20T01:04:59+01:00",
            "2027-01-01T00:00:00Z",
            "2026-01-10 10:00:00Z",
            "2026-01-10T10:00:00",
            "2026-02-29T10:00:00Z",
            "2024-02-29T10:00:00Z",
            "2026-01-10T24:00:00Z",
            "2026-01-10T10:00:60Z",
            "2026-01-10T10:00Z",
            "",
        ]
    ),
    st.integers(-5, 5),
    st.none(),
)
_SCALARS = st.one_of(
    st.text(max_size=5),
    st.sampled_from(["4111111111111111", "4111111111111112", "5555555555554444", "0" * 13]),
    st.integers(-(10**20), 10**20),
    st.booleans(),
    st.none(),
)
_DATA = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)
_ABSENT = object()


def _field(values: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.one_of(st.just(_ABSENT), values)


_EVENTS = st.fixed_dictionaries(
    {
        "id": _field(
            st.one_of(st.just("ok"), st.sampled_from(["", "x" * 257]), st.integers(), st.none())
        ),
        "source": _field(
            st.one_of(st.sampled_from(["default", "mobile", ""]), st.integers(), st.none())
        ),
        "type": _field(st.one_of(st.just("api.request"), st.just(""), st.booleans(), st.none())),
        "subject": _field(st.one_of(st.just("acme"), st.just(""), st.integers(), st.none())),
        "time": _field(_TIMES),
        "data": _field(_DATA),
    }
)


@settings(max_examples=10, deadline=None)
@given(
    st.lists(
        st.tuples(_EVENTS, st.sampled_from(["json", "NaN", "cut", "array"])),
        min_size=1,
        max_size=40,
    )
)
def test_collector_checks_agree_with_the_bulk_validation(
    tmp_path_factory: pytest.TempPathFactory, drafts: list[tuple[dict[str, object], str]]
) -> None:
    duckdb = pytest.importorskip("duckdb")
    from ingestion.landing import LandingZone
    from ingestion.pipeline import ingest_landed
    from ingestion.rules import IngestRules

    lines = []
    for number, (draft, damage) in enumerate(drafts):
        fields = {key: value for key, value in draft.items() if value is not _ABSENT}
        if fields.get("id") == "ok":
            fields["id"] = f"e{number}"  # distinct ids: no dedupe between lines
        line = json.dumps(fields)
        if damage == "NaN":
            line = line[:-1] + (', "x": NaN}' if fields else '"x": NaN}')
        elif damage == "cut":
            line = line[: len(line) // 2]
        elif damage == "array":
            line = f"[{line}]"
        lines.append(line)
    zone = LandingZone(tmp_path_factory.mktemp("agree") / "landing")
    zone.land_bytes(("\n".join(lines) + "\n").encode(), "events.ndjson")
    con = duckdb.connect()
    ingest_landed(con, zone, IngestRules(frozenset({"acme"}), (), NOW))
    verdicts = dict(con.execute("select row_number, reason from raw.quarantine").fetchall())
    accepted = {row[0] for row in con.execute("select row_number from raw.usage_events").fetchall()}
    bulk = [None if n in accepted else verdicts.get(n, "LOST") for n in range(1, len(lines) + 1)]
    ours = [check_event(line, now=NOW).reason for line in lines]
    # unknown_customer needs the customer file: the collector leaves it to ingestion
    assert [None if r == "unknown_customer" else r for r in bulk] == ours
