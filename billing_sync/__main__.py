"""``python -m billing_sync --warehouse PATH [--dry-run]``: one Stripe sync run.

Reads STRIPE_API_KEY (and STRIPE_API_BASE) from the environment, syncs every finalized
invoice, prints the report as JSON on stdout (logs go to stderr) and exits 0 when no
invoice failed, 1 when some did (they stay pending; run again), 2 on a usage or
configuration error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import duckdb

from billing_sync import faults
from billing_sync.settings import StripeSettings, StripeSettingsError
from billing_sync.stripe_sync import sync_finalized_invoices


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m billing_sync", description=__doc__)
    parser.add_argument("--warehouse", required=True, type=Path, help="the DuckDB file")
    parser.add_argument("--dry-run", action="store_true", help="send and write nothing")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("stripe").setLevel(logging.WARNING)  # one line per request otherwise
    faults.arm_from_env()
    if not args.warehouse.exists():
        print(f"billing_sync: warehouse {args.warehouse} does not exist", file=sys.stderr)
        return 2
    try:
        settings = StripeSettings.from_env()
    except StripeSettingsError as exc:
        print(f"billing_sync: {exc}", file=sys.stderr)
        return 2
    con = duckdb.connect(str(args.warehouse), read_only=args.dry_run)
    try:
        report = sync_finalized_invoices(con, settings, dry_run=args.dry_run)
    finally:
        con.close()
    print(json.dumps(report.to_dict(), indent=2, default=str))
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
