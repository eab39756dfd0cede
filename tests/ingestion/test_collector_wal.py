"""The collector log: group commit, failed writes, crash recovery (in-process)."""

from __future__ import annotations

import asyncio
import errno
import os
import time
from pathlib import Path

import pytest

from ingestion.collector import wal as wal_module
from ingestion.collector.testing import landed_lines
from ingestion.collector.wal import CollectorLog
from ingestion.landing import LandingZone


def run(coroutine_factory):  # type: ignore[no-untyped-def]
    return asyncio.run(coroutine_factory())


def test_concurrent_appends_share_one_sync_and_all_land_in_order(tmp_path: Path) -> None:
    zone = LandingZone(tmp_path / "landing")
    log = CollectorLog(zone, seal_interval=3600)

    async def scenario() -> None:
        await log.start()
        await asyncio.gather(*(log.append(b'{"id":"e%d"}\n' % i) for i in range(50)))
        assert log.commits < 50  # group commit: many requests per fdatasync
        await log.stop()

    run(scenario)
    assert landed_lines(tmp_path) == [b'{"id":"e%d"}' % i for i in range(50)]
    assert len(zone.files()) == 1
    assert not list(log.dir.glob("collector-*"))


def test_bytes_of_a_failed_sync_are_cut_and_a_new_segment_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zone = LandingZone(tmp_path / "landing")
    log = CollectorLog(zone, seal_interval=3600)
    real_sync = os.fdatasync
    fail = {"next": False}

    def flaky_sync(fd: int) -> None:
        if fail["next"]:
            fail["next"] = False
            raise OSError(errno.EIO, "I/O error")
        real_sync(fd)

    monkeypatch.setattr(wal_module.os, "fdatasync", flaky_sync)

    async def scenario() -> None:
        await log.start()
        await log.append(b'{"id":"a"}\n')
        fail["next"] = True
        with pytest.raises(OSError):
            await log.append(b'{"id":"b"}\n')  # written, never synced: not acknowledged
        await log.append(b'{"id":"c"}\n')
        await log.stop()

    run(scenario)
    # "b" reached the page cache but its sync failed: it is cut, never landed
    assert landed_lines(tmp_path) == [b'{"id":"a"}', b'{"id":"c"}']
    assert len(zone.files()) == 2  # the abandoned segment and the next one


def test_segments_left_by_a_crash_are_landed_on_start_without_their_torn_tail(
    tmp_path: Path,
) -> None:
    zone = LandingZone(tmp_path / "landing").ensure()
    wal_dir = zone.root / "collector"
    wal_dir.mkdir()
    (wal_dir / "collector-000000000007-20260101T000000000000Z.ndjson").write_bytes(
        b'{"id":"x1"}\n{"id":"x2"}\n{"id":"x3", "da'
    )
    (wal_dir / "collector-000000000008-20260101T000001000000Z.ndjson").write_bytes(b'{"id":"y1"}\n')
    (wal_dir / "collector-000000000009-20260101T000002000000Z.ndjson").write_bytes(b'{"id":"torn')
    log = CollectorLog(zone, seal_interval=3600)

    async def scenario() -> None:
        await log.start()
        await log.append(b'{"id":"new"}\n')
        await log.stop()

    run(scenario)
    assert landed_lines(tmp_path) == [
        b'{"id":"x1"}',
        b'{"id":"x2"}',
        b'{"id":"y1"}',
        b'{"id":"new"}',
    ]
    assert [f.name.split("-")[1] for f in zone.files()] == [
        "000000000007",
        "000000000008",
        "000000000010",
    ]
    assert not list(wal_dir.glob("collector-*"))


def test_a_segment_landed_just_before_a_crash_is_not_landed_twice(tmp_path: Path) -> None:
    zone = LandingZone(tmp_path / "landing").ensure()
    wal_dir = zone.root / "collector"
    wal_dir.mkdir()
    segment = wal_dir / "collector-000000000001-20260101T000000000000Z.ndjson"
    segment.write_bytes(b'{"id":"once"}\n')
    zone.land_file(segment)  # landed, then the process died before deleting the segment
    log = CollectorLog(zone)

    async def scenario() -> None:
        await log.start()
        await log.stop()

    run(scenario)
    assert landed_lines(tmp_path) == [b'{"id":"once"}']
    assert not segment.exists()


def test_while_landing_is_slow_the_open_segment_grows_instead_of_queueing_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zone = LandingZone(tmp_path / "landing")
    real_land = zone.land_file

    def slow_land(path: Path):  # type: ignore[no-untyped-def]
        time.sleep(0.3)
        return real_land(path)

    monkeypatch.setattr(zone, "land_file", slow_land)
    log = CollectorLog(zone, seal_interval=0.01)

    async def scenario() -> None:
        await log.start()
        for i in range(40):  # ~1 s of appends, far more than 0.01 s apart
            await log.append(b'{"id":"e%d"}\n' % i)
            await asyncio.sleep(0.025)
        await log.stop()

    run(scenario)
    assert landed_lines(tmp_path) == [b'{"id":"e%d"}' % i for i in range(40)]
    assert len(zone.files()) <= 8  # not one file per 0.01 s seal interval
