"""SPEC §1 validation of landed files: every quarantine reason, their order, literals."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingestion.event_schema import check_event
from ingestion.landing import LandingZone
from ingestion.pipeline import IngestReport, ingest_landed, list_quarantine
from ingestion.rules import IngestRules, ValueMeterRule

CLOCK = datetime(2026, 1, 20, tzinfo=UTC)
TOKENS = ValueMeterRule("llm.call", "usage.tokens", {"region": "eu"})
BASE: dict[str, Any] = {
    "id": "e1",
    "type": "api.request",
    "subject": "acme",
    "time": "2026-01-10T10:00:00Z",
}


def event(**fields: Any) -> str:
    """BASE with fields replaced; `...` removes a field."""
    merged = {**BASE, **fields}
    return json.dumps({key: value for key, value in merged.items() if value is not ...})


def ingest(
    tmp_path: Path, lines: list[str], clock: datetime = CLOCK
) -> tuple[duckdb.DuckDBPyConnection, IngestReport]:
    con = duckdb.connect()
    zone = LandingZone(tmp_path / "landing")
    zone.land_bytes(("\n".join(lines) + "\n").encode(), "events.ndjson")
    rules = IngestRules(frozenset({"acme"}), (TOKENS,), clock)
    return con, ingest_landed(con, zone, rules)


def reasons(tmp_path: Path, lines: list[str]) -> list[str | None]:
    """The verdict of each line, in line order (None = accepted)."""
    con, _ = ingest(tmp_path, lines)
    found: dict[int, str | None] = dict(
        con.execute("select row_number, reason from raw.quarantine").fetchall()
    )
    accepted = {row[0] for row in con.execute("select row_number from raw.usage_events").fetchall()}
    return [None if n in accepted else found.get(n, "LOST") for n in range(1, len(lines) + 1)]


def case(name: str, expected: str | None, raw: str | None = None, **fields: Any) -> Any:
    """One line with its own id (so cases never dedupe against each other)."""
    line = raw if raw is not None else event(**{"id": name, **fields})
    return pytest.param(line, expected, id=name)


REJECTED = [
    case("too_large", "too_large", data={"blob": "x" * 70_000}),
    case("invalid_json", "invalid_json", raw='{"id": "e1", "type": "api.request"'),
    case("invalid_json-not-object", "invalid_json", raw="[1, 2]"),
    case("invalid_json-nan", "invalid_json", n=float("nan")),
    case("invalid_json-trailing-comma", "invalid_json", raw='{"id": "e1", "type": "t",}'),
    case("missing_field-id", "missing_field:id", id=...),
    case("missing_field-id-null", "missing_field:id", id=None),
    case("missing_field-type", "missing_field:type", type=""),
    case("missing_field-subject", "missing_field:subject", subject=...),
    case("missing_field-time", "missing_field:time", time=None),
    case("invalid_id-number", "invalid_id", id=42),
    case("invalid_id-long", "invalid_id", id="x" * 257),
    case("invalid_type", "invalid_type", type=7),
    case("invalid_subject", "invalid_subject", subject=["acme"]),
    case("invalid_source", "invalid_source", source=3),
    case("invalid_time-no-offset", "invalid_time", time="2026-01-12 10:00:00"),
    case("invalid_time-feb-30", "invalid_time", time="2026-02-30T10:00:00Z"),
    case("invalid_time-hour-24", "invalid_time", time="2026-01-10T24:00:00Z"),
    case("invalid_data", "invalid_data", data="oops"),
    case("invalid_data-array", "invalid_data", data=[1]),
    case("time_in_future", "time_in_future", time="2026-01-20T00:05:01Z"),
    case("time_in_future-nanos", "time_in_future", time="2026-01-20T00:05:00.0000001Z"),
    case("card", "card_number_like_value", data={"a": {"b": ["4111111111111111"]}}),
    case(
        "missing_field-data-missing",
        "missing_field:data.usage.tokens",
        type="llm.call",
        data={"region": "eu", "usage": {}},
    ),
    case(
        "missing_field-data-not-numeric",
        "missing_field:data.usage.tokens",
        type="llm.call",
        data={"region": "eu", "usage": {"tokens": "many"}},
    ),
    case("unknown_customer", "unknown_customer", subject="ghost"),
]

ACCEPTED = [
    case("plain", None),
    case("data-null-is-no-data", None, data=None),
    case("exactly-5-minutes-ahead", None, time="2026-01-20T00:05:00Z"),
    case("lower-case-t-z", None, time="2026-01-10t10:00:00z"),
    case("offset-and-fraction", None, time="2026-01-10T12:00:00.123+02:00"),
    case("16-digits-failing-luhn", None, data={"ref": "4111111111111112"}),
    case("card-digits-as-a-number", None, data={"n": 4111111111111111}),
    case("card-digits-as-a-key", None, data={"4111111111111111": "key-not-value"}),
    case(
        "numeric-string", None, type="llm.call", data={"region": "eu", "usage": {"tokens": "1500"}}
    ),
    case(
        "exponent-number", None, type="llm.call", data={"region": "eu", "usage": {"tokens": 1.5e3}}
    ),
    case("filter-does-not-match", None, type="llm.call", data={"region": "us"}),
    case("null-never-matches-a-filter", None, type="llm.call", data={"region": None}),
    case("null-source-is-default", None, source=None),
    case("leading-white-space", None, raw=" \t" + event(id="leading-white-space")),
]

# Each line fails two checks: the earlier one in SPEC §1's order wins.
ORDER = [
    case("too_large-before-invalid_json", "too_large", raw='{"x": "' + "y" * 70_000 + '"'),
    case("missing-before-invalid_time", "missing_field:id", id=..., time="bad"),
    case("id-before-type", "missing_field:id", id=..., type=...),
    case("type-before-subject", "missing_field:type", type=..., subject=...),
    case("subject-before-time", "missing_field:subject", subject=..., time=...),
    case("invalid_id-before-invalid_time", "invalid_id", id=1, time="bad"),
    case("invalid_time-before-invalid_data", "invalid_time", time="bad", data=1),
    case("invalid_data-before-future", "invalid_data", time="2027-01-01T00:00:00Z", data=1),
    case(
        "future-before-card",
        "time_in_future",
        time="2027-01-01T00:00:00Z",
        data={"c": "4111111111111111"},
    ),
    case(
        "card-before-missing-value",
        "card_number_like_value",
        type="llm.call",
        data={"region": "eu", "c": "4111111111111111"},
    ),
    case(
        "missing-value-before-unknown_customer",
        "missing_field:data.usage.tokens",
        type="llm.call",
        subject="ghost",
        data={"region": "eu"},
    ),
]
ALL_CASES = [param.values[0] for param in REJECTED + ACCEPTED + ORDER]


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str | None]:
    """Every case above ingested once, as one file: line -> verdict."""
    found = reasons(tmp_path_factory.mktemp("cases"), ALL_CASES)
    return dict(zip(ALL_CASES, found, strict=True))


@pytest.mark.parametrize(("line", "reason"), REJECTED)
def test_each_rejected_event_is_quarantined_with_its_reason(
    verdicts: dict[str, str | None], line: str, reason: str
) -> None:
    assert verdicts[line] == reason


@pytest.mark.parametrize(("line", "reason"), ACCEPTED)
def test_valid_events_are_accepted(
    verdicts: dict[str, str | None], line: str, reason: None
) -> None:
    assert verdicts[line] is reason


@pytest.mark.parametrize(("line", "reason"), ORDER)
def test_the_first_failing_check_wins(
    verdicts: dict[str, str | None], line: str, reason: str
) -> None:
    assert verdicts[line] == reason


def test_quarantine_rows_carry_payload_file_line_and_ids(tmp_path: Path) -> None:
    lines = [
        event(id="ok"),
        "not json",
        event(id="g1", subject="ghost"),
        event(id="m1", source="mobile", time="x"),
    ]
    con, report = ingest(tmp_path, lines)
    rows = {row["row_number"]: row for row in list_quarantine(con)}
    assert set(rows) == {2, 3, 4}
    assert (rows[2]["id"], rows[2]["source"], rows[2]["reason"]) == (None, None, "invalid_json")
    assert (rows[3]["id"], rows[3]["source"], rows[3]["reason"]) == (
        "g1",
        "default",
        "unknown_customer",
    )
    assert (rows[4]["id"], rows[4]["source"], rows[4]["reason"]) == ("m1", "mobile", "invalid_time")
    assert rows[2]["payload"] == "not json" and rows[3]["payload"] == lines[2]
    assert all(
        row["file"] == "events.ndjson" and row["quarantined_at"] is not None
        for row in rows.values()
    )
    assert report.rows_read == 4 and report.accepted == 1
    assert report.quarantined_by_reason == {
        "invalid_json": 1,
        "invalid_time": 1,
        "unknown_customer": 1,
    }


def test_validation_agrees_with_the_collector_checks(tmp_path: Path) -> None:
    """Both implement SPEC §1 (ingestion/event_schema.py is the per-event form)."""
    lines = [
        event(),
        event(data={"blob": "x" * 70_000}),
        "[1]",
        '{"a": Infinity}',
        event(id=""),
        event(id=1.5),
        event(type=True),
        event(source={"a": 1}),
        event(time="2026-01-10T10:00:60Z"),
        event(data="s"),
        event(time="2026-01-20T00:06:00+00:00"),
        event(data={"x": ["5555555555554444"]}),
        event(id="e2", time="2026-01-10T10:00:00.5-05:00", data={"n": 1.50}),
    ]
    ours = reasons(tmp_path, lines)
    theirs = [check_event(line, now=CLOCK).reason for line in lines]
    assert ours == theirs


# --- literal preservation ----------------------------------------------------------


def stored_texts(tmp_path: Path, data_text: str, paths: list[str]) -> list[str | None]:
    line = (
        '{"id": "n", "type": "t", "subject": "acme", "time": "2026-01-10T10:00:00Z", "data": '
        + data_text
        + "}"
    )
    con, report = ingest(tmp_path, [line])
    assert report.accepted == 1, list_quarantine(con)
    return [
        con.execute("select json_extract_string(data, ?) from raw.usage_events", [path]).fetchall()[
            0
        ][0]
        for path in paths
    ]


def test_number_literals_survive_as_written(tmp_path: Path) -> None:
    data = (
        '{"a": 1.50, "b": 1e-1, "c": {"d": 12345678901234567890.123456789},'
        ' "e": 42, "f": true, "g": "x"}'
    )
    paths = ['$."a"', '$."b"', '$."c"."d"', '$."e"', '$."f"', '$."g"']
    assert stored_texts(tmp_path, data, paths) == [
        "1.50",
        "1e-1",
        "12345678901234567890.123456789",
        "42",
        "true",
        "x",
    ]


def test_plain_numbers_stay_numbers(tmp_path: Path) -> None:
    """Rows without a risky literal keep DuckDB's own parse (no Python on the hot path)."""
    con, _ = ingest(tmp_path, [event(data={"tokens": 1500, "cost": 0.25})])
    row = con.execute(
        "select json_type(data, '$.tokens'), json_extract_string(data, '$.cost')"
        " from raw.usage_events"
    ).fetchall()
    assert row == [("UBIGINT", "0.25")]


def test_filters_compare_literal_texts(tmp_path: Path) -> None:
    """`1.0` does not equal the filter text `1`, `42` equals `"42"` (SPEC §1)."""
    rule = ValueMeterRule("llm.call", "v", {"tier": "1"})
    con = duckdb.connect()
    zone = LandingZone(tmp_path / "landing")
    lines = [
        event(id="a", type="llm.call", data={"tier": 1.0}),  # no match: not checked, accepted
        event(id="b", type="llm.call", data={"tier": 1}),  # match, no value: quarantined
        event(id="c", type="llm.call", data={"tier": "1"}),  # match, no value: quarantined
    ]
    zone.land_bytes("\n".join(lines).encode(), "f.ndjson")
    ingest_landed(con, zone, IngestRules(frozenset({"acme"}), (rule,), CLOCK))
    assert sorted(r["id"] for r in list_quarantine(con)) == ["b", "c"]


_digits = st.text("0123456789", min_size=1, max_size=25)
_literals = st.builds(
    lambda sign, whole, fraction, exponent: sign + (whole.lstrip("0") or "0") + fraction + exponent,
    st.sampled_from(["", "-"]),
    _digits,
    st.one_of(st.just(""), _digits.map(lambda d: "." + d)),
    st.one_of(
        st.just(""),
        st.builds(
            lambda e, s, d: e + s + d,
            st.sampled_from("eE"),
            st.sampled_from(["", "+", "-"]),
            st.text("0123456789", min_size=1, max_size=3),
        ),
    ),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(literals=st.lists(_literals, min_size=1, max_size=6))
def test_any_json_number_keeps_its_literal_text(
    tmp_path_factory: pytest.TempPathFactory, literals: list[str]
) -> None:
    tmp_path = tmp_path_factory.mktemp("lit")
    data = (
        "{"
        + ", ".join(f'"k{i}": {literal}' for i, literal in enumerate(literals))
        + ', "arr": ['
        + ", ".join(literals)
        + "]}"
    )
    paths = [f'$."k{i}"' for i in range(len(literals))] + [
        f'$."arr"[{i}]' for i in range(len(literals))
    ]
    assert stored_texts(tmp_path, data, paths) == literals + literals


def test_rules_are_read_from_the_config_schema() -> None:
    con = duckdb.connect()
    con.execute("create schema config")
    con.execute("create table config.customers (customer_id varchar, name varchar)")
    con.execute(
        "create table config.meters (meter_key varchar, event_type varchar, aggregation varchar,"
        " value_path varchar, value_json_path varchar, group_by varchar[])"
    )
    con.execute(
        "create table config.meter_filters (meter_key varchar, property_path varchar,"
        " property_json_path varchar, value_text varchar)"
    )
    con.execute("insert into config.customers values ('acme', 'Acme'), ('beta', null)")
    con.execute(
        """
        insert into config.meters values
            ('calls', 'api.request', 'count', null, null, []),
            ('input', 'llm.call', 'sum', 'usage.input', '$."usage"."input"', ['model']),
            ('peak', 'gauge', 'max', 'v', '$."v"', []),
            ('models', 'llm.call', 'unique_count', 'model', '$."model"', [])
        """
    )
    con.execute("insert into config.meter_filters values ('input', 'region', '$.\"region\"', 'eu')")
    rules = IngestRules.from_warehouse(con, CLOCK)
    assert rules.customer_ids == frozenset({"acme", "beta"})
    assert [(r.event_type, r.value_path, dict(r.filter)) for r in rules.value_meters] == [
        ("llm.call", "usage.input", {"region": "eu"}),
        ("gauge", "v", {}),
    ]
    assert rules.clock == CLOCK
    with pytest.raises(ValueError, match="timezone-aware"):
        IngestRules(frozenset(), (), datetime(2026, 1, 1))
