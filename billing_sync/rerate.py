"""Re-rating: the invoices a candidate catalog would produce, and their diff with the real ones.

Nothing real is touched. The warehouse is copied into a scratch DuckDB file, the candidate
catalog (with the home's current customers) is written into the copy's config tables, and the
invoice models are rebuilt there with `dbt build` as of the clock of the last real run. The
"old" side is what `tally invoices` shows (the published documents); the "new" side is the
copy's documents. Finalized invoices come from the ledger in both: they never change
(SPEC §5), so only draft and open invoices can differ.

Plain Python (no Dagster): the CLI (`tally rerate`) and the Dagster job `rerate` call
`rerate_catalog` and `write_diff_files`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from billing_sync.invoice_documents import build_documents, read_documents
from ingestion.config.catalog import load_catalog
from ingestion.config.currencies import format_money
from ingestion.config.customers import load_customers
from ingestion.config.store import ConfigVersion
from ingestion.config.tables import write_config_tables

# The invoice marts and everything upstream of them, with their data tests.
DBT_SELECT = "+fct_invoices +fct_invoice_lines"


class RerateError(Exception):
    """The re-rating could not be computed; the message is for humans."""


@dataclass(frozen=True)
class PeriodFilter:
    """`2026-01` (local period start in that month) or `2026-01-15` (exactly that start)."""

    text: str

    @classmethod
    def parse(cls, text: str | None) -> PeriodFilter | None:
        if not text:
            return None
        try:
            if len(text) == 7:
                datetime.strptime(text, "%Y-%m")
            else:
                datetime.strptime(text, "%Y-%m-%d")
        except ValueError:
            raise RerateError(f"--period-start {text!r}: expected YYYY-MM-DD or YYYY-MM") from None
        return cls(text)

    def matches(self, period_start: str) -> bool:
        return (
            period_start.startswith(self.text) if len(self.text) == 7 else period_start == self.text
        )


@dataclass
class ChargeDiff:
    """One invoice line key: (type, plan, charge, group, for_period)."""

    line_type: str
    plan: str | None
    charge: str | None
    group: str | None
    for_period: str | None
    old_amount: Decimal
    new_amount: Decimal

    @property
    def change(self) -> Decimal:
        return self.new_amount - self.old_amount

    @property
    def label(self) -> str:
        """`pro/api_calls`, `pro/input_tokens[gpt-4o]`, `pro/base_fee`,
        `pro/api_calls late for 2026-01-01`."""
        charged = self.line_type in ("usage", "late_usage") and self.charge
        name = self.charge if charged else self.line_type
        if self.group is not None:
            name = f"{name}[{self.group}]"
        if self.line_type == "late_usage":
            name = f"{name} late for {self.for_period}"
        return f"{self.plan}/{name}" if self.plan else str(name)


@dataclass
class InvoiceDiff:
    invoice_id: str
    customer_id: str
    currency: str
    period_start: str
    status: str  # the status under the candidate (= the real one: same clock)
    old_total: Decimal | None  # None: the invoice exists only under the candidate
    new_total: Decimal | None  # None: the invoice exists only under the real catalog
    charges: list[ChargeDiff] = field(default_factory=list)

    @property
    def change(self) -> Decimal:
        return (self.new_total or Decimal(0)) - (self.old_total or Decimal(0))


@dataclass
class RerateResult:
    as_of: datetime
    candidate: str
    candidate_sha256: str
    period: str | None
    invoices: list[InvoiceDiff]

    def customers(self) -> list[dict[str, Any]]:
        """Per customer and currency: old total, new total, change, and per charge."""
        grouped: dict[tuple[str, str], list[InvoiceDiff]] = defaultdict(list)
        for invoice in self.invoices:
            grouped[(invoice.customer_id, invoice.currency)].append(invoice)
        rows = []
        for (customer, currency), invoices in sorted(grouped.items()):
            charges: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
            for invoice in invoices:
                for charge in invoice.charges:
                    charges[charge.label][0] += charge.old_amount
                    charges[charge.label][1] += charge.new_amount
            old = sum((i.old_total or Decimal(0) for i in invoices), Decimal(0))
            new = sum((i.new_total or Decimal(0) for i in invoices), Decimal(0))
            rows.append(
                {
                    "customer_id": customer,
                    "currency": currency,
                    "invoices": len(invoices),
                    "frozen": sum(1 for i in invoices if i.status == "finalized"),
                    "old_total": format_money(old, currency),
                    "new_total": format_money(new, currency),
                    "change": format_money(new - old, currency),
                    "charges": [
                        {
                            "charge": label,
                            "old_amount": format_money(o, currency),
                            "new_amount": format_money(n, currency),
                            "change": format_money(n - o, currency),
                        }
                        for label, (o, n) in sorted(charges.items())
                    ],
                }
            )
        return rows

    def to_dict(self) -> dict[str, Any]:
        def money(value: Decimal | None, currency: str) -> str | None:
            return None if value is None else format_money(value, currency)

        return {
            "as_of": self.as_of.isoformat(),
            "candidate": self.candidate,
            "candidate_sha256": self.candidate_sha256,
            "period": self.period,
            "customers": self.customers(),
            "invoices": [
                {
                    "invoice_id": i.invoice_id,
                    "customer_id": i.customer_id,
                    "currency": i.currency,
                    "period_start": i.period_start,
                    "status": i.status,
                    "old_total": money(i.old_total, i.currency),
                    "new_total": money(i.new_total, i.currency),
                    "change": format_money(i.change, i.currency),
                    "charges": [
                        {
                            **{
                                k: v
                                for k, v in asdict(c).items()
                                if k not in ("old_amount", "new_amount")
                            },
                            "label": c.label,
                            "old_amount": format_money(c.old_amount, i.currency),
                            "new_amount": format_money(c.new_amount, i.currency),
                            "change": format_money(c.change, i.currency),
                        }
                        for c in i.charges
                    ],
                }
                for i in self.invoices
            ],
        }


# --- computing -------------------------------------------------------------------------------


def rerate_catalog(
    warehouse: Path,
    candidate_catalog: Path,
    customers_path: Path,
    *,
    workdir: Path,
    dbt_executable: Path,
    dbt_project_dir: Path,
    period: PeriodFilter | None = None,
    keep_copy: bool = False,
    dbt_target: Path | None = None,
) -> RerateResult:
    """The candidate's invoices vs the published ones, as of the last run's clock.

    `warehouse` is only read (attached read-only and copied); the caller makes sure no run
    holds it. Raises CatalogError / CustomersError for an unusable candidate, RerateError
    when the warehouse has no billing run yet or the candidate cannot be rated.
    """
    candidate_bytes = Path(candidate_catalog).read_bytes()
    catalog = load_catalog(candidate_catalog, text=candidate_bytes)
    customers = load_customers(str(customers_path), catalog)
    if not Path(warehouse).exists():
        raise RerateError(f"{warehouse}: no warehouse yet (run `tally run` first)")
    workdir.mkdir(parents=True, exist_ok=True)
    scratch = workdir / "candidate.duckdb"
    scratch.unlink(missing_ok=True)
    try:
        with duckdb.connect(str(scratch)) as con:
            con.execute("set TimeZone = 'UTC'")
            _copy_warehouse(con, Path(warehouse))
            as_of = _last_run_clock(con)
            old = {d["invoice_id"]: d for d in read_documents(con)}
            version = ConfigVersion(
                catalog_path=Path(candidate_catalog),
                catalog_sha256=hashlib.sha256(candidate_bytes).hexdigest(),
                customers_path=Path(customers_path),
                customers_sha256=hashlib.sha256(Path(customers_path).read_bytes()).hexdigest(),
            )
            write_config_tables(con, catalog, customers, version)
        _dbt_build(scratch, dbt_target or workdir / "dbt", dbt_executable, dbt_project_dir)
        with duckdb.connect(str(scratch), read_only=True) as con:
            new = {d["invoice_id"]: d for d in build_documents(con)}
    finally:
        if not keep_copy:
            scratch.unlink(missing_ok=True)
            Path(f"{scratch}.wal").unlink(missing_ok=True)
    invoices = diff_documents(old.values(), new.values(), period)
    return RerateResult(
        as_of,
        str(candidate_catalog),
        version.catalog_sha256,
        period.text if period else None,
        invoices,
    )


def _copy_warehouse(con: duckdb.DuckDBPyConnection, warehouse: Path) -> None:
    try:
        con.execute("attach ? as real_warehouse (read_only)", [str(warehouse)])
    except duckdb.IOException as exc:
        raise RerateError(
            f"{warehouse}: cannot read the warehouse ({' '.join(str(exc).split())[:300]})"
        ) from None
    try:
        target = con.execute("select current_database()").fetchone()[0]  # type: ignore[index]
        con.execute(f'copy from database real_warehouse to "{target}"')
    finally:
        con.execute("detach real_warehouse")


def _last_run_clock(con: duckdb.DuckDBPyConnection) -> datetime:
    try:
        row = con.execute("select as_of from config.run_clock").fetchone()
        published = con.execute("select count(*) from marts.invoice_documents").fetchone()
    except duckdb.CatalogException:
        row, published = None, None
    if not row or not published:
        raise RerateError("no billing run has published invoices yet (run `tally run` first)")
    return row[0]


def _dbt_build(warehouse: Path, dbt_dir: Path, dbt: Path, project_dir: Path) -> None:
    """`dbt build` of the invoice models into `warehouse`; target/ and logs/ under `dbt_dir`
    (kept between re-ratings, so dbt parses the project partially)."""
    env = {**os.environ, "TALLY_WAREHOUSE": str(warehouse)}
    (dbt_dir / "target" / "run_results.json").unlink(missing_ok=True)  # only this build's results
    command = [
        str(dbt),
        "build",
        "--select",
        DBT_SELECT,
        "--exclude-resource-type",
        "unit_test",
        "--project-dir",
        str(project_dir),
        "--profiles-dir",
        str(project_dir),
        "--target-path",
        str(dbt_dir / "target"),
        "--log-path",
        str(dbt_dir / "logs"),
        "--quiet",
    ]
    result = subprocess.run(command, cwd=project_dir, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        failures = _dbt_failures(dbt_dir / "target")
        if failures:
            raise RerateError("the candidate catalog cannot be rated: " + "; ".join(failures))
        raise RerateError(f"dbt build failed: {(result.stdout + result.stderr).strip()[-1000:]}")


def _dbt_failures(target: Path) -> list[str]:
    path = target / "run_results.json"
    if not path.exists():
        return []
    failures = []
    for entry in json.loads(path.read_text()).get("results", []):
        if entry.get("status") in ("error", "fail"):
            message = " ".join((entry.get("message") or "").split())
            failures.append(f"{entry['unique_id'].split('.')[-1]}: {message}"[:400])
    return failures


# --- the diff --------------------------------------------------------------------------------


def _line_key(line: dict[str, Any]) -> tuple[str, str | None, str | None, str | None, str | None]:
    return (line["type"], line["plan"], line["charge"], line["group"], line.get("for_period"))


def _sort_key(key: tuple) -> tuple:
    return tuple("" if part is None else str(part) for part in key)


def diff_documents(
    old: Iterable[dict[str, Any]], new: Iterable[dict[str, Any]], period: PeriodFilter | None = None
) -> list[InvoiceDiff]:
    """Per invoice (sorted by customer, period): totals and per-line-key amounts, old vs new."""
    old_by_id = {d["invoice_id"]: d for d in old}
    new_by_id = {d["invoice_id"]: d for d in new}
    diffs = []
    for invoice_id in sorted(set(old_by_id) | set(new_by_id)):
        before, after = old_by_id.get(invoice_id), new_by_id.get(invoice_id)
        doc = after or before
        assert doc is not None
        if period is not None and not period.matches(doc["period_start"]):
            continue
        amounts: dict[tuple, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
        for side, document in ((0, before), (1, after)):
            for line in (document or {}).get("lines", []):
                amounts[_line_key(line)][side] += Decimal(line["amount"])
        diffs.append(
            InvoiceDiff(
                invoice_id=invoice_id,
                customer_id=doc["customer_id"],
                currency=doc["currency"],
                period_start=doc["period_start"],
                status=doc["status"],
                old_total=Decimal(before["total"]) if before else None,
                new_total=Decimal(after["total"]) if after else None,
                charges=[
                    ChargeDiff(*key, old_amount=o, new_amount=n)
                    for key, (o, n) in sorted(amounts.items(), key=lambda item: _sort_key(item[0]))
                ],
            )
        )
    diffs.sort(key=lambda d: (d.customer_id, d.period_start))
    return diffs


# --- exports ---------------------------------------------------------------------------------


def write_diff_files(result: RerateResult, folder: Path) -> list[Path]:
    """`rerate-diff.json` (everything), `rerate-customers.csv`, `rerate-charges.csv`."""
    folder.mkdir(parents=True, exist_ok=True)
    data = result.to_dict()
    json_path = folder / "rerate-diff.json"
    json_path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    customers_path = folder / "rerate-customers.csv"
    customers_path.write_text(
        _csv(
            ["customer_id", "currency", "invoices", "frozen", "old_total", "new_total", "change"],
            (
                [
                    row[k]
                    for k in (
                        "customer_id",
                        "currency",
                        "invoices",
                        "frozen",
                        "old_total",
                        "new_total",
                        "change",
                    )
                ]
                for row in data["customers"]
            ),
        ),
        encoding="utf-8",
    )
    charges_path = folder / "rerate-charges.csv"
    charges_path.write_text(
        _csv(
            ["customer_id", "currency", "charge", "old_amount", "new_amount", "change"],
            (
                [
                    row["customer_id"],
                    row["currency"],
                    c["charge"],
                    c["old_amount"],
                    c["new_amount"],
                    c["change"],
                ]
                for row in data["customers"]
                for c in row["charges"]
            ),
        ),
        encoding="utf-8",
    )
    return [json_path, customers_path, charges_path]


def _csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()
