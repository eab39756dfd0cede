"""Analysts get Parquet copies of the marts after each run, and dbt docs generate."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from orchestration.manifest import DBT_PROJECT_DIR
from tests.conftest import SCENARIOS_DIR
from tests.integration.scenario_runner import run_steps

DBT = Path(sys.executable).parent / "dbt"


@pytest.fixture(scope="module")
def discount_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("analysts") / "home"
    run_steps(SCENARIOS_DIR / "discount_tax_credits", home)
    return home


@pytest.mark.slow
def test_marts_are_exported_to_parquet_and_match_the_invoices(discount_home: Path):
    exports = discount_home / "exports"
    con = duckdb.connect()
    totals = dict(
        con.execute(f"select invoice_id, total from '{exports}/fct_invoices.parquet'").fetchall()
    )
    assert totals == {
        "acme-2026-01-01": Decimal("0"),
        "acme-2026-02-01": Decimal("0"),
        "acme-2026-03-01": Decimal("61.36"),
        "tiny-2026-01-01": Decimal("0"),
    }
    balances = dict(
        con.execute(
            f"select credit_grant_id, balance from '{exports}/fct_credit_balances.parquet' "
            "where customer_id = 'acme'"
        ).fetchall()
    )
    # B (150, no expiry) is left with 150 - 60.16 - 61.20 - 28.64 = 0.00; A used 50; C used 30
    assert balances == {"acme#0": Decimal("0"), "acme#1": Decimal("0"), "acme#2": Decimal("0")}
    usage = con.execute(
        f"select sum(event_count) from '{exports}/fct_usage_daily.parquet' where customer_id = 'acme'"
    ).fetchone()
    assert usage == (6,)


@pytest.mark.slow
def test_dbt_docs_generate_describes_every_mart(discount_home: Path, tmp_path: Path):
    env = {**os.environ, "TALLY_WAREHOUSE": str(discount_home / "warehouse.duckdb")}
    result = subprocess.run(
        [str(DBT), "docs", "generate", "--project-dir", str(DBT_PROJECT_DIR),
         "--profiles-dir", str(DBT_PROJECT_DIR), "--target-path", str(tmp_path / "target"),
         "--log-path", str(tmp_path / "logs")],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    catalog = (tmp_path / "target" / "catalog.json").read_text()
    assert "fct_invoices" in catalog and "fct_credit_balances" in catalog
