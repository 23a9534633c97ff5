"""Faults on real sockets: replicas killed mid-stream, refusing connections, stalling, rate limiting, and a pool
that keeps serving with a dead replica. Real llama-server processes where the fault is the engine's; tiny
loopback servers where the fault is a misbehaving network or proxy. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import time
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import pytest

from engine_clients import End
from engine_clients import LlamaCppClient
from engine_clients import RateLimitError
from engine_clients import Started
from engine_clients import StreamError
from engine_clients import StreamTimeoutError
from engine_clients import Timeouts
from engine_clients import Token
from engine_clients import VLLMClient
from engine_clients._pool import EnginePool
from engine_clients.testing import EngineServer
from engine_clients.testing import start_llama_server

HELLO = " Hello world."
GREEDY: dict[str, Any] = {"temperature": 0, "max_tokens": 32}


def dead_url() -> str:
    """A loopback URL where nothing listens: connections are refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def kill(server: EngineServer) -> None:
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait(10)


# ---- a tiny scripted HTTP server on loopback ------------------------------------------------------------

Handler = Callable[[int, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class LoopbackServer:
    """Runs ``handler(request_number, reader, writer)`` for each connection, in its own thread and loop."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.count = 0
        self.times: list[float] = []
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                self.count += 1
                self.times.append(time.monotonic())
                await self.handler(self.count, reader, writer)
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        async def stop() -> None:
            self.server.close()
            await self.server.wait_closed()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def response(status: int, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    reason = {200: "OK", 429: "Too Many Requests", 503: "Service Unavailable"}.get(status, "X")
    lines = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}", "Content-Type: application/json"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


OK_BODY = (
    b'{"id":"chatcmpl-1","object":"chat.completion","model":"m","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}'
)


@pytest.fixture
def loopback() -> Iterator[Callable[[Handler], LoopbackServer]]:
    servers: list[LoopbackServer] = []

    def make(handler: Handler) -> LoopbackServer:
        servers.append(LoopbackServer(handler))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


# ---- a replica killed mid-stream --------------------------------------------------------------------------


@pytest.fixture
def victim() -> Iterator[EngineServer]:
    """A llama-server of its own (one 8k slot, so a long generation streams for seconds), to be killed."""
    with start_llama_server(parallel=1, ctx_size=8192) as server:
        yield server


LONG: dict[str, Any] = {"max_tokens": 6000, "extra_body": {"ignore_eos": True}}


def test_replica_killed_mid_stream_raises_stream_error_with_partial_text(
    victim: EngineServer, llama_server: EngineServer
) -> None:
    pool = EnginePool([victim.base_url, llama_server.base_url], engine="llamacpp", max_retries=2)
    texts: list[str] = []
    killed_at = 0.0
    with pytest.raises(StreamError) as info:
        for event in pool.generate_stream("Hello", **LONG):  # a fresh pool starts on its first replica
            if isinstance(event, Token):
                texts.append(event.text)
                if len(texts) == 20:
                    killed_at = time.monotonic()
                    kill(victim)
    waited = time.monotonic() - killed_at
    err = info.value
    print(f"\nkilled after {len(texts)} tokens; StreamError {waited * 1000:.0f} ms later: {info.value}")
    assert killed_at and waited < 5.0, f"the cut took {waited:.1f} s to surface"
    assert err.partial_text == "".join(texts) and len(texts) >= 20
    assert not isinstance(err, StreamTimeoutError)  # a reset, not the chunk timeout
    st = pool.stats()
    assert st.replicas[1].requests == 0 and st.failovers == 0  # never repeated on the other replica
    assert st.failures == 1 and st.replicas[0].failures == 1
    # the pool goes on serving from the survivor
    for _ in range(5):
        assert pool.chat("hi", **GREEDY).content == HELLO
    pool.close()


async def test_replica_killed_mid_stream_async(victim: EngineServer) -> None:
    client = LlamaCppClient(victim.base_url)
    texts: list[str] = []
    killed_at = 0.0
    with pytest.raises(StreamError) as info:
        async for event in client.agenerate_stream("Hello", **LONG):
            if isinstance(event, Token):
                texts.append(event.text)
                if len(texts) == 20:
                    killed_at = time.monotonic()
                    await asyncio.to_thread(kill, victim)
    assert time.monotonic() - killed_at < 5.0
    assert info.value.partial_text == "".join(texts)
    await client.aclose()


# ---- refused connections: retried, then failed over -------------------------------------------------------


def test_refusing_replica_is_retried_then_failed_over(llama_server: EngineServer) -> None:
    dead = dead_url()
    pool = EnginePool([dead, llama_server.base_url], engine="llamacpp", max_retries=2)
    t = time.monotonic()
    assert pool.chat("hi", **GREEDY).content == HELLO
    took = time.monotonic() - t
    st = pool.stats()
    assert (st.replicas[0].requests, st.replicas[0].retries, st.replicas[0].failures) == (1, 2, 1)
    assert (st.replicas[1].successes, st.failovers, st.failures) == (1, 1, 0)
    assert 0.5 <= took < 6.0  # two back-offs (0.5-1 s, then 1-1.5 s) on the dead replica, then the live one
    events = list(pool.chat_stream("hi", **GREEDY))  # a stream fails over the same way (or skips it)
    assert sum(isinstance(e, Started) for e in events) == 1 and events[-1].content == HELLO
    pool.close()


# ---- a stalled stream -------------------------------------------------------------------------------------


async def stall_after_one_chunk(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
    event = (
        b'data: {"id":"c","object":"chat.completion.chunk","model":"m",'
        b'"choices":[{"index":0,"delta":{"content":"par"},"finish_reason":null}]}\n\n'
    )
    writer.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
    await writer.drain()
    await asyncio.sleep(30)  # then nothing, with the connection open


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_stalled_stream_hits_the_inter_chunk_timeout(
    mode: str, loopback: Callable[[Handler], LoopbackServer]
) -> None:
    server = loopback(stall_after_one_chunk)
    client = VLLMClient(server.url, timeout=Timeouts(connect=2, read=30, chunk=0.5), max_retries=3)
    texts: list[str] = []
    t = time.monotonic()
    with pytest.raises(StreamTimeoutError) as info:
        if mode == "sync":
            for e in client.chat_stream("hi"):
                texts += [e.text] if isinstance(e, Token) else []
        else:
            async for e in client.achat_stream("hi"):
                texts += [e.text] if isinstance(e, Token) else []
    took = time.monotonic() - t
    assert texts == ["par"] and info.value.partial_text == "par"
    assert 0.45 <= took < 3.0 and server.count == 1  # not retried: output had begun
    assert isinstance(info.value, TimeoutError)
    await client.aclose()


# ---- 429 / 503 with Retry-After ---------------------------------------------------------------------------


async def limited_then_ok(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    if n == 1:
        writer.write(response(429, b'{"error":"overloaded","error_type":"overloaded"}', {"Retry-After": "1"}))
    elif n == 2:
        writer.write(response(503, b"", {"Retry-After": "1"}))
    else:
        writer.write(response(200, OK_BODY))
    await writer.drain()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_429_and_503_retry_after_is_honoured(
    mode: str, loopback: Callable[[Handler], LoopbackServer]
) -> None:
    server = loopback(limited_then_ok)
    client = VLLMClient(server.url, max_retries=2)
    t = time.monotonic()
    result = client.chat("hi") if mode == "sync" else await client.achat("hi")
    took = time.monotonic() - t
    assert result.content == "ok" and server.count == 3
    gaps = [b - a for a, b in zip(server.times, server.times[1:], strict=False)]
    assert all(0.95 <= g < 2.0 for g in gaps), gaps  # each wait is the Retry-After, not the back-off
    assert 1.9 <= took < 4.0
    await client.aclose()


async def always_limited(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(response(429, b'{"error":"overloaded","error_type":"overloaded"}', {"Retry-After": "0.2"}))
    await writer.drain()


def test_429_everywhere_surfaces_as_rate_limit_error(loopback: Callable[[Handler], LoopbackServer]) -> None:
    a, b = loopback(always_limited), loopback(always_limited)
    pool = EnginePool([a.url, b.url], engine="vllm", max_retries=1)
    with pytest.raises(RateLimitError) as info:
        pool.chat("hi")
    assert info.value.retry_after == 0.2
    assert (a.count, b.count) == (2, 2)  # each replica: one try and one retry, then the pool gives up
    st = pool.stats()
    assert all(r.state == "closed" for r in st.replicas)  # busy is not broken: no breaker opened
    pool.close()


# ---- a pool with one dead replica -------------------------------------------------------------------------


@pytest.fixture
def second_replica() -> Iterator[EngineServer]:
    with start_llama_server() as server:
        yield server


async def test_pool_with_a_dead_replica_serves_200_requests_without_errors(
    llama_server: EngineServer, second_replica: EngineServer
) -> None:
    pool = EnginePool(
        [llama_server.base_url, dead_url(), second_replica.base_url],
        engine="llamacpp",
        max_retries=1,
        failure_threshold=2,
        cooldown=1.0,  # the dead replica gets a half-open trial every second: more faults, still no errors
        max_concurrency=4,
    )
    errors: list[BaseException] = []
    done = 0

    async def one(i: int) -> None:
        nonlocal done
        try:
            if i % 4 == 0:
                r = await pool.achat("hi", **GREEDY)
                assert r.content == HELLO, r.content
            else:
                events = [e async for e in pool.achat_stream("hi", session_id=f"s{i % 7}", **GREEDY)]
                tokens = "".join(e.text for e in events if isinstance(e, Token))
                assert sum(isinstance(e, Started) for e in events) == 1
                assert sum(isinstance(e, End) for e in events) == 1
                assert tokens == events[-1].content == HELLO, (tokens, events[-1].content)  # nothing twice
            done += 1
        except BaseException as exc:  # collected: the assertion below shows them all
            errors.append(exc)

    sem = asyncio.Semaphore(8)

    async def bounded(i: int) -> None:
        async with sem:
            await one(i)

    t = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(bounded(i) for i in range(200))), 120)
    took = time.monotonic() - t
    st = pool.stats()
    await pool.aclose()
    assert not errors, errors[:3]
    assert done == 200 and st.successes == 200 and st.failures == 0
    dead = st.replicas[1]
    assert dead.successes == 0 and dead.failures >= 2 and dead.state in ("open", "half_open")
    assert st.failovers == dead.failures  # every attempt on the dead replica was moved, none surfaced
    assert st.replicas[0].successes + st.replicas[2].successes == 200
    print(
        f"\n200 requests, {dead.failures} faults on the dead replica, {st.failovers} failovers, {took:.1f} s"
    )
