"""The collector as a real uvicorn process on loopback (started with Popen, stopped by PID)."""

from __future__ import annotations

import asyncio
import errno
import gzip
import json
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ingestion.collector import create_app
from ingestion.collector.testing import (
    CollectorProcess,
    ingested_counts,
    landed_lines,
    wait_for_landed,
)
from ingestion.collector.wal import CollectorBusyError, CollectorLog
from ingestion.landing import LandingZone

# One worker runs them all under xdist --dist loadgroup: one shared collector process.
pytestmark = [pytest.mark.server, pytest.mark.xdist_group("collector-server")]

CLOCK = "2026-01-20T00:00:00+00:00"
NDJSON = {"Content-Type": "application/x-ndjson"}


def event(event_id: str, **extra: object) -> dict[str, object]:
    return {
        "id": event_id,
        "type": "api.request",
        "subject": "acme",
        "time": "2026-01-10T10:00:00Z",
        **extra,
    }


def post(url: str, body: bytes | str, headers: dict[str, str] | None = None) -> httpx.Response:
    content = body.encode() if isinstance(body, str) else body
    return httpx.post(url + "/v1/events", content=content, headers=headers or {}, timeout=10)


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorProcess]:
    """One collector for the tests that only talk to it (each uses its own event ids)."""
    home = tmp_path_factory.mktemp("collector-home")
    with CollectorProcess(home, clock=CLOCK, seal_interval=0.1, max_body_bytes=1 << 20) as running:
        yield running


def landed(collector: CollectorProcess, *ids: str) -> list[bytes]:
    """The landed line of each event, in the order of ``ids`` (waits for the sealing)."""
    found = wait_for_landed(collector.home, set(ids))
    assert all(len(found[i]) == 1 for i in ids)
    return [found[i][0] for i in ids]


def test_each_event_is_answered_with_its_spec_reason_and_only_accepted_ones_land(
    collector: CollectorProcess,
) -> None:
    lines = [
        json.dumps(event("ok-1"))[:-1] + ', "data": {"tokens": 1.50}}',
        json.dumps(event("big", data={"blob": "x" * 66_000})),
        '{"id": "broken", "type": "api.request"',
        json.dumps({"type": "api.request", "subject": "acme", "time": "2026-01-10T10:00:00Z"}),
        json.dumps(event("no-type", type="")),
        json.dumps(event("no-subject", subject=None)),
        json.dumps({"id": "no-time", "type": "api.request", "subject": "acme"}),
        json.dumps(event(7)),  # type: ignore[arg-type]
        json.dumps(event("bad-time", time="2026-01-12 10:00:00")),
        json.dumps(event("bad-data", data="oops")),
        json.dumps(event("future", time="2026-01-20T00:10:00Z")),
        json.dumps(event("near-future", time="2026-01-20T00:04:00Z")),
        json.dumps(event("card", data={"note": "4111111111111111"})),
        json.dumps(event("not-card", data={"ref": "4111111111111112"})),
        # catalog/customer rules are not checked here: they apply at ingestion
        json.dumps(event("ghost", subject="ghost")),
    ]
    response = post(collector.url, "\n".join(lines) + "\n", NDJSON)
    assert response.status_code == 200
    body = response.json()
    assert [(r["index"], r["id"], r["status"], r["reason"]) for r in body["results"]] == [
        (0, "ok-1", "accepted", None),
        (1, None, "rejected", "too_large"),
        (2, None, "rejected", "invalid_json"),
        (3, None, "rejected", "missing_field:id"),
        (4, "no-type", "rejected", "missing_field:type"),
        (5, "no-subject", "rejected", "missing_field:subject"),
        (6, "no-time", "rejected", "missing_field:time"),
        (7, None, "rejected", "invalid_id"),
        (8, "bad-time", "rejected", "invalid_time"),
        (9, "bad-data", "rejected", "invalid_data"),
        (10, "future", "rejected", "time_in_future"),
        (11, "near-future", "accepted", None),
        (12, "card", "rejected", "card_number_like_value"),
        (13, "not-card", "accepted", None),
        (14, "ghost", "accepted", None),
    ]
    assert (body["accepted"], body["rejected"]) == (4, 11)
    # the accepted events land byte for byte as sent (1.50 stays 1.50), and only they do
    accepted = ("ok-1", "near-future", "not-card", "ghost")
    assert landed(collector, *accepted) == [lines[i].encode() for i in (0, 11, 13, 14)]
    rejected_ids = {"no-type", "no-subject", "no-time", "bad-time", "bad-data", "future", "card"}
    assert not rejected_ids & {json.loads(line)["id"] for line in landed_lines(collector.home)}


def test_ndjson_array_single_segment_and_gzip_bodies_all_land(collector: CollectorProcess) -> None:
    segment = {
        "type": "track",
        "messageId": "seg-1",
        "event": "llm.call",
        "userId": "acme",
        "timestamp": "2026-01-10T10:00:00Z",
        "properties": {"tokens": 1500},
        "context": {"library": {"name": "analytics-python"}},
    }
    answers = [
        post(collector.url, json.dumps(event("single"))[:-1] + ', "data": {"x": 0.10}}'),
        post(
            collector.url,
            '[{"id": "arr-1", "type": "t", "subject": "acme",\n'
            ' "time": "2026-01-10T10:00:00+02:00", "data": {"n": 1e3}},'
            ' {"id": "arr-2", "type": "t", "subject": "acme", "time": "2026-01-10T10:00:00Z"}]',
        ),
        post(collector.url, json.dumps(event("nd-1")) + "\n\n" + json.dumps(event("nd-2")) + "\n"),
        post(collector.url, json.dumps(segment)),
        post(collector.url, json.dumps({"batch": [{**segment, "messageId": "seg-2"}]})),
        post(
            collector.url,
            gzip.compress((json.dumps(event("gz-1")) + "\n").encode()),
            {"Content-Encoding": "gzip", **NDJSON},
        ),
        post(collector.url, "[]"),
    ]
    assert [a.status_code for a in answers] == [200] * 7
    assert [a.json()["accepted"] for a in answers] == [1, 2, 2, 1, 1, 1, 0]
    single, arr_1, _, _, _, seg_1, seg_2, _ = landed(
        collector, "single", "arr-1", "arr-2", "nd-1", "nd-2", "seg-1", "seg-2", "gz-1"
    )
    assert single.endswith(b'"data": {"x": 0.10}}')
    assert arr_1 == (
        b'{"id": "arr-1", "type": "t", "subject": "acme",  "time": "2026-01-10T10:00:00+02:00",'
        b' "data": {"n": 1e3}}'
    )
    assert seg_1 == (
        b'{"id":"seg-1","type":"llm.call","subject":"acme","time":"2026-01-10T10:00:00Z",'
        b'"data":{"tokens":1500}}'
    )
    assert json.loads(seg_2)["id"] == "seg-2"


def test_unreadable_bodies_get_4xx_and_nothing_lands(collector: CollectorProcess) -> None:
    before = landed_lines(collector.home)
    assert post(collector.url, '[{"id": "a"},').status_code == 400
    assert post(collector.url, "").status_code == 400
    bad_gzip = post(collector.url, b"\x1f\x8b\x08\x00garbage", {"Content-Encoding": "gzip"})
    assert bad_gzip.status_code == 400 and bad_gzip.json()["error"] == "invalid_gzip"
    assert (
        post(collector.url, json.dumps(event("br")), {"Content-Encoding": "br"}).status_code == 415
    )
    too_big = "\n".join(json.dumps(event(f"big-{i}")) for i in range(12_000))
    assert post(collector.url, too_big, NDJSON).status_code == 413
    bomb = gzip.compress(b"\n" * (2 << 20))
    assert post(collector.url, bomb, {"Content-Encoding": "gzip"}).status_code == 413
    time.sleep(0.3)  # longer than a seal interval
    assert landed_lines(collector.home) == before


def test_healthz_and_openapi_are_served(collector: CollectorProcess) -> None:
    health = httpx.get(collector.url + "/healthz")
    schema = httpx.get(collector.url + "/openapi.json").json()
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert health.json()["last_landing_error"] is None
    post_op = schema["paths"]["/v1/events"]["post"]
    assert set(post_op["requestBody"]["content"]) == {"application/json", "application/x-ndjson"}
    assert {"200", "400", "413", "503"} <= set(post_op["responses"])
    assert "BatchResult" in schema["components"]["schemas"]
    assert "/healthz" in schema["paths"]


def test_sealed_segments_land_as_landing_zone_files_while_running(
    collector: CollectorProcess,
) -> None:
    assert post(collector.url, json.dumps(event("soon"))).json()["accepted"] == 1
    (line,) = landed(collector, "soon")
    (landed_file,) = [
        f for f in LandingZone(collector.home / "landing").files() if line in f.path.read_bytes()
    ]
    assert landed_file.name.startswith("collector-") and landed_file.format == "ndjson"
    assert (
        landed_file.path.name == f"{landed_file.seq:012d}-{landed_file.sha256}-{landed_file.name}"
    )
    assert collector.health()["files_landed"] >= 1


def test_a_second_collector_on_the_same_home_is_refused(collector: CollectorProcess) -> None:
    second = CollectorLog(LandingZone(collector.home / "landing"))
    with pytest.raises(CollectorBusyError, match="another collector"):
        asyncio.run(second.start())


def test_a_failed_append_answers_503_and_acknowledges_nothing(tmp_path: Path) -> None:
    app = create_app(tmp_path, seal_interval=3600)
    wal: CollectorLog = app.state.collector_log
    real_write = wal._write
    failing = {"on": True}

    def flaky_write(data: bytes) -> None:
        if failing["on"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(data)

    wal._write = flaky_write  # type: ignore[method-assign]

    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://collector"
            ) as client:
                first = await client.post("/v1/events", content=json.dumps(event("lost")))
                failing["on"] = False
                second = await client.post("/v1/events", content=json.dumps(event("kept")))
        return first, second

    first, second = asyncio.run(scenario())
    assert first.status_code == 503 and first.headers["Retry-After"] == "1"
    assert first.json()["error"] == "landing_failed"
    assert second.status_code == 200
    assert [json.loads(line)["id"] for line in landed_lines(tmp_path)] == ["kept"]


# --- burst of concurrent clients, SIGKILL mid-burst, restart -------------------------

CLIENTS = 6
BATCHES = 12
BATCH = 200


def _batch(client: int, number: int) -> tuple[list[str], bytes]:
    ids = [f"c{client}-b{number}-e{k}" for k in range(BATCH)]
    lines = [
        json.dumps(
            {
                "id": i,
                "type": "api.request",
                "subject": f"cust-{client}",
                "time": "2026-01-10T10:00:00Z",
                "data": {"n": k, "price": "0.10"},
            }
        )
        for k, i in enumerate(ids)
    ]
    return ids, ("\n".join(lines) + "\n").encode()


def test_burst_sigkill_restart_keeps_every_acknowledged_event_once(tmp_path: Path) -> None:
    acked: set[str] = set()
    attempts: Counter[str] = Counter()
    lock = threading.Lock()
    errors: list[BaseException] = []
    port_holder: list[str] = []

    def client(number: int) -> None:
        try:
            with httpx.Client(timeout=10) as http:
                for batch_number in range(BATCHES):
                    ids, body = _batch(number, batch_number)
                    while True:  # at-least-once, like the SDK: resend the same bytes
                        with lock:
                            attempts.update(ids)
                        try:
                            answer = http.post(
                                port_holder[0] + "/v1/events", content=body, headers=NDJSON
                            )
                        except httpx.TransportError:
                            time.sleep(0.02)
                            continue
                        if answer.status_code == 200:
                            results = answer.json()["results"]
                            assert all(r["status"] == "accepted" for r in results)
                            with lock:
                                acked.update(r["id"] for r in results)
                            break
                        time.sleep(0.02)
        except BaseException as exc:  # noqa: BLE001 - surfaced by the main thread
            errors.append(exc)

    # First life: segments are never sealed, so every acknowledged event is only in the
    # collector's log when the process is killed: recovery must land it.
    first = CollectorProcess(tmp_path, seal_interval=3600).start()
    port_holder.append(first.url)
    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    total = CLIENTS * BATCHES * BATCH
    deadline = time.monotonic() + 30
    while len(acked) < total // 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    first.kill()
    with lock:
        acked_before_kill = set(acked)
    assert 0 < len(acked_before_kill) < total, "the kill must happen mid-burst"
    assert LandingZone(tmp_path / "landing").files() == []
    assert list((tmp_path / "landing" / "collector").glob("collector-*.ndjson"))

    second = CollectorProcess(tmp_path, port=first.port, seal_interval=0.2).start()
    for thread in threads:
        thread.join(timeout=60)
    assert second.stop() in (0, -15)  # uvicorn re-raises SIGTERM after a graceful stop
    assert not errors, errors

    copies: dict[str, list[bytes]] = defaultdict(list)
    for line in landed_lines(tmp_path):
        copies[json.loads(line)["id"]].append(line)
    all_ids = {i for c in range(CLIENTS) for b in range(BATCHES) for i in _batch(c, b)[0]}
    assert acked == all_ids
    assert acked_before_kill <= copies.keys()  # nothing acknowledged before the crash is lost
    assert copies.keys() == all_ids
    for event_id, found in copies.items():
        # a second copy only comes from a resend of the same bytes: a duplicate that
        # ingestion counts once (never a conflict), and never more copies than sends
        assert len(set(found)) == 1, event_id
        assert len(found) <= attempts[event_id], event_id
    assert not list((tmp_path / "landing" / "collector").glob("collector-*.ndjson"))
    _assert_ingested_once(tmp_path, all_ids)


def _assert_ingested_once(home: Path, ids: set[str]) -> None:
    """The next run's ingestion keeps every event exactly once: resent copies are
    identical, so they count as duplicates (SPEC §1), never twice and never conflicts."""
    report, counts = ingested_counts(home, {f"cust-{c}" for c in range(CLIENTS)})
    assert set(counts) == ids and set(counts.values()) == {1}
    assert (report.accepted, report.conflicts, report.quarantined_by_reason) == (len(ids), 0, {})
    assert report.rows_read == report.accepted + report.duplicates
