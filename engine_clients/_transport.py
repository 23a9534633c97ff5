"""The only I/O in the package: one sync and one async loop over the dialect codecs.

Knows HTTP, retries, time limits and SSE; knows no engine. Retries (tenacity, exponential backoff with
jitter, ``Retry-After`` honoured) cover connect errors, timeouts, 429 and 502/503/504, and only happen
before a response body is handed to the caller: a stream that breaks later raises :class:`StreamError`.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from tenacity import RetryCallState

from ._sse import DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_STREAM_BYTES, SSEDecoder
from ._timing import Measure, StreamClock, perf_counter
from .dialects.base import HttpRequest, StreamDecoder, loads
from .errors import (
    EngineError,
    EngineUnavailableError,
    MalformedResponseError,
    RateLimitError,
    StreamError,
    StreamTimeoutError,
    TimeoutError,
)
from .types import StreamEvent

__all__ = ["AsyncTransport", "SyncTransport", "Timeouts"]

MAX_RETRY_WAIT = 30.0
OnHeaders = Callable[[Iterable[tuple[str, str]]], None]


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Time limits in seconds. ``read`` bounds a non-streamed answer; ``chunk`` bounds the wait for each
    stream chunk (the first one included, so it also bounds time to first token)."""

    connect: float = 10.0
    read: float = 600.0
    chunk: float = 120.0
    write: float = 60.0
    pool: float = 60.0

    @classmethod
    def coerce(cls, value: float | Timeouts | httpx.Timeout | None) -> Timeouts:
        if value is None:
            return cls()
        if isinstance(value, Timeouts):
            return value
        if isinstance(value, httpx.Timeout):
            d = cls()
            return cls(
                value.connect or d.connect,
                value.read or d.read,
                value.read or d.chunk,
                value.write or d.write,
                value.pool or d.pool,
            )
        v = float(value)
        return cls(connect=min(v, 10.0), read=v, chunk=v, write=v, pool=v)

    def httpx(self, stream: bool) -> httpx.Timeout:
        return httpx.Timeout(
            connect=self.connect, read=self.chunk if stream else self.read, write=self.write, pool=self.pool
        )


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, StreamError):
        return False
    return bool(isinstance(exc, RateLimitError | EngineUnavailableError | TimeoutError))


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    import email.utils  # rare: only HTTP-date Retry-After values

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _wait(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    ra = getattr(exc, "retry_after", None)
    if isinstance(ra, int | float):
        return min(float(ra), MAX_RETRY_WAIT)
    return float(_tenacity().backoff(state))


class _Tenacity:
    """tenacity, imported on the first request rather than with the package (import time matters)."""

    def __init__(self) -> None:
        import tenacity

        self.Retrying = tenacity.Retrying
        self.AsyncRetrying = tenacity.AsyncRetrying
        self.retry_if_exception = tenacity.retry_if_exception
        self.stop_after_attempt = tenacity.stop_after_attempt
        self.backoff = tenacity.wait_exponential(multiplier=0.5, max=8.0) + tenacity.wait_random(0, 0.5)


_TENACITY: _Tenacity | None = None


def _tenacity() -> _Tenacity:
    global _TENACITY
    if _TENACITY is None:
        _TENACITY = _Tenacity()
    return _TENACITY


class _Base:
    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        timeouts: Timeouts,
        max_retries: int,
        parse_error: Callable[[int, bytes], EngineError],
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        max_stream_bytes: int = DEFAULT_MAX_STREAM_BYTES,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = headers
        self.timeouts = timeouts
        self._t_plain = timeouts.httpx(stream=False)
        self._t_stream = timeouts.httpx(stream=True)
        self.max_retries = max_retries
        self._parse_error = parse_error
        self._max_event = max_event_bytes
        self._max_stream = max_stream_bytes
        self.on_retry: Callable[[BaseException], None] | None = None

    def __repr__(self) -> str:  # never the headers: they hold the API key
        return f"{type(self).__name__}({redact_url(self.base_url)!r})"

    def _url(self, path: str) -> str:
        return self.base_url + path

    def _with(self, headers: Mapping[str, str] | None) -> dict[str, str]:
        """The client's headers plus a request's own (a router's session header or cookie)."""
        return self._headers if not headers else {**self._headers, **headers}

    def _status_error(self, response: httpx.Response, body: bytes) -> EngineError:
        err = self._parse_error(response.status_code, body)
        err.retry_after = parse_retry_after(response.headers)
        return err

    def _transport_error(self, exc: httpx.HTTPError, what: str) -> EngineError:
        kind = type(exc).__name__
        if isinstance(exc, httpx.TimeoutException):
            err: EngineError = TimeoutError(f"{what}: {kind} after waiting ({redact_url(self.base_url)})")
        else:
            err = EngineUnavailableError(f"{what}: {kind}: {exc} ({redact_url(self.base_url)})")
        err.__cause__ = exc
        return err

    def _before_sleep(self, state: RetryCallState) -> None:
        if self.on_retry is not None and state.outcome is not None:
            exc = state.outcome.exception()
            if exc is not None:
                self.on_retry(exc)

    def _retry_kwargs(self, retries: int | None) -> dict[str, Any]:
        t = _tenacity()
        return {
            "stop": t.stop_after_attempt((self.max_retries if retries is None else retries) + 1),
            "wait": _wait,
            "retry": t.retry_if_exception(_retryable),
            "reraise": True,
            "before_sleep": self._before_sleep,
        }

    def _decode_json(self, response: httpx.Response) -> Any:
        body = response.content
        return loads(body) if body.strip() else None


class SyncTransport(_Base):
    def __init__(self, *args: Any, http_client: httpx.Client | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._owns = http_client is None
        self.client = http_client or httpx.Client(
            timeout=self._t_plain, limits=httpx.Limits(max_connections=None, max_keepalive_connections=64)
        )

    def close(self) -> None:
        if self._owns:
            self.client.close()

    def request(
        self,
        req: HttpRequest,
        *,
        retries: int | None = None,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
        on_headers: OnHeaders | None = None,
        measure: Measure | None = None,
    ) -> Any:
        """Send a non-streamed request; returns the decoded JSON body (None when empty). ``headers`` are
        added to the client's; ``on_headers`` sees each response's headers (e.g. a router's cookie);
        ``measure`` gets the answering attempt's response headers and clock readings."""
        t = httpx.Timeout(timeout) if timeout is not None else self._t_plain
        for attempt in _tenacity().Retrying(**self._retry_kwargs(retries)):
            with attempt:
                try:
                    start = perf_counter()
                    request = self.client.build_request(
                        req.method, self._url(req.path), json=req.json, headers=self._with(headers), timeout=t
                    )
                    response = self.client.send(request, stream=True)
                    first_byte = perf_counter()
                    try:
                        response.read()
                    finally:
                        response.close()
                except httpx.HTTPError as exc:
                    raise self._transport_error(exc, f"{req.method} {req.path}") from exc
                if measure is not None:
                    measure.start, measure.first_byte, measure.end = start, first_byte, perf_counter()
                    measure.headers = response.headers
                if on_headers is not None:
                    on_headers(response.headers.multi_items())
                if response.status_code >= 400:
                    raise self._status_error(response, response.content)
                return self._decode_json(response)
        raise AssertionError("unreachable")  # pragma: no cover

    def status(self, path: str, timeout: float) -> int:
        """Status code of a GET, no retries (health checks)."""
        response = self.client.get(self._url(path), headers=self._headers, timeout=timeout)
        return response.status_code

    def _open(
        self, req: HttpRequest, headers: Mapping[str, str] | None, on_headers: OnHeaders | None
    ) -> tuple[httpx.Response, float]:
        request = self.client.build_request(
            req.method,
            self._url(req.path),
            json=req.json,
            headers=self._with(headers),
            timeout=self._t_stream,
        )
        for attempt in _tenacity().Retrying(**self._retry_kwargs(None)):
            with attempt:
                try:
                    start = perf_counter()
                    response = self.client.send(request, stream=True)
                except httpx.HTTPError as exc:
                    raise self._transport_error(exc, f"{req.method} {req.path}") from exc
                if on_headers is not None:
                    on_headers(response.headers.multi_items())
                if response.status_code >= 400:
                    try:
                        body = response.read()
                    except httpx.HTTPError:
                        body = b""
                    finally:
                        response.close()
                    raise self._status_error(response, body)
                return response, start
        raise AssertionError("unreachable")  # pragma: no cover

    def stream(
        self,
        req: HttpRequest,
        decoder: StreamDecoder,
        *,
        headers: Mapping[str, str] | None = None,
        on_headers: OnHeaders | None = None,
    ) -> Iterator[StreamEvent]:
        """Yield typed events; raises typed errors, and StreamError (with partial output) on a cut stream.
        The :class:`End` carries the stream's timings (see :class:`StreamClock`)."""
        response, start = self._open(req, headers, on_headers)
        clock = StreamClock(start, perf_counter())
        stamps, seen = clock.stamps, 0
        sse = SSEDecoder(self._max_event, self._max_stream)
        try:
            chunks = response.iter_bytes()
            try:
                for chunk in chunks:
                    now = perf_counter()
                    for event in sse.feed(chunk):
                        out = decoder.feed(event)
                        if decoder.done:
                            clock.finish(out, decoder, response.headers, now, seen)
                            yield from out
                            _drain(chunks)
                            return
                        yield from out
                    produced = decoder.index + len(decoder.thoughts)
                    if produced != seen:
                        seen = produced
                        stamps.append(now)
            except httpx.TimeoutException as exc:
                raise _timeout(decoder, self.timeouts.chunk) from exc
            except httpx.HTTPError as exc:
                raise decoder.cut(f"the stream broke: {type(exc).__name__}: {exc}") from exc
            except MalformedResponseError as exc:
                raise decoder.cut(exc.message, exc) from exc
            out = decoder.eof()
            clock.finish(out, decoder, response.headers, perf_counter(), seen)
            yield from out
        finally:
            response.close()


class AsyncTransport(_Base):
    def __init__(self, *args: Any, http_client: httpx.AsyncClient | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._owns = http_client is None
        self.client = http_client or httpx.AsyncClient(
            timeout=self._t_plain, limits=httpx.Limits(max_connections=None, max_keepalive_connections=64)
        )

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
    ) -> Any:
        t = httpx.Timeout(timeout) if timeout is not None else self._t_plain
        async for attempt in _tenacity().AsyncRetrying(**self._retry_kwargs(retries)):
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
                    raise self._status_error(response, response.content)
                return self._decode_json(response)
        raise AssertionError("unreachable")  # pragma: no cover

    async def status(self, path: str, timeout: float) -> int:
        response = await self.client.get(self._url(path), headers=self._headers, timeout=timeout)
        return response.status_code

    async def _open(
        self, req: HttpRequest, headers: Mapping[str, str] | None, on_headers: OnHeaders | None
    ) -> tuple[httpx.Response, float]:
        request = self.client.build_request(
            req.method,
            self._url(req.path),
            json=req.json,
            headers=self._with(headers),
            timeout=self._t_stream,
        )
        async for attempt in _tenacity().AsyncRetrying(**self._retry_kwargs(None)):
            with attempt:
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
                    raise self._status_error(response, body)
                return response, start
        raise AssertionError("unreachable")  # pragma: no cover

    async def stream(
        self,
        req: HttpRequest,
        decoder: StreamDecoder,
        *,
        headers: Mapping[str, str] | None = None,
        on_headers: OnHeaders | None = None,
    ) -> AsyncIterator[StreamEvent]:
        response, start = await self._open(req, headers, on_headers)
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
                raise _timeout(decoder, self.timeouts.chunk) from exc
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


def _drain(chunks: Iterator[bytes]) -> None:
    try:
        for _ in itertools.islice(chunks, _DRAIN_CHUNKS):
            pass
    except httpx.HTTPError:
        pass


async def _adrain(chunks: AsyncIterator[bytes]) -> None:
    try:
        for _ in range(_DRAIN_CHUNKS):
            await chunks.__anext__()
    except (StopAsyncIteration, httpx.HTTPError):
        pass


def redact_url(url: str) -> str:
    """The URL without ``user:password@``, for reprs and messages."""
    scheme, sep, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    if "@" in host:
        host = "***@" + host.rsplit("@", 1)[1]
    return f"{scheme}{sep}{host}{slash}{path}" if sep else url


def _timeout(decoder: StreamDecoder, limit: float) -> StreamTimeoutError:
    return StreamTimeoutError(
        f"no stream chunk within {limit:g} s", engine=decoder.dialect.engine, **decoder.partial()
    )
