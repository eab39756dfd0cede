"""ledger.audit_log: append-only, hash-chained, commits with the change it describes."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from billing_sync.audit import append_audit, ensure_ledger_audit, verify_audit_log


def test_append_records_when_what_which_invoice_and_result(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    ensure_ledger_audit(con)
    ensure_ledger_audit(con)  # idempotent
    first = append_audit(
        con,
        action="invoice.finalize",
        invoice_id="acme-2026-01-01",
        result="finalized",
        detail={"sha256": "ab", "total": "12.56"},
    )
    second = append_audit(
        con,
        action="export.netsuite",
        invoice_id=None,
        result="written",
        detail={"files": ["a.csv"]},
    )
    assert (first, second) == (1, 2)
    rows = con.execute(
        "select audit_id, action, invoice_id, result, detail, recorded_at "
        "from ledger.audit_log order by audit_id"
    ).fetchall()
    assert [r[:4] for r in rows] == [
        (1, "invoice.finalize", "acme-2026-01-01", "finalized"),
        (2, "export.netsuite", None, "written"),
    ]
    assert json.loads(rows[0][4]) == {"sha256": "ab", "total": "12.56"}
    assert rows[0][5] is not None and rows[0][5] <= rows[1][5]
    assert verify_audit_log(con) == []


def test_tampering_is_detected(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    ensure_ledger_audit(con)
    for n in range(3):
        append_audit(
            con,
            action="stripe.create_invoice",
            invoice_id=f"i{n}",
            result="created",
            detail={"n": n},
        )
    con.execute("update ledger.audit_log set result = 'nothing happened' where audit_id = 2")
    assert verify_audit_log(con) == ["audit_id 2: content changed after it was appended"]
    con.execute("delete from ledger.audit_log where audit_id = 2")
    problems = verify_audit_log(con)
    assert "audit_id 2: missing (next row is 3)" in problems


def test_audit_row_rolls_back_with_the_callers_transaction(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    ensure_ledger_audit(con)
    con.begin()
    append_audit(con, action="invoice.finalize", invoice_id="x", result="finalized", detail={})
    con.rollback()
    assert con.execute("select count(*) from ledger.audit_log").fetchone() == (0,)


def test_action_and_result_are_required(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    ensure_ledger_audit(con)
    with pytest.raises(ValueError):
        append_audit(con, action="", invoice_id=None, result="x", detail={})
