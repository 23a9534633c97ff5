"""The transport: the package's only network I/O, one loop over the dialect codecs.

Knows HTTP, retries, time limits and SSE; knows no engine (see ``engine_clients/_http.py`` for the shared
configuration, retry policy and error mapping).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from collections.abc import Mapping
from typing import Any

import httpx

from .._http import OnHeaders
from .._http import Refit
from .._http import TransportBase
from .._http import async_http_client
from .._http import stream_timeout
from .._http import tenacity_lib
from .._http import unstick
from .._sse import SSEDecoder
from .._timing import Measure
from .._timing import StreamClock
from .._timing import perf_counter
from ..dialects.base import HttpRequest
from ..dialects.base import StreamDecoder
from ..errors import EngineError
from ..errors import MalformedResponseError
from ..types import StreamEvent

__all__ = ["AsyncTransport"]


class AsyncTransport(TransportBase):
    def __init__(
        self,
        *args: Any,
        http_client: httpx.AsyncClient | None = None,
        backend: str = "httpx",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._owns = http_client is None
        self.client = http_client or async_http_client(backend, self._t_plain)

    async def aclose(self) -> None:
        if self._owns:
            await self.client.aclose()

    async def request(
        self,
        req: HttpRequest,
        *,
        retries: int | None = None,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
        on_headers: OnHeaders | None = None,
        measure: Measure | None = None,
        refit: Refit | None = None,
    ) -> Any:
        """Send a non-streamed request; returns the decoded JSON body (None when empty). ``headers`` are
        added to the client's; ``on_headers`` sees each response's headers (e.g. a router's cookie);
        ``measure`` gets the answering attempt's response headers and clock readings; ``refit`` may answer
        the final error with one other request to send instead (a history fitted to a strict template)."""
        try:
            return await self._send(req, retries, timeout, headers, on_headers, measure)
        except EngineError as err:
            alt = refit(err) if refit is not None else None
            if alt is None:
                raise
        return await self._send(alt, retries, timeout, headers, on_headers, measure)

    async def _send(
        self,
        req: HttpRequest,
        retries: int | None,
        timeout: float | None,
        headers: Mapping[str, str] | None,
        on_headers: OnHeaders | None,
        measure: Measure | None,
    ) -> Any:
        t = httpx.Timeout(timeout) if timeout is not None else self._t_plain
        async for attempt in tenacity_lib().AsyncRetrying(**self._retry_kwargs(retries)):
            with attempt:
                try:
                    start = perf_counter()
                    request = self.client.build_request(
                        req.method, self._url(req.path), json=req.json, headers=self._with(headers), timeout=t
                    )
                    response = await self.client.send(request, stream=True)
                    first_byte = perf_counter()
                    try:
                        await response.aread()
                    finally:
                        await response.aclose()
                except httpx.HTTPError as exc:
                    raise self._transport_error(exc, f"{req.method} {req.path}") from exc
                if measure is not None:
                    measure.start, measure.first_byte, measure.end = start, first_byte, perf_counter()
                    measure.headers = response.headers
                if on_headers is not None:
                    on_headers(response.headers.multi_items())
                if response.status_code >= 400:
                    err = self._status_error(response, response.content)
                    headers = unstick(err, headers)
                    raise err
                return self._decode_json(response, req.text)
        raise AssertionError("unreachable")  # pragma: no cover

    async def status(self, path: str, timeout: float) -> int:
        """Status code of a GET, no retries (health checks)."""
        response = await self.client.get(self._url(path), headers=self._headers, timeout=timeout)
        return response.status_code

    async def _open(
        self, req: HttpRequest, headers: Mapping[str, str] | None, on_headers: OnHeaders | None
    ) -> tuple[httpx.Response, float]:
        async for attempt in tenacity_lib().AsyncRetrying(**self._retry_kwargs(None)):
            with attempt:
                request = self.client.build_request(
                    req.method,
                    self._url(req.path),
                    json=req.json,
                    headers=self._with(headers),
                    timeout=self._t_stream,
                )
                try:
                    start = perf_counter()
                    response = await self.client.send(request, stream=True)
                except httpx.HTTPError as exc:
                    raise self._transport_error(exc, f"{req.method} {req.path}") from exc
                if on_headers is not None:
                    on_headers(response.headers.multi_items())
                if response.status_code >= 400:
                    try:
                        body = await response.aread()
                    except httpx.HTTPError:
                        body = b""
                    finally:
                        await response.aclose()
                    err = self._status_error(response, body)
                    headers = unstick(err, headers)
                    raise err
                return response, start
        raise AssertionError("unreachable")  # pragma: no cover

    async def stream(
        self,
        req: HttpRequest,
        decoder: StreamDecoder,
        *,
        headers: Mapping[str, str] | None = None,
        on_headers: OnHeaders | None = None,
        refit: Refit | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """Yield typed events; raises typed errors, and StreamError (with partial output) on a cut stream.
        The :class:`End` carries the stream's timings (see :class:`StreamClock`). ``refit``: as for
        :meth:`request`, for an error answered before the stream began."""
        try:
            response, start = await self._open(req, headers, on_headers)
        except EngineError as err:
            alt = refit(err) if refit is not None else None
            if alt is None:
                raise
            response, start = await self._open(alt, headers, on_headers)
        clock = StreamClock(start, perf_counter())
        stamps, seen = clock.stamps, 0
        sse = SSEDecoder(self._max_event, self._max_stream)
        try:
            chunks = response.aiter_bytes()
            try:
                async for chunk in chunks:
                    now = perf_counter()
                    for event in sse.feed(chunk):
                        events = decoder.feed(event)
                        if decoder.done:
                            clock.finish(events, decoder, response.headers, now, seen)
                            for out in events:
                                yield out
                            await _adrain(chunks)
                            return
                        for out in events:
                            yield out
                    produced = decoder.index + len(decoder.thoughts)
                    if produced != seen:
                        seen = produced
                        stamps.append(now)
            except httpx.TimeoutException as exc:
                raise stream_timeout(decoder, self.timeouts.chunk) from exc
            except httpx.HTTPError as exc:
                raise decoder.cut(f"the stream broke: {type(exc).__name__}: {exc}") from exc
            except MalformedResponseError as exc:
                raise decoder.cut(exc.message, exc) from exc
            events = decoder.eof()
            clock.finish(events, decoder, response.headers, perf_counter(), seen)
            for out in events:
                yield out
        finally:
            await response.aclose()


# After the final event the engines end the body at once; reading that end lets httpx return the connection
# to its pool instead of discarding it. Bounded, and a failure here loses nothing: the answer is complete.
_DRAIN_CHUNKS = 8


async def _adrain(chunks: AsyncIterator[bytes]) -> None:
    read = 0
    try:
        async for _ in chunks:
            read += 1
            if read >= _DRAIN_CHUNKS:
                break
    except httpx.HTTPError:
        pass
