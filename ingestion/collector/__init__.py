"""The HTTP collector (``tally collect``): usage events over HTTP into the landing zone."""

from __future__ import annotations

import argparse
from pathlib import Path

from ingestion.collector.app import create_app, evaluate_event, serve
from ingestion.collector.wal import DEFAULT_SEAL_INTERVAL, CollectorBusyError, CollectorLog

__all__ = ["CollectorBusyError", "CollectorLog", "create_app", "evaluate_event", "main", "serve"]


def main(argv: list[str] | None = None) -> None:
    """``python -m ingestion.collector --home DIR [--host H] [--port N]``."""
    parser = argparse.ArgumentParser(
        prog="python -m ingestion.collector", description="Run the Tally HTTP collector."
    )
    parser.add_argument(
        "--home", required=True, type=Path, help="Tally home (lands into HOME/landing)"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", default=8080, type=int)
    parser.add_argument(
        "--seal-interval",
        default=DEFAULT_SEAL_INTERVAL,
        type=float,
        help="seconds an acknowledged event may wait before it is landed as a file"
        f" (default {DEFAULT_SEAL_INTERVAL:g})",
    )
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--access-log", action="store_true")
    args = parser.parse_args(argv)
    serve(
        args.home,
        args.host,
        args.port,
        seal_interval=args.seal_interval,
        log_level=args.log_level,
        access_log=args.access_log,
    )
