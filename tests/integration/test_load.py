"""Load: 1,000 concurrent streams through one async client (and through a pool), 10,000 sequential requests,
and a smaller run against a real llama-server. No errors, and every file descriptor the clients opened is
closed again once they are closed.

The counts run against a fast fake engine on loopback (this file, run as a script, in its own process so
that its sockets are not counted as ours): it speaks just enough HTTP/1.1 (keep-alive, Content-Length
request bodies, chunked SSE answers, one event per chunk, as vLLM's uvicorn sends them).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

TOKENS = ["Hel", "lo", " wor", "ld", ",", " all", " good", "."]
TEXT = "".join(TOKENS)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# ---- the fake engine (runs in a subprocess) ---------------------------------------------------------------


def _chunked(events: list[bytes]) -> bytes:
    out = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    for e in events:
        out += f"{len(e):x}\r\n".encode() + e + b"\r\n"
    return out + b"0\r\n\r\n"


def _json_response(obj: Any) -> bytes:
    body = json.dumps(obj).encode()
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def _build_answers() -> tuple[bytes, bytes]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        obj = {
            "id": "chatcmpl-load",
            "object": "chat.completion.chunk",
            "model": "fake",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return b"data: " + json.dumps(obj).encode() + b"\n\n"

    usage = {"prompt_tokens": 3, "completion_tokens": len(TOKENS), "total_tokens": 3 + len(TOKENS)}
    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": t}) for t in TOKENS]
    events += [chunk({}, "stop")]
    events += [
        b"data: "
        + json.dumps(
            {
                "id": "chatcmpl-load",
                "object": "chat.completion.chunk",
                "model": "fake",
                "choices": [],
                "usage": usage,
            }
        ).encode()
        + b"\n\n",
        b"data: [DONE]\n\n",
    ]
    plain = {
        "id": "chatcmpl-load",
        "object": "chat.completion",
        "model": "fake",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": TEXT}, "finish_reason": "stop"}],
        "usage": usage,
    }
    return _chunked(events), _json_response(plain)


def serve() -> None:
    stream_answer, plain_answer = _build_answers()
    counts = {"connections": 0, "requests": 0}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        counts["connections"] += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                body = await reader.readexactly(length) if length else b""
                counts["requests"] += 1
                if head.startswith(b"GET /stats"):
                    writer.write(_json_response(counts))
                elif b'"stream":true' in body or b'"stream": true' in body:
                    writer.write(stream_answer)
                else:
                    writer.write(plain_answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
        print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
        await server.serve_forever()

    asyncio.run(main())


class FakeEngine:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # the child prints its port once listening
        assert line.startswith("PORT "), line
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"

    def stats(self) -> dict[str, int]:
        import httpx

        with httpx.Client() as c:
            result: dict[str, int] = c.get(self.url + "/stats").json()
            return result

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeEngine]:
    engine = FakeEngine()
    yield engine
    engine.stop()


@pytest.fixture(scope="module")
def fake2() -> Iterator[FakeEngine]:
    engine = FakeEngine()
    yield engine
    engine.stop()


if __name__ == "__main__":  # the fake engine's process: serve, and never import the package under test
    serve()
    sys.exit(0)

# ---- the tests ---------------------------------------------------------------------------------------------

from engine_clients import End  # noqa: E402
from engine_clients import LlamaCppClient  # noqa: E402
from engine_clients import Timeouts  # noqa: E402
from engine_clients import Token  # noqa: E402
from engine_clients import VLLMClient  # noqa: E402
from engine_clients._pool import EnginePool  # noqa: E402
from engine_clients.testing import EngineServer  # noqa: E402

LIMITS = Timeouts(connect=30, read=60, chunk=60, write=60, pool=60)


async def consume(stream: Any) -> str:
    texts: list[str] = []
    end: End | None = None
    async for e in stream:
        if isinstance(e, Token):
            texts.append(e.text)
        elif isinstance(e, End):
            end = e
    assert end is not None and end.content == "".join(texts)
    return end.content


async def test_1000_concurrent_streams_through_one_async_client(fake: FakeEngine) -> None:
    gc.collect()
    before = open_fds()
    client = VLLMClient(fake.url, timeout=LIMITS, max_retries=0)
    peak = before

    async def one() -> str:
        nonlocal peak
        text = await consume(client.achat_stream("hi", max_tokens=16))
        peak = max(peak, open_fds())
        return text

    t = time.monotonic()
    results = await asyncio.wait_for(
        asyncio.gather(*(one() for _ in range(1000)), return_exceptions=True), 110
    )
    took = time.monotonic() - t
    errors = [r for r in results if not isinstance(r, str)]
    assert not errors, errors[:3]
    assert results == [TEXT] * 1000
    await client.aclose()
    gc.collect()
    after = open_fds()
    print(f"\n1000 concurrent streams in {took:.1f} s; fds {before} -> peak {peak} -> {after}")
    assert after == before


async def test_1000_concurrent_streams_through_a_pool(fake: FakeEngine, fake2: FakeEngine) -> None:
    gc.collect()
    before = open_fds()
    pool = EnginePool(
        [fake.url, fake2.url],
        engine="vllm",
        timeout=LIMITS,
        max_retries=0,
        max_concurrency=200,
        max_queue=1000,
        queue_timeout=60,
    )
    t = time.monotonic()
    results = await asyncio.wait_for(
        asyncio.gather(*(consume(pool.achat_stream("hi")) for _ in range(1000)), return_exceptions=True), 110
    )
    took = time.monotonic() - t
    assert [r for r in results if not isinstance(r, str)] == []
    st = pool.stats()
    await pool.aclose()
    gc.collect()
    after = open_fds()
    print(
        f"\npool: 1000 streams in {took:.1f} s (p50 {st.latency.p50:.3f} s, p99 {st.latency.p99:.3f} s, "
        f"ttft p50 {st.ttft.p50:.3f} s); per replica {[r.successes for r in st.replicas]}; fds {before} -> {after}"
    )
    assert (st.requests, st.successes, st.failures, st.rejected, st.in_flight, st.queued) == (
        1000,
        1000,
        0,
        0,
        0,
        0,
    )
    assert st.tokens_out == 1000 * len(TOKENS) and st.tokens_in == 3000
    assert all(r.successes >= 400 for r in st.replicas)  # both replicas carried the load
    assert after == before


def test_10000_sequential_requests(fake: FakeEngine) -> None:
    """9,000 plain and 1,000 streamed requests, one after another, through one sync client."""
    gc.collect()
    before = open_fds()
    conns = [fake.stats()["connections"]]
    t = time.monotonic()
    with VLLMClient(fake.url, timeout=LIMITS, max_retries=0) as client:
        for _ in range(9_000):
            assert client.chat("hi").content == TEXT
        conns.append(fake.stats()["connections"])
        for _ in range(1_000):
            events = list(client.chat_stream("hi"))
            assert events[-1].content == TEXT
        conns.append(fake.stats()["connections"])
    took = time.monotonic() - t
    gc.collect()
    after = open_fds()
    plain, streamed = conns[1] - conns[0] - 1, conns[2] - conns[1] - 1  # minus each /stats call's own
    print(
        f"\n10000 sequential requests in {took:.1f} s: 9000 plain over {plain} connection(s), "
        f"1000 streams over {streamed}; fds {before} -> {after}"
    )
    assert plain == 1  # keep-alive: one connection served every plain request
    # The transport reads the body's end after End, so streamed connections go back to the pool too.
    assert streamed <= 2
    assert after == before


async def test_real_llama_server_concurrent_and_sequential(llama_server: EngineServer) -> None:
    gc.collect()
    before = open_fds()
    client = LlamaCppClient(llama_server.base_url, timeout=LIMITS)
    t = time.monotonic()
    results = await asyncio.wait_for(
        asyncio.gather(
            *(consume(client.achat_stream("hi", temperature=0, max_tokens=32)) for _ in range(100)),
            return_exceptions=True,
        ),
        110,
    )
    assert results == [" Hello world."] * 100, [r for r in results if r != " Hello world."][:3]
    for _ in range(200):
        assert (await client.achat("hi", temperature=0, max_tokens=32)).content == " Hello world."
    with LlamaCppClient(llama_server.base_url, timeout=LIMITS) as sync_client:
        for _ in range(200):
            assert sync_client.chat("hi", temperature=0, max_tokens=32).content == " Hello world."
    took = time.monotonic() - t
    await client.aclose()
    gc.collect()
    after = open_fds()
    print(
        f"\nllama-server: 100 concurrent streams + 400 sequential chats in {took:.1f} s; fds {before} -> {after}"
    )
    assert after == before
