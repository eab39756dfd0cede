"""Fixtures for the configuration layer: scenario files and a throwaway PostgreSQL cluster."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SCENARIOS = REPO.parent / "shared" / "scenarios"
PG_BIN_CANDIDATES = (Path("/usr/lib/postgresql/15/bin"),)


@pytest.fixture(scope="session")
def scenario_dirs() -> list[Path]:
    dirs = sorted(p for p in SCENARIOS.glob("*") if (p / "catalog.yaml").exists())
    if not dirs:
        pytest.fail(f"no scenarios found under {SCENARIOS} (shared/ must sit beside the repo)")
    return dirs


def _pg_bin() -> Path:
    for candidate in PG_BIN_CANDIDATES:
        if (candidate / "initdb").exists():
            return candidate
    pg_config = shutil.which("pg_config")
    if pg_config:
        bindir = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if bindir.returncode == 0 and (Path(bindir.stdout.strip()) / "initdb").exists():
            return Path(bindir.stdout.strip())
    pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(argv: list[str], what: str) -> None:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"PostgreSQL fixture: {what} could not run: {exc}")
    if result.returncode != 0:
        pytest.fail(f"PostgreSQL fixture: {what} failed ({result.returncode}): {result.stderr}")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A `postgresql://` URL to a fresh database on a throwaway cluster, stopped afterwards.

    As root, the cluster runs as the `postgres` user (PostgreSQL refuses to run as root).
    It listens on 127.0.0.1 at a free port with trust authentication and fsync off: it
    holds only test data and lives for this session.
    """
    bindir = _pg_bin()
    base = Path(tempfile.mkdtemp(prefix="tally-pg-"))
    data, sockets = base / "data", base / "sock"
    sockets.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(sockets, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    pg_ctl = [*as_user, str(bindir / "pg_ctl"), "-D", str(data)]
    _run(
        [*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-N"],
        "initdb",
    )
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
    _run([*pg_ctl, "-o", options, "-l", str(base / "server.log"), "-w", "start"], "pg_ctl start")
    try:
        _run(
            [*as_user, str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port)]
            + ["-U", "postgres", "tally_test"],
            "createdb",
        )
        yield f"postgresql://postgres@127.0.0.1:{port}/tally_test"
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)
