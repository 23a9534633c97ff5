"""One measurement in a fresh process: ``python -m bench.worker '<job json>'``; prints one JSON line.

Jobs:

* ``{"kind": "decode", "client": NAME, "base": URL, "tokens": N}`` - build the client, warm it up on a
  short prefix of a stream (imports, lazy set-up, discovery, connection pool), then time one stream of N
  tokens. Reports wall seconds and this process's CPU seconds for it.
* ``{"kind": "concurrency", "client": NAME, "levels": [{"base": URL, "streams": K, "tokens": N}, ...]}``
  - K concurrent streams on one client object per level: wall time, TTFT percentiles, errors, RSS.
* ``{"kind": "e2e", ...}`` - like decode, against a real engine (``opts`` carries max_tokens, extra_body).
* ``{"kind": "interleaved", "clients": [NAME, ...], "base": URL, "rounds": R, "opts": {...}}`` - several
  sync clients in one process, timed in turns (used against llama-server: see :func:`interleaved`).
* ``{"kind": "codec", "dialect": D, "tokens": N, "k": K}`` - the engine codec alone on a firehose body, for
  an instruction counter (see :func:`codec`).
* ``{"kind": "paired", "client": NAME, "tokens": N, "repeats": R, "variants": {"plain": {"base": URL,
  "expect": [reasoning chars, answer chars]}, "reasoning": {...}}}`` - one client on two streams of the same
  token count (plain and reasoning), timed alternately in this process: see :func:`paired`. A variant
  may name its own ``"client"`` (the wrapper-bound scenario times an engine client, a framework's no-op
  floor and the wrapper over both in one process).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import json
import os
import resource
import sys
import time
import traceback
from typing import Any

WARMUP_CHUNKS = 1500


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # pragma: no cover
        return 0.0


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _setup(job: dict[str, Any]) -> tuple[Any, Any]:
    from bench.clients import BY_NAME

    spec = BY_NAME[job["client"]]
    one = spec.setup(job["base"], job.get("opts") or {})
    return spec, one


# ---- decode ----------------------------------------------------------------------------------------------


def _drain_sync(one: Any, limit: int | None = None) -> tuple[int, int]:
    n = chars = 0
    it = one()
    try:
        for text in it:
            n += 1
            chars += len(text)
            if limit is not None and n >= limit:
                break
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()
    return n, chars


async def _drain_async(one: Any, limit: int | None = None) -> tuple[int, int]:
    n = chars = 0
    it = one()
    try:
        async for text in it:
            n += 1
            chars += len(text)
            if limit is not None and n >= limit:
                break
    finally:
        aclose = getattr(it, "aclose", None)
        if aclose is not None:
            await aclose()
    return n, chars


def decode(job: dict[str, Any]) -> dict[str, Any]:
    spec, one = _setup(job)
    warm = job.get("warmup", WARMUP_CHUNKS)  # chunks of a first, untimed stream; "full": the whole stream
    warm_limit = None if warm == "full" else int(warm)
    is_async = inspect.isasyncgenfunction(one) or spec.mode == "async"
    profile = job.get("profile")
    repeats = int(job.get("repeats", 1))

    if is_async:

        async def run() -> list[tuple[float, float, int, int]]:
            if warm:
                await _drain_async(one, warm_limit)
            out = []
            for _ in range(repeats):
                gc.collect()
                c0, t0 = time.process_time(), time.perf_counter()
                n, chars = await _drain_async(one)
                out.append((time.perf_counter() - t0, time.process_time() - c0, n, chars))
            return out

        runner = lambda: asyncio.run(run())  # noqa: E731
    else:

        def runner() -> list[tuple[float, float, int, int]]:
            if warm:
                _drain_sync(one, warm_limit)
            out = []
            for _ in range(repeats):
                gc.collect()
                c0, t0 = time.process_time(), time.perf_counter()
                n, chars = _drain_sync(one)
                out.append((time.perf_counter() - t0, time.process_time() - c0, n, chars))
            return out

    if profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
        runs = runner()
        prof.disable()
        prof.dump_stats(profile)
    else:
        runs = runner()
    # Throughput counts the tokens the server sent (a client may merge several into one chunk; the text must
    # still arrive whole, which expect_chars checks); against a real engine, the content chunks received.
    tokens = job.get("tokens")
    expect_chars = job.get("expect_chars")
    out: dict[str, Any] = {
        "runs": [
            {
                "chunks": n,
                "chars": chars,
                "wall_s": wall,
                "cpu_s": cpu,
                "tokens_per_s": (tokens or n) / wall if wall > 0 else 0.0,
                "tokens_per_cpu_s": (tokens or n) / cpu if cpu > 0 else 0.0,
            }
            for wall, cpu, n, chars in runs
        ],
        "peak_rss_mb": _peak_rss_mb(),
    }
    for r in out["runs"]:
        if expect_chars is not None and r["chars"] != expect_chars:
            out["error"] = (
                f"received {r['chars']} characters in {r['chunks']} chunks, expected {expect_chars}"
            )
        elif expect_chars is None and tokens and r["chunks"] != tokens:
            out["error"] = f"received {r['chunks']} content chunks, expected {tokens}"
    return out


# ---- concurrency -----------------------------------------------------------------------------------------


def _p99(xs: list[float]) -> float:
    ordered = sorted(xs)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def concurrency(job: dict[str, Any]) -> dict[str, Any]:
    """``job["levels"]``: a list of ``{"base", "streams", "tokens"}``, run in order in this process, each on
    a client object of its own (the firehose URL carries the pacing), after a short warm-up stream."""
    from bench.clients import BY_NAME

    factory = None
    if BY_NAME[job["client"]].loop == "uvloop":
        import uvloop  # type: ignore[import-not-found]  # the spec's needs made sure it is there

        factory = uvloop.new_event_loop
    out = []
    for lv in job["levels"]:
        with asyncio.Runner(loop_factory=factory) as runner:
            out.append(runner.run(_level(job["client"], lv)))
    return {"levels": out}


async def _level(client: str, lv: dict[str, Any]) -> dict[str, Any]:
    spec, one = _setup({"client": client, "base": lv["base"], "opts": lv.get("opts")})
    if spec.mode != "async":
        raise SystemExit(f"{spec.name} is not an async client")
    k = int(lv["streams"])
    tokens = int(lv["tokens"])
    # warm-up on one stream (imports, lazy set-up, discovery); cut after 2 chunks
    with contextlib.suppress(Exception):
        await asyncio.wait_for(_drain_async(one, 2), 60)
    gc.collect()
    base_rss = _rss_mb()
    ttfts: list[float] = []
    errors: list[str] = []
    counts: list[int] = []
    loop = asyncio.get_running_loop()
    peak = [base_rss]

    lags: list[float] = []

    async def sample_rss() -> None:
        # also the event loop's lag: how late a 50 ms sleep wakes up while the streams run
        while True:
            peak[0] = max(peak[0], _rss_mb())
            t = loop.time()
            await asyncio.sleep(0.05)
            lags.append(max(0.0, loop.time() - t - 0.05))

    async def stream() -> None:
        t0 = loop.time()
        first = None
        n = 0
        try:
            async for _ in one():
                if first is None:
                    first = loop.time() - t0
                n += 1
            if n != tokens:
                errors.append(f"short stream: got {n} of {tokens} tokens")
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
        if first is not None:
            ttfts.append(first)
        counts.append(n)

    async def batch(run: Any) -> None:  # one call for all k (LangChain's abatch): no first token to time
        from bench.firehose import token_text

        whole = "".join(token_text(i) for i in range(tokens))
        try:
            texts = await run(k)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
            return
        errors.extend(f"short answer: {len(t)} of {len(whole)} characters" for t in texts if t != whole)
        counts.extend(tokens if t == whole else 0 for t in texts)

    sampler = asyncio.ensure_future(sample_rss())
    c0, t0 = time.process_time(), time.perf_counter()
    run = getattr(one, "batch", None)
    await (batch(run) if run is not None else asyncio.gather(*(stream() for _ in range(k))))
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    sampler.cancel()
    peak[0] = max(peak[0], _rss_mb())
    ttfts.sort()

    def pct(p: float) -> float | None:
        if not ttfts:
            return None
        return ttfts[min(len(ttfts) - 1, round(p / 100 * (len(ttfts) - 1)))]

    return {
        "streams": k,
        "wall_s": wall,
        "cpu_s": cpu,
        "ttft_p50_s": pct(50),
        "ttft_p90_s": pct(90),
        "ttft_p99_s": pct(99),
        "ttft_max_s": ttfts[-1] if ttfts else None,
        "errors": len(errors),
        "error_kinds": sorted({e.split(":")[0] for e in errors})[:5],
        "error_sample": errors[:3],
        "tokens_total": sum(counts),
        "cpu_us_per_event": cpu / sum(counts) * 1e6 if sum(counts) else None,
        "loop_lag_p99_ms": sorted(lags)[min(len(lags) - 1, round(0.99 * (len(lags) - 1)))] * 1000
        if lags
        else None,
        "loop_lag_max_ms": max(lags) * 1000 if lags else None,
        "rss_base_mb": base_rss,
        "rss_peak_mb": peak[0],
        "rss_delta_mb": peak[0] - base_rss,
    }


def interleaved(job: dict[str, Any]) -> dict[str, Any]:
    """Several sync clients in one process, timed in turns (a shuffled order every round), so that a real
    engine's speed drifting with the machine's load hits every client alike; each client is warmed up with
    one whole stream first. Used against llama-server, where the engine, not the client, sets the pace."""
    import random

    clients = list(job["clients"])
    ones = {}
    for name in clients:
        _, one = _setup({"client": name, "base": job["base"], "opts": job.get("opts")})
        _drain_sync(one)
        ones[name] = one
    rng = random.Random(job.get("seed", 3))
    rounds: list[dict[str, dict[str, float]]] = []
    for _ in range(int(job["rounds"])):
        order = clients[:]
        rng.shuffle(order)
        this: dict[str, dict[str, float]] = {}
        for name in order:
            gc.collect()
            c0, t0 = time.process_time(), time.perf_counter()
            n, chars = _drain_sync(ones[name])
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            this[name] = {
                "chunks": n,
                "chars": chars,
                "wall_s": wall,
                "cpu_s": cpu,
                "tokens_per_s": n / wall if wall > 0 else 0.0,
            }
        rounds.append(this)
    return {"rounds": rounds}


def paired(job: dict[str, Any]) -> dict[str, Any]:
    """One client, two streams of N tokens (``variants``: "plain" first, then the one compared with it),
    or one stream each of several clients (a ``"client"`` per variant), timed in this one process in
    alternating order (A B B A ..., A B C C B A ...), so that all meet the same interpreter
    state, allocator and machine load; each variant gets its own client object (the firehose URL carries
    the stream shape) and a warm-up stream. Every timed stream is checked: the characters delivered as
    reasoning and as answer (``one.split``) must match the variant's ``expect``."""
    from bench.clients import BY_NAME

    names = list(job["variants"])
    specs = {v: BY_NAME[job["variants"][v].get("client", job.get("client"))] for v in names}
    ones = {v: specs[v].setup(job["variants"][v]["base"], job.get("opts") or {}) for v in names}
    if len({s.mode for s in specs.values()}) != 1:
        return {"error": "paired variants must all be sync or all async"}
    is_async = specs[names[0]].mode == "async"
    repeats = int(job.get("repeats", 2))
    warm = int(job.get("warmup", WARMUP_CHUNKS))
    tokens = int(job["tokens"])
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in names}
    errors: list[str] = []

    def record(v: str, wall: float, cpu: float, n: int, chars: int) -> None:
        split = list(getattr(ones[v], "split", [0, chars]))
        expect = job["variants"][v].get("expect")
        if expect is not None and split != list(expect):
            errors.append(f"{v}: delivered (reasoning, answer) = {split} characters, expected {list(expect)}")
        runs[v].append(
            {
                "chunks": n,
                "chars": chars,
                "split": split,
                "wall_s": wall,
                "cpu_s": cpu,
                "tokens_per_s": tokens / wall if wall > 0 else 0.0,
                "tokens_per_cpu_s": tokens / cpu if cpu > 0 else 0.0,
            }
        )

    order = [
        v for r in range(repeats) for v in (names if r % 2 == 0 else names[::-1])
    ]  # A B C C B A A B C ...
    if is_async:

        async def run() -> None:
            for v in names:
                if warm:
                    await _drain_async(ones[v], warm)
            for v in order:
                gc.collect()
                c0, t0 = time.process_time(), time.perf_counter()
                n, chars = await _drain_async(ones[v])
                record(v, time.perf_counter() - t0, time.process_time() - c0, n, chars)

        asyncio.run(run())
    else:
        for v in names:
            if warm:
                _drain_sync(ones[v], warm)
        for v in order:
            gc.collect()
            c0, t0 = time.process_time(), time.perf_counter()
            n, chars = _drain_sync(ones[v])
            record(v, time.perf_counter() - t0, time.process_time() - c0, n, chars)
    out: dict[str, Any] = {"runs": runs, "order": order, "peak_rss_mb": _peak_rss_mb()}
    if errors:
        out["error"] = "; ".join(sorted(set(errors)))
    return out


def codec(job: dict[str, Any]) -> dict[str, Any]:
    """``{"kind": "codec", "dialect": "tgi+think", "tokens": N, "k": K}``: the engine layer alone, no HTTP:
    the firehose's chat body for ``dialect``, one HTTP chunk per SSE event as the transport receives it,
    decoded K times through ``SSEDecoder`` and the dialect's chat stream decoder (what the transports run
    on each chunk). Meant to run under an instruction counter: the difference between K=2 and K=1 is one
    warm decode of the stream."""
    from bench.firehose import _unchunk
    from bench.firehose import split_dialect
    from bench.firehose import stream_events
    from engine_clients import Reasoning
    from engine_clients import Token
    from engine_clients._sse import SSEDecoder
    from engine_clients.dialects.llamacpp import LlamaCppDialect
    from engine_clients.dialects.tgi import TGIDialect
    from engine_clients.dialects.vllm import VLLMDialect

    dialect, n = job["dialect"], int(job["tokens"])
    cls = {"vllm": VLLMDialect, "tgi": TGIDialect, "llamacpp": LlamaCppDialect}[split_dialect(dialect)[0]]
    chunks = [_unchunk(c) for c in stream_events(dialect, "chat", n)]
    split = [0, 0]
    for _ in range(int(job.get("k", 1))):
        decoder = cls("bench-model").chat_stream_decoder()
        sse = SSEDecoder()
        split = [0, 0]
        for chunk in chunks:
            for event in sse.feed(chunk):
                for ev in decoder.feed(event):
                    t = type(ev)
                    if t is Token:
                        split[1] += len(ev.text)
                    elif t is Reasoning:
                        split[0] += len(ev.text)
    return {"split": split}


def main() -> None:
    job = json.loads(sys.argv[1])
    try:
        if job["kind"] in ("decode", "e2e"):
            out = decode(job)
        elif job["kind"] == "codec":
            out = codec(job)
        elif job["kind"] == "paired":
            out = paired(job)
        elif job["kind"] == "interleaved":
            out = interleaved(job)
        elif job["kind"] == "concurrency":
            out = concurrency(job)
        else:
            raise SystemExit(f"unknown job kind {job['kind']!r}")
    except Exception as exc:
        out = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
    sys.stdout.write("\n@@RESULT " + json.dumps(out) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
