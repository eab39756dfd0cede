"""Readers: NDJSON/JSONL, CSV (both also .gz) and Parquet land the same events."""

from __future__ import annotations

import gc
import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingestion import readers
from ingestion.landing import LandingZone
from ingestion.pipeline import IngestError, IngestReport, ingest_landed, list_quarantine
from ingestion.rules import IngestRules, ValueMeterRule

CLOCK = datetime(2026, 1, 20, tzinfo=UTC)
RULES = IngestRules(frozenset({"acme"}), (ValueMeterRule("llm.call", "tokens", {}),), CLOCK)
EVENTS = [
    {
        "id": "a",
        "type": "llm.call",
        "subject": "acme",
        "time": "2026-01-10T10:00:00Z",
        "data": {"tokens": 1.50, "m": {"x": "y"}},
    },
    {
        "id": "b",
        "source": "mobile",
        "type": "api.request",
        "subject": "acme",
        "time": "2026-01-11T10:00:00+02:00",
    },
    {
        "id": "c",
        "type": "llm.call",
        "subject": "ghost",
        "time": "2026-01-12T10:00:00Z",
        "data": {"tokens": 7},
    },
]
CSV_HEADER = "id,source,type,subject,time,data\n"
CSV_ROWS = (
    'a,,llm.call,acme,2026-01-10T10:00:00Z,"{""tokens"": 1.50, ""m"": {""x"": ""y""}}"\n'
    "b,mobile,api.request,acme,2026-01-11T10:00:00+02:00,\n"
    'c,,llm.call,ghost,2026-01-12T10:00:00Z,"{""tokens"": 7}"\n'
)


def ingest_bytes(
    tmp_path: Path, name: str, content: bytes, batch_rows: int = 1000
) -> tuple[duckdb.DuckDBPyConnection, IngestReport]:
    con = duckdb.connect()
    zone = LandingZone(tmp_path / "landing")
    zone.land_bytes(content, name)
    return con, ingest_landed(con, zone, RULES, batch_rows=batch_rows)


def accepted(con: duckdb.DuckDBPyConnection) -> list[tuple[object, ...]]:
    return con.execute(
        """
        select source, id, type, subject, strftime(time, '%Y-%m-%dT%H:%M:%SZ'), row_number,
            json_extract_string(data, '$.tokens'), json_extract_string(data, '$.m.x')
        from raw.usage_events order by id
        """
    ).fetchall()


def ndjson(events: list[dict[str, object]]) -> bytes:
    # The literal 1.50 (json.dumps would write 1.5) checks literal preservation too.
    return "".join(
        json.dumps(e).replace('"tokens": 1.5,', '"tokens": 1.50,') + "\n" for e in events
    ).encode()


def parquet_bytes(tmp_path: Path, table: pa.Table) -> bytes:
    path = tmp_path / "src.parquet"
    pq.write_table(table, path)
    return path.read_bytes()


EXPECTED_FROM_LINES = [
    ("default", "a", "llm.call", "acme", "2026-01-10T10:00:00Z", 1, "1.50", "y"),
    ("mobile", "b", "api.request", "acme", "2026-01-11T08:00:00Z", 2, None, None),
]


@pytest.mark.parametrize("name", ["e.ndjson", "e.jsonl", "e.ndjson.gz", "e.jsonl.gz"])
def test_ndjson_and_jsonl_plain_or_gzipped(tmp_path: Path, name: str) -> None:
    content = ndjson(EVENTS)
    con, report = ingest_bytes(
        tmp_path, name, gzip.compress(content) if name.endswith(".gz") else content
    )
    assert accepted(con) == EXPECTED_FROM_LINES
    assert report.quarantined_by_reason == {"unknown_customer": 1}


@pytest.mark.parametrize("name", ["e.csv", "e.csv.gz"])
def test_csv_plain_or_gzipped_with_empty_cells_absent(tmp_path: Path, name: str) -> None:
    content = (CSV_HEADER + CSV_ROWS).encode()
    con, report = ingest_bytes(
        tmp_path, name, gzip.compress(content) if name.endswith(".gz") else content
    )
    # CSV row numbers are physical lines: the header is line 1.
    assert accepted(con) == [row[:5] + (row[5] + 1,) + row[6:] for row in EXPECTED_FROM_LINES]
    assert report.quarantined_by_reason == {"unknown_customer": 1}


def test_csv_and_ndjson_copies_of_one_event_are_duplicates(tmp_path: Path) -> None:
    con = duckdb.connect()
    zone = LandingZone(tmp_path / "landing")
    zone.land_bytes(ndjson(EVENTS), "e.ndjson")
    zone.land_bytes((CSV_HEADER + CSV_ROWS).encode(), "e.csv")
    report = ingest_landed(con, zone, RULES)
    assert (report.accepted, report.duplicates, report.conflicts) == (2, 2, 0)


def test_csv_bad_rows_are_quarantined_with_their_line(tmp_path: Path) -> None:
    content = (
        CSV_HEADER
        + 'x,,t,acme,2026-01-10T10:00:00Z,"{not json"\n'
        + "y,,t,acme\n"
        + "\n"
        + "z,,t,acme,2026-01-10T10:00:00Z,[1]\n"
    )
    con, report = ingest_bytes(tmp_path, "bad.csv", content.encode())
    rows = {(q["row_number"], q["reason"], q["id"]) for q in list_quarantine(con)}
    assert rows == {(2, "invalid_json", None), (3, "invalid_json", None), (5, "invalid_data", "z")}
    assert report.rows_read == 3


def test_csv_with_an_unknown_header_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match=r"^wrong\.csv: CSV header must name the columns"):
        ingest_bytes(
            tmp_path, "wrong.csv", b"id,kind,subject,time\n1,t,acme,2026-01-10T10:00:00Z\n"
        )


@pytest.mark.parametrize("data_as", ["struct", "json-string"])
def test_parquet_with_struct_or_json_string_data(tmp_path: Path, data_as: str) -> None:
    columns: dict[str, object] = {
        "id": [e["id"] for e in EVENTS],
        "source": [e.get("source") for e in EVENTS],
        "type": [e["type"] for e in EVENTS],
        "subject": [e["subject"] for e in EVENTS],
        "time": [e["time"] for e in EVENTS],
    }
    if data_as == "struct":
        columns["data"] = pa.array(
            [{"tokens": "1.50", "m": {"x": "y"}}, None, {"tokens": "7", "m": None}]
        )
    else:
        columns["data"] = ['{"tokens": 1.50, "m": {"x": "y"}}', None, '{"tokens": 7}']
    con, report = ingest_bytes(tmp_path, "e.parquet", parquet_bytes(tmp_path, pa.table(columns)))
    assert accepted(con) == EXPECTED_FROM_LINES
    assert report.quarantined_by_reason == {"unknown_customer": 1}


def test_parquet_typed_columns_keep_their_json_meaning(tmp_path: Path) -> None:
    table = pa.table(
        {
            "id": pa.array([1, 2], pa.int64()),
            "type": ["t", "t"],
            "subject": ["acme", "acme"],
            "time": pa.array([datetime(2026, 1, 10, tzinfo=UTC)] * 2, pa.timestamp("us", tz="UTC")),
        }
    )
    con, _ = ingest_bytes(tmp_path, "typed.parquet", parquet_bytes(tmp_path, table))
    quarantined = list_quarantine(con)
    assert [(q["reason"], q["id"]) for q in quarantined] == [
        ("invalid_id", "1"),
        ("invalid_id", "2"),
    ]
    assert json.loads(quarantined[0]["payload"]) == {
        "id": 1,
        "type": "t",
        "subject": "acme",
        "time": "2026-01-10T00:00:00.000000Z",
    }


def test_blank_lines_are_skipped_and_line_numbers_stay_physical(tmp_path: Path) -> None:
    lines = ["", json.dumps(EVENTS[0]), "   ", "\t", json.dumps(EVENTS[1]), ""]
    con, report = ingest_bytes(tmp_path, "e.ndjson", "\r\n".join(lines).encode())
    assert [row[5] for row in accepted(con)] == [2, 5]
    assert report.rows_read == 2


def test_a_byte_order_mark_is_not_part_of_the_first_line(tmp_path: Path) -> None:
    con, report = ingest_bytes(tmp_path, "e.ndjson", b"\xef\xbb\xbf" + ndjson(EVENTS))
    assert [row[5] for row in accepted(con)] == [1, 2] and report.rows_read == 3


def test_invalid_utf8_and_control_characters_fall_back_line_by_line(tmp_path: Path) -> None:
    content = (
        ndjson(EVENTS[:1])
        + b'{"id": "\xff"}\n'
        + b'{"id":\x1f"q"}\r{"x":1}\n'
        + ndjson(EVENTS[1:2])
    )
    con, report = ingest_bytes(tmp_path, "e.ndjson", content)
    assert [row[5] for row in accepted(con)] == [1, 4]
    assert sorted((q["row_number"], q["reason"]) for q in list_quarantine(con)) == [
        (2, "invalid_json"),
        (3, "invalid_json"),
    ]
    assert report.rows_read == 4


def test_lines_longer_than_a_read_block_are_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(readers, "BLOCK_BYTES", 64)
    big = dict(EVENTS[0], data={"note": "n" * 500, "tokens": 3})
    con, report = ingest_bytes(tmp_path, "e.ndjson", ndjson([big, EVENTS[1]]) + b"  ", batch_rows=1)
    assert [row[:2] for row in accepted(con)] == [("default", "a"), ("mobile", "b")]
    assert report.rows_read == 2


def test_a_missing_landed_file_is_a_one_line_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zone = LandingZone(tmp_path / "landing")
    landed = zone.land_bytes(ndjson(EVENTS), "gone.ndjson")
    monkeypatch.setattr(zone, "files", lambda: [landed])  # listed, then removed before the read
    landed.path.unlink()
    with pytest.raises(IngestError, match=r"^gone\.ndjson: file not found") as error:
        ingest_landed(duckdb.connect(), zone, RULES)
    assert "\n" not in str(error.value)


def test_a_corrupt_gzip_is_a_one_line_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match=r"^e\.ndjson\.gz: cannot read ndjson\.gz file"):
        ingest_bytes(tmp_path, "e.ndjson.gz", gzip.compress(ndjson(EVENTS))[:-12] + b"garbage!")


def test_a_parquet_file_with_corrupt_pages_is_a_one_line_error_naming_it(tmp_path: Path) -> None:
    events = 5000
    table = pa.table(
        {
            "id": [f"e{i}" for i in range(events)],
            "type": ["t"] * events,
            "subject": ["acme"] * events,
            "time": ["2026-01-10T10:00:00Z"] * events,
            "data": [json.dumps({"a": i}) for i in range(events)],
        }
    )
    content = bytearray(parquet_bytes(tmp_path, table))
    for index in range(200, len(content) // 2):  # scramble the data pages, keep the footer
        content[index] = (content[index] * 7 + 13) % 256
    with pytest.raises(IngestError, match=r"^bad\.parquet: cannot read parquet file") as error:
        ingest_bytes(tmp_path, "bad.parquet", bytes(content))
    assert "\n" not in str(error.value)


def test_arrow_memory_stays_bounded_across_the_batches_of_one_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression: DuckDB keeps an object registered inside a transaction alive until the
    # commit, so registering each batch's table kept a whole file's batches in memory.
    import ingestion.pipeline as pipeline

    lines = [
        dict(EVENTS[0], id=f"e{i}", data={"note": "x" * 200, "tokens": i}) for i in range(30_000)
    ]
    allocated: list[int] = []
    real = pipeline.process_batch

    def measured(*args: object) -> object:
        result = real(*args)  # type: ignore[arg-type]
        gc.collect()
        allocated.append(pa.total_allocated_bytes())
        return result

    monkeypatch.setattr(pipeline, "process_batch", measured)
    monkeypatch.setattr(readers, "BLOCK_BYTES", 256 << 10)  # each batch: buffers of its own
    _, report = ingest_bytes(tmp_path, "e.ndjson", ndjson(lines), batch_rows=3_000)
    assert report.accepted == 30_000 and len(allocated) == 10
    assert max(allocated) < 3 * allocated[0], allocated
