"""``http_backend="aiohttp"``: httpx's API over aiohttp's sockets (httpx-aiohttp), with errors mapped as
httpx's own transport maps them, so that retries and stream errors mean the same on both backends.

httpx-aiohttp 0.2 maps every ``aiohttp.ClientConnectionError`` to ``httpx.ConnectTimeout``: a refused
connection would read as a timeout, and a server that drops a stream as a stalled one. Here a refused
connection is ``ConnectError``, a dropped one ``ReadError``, and only aiohttp's timeouts are timeouts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

__all__ = ["aiohttp_client"]

_KEEPALIVE_S = 5.0


def _remap(exc: httpx.TransportError) -> httpx.TransportError:
    cause = exc.__cause__
    if isinstance(cause, asyncio.TimeoutError):  # aiohttp's Server/Socket/ConnectionTimeoutError
        return exc if isinstance(exc, httpx.TimeoutException) else httpx.ReadTimeout(str(exc))
    if isinstance(cause, aiohttp.ClientConnectorError):
        return httpx.ConnectError(str(cause))
    if isinstance(cause, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError):
        return httpx.ReadError(str(cause))
    return exc


class _Stream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream) -> None:
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                yield chunk
        except httpx.TransportError as exc:
            raise _remap(exc) from exc.__cause__

    async def aclose(self) -> None:
        await self._inner.aclose()


class _Transport(AiohttpTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await super().handle_async_request(request)
        except httpx.TransportError as exc:
            raise _remap(exc) from exc.__cause__
        stream = response.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        response.stream = _Stream(stream)
        return response


def _session() -> aiohttp.ClientSession:
    # Made on first use, inside the event loop that uses it; limit=0: no cap on connections. No cookie jar of
    # aiohttp's own: httpx's jar already sets each request's Cookie header, and aiohttp's would add its stored
    # cookies over an explicit one (a cookie router's session cookie then leaks into other sessions).
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=_KEEPALIVE_S),
        cookie_jar=aiohttp.DummyCookieJar(),
    )


def aiohttp_client(timeout: httpx.Timeout) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=timeout, transport=_Transport(client=_session))
