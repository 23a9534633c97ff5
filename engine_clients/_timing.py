"""Client-side clocks for one request: what the transport measures and how it becomes :class:`Timings`.

The transport stamps the moments (request sent, response headers, each network chunk that carried tokens,
the end); the dialect reads what the engine reported (``Dialect.parse_timings``); this module puts the two
together. Nothing here knows an engine. On the streaming hot path the transport does one clock read per
network chunk and a list append per chunk that carried tokens; everything else happens once, at the end.
"""

from __future__ import annotations

from collections.abc import Mapping
from operator import sub
from time import perf_counter
from typing import TYPE_CHECKING

from .types import End
from .types import StreamEvent
from .types import Timings
from .types import Usage

if TYPE_CHECKING:
    from .dialects.base import StreamDecoder

__all__ = ["Measure", "StreamClock", "perf_counter"]


class Measure:
    """One non-streamed exchange, filled in by the transport: the response headers and when the attempt
    that answered was sent, got its headers and finished reading the body."""

    __slots__ = ("end", "first_byte", "headers", "start")

    def __init__(self) -> None:
        self.start = self.first_byte = self.end = 0.0
        self.headers: Mapping[str, str] | None = None

    def timings(self, server: Timings, usage: Usage | None) -> Timings:
        """``server`` (the dialect's reading of the answer) with the client-measured figures added."""
        if self.start:
            if self.first_byte:
                server.time_to_first_byte = self.first_byte - self.start
            if self.end:
                total = server.total_time = self.end - self.start
                n = usage.completion_tokens if usage is not None else 0
                if n > 0 and total > 0:
                    server.tokens_per_second = n / total
        return server


class StreamClock:
    """One stream. The transport keeps the hot loop's state in locals (the clock reading of the current
    network chunk, how many tokens and reasoning pieces it has seen) and appends to ``stamps`` the arrival
    time of each network chunk that carried tokens or reasoning."""

    __slots__ = ("first_byte", "stamps", "start")

    def __init__(self, start: float, first_byte: float) -> None:
        self.start = start
        self.first_byte = first_byte
        self.stamps: list[float] = []

    def finish(
        self,
        out: list[StreamEvent],
        decoder: StreamDecoder,
        headers: Mapping[str, str] | None,
        now: float,
        seen: int,
    ) -> None:
        """Put the timings on the :class:`End` among ``out``, the events of the chunk (arrived at ``now``)
        that ended the stream; ``seen``: the tokens and reasoning pieces before it."""
        for event in reversed(out):
            if type(event) is End:
                if decoder.index + len(decoder.thoughts) != seen:
                    self.stamps.append(now)
                completion = event.completion
                completion.timings = self.timings(decoder.server_timings(headers), completion.usage)
                return

    def timings(self, t: Timings, usage: Usage | None) -> Timings:
        end = perf_counter()
        start, stamps = self.start, self.stamps
        t.time_to_first_byte = self.first_byte - start
        t.total_time = end - start
        if stamps:
            t.time_to_first_token = stamps[0] - start
            n = usage.completion_tokens if usage is not None else 0
            span = stamps[-1] - stamps[0]
            if n > 1 and span > 0:
                t.tokens_per_second = (n - 1) / span
            if len(stamps) > 1:
                gaps = sorted(map(sub, stamps[1:], stamps))  # C loops: this runs once per stream
                t.inter_token_p50 = gaps[(len(gaps) - 1) // 2]
                t.inter_token_max = gaps[-1]
        return t
