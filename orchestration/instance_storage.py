"""The Dagster instance's SQLite storage, with an event log that keeps its connections.

Dagster's SQLite event log opens a new engine and connection for every event it stores and
closes it after the commit. A billing run stores ~350 events (each asset and check event
twice: in the run's shard and in the cross-run index), so that cost ~9 ms per event on this
kind of machine: 3-5 s of a 20 s incremental run. Here each shard keeps one open connection
(the shard's lock already serializes their use), and commits are `synchronous=NORMAL` in
SQLite's WAL mode, which Dagster's shards already use: a commit survives the process
crashing; an operating-system crash or power cut may lose the last events of a run in
progress, never corrupt the file. The warehouse, where the money is, is DuckDB's and is not
affected. Same files and schema as Dagster's own storage: a home can switch back and forth.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as db
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage, _event_logs_directory

OPEN_SHARDS = 8  # the index and the runs being written or read; older ones are closed


class KeptConnectionSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's per-run-sharded SQLite event log, one kept connection per shard."""

    def __init__(self, base_dir: str, inst_data=None) -> None:
        self._engines: OrderedDict[str, db.Engine] = OrderedDict()
        self._engines_pid = os.getpid()
        super().__init__(base_dir, inst_data=inst_data)

    def _engine(self, shard: str) -> db.Engine:
        if self._engines_pid != os.getpid():  # a forked child must not share its parent's files
            # kept referenced, never closed here: closing an inherited SQLite connection in a
            # child can act on the parent's files
            self._inherited = self._engines
            self._engines = OrderedDict()
            self._engines_pid = os.getpid()
        engine = self._engines.pop(shard, None)
        if engine is None:
            engine = db.create_engine(
                self.conn_string_for_shard(shard),
                pool_size=1,  # kept; Dagster's schema check nests a second one, closed after use
                max_overflow=2,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
            )
            db.event.listen(engine, "connect", _durable_enough)
        self._engines[shard] = engine
        while len(self._engines) > OPEN_SHARDS:
            self._engines.popitem(last=False)[1].dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[db.Connection]:
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def _close_shards(self) -> None:
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()

    def wipe(self) -> None:
        self._close_shards()  # before the shard files are deleted
        super().wipe()

    def dispose(self) -> None:
        self._close_shards()
        super().dispose()


def _durable_enough(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class TallySqliteStorage(DagsterSqliteStorage):
    """`storage: custom` in a home's dagster.yaml: Dagster's SQLite storage (same layout under
    `base_dir`) with the kept-connection event log."""

    def __init__(self, base_dir: str, inst_data=None) -> None:
        super().__init__(base_dir, inst_data=inst_data)
        events = _event_logs_directory(base_dir)
        self._event_log_storage = KeptConnectionSqliteEventLogStorage(events)

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> TallySqliteStorage:
        return cls.from_local(inst_data=inst_data, **config_value)
