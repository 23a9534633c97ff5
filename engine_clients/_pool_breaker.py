"""The pool's circuit breaker: one per replica, and how an attempt's error counts against it.

``failure_threshold`` consecutive faults (connection refused, timeouts, 5xx, broken streams, a failed
detection) open the breaker. After ``cooldown`` seconds one trial request is let through (half-open): its
success closes the breaker, its failure opens it again, and a trial that ends without a verdict (busy,
cancelled) leaves it open for the next one. Health checks eject a replica (the breaker opens, ``ejected``)
and re-admit it as soon as it answers ready; a breaker opened by faults gets its trial at once when a health
check passes.

Nothing here locks or knows an engine: the pool calls these methods under its own lock.
"""

from __future__ import annotations

import asyncio
import math
from typing import Literal

from ._detect import EngineDetectionError
from .errors import EngineError
from .errors import EngineUnavailableError
from .errors import InternalServerError
from .errors import InvalidRequestError
from .errors import MalformedResponseError
from .errors import ModelLoadingError
from .errors import RateLimitError
from .errors import StreamError
from .errors import TimeoutError

__all__ = ["FAILOVER", "FAULTS", "Breaker", "BreakerState", "Outcome", "caller_outcome", "outcome"]

BreakerState = Literal["closed", "open", "half_open"]

# Errors that say the replica (not the request) is at fault: counted by the breaker, and failed over.
FAULTS: tuple[type[EngineError], ...] = (
    EngineUnavailableError,
    TimeoutError,
    InternalServerError,
    MalformedResponseError,
    StreamError,
    EngineDetectionError,
)
# Also failed over (before the first token), but not counted against the replica: it is alive, just busy.
FAILOVER: tuple[type[EngineError], ...] = (*FAULTS, RateLimitError)

Outcome = Literal["ok", "answered", "fault", "busy", "cancel"]
"""How one attempt on a replica ended: ``ok`` (success), ``answered`` (a 4xx: the replica is alive),
``fault`` (counted against it), ``busy`` (429: alive but full), ``cancel`` (no verdict)."""


def outcome(exc: BaseException) -> Outcome:
    """What an attempt's exception says about the replica."""
    if isinstance(exc, ModelLoadingError):
        return "busy"  # loading or swapping its model: alive, and ready soon
    if isinstance(exc, FAULTS):
        return "fault"
    if isinstance(exc, RateLimitError):
        return "busy"
    if isinstance(exc, InvalidRequestError):
        return "cancel"  # refused before sending: says nothing about the replica
    if isinstance(exc, EngineError):
        return "answered"  # the replica answered (4xx): it is alive
    return "cancel"


def caller_outcome(exc: BaseException) -> bool | None:
    """False: an error reaches the caller; None: the caller went away (closed stream, cancelled task)."""
    return None if isinstance(exc, GeneratorExit | asyncio.CancelledError | KeyboardInterrupt) else False


class Breaker:
    """One replica's breaker state (not thread-safe: the pool holds its lock around every call)."""

    __slots__ = ("ejected", "failures_in_row", "opened_at", "probing", "state", "threshold")

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold  # faults in a row that open it
        self.state: BreakerState = "closed"
        self.failures_in_row = 0
        self.opened_at = 0.0
        self.probing = False  # the half-open trial request is in flight
        self.ejected = False  # opened by a failed health check (re-admitted by a passing one)

    @property
    def closed(self) -> bool:
        return self.state == "closed"

    def trial_due(self, now: float, cooldown: float) -> bool:
        """Open, its cooldown over, and no trial in flight: the next request may be its trial."""
        return self.state == "open" and not self.probing and now - self.opened_at >= cooldown

    def wait(self, now: float, cooldown: float) -> float | None:
        """Seconds until a trial may start (None when closed)."""
        if self.state == "closed":
            return None
        return max(0.0, cooldown - (now - self.opened_at))

    def admit(self) -> None:
        """An attempt was routed here: an open breaker turns half-open with this attempt as its trial."""
        if self.state == "open":
            self.state = "half_open"
            self.probing = True

    def record(self, result: Outcome, now: float) -> None:
        """An attempt ended with ``result``."""
        if result in ("ok", "answered"):  # it answered: the best health check there is
            self.failures_in_row = 0
            self.state = "closed"
            self.ejected = False
            self.probing = False
        elif result == "fault":
            self.failures_in_row += 1
            if self.state == "half_open" or self.failures_in_row >= self.threshold:
                self.state = "open"
                self.opened_at = now
            self.probing = False
        elif self.state == "half_open":  # trial ended without a verdict (busy, cancelled): try again
            self.state = "open"
            self.probing = False

    def health(self, healthy: bool, now: float) -> None:
        """A health check answered: eject the replica when not ready, re-admit it when ready."""
        if healthy:
            if self.ejected:  # re-admit what health checks ejected
                self.ejected = False
                self.state = "closed"
                self.failures_in_row = 0
            elif self.state == "open":  # opened by faults: its trial may come now
                self.opened_at = -math.inf
        elif not self.ejected:
            self.ejected = True
            if self.state != "half_open":
                self.state = "open"
            self.opened_at = now
