"""Run a real collector process on loopback, for tests and benchmarks.

The collector runs in its own process (``subprocess.Popen``, so SIGTERM/SIGKILL behave
as in production) and is stopped by its PID only.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from ingestion.collector.app import DEFAULT_MAX_BODY_BYTES
from ingestion.landing import LandingZone

_REPO = Path(__file__).resolve().parents[2]

_LAUNCHER = """
import sys
from datetime import datetime
from pathlib import Path
import uvicorn
from ingestion.collector import create_app
home, port, clock, seal, max_body = sys.argv[1:6]
fixed = datetime.fromisoformat(clock) if clock else None
app = create_app(
    Path(home), clock=(lambda: fixed) if fixed else None,
    seal_interval=float(seal), max_body_bytes=int(max_body),
)
uvicorn.run(app, host="127.0.0.1", port=int(port), log_level="warning", access_log=False)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class CollectorProcess:
    """A collector process: ``with CollectorProcess(home) as collector: ... collector.url``."""

    def __init__(
        self,
        home: Path,
        *,
        port: int | None = None,
        clock: str | None = None,
        seal_interval: float = 1.0,  # tests want to see landed files quickly
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.home = Path(home)
        self.port = port or free_port()
        self.clock = clock
        self.seal_interval = seal_interval
        self.max_body_bytes = max_body_bytes
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 30.0) -> CollectorProcess:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(_REPO), os.environ.get("PYTHONPATH")])),
        }
        args = [
            str(self.home),
            str(self.port),
            self.clock or "",
            str(self.seal_interval),
            str(self.max_body_bytes),
        ]
        self.process = subprocess.Popen([sys.executable, "-c", _LAUNCHER, *args], env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"collector exited with code {self.process.returncode}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"collector not healthy after {timeout}s")

    def health(self) -> dict[str, object]:
        return httpx.get(self.url + "/healthz", timeout=5).json()  # type: ignore[no-any-return]

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs (a crash)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM: graceful stop, which lands the open segment. Returns the exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return int(self.process.returncode)

    def __enter__(self) -> CollectorProcess:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self.stop()
        else:
            self.kill()


def landed_lines(home: Path) -> list[bytes]:
    """Every line of every file landed under ``home``, in landing order."""
    lines: list[bytes] = []
    for landed in LandingZone(Path(home) / "landing").files():
        lines.extend(line for line in landed.path.read_bytes().split(b"\n") if line)
    return lines


def wait_for_landed(home: Path, ids: set[str], timeout: float = 10.0) -> dict[str, list[bytes]]:
    """The landed lines of the events ``ids`` (by id), once all of them have landed."""
    deadline = time.monotonic() + timeout
    while True:
        found: dict[str, list[bytes]] = {}
        for line in landed_lines(home):
            event_id = json.loads(line).get("id")
            if event_id in ids:
                found.setdefault(event_id, []).append(line)
        if found.keys() == ids or time.monotonic() > deadline:
            missing = ids - found.keys()
            assert not missing, f"not landed after {timeout}s: {sorted(missing)[:5]}"
            return found
        time.sleep(0.05)


def ingested_counts(home: Path, customer_ids: set[str]) -> tuple[Any, Counter[str]]:
    """Ingest the landing zone into ``home/warehouse.duckdb`` as the next run would (no
    value meters, the clock now) and count rows of raw.usage_events per event id."""
    import duckdb

    from ingestion.pipeline import ingest_landed
    from ingestion.rules import IngestRules

    rules = IngestRules(frozenset(customer_ids), (), datetime.now(UTC))
    con = duckdb.connect(str(Path(home) / "warehouse.duckdb"))
    try:
        report = ingest_landed(con, LandingZone(Path(home) / "landing"), rules)
        rows = con.execute("select id, count(*) from raw.usage_events group by id").fetchall()
    finally:
        con.close()
    return report, Counter({event_id: count for event_id, count in rows})
