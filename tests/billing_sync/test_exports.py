"""Exports for NetSuite, Zuora, Chargebee and Parquet, checked against their documented layouts."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from billing_sync.exports import (
    CHARGEBEE_COLUMNS,
    NETSUITE_COLUMNS,
    ZUORA_COLUMNS,
    ZUORA_MAX_FILE_BYTES,
    ExportError,
    exact_rate,
    export_invoices,
)
from tests.billing_sync.helpers import Invoice, standard_dataset, write_warehouse

# The layouts as docs/billing-sync.md documents them (written out, not imported).
DOC_NETSUITE = [
    "External ID",
    "Customer",
    "Date",
    "Start Date",
    "End Date",
    "Currency",
    "Line ID",
    "Line Type",
    "Item",
    "Description",
    "Quantity",
    "Rate",
    "Amount",
    "Memo",
]
DOC_ZUORA = [
    "ACCOUNT_ID",
    "UOM",
    "QTY",
    "STARTDATE",
    "ENDDATE",
    "SUBSCRIPTION_ID",
    "CHARGE_ID",
    "DESCRIPTION",
]
DOC_CHARGEBEE = [
    "invoice[id]",
    "invoice[customer_id]",
    "invoice[currency_code]",
    "invoice[date]",
    "invoice[total]",
    "line_items[id]",
    "line_items[entity_type]",
    "line_items[entity_id]",
    "line_items[description]",
    "line_items[date_from]",
    "line_items[date_to]",
    "line_items[quantity_in_decimal]",
    "line_items[unit_amount_in_decimal]",
    "line_items[amount_in_decimal]",
]
TOTALS = {
    "acme-2026-01-01": "60.16",
    "acme-2026-02-01": "0.00",
    "yen-2026-01-01": "6857",
    "dinar-2026-01-01": "21.250",
    "dinar-2026-02-01": "5.125",
    "late-2026-02-01": "0.00",
    "nostripe-2026-01-01": "1.00",
}


@pytest.fixture
def con(warehouse_path: Path) -> duckdb.DuckDBPyConnection:
    customers, invoices, _, _ = standard_dataset(
        {"acme": "cus_a", "yen": "cus_y", "dinar": "cus_d", "late": "cus_l"}
    )
    write_warehouse(warehouse_path, customers, invoices)
    return duckdb.connect(str(warehouse_path))


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    raw = path.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")  # UTF-8 without BOM
    text = raw.decode("utf-8")
    assert text.endswith("\r\n")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader)
    return header, [dict(zip(header, row, strict=True)) for row in reader]


def test_layout_constants_match_the_documentation() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "billing-sync.md").read_text()
    for columns in (DOC_NETSUITE, DOC_ZUORA, DOC_CHARGEBEE):
        # docs/billing-sync.md lists each layout as one table row: `col` | `col` | ...
        assert "| " + " | ".join(f"`{c}`" for c in columns) + " |" in doc
    assert list(NETSUITE_COLUMNS) == DOC_NETSUITE
    assert list(ZUORA_COLUMNS) == DOC_ZUORA
    assert list(CHARGEBEE_COLUMNS) == DOC_CHARGEBEE


def test_netsuite_one_row_per_line_and_adjustment_adding_up_to_total(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    (path,) = export_invoices(con, "netsuite", tmp_path / "out")
    assert path.name == "netsuite-invoice-lines-all.csv"
    header, rows = read_csv(path)
    assert header == DOC_NETSUITE
    sums: dict[str, Decimal] = {}
    for row in rows:
        sums[row["External ID"]] = sums.get(row["External ID"], Decimal(0)) + Decimal(row["Amount"])
        if row["Rate"]:
            assert Decimal(row["Rate"]) * Decimal(row["Quantity"]) == Decimal(row["Amount"])
    assert {k: str(v) for k, v in sums.items()} == TOTALS
    acme = [r for r in rows if r["External ID"] == "acme-2026-01-01"]
    assert [(r["Line Type"], r["Item"], r["Quantity"], r["Rate"], r["Amount"]) for r in acme] == [
        ("base_fee", "tally:pro:base_fee", "1", "100", "100.00"),
        ("usage", "tally:pro:api_calls", "4", "0.5", "2.00"),
        ("discount", "tally:discount", "1", "-10.2", "-10.20"),
        ("tax", "tally:tax", "1", "18.36", "18.36"),
        ("credits_applied", "tally:credits_applied", "1", "-50", "-50.00"),
    ]
    first = acme[0]
    assert (
        first["Customer"],
        first["Date"],
        first["Start Date"],
        first["End Date"],
        first["Currency"],
    ) == ("acme", "2026-03-02", "2026-01-01", "2026-01-31", "USD")
    assert first["Memo"] == "Tally invoice acme-2026-01-01, usage 2026-01-01 to 2026-01-31"
    tokens = next(r for r in rows if r["Item"] == "tally:pro:input_tokens")
    assert (tokens["Quantity"], tokens["Rate"], tokens["Amount"]) == (
        "1250000",
        "0.000002504",
        "3.13",
    )
    yen = [r["Amount"] for r in rows if r["External ID"] == "yen-2026-01-01"]
    assert yen == ["5000", "1234", "623"]  # JPY: no decimals
    dinar = [r["Amount"] for r in rows if r["External ID"] == "dinar-2026-01-01"]
    assert dinar == ["12.340", "0.120", "7.540", "1.250"]  # KWD: three decimals


def test_chargebee_layout(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    (path,) = export_invoices(con, "chargebee", tmp_path, period_start=date(2026, 1, 1))
    assert path.name == "chargebee-invoice-lines-2026-01-01.csv"
    header, rows = read_csv(path)
    assert header == DOC_CHARGEBEE
    assert {r["invoice[id]"] for r in rows} == {
        "acme-2026-01-01",
        "yen-2026-01-01",
        "dinar-2026-01-01",
        "nostripe-2026-01-01",
    }
    for invoice_id in {r["invoice[id]"] for r in rows}:
        mine = [r for r in rows if r["invoice[id]"] == invoice_id]
        assert {r["invoice[total]"] for r in mine} == {TOTALS[invoice_id]}
        assert sum(Decimal(r["line_items[amount_in_decimal]"]) for r in mine) == Decimal(
            TOTALS[invoice_id]
        )
    late = next(r for r in rows if r["line_items[id]"] == "acme-2026-01-01-l2")
    assert (
        late["line_items[entity_type]"],
        late["line_items[entity_id]"],
        late["line_items[quantity_in_decimal]"],
        late["line_items[unit_amount_in_decimal]"],
        late["line_items[date_from]"],
        late["line_items[date_to]"],
        late["invoice[currency_code]"],
        late["invoice[customer_id]"],
    ) == ("adhoc", "tally:pro:api_calls", "4", "0.5", "2026-01-01", "2026-01-31", "USD", "acme")


def test_zuora_usage_rows_only_with_its_date_format(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    (path,) = export_invoices(con, "zuora", tmp_path)
    assert path.name == "zuora-usage-all-001.csv"
    header, rows = read_csv(path)
    assert header == DOC_ZUORA
    assert len(rows) == 6  # usage and late_usage lines; base fees and adjustments are not usage
    first = rows[0]
    assert first == {
        "ACCOUNT_ID": "acme",
        "UOM": "api_calls",
        "QTY": "4",
        "STARTDATE": "01/01/2026",
        "ENDDATE": "01/31/2026",
        "SUBSCRIPTION_ID": "",
        "CHARGE_ID": "",
        "DESCRIPTION": "Tally acme-2026-01-01 line acme-2026-01-01-l2: pro api_calls: usage",
    }
    late = next(r for r in rows if r["ACCOUNT_ID"] == "late")
    assert (late["QTY"], late["STARTDATE"], late["ENDDATE"]) == ("-3", "02/01/2026", "02/28/2026")
    assert "for period starting 2026-01-01" in late["DESCRIPTION"]


def test_zuora_files_over_4_mb_are_split(tmp_path: Path) -> None:
    warehouse = tmp_path / "big.duckdb"
    write_warehouse(warehouse, [], [Invoice("bulk", date(2026, 1, 1), lines=[])])
    con = duckdb.connect(str(warehouse))
    n = 45_000
    con.execute(
        """insert into ledger.finalized_invoice_lines
           select 'bulk-line-' || i, 'bulk-2026-01-01', 'usage', 'pro', 'meter_' || (i % 7),
                  'group-' || i, null, (i * 3)::decimal(38,12), 0.01, 'USD'
           from range(?) as t(i)""",
        [n],
    )
    paths = export_invoices(con, "zuora", tmp_path / "out")
    assert len(paths) >= 2
    total_rows = 0
    for path in paths:
        assert path.stat().st_size <= ZUORA_MAX_FILE_BYTES
        assert len(path.name) <= 50
        header, rows = read_csv(path)
        assert header == DOC_ZUORA
        total_rows += len(rows)
    assert total_rows == n
    assert sum(p.stat().st_size for p in paths) > ZUORA_MAX_FILE_BYTES
    # A smaller re-export removes the parts it no longer needs.
    con.execute("delete from ledger.finalized_invoice_lines where invoice_line_id <> 'bulk-line-1'")
    assert [p.name for p in export_invoices(con, "zuora", tmp_path / "out")] == [
        "zuora-usage-all-001.csv"
    ]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["zuora-usage-all-001.csv"]


def test_parquet_is_the_ledger_tables_as_they_are(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    paths = export_invoices(con, "parquet", tmp_path, period_start=date(2026, 2, 1))
    assert [p.name for p in paths] == [
        "finalized-invoices-2026-02-01.parquet",
        "finalized-invoice-lines-2026-02-01.parquet",
    ]
    invoices = con.execute(
        "select * from read_parquet(?) order by invoice_id", [str(paths[0])]
    ).fetchall()
    source = con.execute(
        "select * from ledger.finalized_invoices where period_start = '2026-02-01' "
        "order by invoice_id"
    ).fetchall()
    assert invoices == source and len(invoices) == 3
    lines = con.execute(
        "select * from read_parquet(?) order by invoice_line_id", [str(paths[1])]
    ).fetchall()
    source_lines = con.execute(
        "select * from ledger.finalized_invoice_lines where invoice_id in "
        "(select invoice_id from ledger.finalized_invoices where period_start = '2026-02-01') "
        "order by invoice_line_id"
    ).fetchall()
    assert lines == source_lines and len(lines) == 6
    column_types = {
        r[0]: r[1]
        for r in con.execute("describe select * from read_parquet(?)", [str(paths[0])]).fetchall()
    }
    assert column_types["total"] == "DECIMAL(38,12)"


def test_every_export_is_audited_with_file_hashes(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    (path,) = export_invoices(con, "netsuite", tmp_path, period_start=date(2026, 1, 1))
    ((action, invoice_id, result, detail),) = con.execute(
        "select action, invoice_id, result, detail from ledger.audit_log"
    ).fetchall()
    detail = json.loads(detail)
    assert (action, invoice_id, result) == ("export.netsuite", None, "written")
    assert detail["period_start"] == "2026-01-01"
    assert detail["files"] == [
        {
            "path": str(path),
            "rows": 13,
            "bytes": path.stat().st_size,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        }
    ]
    assert sorted(detail["invoice_ids"]) == [
        "acme-2026-01-01",
        "dinar-2026-01-01",
        "nostripe-2026-01-01",
        "yen-2026-01-01",
    ]


def test_unknown_format_is_refused(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="unknown export format 'sap'"):
        export_invoices(con, "sap", tmp_path)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("amount", "quantity", "rate"),
    [
        ("2.00", "4", "0.5"),
        ("3.13", "1250000", "0.000002504"),
        ("1.00", "3", ""),
        ("0.00", "0", ""),
        ("5.00", None, ""),
        ("-30.00", "-3", "10"),
        ("1.00", "7000000000000", ""),
    ],  # 1/7e12 needs more than 12 decimals
)
def test_rate_is_written_only_when_exact(amount: str, quantity: str | None, rate: str) -> None:
    assert exact_rate(Decimal(amount), None if quantity is None else Decimal(quantity)) == rate


def test_empty_period_writes_header_only_files(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    (path,) = export_invoices(con, "zuora", tmp_path, period_start=date(2030, 1, 1))
    assert read_csv(path) == (DOC_ZUORA, [])
