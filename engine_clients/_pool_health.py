"""The pool's health checks: asking every replica's health route, and the optional background thread.

``EnginePool.check_health()`` (or ``acheck_health()``) asks each replica now; a replica that does not answer
ready is ejected (its breaker opens) and re-admitted as soon as it does (see ``_pool_breaker.Breaker``).
With ``health_interval`` a daemon thread does the same every ``health_interval`` seconds until the pool
closes. The pool's overall health is HEALTHY when every replica is, UNHEALTHY when none is, else DEGRADED.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Sequence

from ._clients import BaseClient
from .errors import EngineError
from .types import HealthStatus

__all__ = ["HealthLoop", "ahealth_of", "health_of", "overall"]


def health_of(client: Callable[[], BaseClient]) -> HealthStatus:
    """One replica's answer; an error (including a failed detection) counts as UNHEALTHY."""
    try:
        return client().health()
    except EngineError:
        return HealthStatus.UNHEALTHY


async def ahealth_of(client: Callable[[], Awaitable[BaseClient]]) -> HealthStatus:
    try:
        return await (await client()).ahealth()
    except EngineError:
        return HealthStatus.UNHEALTHY


def overall(statuses: Sequence[HealthStatus]) -> HealthStatus:
    if all(s is HealthStatus.HEALTHY for s in statuses):
        return HealthStatus.HEALTHY
    if all(s is HealthStatus.UNHEALTHY for s in statuses):
        return HealthStatus.UNHEALTHY
    return HealthStatus.DEGRADED


class HealthLoop:
    """Runs ``check`` every ``interval`` seconds in a daemon thread, started on first use, until stopped
    (never, when ``interval`` is None)."""

    def __init__(self, check: Callable[[], object], interval: float | None) -> None:
        self._check = check
        self._interval = interval
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._stopped = False

    @property
    def thread(self) -> threading.Thread | None:
        """The thread, once started (it ends soon after :meth:`stop`)."""
        return self._thread

    def start(self) -> None:
        """Start the loop unless it runs, was stopped, or has no interval."""
        interval = self._interval
        if interval is None or self._thread is not None:
            return
        with self._lock:
            if self._thread is not None or self._stopped:
                return
            self._thread = threading.Thread(
                target=self._run, args=(interval,), name="EnginePool-health", daemon=True
            )
        self._thread.start()

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            with contextlib.suppress(Exception):
                self._check()

    def stop(self) -> threading.Thread | None:
        """Stop for good; returns the thread to join (None when there is none, or it is the caller)."""
        with self._lock:
            self._stopped = True
            thread = self._thread
        self._stop.set()
        return thread if thread is not None and thread is not threading.current_thread() else None

    def join(self, timeout: float) -> None:
        thread = self.stop()
        if thread is not None:
            thread.join(timeout)

    async def ajoin(self, timeout: float) -> None:
        thread = self.stop()
        if thread is not None:
            await asyncio.to_thread(thread.join, timeout)
