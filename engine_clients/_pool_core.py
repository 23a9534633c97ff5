"""What ``EnginePool``'s sync and async halves share: replicas, routing, the wait for a free slot, breakers,
counters and health checks. The request loops are written once in ``_async/pool.py``.

State is guarded by one ``threading.Lock`` held only for bookkeeping, so one pool serves threads and event
loops at once. Waiting for a free slot cannot be written once (a ``threading.Condition`` for threads, futures
woken across loops for coroutines), so ``_acquire`` and ``_aacquire`` are both here, by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

from typing_extensions import Self

from ._clients import BaseClient
from ._detect import PROBE_TIMEOUT
from ._detect import client_class
from ._pool_breaker import Outcome
from ._pool_health import HealthLoop
from ._pool_health import ahealth_of
from ._pool_health import health_of
from ._pool_routing import NoReplica
from ._pool_routing import Replica
from ._pool_routing import Router
from ._pool_routing import session_slot
from ._pool_stats import PoolCounters
from ._pool_stats import PoolStats
from ._pool_stats import redact
from .errors import EngineError
from .errors import EngineUnavailableError
from .errors import InvalidRequestError
from .errors import RateLimitError
from .types import HealthStatus
from .types import Usage

__all__ = ["PoolCore", "PoolExhaustedError"]


class PoolExhaustedError(RateLimitError):
    """Every usable replica is at its concurrency limit and the pool's wait queue is full, or the wait for a
    free slot outlasted ``queue_timeout``. A :class:`RateLimitError`: back off and try again."""


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class PoolCore:
    """Configuration and shared state of :class:`~engine_clients.EnginePool` (see ``_pool.py``)."""

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
        self._replicas: list[Replica] = []
        for i, rep in enumerate(replicas):
            if isinstance(rep, BaseClient):
                self._replicas.append(Replica(i, rep.base_url, rep, False, stats_window, failure_threshold))
            elif isinstance(rep, str):
                url = rep.strip().rstrip("/")
                client = client_class(engine)(url, **client_kwargs) if engine is not None else None
                self._replicas.append(Replica(i, url, client, True, stats_window, failure_threshold))
            else:
                raise InvalidRequestError(f"a replica must be a URL or a client, not {type(rep).__name__}")
        # replicas given as URLs with no engine: how _client/_aclient connect them on first use
        self._connect_kwargs = {"probe_timeout": probe_timeout, **client_kwargs}
        self._router = Router(cooldown=cooldown, max_concurrency=max_concurrency, max_sessions=max_sessions)
        self._health_loop = HealthLoop(self.check_health, health_interval)
        self._counters = PoolCounters(stats_window)
        # the wait for a free slot (_acquire, _aacquire)
        self.max_queue = max_queue
        self.queue_timeout = queue_timeout
        self._waiting = 0  # requests queued for a free slot
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self.max_attempts = max_attempts
        self.session_slots = session_slots

    @classmethod
    def from_env(cls, engine: str, **kwargs: Any) -> Self:
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
        return self._router.pick(self._replicas, exclude, session_id, time.monotonic())

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
            r.breaker.record(result, now)
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
        self._health_loop.start()
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

    def _take(
        self, exclude: set[int], session_id: str | None, queued: bool, deadline: float
    ) -> Replica | float:
        """Under the lock: a free replica, else the seconds left to wait for one. Joins the wait queue when
        not ``queued`` yet (the caller leaves it); PoolExhaustedError when the queue is full or time is up."""
        r = self._pick(exclude, session_id)
        if r is not None:
            return r
        if not queued and self._waiting >= self.max_queue:
            raise self._full()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise self._timed_out()
        if not queued:
            self._waiting += 1
        return remaining

    def _acquire(self, exclude: set[int], session_id: str | None) -> Replica:
        deadline = time.monotonic() + self.queue_timeout
        queued = False
        with self._cond:
            try:
                while True:
                    got = self._take(exclude, session_id, queued, deadline)
                    if isinstance(got, Replica):
                        return got
                    queued = True
                    self._cond.wait(min(got, 1.0))  # wake now and then: cool-downs end silently
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
                    got = self._take(exclude, session_id, queued, deadline)
                    if isinstance(got, Replica):
                        return got
                    queued = True
                    fut: asyncio.Future[None] = loop.create_future()
                    self._async_waiters.append((loop, fut))
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(fut, min(got, 1.0))
        finally:
            if queued:
                with self._lock:
                    self._waiting -= 1

    def _full(self) -> PoolExhaustedError:  # under the lock
        self._counters.rejected += 1
        return PoolExhaustedError(
            f"all replicas are at their limit of {self._router.max_concurrency} requests and "
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

    if TYPE_CHECKING:  # the generated and the async half each define their own

        def _client(self, r: Replica) -> BaseClient: ...

        async def _aclient(self, r: Replica) -> BaseClient: ...

    def _kwargs(self, client: BaseClient, kwargs: dict[str, Any], session_id: str | None) -> dict[str, Any]:
        if session_id is None:
            return kwargs
        return {**client.affinity_params(session_slot(session_id, self.session_slots)), **kwargs}

    def _limit(self) -> int:
        return self.max_attempts or len(self._replicas)

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

    # -- lifecycle --
    @property
    def _health_thread(self) -> threading.Thread | None:
        """The background health-check thread (None until ``health_interval`` starts it)."""
        return self._health_loop.thread
