"""The pool's routing policy: which replica the next attempt goes to.

In order of preference:

1. a session's own replica (``session_id``), if it is usable and has room; when it is full the request is
   served elsewhere *this once* and the session stays where its prompt cache is;
2. a replica whose breaker is due a trial (open, cooldown over), so a recovered replica comes back quickly;
3. the closed replica with the fewest requests in flight, ties rotating round-robin.

Replicas already tried by this request are skipped. When every usable replica is at ``max_concurrency``
:meth:`Router.pick` returns None (the pool queues the request); when none is usable at all it raises
:class:`NoReplica` with the time until the first trial. Sessions map to replicas in a bounded LRU. A session
also gets a stable slot number (CRC-32 of its id) that engines with slots use to pin their prompt cache.

Nothing here locks: the pool calls :meth:`Router.pick` under its lock.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from collections.abc import Sequence

from ._clients import BaseClient
from ._pool_breaker import Breaker
from ._pool_stats import ReplicaCounters
from ._pool_stats import ReplicaStats
from .types import HealthStatus

__all__ = ["NoReplica", "Replica", "Router", "session_slot"]


class Replica:
    """One replica: its URL and client (None until detected), breaker, load and counters."""

    def __init__(
        self, index: int, url: str, client: BaseClient | None, owned: bool, window: int, threshold: int
    ) -> None:
        self.index = index
        self.url = url
        self.client = client
        self.owned = owned  # the pool built the client, and closes it
        self.breaker = Breaker(threshold)
        self.health: HealthStatus | None = None  # the last health check's answer
        self.in_flight = 0
        self.stats = ReplicaCounters(window)
        self.hooked: set[int] = set()  # ids of transports whose on_retry counts into ``stats.retries``

    def snapshot(self) -> ReplicaStats:
        return self.stats.snapshot(
            url=self.url,
            engine=self.client.engine if self.client is not None else None,
            state=self.breaker.state,
            health=self.health,
            in_flight=self.in_flight,
            consecutive_failures=self.breaker.failures_in_row,
        )


class NoReplica(Exception):
    """No replica is usable now; ``retry_after``: seconds until the first one is due a trial."""

    def __init__(self, retry_after: float | None) -> None:
        self.retry_after = retry_after


def session_slot(session_id: str, slots: int | None) -> int:
    """The slot a session pins on its replica (``-1``: let the engine choose)."""
    return zlib.crc32(session_id.encode()) % slots if slots else -1


class Router:
    """Least in-flight routing with session affinity; holds the round-robin cursor and the session map."""

    def __init__(self, *, cooldown: float, max_concurrency: int | None, max_sessions: int) -> None:
        self.cooldown = cooldown
        self.max_concurrency = max_concurrency
        self.max_sessions = max_sessions
        self.rr = 0
        self.sessions: OrderedDict[str, int] = OrderedDict()

    def pick(
        self, replicas: Sequence[Replica], exclude: set[int], session_id: str | None, now: float
    ) -> Replica | None:
        """The replica for the next attempt (its slot taken), None when all usable ones are full;
        raises NoReplica when none is usable at all."""
        cooldown, max_concurrency = self.cooldown, self.max_concurrency

        def room(r: Replica) -> bool:
            return max_concurrency is None or r.in_flight < max_concurrency

        ready: list[Replica] = []
        trial: list[Replica] = []
        for r in replicas:
            if r.index in exclude:
                continue
            if r.breaker.closed:
                ready.append(r)
            elif r.breaker.trial_due(now, cooldown):
                trial.append(r)
        if not ready and not trial:
            waits = [
                w
                for r in replicas
                if r.index not in exclude and (w := r.breaker.wait(now, cooldown)) is not None
            ]
            raise NoReplica(min(waits) if waits else None)
        chosen: Replica | None = None
        remap = session_id is not None
        sticky = self.sessions.get(session_id) if session_id is not None else None
        if sticky is not None:
            r = replicas[sticky]
            if r in ready or r in trial:
                if room(r):
                    chosen = r
                else:  # full: serve elsewhere this once, keep the session where its cache is
                    remap = False
        if chosen is None:
            chosen = next((r for r in trial if room(r)), None)
        if chosen is None:
            n = len(replicas)
            rr = self.rr
            candidates = [r for r in ready if room(r)]
            if not candidates:
                return None
            chosen = min(candidates, key=lambda r: (r.in_flight, (r.index - rr) % n))
            self.rr = (rr + 1) % n
        chosen.breaker.admit()
        chosen.in_flight += 1
        chosen.stats.requests += 1
        if remap and session_id is not None:
            self.sessions[session_id] = chosen.index
            self.sessions.move_to_end(session_id)
            while len(self.sessions) > self.max_sessions:
                self.sessions.popitem(last=False)
        return chosen
