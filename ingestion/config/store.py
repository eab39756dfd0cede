"""Content-addressed, versioned copies of the catalog and customer file under the home.

A finalized invoice must say which prices made it (SPEC §5: finalizing snapshots the
plan versions), and catalog.yaml is edited in place by humans. So each run records the
exact bytes it used as `home/config/<kind>/<sha256>.yaml` and appends one line to
`history.jsonl` whenever the content changes. A database source is versioned through its
canonical YAML, so what was billed can be reloaded even after the rows change.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ingestion.config.catalog import Catalog, load_catalog
from ingestion.config.customers import Customers, is_database_url, load_customers
from ingestion.config.customers_sql import display_url
from ingestion.config.errors import CatalogError, ConfigStoreError, CustomersError

Kind = Literal["catalog", "customers"]
KINDS: tuple[Kind, Kind] = ("catalog", "customers")


@dataclass(frozen=True)
class ConfigVersion:
    """The stored copies a run uses; the sha256 values name them in `config.catalog_versions`."""

    catalog_path: Path
    catalog_sha256: str
    customers_path: Path
    customers_sha256: str


@dataclass(frozen=True)
class ConfigChange:
    """One line of history.jsonl: the config of `kind` became `sha256` at `recorded_at`."""

    kind: Kind
    sha256: str
    source: str
    recorded_at: str


class ConfigStore:
    """The `config/` folder of a Tally home directory."""

    def __init__(self, home: Path | str) -> None:
        self.root = Path(home) / "config"
        self.history_path = self.root / "history.jsonl"

    def path_for(self, kind: Kind, sha256: str) -> Path:
        return self.root / kind / f"{sha256}.yaml"

    def record(
        self,
        catalog_source: str | Path,
        customers_source: str | Path,
        *,
        now: dt.datetime | None = None,
    ) -> ConfigVersion:
        """Validate both sources, store their content, note changes; nothing is written if
        either is invalid (CatalogError / CustomersError propagate)."""
        catalog_bytes = _read(catalog_source, "catalog")
        if is_database_url(customers_source):
            catalog = load_catalog(catalog_source, text=catalog_bytes)
            customers_bytes = load_customers(customers_source, catalog).to_yaml().encode()
            customers_label = display_url(str(customers_source))
        else:
            customers_bytes = _read(customers_source, "customers")
            # the same bytes were validated by the same code before: parsing 1,000 customers
            # again would take a second of every run
            if not self._validated_path(catalog_bytes, customers_bytes).exists():
                catalog = load_catalog(catalog_source, text=catalog_bytes)
                load_customers(customers_source, catalog, text=customers_bytes)
            customers_label = str(Path(customers_source).resolve())
        stamp = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).isoformat()
        contents = {
            "catalog": (catalog_bytes, str(Path(catalog_source).resolve())),
            "customers": (customers_bytes, customers_label),
        }
        with self._locked():
            latest = self._latest_by_kind()
            shas: dict[str, str] = {}
            new_lines: list[ConfigChange] = []
            for kind in KINDS:
                content, source = contents[kind]
                sha = hashlib.sha256(content).hexdigest()
                shas[kind] = sha
                target = self.path_for(kind, sha)
                if not target.exists():
                    _write_atomic(target, content)
                if kind not in latest or latest[kind].sha256 != sha:
                    new_lines.append(ConfigChange(kind, sha, source, stamp))
            if new_lines:
                self._append_history(new_lines)
            validated = self._validated_path(catalog_bytes, customers_bytes)
            if not validated.exists():
                _write_atomic(validated, b"")
        return self._version(shas["catalog"], shas["customers"])

    def _validated_path(self, catalog: bytes, customers: bytes) -> Path:
        """The mark that this pair of contents passed validation by this version of the code."""
        pair = hashlib.sha256(catalog).hexdigest() + "." + hashlib.sha256(customers).hexdigest()
        return self.root / "validated" / f"{pair}.{config_code_sha256()[:16]}"

    def latest(self) -> ConfigVersion:
        """The most recently recorded catalog and customers copies."""
        latest = self._latest_by_kind()
        if set(latest) != set(KINDS):
            raise ConfigStoreError(
                str(self.root), "", "no configuration recorded yet (run `tally run` first)"
            )
        return self._version(latest["catalog"].sha256, latest["customers"].sha256)

    def history(self) -> list[ConfigChange]:
        """Every recorded change, oldest first."""
        if not self.history_path.exists():
            return []
        changes: list[ConfigChange] = []
        lines = self.history_path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                changes.append(
                    ConfigChange(
                        entry["kind"], entry["sha256"], entry["source"], entry["recorded_at"]
                    )
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise ConfigStoreError(
                    str(self.history_path), f"line {number}", f"unreadable history entry ({exc})"
                ) from None
        return changes

    def load(self, version: ConfigVersion) -> tuple[Catalog, Customers]:
        """Reload the exact catalog and customers a run recorded."""
        catalog = load_catalog(version.catalog_path)
        return catalog, load_customers(version.customers_path, catalog)

    def _version(self, catalog_sha: str, customers_sha: str) -> ConfigVersion:
        version = ConfigVersion(
            catalog_path=self.path_for("catalog", catalog_sha),
            catalog_sha256=catalog_sha,
            customers_path=self.path_for("customers", customers_sha),
            customers_sha256=customers_sha,
        )
        for path in (version.catalog_path, version.customers_path):
            if not path.exists():
                raise ConfigStoreError(str(path), "", "recorded in history.jsonl but missing")
        return version

    def _latest_by_kind(self) -> dict[str, ConfigChange]:
        return {change.kind: change for change in self.history()}

    def _append_history(self, changes: list[ConfigChange]) -> None:
        old = self.history_path.read_bytes() if self.history_path.exists() else b""
        new = "".join(
            json.dumps(
                {
                    "kind": c.kind,
                    "sha256": c.sha256,
                    "source": c.source,
                    "recorded_at": c.recorded_at,
                }
            )
            + "\n"
            for c in changes
        )
        _write_atomic(self.history_path, old + new.encode("utf-8"))

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One recorder at a time (the CLI and the collector may share a home)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


@functools.cache
def config_code_sha256() -> str:
    """The config package's source: a Tally upgrade that validates or writes differently
    validates the stored copies again and rewrites the config tables on its first run."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def _read(source: str | Path, kind: str) -> bytes:
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        error = CatalogError if kind == "catalog" else CustomersError
        raise error(str(source), "", f"cannot read the file ({exc.strerror})") from None


def _write_atomic(path: Path, content: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
