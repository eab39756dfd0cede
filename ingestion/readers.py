"""Stream landed event files as bounded batches of rows.

Two batch kinds leave here:
- `lines` (NDJSON, an Arrow table): `row_number`, `payload` (the raw line), `malformed`
  (not UTF-8).
- `columns` (CSV as an Arrow table, Parquet as a DuckDB query over a row range):
  `row_number` plus the event columns as the file has them; CSV also carries
  `malformed` and `raw` for records with the wrong number of cells.

NDJSON is split into lines by pyarrow's multithreaded CSV tokenizer (one column, no
quoting), ~10x faster than splitting in Python; a block it cannot take exactly (a
control character, a lone carriage return, invalid UTF-8) falls back to Python for that
block only, so line numbers stay exact. Parquet never passes through Python: DuckDB
reads each row range in parallel. Memory is bounded by `batch_rows` rows plus one read
block, whatever the file size.
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

EVENT_COLUMNS = ("id", "source", "type", "subject", "time", "data")
REQUIRED_COLUMNS = ("id", "type", "subject", "time")
BLOCK_BYTES = 16 << 20
_FIELD_SEPARATOR = "\x1f"  # a raw control character: never in a valid JSON line

LINE_SCHEMA = pa.schema(
    [("row_number", pa.int64()), ("payload", pa.string()), ("malformed", pa.bool_())]
)


class IngestError(ValueError):
    """A landed file cannot be read at all; the message names the file."""


@dataclass(frozen=True)
class RawBatch:
    """Rows of one batch: an Arrow table, or (Parquet) a DuckDB query reading them in place."""

    kind: Literal["lines", "columns"]
    schema: pa.Schema
    table: pa.Table | None = None
    query: str | None = None

    @classmethod
    def of(cls, kind: Literal["lines", "columns"], table: pa.Table) -> RawBatch:
        return cls(kind, table.schema, table=table)


def read_batches(
    path: Path, fmt: str, batch_rows: int, label: str | None = None
) -> Iterator[RawBatch]:
    """Batches of at most `batch_rows` rows, in file order. `fmt` as `landing.event_format`."""
    name = label or str(path)
    try:
        if fmt in ("ndjson", "ndjson.gz"):
            with _open_binary(path, fmt.endswith(".gz")) as stream:
                for table in _rebatch(_ndjson_blocks(stream), batch_rows):
                    yield RawBatch.of("lines", table)
        elif fmt in ("csv", "csv.gz"):
            for table in _csv_tables(path, fmt.endswith(".gz"), batch_rows, name):
                yield RawBatch.of("columns", table)
        elif fmt == "parquet":
            yield from _parquet_batches(path, batch_rows, name)
        else:
            raise IngestError(f"{name}: unsupported format {fmt!r}")
    except IngestError:
        raise
    except FileNotFoundError as exc:
        raise IngestError(f"{name}: file not found ({exc.filename})") from exc
    except (OSError, EOFError, zlib.error, pa.ArrowException, csv.Error) as exc:
        raise IngestError(f"{name}: cannot read {fmt} file: {_one_line(exc)}") from exc


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _open_binary(path: Path, gz: bool) -> io.BufferedIOBase:
    return gzip.open(path, "rb") if gz else open(path, "rb")  # noqa: SIM115


def _rebatch(tables: Iterator[pa.Table], batch_rows: int) -> Iterator[pa.Table]:
    """Regroup tables into slices of exactly `batch_rows` rows (the last may be shorter)."""
    pending: list[pa.Table] = []
    count = 0
    for table in tables:
        pending.append(table)
        count += table.num_rows
        while count >= batch_rows:
            merged = pa.concat_tables(pending)
            yield merged.slice(0, batch_rows)
            rest = merged.slice(batch_rows)
            pending, count = ([rest], rest.num_rows) if rest.num_rows else ([], 0)
    if count:
        yield pa.concat_tables(pending)


# --- NDJSON -------------------------------------------------------------------------


def _ndjson_blocks(stream: io.BufferedIOBase) -> Iterator[pa.Table]:
    """Tables of non-blank lines, one per block of whole lines (no copy of the block)."""
    carry: list[bytes] = []
    line_no = 0
    chunk = stream.read(BLOCK_BYTES)
    if chunk.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte order mark is no part of line 1
        chunk = chunk[3:]
    while chunk:
        first = chunk.find(b"\n")
        if first < 0:  # a line longer than a block: keep reading
            carry.append(chunk)
            chunk = stream.read(BLOCK_BYTES)
            continue
        start = 0
        if carry:  # the line split across the previous block and this one
            head = b"".join([*carry, chunk[: first + 1]])
            table, line_no = _split_lines(head, 0, len(head), line_no)
            yield table
            start = first + 1
        cut = chunk.rfind(b"\n")
        if cut >= start:
            table, line_no = _split_lines(chunk, start, cut + 1, line_no)
            yield table
        carry = [chunk[cut + 1 :]] if cut + 1 < len(chunk) else []
        chunk = stream.read(BLOCK_BYTES)
    if carry:
        tail = b"".join(carry)
        table, line_no = _split_lines(tail, 0, len(tail), line_no)
        yield table


def _split_lines(data: bytes, start: int, end: int, line_no: int) -> tuple[pa.Table, int]:
    """Split `data[start:end]` (whole lines): the non-blank ones and the last line number."""
    payload = _split_fast(data, start, end)
    if payload is None:
        return _split_slow(data[start:end], line_no)
    count = len(payload)
    numbers = pa.array(np.arange(line_no + 1, line_no + count + 1, dtype=np.int64))
    table = pa.table(
        {"row_number": numbers, "payload": payload, "malformed": pa.nulls(count, pa.bool_())},
        schema=LINE_SCHEMA,
    )
    return _drop_blank(table), line_no + count


def _drop_blank(table: pa.Table) -> pa.Table:
    """Drop blank lines; only lines not starting with `{` (rare) get the exact test."""
    payload = table.column("payload")
    odd = pc.invert(pc.starts_with(payload, "{"))
    if not pc.any(odd).as_py():
        return table
    blank = pc.and_(odd, pc.equal(pc.utf8_trim(payload, " \t\r"), ""))
    return table.filter(pc.invert(blank)) if pc.any(blank).as_py() else table


def _split_fast(data: bytes, start: int, end: int) -> pa.ChunkedArray | None:
    """Lines via pyarrow's tokenizer, or None when it would not split exactly on `\\n`.

    With quoting and escaping off and empty lines kept, the tokenizer yields exactly one
    row per line, as long as no line holds the field separator or a lone carriage
    return (it ends a row too); both are invalid in a JSON line anyway and rare, so
    such blocks (and invalid UTF-8) take the Python path.
    """
    if data.find(_FIELD_SEPARATOR.encode(), start, end) >= 0:
        return None
    if data.find(b"\r", start, end) >= 0 and data.count(b"\r", start, end) != data.count(
        b"\r\n", start, end
    ):
        return None
    try:
        table = pacsv.read_csv(
            pa.py_buffer(memoryview(data)[start:end]),
            read_options=pacsv.ReadOptions(
                column_names=["payload"], block_size=max(1 << 20, (end - start) // 4 + 1)
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=_FIELD_SEPARATOR,
                quote_char=False,
                escape_char=False,
                ignore_empty_lines=False,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={"payload": pa.string()}, strings_can_be_null=False
            ),
        )
    except pa.ArrowInvalid:  # invalid UTF-8, or a line longer than the tokenizer's block
        return None
    return table.column("payload")


def _split_slow(block: bytes, line_no: int) -> tuple[pa.Table, int]:
    """Line by line in Python: exact for anything the fast path refuses (rare)."""
    numbers: list[int] = []
    payloads: list[str] = []
    malformed: list[bool | None] = []
    lines = block.split(b"\n")
    if block.endswith(b"\n"):
        lines.pop()
    for offset, raw in enumerate(lines, start=line_no + 1):
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if not raw.strip(b" \t\r"):
            continue
        try:
            text, bad = raw.decode("utf-8"), None
        except UnicodeDecodeError:
            text, bad = raw.decode("utf-8", "replace"), True
        numbers.append(offset)
        payloads.append(text)
        malformed.append(bad)
    table = pa.table(
        {"row_number": numbers, "payload": payloads, "malformed": malformed}, schema=LINE_SCHEMA
    )
    return table, line_no + len(lines)


# --- CSV ----------------------------------------------------------------------------

CSV_SCHEMA = pa.schema(
    [("row_number", pa.int64())]
    + [(column, pa.string()) for column in EVENT_COLUMNS]
    + [("malformed", pa.bool_()), ("raw", pa.string())]
)


def _csv_tables(path: Path, gz: bool, batch_rows: int, name: str) -> Iterator[pa.Table]:
    """CSV through Python's csv module (quoted newlines, ragged rows kept as quarantine)."""
    csv.field_size_limit(2**31 - 1)
    opener = gzip.open if gz else open
    with opener(path, "rt", encoding="utf-8-sig", errors="surrogateescape", newline="") as text:
        reader = csv.reader(text)
        header = next(reader, None)
        if header is None:
            return
        columns = [cell.strip() for cell in header]
        _check_columns(columns, name, "CSV header")
        rows: dict[str, list[object]] = {column: [] for column in CSV_SCHEMA.names}
        last_line = reader.line_num
        for record in reader:
            start, last_line = last_line + 1, reader.line_num
            if not record or (len(record) == 1 and not record[0].strip()):
                continue
            _append_csv_record(rows, start, record, columns)
            if len(rows["row_number"]) >= batch_rows:
                yield pa.table(rows, schema=CSV_SCHEMA)
                rows = {column: [] for column in CSV_SCHEMA.names}
        if rows["row_number"]:
            yield pa.table(rows, schema=CSV_SCHEMA)


def _check_columns(header: list[str], name: str, what: str) -> None:
    """Unknown or missing columns make the whole file unusable: say so, naming the file."""
    unknown = [column for column in header if column not in EVENT_COLUMNS]
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    if unknown or missing or len(set(header)) != len(header):
        raise IngestError(
            f"{name}: {what} must name the columns {','.join(EVENT_COLUMNS)}"
            f" (source and data optional); got {','.join(header) or 'nothing'}"
        )


def _append_csv_record(
    rows: dict[str, list[object]], start: int, record: list[str], columns: list[str]
) -> None:
    malformed = len(record) != len(columns) or _has_surrogates(record)
    rows["row_number"].append(start)
    rows["malformed"].append(malformed or None)
    if malformed:
        rows["raw"].append(_csv_line(record))
        for column in EVENT_COLUMNS:
            rows[column].append(None)
        return
    rows["raw"].append(None)
    values = dict(zip(columns, record, strict=True))
    for column in EVENT_COLUMNS:
        rows[column].append(values.get(column) or None)  # an empty cell is absent


def _has_surrogates(record: list[str]) -> bool:
    try:
        _FIELD_SEPARATOR.join(record).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _csv_line(record: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(record)
    return out.getvalue().encode("utf-8", "surrogateescape").decode("utf-8", "replace")


# --- Parquet ------------------------------------------------------------------------


def _parquet_batches(path: Path, batch_rows: int, name: str) -> Iterator[RawBatch]:
    """Row ranges that DuckDB reads straight from the file (no Arrow copy, parallel).

    `file_row_number` filters prune whole row groups, so each batch reads only its rows.
    """
    parquet = pq.ParquetFile(path)  # reads the footer: a corrupt file fails here, named
    schema = parquet.schema_arrow
    columns = [column for column in schema.names if not column.startswith("__index_level_")]
    _check_columns(columns, name, "Parquet")
    selected = ", ".join(f'"{column}"' for column in columns)
    source = "'" + str(path).replace("'", "''") + "'"
    for start in range(0, parquet.metadata.num_rows, batch_rows):
        yield RawBatch(
            "columns",
            pa.schema([schema.field(column) for column in columns]),
            query=f"""
                select file_row_number + 1 as row_number, {selected}
                from read_parquet({source}, file_row_number = true)
                where file_row_number >= {start} and file_row_number < {start + batch_rows}
            """,
        )
