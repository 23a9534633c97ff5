"""The pool's statistics: what ``EnginePool.stats()`` returns, and the counters behind it.

Two levels are counted. Per replica (:class:`ReplicaCounters`): each *attempt* routed to it, so a request
that failed over counts on every replica it tried, with its latency and time to first token. Per pool
(:class:`PoolCounters`): each *call* as the caller saw it, end to end (queueing and failover included).
Percentiles are nearest-rank over the last ``stats_window`` samples. Nothing here locks: the pool holds its
lock around every update and snapshot.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

from ._pool_breaker import BreakerState
from ._pool_breaker import Outcome
from .types import HealthStatus
from .types import Usage

__all__ = ["Percentiles", "PoolCounters", "PoolStats", "ReplicaCounters", "ReplicaStats", "redact"]


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
    successful attempt's duration, ``ttft`` a stream's time to its first token. ``cached_tokens_in`` counts
    the prompt tokens the replica served from its prefix cache (cache hits, as the engine reports them in
    ``usage``); ``cache_hits`` the successful attempts that reused any."""

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
    cached_tokens_in: int = 0
    cache_hits: int = 0


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
    cached_tokens_in: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ReplicaCounters:
    """Attempts on one replica (``in_flight`` is the router's; it lives on the replica)."""

    def __init__(self, window: int) -> None:
        self.requests = self.successes = self.failures = self.retries = 0
        self.tokens_in = self.tokens_out = 0
        self.cached_tokens_in = self.cache_hits = 0
        self.latency: deque[float] = deque(maxlen=window)
        self.ttft: deque[float] = deque(maxlen=window)

    def record(self, result: Outcome, elapsed: float, usage: Usage | None, ttft: float | None) -> None:
        """An attempt ended: ``elapsed`` seconds after it was routed here."""
        if result == "ok":
            self.successes += 1
            self.latency.append(elapsed)
            if ttft is not None:
                self.ttft.append(ttft)
            if usage is not None:
                self.tokens_in += usage.prompt_tokens
                self.tokens_out += usage.completion_tokens
                if usage.cached_prompt_tokens:
                    self.cached_tokens_in += usage.cached_prompt_tokens
                    self.cache_hits += 1
        elif result != "cancel":
            self.failures += 1

    def snapshot(
        self,
        *,
        url: str,
        engine: str | None,
        state: BreakerState,
        health: HealthStatus | None,
        in_flight: int,
        consecutive_failures: int,
    ) -> ReplicaStats:
        return ReplicaStats(
            url=redact(url),
            engine=engine,
            state=state,
            health=health,
            requests=self.requests,
            successes=self.successes,
            failures=self.failures,
            retries=self.retries,
            in_flight=in_flight,
            consecutive_failures=consecutive_failures,
            tokens_in=self.tokens_in,
            tokens_out=self.tokens_out,
            latency=Percentiles.of(self.latency),
            ttft=Percentiles.of(self.ttft),
            cached_tokens_in=self.cached_tokens_in,
            cache_hits=self.cache_hits,
        )


class PoolCounters:
    """Calls on the pool, end to end. ``begin`` when a call starts, ``end`` when it returns or raises."""

    def __init__(self, window: int) -> None:
        self.requests = self.successes = self.failures = self.failovers = self.rejected = 0
        self.cancelled = 0
        self.in_flight = 0
        self.latency: deque[float] = deque(maxlen=window)
        self.ttft: deque[float] = deque(maxlen=window)

    def begin(self) -> None:
        self.requests += 1
        self.in_flight += 1

    def end(self, ok: bool | None, start: float, ttft: float | None, failovers: int) -> None:
        """``ok``: True success, False an error reached the caller, None the caller gave up (cancelled)."""
        self.in_flight -= 1
        self.failovers += failovers
        if ok is None:
            self.cancelled += 1
        elif ok:
            self.successes += 1
            self.latency.append(time.monotonic() - start)
            if ttft is not None:
                self.ttft.append(ttft)
        else:
            self.failures += 1

    def snapshot(self, replicas: tuple[ReplicaStats, ...], queued: int) -> PoolStats:
        return PoolStats(
            requests=self.requests,
            successes=self.successes,
            failures=self.failures,
            cancelled=self.cancelled,
            failovers=self.failovers,
            rejected=self.rejected,
            retries=sum(r.retries for r in replicas),
            in_flight=self.in_flight,
            queued=queued,
            tokens_in=sum(r.tokens_in for r in replicas),
            tokens_out=sum(r.tokens_out for r in replicas),
            latency=Percentiles.of(self.latency),
            ttft=Percentiles.of(self.ttft),
            replicas=replicas,
            cached_tokens_in=sum(r.cached_tokens_in for r in replicas),
        )


def redact(url: str) -> str:
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
