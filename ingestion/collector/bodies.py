"""Request bodies of ``POST /v1/events``: split into per-event raw lines.

A body is one event (a JSON object), a batch (a JSON array, or NDJSON), a Segment
``track`` message, or a Segment batch envelope (``{"batch": [...]}``); it may be
gzip-compressed (``Content-Encoding: gzip``, or gzip magic bytes). Every event comes
out as the bytes of one NDJSON line without its newline, keeping the client's own JSON
text (number literals, key order) so what lands is what was sent (SPEC §1 exactness).
Segment messages are rewritten into Tally events with their numbers kept literally.
"""

from __future__ import annotations

import json
import re
import zlib
from typing import Any

NDJSON_TYPES = frozenset(
    {
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/x-jsonlines",
        "application/jsonlines",
    }
)
_WS = re.compile(r"[ \t\n\r]*")
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"


class BodyError(Exception):
    """The body cannot be read as events: answered with ``status`` and nothing is landed."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail


def decompress(body: bytes, content_encoding: str | None, max_bytes: int) -> bytes:
    """The body with any gzip layer removed (at most ``max_bytes`` once inflated)."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("gzip", "x-gzip") or (encoding == "identity" and body[:2] == _GZIP_MAGIC):
        return _gunzip(body, max_bytes)
    if encoding != "identity":
        raise BodyError(415, "unsupported_encoding", f"Content-Encoding {encoding!r}: use gzip")
    return body


def _gunzip(data: bytes, max_bytes: int) -> bytes:
    out: list[bytes] = []
    size = 0
    try:
        while data:  # a gzip file may hold several members
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            chunk = inflater.decompress(data, max_bytes - size + 1)
            size += len(chunk)
            if size > max_bytes:
                raise BodyError(413, "body_too_large", f"inflated body over {max_bytes} bytes")
            if not inflater.eof:
                raise BodyError(400, "invalid_gzip", "truncated gzip stream")
            out.append(chunk)
            data = inflater.unused_data
    except zlib.error as exc:
        raise BodyError(400, "invalid_gzip", f"not a gzip stream: {exc}") from None
    return b"".join(out)


def split_events(body: bytes, content_type: str | None) -> list[bytes]:
    """The body's events, each as the bytes of one NDJSON line (no newline)."""
    if body.startswith(_BOM):
        body = body[len(_BOM) :]
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type in NDJSON_TYPES:
        return _ndjson_lines(body)
    stripped = body.lstrip(b" \t\r\n")
    if not stripped:
        raise BodyError(400, "empty_body", "the body holds no event")
    if stripped[:1] == b"[":
        return _array_elements(stripped)
    if stripped[:1] == b"{":
        single = _single_document(stripped)
        if single is not None:
            return single
    return _ndjson_lines(body)


def _ndjson_lines(body: bytes) -> list[bytes]:
    lines = []
    for line in body.split(b"\n"):
        if line.endswith(b"\r"):
            line = line[:-1]
        if line and not line.isspace():  # SPEC §1: blank lines are skipped
            lines.append(line)
    return lines


def _one_line(text: str) -> bytes:
    """Raw JSON text as one NDJSON line. Raw CR/LF can only be whitespace between tokens
    (JSON strings escape them), so turning them into spaces changes no value."""
    raw = text.encode("utf-8", "surrogateescape")
    if b"\n" in raw or b"\r" in raw:
        raw = raw.replace(b"\r", b" ").replace(b"\n", b" ")
    return raw


def _array_elements(body: bytes) -> list[bytes]:
    # Undecodable bytes survive as surrogate escapes and make their element invalid_json.
    text = body.decode("utf-8", "surrogateescape")
    decoder = json.JSONDecoder()
    elements: list[bytes] = []
    pos = _WS.match(text, 1).end()  # type: ignore[union-attr]
    if text.startswith("]", pos):
        pos += 1
    else:
        while True:
            try:
                _, end = decoder.raw_decode(text, pos)
            except ValueError as exc:
                raise BodyError(
                    400, "invalid_json_array", f"unreadable JSON array: {exc}"
                ) from None
            elements.append(_one_line(text[pos:end]))
            pos = _WS.match(text, end).end()  # type: ignore[union-attr]
            if text.startswith(",", pos):
                pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]
            elif text.startswith("]", pos):
                pos += 1
                break
            else:
                raise BodyError(400, "invalid_json_array", f"expected ',' or ']' at char {pos}")
    if text[pos:].strip(" \t\r\n"):
        raise BodyError(400, "invalid_json_array", f"unexpected data after the array at char {pos}")
    return elements


def _single_document(body: bytes) -> list[bytes] | None:
    """A body that is exactly one JSON object: one event, one Segment message, or a
    Segment batch envelope. None when it is something else (then it is NDJSON)."""
    try:
        text = body.decode("utf-8")
        value, end = json.JSONDecoder().raw_decode(text)
    except ValueError:
        return None
    if text[end:].strip(" \t\r\n"):
        return None  # more than one document: NDJSON
    if (
        isinstance(value, dict)
        and isinstance(value.get("batch"), list)
        and "id" not in value
        and "subject" not in value
    ):
        try:
            envelope = loads_exact(text)
        except (ValueError, RecursionError) as exc:
            raise BodyError(400, "invalid_json", f"unreadable Segment batch: {exc}") from None
        # surrogatepass: a lone surrogate becomes bytes that are not UTF-8, so that
        # message is rejected as invalid_json like any other.
        return [
            dumps_exact(message).encode("utf-8", "surrogatepass") for message in envelope["batch"]
        ]
    return [_one_line(text[:end])]


# --- Segment `track` messages -------------------------------------------------------

SEGMENT_FIELDS = (
    ("messageId", "id"),
    ("event", "type"),
    ("userId", "subject"),
    ("timestamp", "time"),
    ("properties", "data"),
)


def is_segment_message(event: dict[str, Any]) -> bool:
    """A Segment message rather than a Tally event: no ``subject``, and Segment's keys."""
    return "subject" not in event and (
        "event" in event or "messageId" in event or "userId" in event
    )


def segment_call_type(event: dict[str, Any]) -> Any:
    return event.get("type", "track")


def segment_to_event_line(raw: bytes) -> bytes:
    """The Tally event line for a Segment ``track`` message (numbers kept literally):
    messageId→id, event→type, userId→subject, timestamp→time, properties→data."""
    message = loads_exact(raw.decode("utf-8"))
    event = {tally: message[segment] for segment, tally in SEGMENT_FIELDS if segment in message}
    return dumps_exact(event).encode("utf-8")


class _Number(str):
    """A JSON number kept as its literal text."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads_exact(text: str) -> Any:
    """Parse JSON keeping every number as its literal text (never a binary float)."""
    return json.loads(text, parse_int=_Number, parse_float=_Number, parse_constant=_reject_constant)


def dumps_exact(value: Any) -> str:
    """Serialize a value from :func:`loads_exact`, writing numbers back literally."""
    if isinstance(value, _Number):
        return str.__str__(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, dict):
        return (
            "{"
            + ",".join(
                f"{json.dumps(key, ensure_ascii=False)}:{dumps_exact(item)}"
                for key, item in value.items()
            )
            + "}"
        )
    if isinstance(value, list):
        return "[" + ",".join(dumps_exact(item) for item in value) + "]"
    raise TypeError(f"not a JSON value: {type(value).__name__}")
