"""`tally`: the command line of SPEC §7, plus the demo, the UI and the collector.

JSON goes to stdout alone; progress, logs and errors go to stderr. Bad input exits 2 with a
one-line reason naming the file, the entry and the rule; a failed gate exits 1 naming the
check and what it found.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestration.home import TallyHome

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
DELEGATED = frozenset({"run", "close"})  # handed to `tally serve` when one runs for the home
err = Console(stderr=True, soft_wrap=True)


class InputError(Exception):
    """Input the run cannot use; the message is the one line the user sees."""


def parse_as_of(text: str | None) -> datetime:
    from orchestration.defs.resources import parse_instant

    if text is None:
        return datetime.now(UTC)
    try:
        return parse_instant(text)
    except ValueError as exc:
        raise InputError(f"--as-of {text!r}: not an ISO 8601 instant ({exc})") from exc


# --- run -------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    home = TallyHome.at(args.home).ensure()
    as_of = parse_as_of(args.as_of)
    record_config(home, args.catalog, args.customers)
    land_events(home, [path for group in args.events or [] for path in group])
    return execute_billing_run(home, as_of)


def record_config(home: TallyHome, catalog: str, customers: str) -> None:
    from ingestion.config.errors import ConfigError
    from ingestion.config.store import ConfigStore

    try:
        ConfigStore(home.root).record(catalog, customers)
    except ConfigError as exc:
        raise InputError(str(exc)) from exc
    except FileNotFoundError as exc:
        raise InputError(f"{exc.filename}: no such file") from exc


def land_events(home: TallyHome, paths: Sequence[str]) -> None:
    from ingestion.landing import LandingError, LandingZone

    try:
        LandingZone(home.landing).land_paths(paths)
    except LandingError as exc:
        raise InputError(str(exc)) from exc


def execute_billing_run(home: TallyHome, as_of: datetime) -> int:
    from orchestration.runner import run_job

    outcome = run_job(home, as_of=as_of, console=err, leave_out_unchanged_config=True)
    if not outcome.success:
        for reason in outcome.failures:
            err.print(f"[red]tally run failed:[/red] {escape(reason)}", highlight=False, soft_wrap=True)
        return EXIT_FAILED
    err.print(f"run {outcome.run_id} as of {as_of.isoformat()}: {len(outcome.materialized)} assets materialized", highlight=False)
    for pending in pending_late_usage(home):
        err.print(f"[yellow]late usage pending[/yellow] (no invoice to land on yet): {escape(pending)}", highlight=False)
    return EXIT_OK


def pending_late_usage(home: TallyHome) -> list[str]:
    """Late usage of customers with no invoice left to bill it on (SPEC §5): reported, never lost."""
    with _read_only(home) as con:
        exists = con.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = 'marts' and table_name = 'fct_late_usage_pending'"
        ).fetchone()
        if not exists or not exists[0]:
            return []
        rows = con.execute(
            "select customer_id, for_period_start, charge_key, group_value, quantity, amount, currency "
            "from marts.fct_late_usage_pending order by all"
        ).fetchall()
    return [
        f"{customer} {period} {charge}{'/' + group if group else ''}: quantity {quantity.normalize():f}, "
        f"amount {amount.normalize():f} {currency}"
        for customer, period, charge, group, quantity, amount, currency in rows
    ]


# --- invoices & quarantine -------------------------------------------------------------------


def _read_only(home: TallyHome):
    import duckdb

    if not home.warehouse.exists():
        raise InputError(f"{home.root}: no warehouse yet (run `tally run --home {home.root} ...` first)")
    return duckdb.connect(str(home.warehouse), read_only=True)


def cmd_invoices(args: argparse.Namespace) -> int:
    from billing_sync.invoice_documents import read_documents

    home = TallyHome.at(args.home)
    with _read_only(home) as con:
        documents = read_documents(con, customer_id=args.customer, period_start=args.period_start)
    if args.format == "json":
        print(json.dumps(documents, indent=2))
    else:
        wide_console().print(invoice_table(documents))
    return EXIT_OK


def wide_console() -> Console:
    """Stdout; wide enough for the invoice table even when piped (no terminal to measure)."""
    console = Console()
    return console if console.is_terminal else Console(width=160)


def invoice_table(documents: list[dict]) -> Table:
    table = Table(title=f"{len(documents)} invoices")
    for column, justify in (("invoice", "left"), ("status", "left"), ("period", "left"), ("lines", "right"),
                            ("subtotal", "right"), ("discount", "right"), ("tax", "right"),
                            ("credits", "right"), ("total", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    colors = {"finalized": "green", "draft": "yellow", "open": "cyan"}
    for doc in documents:
        table.add_row(
            doc["invoice_id"],
            f"[{colors.get(doc['status'], 'white')}]{doc['status']}[/]",
            f"{doc['period_start']} → {doc['period_end']}",
            str(len(doc["lines"])),
            doc["subtotal"], doc["discount"], doc["tax"], doc["credits_applied"],
            f"{doc['total']} {doc['currency']}",
        )
    return table


def cmd_quarantine(args: argparse.Namespace) -> int:
    from ingestion.pipeline import list_quarantine

    home = TallyHome.at(args.home)
    with _read_only(home) as con:
        has = con.execute(
            "select count(*) from information_schema.tables where table_schema='raw' and table_name='quarantine'"
        ).fetchone()
        rows = list_quarantine(con) if has and has[0] else []
    if args.format == "json":
        print(json.dumps([{k: row.get(k) for k in ("id", "source", "reason", "file")} for row in rows], indent=2, default=str))
        return EXIT_OK
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["reason"]] = counts.get(row["reason"], 0) + 1
    summary = Table(title="quarantined events by reason")
    summary.add_column("reason")
    summary.add_column("events", justify="right")
    for reason, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        summary.add_row(reason, str(count))
    detail = Table(title="unresolved rows")
    for column in ("reason", "source", "id", "file", "line"):
        detail.add_column(column)
    for row in rows:
        detail.add_row(row["reason"], str(row.get("source")), str(row.get("id")), str(row.get("file")), str(row.get("row_number")))
    console = Console()
    console.print(summary)
    console.print(detail)
    return EXIT_OK


# --- billing close & re-rating ---------------------------------------------------------------


def cmd_close(args: argparse.Namespace) -> int:
    """The billing run for one period: the job `billing_close` with the period as config."""
    from orchestration.defs.reports.summaries import parse_month
    from orchestration.defs.periods import PERIOD_TAG, close_config
    from orchestration.runner import run_job

    home = TallyHome.at(args.home)
    if not (home.root / "config" / "history.jsonl").exists():
        raise InputError(f"{home.root}: no configuration recorded yet (run `tally run --home {home.root} ...` first)")
    try:
        period = parse_month(args.period).isoformat()[:7]
    except ValueError as exc:
        raise InputError(f"--period: {exc}") from exc
    as_of = parse_as_of(args.as_of)
    outcome = run_job(home, as_of=as_of, job_name="billing_close", console=err,
                      extra_run_config=close_config(period), tags={PERIOD_TAG: period},
                      leave_out_unchanged_config=True)
    if not outcome.success:
        for reason in outcome.failures:
            err.print(f"[red]tally close failed:[/red] {escape(reason)}", highlight=False)
        return EXIT_FAILED
    report = home.root / "reports" / "closes" / f"{period}.json"
    err.print(f"billing close of {period}: run {outcome.run_id} as of {as_of.isoformat()}: "
              f"{len(outcome.materialized)} assets materialized; report: {report}", highlight=False)
    print(report.read_text(encoding="utf-8"), end="")  # the period's invoices, revenue and Stripe status
    return EXIT_OK


def cmd_rerate(args: argparse.Namespace) -> int:
    """A candidate catalog's invoices vs the real ones; prints and exports the diff."""
    from billing_sync.rerate import PeriodFilter, RerateError, write_diff_files
    from ingestion.config.errors import ConfigError
    from orchestration.defs.rerate.home import rerate_home

    home = TallyHome.at(args.home)
    try:
        period = PeriodFilter.parse(args.period_start)
        result, folder = rerate_home(home, Path(args.catalog), period=period, out=args.out, console=err)
    except ConfigError as exc:
        raise InputError(str(exc)) from exc
    except FileNotFoundError as exc:
        raise InputError(f"{exc.filename}: no such file") from exc
    except RerateError as exc:
        err.print(f"[red]tally rerate failed:[/red] {escape(str(exc))}", highlight=False)
        return EXIT_FAILED
    paths = write_diff_files(result, folder)
    if args.format == "json":
        print(json.dumps(result.to_dict(), indent=2))
    else:
        wide_console().print(rerate_table(result.to_dict()))
    err.print(f"as of {result.as_of.isoformat()} (the last run's clock); diff written to "
              + ", ".join(str(p) for p in paths), highlight=False)
    return EXIT_OK


def rerate_table(diff: dict) -> Table:
    from decimal import Decimal

    table = Table(title=f"re-rating with {diff['candidate']}" + (f" · periods {diff['period']}" if diff["period"] else ""))
    for column, justify in (("customer / charge", "left"), ("invoices", "right"), ("old total", "right"),
                            ("new total", "right"), ("change", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in diff["customers"]:
        frozen = f" ({row['frozen']} finalized)" if row["frozen"] else ""
        table.add_row(f"[bold]{escape(row['customer_id'])}[/bold]", f"{row['invoices']}{frozen}",
                      row["old_total"], row["new_total"], f"{row['change']} {row['currency']}")
        for charge in row["charges"]:
            if Decimal(charge["change"]) != 0:  # unchanged charges: in the exported files
                table.add_row(f"  {escape(charge['charge'])}", "", charge["old_amount"], charge["new_amount"], charge["change"])
    return table


# --- ui & demo -------------------------------------------------------------------------------


def cmd_ui(args: argparse.Namespace) -> int:
    """`dagster dev` (webserver + daemon, so schedules and sensors run) on the home's instance."""
    from orchestration.runner import activate
    from orchestration.manifest import ensure_manifest

    home = TallyHome.at(args.home)
    activate(home)
    ensure_manifest()
    repo_root = Path(__file__).resolve().parents[1]
    dagster = Path(sys.executable).parent / "dagster"
    err.print(f"Dagster UI for {home.root}: http://{args.host}:{args.port}", highlight=False)
    os.chdir(repo_root)
    os.execve(
        str(dagster),
        [str(dagster), "dev", "-w", str(repo_root / "workspace.yaml"), "-h", args.host, "-p", str(args.port)],
        os.environ.copy(),
    )
    return EXIT_OK  # not reached


def cmd_demo(args: argparse.Namespace) -> int:
    from ingestion.demo_data import write_demo_dataset

    home = TallyHome.at(args.home).ensure()
    inputs = home.root / "demo-input"
    err.print(f"Generating a demo: {args.customers} customers, {args.events:,} events → {inputs}", highlight=False)
    dataset = write_demo_dataset(inputs, events=args.events, customers=args.customers, seed=args.seed)
    record_config(home, str(dataset.catalog_path), str(dataset.customers_path))
    land_events(home, [str(p) for p in dataset.event_paths])
    as_of = dataset.as_of if isinstance(dataset.as_of, datetime) else parse_as_of(str(dataset.as_of))
    status = execute_billing_run(home, as_of)
    if status != EXIT_OK:
        return status
    from billing_sync.invoice_documents import read_documents

    with _read_only(home) as con:
        documents = read_documents(con)
    wide_console().print(invoice_table(documents))
    err.print(
        f"\nOpen the Dagster UI on the same data:\n  .venv/bin/tally ui --home {home.root}\n"
        f"then browse http://127.0.0.1:3000 (asset graph, runs, checks).",
        highlight=False,
    )
    return EXIT_OK



# --- collector, Stripe sync, exports ---------------------------------------------------------


def cmd_collect(args: argparse.Namespace) -> int:
    """The HTTP collector: acknowledged events are fsynced, then published to the landing zone."""
    from ingestion.collector import serve

    home = TallyHome.at(args.home).ensure()
    err.print(f"collecting events for {home.root} on http://{args.host}:{args.port}/v1/events", highlight=False)
    serve(home.root, host=args.host, port=args.port)
    return EXIT_OK


def cmd_sync(args: argparse.Namespace) -> int:
    """Finalized invoices to Stripe exactly once, then reconciliation (job `stripe_sync`)."""
    home = TallyHome.at(args.home)
    if args.dry_run:
        from billing_sync.settings import StripeSettings
        from billing_sync.stripe_sync import sync_finalized_invoices

        try:
            settings = StripeSettings.from_env()
        except ValueError as exc:
            raise InputError(str(exc)) from exc
        with _read_write(home) as con:
            report = sync_finalized_invoices(con, settings, dry_run=True)
        print(json.dumps(report.to_dict(), indent=2, default=str))
        return EXIT_OK
    from orchestration.runner import run_job

    outcome = run_job(home, as_of=parse_as_of(None), job_name="stripe_sync", console=err)
    if not outcome.success:
        for reason in outcome.failures:
            err.print(f"[red]tally sync failed:[/red] {escape(reason)}", highlight=False)
        return EXIT_FAILED
    err.print(f"stripe sync run {outcome.run_id}: {len(outcome.materialized)} assets materialized", highlight=False)
    return EXIT_OK


def _read_write(home: TallyHome):
    import duckdb

    if not home.warehouse.exists():
        raise InputError(f"{home.root}: no warehouse yet (run `tally run --home {home.root} ...` first)")
    return duckdb.connect(str(home.warehouse))


def cmd_sync_status(args: argparse.Namespace) -> int:
    from billing_sync.status import sync_status

    with _read_only(TallyHome.at(args.home)) as con:
        rows = sync_status(con)
    if args.format == "json":
        print(json.dumps(rows, indent=2, default=str))
        return EXIT_OK
    table = Table(title="Stripe sync status")
    columns = list(rows[0]) if rows else ["invoice_id", "status"]
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row.get(c, "")) for c in columns))
    wide_console().print(table)
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from datetime import date

    from billing_sync.exports import ExportError, export_invoices

    home = TallyHome.at(args.home)
    try:
        period = date.fromisoformat(args.period_start) if args.period_start else None
    except ValueError as exc:
        raise InputError(f"--period-start {args.period_start!r}: expected YYYY-MM-DD") from exc
    out_dir = Path(args.out) if args.out else home.exports / args.format
    with _read_write(home) as con:
        try:
            paths = export_invoices(con, args.format, out_dir, period_start=period)
        except ExportError as exc:
            raise InputError(str(exc)) from exc
    for path in paths:
        print(path)
    return EXIT_OK

# --- parser ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tally", description="Tally: usage events in, exact invoices out.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="land event files and run the billing pipeline as of an instant")
    run.add_argument("--home", required=True, help="the Tally home directory (warehouse, Dagster instance, config copies)")
    run.add_argument("--catalog", required=True, help="the pricing catalog YAML (SPEC §2)")
    run.add_argument("--customers", required=True, help="the customer YAML or a SQLAlchemy URL (SPEC §3)")
    run.add_argument("--events", nargs="+", action="append", metavar="PATH", help="event files or folders to land (repeatable)")
    run.add_argument("--as-of", help="the run's clock, ISO 8601 (default: now; without an offset: UTC)")
    run.set_defaults(func=cmd_run)

    invoices = sub.add_parser("invoices", help="print the invoices of the last successful run")
    invoices.add_argument("--home", required=True)
    invoices.add_argument("--format", choices=["json", "table"], default="table")
    invoices.add_argument("--customer", help="only this customer id")
    invoices.add_argument("--period-start", help="only the period starting on this local date (YYYY-MM-DD)")
    invoices.set_defaults(func=cmd_invoices)

    quarantine = sub.add_parser("quarantine", help="list unresolved quarantined events")
    quarantine.add_argument("--home", required=True)
    quarantine.add_argument("--format", choices=["json", "table"], default="table")
    quarantine.set_defaults(func=cmd_quarantine)

    close = sub.add_parser("close", help="the billing run for one period: finalize what is due, sync to Stripe, report the month")
    close.add_argument("--home", required=True)
    close.add_argument("--period", "--period-start", dest="period", required=True,
                       help="YYYY-MM: the month of the invoices' local period start")
    close.add_argument("--as-of", help="the run's clock, ISO 8601 (default: now)")
    close.set_defaults(func=cmd_close)

    rerate = sub.add_parser("rerate", help="invoices under a candidate catalog, diffed against the real ones (nothing real changes)")
    rerate.add_argument("--home", required=True)
    rerate.add_argument("--catalog", required=True, help="the candidate pricing catalog YAML")
    rerate.add_argument("--period-start", help="only periods starting on this local date (YYYY-MM-DD) or in this month (YYYY-MM)")
    rerate.add_argument("--out", help="folder for the diff files (default: HOME/rerate/<time>-<catalog hash>/)")
    rerate.add_argument("--format", choices=["json", "table"], default="table")
    rerate.set_defaults(func=cmd_rerate)

    ui = sub.add_parser("ui", help="start the Dagster webserver and daemon on the home's instance")
    ui.add_argument("--home", required=True)
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(func=cmd_ui)

    demo = sub.add_parser("demo", help="generate realistic demo data, run the pipeline, print the invoices")
    demo.add_argument("--home", default=str(Path.home() / ".tally" / "demo"))
    demo.add_argument("--events", type=int, default=1_000_000)
    demo.add_argument("--customers", type=int, default=50)
    demo.add_argument("--seed", type=int, default=7)
    demo.set_defaults(func=cmd_demo)

    collect = sub.add_parser("collect", help="run the HTTP event collector (POST /v1/events) for a home")
    collect.add_argument("--home", required=True)
    collect.add_argument("--host", default="127.0.0.1")
    collect.add_argument("--port", type=int, default=8080)
    collect.set_defaults(func=cmd_collect)

    sync = sub.add_parser("sync", help="push finalized invoices to Stripe exactly once, then reconcile (STRIPE_API_KEY)")
    sync.add_argument("--home", required=True)
    sync.add_argument("--dry-run", action="store_true", help="show what would be sent; send nothing")
    sync.set_defaults(func=cmd_sync)

    sync_status = sub.add_parser("sync-status", help="per invoice: synced, pending, refused, failed or mismatched")
    sync_status.add_argument("--home", required=True)
    sync_status.add_argument("--format", choices=["json", "table"], default="table")
    sync_status.set_defaults(func=cmd_sync_status)

    serve = sub.add_parser("serve", help="keep the code loaded: `tally run` and `tally close` on this home start warm (TALLY_SERVE=off: cold)")
    serve.add_argument("--home", required=True)
    serve.set_defaults(func=cmd_serve)

    export = sub.add_parser("export", help="finalized invoices for NetSuite, Zuora, Chargebee or as Parquet")
    export.add_argument("--home", required=True)
    export.add_argument("--format", required=True, choices=["netsuite", "zuora", "chargebee", "parquet"])
    export.add_argument("--period-start", help="only invoices whose period starts on this local date")
    export.add_argument("--out", help="output folder (default HOME/exports/<format>)")
    export.set_defaults(func=cmd_export)
    return parser


def cmd_serve(args: argparse.Namespace) -> int:
    """Keep Dagster, dbt and GX loaded; `tally run`/`close` on this home fork off it (warm.py)."""
    from orchestration.warm import serve

    return serve(args.home, announce=lambda text: err.print(text, highlight=False))


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(arguments)
    if args.command in DELEGATED:
        from orchestration.warm import delegate

        served = delegate(args.home, arguments)
        if served is not None:
            return served
    try:
        return args.func(args)
    except InputError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
