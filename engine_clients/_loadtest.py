"""``engine-clients loadtest``: a sweep of concurrency levels against one server, through this package.

At each level K, K workers share one async client and each streams chat requests back to back until the
level has sent ``requests`` of them (or ``duration`` seconds have passed). Per request: time to first token
(TTFT, from sending to the first content token), the gaps between content tokens (inter-token latency, ITL,
pooled over all requests, as ``vllm bench serve`` pools them), output tokens (the server's ``usage``), and
the end-to-end latency. Per level: those as mean / p50 / p99, output tokens per second over the level's wall
time, requests per second, and errors (each failed request, by error type; a level goes on past errors).

Nothing here prints or imports rich: the CLI (``engine_clients/_cli/loadtest.py``) draws the progress bar,
the table and the plot.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from ._detect import aconnect
from ._detect import client_class
from ._http import Timeouts
from ._pool_stats import Percentiles
from .errors import EngineError
from .types import End
from .types import Token

__all__ = ["LevelResult", "Stat", "loadtest", "run_level"]

DEFAULT_PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."


@dataclass(frozen=True, slots=True)
class Stat:
    """Mean and nearest-rank percentiles of some samples, in seconds (None when there are none)."""

    mean: float | None
    p50: float | None
    p90: float | None
    p99: float | None

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stat:
        ranks = Percentiles.of(samples)
        return cls(sum(samples) / len(samples) if samples else None, ranks.p50, ranks.p90, ranks.p99)


@dataclass(slots=True)
class LevelResult:
    """One concurrency level's figures."""

    concurrency: int
    requests: int
    errors: int
    duration_s: float
    output_tokens: int
    ttft: Stat
    itl: Stat
    tpot: Stat
    latency: Stat
    error_kinds: dict[str, int] = field(default_factory=dict)
    error_sample: list[str] = field(default_factory=list)

    @property
    def output_tokens_per_s(self) -> float:
        return self.output_tokens / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def requests_per_s(self) -> float:
        return (self.requests - self.errors) / self.duration_s if self.duration_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["output_tokens_per_s"] = round(self.output_tokens_per_s, 3)
        d["requests_per_s"] = round(self.requests_per_s, 3)
        return d


@dataclass(slots=True)
class _Samples:
    ttft: list[float] = field(default_factory=list)
    itl: list[float] = field(default_factory=list)
    tpot: list[float] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    output_tokens: int = 0
    errors: list[str] = field(default_factory=list)


async def _one(client: Any, prompt: str, sampling: dict[str, Any], out: _Samples) -> None:
    t0 = time.perf_counter()
    first: float | None = None
    last = t0
    gaps: list[float] = []
    tokens = 0
    try:
        async for event in client.achat_stream(prompt, **sampling):
            if isinstance(event, Token) and event.text:
                now = time.perf_counter()
                if first is None:
                    first = now - t0
                else:
                    gaps.append(now - last)
                last = now
            elif isinstance(event, End) and event.completion.usage is not None:
                tokens = event.completion.usage.completion_tokens
    except EngineError as exc:
        out.errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
        return
    end = time.perf_counter() - t0
    tokens = tokens or len(gaps) + (first is not None)
    out.output_tokens += tokens
    out.latency.append(end)
    out.itl.extend(gaps)
    if first is not None:
        out.ttft.append(first)
        if tokens > 1:
            out.tpot.append((end - first) / (tokens - 1))


async def run_level(
    client: Any,
    concurrency: int,
    *,
    requests: int | None = None,
    duration: float | None = None,
    prompt: str = DEFAULT_PROMPT,
    sampling: dict[str, Any] | None = None,
    on_done: Callable[[], None] | None = None,
) -> LevelResult:
    """``concurrency`` workers on ``client`` (an engine_clients client) until ``requests`` were sent or
    ``duration`` seconds passed (at least one of the two)."""
    if requests is None and duration is None:
        raise ValueError("give requests or duration")
    samples = _Samples()
    sent = 0
    t0 = time.perf_counter()
    deadline = t0 + duration if duration is not None else math.inf

    async def worker() -> None:
        nonlocal sent
        while (requests is None or sent < requests) and time.perf_counter() < deadline:
            sent += 1
            await _one(client, prompt, dict(sampling or {}), samples)
            if on_done is not None:
                on_done()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    kinds = Counter(e.split(":")[0] for e in samples.errors)
    return LevelResult(
        concurrency=concurrency,
        requests=sent,
        errors=len(samples.errors),
        duration_s=wall,
        output_tokens=samples.output_tokens,
        ttft=Stat.of(samples.ttft),
        itl=Stat.of(samples.itl),
        tpot=Stat.of(samples.tpot),
        latency=Stat.of(samples.latency),
        error_kinds=dict(kinds),
        error_sample=samples.errors[:3],
    )


async def aloadtest(
    url: str,
    levels: Sequence[int],
    *,
    engine: str | None = None,
    api_key: str | None = None,
    requests: int | Mapping[int, int] | None = None,
    duration: float | None = None,
    prompt: str = DEFAULT_PROMPT,
    max_tokens: int = 64,
    ignore_eos: bool = False,
    timeout: float = 120.0,
    on_level: Callable[[int], None] | None = None,
    on_done: Callable[[], None] | None = None,
) -> tuple[str, list[LevelResult]]:
    """(engine, one :class:`LevelResult` per level, in order). ``requests``: per level, or a mapping from
    level to its count. One async client for the whole sweep, no retries (a failure is counted, not
    hidden), every wait bounded by ``timeout``."""
    kwargs: dict[str, Any] = {
        "api_key": api_key,
        "timeout": Timeouts(connect=10, read=timeout, chunk=timeout),
        "max_retries": 0,
    }
    client = client_class(engine)(url, **kwargs) if engine else await aconnect(url, **kwargs)
    sampling: dict[str, Any] = {"max_tokens": max_tokens, "temperature": 0}
    if ignore_eos:
        sampling["extra_body"] = {"ignore_eos": True}
    results = []
    try:
        if client.model is None:
            sampling["model"] = (await client.ainfo()).model
        for k in levels:
            if on_level is not None:
                on_level(k)
            results.append(
                await run_level(
                    client,
                    k,
                    requests=requests.get(k) if isinstance(requests, Mapping) else requests,
                    duration=duration,
                    prompt=prompt,
                    sampling=sampling,
                    on_done=on_done,
                )
            )
    finally:
        await client.aclose()
    return client.engine, results


def loadtest(url: str, levels: Sequence[int], **kwargs: Any) -> tuple[str, list[LevelResult]]:
    """The sync front of :func:`aloadtest` (its own event loop)."""
    return asyncio.run(aloadtest(url, levels, **kwargs))
