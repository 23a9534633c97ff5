"""``EnginePool``: several replicas of one model behind the API of a single client.

Routing sends each request to the replica with the fewest requests in flight (ties rotate), optionally
keeping a session on one replica. Each replica has a concurrency limit, with a bounded wait queue in front
of the pool, and a circuit breaker: ``failure_threshold`` consecutive faults (connection refused, timeouts,
5xx, broken streams) open it, and after ``cooldown`` seconds one trial request is let through (half-open);
its success closes the breaker, its failure opens it again. Health checks (``check_health()``, or every
``health_interval`` seconds in a background thread) eject replicas that do not answer ready (their breaker
opens), and re-admit them as soon as they do; an ejected replica also gets a trial after ``cooldown``.

A request that fails with a connection error, a timeout, a 5xx or a 429 *before its first token* is sent to
another replica (each replica's own client has already retried it ``max_retries`` times); a stream that has
yielded a ``Token`` or ``ToolCallDelta`` is never repeated elsewhere: its :class:`StreamError` (with the
partial text) reaches the caller, so output is never duplicated.

The pool knows no engine: session affinity asks each replica's client for its
:meth:`~engine_clients.BaseClient.affinity_params` (llama.cpp pins a slot and its prompt cache).
State is guarded by one ``threading.Lock`` held only for bookkeeping, so one pool serves threads and
event loops at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import threading
import time
import zlib
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from typing_extensions import Self

from ._clients import BaseClient
from ._detect import PROBE_TIMEOUT, EngineDetectionError, aconnect, client_class, connect
from .errors import (
    EngineError,
    EngineUnavailableError,
    InternalServerError,
    InvalidRequestError,
    MalformedResponseError,
    RateLimitError,
    StreamError,
    TimeoutError,
)
from .types import (
    Completion,
    End,
    EngineInfo,
    HealthStatus,
    Started,
    StreamEvent,
    Token,
    TokenInfo,
    ToolCallDelta,
    Usage,
)

__all__ = ["BreakerState", "EnginePool", "Percentiles", "PoolExhaustedError", "PoolStats", "ReplicaStats"]

BreakerState = Literal["closed", "open", "half_open"]

# Errors that say the replica (not the request) is at fault: counted by the breaker, and failed over.
_FAULTS: tuple[type[EngineError], ...] = (
    EngineUnavailableError,
    TimeoutError,
    InternalServerError,
    MalformedResponseError,
    StreamError,
    EngineDetectionError,
)
# Also failed over (before the first token), but not counted against the replica: it is alive, just busy.
_FAILOVER: tuple[type[EngineError], ...] = (*_FAULTS, RateLimitError)


class PoolExhaustedError(RateLimitError):
    """Every usable replica is at its concurrency limit and the pool's wait queue is full, or the wait for a
    free slot outlasted ``queue_timeout``. A :class:`RateLimitError`: back off and try again."""


# ---- statistics -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Percentiles:
    """Nearest-rank percentiles in seconds over the last ``stats_window`` samples (None when empty)."""

    count: int
    p50: float | None
    p90: float | None
    p99: float | None

    @classmethod
    def of(cls, samples: Sequence[float]) -> Percentiles:
        if not samples:
            return cls(0, None, None, None)
        s = sorted(samples)
        n = len(s)

        def rank(p: float) -> float:
            return s[max(0, math.ceil(p / 100 * n) - 1)]

        return cls(n, rank(50), rank(90), rank(99))


@dataclass(frozen=True, slots=True)
class ReplicaStats:
    """One replica. ``requests`` counts attempts routed to it (a failed-over request counts on each replica
    it tried); ``retries`` the retries its client made before giving up or succeeding; ``latency`` is each
    successful attempt's duration, ``ttft`` a stream's time to its first token."""

    url: str
    engine: str | None
    state: BreakerState
    health: HealthStatus | None
    requests: int
    successes: int
    failures: int
    retries: int
    in_flight: int
    consecutive_failures: int
    tokens_in: int
    tokens_out: int
    latency: Percentiles
    ttft: Percentiles


@dataclass(frozen=True, slots=True)
class PoolStats:
    """The whole pool, as callers see it: ``requests`` are calls made on the pool, ``failures`` errors that
    reached a caller, ``failovers`` attempts moved to another replica, ``rejected`` requests refused by a full
    queue, ``cancelled`` streams closed early or tasks cancelled; ``in_flight`` counts calls in progress,
    the ``queued`` ones included. ``latency``/``ttft`` are end to end
    (queueing and failover included); tokens come from ``usage``."""

    requests: int
    successes: int
    failures: int
    cancelled: int
    failovers: int
    rejected: int
    retries: int
    in_flight: int
    queued: int
    tokens_in: int
    tokens_out: int
    latency: Percentiles
    ttft: Percentiles
    replicas: tuple[ReplicaStats, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---- replicas -------------------------------------------------------------------------------------------


class _Replica:
    def __init__(self, index: int, url: str, client: BaseClient | None, owned: bool, window: int) -> None:
        self.index = index
        self.url = url
        self.client = client
        self.owned = owned
        self.state: BreakerState = "closed"
        self.failures_in_row = 0
        self.opened_at = 0.0
        self.probing = False  # the half-open trial request is in flight
        self.ejected = False  # opened by a failed health check (re-admitted by a passing one)
        self.health: HealthStatus | None = None
        self.in_flight = 0
        self.requests = self.successes = self.failures = self.retries = 0
        self.tokens_in = self.tokens_out = 0
        self.latency: deque[float] = deque(maxlen=window)
        self.ttft: deque[float] = deque(maxlen=window)
        self.hooked: set[int] = set()  # ids of transports whose on_retry counts into ``retries``

    def snapshot(self) -> ReplicaStats:
        return ReplicaStats(
            url=_redact(self.url),
            engine=self.client.engine if self.client is not None else None,
            state=self.state,
            health=self.health,
            requests=self.requests,
            successes=self.successes,
            failures=self.failures,
            retries=self.retries,
            in_flight=self.in_flight,
            consecutive_failures=self.failures_in_row,
            tokens_in=self.tokens_in,
            tokens_out=self.tokens_out,
            latency=Percentiles.of(self.latency),
            ttft=Percentiles.of(self.ttft),
        )


class _NoReplica(Exception):
    def __init__(self, retry_after: float | None) -> None:
        self.retry_after = retry_after


def _redact(url: str) -> str:
    """The URL without any ``user:password@`` part (never shown in reprs or errors)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


_Outcome = Literal["ok", "answered", "fault", "busy", "cancel"]


def _caller_outcome(exc: BaseException) -> bool | None:
    """False: an error reaches the caller; None: the caller went away (closed stream, cancelled task)."""
    return None if isinstance(exc, GeneratorExit | asyncio.CancelledError | KeyboardInterrupt) else False


def _outcome(exc: BaseException) -> _Outcome:
    if isinstance(exc, _FAULTS):
        return "fault"
    if isinstance(exc, RateLimitError):
        return "busy"
    if isinstance(exc, InvalidRequestError):
        return "cancel"  # refused before sending: says nothing about the replica
    if isinstance(exc, EngineError):
        return "answered"  # the replica answered (4xx): it is alive
    return "cancel"


class EnginePool:
    """Replicas of one model behind the API of a single client (``chat``/``achat``, the streams,
    ``generate``, ``health``, ``info``, ``tokenize``, ``close``; sync and async).

    ``replicas``: clients, base URLs, or one comma-separated string of URLs. URLs become clients of
    ``engine`` (``"tgi"``, ``"vllm"``, ``"llamacpp"``), or of the engine detected on first use (see
    :func:`connect`), with ``client_kwargs`` (``api_key``, ``model``, ``timeout``, ``max_retries``...). The
    pool closes the clients it built; clients passed in are left to their owner.

    ``max_concurrency``: requests in flight per replica (None: unlimited). When every usable replica is full,
    up to ``max_queue`` requests wait (each at most ``queue_timeout`` s) for a slot; beyond that
    :class:`PoolExhaustedError`. ``failure_threshold`` consecutive faults open a replica's breaker for
    ``cooldown`` s. ``max_attempts``: replicas one request may try (default: all). ``health_interval``:
    seconds between background health checks (None: only when ``check_health``/``health`` is called).
    ``session_slots``: slots per replica to spread sessions over (llama.cpp: its ``--parallel``); without it
    llama.cpp gets ``cache_prompt`` and picks the slot itself.
    """

    def __init__(
        self,
        replicas: Sequence[str | BaseClient] | str,
        *,
        engine: str | None = None,
        max_concurrency: int | None = None,
        max_queue: int = 1024,
        queue_timeout: float = 60.0,
        failure_threshold: int = 5,
        cooldown: float = 30.0,
        max_attempts: int | None = None,
        health_interval: float | None = None,
        session_slots: int | None = None,
        max_sessions: int = 10_000,
        stats_window: int = 2048,
        probe_timeout: float = PROBE_TIMEOUT,
        **client_kwargs: Any,
    ) -> None:
        if isinstance(replicas, str):
            replicas = [u.strip() for u in replicas.split(",") if u.strip()]
        if not replicas:
            raise InvalidRequestError("EnginePool needs at least one replica")
        if max_concurrency is not None and max_concurrency < 1:
            raise InvalidRequestError("max_concurrency must be at least 1 (or None for no limit)")
        if failure_threshold < 1:
            raise InvalidRequestError("failure_threshold must be at least 1")
        if engine is not None:
            client_class(engine)  # validate early
        self.engine_name = engine
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self.queue_timeout = queue_timeout
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self.max_attempts = max_attempts
        self.health_interval = health_interval
        self.session_slots = session_slots
        self.max_sessions = max_sessions
        self.probe_timeout = probe_timeout
        self._client_kwargs = client_kwargs
        self._replicas: list[_Replica] = []
        for i, rep in enumerate(replicas):
            if isinstance(rep, BaseClient):
                self._replicas.append(_Replica(i, rep.base_url, rep, False, stats_window))
            elif isinstance(rep, str):
                url = rep.strip().rstrip("/")
                client = client_class(engine)(url, **client_kwargs) if engine is not None else None
                self._replicas.append(_Replica(i, url, client, True, stats_window))
            else:
                raise InvalidRequestError(f"a replica must be a URL or a client, not {type(rep).__name__}")
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._waiting = 0
        self._rr = 0
        self._sessions: OrderedDict[str, int] = OrderedDict()
        self._requests = self._successes = self._failures = self._failovers = self._rejected = 0
        self._cancelled = 0
        self._in_flight = 0
        self._latency: deque[float] = deque(maxlen=stats_window)
        self._ttft: deque[float] = deque(maxlen=stats_window)
        self._health_thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._closed = False

    @classmethod
    def from_env(cls, engine: str, **kwargs: Any) -> EnginePool:
        """Replicas from ``<ENGINE>_BASE_URL`` (comma-separated: ``TGI_BASE_URL``, ``VLLM_BASE_URL``,
        ``LLAMACPP_BASE_URL``); the clients read ``<ENGINE>_API_KEY`` themselves."""
        var = f"{client_class(engine).env_prefix}_BASE_URL"
        urls = [u.strip() for u in os.environ.get(var, "").split(",") if u.strip()]
        if not urls:
            raise InvalidRequestError(f"{var} is not set (a comma-separated list of replica URLs)")
        return cls(urls, engine=engine, **kwargs)

    # -- introspection --
    @property
    def replicas(self) -> list[str]:
        return [_redact(r.url) for r in self._replicas]

    @property
    def clients(self) -> list[BaseClient | None]:
        """Each replica's client (None until an undetected replica is first used)."""
        return [r.client for r in self._replicas]

    @property
    def engine(self) -> str | None:
        """The engine every resolved replica runs, or None (not detected yet, or mixed)."""
        engines = {r.client.engine for r in self._replicas if r.client is not None}
        if len(engines) == 1:
            return engines.pop()
        return self.engine_name if not engines else None

    def __repr__(self) -> str:
        return f"EnginePool({self.replicas!r}, engine={self.engine!r})"

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("EnginePool holds open connections and cannot be pickled")

    def stats(self) -> PoolStats:
        """A consistent snapshot of the pool's and each replica's counters and percentiles."""
        with self._lock:
            reps = tuple(r.snapshot() for r in self._replicas)
            return PoolStats(
                requests=self._requests,
                successes=self._successes,
                failures=self._failures,
                cancelled=self._cancelled,
                failovers=self._failovers,
                rejected=self._rejected,
                retries=sum(r.retries for r in reps),
                in_flight=self._in_flight,
                queued=self._waiting,
                tokens_in=sum(r.tokens_in for r in reps),
                tokens_out=sum(r.tokens_out for r in reps),
                latency=Percentiles.of(self._latency),
                ttft=Percentiles.of(self._ttft),
                replicas=reps,
            )

    # -- routing (all under self._lock) --
    def _room(self, r: _Replica) -> bool:
        return self.max_concurrency is None or r.in_flight < self.max_concurrency

    def _pick(self, exclude: set[int], session_id: str | None) -> _Replica | None:
        """The replica for the next attempt (its slot taken), None when all usable ones are full;
        raises _NoReplica when none is usable at all."""
        now = time.monotonic()
        ready: list[_Replica] = []
        trial: list[_Replica] = []
        for r in self._replicas:
            if r.index in exclude:
                continue
            if r.state == "closed":
                ready.append(r)
            elif r.state == "open" and not r.probing and now - r.opened_at >= self.cooldown:
                trial.append(r)
        if not ready and not trial:
            waits = [
                max(0.0, self.cooldown - (now - r.opened_at))
                for r in self._replicas
                if r.index not in exclude and r.state != "closed"
            ]
            raise _NoReplica(min(waits) if waits else None)
        chosen: _Replica | None = None
        remap = session_id is not None
        sticky = self._sessions.get(session_id) if session_id is not None else None
        if sticky is not None:
            r = self._replicas[sticky]
            if r in ready or r in trial:
                if self._room(r):
                    chosen = r
                else:  # full: serve elsewhere this once, keep the session where its cache is
                    remap = False
        if chosen is None:
            chosen = next((r for r in trial if self._room(r)), None)
        if chosen is None:
            n = len(self._replicas)
            rr = self._rr
            candidates = [r for r in ready if self._room(r)]
            if not candidates:
                return None
            chosen = min(candidates, key=lambda r: (r.in_flight, (r.index - rr) % n))
            self._rr = (rr + 1) % n
        if chosen.state == "open":
            chosen.state = "half_open"
            chosen.probing = True
        chosen.in_flight += 1
        chosen.requests += 1
        if remap and session_id is not None:
            self._sessions[session_id] = chosen.index
            self._sessions.move_to_end(session_id)
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
        return chosen

    def _release(
        self,
        r: _Replica,
        outcome: _Outcome,
        t0: float,
        usage: Usage | None = None,
        ttft: float | None = None,
    ) -> None:
        now = time.monotonic()
        with self._lock:
            r.in_flight -= 1
            if outcome == "ok":
                r.successes += 1
                r.latency.append(now - t0)
                if ttft is not None:
                    r.ttft.append(ttft)
                if usage is not None:
                    r.tokens_in += usage.prompt_tokens
                    r.tokens_out += usage.completion_tokens
            elif outcome != "cancel":
                r.failures += 1
            if outcome in ("ok", "answered"):  # it answered: the best health check there is
                r.failures_in_row = 0
                r.state = "closed"
                r.ejected = False
                r.probing = False
            elif outcome == "fault":
                r.failures_in_row += 1
                if r.state == "half_open" or r.failures_in_row >= self.failure_threshold:
                    r.state = "open"
                    r.opened_at = now
                r.probing = False
            elif r.state == "half_open":  # trial ended without a verdict (busy, cancelled): try again
                r.state = "open"
                r.probing = False
            self._notify()

    def _notify(self) -> None:
        self._cond.notify_all()
        if self._async_waiters:
            waiters, self._async_waiters = self._async_waiters, []
            for loop, fut in waiters:
                with contextlib.suppress(RuntimeError):  # that loop is closed
                    loop.call_soon_threadsafe(_wake, fut)

    def _begin(self) -> float:
        with self._lock:
            self._requests += 1
            self._in_flight += 1
        if self.health_interval is not None and self._health_thread is None:
            self._start_health_thread()
        return time.monotonic()

    def _end(self, ok: bool | None, start: float, ttft: float | None = None, failovers: int = 0) -> None:
        """``ok``: True success, False an error reached the caller, None the caller gave up (cancelled)."""
        with self._lock:
            self._in_flight -= 1
            self._failovers += failovers
            if ok is None:
                self._cancelled += 1
            elif ok:
                self._successes += 1
                self._latency.append(time.monotonic() - start)
                if ttft is not None:
                    self._ttft.append(ttft)
            else:
                self._failures += 1

    def _no_replica(self, err: _NoReplica, last: EngineError | None) -> EngineError:
        if last is not None:
            return last
        return EngineUnavailableError(
            f"no usable replica among {len(self._replicas)} (circuit open or failed health checks)",
            engine=self.engine,
            retry_after=err.retry_after,
        )

    def _acquire(self, exclude: set[int], session_id: str | None) -> _Replica:
        deadline = time.monotonic() + self.queue_timeout
        queued = False
        with self._cond:
            try:
                while True:
                    r = self._pick(exclude, session_id)
                    if r is not None:
                        return r
                    if not queued:
                        if self._waiting >= self.max_queue:
                            raise self._full()
                        self._waiting += 1
                        queued = True
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise self._timed_out()
                    self._cond.wait(min(remaining, 1.0))  # wake now and then: cool-downs end silently
            finally:
                if queued:
                    self._waiting -= 1

    async def _aacquire(self, exclude: set[int], session_id: str | None) -> _Replica:
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + self.queue_timeout
        queued = False
        try:
            while True:
                with self._lock:
                    r = self._pick(exclude, session_id)
                    if r is not None:
                        return r
                    if not queued:
                        if self._waiting >= self.max_queue:
                            raise self._full()
                        self._waiting += 1
                        queued = True
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise self._timed_out()
                    fut: asyncio.Future[None] = loop.create_future()
                    self._async_waiters.append((loop, fut))
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(fut, min(remaining, 1.0))
        finally:
            if queued:
                with self._lock:
                    self._waiting -= 1

    def _full(self) -> PoolExhaustedError:  # under the lock
        self._rejected += 1
        return PoolExhaustedError(
            f"all replicas are at their limit of {self.max_concurrency} requests and "
            f"{self._waiting} requests already wait (max_queue={self.max_queue})",
            engine=self.engine_name,
        )

    def _timed_out(self) -> PoolExhaustedError:  # under the lock
        self._rejected += 1
        return PoolExhaustedError(
            f"no replica had a free slot within queue_timeout={self.queue_timeout:g} s",
            engine=self.engine_name,
        )

    # -- clients: built from URLs on first use when the engine must be detected --
    def _count_retries(self, r: _Replica, transport: Any) -> None:
        if id(transport) in r.hooked:
            return
        prev = transport.on_retry

        def on_retry(exc: BaseException) -> None:
            with self._lock:
                r.retries += 1
            if prev is not None:
                prev(exc)

        transport.on_retry = on_retry
        r.hooked.add(id(transport))

    def _adopt(self, r: _Replica, client: BaseClient) -> BaseClient:
        with self._lock:
            if r.client is None:
                r.client = client
                return client
        client.close()  # lost a race with another thread: keep the first
        return r.client

    def _client(self, r: _Replica) -> BaseClient:
        client = r.client
        if client is None:
            client = self._adopt(r, connect(r.url, probe_timeout=self.probe_timeout, **self._client_kwargs))
        self._count_retries(r, client.sync_transport)
        return client

    async def _aclient(self, r: _Replica) -> BaseClient:
        client = r.client
        if client is None:
            client = self._adopt(
                r, await aconnect(r.url, probe_timeout=self.probe_timeout, **self._client_kwargs)
            )
        self._count_retries(r, client.async_transport)
        return client

    def _kwargs(self, client: BaseClient, kwargs: dict[str, Any], session_id: str | None) -> dict[str, Any]:
        if session_id is None:
            return kwargs
        slot = zlib.crc32(session_id.encode()) % self.session_slots if self.session_slots else -1
        return {**client.affinity_params(slot), **kwargs}

    def _limit(self) -> int:
        return self.max_attempts or len(self._replicas)

    # -- the request loops: one sync, one async; the stream loops never fail over after output --
    def _call(self, op: str, args: tuple[Any, ...], kwargs: dict[str, Any], session_id: str | None) -> Any:
        start = self._begin()
        tried: set[int] = set()
        last: EngineError | None = None
        try:
            while True:
                try:
                    r = self._acquire(tried, session_id)
                except _NoReplica as exc:
                    err = self._no_replica(exc, last)
                    raise err from err.__cause__  # the last replica's own error, its cause kept
                t0 = time.monotonic()
                try:
                    client = self._client(r)
                    result = getattr(client, op)(*args, **self._kwargs(client, kwargs, session_id))
                except BaseException as exc:
                    outcome = _outcome(exc)
                    self._release(r, outcome, t0)
                    if isinstance(exc, _FAILOVER) and len(tried) + 1 < self._limit():
                        tried.add(r.index)
                        last = exc
                        continue
                    raise
                self._release(r, "ok", t0, getattr(result, "usage", None))
                self._end(True, start, failovers=len(tried))
                return result
        except BaseException as exc:
            self._end(_caller_outcome(exc), start, failovers=len(tried))
            raise

    async def _acall(
        self, op: str, args: tuple[Any, ...], kwargs: dict[str, Any], session_id: str | None
    ) -> Any:
        start = self._begin()
        tried: set[int] = set()
        last: EngineError | None = None
        try:
            while True:
                try:
                    r = await self._aacquire(tried, session_id)
                except _NoReplica as exc:
                    err = self._no_replica(exc, last)
                    raise err from err.__cause__  # the last replica's own error, its cause kept
                t0 = time.monotonic()
                try:
                    client = await self._aclient(r)
                    result = await getattr(client, op)(*args, **self._kwargs(client, kwargs, session_id))
                except BaseException as exc:
                    self._release(r, _outcome(exc), t0)
                    if isinstance(exc, _FAILOVER) and len(tried) + 1 < self._limit():
                        tried.add(r.index)
                        last = exc
                        continue
                    raise
                self._release(r, "ok", t0, getattr(result, "usage", None))
                self._end(True, start, failovers=len(tried))
                return result
        except BaseException as exc:
            self._end(_caller_outcome(exc), start, failovers=len(tried))
            raise

    def _stream(
        self, op: str, args: tuple[Any, ...], kwargs: dict[str, Any], session_id: str | None
    ) -> Iterator[StreamEvent]:
        start = self._begin()
        tried: set[int] = set()
        last: EngineError | None = None
        started = False  # a Started event went out: a failed-over stream's own Started is dropped
        first: float | None = None  # when the first Token/ToolCallDelta went out: no failover after it
        try:
            while True:
                try:
                    r = self._acquire(tried, session_id)
                except _NoReplica as exc:
                    err = self._no_replica(exc, last)
                    raise err from err.__cause__  # the last replica's own error, its cause kept
                t0 = time.monotonic()
                usage: Usage | None = None
                inner: Any = None  # the client's generator
                try:
                    client = self._client(r)
                    inner = getattr(client, op)(*args, **self._kwargs(client, kwargs, session_id))
                    for event in inner:
                        if isinstance(event, Started):
                            if started:
                                continue
                            started = True
                        elif first is None and isinstance(event, Token | ToolCallDelta):
                            first = time.monotonic()
                        elif isinstance(event, End):
                            usage = event.completion.usage
                        yield event
                except BaseException as exc:
                    self._release(r, _outcome(exc), t0)
                    if first is None and isinstance(exc, _FAILOVER) and len(tried) + 1 < self._limit():
                        tried.add(r.index)
                        last = exc
                        continue
                    raise
                finally:
                    if inner is not None:
                        inner.close()
                self._release(r, "ok", t0, usage, None if first is None else first - t0)
                self._end(True, start, None if first is None else first - start, len(tried))
                return
        except BaseException as exc:
            self._end(_caller_outcome(exc), start, failovers=len(tried))
            raise

    async def _astream(
        self, op: str, args: tuple[Any, ...], kwargs: dict[str, Any], session_id: str | None
    ) -> AsyncIterator[StreamEvent]:
        start = self._begin()
        tried: set[int] = set()
        last: EngineError | None = None
        started = False
        first: float | None = None
        try:
            while True:
                try:
                    r = await self._aacquire(tried, session_id)
                except _NoReplica as exc:
                    err = self._no_replica(exc, last)
                    raise err from err.__cause__  # the last replica's own error, its cause kept
                t0 = time.monotonic()
                usage: Usage | None = None
                inner: Any = None
                try:
                    client = await self._aclient(r)
                    inner = getattr(client, op)(*args, **self._kwargs(client, kwargs, session_id))
                    async for event in inner:
                        if isinstance(event, Started):
                            if started:
                                continue
                            started = True
                        elif first is None and isinstance(event, Token | ToolCallDelta):
                            first = time.monotonic()
                        elif isinstance(event, End):
                            usage = event.completion.usage
                        yield event
                except BaseException as exc:
                    self._release(r, _outcome(exc), t0)
                    if first is None and isinstance(exc, _FAILOVER) and len(tried) + 1 < self._limit():
                        tried.add(r.index)
                        last = exc
                        continue
                    raise
                finally:
                    if inner is not None:
                        await inner.aclose()
                self._release(r, "ok", t0, usage, None if first is None else first - t0)
                self._end(True, start, None if first is None else first - start, len(tried))
                return
        except BaseException as exc:
            self._end(_caller_outcome(exc), start, failovers=len(tried))
            raise

    # -- health --
    def _apply_health(self, r: _Replica, status: HealthStatus) -> None:
        with self._lock:
            r.health = status
            if status is HealthStatus.HEALTHY:
                if r.ejected:  # re-admit what health checks ejected
                    r.ejected = False
                    r.state = "closed"
                    r.failures_in_row = 0
                elif r.state == "open":  # opened by faults: its trial may come now
                    r.opened_at = -math.inf
            elif not r.ejected:
                r.ejected = True
                if r.state != "half_open":
                    r.state = "open"
                r.opened_at = time.monotonic()
            self._notify()

    def check_health(self) -> dict[str, HealthStatus]:
        """Ask every replica's health route now; eject those not ready, re-admit those that are."""
        out: dict[str, HealthStatus] = {}
        for r in self._replicas:
            try:
                status = self._client(r).health()
            except EngineError:
                status = HealthStatus.UNHEALTHY
            self._apply_health(r, status)
            out[_redact(r.url)] = status
        return out

    async def acheck_health(self) -> dict[str, HealthStatus]:
        async def one(r: _Replica) -> HealthStatus:
            try:
                return await (await self._aclient(r)).ahealth()
            except EngineError:
                return HealthStatus.UNHEALTHY

        statuses = await asyncio.gather(*(one(r) for r in self._replicas))
        for r, status in zip(self._replicas, statuses, strict=True):
            self._apply_health(r, status)
        return {_redact(r.url): s for r, s in zip(self._replicas, statuses, strict=True)}

    @staticmethod
    def _overall(statuses: Sequence[HealthStatus]) -> HealthStatus:
        if all(s is HealthStatus.HEALTHY for s in statuses):
            return HealthStatus.HEALTHY
        if all(s is HealthStatus.UNHEALTHY for s in statuses):
            return HealthStatus.UNHEALTHY
        return HealthStatus.DEGRADED

    def health(self) -> HealthStatus:
        """HEALTHY when every replica is, UNHEALTHY when none answers, else DEGRADED (checks all replicas)."""
        return self._overall(list(self.check_health().values()))

    async def ahealth(self) -> HealthStatus:
        return self._overall(list((await self.acheck_health()).values()))

    def _start_health_thread(self) -> None:
        with self._lock:
            if self._health_thread is not None or self._closed:
                return
            self._health_thread = threading.Thread(
                target=self._health_loop, name="EnginePool-health", daemon=True
            )
        self._health_thread.start()

    def _health_loop(self) -> None:
        assert self.health_interval is not None
        while not self._stop.wait(self.health_interval):
            with contextlib.suppress(Exception):
                self.check_health()

    # -- the client API --
    def chat(self, messages: Any, *, session_id: str | None = None, **kwargs: Any) -> Completion:
        """:meth:`BaseClient.chat` on the least busy replica (or the session's); fails over before output."""
        result: Completion = self._call("chat", (messages,), kwargs, session_id)
        return result

    def chat_stream(
        self, messages: Any, *, session_id: str | None = None, **kwargs: Any
    ) -> Iterator[StreamEvent]:
        return self._stream("chat_stream", (messages,), kwargs, session_id)

    def generate(self, prompt: str, *, session_id: str | None = None, **kwargs: Any) -> Completion:
        result: Completion = self._call("generate", (prompt,), kwargs, session_id)
        return result

    def generate_stream(
        self, prompt: str, *, session_id: str | None = None, **kwargs: Any
    ) -> Iterator[StreamEvent]:
        return self._stream("generate_stream", (prompt,), kwargs, session_id)

    def info(self) -> EngineInfo:
        result: EngineInfo = self._call("info", (), {}, None)
        return result

    def tokenize(self, text: str, *, add_special_tokens: bool = True) -> list[TokenInfo]:
        result: list[TokenInfo] = self._call(
            "tokenize", (text,), {"add_special_tokens": add_special_tokens}, None
        )
        return result

    async def achat(self, messages: Any, *, session_id: str | None = None, **kwargs: Any) -> Completion:
        result: Completion = await self._acall("achat", (messages,), kwargs, session_id)
        return result

    def achat_stream(
        self, messages: Any, *, session_id: str | None = None, **kwargs: Any
    ) -> AsyncIterator[StreamEvent]:
        return self._astream("achat_stream", (messages,), kwargs, session_id)

    async def agenerate(self, prompt: str, *, session_id: str | None = None, **kwargs: Any) -> Completion:
        result: Completion = await self._acall("agenerate", (prompt,), kwargs, session_id)
        return result

    def agenerate_stream(
        self, prompt: str, *, session_id: str | None = None, **kwargs: Any
    ) -> AsyncIterator[StreamEvent]:
        return self._astream("agenerate_stream", (prompt,), kwargs, session_id)

    async def ainfo(self) -> EngineInfo:
        result: EngineInfo = await self._acall("ainfo", (), {}, None)
        return result

    async def atokenize(self, text: str, *, add_special_tokens: bool = True) -> list[TokenInfo]:
        result: list[TokenInfo] = await self._acall(
            "atokenize", (text,), {"add_special_tokens": add_special_tokens}, None
        )
        return result

    # -- lifecycle --
    def _stop_health(self) -> threading.Thread | None:
        with self._lock:
            self._closed = True
            thread = self._health_thread
        self._stop.set()
        return thread if thread is not None and thread is not threading.current_thread() else None

    def close(self) -> None:
        """Stop health checks and close the clients the pool built (sync connections)."""
        thread = self._stop_health()
        if thread is not None:
            thread.join(timeout=10)
        for r in self._replicas:
            if r.owned and r.client is not None:
                r.client.close()

    async def aclose(self) -> None:
        """Stop health checks and close the clients the pool built (sync and async connections)."""
        thread = self._stop_health()
        if thread is not None:
            await asyncio.to_thread(thread.join, 10)
        for r in self._replicas:
            if r.owned and r.client is not None:
                await r.client.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
