"""Exports of finalized invoices for other billing systems (NetSuite, Zuora, Chargebee)
and as Parquet. Column layouts are documented in ``docs/billing-sync.md`` and pinned by
the tests; every export is appended to ``ledger.audit_log``.

Money is written exactly: amounts with the currency's ISO 4217 minor-unit decimals,
quantities as plain decimals. A ``Rate`` (unit price) is written only when
``amount / quantity`` is an exact decimal of at most 12 places; otherwise it is left
empty and ``Amount`` is authoritative (tiered prices have no single exact rate).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Context, Decimal
from pathlib import Path
from typing import Literal

import duckdb

from billing_sync.audit import append_audit, ensure_ledger_audit
from billing_sync.warehouse import TallyInvoice, TallyLine, load_finalized_invoices
from ingestion.config.currencies import format_money

ExportFormat = Literal["netsuite", "zuora", "chargebee", "parquet"]
EXPORT_FORMATS: tuple[str, ...] = ("netsuite", "zuora", "chargebee", "parquet")

# Zuora's usage upload accepts files of at most 4 MB; 4,000,000 bytes is below both
# readings of "MB". File names must stay within 50 characters.
ZUORA_MAX_FILE_BYTES = 4_000_000
ZUORA_MAX_FILENAME_CHARS = 50

NETSUITE_COLUMNS = (
    "External ID", "Customer", "Date", "Start Date", "End Date", "Currency",
    "Line ID", "Line Type", "Item", "Description", "Quantity", "Rate", "Amount", "Memo",
)  # fmt: skip
ZUORA_COLUMNS = (
    "ACCOUNT_ID", "UOM", "QTY", "STARTDATE", "ENDDATE",
    "SUBSCRIPTION_ID", "CHARGE_ID", "DESCRIPTION",
)  # fmt: skip
CHARGEBEE_COLUMNS = (
    "invoice[id]", "invoice[customer_id]", "invoice[currency_code]", "invoice[date]",
    "invoice[total]", "line_items[id]", "line_items[entity_type]", "line_items[entity_id]",
    "line_items[description]", "line_items[date_from]", "line_items[date_to]",
    "line_items[quantity_in_decimal]", "line_items[unit_amount_in_decimal]",
    "line_items[amount_in_decimal]",
)  # fmt: skip

_EXACT = Context(prec=80)


class ExportError(ValueError):
    pass


@dataclass(frozen=True)
class ExportRow:
    """One invoice-line-like row shared by the NetSuite and Chargebee layouts."""

    invoice: TallyInvoice
    line_id: str
    line_type: str
    item: str
    description: str
    quantity: Decimal | None
    amount: Decimal


def _plain(value: Decimal) -> str:
    return "0" if value == 0 else format(value.normalize(), "f")


def exact_rate(amount: Decimal, quantity: Decimal | None) -> str:
    """amount / quantity when exact within 12 decimals, else '' (Amount is authoritative)."""
    if quantity is None:
        return ""
    if quantity == 0:
        return ""
    rate = _EXACT.divide(amount, quantity)
    if _EXACT.multiply(rate, quantity) != amount:
        return ""
    normalized = rate.normalize()
    exponent = normalized.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -12:
        return ""
    return _plain(normalized)


def _last_day(invoice: TallyInvoice) -> date:
    return invoice.period_end - timedelta(days=1)


def _invoice_date(invoice: TallyInvoice) -> date:
    return invoice.invoice_date


def _line_item_name(line: TallyLine) -> str:
    if line.line_type in ("usage", "late_usage") and line.charge_key:
        return f"tally:{line.plan_key}:{line.charge_key}"
    return f"tally:{line.plan_key}:{line.line_type}"


def _line_description(line: TallyLine) -> str:
    text = line.line_type.replace("_", " ")
    if line.charge_key:
        text = f"{line.plan_key} {line.charge_key}: {text}"
    else:
        text = f"{line.plan_key}: {text}"
    if line.group_value is not None:
        text += f" [{line.group_value}]"
    if line.for_period_start is not None:
        text += f" for period starting {line.for_period_start.isoformat()}"
    return text


def invoice_rows(invoice: TallyInvoice) -> list[ExportRow]:
    """Tally lines, then one row per non-zero adjustment: amounts add up to ``total``."""
    rows = [
        ExportRow(
            invoice,
            line.invoice_line_id,
            line.line_type,
            _line_item_name(line),
            _line_description(line),
            line.quantity,
            line.amount,
        )
        for line in invoice.lines
    ]
    gross = invoice.subtotal - invoice.discount + invoice.tax
    carried = -gross if gross < 0 else Decimal(0)
    for name, amount, description in (
        ("discount", -invoice.discount, "Discount"),
        ("tax", invoice.tax, "Tax"),
        ("credits_applied", -invoice.credits_applied, "Prepaid credits applied"),
        ("credit_carried_forward", carried, "Negative balance carried forward as credit"),
    ):
        if amount != 0:
            rows.append(
                ExportRow(
                    invoice,
                    f"{invoice.invoice_id}:{name}",
                    name,
                    f"tally:{name}",
                    description,
                    None,
                    amount,
                )
            )
    return rows


def _csv_text(rows: Iterable[Sequence[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    for row in rows:
        writer.writerow(row)
    return buf.getvalue()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _netsuite(invoices: list[TallyInvoice]) -> list[tuple[str, ...]]:
    out = []
    for inv in invoices:
        memo = (
            f"Tally invoice {inv.invoice_id}, usage {inv.period_start.isoformat()} to "
            f"{_last_day(inv).isoformat()}"
        )
        for r in invoice_rows(inv):
            qty = r.quantity if r.quantity is not None else Decimal(1)
            out.append(
                (
                    inv.invoice_id,
                    inv.customer_id,
                    _invoice_date(inv).isoformat(),
                    inv.period_start.isoformat(),
                    _last_day(inv).isoformat(),
                    inv.currency,
                    r.line_id,
                    r.line_type,
                    r.item,
                    r.description,
                    _plain(qty),
                    exact_rate(r.amount, qty),
                    format_money(r.amount, inv.currency),
                    memo,
                )
            )
    return out


def _chargebee(invoices: list[TallyInvoice]) -> list[tuple[str, ...]]:
    out = []
    for inv in invoices:
        for r in invoice_rows(inv):
            qty = r.quantity if r.quantity is not None else Decimal(1)
            out.append(
                (
                    inv.invoice_id,
                    inv.customer_id,
                    inv.currency,
                    _invoice_date(inv).isoformat(),
                    format_money(inv.total, inv.currency),
                    r.line_id,
                    "adhoc",
                    r.item,
                    f"{r.description} (Tally invoice {inv.invoice_id})",
                    inv.period_start.isoformat(),
                    _last_day(inv).isoformat(),
                    _plain(qty),
                    exact_rate(r.amount, qty),
                    format_money(r.amount, inv.currency),
                )
            )
    return out


def _zuora_rows(invoices: list[TallyInvoice]) -> list[tuple[str, ...]]:
    out = []
    for inv in invoices:
        for line in inv.lines:
            if line.line_type not in ("usage", "late_usage") or line.quantity is None:
                continue
            description = f"Tally {inv.invoice_id} line {line.invoice_line_id}: " + (
                _line_description(line)
            )
            out.append(
                (
                    inv.customer_id,
                    line.charge_key or line.plan_key,
                    _plain(line.quantity),
                    inv.period_start.strftime("%m/%d/%Y"),
                    _last_day(inv).strftime("%m/%d/%Y"),
                    "",
                    "",
                    description,
                )
            )
    return out


def split_csv(
    header: Sequence[str], rows: Sequence[Sequence[str]], max_bytes: int
) -> list[tuple[bytes, int]]:
    """Header + rows in files of at most ``max_bytes`` bytes each (header in every file).

    Returns ``(file bytes, number of data rows)`` per file.
    """
    head = _csv_text([header]).encode("utf-8")
    files: list[tuple[bytes, int]] = []
    current: list[bytes] = [head]
    size = len(head)
    for row in rows:
        data = _csv_text([row]).encode("utf-8")
        if len(head) + len(data) > max_bytes:
            raise ExportError(f"one row alone exceeds {max_bytes} bytes: {row[:3]}")
        if size + len(data) > max_bytes:
            files.append((b"".join(current), len(current) - 1))
            current, size = [head], len(head)
        current.append(data)
        size += len(data)
    files.append((b"".join(current), len(current) - 1))
    return files


def export_invoices(
    con: duckdb.DuckDBPyConnection,
    fmt: ExportFormat,
    out_dir: Path,
    *,
    period_start: date | None = None,
) -> list[Path]:
    """Write the finalized invoices (all, or those starting on ``period_start``)."""
    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    invoices = load_finalized_invoices(con, period_start=period_start)
    tag = period_start.isoformat() if period_start else "all"
    written: list[tuple[Path, int]] = []  # (path, data rows)

    if fmt == "parquet":
        ids = [inv.invoice_id for inv in invoices]
        for name, sql in (
            (
                f"finalized-invoices-{tag}.parquet",
                "select * from ledger.finalized_invoices where list_contains(?, invoice_id) "
                "order by customer_id, period_start, invoice_id",
            ),
            (
                f"finalized-invoice-lines-{tag}.parquet",
                "select * from ledger.finalized_invoice_lines where list_contains(?, invoice_id) "
                "order by invoice_id, invoice_line_id",
            ),
        ):
            path = out_dir / name
            tmp = out_dir / f".{name}.tmp"
            con.sql(sql, params=[ids]).write_parquet(str(tmp))
            os.replace(tmp, path)
            count = con.execute("select count(*) from read_parquet(?)", [str(path)]).fetchall()
            written.append((path, int(count[0][0])))
    elif fmt == "zuora":
        for stale in out_dir.glob(f"zuora-usage-{tag}-*.csv"):
            stale.unlink()
        rows = _zuora_rows(invoices)
        parts = split_csv(ZUORA_COLUMNS, rows, ZUORA_MAX_FILE_BYTES)
        for n, (data, count) in enumerate(parts, start=1):
            name = f"zuora-usage-{tag}-{n:03d}.csv"
            assert len(name) <= ZUORA_MAX_FILENAME_CHARS
            path = out_dir / name
            _write_atomic(path, data)
            written.append((path, count))
    else:
        header, rows = (
            (NETSUITE_COLUMNS, _netsuite(invoices))
            if fmt == "netsuite"
            else (CHARGEBEE_COLUMNS, _chargebee(invoices))
        )
        path = out_dir / f"{fmt}-invoice-lines-{tag}.csv"
        _write_atomic(path, _csv_text([header, *rows]).encode("utf-8"))
        written.append((path, len(rows)))

    ensure_ledger_audit(con)
    append_audit(
        con,
        action=f"export.{fmt}",
        invoice_id=None,
        result="written",
        detail={
            "period_start": period_start.isoformat() if period_start else None,
            "invoice_ids": [inv.invoice_id for inv in invoices],
            "files": [
                {
                    "path": str(p),
                    "rows": n,
                    "bytes": p.stat().st_size,
                    "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
                }
                for p, n in written
            ],
        },
    )
    return [p for p, _ in written]
