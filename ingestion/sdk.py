"""Python SDK for the Tally collector.

    from ingestion.sdk import TallyClient

    with TallyClient("http://127.0.0.1:8080") as tally:
        tally.track("acme", "api.request", {"path": "/v1/chat", "tokens": 1234})

``track`` builds the event at once, id (default: a random UUID) and time (default:
now, UTC) included, and serializes it; the bytes sent on every attempt are the same.
So a retry after a lost answer is an identical copy with the same id, which ingestion
counts once (SPEC §1 deduplication): an event is never billed twice because of a retry.

Events are batched in memory and sent by one background thread (in order) when a batch
is full, every ``flush_interval`` seconds, on ``flush()``, on ``close()`` and at
interpreter exit. A batch is retried with exponential backoff and full jitter on
connection errors, timeouts, 408, 429 and 5xx (``Retry-After`` is honoured). An event
the collector rejects (answer 200, status ``rejected``) is not retried: it is reported
to ``on_reject(event_id, reason)`` (default: logged). A batch still undelivered after
``max_retries`` retries, or refused as a whole (another 4xx), is reported to
``on_failure(event_ids, error)`` (default: logged as an error).

``track`` blocks while ``max_queue_size`` events wait to be sent (back-pressure
instead of dropping events).
"""

from __future__ import annotations

import atexit
import email.utils
import json
import logging
import random
import threading
import time as _time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx

from ingestion.event_schema import MAX_EVENT_BYTES, MAX_ID_CHARS, parse_rfc3339

log = logging.getLogger("tally.sdk")

RETRYABLE_STATUS = frozenset({408, 429}) | frozenset(range(500, 600))
MAX_RETRY_AFTER = 300.0

RejectCallback = Callable[[str, str], None]
FailureCallback = Callable[[list[str], str], None]


@dataclass
class ClientStats:
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    requests: int = 0
    retries: int = 0
    rejections: list[tuple[str, str]] = field(default_factory=list)  # the last 1000


def rfc3339(moment: datetime) -> str:
    """An aware datetime as RFC 3339 in UTC (``2026-01-31T23:59:59.123456Z``)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("time must be timezone-aware (a naive datetime has no instant)")
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}"
    return text + "Z"


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a JSON number")
        return format(value, "f")  # a numeric string: exact, SPEC §1 accepts it
    if isinstance(value, datetime):
        return rfc3339(value) if value.tzinfo is not None else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot send {type(value).__name__} in event data")


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class TallyClient:
    """Batching, retrying client of ``POST /v1/events``; thread-safe."""

    def __init__(
        self,
        url: str,
        *,
        source: str | None = None,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        max_retries: int = 10,
        timeout: float = 10.0,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        max_queue_size: int = 100_000,
        exit_timeout: float = 10.0,
        on_reject: RejectCallback | None = None,
        on_failure: FailureCallback | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if batch_size < 1 or max_queue_size < batch_size:
            raise ValueError("need 1 <= batch_size <= max_queue_size")
        base = url.rstrip("/")
        self.endpoint = base if base.endswith("/v1/events") else base + "/v1/events"
        self.source = source
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_queue_size = max_queue_size
        self.exit_timeout = exit_timeout
        self.on_reject = on_reject
        self.on_failure = on_failure
        self.stats = ClientStats()
        self._http = httpx.Client(timeout=timeout, headers=dict(headers or {}), transport=transport)
        self._cond = threading.Condition()
        self._queue: deque[tuple[str, bytes]] = deque()
        self._oldest_at = 0.0  # monotonic time the oldest queued event was tracked
        self._tracked = 0  # events tracked so far
        self._done = 0  # events sent (accepted, rejected or failed), in tracking order
        self._flush_to = 0  # send regardless of batch size until _done reaches this
        self._closed = False
        self._abandon = threading.Event()  # close() timed out: stop retrying
        self._worker = threading.Thread(target=self._run, name="tally-sdk", daemon=True)
        self._worker.start()
        atexit.register(self._at_exit)

    # --- public API ------------------------------------------------------------------

    def track(
        self,
        customer: str,
        type: str,  # noqa: A002 - the SPEC field name
        data: Mapping[str, Any] | None = None,
        id: str | None = None,  # noqa: A002 - the SPEC field name
        time: datetime | str | None = None,
    ) -> str:
        """Queue one event; returns its id (fixed now, so retries never double-count)."""
        event_id = str(uuid.uuid4()) if id is None else id
        if not isinstance(event_id, str) or not 1 <= len(event_id) <= MAX_ID_CHARS:
            raise ValueError(f"id must be a string of 1-{MAX_ID_CHARS} characters")
        if not isinstance(customer, str) or not customer:
            raise ValueError("customer must be a non-empty string")
        if not isinstance(type, str) or not type:
            raise ValueError("type must be a non-empty string")
        if data is not None and not isinstance(data, Mapping):
            raise ValueError("data must be a mapping (a JSON object) or None")
        if time is None:
            when = rfc3339(datetime.now(UTC))
        elif isinstance(time, datetime):
            when = rfc3339(time)
        elif isinstance(time, str) and parse_rfc3339(time) is not None:
            when = time
        else:
            raise ValueError(f"time must be an aware datetime or an RFC 3339 string: {time!r}")
        event: dict[str, Any] = {"id": event_id}
        if self.source is not None:
            event["source"] = self.source
        event.update(type=type, subject=customer, time=when)
        if data is not None:
            event["data"] = dict(data)
        payload = json.dumps(
            event, default=_json_default, ensure_ascii=False, allow_nan=False, separators=(",", ":")
        ).encode("utf-8")
        if len(payload) > MAX_EVENT_BYTES:
            raise ValueError(f"event {event_id} is {len(payload)} bytes: over {MAX_EVENT_BYTES}")
        with self._cond:
            if self._closed:
                raise RuntimeError("TallyClient is closed")
            while len(self._queue) >= self.max_queue_size:
                self._cond.wait()
            if not self._queue:
                self._oldest_at = _time.monotonic()
            self._queue.append((event_id, payload))
            self._tracked += 1
            if len(self._queue) in (1, self.batch_size):  # start the flush timer, or send
                self._cond.notify_all()
        return event_id

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything tracked so far; True when all of it was answered in time."""
        deadline = None if timeout is None else _time.monotonic() + timeout
        with self._cond:
            target = self._tracked
            self._flush_to = max(self._flush_to, target)
            self._cond.notify_all()
            while self._done < target:
                remaining = None if deadline is None else deadline - _time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def close(self, timeout: float | None = None) -> None:
        """Flush, then stop the background thread. After ``timeout`` seconds, retries stop
        and what is left is reported to ``on_failure``."""
        with self._cond:
            if self._closed:
                return
        delivered = self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if not delivered:
            self._abandon.set()
        self._worker.join()
        self._http.close()
        atexit.unregister(self._at_exit)

    def __enter__(self) -> TallyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _at_exit(self) -> None:
        self.close(self.exit_timeout)

    # --- background thread -------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    queued = len(self._queue)
                    if queued and (
                        queued >= self.batch_size
                        or self._done < self._flush_to
                        or self._closed
                        or _time.monotonic() - self._oldest_at >= self.flush_interval
                    ):
                        break
                    if not queued and self._closed:
                        return
                    wait = None
                    if queued:
                        wait = max(0.0, self._oldest_at + self.flush_interval - _time.monotonic())
                    self._cond.wait(wait)
                batch = [self._queue.popleft() for _ in range(min(self.batch_size, queued))]
                if self._queue:
                    self._oldest_at = _time.monotonic()
                self._cond.notify_all()  # room in the queue for blocked track() calls
            try:
                self._deliver(batch)
            except Exception as exc:  # noqa: BLE001 - never let the thread die with events queued
                log.exception("tally: unexpected error sending a batch")
                self._report_failure([event_id for event_id, _ in batch], repr(exc))
            with self._cond:
                self._done += len(batch)
                self._cond.notify_all()

    def _deliver(self, batch: list[tuple[str, bytes]]) -> None:
        body = b"\n".join(payload for _, payload in batch) + b"\n"
        headers = {"Content-Type": "application/x-ndjson"}
        error = "not sent"
        for attempt in range(self.max_retries + 1):
            if attempt:
                self.stats.retries += 1
            retry_after = None
            try:
                self.stats.requests += 1
                response = self._http.post(self.endpoint, content=body, headers=headers)
            except httpx.TransportError as exc:
                error = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    self._read_results(batch, response)
                    return
                error = f"HTTP {response.status_code}: {response.text[:200]}"
                if response.status_code not in RETRYABLE_STATUS:
                    break
                retry_after = _retry_after(response.headers.get("Retry-After"))
            if attempt == self.max_retries:
                break
            delay = random.uniform(0, min(self.backoff_max, self.backoff_base * 2**attempt))
            if retry_after is not None:
                delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
            log.debug("tally: attempt %d failed (%s); retrying in %.2fs", attempt + 1, error, delay)
            if self._abandon.wait(delay):
                error = f"client closed before delivery ({error})"
                break
        self._report_failure([event_id for event_id, _ in batch], error)

    def _read_results(self, batch: list[tuple[str, bytes]], response: httpx.Response) -> None:
        try:
            results = response.json()["results"]
            rejected = [(r["index"], r["reason"]) for r in results if r["status"] == "rejected"]
        except (ValueError, KeyError, TypeError):
            log.warning("tally: unreadable answer to a delivered batch of %d events", len(batch))
            self.stats.accepted += len(batch)
            return
        self.stats.accepted += len(batch) - len(rejected)
        self.stats.rejected += len(rejected)
        for index, reason in rejected:
            event_id = batch[index][0]
            self.stats.rejections.append((event_id, reason))
            del self.stats.rejections[:-1000]
            if self.on_reject is not None:
                try:
                    self.on_reject(event_id, reason)
                except Exception:  # noqa: BLE001
                    log.exception("tally: on_reject callback failed")
            else:
                log.warning("tally: event %s rejected: %s", event_id, reason)

    def _report_failure(self, event_ids: list[str], error: str) -> None:
        self.stats.failed += len(event_ids)
        if self.on_failure is not None:
            try:
                self.on_failure(event_ids, error)
                return
            except Exception:  # noqa: BLE001
                log.exception("tally: on_failure callback failed")
        log.error("tally: %d events not delivered: %s", len(event_ids), error)
