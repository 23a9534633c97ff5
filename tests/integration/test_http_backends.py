"""The aiohttp socket layer (``http_backend="aiohttp"``, issue 22) through the same contract as httpx's: real
llama-server answers and streams, a stalled stream, Retry-After, refused connections, a stream cut by the
server, cancellation freeing the server's slot, and no cap on concurrent connections."""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from httpx_aiohttp import AiohttpTransport

from engine_clients import EngineUnavailableError
from engine_clients import LlamaCppClient
from engine_clients import StreamError
from engine_clients import StreamTimeoutError
from engine_clients import Timeouts
from engine_clients import Token
from engine_clients import VLLMClient
from engine_clients.testing import EngineServer
from tests.integration.test_faults import OK_BODY
from tests.integration.test_faults import Handler
from tests.integration.test_faults import LoopbackServer
from tests.integration.test_faults import dead_url
from tests.integration.test_faults import limited_then_ok
from tests.integration.test_faults import loopback  # noqa: F401 - the fixture
from tests.integration.test_faults import stall_after_one_chunk

pytestmark = pytest.mark.integration
GREEDY: dict[str, Any] = {"temperature": 0, "max_tokens": 32}
BACKENDS = ["httpx", "aiohttp"]
CHATML_HI = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"  # the scripted models' prompt format


@pytest.mark.parametrize("backend", BACKENDS)
async def test_chat_and_stream_on_a_real_server(backend: str, llama_server: EngineServer) -> None:
    client = LlamaCppClient(llama_server.base_url, http_backend=backend)
    answer = await client.achat("hi", **GREEDY)
    text = "".join([e.text async for e in client.achat_stream("hi", **GREEDY) if isinstance(e, Token)])
    assert answer.content == text == " Hello world."
    assert answer.usage is not None and answer.usage.completion_tokens > 0
    await client.aclose()


async def test_the_environment_variable_picks_the_backend(
    monkeypatch: pytest.MonkeyPatch, llama_server: EngineServer
) -> None:
    monkeypatch.setenv("ENGINE_CLIENTS_HTTP_BACKEND", "aiohttp")
    client = LlamaCppClient(llama_server.base_url)
    assert client.http_backend == "aiohttp"
    assert isinstance(client.async_transport.client._transport, AiohttpTransport)
    assert (await client.achat("hi", **GREEDY)).content == " Hello world."
    await client.aclose()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_stalled_stream_hits_the_chunk_timeout_with_its_partial_text(
    backend: str,
    loopback: Callable[[Handler], LoopbackServer],  # noqa: F811
) -> None:
    server = loopback(stall_after_one_chunk)
    client = VLLMClient(
        server.url, timeout=Timeouts(connect=2, read=30, chunk=0.5), max_retries=3, http_backend=backend
    )
    texts: list[str] = []
    with pytest.raises(StreamTimeoutError) as info:
        async for e in client.achat_stream("hi"):
            texts += [e.text] if isinstance(e, Token) else []
    assert texts == ["par"] and info.value.partial_text == "par"
    assert server.count == 1  # not retried: output had begun
    await client.aclose()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_retry_after_is_honoured(backend: str, loopback: Callable[[Handler], LoopbackServer]) -> None:  # noqa: F811
    server = loopback(limited_then_ok)
    client = VLLMClient(server.url, max_retries=2, http_backend=backend)
    result = await client.achat("hi")
    assert result.content == "ok" and server.count == 3
    gaps = [b - a for a, b in zip(server.times, server.times[1:], strict=False)]
    assert all(g >= 0.95 for g in gaps), gaps
    await client.aclose()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_routers_session_cookie_stays_with_its_session(backend: str) -> None:
    """A cookie router (llm-d) on a host name (aiohttp's own jar skips IP addresses): each session sends its
    own cookie and never another session's, on both backends."""
    from aiohttp import web

    seen: list[str] = []

    async def chat(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Cookie", ""))
        answer = web.Response(body=OK_BODY, content_type="application/json")
        if not request.headers.get("Cookie"):
            answer.set_cookie("llm-d-session", f"replica{len(seen)}")
        return answer

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    client = VLLMClient(f"http://localhost:{port}", model="m", http_backend=backend, affinity="llm-d")
    try:
        for session in ("A", "B", "A", "B"):
            await client.achat("hi", session_id=session)
    finally:
        await client.aclose()
        await runner.cleanup()
    assert seen == ["", "", "llm-d-session=replica1", "llm-d-session=replica2"]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_refused_connection_is_retried_then_typed(backend: str) -> None:
    client = VLLMClient(dead_url(), max_retries=1, timeout=Timeouts(connect=2), http_backend=backend)
    with pytest.raises(EngineUnavailableError):
        await client.achat("hi")
    await client.aclose()


async def cut_after_one_chunk(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await stall_and_cut(writer)


async def stall_and_cut(writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
    event = (
        b'data: {"id":"c","object":"chat.completion.chunk","model":"m",'
        b'"choices":[{"index":0,"delta":{"content":"par"},"finish_reason":null}]}\n\n'
    )
    writer.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
    await writer.drain()
    writer.transport.abort()  # the connection dies mid-body


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_cut_stream_is_an_error_with_the_partial_text(
    backend: str,
    loopback: Callable[[Handler], LoopbackServer],  # noqa: F811
) -> None:
    server = loopback(cut_after_one_chunk)
    client = VLLMClient(server.url, max_retries=2, http_backend=backend)
    with pytest.raises(StreamError) as info:
        async for _ in client.achat_stream("hi"):
            pass
    assert info.value.partial_text == "par" and server.count == 1
    await client.aclose()


def _busy_slots(server: EngineServer) -> int:
    slots = httpx.get(f"{server.base_url}/slots", timeout=5).json()
    return sum(1 for s in slots if s.get("is_processing"))


@pytest.mark.parametrize("backend", BACKENDS)
async def test_leaving_a_stream_frees_the_servers_slot(backend: str, llama_server: EngineServer) -> None:
    client = LlamaCppClient(llama_server.base_url, http_backend=backend)
    stream = client.achat_stream("hi", temperature=0, max_tokens=4000, extra_body={"ignore_eos": True})
    seen = 0
    async for event in stream:
        seen += isinstance(event, Token)
        if seen >= 5:
            break
    await stream.aclose()  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while _busy_slots(llama_server) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert _busy_slots(llama_server) == 0
    await client.aclose()


async def test_no_cap_on_concurrent_connections(loopback: Callable[[Handler], LoopbackServer]) -> None:  # noqa: F811
    """150 requests at once all get their own connection: aiohttp's default cap of 100 is lifted."""
    open_now = 0
    most = 0

    async def slow(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_now, most
        open_now += 1
        most = max(most, open_now)
        await asyncio.sleep(0.5)
        open_now -= 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()

    server = loopback(slow)
    client = VLLMClient(server.url, http_backend="aiohttp")
    transport = client.async_transport
    from engine_clients.dialects.base import HttpRequest

    await asyncio.gather(*(transport.request(HttpRequest("GET", "/x")) for _ in range(150)))
    assert server.count == 150 and most > 100
    await client.aclose()


# ---- the dialect matrix and pickling on the aiohttp backend ---------------------------------------------


@pytest.mark.parametrize("engine", ["llamacpp", "vllm", "sglang"])
async def test_every_engine_streams_on_aiohttp(engine: str, request: pytest.FixtureRequest) -> None:
    """Each engine's chat, stream and native text stream through aiohttp's sockets (TGI cannot run here; its
    dialect is the same code above the socket layer)."""
    from engine_clients import SGLangClient
    from engine_clients.testing.fake_sglang import start_fake_sglang

    with contextlib.ExitStack() as stack:
        if engine == "sglang":
            server: Any = stack.enter_context(start_fake_sglang())
            client: Any = SGLangClient(server.base_url, http_backend="aiohttp")
        else:
            server = request.getfixturevalue("llama_server" if engine == "llamacpp" else "vllm_server")
            cls = LlamaCppClient if engine == "llamacpp" else VLLMClient
            client = cls(server.base_url, model=server.model, http_backend="aiohttp")
        answer = await client.achat("hi", **GREEDY)
        streamed = "".join(
            [e.text async for e in client.achat_stream("hi", **GREEDY) if isinstance(e, Token)]
        )
        generated = "".join(
            [e.text async for e in client.agenerate_stream(CHATML_HI, max_tokens=8) if isinstance(e, Token)]
        )
        assert answer.content.strip() == streamed.strip() == "Hello world."
        assert generated  # the native text route streams too
        await client.aclose()


def test_pickling_is_the_same_on_aiohttp(llama_server: EngineServer) -> None:
    from langchain_selfhosted import ChatLlamaCpp

    client = LlamaCppClient(llama_server.base_url, http_backend="aiohttp")
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(client)
    model = ChatLlamaCpp(base_url=llama_server.base_url, http_backend="aiohttp", max_tokens=8, temperature=0)
    restored = pickle.loads(pickle.dumps(model))
    assert restored.http_backend == "aiohttp"
    assert restored.invoke("hi").content.strip() == "Hello world."


@pytest.mark.parametrize("backend", BACKENDS)
def test_both_backends_run_on_uvloop(backend: str, llama_server: EngineServer) -> None:
    """uvloop is an option, never a requirement: on its event loop a client answers, streams, and leaves a
    stream early (the server's slot freed, as on asyncio's loop)."""
    import uvloop

    async def main() -> tuple[str, str, str, str]:
        client = LlamaCppClient(llama_server.base_url, http_backend=backend)
        try:
            answer = await client.achat("hi", **GREEDY)
            text = "".join(
                [e.text async for e in client.achat_stream("hi", **GREEDY) if isinstance(e, Token)]
            )
            stream = client.achat_stream("hi", **GREEDY)
            async for event in stream:
                if isinstance(event, Token):
                    break
            await stream.aclose()  # type: ignore[attr-defined]
            after = await client.achat("hi", **GREEDY)  # the connection pool still works
            return type(asyncio.get_running_loop()).__module__, answer.content, text, after.content
        finally:
            await client.aclose()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        loop_module, content, text, after = runner.run(main())
    assert loop_module.startswith("uvloop")
    assert content == text == after == " Hello world."
