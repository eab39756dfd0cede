"""The collector's durable append path: a group-committed log whose segments are landed.

Why not ``LandingZone.land_bytes`` per request: a landing lists the whole landing folder
twice under its lock and publishes one file (temp file, fsync, rename, folder fsync).
At 100 requests/s that is 100 new files a second in a folder that only grows, each
landing slower than the last (bench/RESULTS.md: ~16 ms on an empty zone, hundreds of ms
with thousands of files), and a run that pays a per-file overhead thousands of times.

Instead, accepted events are appended to a segment file under
``<landing root>/collector/`` and acknowledged only once ``fdatasync`` returned for the
bytes that hold them. Requests that arrive while a sync is running share the next one
(group commit), so the number of syncs adapts to the load, not to the request rate. A
segment is sealed after ``seal_interval`` seconds (or ``max_segment_bytes``) and then
landed with ``LandingZone.land_file``, under the usual ``<seq>-<sha256>-<name>``, by a
background thread, in order; only then is the segment deleted. While that thread is
busy the open segment keeps growing, so slow landings mean fewer, larger files.

Crash safety. What was acknowledged is in a synced segment. On start, segments left
by a previous process are landed first (in order), cut after their last complete line:
a torn tail was never acknowledged. A segment landed again after a crash between
landing and deletion has the same bytes, so landing it is a no-op (content hash). Bytes
written but not synced when the process died may still be landed: they belong to
requests that were never acknowledged, which the client retries with the same ids, and
ingestion deduplicates identical copies (SPEC §1). After a failed write the segment is
abandoned at its last synced length (a later sync of the same file could succeed
without the lost pages, so no acknowledgement is ever based on it).

One collector process per home: an exclusive lock on ``collector/.lock``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import queue
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingestion.landing import LandedFile, LandingZone

log = logging.getLogger("tally.collector")

# Seconds an acknowledged event may wait in the log before its segment is landed. Each
# landed file costs the next run a fixed overhead (a transaction, a ledger row), so few
# larger files beat many small ones; 10 s is far below any sensor or schedule interval.
DEFAULT_SEAL_INTERVAL = 10.0
_SEGMENT = re.compile(r"^collector-(?P<n>\d{12})-\d{8}T\d{6}\d{6}Z\.ndjson$")
_TAIL_CHUNK = 1 << 17


class CollectorBusyError(RuntimeError):
    """Another collector process holds this home's landing zone."""


@dataclass
class _Sealed:
    path: Path
    good_length: int | None  # bytes known durable; None: recovered, cut after the last line


@dataclass
class _Segment:
    path: Path
    fd: int
    opened_at: float
    length: int = 0


class CollectorLog:
    """Durable, group-committed append of NDJSON lines into the landing zone."""

    def __init__(
        self,
        zone: LandingZone,
        *,
        seal_interval: float = DEFAULT_SEAL_INTERVAL,
        max_segment_bytes: int = 64 << 20,
        retry_delay: float = 1.0,
    ) -> None:
        self.zone = zone
        self.dir = zone.root / "collector"
        self.seal_interval = seal_interval
        self.max_segment_bytes = max_segment_bytes
        self.retry_delay = retry_delay
        self._segment: _Segment | None = None
        self._next_number = 1
        self._pending: list[bytes] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self._committer: asyncio.Task[None] | None = None
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="collector-wal")
        self._to_land: queue.Queue[_Sealed | None] = queue.Queue()
        self._lander: threading.Thread | None = None
        self._lock_file: Any = None
        self._stop_landing = threading.Event()
        self.commits = 0
        self.files_landed = 0
        self.last_landed: LandedFile | None = None
        self.last_landing_error: str | None = None

    # --- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        self.zone.ensure()
        if not self.dir.exists():
            self.dir.mkdir()
            _fsync_dir(self.zone.root)
        self._lock_file = open(self.dir / ".lock", "a+")  # noqa: SIM115 - held while running
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise CollectorBusyError(
                f"{self.dir}: another collector is running on this home"
            ) from None
        leftovers = self._leftover_segments()
        if leftovers:
            log.info("landing %d segment(s) left by a previous collector", len(leftovers))
            self._next_number = leftovers[-1][0] + 1
        for _, path in leftovers:
            self._to_land.put(_Sealed(path, None))
        self._wake = asyncio.Event()
        self._lander = threading.Thread(target=self._land_loop, name="collector-land", daemon=True)
        self._lander.start()
        self._committer = asyncio.create_task(self._commit_loop(), name="collector-commit")

    async def stop(self, timeout: float = 30.0) -> None:
        """Commit what is pending, seal and land the open segment, release the home."""
        self._stopping = True
        if self._wake is not None:
            self._wake.set()
        if self._committer is not None:
            await self._committer
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._io, self._seal)
        self._io.shutdown(wait=True)
        self._to_land.put(None)
        if self._lander is not None:
            await loop.run_in_executor(None, self._lander.join, timeout)
            if self._lander.is_alive():
                self._stop_landing.set()
                log.error(
                    "segments not landed after %.0fs: they stay in %s and are landed on the "
                    "next start",
                    timeout,
                    self.dir,
                )
                await loop.run_in_executor(None, self._lander.join, self.retry_delay + 1)
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def status(self) -> dict[str, Any]:
        return {
            "commits": self.commits,
            "segments_waiting": self._to_land.qsize() + (self._segment is not None),
            "files_landed": self.files_landed,
            "last_landing_error": self.last_landing_error,
        }

    # --- appending (event loop side) ----------------------------------------------

    async def append(self, data: bytes) -> None:
        """Return once ``data`` (whole NDJSON lines) is durably on disk; raise if it is not."""
        if (
            self._stopping
            or self._wake is None
            or self._committer is None
            or self._committer.done()
        ):
            raise RuntimeError("the collector log is not running")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(data)
        self._waiters.append(future)
        self._wake.set()
        await asyncio.shield(future)

    async def _commit_loop(self) -> None:
        while True:
            try:
                if await self._commit_once():
                    return
            except Exception:  # noqa: BLE001 - a bug here must not leave requests waiting forever
                log.exception("collector commit loop error")
                waiters, self._pending, self._waiters = self._waiters, [], []
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(RuntimeError("collector log error"))
                await asyncio.sleep(0.1)

    async def _commit_once(self) -> bool:
        """Wait for work, commit what is pending in one write + sync, seal when due.
        True once stopping and nothing is left."""
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        timeout = None
        if self._segment is not None:  # wake up to seal (re-checked while landing is busy)
            timeout = max(0.05, self._segment.opened_at + self.seal_interval - time.monotonic())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()
        if self._pending:
            batch, waiters = self._pending, self._waiters
            self._pending, self._waiters = [], []
            try:
                await loop.run_in_executor(self._io, self._write, b"".join(batch))
            except Exception as exc:  # noqa: BLE001 - every waiter gets the failure
                log.error("collector append failed, batch not acknowledged: %s", exc)
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(exc)
            else:
                self.commits += 1
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(None)
        if self._seal_due():
            await loop.run_in_executor(self._io, self._seal)
        return self._stopping and not self._pending

    def _seal_due(self) -> bool:
        """Seal at ``max_segment_bytes``, or after ``seal_interval`` once the landing thread
        is idle: while it lands (slowly, or failing and retrying) the open segment keeps
        growing, so the number of landed files adapts to what landing costs."""
        segment = self._segment
        if segment is None:
            return False
        if segment.length >= self.max_segment_bytes:
            return True
        due = time.monotonic() - segment.opened_at >= self.seal_interval
        return due and self._to_land.unfinished_tasks == 0

    # --- segment files (WAL thread) ------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self._segment is None:
            self._segment = self._open_segment()
        segment = self._segment
        try:
            view = memoryview(data)
            while view:
                written = os.write(segment.fd, view)
                view = view[written:]
            os.fdatasync(segment.fd)
        except OSError:
            self._seal()  # abandoned at its last synced length; the next write opens a new one
            raise
        segment.length += len(data)

    def _open_segment(self) -> _Segment:
        number = self._next_number
        self._next_number += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        path = self.dir / f"collector-{number:012d}-{stamp}.ndjson"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o644)
        _fsync_dir(self.dir)  # the new name must survive a crash before anything in it is acked
        return _Segment(path, fd, time.monotonic())

    def _seal(self) -> None:
        segment, self._segment = self._segment, None
        if segment is None:
            return
        try:
            os.close(segment.fd)
        except OSError as exc:
            log.warning("closing %s: %s", segment.path, exc)
        self._to_land.put(_Sealed(segment.path, segment.length))

    def _leftover_segments(self) -> list[tuple[int, Path]]:
        found = []
        for entry in self.dir.iterdir():
            match = _SEGMENT.match(entry.name)
            if match:
                found.append((int(match["n"]), entry))
        return sorted(found)

    # --- landing (landing thread) ------------------------------------------------

    def _land_loop(self) -> None:
        while True:
            sealed = self._to_land.get()
            try:
                if sealed is None or not self._land_with_retries(sealed):
                    return
            finally:
                self._to_land.task_done()

    def _land_with_retries(self, sealed: _Sealed) -> bool:
        """Land one segment, retrying until it works; False when told to stop first."""
        while True:
            try:
                self._land(sealed)
                self.last_landing_error = None
                return True
            except Exception as exc:  # noqa: BLE001 - retried; acked data stays in the segment
                self.last_landing_error = f"{sealed.path.name}: {exc}"
                log.error("landing %s failed (retrying): %s", sealed.path, exc)
                if self._stop_landing.wait(self.retry_delay):
                    return False

    def _land(self, sealed: _Sealed) -> None:
        path = sealed.path
        size = path.stat().st_size
        keep = (
            sealed.good_length if sealed.good_length is not None else _complete_length(path, size)
        )
        if keep < size:
            # Unacknowledged bytes (a failed write, or a torn tail after a crash).
            os.truncate(path, keep)
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
        if keep > 0:
            landed = self.zone.land_file(path)
            self.files_landed += 1
            self.last_landed = landed
            log.info("landed %s (%d bytes) as %s", path.name, keep, landed.path.name)
        path.unlink()
        _fsync_dir(self.dir)


def _complete_length(path: Path, size: int) -> int:
    """Length of the file up to and including its last newline."""
    with open(path, "rb") as handle:
        end = size
        while end > 0:
            start = max(0, end - _TAIL_CHUNK)
            handle.seek(start)
            chunk = handle.read(end - start)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                return start + newline + 1
            end = start
    return 0


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
