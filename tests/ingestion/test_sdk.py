"""The Python SDK: batching, retries, fixed ids, flush on exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from ingestion import sdk
from ingestion.collector.testing import (
    CollectorProcess,
    ingested_counts,
    landed_lines,
    wait_for_landed,
)
from ingestion.sdk import TallyClient

WHEN = "2026-01-10T10:00:00Z"


class FakeCollector:
    """An httpx transport that answers from a script, then accepts everything."""

    def __init__(
        self, script: list[Callable[[httpx.Request], httpx.Response]] | None = None
    ) -> None:
        self.script = list(script or [])
        self.requests: list[tuple[float, bytes]] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append((time.monotonic(), request.content))
            step = self.script.pop(0) if self.script else accept_all
        return step(request)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def events(self) -> list[dict[str, object]]:
        return [json.loads(line) for _, body in self.requests for line in body.splitlines()]


def accept_all(request: httpx.Request) -> httpx.Response:
    lines = request.content.splitlines()
    results = [
        {"index": i, "id": json.loads(line)["id"], "status": "accepted", "reason": None}
        for i, line in enumerate(lines)
    ]
    return httpx.Response(200, json={"accepted": len(lines), "rejected": 0, "results": results})


def status(
    code: int, headers: dict[str, str] | None = None
) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(code, headers=headers, json={"error": "x", "detail": "y"})


def connection_error(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def client(fake: FakeCollector, **options: object) -> TallyClient:
    defaults: dict[str, object] = {"backoff_base": 0.001, "backoff_max": 0.01, "flush_interval": 60}
    return TallyClient("http://collector", transport=fake.transport, **{**defaults, **options})  # type: ignore[arg-type]


def test_track_fixes_id_and_time_and_serializes_exactly() -> None:
    fake = FakeCollector()
    with client(fake) as tally:
        generated = tally.track("acme", "llm.call", {"tokens": Decimal("1.50"), "n": 3, "ok": True})
        tally.track(
            "acme",
            "api.request",
            id="req-1",
            time=datetime(2026, 1, 10, 12, tzinfo=timezone(timedelta(hours=2))),
        )
    first, second = fake.events()
    assert uuid.UUID(generated).version == 4 and first["id"] == generated
    assert first["data"] == {"tokens": "1.50", "n": 3, "ok": True}  # Decimal: exact numeric string
    assert datetime.fromisoformat(str(first["time"])) <= datetime.now(UTC)
    assert second == {
        "id": "req-1",
        "type": "api.request",
        "subject": "acme",
        "time": "2026-01-10T10:00:00Z",
    }


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("", "t"), {}),
        (("acme", ""), {}),
        (("acme", "t", ["not", "a", "mapping"]), {}),
        (("acme", "t"), {"id": ""}),
        (("acme", "t"), {"id": "x" * 257}),
        (("acme", "t"), {"time": datetime(2026, 1, 1)}),  # naive: no instant
        (("acme", "t"), {"time": "2026-01-01 00:00:00"}),
        (("acme", "t", {"blob": "x" * 70_000}), {}),
        (("acme", "t", {"x": float("nan")}), {}),
    ],
)
def test_track_refuses_what_the_collector_would_reject(
    args: tuple[object, ...], kwargs: dict[str, object]
) -> None:
    with client(FakeCollector()) as tally, pytest.raises(ValueError):
        tally.track(*args, **kwargs)  # type: ignore[arg-type]


def test_batches_by_size_in_tracking_order() -> None:
    fake = FakeCollector()
    with client(fake, batch_size=3) as tally:
        ids = [tally.track("acme", "t", {"i": i}, time=WHEN) for i in range(7)]
        assert tally.flush(timeout=5)
    assert [body.count(b"\n") for _, body in fake.requests] == [3, 3, 1]
    assert [e["id"] for e in fake.events()] == ids
    assert fake.requests[0][1].endswith(b"\n")  # NDJSON


def test_background_flush_after_flush_interval() -> None:
    fake = FakeCollector()
    tally = client(fake, flush_interval=0.05)
    tally.track("acme", "t", time=WHEN)
    deadline = time.monotonic() + 5
    while not fake.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(fake.requests) == 1
    tally.close()


def test_retries_5xx_429_and_connection_errors_resending_the_same_bytes() -> None:
    fake = FakeCollector([status(503), status(429), connection_error, status(500)])
    with client(fake) as tally:
        tally.track("acme", "t", {"x": 1}, id="once", time=WHEN)
    assert len(fake.requests) == 5
    assert len({body for _, body in fake.requests}) == 1  # identical on every attempt
    assert (tally.stats.accepted, tally.stats.retries, tally.stats.failed) == (1, 4, 0)


def test_retry_after_is_honoured() -> None:
    fake = FakeCollector([status(429, {"Retry-After": "0.3"})])
    with client(fake) as tally:
        tally.track("acme", "t", time=WHEN)
    (first, _), (second, _) = fake.requests
    assert second - first >= 0.3


def test_backoff_is_exponential_with_full_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    bounds: list[tuple[float, float]] = []
    monkeypatch.setattr(sdk.random, "uniform", lambda low, high: bounds.append((low, high)) or 0.0)
    fake = FakeCollector([status(503)] * 6)
    with client(fake, backoff_base=0.001, backoff_max=0.01) as tally:
        tally.track("acme", "t", time=WHEN)
    assert bounds == [(0, 0.001), (0, 0.002), (0, 0.004), (0, 0.008), (0, 0.01), (0, 0.01)]


def test_rejected_events_are_reported_and_not_retried() -> None:
    def one_rejected(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "accepted": 1,
                "rejected": 1,
                "results": [
                    {"index": 0, "id": "good", "status": "accepted", "reason": None},
                    {
                        "index": 1,
                        "id": "bad",
                        "status": "rejected",
                        "reason": "card_number_like_value",
                    },
                ],
            },
        )

    rejected: list[tuple[str, str]] = []
    fake = FakeCollector([one_rejected])
    with client(fake, on_reject=lambda i, r: rejected.append((i, r))) as tally:
        tally.track("acme", "t", id="good", time=WHEN)
        tally.track("acme", "t", {"c": "4111111111111111"}, id="bad", time=WHEN)
    assert rejected == [("bad", "card_number_like_value")]
    assert len(fake.requests) == 1
    assert (tally.stats.accepted, tally.stats.rejected) == (1, 1)


def test_gives_up_after_max_retries_and_reports_the_batch() -> None:
    failed: list[tuple[list[str], str]] = []
    fake = FakeCollector([status(503)] * 10)
    with client(fake, max_retries=2, on_failure=lambda ids, e: failed.append((ids, e))) as tally:
        tally.track("acme", "t", id="a", time=WHEN)
    assert len(fake.requests) == 3
    assert failed == [(["a"], 'HTTP 503: {"error":"x","detail":"y"}')]


def test_other_4xx_is_not_retried() -> None:
    failed: list[list[str]] = []
    fake = FakeCollector([status(400)])
    with client(fake, on_failure=lambda ids, e: failed.append(ids)) as tally:
        tally.track("acme", "t", id="a", time=WHEN)
    assert len(fake.requests) == 1 and failed == [["a"]]


def test_closed_client_refuses_events_and_close_is_idempotent() -> None:
    tally = client(FakeCollector())
    tally.close()
    tally.close()
    with pytest.raises(RuntimeError):
        tally.track("acme", "t")


def test_track_blocks_instead_of_dropping_when_the_queue_is_full() -> None:
    gate = threading.Event()

    def slow(request: httpx.Request) -> httpx.Response:
        gate.wait(5)
        return accept_all(request)

    fake = FakeCollector([slow])
    with client(fake, batch_size=2, max_queue_size=2) as tally:
        for i in range(2):
            tally.track("acme", "t", id=f"e{i}", time=WHEN)  # the first batch, now in flight
        for i in range(2, 4):
            tally.track("acme", "t", id=f"e{i}", time=WHEN)  # fills the queue
        blocked = threading.Thread(
            target=tally.track, args=("acme", "t"), kwargs={"id": "e4", "time": WHEN}
        )
        blocked.start()
        blocked.join(0.2)
        assert blocked.is_alive()
        gate.set()
        blocked.join(5)
        assert not blocked.is_alive()
    assert sorted(e["id"] for e in fake.events()) == [f"e{i}" for i in range(5)]


# --- against a real collector ---------------------------------------------------------


class FlakyProxy:
    """A loopback HTTP proxy in front of the collector that fails the first attempts:
    503, 429, a dropped connection, and a batch forwarded (so landed) whose answer is
    lost, which the client must resend."""

    def __init__(self, target: str, script: list[str]) -> None:
        self.target = target
        self.script = list(script)
        self.lock = threading.Lock()
        self.actions: Counter[str] = Counter()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with proxy.lock:
                    action = proxy.script.pop(0) if proxy.script else "forward"
                    proxy.actions[action] += 1
                if action in ("503", "429"):
                    self.reply(
                        int(action), b'{"error":"busy","detail":"test"}', {"Retry-After": "0"}
                    )
                    return
                if action == "drop":
                    self.close_connection = True
                    return
                answer = httpx.post(
                    proxy.target + self.path,
                    content=body,
                    headers={"Content-Type": self.headers["Content-Type"]},
                    timeout=10,
                )
                if action == "forward_lose_answer":
                    self.close_connection = True
                    return
                self.reply(answer.status_code, answer.content)

            def reply(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(code)
                for key, value in {"Content-Type": "application/json", **(headers or {})}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FlakyProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.server
@pytest.mark.xdist_group("sdk-collector")
def test_sdk_through_a_failing_collector_loses_nothing_and_doubles_nothing(tmp_path: Path) -> None:
    script = ["503", "429", "drop", "forward_lose_answer", "503", "drop", "forward_lose_answer"]
    tracked: list[str] = []
    with (
        CollectorProcess(tmp_path, seal_interval=0.2) as collector,
        FlakyProxy(collector.url, script) as proxy,
    ):
        tally = TallyClient(
            proxy.url,
            batch_size=50,
            flush_interval=0.05,
            backoff_base=0.01,
            backoff_max=0.05,
            timeout=5,
        )
        lock = threading.Lock()

        def produce(worker: int) -> None:
            for i in range(150):
                event_id = tally.track(
                    f"cust-{worker}", "api.request", {"i": i, "cost": Decimal("0.10")}
                )
                with lock:
                    tracked.append(event_id)

        producers = [threading.Thread(target=produce, args=(w,)) for w in range(4)]
        for producer in producers:
            producer.start()
        for producer in producers:
            producer.join()
        tally.close(timeout=30)
    assert proxy.actions["forward_lose_answer"] == 2 and proxy.actions["drop"] == 2
    assert (tally.stats.accepted, tally.stats.rejected, tally.stats.failed) == (600, 0, 0)
    copies: dict[str, set[bytes]] = defaultdict(set)
    counts: Counter[str] = Counter()
    for line in landed_lines(tmp_path):
        event_id = json.loads(line)["id"]
        copies[event_id].add(line)
        counts[event_id] += 1
    assert set(copies) == set(tracked) and len(tracked) == 600  # nothing lost
    # the batches whose answer was lost landed twice, as identical copies: duplicates
    # that ingestion counts once (SPEC §1), never conflicts
    assert all(len(found) == 1 for found in copies.values())
    assert sum(counts.values()) - len(counts) == 2 * 50
    report, ingested = ingested_counts(tmp_path, {f"cust-{w}" for w in range(4)})
    assert set(ingested) == set(tracked) and set(ingested.values()) == {1}  # nothing doubled
    assert (report.duplicates, report.conflicts) == (100, 0)


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorProcess]:
    with CollectorProcess(tmp_path_factory.mktemp("sdk-home"), seal_interval=0.1) as running:
        yield running


@pytest.mark.server
@pytest.mark.xdist_group("sdk-collector")
def test_rejections_from_the_collector_reach_on_reject(collector: CollectorProcess) -> None:
    rejected: list[tuple[str, str]] = []
    with TallyClient(collector.url, on_reject=lambda i, r: rejected.append((i, r))) as tally:
        tally.track("acme", "t", id="fine", time=WHEN)
        tally.track("acme", "t", id="later", time=datetime.now(UTC) + timedelta(days=1))
        tally.track("acme", "t", {"pan": "4111111111111111"}, id="card", time=WHEN)
    assert rejected == [("later", "time_in_future"), ("card", "card_number_like_value")]
    wait_for_landed(collector.home, {"fine"})
    landed_ids = {json.loads(line)["id"] for line in landed_lines(collector.home)}
    assert not {"later", "card"} & landed_ids


@pytest.mark.server
@pytest.mark.xdist_group("sdk-collector")
def test_events_still_queued_at_interpreter_exit_are_sent(collector: CollectorProcess) -> None:
    script = (
        "import sys\n"
        "from ingestion.sdk import TallyClient\n"
        "tally = TallyClient(sys.argv[1], batch_size=1000, flush_interval=3600)\n"
        "for i in range(25):\n"
        "    tally.track('acme', 'api.request', {'i': i}, id=f'exit-{i}',\n"
        "                time='2026-01-10T10:00:00Z')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, collector.url],
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert done.returncode == 0
    found = wait_for_landed(collector.home, {f"exit-{i}" for i in range(25)})
    assert all(len(copies) == 1 for copies in found.values())
