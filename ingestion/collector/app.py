"""The HTTP collector: ``POST /v1/events`` checks events and lands them durably.

Per request: read the body (gzip allowed), split it into events, run the SPEC §1
checks that need neither catalog nor customers (``ingestion.event_schema``), append
the accepted events as NDJSON lines to the collector log (group commit + fdatasync,
see ``wal.py``) and only then answer, event by event. The catalog and customer rules
(``missing_field:data.*``, ``unknown_customer``) and deduplication apply when a run
ingests the landed file, like any file.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import orjson
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from ingestion.collector.bodies import (
    BodyError,
    decompress,
    is_segment_message,
    segment_call_type,
    segment_to_event_line,
    split_events,
)
from ingestion.collector.wal import DEFAULT_SEAL_INTERVAL, CollectorLog
from ingestion.event_schema import MAX_EVENT_BYTES, Clock, check_raw, future_limit, utc_now
from ingestion.landing import LandingZone

log = logging.getLogger("tally.collector")

# Inflated size: a batch of 512 events of the largest size SPEC §1 allows fits.
DEFAULT_MAX_BODY_BYTES = 512 * (MAX_EVENT_BYTES + 1)


def evaluate_event(raw: bytes, limit: Decimal) -> tuple[str | None, str | None, bytes]:
    """(rejection reason or None, event id, NDJSON line to land) for one raw event.

    A Segment message is first rewritten into the Tally event it stands for, and that
    event is what is checked and landed."""
    reason, event = check_raw(raw, limit)
    if event is not None and is_segment_message(event):
        message_id = event.get("messageId")
        event_id = message_id if isinstance(message_id, str) else None
        if segment_call_type(event) != "track":
            return "unsupported_segment_type", event_id, raw
        try:
            raw = segment_to_event_line(raw)
        except (ValueError, RecursionError, UnicodeError):
            return "invalid_json", event_id, raw
        reason, event = check_raw(raw, limit)
    event_id = event.get("id") if event is not None else None
    return reason, event_id if type(event_id) is str else None, raw


# --- OpenAPI documentation models (the hot path does not build them) -------------


class Event(BaseModel):
    """A usage event (SPEC §1, CloudEvents attribute names)."""

    id: str = Field(min_length=1, max_length=256, description="Idempotency key, unique per source")
    source: str = Field("default", description="The producing system")
    type: str = Field(description="Meters select events by it")
    subject: str = Field(description="The customer id")
    time: str = Field(
        description="RFC 3339 timestamp with offset", examples=["2026-01-31T23:59:59Z"]
    )
    data: dict[str, Any] | None = Field(None, description="Properties; numbers kept literally")


class SegmentTrack(BaseModel):
    """A Segment `track` message: messageId→id, event→type, userId→subject,
    timestamp→time, properties→data (other fields are ignored)."""

    type: Literal["track"] = "track"
    messageId: str
    event: str
    userId: str
    timestamp: str
    properties: dict[str, Any] | None = None


class SegmentBatch(BaseModel):
    batch: list[SegmentTrack]


class EventResult(BaseModel):
    index: int = Field(
        description="0-based position of the event in the batch (blank lines skipped)"
    )
    id: str | None
    status: Literal["accepted", "rejected"]
    reason: str | None = Field(description="SPEC §1 reason when rejected")


class BatchResult(BaseModel):
    accepted: int
    rejected: int
    results: list[EventResult]


class ErrorBody(BaseModel):
    error: str
    detail: str


_REQUEST_BODY = {
    "required": True,
    "description": (
        "One event, a JSON array of events, NDJSON (one event per line), a Segment "
        '`track` message or a Segment batch (`{"batch": [...]}`). '
        "`Content-Encoding: gzip` is accepted."
    ),
    "content": {
        "application/json": {
            "schema": {
                "oneOf": [
                    Event.model_json_schema(),
                    {"type": "array", "items": Event.model_json_schema()},
                    SegmentTrack.model_json_schema(),
                    {
                        "type": "object",
                        "properties": {
                            "batch": {"type": "array", "items": SegmentTrack.model_json_schema()}
                        },
                    },
                ]
            }
        },
        "application/x-ndjson": {"schema": {"type": "string", "description": "One event per line"}},
    },
}


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status, headers, media_type="application/json")


def _error(status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> Response:
    return _json(status, {"error": error, "detail": detail}, headers)


async def _read_body(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise BodyError(413, "body_too_large", f"body over {max_bytes} bytes")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise BodyError(413, "body_too_large", f"body over {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    home: Path,
    *,
    clock: Clock | None = None,
    seal_interval: float = DEFAULT_SEAL_INTERVAL,
    max_segment_bytes: int = 64 << 20,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    """The collector for ``home``; its landing zone is ``home/landing``.

    ``clock`` (default: UTC now) is the clock of the ``time_in_future`` check.
    ``seal_interval`` bounds how long an acknowledged event waits before its segment
    is landed as a file the pipeline sees.
    """
    now = clock or utc_now
    wal = CollectorLog(
        LandingZone(Path(home) / "landing"),
        seal_interval=seal_interval,
        max_segment_bytes=max_segment_bytes,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await wal.start()
        log.info("collector ready: landing zone %s", wal.zone.root)
        try:
            yield
        finally:
            await wal.stop()

    app = FastAPI(
        title="Tally collector",
        summary="Receives usage events and lands them durably for the next run.",
        version="1",
        lifespan=lifespan,
    )
    app.state.collector_log = wal

    @app.post(
        "/v1/events",
        summary="Send one event or a batch",
        response_model=None,
        openapi_extra={"requestBody": _REQUEST_BODY},
        responses={
            200: {
                "model": BatchResult,
                "description": "Processed: each event accepted or rejected",
            },
            400: {"model": ErrorBody, "description": "Unreadable body"},
            413: {"model": ErrorBody, "description": "Body too large"},
            415: {"model": ErrorBody, "description": "Unsupported Content-Encoding"},
            503: {"model": ErrorBody, "description": "Not landed: nothing acknowledged, retry"},
        },
    )
    async def post_events(request: Request) -> Response:
        headers = request.headers
        try:
            body = await _read_body(request, max_body_bytes)
            body = decompress(body, headers.get("content-encoding"), max_body_bytes)
            raws = split_events(body, headers.get("content-type"))
        except BodyError as err:
            return _error(err.status, err.error, err.detail)
        limit = future_limit(now())
        results = []
        lines = []
        for index, raw in enumerate(raws):
            reason, event_id, line = evaluate_event(raw, limit)
            if reason is None:
                lines.append(line)
                results.append(
                    {"index": index, "id": event_id, "status": "accepted", "reason": None}
                )
            else:
                results.append(
                    {"index": index, "id": event_id, "status": "rejected", "reason": reason}
                )
        accepted = len(lines)
        if lines:
            lines.append(b"")  # every line ends with a newline
            try:
                await wal.append(b"\n".join(lines))
            except Exception as exc:  # noqa: BLE001 - nothing was acknowledged
                return _error(503, "landing_failed", str(exc), {"Retry-After": "1"})
        return _json(
            200, {"accepted": accepted, "rejected": len(results) - accepted, "results": results}
        )

    @app.get("/healthz", summary="Liveness and landing status")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", **wal.status()}

    return app


def serve(
    home: Path,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    seal_interval: float = DEFAULT_SEAL_INTERVAL,
    log_level: str = "info",
    access_log: bool = False,
) -> None:
    """Run the collector with uvicorn until SIGINT/SIGTERM (then land what is open)."""
    if not log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(log_level.upper())
    uvicorn.run(
        create_app(home, seal_interval=seal_interval),
        host=host,
        port=port,
        log_level=log_level,
        access_log=access_log,
        timeout_graceful_shutdown=30,
    )
