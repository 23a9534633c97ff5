"""What the transport's sync and async halves share: time limits, the retry policy and error mapping.

The loops themselves are in ``_async/transport.py`` (and its generated twin ``_sync/transport.py``). They know
HTTP, retries, time limits and SSE; they know no engine. Retries (tenacity, exponential backoff with
jitter, ``Retry-After`` honoured) cover connect errors, timeouts, 429 and 502/503/504, and only happen
before a response body is handed to the caller: a stream that breaks later raises :class:`StreamError`.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any

import httpx

if TYPE_CHECKING:
    from tenacity import RetryCallState

from ._sse import DEFAULT_MAX_EVENT_BYTES
from ._sse import DEFAULT_MAX_STREAM_BYTES
from .dialects.base import HttpRequest
from .dialects.base import StreamDecoder
from .dialects.base import loads
from .errors import EngineError
from .errors import EngineUnavailableError
from .errors import InvalidRequestError
from .errors import ModelLoadingError
from .errors import RateLimitError
from .errors import StreamError
from .errors import StreamTimeoutError
from .errors import TimeoutError
from .errors import UpstreamUnreachableError
from .errors import retyped

__all__ = [
    "HTTP_BACKENDS",
    "OnHeaders",
    "Refit",
    "Timeouts",
    "TransportBase",
    "async_http_client",
    "http_backend",
    "parse_retry_after",
    "redact_url",
    "stream_timeout",
    "sync_http_client",
    "unstick",
]

MAX_RETRY_WAIT = 30.0
OnHeaders = Callable[[Iterable[tuple[str, str]]], None]
Refit = Callable[[EngineError], HttpRequest | None]
"""Given a request's final error, one other request to send instead, or None (see ``ChatPlan.refit``)."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Time limits in seconds. ``read`` bounds a non-streamed answer; ``chunk`` bounds the wait for each
    stream chunk (the first one included, so it also bounds time to first token). ``load`` bounds the wait
    for a server that answers it is loading or switching its model (:class:`ModelLoadingError`), polled
    without using up ``max_retries``."""

    connect: float = 10.0
    read: float = 600.0
    chunk: float = 120.0
    write: float = 60.0
    pool: float = 60.0
    load: float = 300.0

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
    return bool(
        isinstance(exc, RateLimitError | EngineUnavailableError | TimeoutError | UpstreamUnreachableError)
    )


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


LOADING_POLL = 1.0
# A router that could not reach its pick answers at once; each retry lets it pick again (see ``unstick``).
# With two replicas and one dead, 10 free re-picks leave a 1 in 1024 chance of failing.
REROUTES = 10
REROUTE_WAIT = 0.05

# A router's or proxy's words for "I could not reach the engine I picked" (no engine saw the request):
# vllm-router 0.1.17 answers 500 "Request failed: error sending request for url (...)" while its health
# check has not yet dropped a dead worker (verified here); Envoy answers "upstream connect error or
# disconnect/reset before headers".
_UPSTREAM_UNREACHABLE = (b"error sending request for url", b"upstream connect error")


def _wait(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    ra = getattr(exc, "retry_after", None)
    if isinstance(ra, int | float):
        return min(float(ra), MAX_RETRY_WAIT)
    if isinstance(exc, ModelLoadingError):
        return LOADING_POLL
    if isinstance(exc, UpstreamUnreachableError):
        return REROUTE_WAIT
    if _stale_connection(exc) and state.attempt_number == 1:
        return 0.0  # a fresh connection, at once
    return float(tenacity_lib().backoff(state))


def _stale_connection(exc: BaseException | None) -> bool:
    """A pooled keep-alive connection the server had already closed: the request never reached it (httpcore:
    "Server disconnected without sending a response"), so sending it again on a new connection is safe."""
    cause = exc.__cause__ if isinstance(exc, EngineUnavailableError) else None
    return isinstance(cause, httpx.RemoteProtocolError) and "without sending a response" in str(cause)


class _Stop:
    """Stop after ``retries`` retries of faults. Neither a loading server's polls (until ``load`` seconds
    have passed since the first attempt), nor a router's first ``REROUTES`` re-picks, nor one resend after a
    stale pooled connection count as retries (so ``max_retries=0`` still survives a keep-alive race)."""

    def __init__(self, retries: int, load: float) -> None:
        self.retries = retries
        self.load = load
        self.faults = 0
        self.reroutes = 0
        self.resent = False

    def __call__(self, state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, ModelLoadingError):
            return (state.seconds_since_start or 0.0) + LOADING_POLL > self.load
        if not self.resent and _stale_connection(exc):
            self.resent = True
            return False
        if isinstance(exc, UpstreamUnreachableError) and self.reroutes < REROUTES:
            self.reroutes += 1
            return False
        self.faults += 1
        return self.faults > self.retries


class _Tenacity:
    """tenacity, imported on the first request rather than with the package (import time matters)."""

    def __init__(self) -> None:
        import tenacity

        self.Retrying = tenacity.Retrying
        self.AsyncRetrying = tenacity.AsyncRetrying
        self.retry_if_exception = tenacity.retry_if_exception
        self.backoff = tenacity.wait_exponential(multiplier=0.5, max=8.0) + tenacity.wait_random(0, 0.5)


_TENACITY: _Tenacity | None = None


def tenacity_lib() -> _Tenacity:
    global _TENACITY
    if _TENACITY is None:
        _TENACITY = _Tenacity()
    return _TENACITY


class TransportBase:
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
        """The typed error for an HTTP error answer (a router's "could not reach the engine" included)."""
        err = self._parse_error(response.status_code, body)
        if response.status_code in (500, 502) and any(m in body for m in _UPSTREAM_UNREACHABLE):
            err = retyped(err, UpstreamUnreachableError, err.message)
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
        t = tenacity_lib()
        return {
            "stop": _Stop(self.max_retries if retries is None else retries, self.timeouts.load),
            "wait": _wait,
            "retry": t.retry_if_exception(_retryable),
            "reraise": True,
            "before_sleep": self._before_sleep,
        }

    def _decode_json(self, response: httpx.Response, text: bool = False) -> Any:
        """The JSON body (None when empty); with ``text``, a body that is not JSON comes back as a string."""
        body = response.content
        if text and body.lstrip()[:1] not in (b"{", b"["):
            return response.text
        return loads(body) if body.strip() else None


HTTP_BACKENDS = ("httpx", "aiohttp")
BACKEND_ENV = "ENGINE_CLIENTS_HTTP_BACKEND"
# No cap on connections: a pool of replicas or a thousand concurrent streams must not queue behind a
# library default (httpx's and aiohttp's are 100).
_LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=64)


def http_backend(given: str | None) -> str:
    """The async HTTP stack: ``given``, else ``$ENGINE_CLIENTS_HTTP_BACKEND``, else ``"httpx"``."""
    backend = given or os.environ.get(BACKEND_ENV) or "httpx"
    if backend not in HTTP_BACKENDS:
        raise InvalidRequestError(f"http_backend must be one of {', '.join(HTTP_BACKENDS)}, not {backend!r}")
    return backend


def async_http_client(backend: str, timeout: httpx.Timeout) -> httpx.AsyncClient:
    """An httpx client on ``backend``: httpx's own connection pool, or aiohttp's (``pip install
    llm-engine-clients[aiohttp]``: httpx-aiohttp, the transport openai-python and anthropic-sdk ship as
    their fast async path). Timeouts, retries, SSE and errors stay the same: only the socket layer changes."""
    if backend == "aiohttp":
        try:
            from ._aiohttp import aiohttp_client
        except ImportError as exc:
            raise InvalidRequestError(
                "http_backend='aiohttp' needs the aiohttp extra: pip install 'llm-engine-clients[aiohttp]'"
            ) from exc
        return aiohttp_client(timeout)
    return httpx.AsyncClient(timeout=timeout, limits=_LIMITS)


def sync_http_client(backend: str, timeout: httpx.Timeout) -> httpx.Client:
    """The blocking client: httpx's pool whatever the backend (the aiohttp path is async only)."""
    return httpx.Client(timeout=timeout, limits=_LIMITS)


def unstick(err: EngineError, headers: Mapping[str, str] | None) -> Mapping[str, str] | None:
    """The request's own headers for the next attempt. Once a router could not reach the replica a session's
    sticky route names, the route (header or cookie) is left out: affinity is a hint for the cache, not a
    reason to fail. A fresh ``x-request-id`` makes a hashing router pick anew on each attempt (vllm-router's
    consistent_hash keys on it when no session header is sent, and otherwise on the unchanged body)."""
    if not isinstance(err, UpstreamUnreachableError):
        return headers
    return {"x-request-id": uuid.uuid4().hex}


def redact_url(url: str) -> str:
    """The URL without ``user:password@``, for reprs and messages."""
    scheme, sep, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    if "@" in host:
        host = "***@" + host.rsplit("@", 1)[1]
    return f"{scheme}{sep}{host}{slash}{path}" if sep else url


def stream_timeout(decoder: StreamDecoder, limit: float) -> StreamTimeoutError:
    return StreamTimeoutError(
        f"no stream chunk within {limit:g} s", engine=decoder.dialect.engine, **decoder.partial()
    )
