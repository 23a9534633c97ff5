"""Helpers for mocked-engine tests: SSE bodies and byte streams that break like real connections do."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from collections.abc import Iterator
from typing import Any

import httpx


def sse(*events: Any, done: bool = True, space: bool = True) -> bytes:
    prefix = b"data: " if space else b"data:"
    out = b""
    for e in events:
        out += prefix + (e if isinstance(e, bytes) else json.dumps(e).encode()) + b"\n\n"
    if done:
        out += prefix + b"[DONE]\n\n"
    return out


class BrokenStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """Yields ``body`` in small chunks, then raises ``exc`` as a dropped or stalled connection does."""

    def __init__(self, body: bytes, exc: Exception, chunk: int = 17) -> None:
        self.chunks = [body[i : i + chunk] for i in range(0, len(body), chunk)]
        self.exc = exc

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        raise self.exc

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for c in self.chunks:
            yield c
        raise self.exc


def event_stream(body: bytes, status: int = 200) -> httpx.Response:
    return httpx.Response(status, content=body, headers={"content-type": "text/event-stream"})
