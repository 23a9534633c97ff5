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
yielded a ``Reasoning``, ``Token`` or ``ToolCallDelta`` is never repeated elsewhere: its :class:`StreamError`
(with the partial text) reaches the caller, so output is never duplicated.

The pool knows no engine: session affinity asks each replica's client for its
:meth:`~engine_clients.BaseClient.affinity_params` (llama.cpp pins a slot and its prompt cache).
State is guarded by one ``threading.Lock`` held only for bookkeeping, so one pool serves threads and
event loops at once.

This module holds the request loops (queueing, failover, streams) and the public API; each other part
reads on its own:

- ``_pool_routing``: which replica an attempt goes to (least in flight, trials, session affinity);
- ``_pool_breaker``: the per-replica circuit breaker, and which errors count against a replica;
- ``_pool_health``: health checks and the background health thread;
- ``_pool_stats``: ``PoolStats``/``ReplicaStats`` and the counters behind them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from typing_extensions import Self

from ._clients import BaseClient
from ._detect import PROBE_TIMEOUT, aconnect, client_class, connect
from ._pool_breaker import FAILOVER, BreakerState, Outcome, caller_outcome, outcome
from ._pool_health import HealthLoop, ahealth_of, health_of, overall
from ._pool_routing import NoReplica, Replica, Router, session_slot
from ._pool_stats import Percentiles, PoolCounters, PoolStats, ReplicaStats, redact
from .errors import EngineError, EngineUnavailableError, InvalidRequestError, RateLimitError
from .types import (
    Completion,
    Embeddings,
    End,
    EngineInfo,
    HealthStatus,
    Reasoning,
    Reranking,
    Started,
    StreamEvent,
    Token,
    TokenInfo,
    ToolCallDelta,
    Usage,
)

__all__ = ["BreakerState", "EnginePool", "Percentiles", "PoolExhaustedError", "PoolStats", "ReplicaStats"]


class PoolExhaustedError(RateLimitError):
    """Every usable replica is at its concurrency limit and the pool's wait queue is full, or the wait for a
    free slot outlasted ``queue_timeout``. A :class:`RateLimitError`: back off and try again."""


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


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
        self._replicas: list[Replica] = []
        for i, rep in enumerate(replicas):
            if isinstance(rep, BaseClient):
                self._replicas.append(Replica(i, rep.base_url, rep, False, stats_window))
            elif isinstance(rep, str):
                url = rep.strip().rstrip("/")
                client = client_class(engine)(url, **client_kwargs) if engine is not None else None
                self._replicas.append(Replica(i, url, client, True, stats_window))
            else:
                raise InvalidRequestError(f"a replica must be a URL or a client, not {type(rep).__name__}")
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._waiting = 0  # requests queued for a free slot
        self._router = Router()
        self._counters = PoolCounters(stats_window)
        self._health_loop = HealthLoop(self.check_health)

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
        return [redact(r.url) for r in self._replicas]

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
            return self._counters.snapshot(tuple(r.snapshot() for r in self._replicas), self._waiting)

    # -- routing and queueing (see _pool_routing; the breaker in _pool_breaker) --
    def _pick(self, exclude: set[int], session_id: str | None) -> Replica | None:  # under the lock
        return self._router.pick(
            self._replicas,
            exclude,
            session_id,
            now=time.monotonic(),
            cooldown=self.cooldown,
            max_concurrency=self.max_concurrency,
            max_sessions=self.max_sessions,
        )

    def _release(
        self,
        r: Replica,
        result: Outcome,
        t0: float,
        usage: Usage | None = None,
        ttft: float | None = None,
    ) -> None:
        """An attempt on ``r`` ended: free its slot, count it, tell its breaker, wake a queued request."""
        now = time.monotonic()
        with self._lock:
            r.in_flight -= 1
            r.stats.record(result, now - t0, usage, ttft)
            r.breaker.record(result, now, self.failure_threshold)
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
            self._counters.begin()
        if self.health_interval is not None and self._health_loop.thread is None:
            self._health_loop.start(self.health_interval)
        return time.monotonic()

    def _end(self, ok: bool | None, start: float, ttft: float | None = None, failovers: int = 0) -> None:
        """``ok``: True success, False an error reached the caller, None the caller gave up (cancelled)."""
        with self._lock:
            self._counters.end(ok, start, ttft, failovers)

    def _no_replica(self, err: NoReplica, last: EngineError | None) -> EngineError:
        if last is not None:
            return last
        return EngineUnavailableError(
            f"no usable replica among {len(self._replicas)} (circuit open or failed health checks)",
            engine=self.engine,
            retry_after=err.retry_after,
        )

    def _acquire(self, exclude: set[int], session_id: str | None) -> Replica:
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

    async def _aacquire(self, exclude: set[int], session_id: str | None) -> Replica:
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
        self._counters.rejected += 1
        return PoolExhaustedError(
            f"all replicas are at their limit of {self.max_concurrency} requests and "
            f"{self._waiting} requests already wait (max_queue={self.max_queue})",
            engine=self.engine_name,
        )

    def _timed_out(self) -> PoolExhaustedError:  # under the lock
        self._counters.rejected += 1
        return PoolExhaustedError(
            f"no replica had a free slot within queue_timeout={self.queue_timeout:g} s",
            engine=self.engine_name,
        )

    # -- clients: built from URLs on first use when the engine must be detected --
    def _count_retries(self, r: Replica, transport: Any) -> None:
        if id(transport) in r.hooked:
            return
        prev = transport.on_retry

        def on_retry(exc: BaseException) -> None:
            with self._lock:
                r.stats.retries += 1
            if prev is not None:
                prev(exc)

        transport.on_retry = on_retry
        r.hooked.add(id(transport))

    def _adopt(self, r: Replica, client: BaseClient) -> BaseClient:
        with self._lock:
            if r.client is None:
                r.client = client
                return client
        client.close()  # lost a race with another thread: keep the first
        return r.client

    def _client(self, r: Replica) -> BaseClient:
        client = r.client
        if client is None:
            client = self._adopt(r, connect(r.url, probe_timeout=self.probe_timeout, **self._client_kwargs))
        self._count_retries(r, client.sync_transport)
        return client

    async def _aclient(self, r: Replica) -> BaseClient:
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
        return {**client.affinity_params(session_slot(session_id, self.session_slots)), **kwargs}

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
                except NoReplica as exc:
                    err = self._no_replica(exc, last)
                    raise err from err.__cause__  # the last replica's own error, its cause kept
                t0 = time.monotonic()
                try:
                    client = self._client(r)
                    result = getattr(client, op)(*args, **self._kwargs(client, kwargs, session_id))
                except BaseException as exc:
                    self._release(r, outcome(exc), t0)
                    if isinstance(exc, FAILOVER) and len(tried) + 1 < self._limit():
                        tried.add(r.index)
                        last = exc
                        continue
                    raise
                self._release(r, "ok", t0, getattr(result, "usage", None))
                self._end(True, start, failovers=len(tried))
                return result
        except BaseException as exc:
            self._end(caller_outcome(exc), start, failovers=len(tried))
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
                except NoReplica as exc:
                    err = self._no_replica(exc, last)
                    raise err from err.__cause__  # the last replica's own error, its cause kept
                t0 = time.monotonic()
                try:
                    client = await self._aclient(r)
                    result = await getattr(client, op)(*args, **self._kwargs(client, kwargs, session_id))
                except BaseException as exc:
                    self._release(r, outcome(exc), t0)
                    if isinstance(exc, FAILOVER) and len(tried) + 1 < self._limit():
                        tried.add(r.index)
                        last = exc
                        continue
                    raise
                self._release(r, "ok", t0, getattr(result, "usage", None))
                self._end(True, start, failovers=len(tried))
                return result
        except BaseException as exc:
            self._end(caller_outcome(exc), start, failovers=len(tried))
            raise

    def _stream(
        self, op: str, args: tuple[Any, ...], kwargs: dict[str, Any], session_id: str | None
    ) -> Iterator[StreamEvent]:
        start = self._begin()
        tried: set[int] = set()
        last: EngineError | None = None
        started = False  # a Started event went out: a failed-over stream's own Started is dropped
        first: float | None = None  # when the first output event went out: no failover after it
        try:
            while True:
                try:
                    r = self._acquire(tried, session_id)
                except NoReplica as exc:
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
                        elif first is None and isinstance(event, Token | Reasoning | ToolCallDelta):
                            first = time.monotonic()
                        elif isinstance(event, End):
                            usage = event.completion.usage
                        yield event
                except BaseException as exc:
                    self._release(r, outcome(exc), t0)
                    if first is None and isinstance(exc, FAILOVER) and len(tried) + 1 < self._limit():
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
            self._end(caller_outcome(exc), start, failovers=len(tried))
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
                except NoReplica as exc:
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
                        elif first is None and isinstance(event, Token | Reasoning | ToolCallDelta):
                            first = time.monotonic()
                        elif isinstance(event, End):
                            usage = event.completion.usage
                        yield event
                except BaseException as exc:
                    self._release(r, outcome(exc), t0)
                    if first is None and isinstance(exc, FAILOVER) and len(tried) + 1 < self._limit():
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
            self._end(caller_outcome(exc), start, failovers=len(tried))
            raise

    # -- health (see _pool_health) --
    def _apply_health(self, r: Replica, status: HealthStatus) -> None:
        with self._lock:
            r.health = status
            r.breaker.health(status is HealthStatus.HEALTHY, time.monotonic())
            self._notify()

    def check_health(self) -> dict[str, HealthStatus]:
        """Ask every replica's health route now; eject those not ready, re-admit those that are."""
        out: dict[str, HealthStatus] = {}
        for r in self._replicas:
            status = health_of(functools.partial(self._client, r))
            self._apply_health(r, status)
            out[redact(r.url)] = status
        return out

    async def acheck_health(self) -> dict[str, HealthStatus]:
        statuses = await asyncio.gather(
            *(ahealth_of(functools.partial(self._aclient, r)) for r in self._replicas)
        )
        for r, status in zip(self._replicas, statuses, strict=True):
            self._apply_health(r, status)
        return {redact(r.url): s for r, s in zip(self._replicas, statuses, strict=True)}

    def health(self) -> HealthStatus:
        """HEALTHY when every replica is, UNHEALTHY when none answers, else DEGRADED (checks all replicas)."""
        return overall(list(self.check_health().values()))

    async def ahealth(self) -> HealthStatus:
        return overall(list((await self.acheck_health()).values()))

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

    # embeddings and rerank: routed, retried and failed over like chat (LlamaCppClient, VLLMClient, TEIClient)
    def embed(self, texts: Any, **kwargs: Any) -> Embeddings:
        """:meth:`LlamaCppClient.embed` (or vLLM's, TEI's) on the least busy replica."""
        result: Embeddings = self._call("embed", (texts,), kwargs, None)
        return result

    def rerank(self, query: str, documents: Any, **kwargs: Any) -> Reranking:
        result: Reranking = self._call("rerank", (query, documents), kwargs, None)
        return result

    async def aembed(self, texts: Any, **kwargs: Any) -> Embeddings:
        result: Embeddings = await self._acall("aembed", (texts,), kwargs, None)
        return result

    async def arerank(self, query: str, documents: Any, **kwargs: Any) -> Reranking:
        result: Reranking = await self._acall("arerank", (query, documents), kwargs, None)
        return result

    # -- lifecycle --
    @property
    def _health_thread(self) -> threading.Thread | None:
        """The background health-check thread (None until ``health_interval`` starts it)."""
        return self._health_loop.thread

    def close(self) -> None:
        """Stop health checks and close the clients the pool built (sync connections)."""
        self._health_loop.join(timeout=10)
        for r in self._replicas:
            if r.owned and r.client is not None:
                r.client.close()

    async def aclose(self) -> None:
        """Stop health checks and close the clients the pool built (sync and async connections)."""
        await self._health_loop.ajoin(timeout=10)
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
