"""Re-rating against a Tally home: where its warehouse, customers and dbt project are.

Plain Python shared by `tally rerate` and the Dagster job `rerate` (no Dagster import).
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from billing_sync.rerate import PeriodFilter, RerateError, RerateResult, rerate_catalog
from ingestion.config.store import ConfigStore
from orchestration.home import TallyHome
from orchestration.manifest import DBT_PROJECT_DIR

BUSY_RETRY_SECONDS = 600


def rerate_home(
    home: TallyHome,
    candidate: Path,
    *,
    period: PeriodFilter | None = None,
    out: str | Path | None = None,
    console: Console | None = None,
    take_run_lock: bool = True,
) -> tuple[RerateResult, Path]:
    """Re-rate the home's invoices with `candidate`; returns the result and the output folder.

    The CLI takes the home's run lock (one run at a time); a run launched by the Dagster
    daemon may still hold the warehouse, so a busy warehouse is retried for up to 10 minutes.
    """
    from orchestration.runner import home_run_lock

    if not home.warehouse.exists():
        raise RerateError(
            f"{home.root}: no warehouse yet (run `tally run --home {home.root} ...` first)"
        )
    candidate = Path(candidate).resolve()
    customers = ConfigStore(home.root).latest().customers_path
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    workdir = home.root / "rerate" / f"{stamp}-{candidate.stem}"
    deadline = time.monotonic() + BUSY_RETRY_SECONDS
    while True:
        try:
            if take_run_lock:
                with home_run_lock(home, console or Console(stderr=True)):
                    result = _rerate(home, candidate, customers, workdir, period)
            else:
                result = _rerate(home, candidate, customers, workdir, period)
            break
        except RerateError as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(2)
    return result, Path(out) if out else workdir


def _rerate(
    home: TallyHome, candidate: Path, customers: Path, workdir: Path, period: PeriodFilter | None
) -> RerateResult:
    return rerate_catalog(
        home.warehouse,
        candidate,
        customers,
        workdir=workdir,
        dbt_executable=Path(sys.executable).parent / "dbt",
        dbt_project_dir=DBT_PROJECT_DIR,
        period=period,
        dbt_target=home.root / "dbt" / "rerate",
    )
