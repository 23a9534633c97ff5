"""Incremental Server-Sent-Events decoder over raw byte chunks, tolerant of every engine's framing.

Handles ``data:`` with and without the space, ``\\r\\n`` line ends, comment/keep-alive lines, and
llama.cpp's non-standard ``error:`` field (a standard decoder drops unknown fields, which would turn an
engine error into a silently short answer). Event and stream sizes are bounded so a hostile server
cannot exhaust memory. Data stays ``bytes``: ``json.loads`` reads bytes directly.
"""

from __future__ import annotations

from .errors import MalformedResponseError

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "DEFAULT_MAX_STREAM_BYTES", "SSEDecoder", "SSEEvent"]

DEFAULT_MAX_EVENT_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_STREAM_BYTES = 256 * 1024 * 1024


class SSEEvent:
    """One dispatched event; ``event`` is ``"message"``, or ``"error"`` for llama.cpp's ``error:`` line."""

    __slots__ = ("data", "event")

    def __init__(self, event: str, data: bytes) -> None:
        self.event = event
        self.data = data

    def __repr__(self) -> str:
        return f"SSEEvent(event={self.event!r}, data={self.data[:80]!r})"


class SSEDecoder:
    __slots__ = ("_buf", "_data", "_event", "_max_event", "_max_stream", "_pending", "_total")

    def __init__(
        self,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        max_stream_bytes: int = DEFAULT_MAX_STREAM_BYTES,
    ) -> None:
        self._buf = b""
        self._data: list[bytes] = []
        self._pending = 0
        self._event = "message"
        self._max_event = max_event_bytes
        self._max_stream = max_stream_bytes
        self._total = 0

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Decode one chunk of the body; returns the events completed by it (often one, sometimes none)."""
        self._total += len(chunk)
        if self._total > self._max_stream:
            raise MalformedResponseError(f"stream exceeded {self._max_stream} bytes")
        buf = self._buf + chunk if self._buf else chunk
        lines = buf.split(b"\n")
        self._buf = rest = lines.pop()
        if len(rest) > self._max_event:
            raise MalformedResponseError(f"stream line exceeded {self._max_event} bytes")
        out: list[SSEEvent] = []
        for line in lines:
            if line[-1:] == b"\r":
                line = line[:-1]
            if not line:
                if self._data:
                    data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
                    out.append(SSEEvent(self._event, data))
                    self._data = []
                    self._pending = 0
                self._event = "message"
                continue
            if line[0] == 58:  # ":" comment / keep-alive
                continue
            name, colon, value = line.partition(b":")
            if colon and value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                self._data.append(value)
            elif name == b"error":
                self._event = "error"
                self._data.append(value)
            elif name == b"event":
                self._event = value.decode("utf-8", "replace")
            else:  # id, retry and unknown fields carry nothing an engine client needs
                continue
            self._pending += len(value)
            if self._pending > self._max_event:
                raise MalformedResponseError(f"SSE event exceeded {self._max_event} bytes")
        return out

    @property
    def has_partial_event(self) -> bool:
        """True when the body ended inside an event (a cut frame): such data is never dispatched."""
        return bool(self._buf.strip() or self._data)
