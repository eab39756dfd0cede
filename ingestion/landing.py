"""The landing zone: event files wait here, in landing order, until a run ingests them.

Landing is a file-system operation (no warehouse write), so the CLI, the HTTP collector
and operators dropping files can land while a run holds the DuckDB writer lock. A file
is landed under ``<seq>-<sha256>-<name>``: the sequence number keeps SPEC §1's ingestion
order (paths in the order given, folders in path order), the content hash makes landing
the same bytes twice a no-op. Files appear atomically (written to a temporary name,
fsynced, then renamed), so a reader never sees half a file.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

EVENT_SUFFIXES = (".ndjson", ".jsonl", ".csv", ".parquet", ".ndjson.gz", ".jsonl.gz", ".csv.gz")
_LANDED_NAME = re.compile(r"^(?P<seq>\d{12})-(?P<sha>[0-9a-f]{64})-(?P<name>.+)$")


class LandingError(ValueError):
    """A path given to land cannot be landed (missing, or not an event file)."""


@dataclass(frozen=True, order=True)
class LandedFile:
    seq: int
    sha256: str
    name: str
    path: Path

    @property
    def format(self) -> str:
        return event_format(self.name)


def event_format(name: str) -> str:
    """`ndjson`, `csv` or `parquet` (with `.gz` for compressed text), from the file name."""
    lower = name.lower()
    gz = lower.endswith(".gz")
    base = lower[:-3] if gz else lower
    if base.endswith((".ndjson", ".jsonl")):
        kind = "ndjson"
    elif base.endswith(".csv"):
        kind = "csv"
    elif base.endswith(".parquet") and not gz:
        kind = "parquet"
    else:
        raise LandingError(f"{name}: not an event file (expected one of {', '.join(EVENT_SUFFIXES)})")
    return kind + (".gz" if gz else "")


def expand_event_paths(paths: Sequence[str | Path]) -> list[Path]:
    """Files in ingestion order: the order given, then path order inside folders."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            files.extend(p for p in found if _is_event_file(p.name))
        elif path.is_file():
            event_format(path.name)  # raises with the file name when it is not an event file
            files.append(path)
        else:
            raise LandingError(f"{path}: no such file or folder")
    return files


def _is_event_file(name: str) -> bool:
    try:
        event_format(name)
    except LandingError:
        return False
    return True


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class LandingZone:
    """A folder of landed event files, in landing order."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.events_dir = self.root / "events"

    def ensure(self) -> LandingZone:
        self.events_dir.mkdir(parents=True, exist_ok=True)
        return self

    def files(self) -> list[LandedFile]:
        """Every landed file, in landing order (one directory scan, sorted by sequence)."""
        if not self.events_dir.exists():
            return []
        landed = []
        with os.scandir(self.events_dir) as entries:
            for entry in entries:
                match = _LANDED_NAME.match(entry.name)
                if match:
                    landed.append(LandedFile(int(match["seq"]), match["sha"], match["name"], Path(entry.path)))
        landed.sort(key=lambda landed_file: landed_file.seq)
        return landed

    def land_paths(self, paths: Sequence[str | Path]) -> list[LandedFile]:
        """Land files and folders; returns what is landed for them (new or already there)."""
        return [self.land_file(path) for path in expand_event_paths(paths)]

    def land_file(self, path: Path) -> LandedFile:
        sha = file_sha256(path)
        with self._locked():
            files = self.files()
            existing = next((f for f in files if f.sha256 == sha), None)
            if existing is not None:
                return existing
            return self._publish(files, sha, path.name, lambda tmp: shutil.copyfile(path, tmp))

    def land_bytes(self, data: bytes, name: str) -> LandedFile:
        """Land in-memory content durably (the collector's batches): fsync before returning."""
        event_format(name)
        sha = hashlib.sha256(data).hexdigest()
        with self._locked():
            files = self.files()
            existing = next((f for f in files if f.sha256 == sha), None)
            if existing is not None:
                return existing
            return self._publish(files, sha, name, lambda tmp: Path(tmp).write_bytes(data))

    def _publish(self, files: list[LandedFile], sha: str, name: str, write) -> LandedFile:  # type: ignore[no-untyped-def]
        seq = files[-1].seq + 1 if files else 1
        safe_name = re.sub(r"[^A-Za-z0-9._-]", "_", name)
        target = self.events_dir / f"{seq:012d}-{sha}-{safe_name}"
        fd, tmp = tempfile.mkstemp(dir=self.events_dir, prefix=".landing-")
        os.close(fd)
        try:
            write(tmp)
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        _fsync_dir(self.events_dir)
        return LandedFile(seq, sha, safe_name, target)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.ensure()
        with open(self.root / ".lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
