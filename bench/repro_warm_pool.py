"""Reproducer: a burst of concurrent streams is about twice as slow when the httpx pool already holds an idle
keep-alive connection. Not part of ``python -m bench``; run it in the bench venv::

    python -m bench.repro_warm_pool            # raw httpx and VLLMClient, cold pool and warm pool

Each case starts a firehose, opens 1,000 concurrent streams of 64 tokens paced at 78.1 ms (ideal 5.05 s) on
one client, and prints wall time against the ideal and TTFT. "warm" means one complete request was made on the
client first, so its pool holds an idle connection when the burst starts (the usual state of a long-lived
client; engine_clients returns a stream's connection to the pool once the stream completed). The raw client
reads each body to its end, so it pools connections too (unlimited keep-alive), as engine_clients does (64).

Seen on the 2-core bench machine (ideal 5.05 s): VLLMClient 1.5x ideal with a cold pool, 3.1x with a warm one
(TTFT p99 1.6 s -> 10 s); raw httpx pooling every connection 5.0x / 6.0x. httpcore's pool bookkeeping
(``AsyncConnectionPool._assign_requests_to_connections``, run on every request and every response close)
scans all connections, and once idle ones exist the keep-alive check rescans the whole list for each of them.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

STREAMS = 1000
TOKENS = 64
DELAY_MS = 78.1
TTFT_MS = 50.0
IDEAL = (TTFT_MS + TOKENS * DELAY_MS) / 1000


async def burst_raw(base: str, warm: bool) -> tuple[float, list[float]]:
    import httpx

    client = httpx.AsyncClient(timeout=120.0, limits=httpx.Limits(max_connections=None))
    if warm:
        await client.get(base + "/health")  # a complete request: its connection stays in the pool
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    url = base + "/v1/chat/completions"

    async def one() -> float:
        t0 = time.perf_counter()
        first = 0.0
        async with client.stream("POST", url, json=body) as r:
            async for _ in r.aiter_bytes():
                first = first or time.perf_counter() - t0
        return first

    t0 = time.perf_counter()
    ttfts = await asyncio.gather(*(one() for _ in range(STREAMS)))
    wall = time.perf_counter() - t0
    await client.aclose()
    return wall, sorted(ttfts)


async def burst_engine_client(base: str, warm: bool) -> tuple[float, list[float]]:
    from engine_clients import Token
    from engine_clients import VLLMClient

    client = VLLMClient(base, model="m")
    if warm:
        await client.ahealth()  # a complete request: its connection stays in the pool

    async def one() -> float:
        t0 = time.perf_counter()
        first = 0.0
        async for ev in client.achat_stream("hi"):
            if type(ev) is Token and not first:
                first = time.perf_counter() - t0
        return first

    t0 = time.perf_counter()
    ttfts = await asyncio.gather(*(one() for _ in range(STREAMS)))
    wall = time.perf_counter() - t0
    await client.aclose()
    return wall, sorted(ttfts)


def main() -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.firehose", "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline().split()[1])
        base = f"http://127.0.0.1:{port}/vllm/{TOKENS}/{DELAY_MS:g}/{TTFT_MS:g}"
        print(f"{STREAMS} concurrent streams x {TOKENS} tokens at {DELAY_MS:g} ms/token; ideal {IDEAL:.2f} s")
        for name, fn in (("raw httpx", burst_raw), ("VLLMClient", burst_engine_client)):
            for warm in (False, True):
                wall, ttfts = asyncio.run(fn(base, warm))
                p50, p99 = ttfts[len(ttfts) // 2], ttfts[int(len(ttfts) * 0.99)]
                print(
                    json.dumps(
                        {
                            "client": name,
                            "pool": "warm" if warm else "cold",
                            "wall_s": round(wall, 2),
                            "wall_over_ideal": round(wall / IDEAL, 2),
                            "ttft_p50_ms": round(p50 * 1000),
                            "ttft_p99_ms": round(p99 * 1000),
                        }
                    ),
                    flush=True,
                )
    finally:
        server.terminate()
        server.wait(5)


if __name__ == "__main__":
    main()
