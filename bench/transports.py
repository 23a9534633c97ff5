"""Concurrency rows for the socket layer (issue 22): the engine client on aiohttp, the raw floors beneath any
client (a raw aiohttp loop, and an ``asyncio.Protocol`` that writes pre-built request bytes and splits chunked
SSE itself: the pure-Python floor), and the openai SDK on its own aiohttp client.

Kept apart from ``bench/clients.py``; that module appends :data:`TRANSPORT_SPECS` to its registry.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

from bench.clients import _LC
from bench.clients import MAX_TOKENS
from bench.clients import MESSAGES
from bench.clients import MODEL
from bench.clients import PROMPT
from bench.clients import Spec
from bench.clients import _construct
from bench.clients import _lc_noop
from bench.clients import _raw_body
from bench.clients import lc_astream

__all__ = ["TRANSPORT_SPECS"]


def _content(data: bytes | str) -> str | None:
    choices = json.loads(data).get("choices")
    return choices[0].get("delta", {}).get("content") if choices else None


def ec_aiohttp(base: str, opts: dict[str, Any]) -> Callable[[], AsyncIterator[str]]:
    from engine_clients import Token
    from engine_clients import VLLMClient

    client = VLLMClient(base, model=MODEL, timeout=600.0, http_backend="aiohttp")
    kw = {"max_tokens": opts.get("max_tokens", MAX_TOKENS)}

    async def one() -> AsyncIterator[str]:
        async for ev in client.achat_stream(MESSAGES, **kw):
            if type(ev) is Token:
                yield ev.text

    return one


def lc_aiohttp(base: str, opts: dict[str, Any]) -> Callable[[], AsyncIterator[str]]:
    import langchain_selfhosted as lc

    model = _construct(lc.ChatVLLM, base, {**opts, "http_backend": "aiohttp"}, "vllm")
    model.http_backend = "aiohttp"

    async def one() -> AsyncIterator[str]:
        async for chunk in model.astream(PROMPT):
            if chunk.content:
                yield chunk.content

    return one


def lc_abatch_aiohttp(base: str, opts: dict[str, Any]) -> Callable[[], AsyncIterator[str]]:
    """``ChatVLLM.abatch`` of N prompts (``streaming=True``: each ``ainvoke`` reads the paced stream, and
    ``abatch`` gathers them with ``max_concurrency=N``). The concurrency worker calls ``one.batch(N)``
    instead of gathering N streams itself; there is no first token to time."""
    import langchain_selfhosted as lc

    model = _construct(lc.ChatVLLM, base, {**opts, "http_backend": "aiohttp"}, "vllm")
    model.http_backend, model.streaming = "aiohttp", True
    one = lc_astream(model)

    async def batch(k: int) -> list[str]:
        messages = await model.abatch([PROMPT] * k, config={"max_concurrency": k})
        return [str(m.content) for m in messages]

    one.batch = batch  # type: ignore[attr-defined]
    return one


Body = Callable[[], AbstractAsyncContextManager[AsyncIterator[bytes]]]


def _raw_sse_loop(open_body: Body) -> Callable[[], AsyncIterator[str]]:
    """The raw loops' one stream: ``open_body()`` sends the request and gives the body's byte chunks; SSE is
    split by hand and each event's JSON read with json.loads. The same loop for every HTTP library, so that
    their rows differ only in the library."""

    async def one() -> AsyncIterator[str]:
        async with open_body() as chunks:
            buf = b""
            async for chunk in chunks:
                buf += chunk
                while b"\n\n" in buf:
                    event, buf = buf.split(b"\n\n", 1)
                    for line in event.split(b"\n"):
                        if line.startswith(b"data:"):
                            data = line[5:].strip()
                            if data == b"[DONE]":
                                return
                            text = _content(data)
                            if text:
                                yield text

    return one


def _aiohttp_texts(base: str, opts: dict[str, Any]) -> Callable[[], AsyncIterator[str]]:
    """The raw aiohttp loop: one session (made inside the running loop)."""
    import aiohttp

    path, body = _raw_body("chat", opts)
    url = base + path
    session: list[aiohttp.ClientSession] = []

    @asynccontextmanager
    async def open_body() -> AsyncIterator[AsyncIterator[bytes]]:
        if not session:
            session.append(aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)))
        async with session[0].post(url, json=body) as resp:
            yield resp.content.iter_any()

    return _raw_sse_loop(open_body)


def raw_httpx2(base: str, opts: dict[str, Any]) -> Callable[[], AsyncIterator[str]]:
    """The raw loop on httpx2 (Pydantic's httpx fork with httpcore's pool fixes, issue 22's second candidate):
    its own client and pool, no limits. Its exceptions are not httpx's, so the engine client cannot take an
    httpx2 client as its own; this row is the candidate's ceiling."""
    import httpx2  # type: ignore[import-not-found]

    client = httpx2.AsyncClient(
        timeout=httpx2.Timeout(600.0),
        limits=httpx2.Limits(max_connections=None, max_keepalive_connections=None),
    )
    path, body = _raw_body("chat", opts)
    url = base + path

    @asynccontextmanager
    async def open_body() -> AsyncIterator[AsyncIterator[bytes]]:
        async with client.stream("POST", url, json=body) as resp:
            yield resp.aiter_raw()

    return _raw_sse_loop(open_body)


def raw_aiohttp(base: str, opts: dict[str, Any]) -> Callable[[], AsyncIterator[str]]:
    return _aiohttp_texts(base, opts)


def lc_floor_aiohttp(base: str, opts: dict[str, Any]) -> Callable[[], AsyncIterator[str]]:
    """LangChain's own floor over the wire: the no-op ``BaseChatModel`` with the raw aiohttp loop as its
    ``_astream``, so ``astream`` costs the raw loop plus LangChain's callbacks, run tree and chunk merging,
    and nothing of this package. No LangChain chat model over aiohttp can do better at N streams."""
    return lc_astream(_lc_noop(base, _aiohttp_texts(base, opts)))


def raw_protocol(base: str, opts: dict[str, Any]) -> Callable[[], AsyncIterator[str]]:
    """One connection per stream (``Connection: close``); request bytes built once; the response's head,
    chunked framing and SSE events split by hand: no HTTP library at all."""
    import asyncio

    parts = urlsplit(base)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    route, body = _raw_body("chat", opts)
    path = parts.path.rstrip("/") + route  # the firehose's base URL carries the stream's shape in its path
    payload = json.dumps(body).encode()
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: text/event-stream\r\nContent-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    ).encode() + payload

    class Reader(asyncio.Protocol):
        def __init__(self) -> None:
            self.data = bytearray()
            self.closed = False
            self.wake: asyncio.Future[None] | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            transport.write(request)  # type: ignore[attr-defined]

        def data_received(self, data: bytes) -> None:
            self.data += data
            if self.wake is not None and not self.wake.done():
                self.wake.set_result(None)

        def connection_lost(self, exc: Exception | None) -> None:
            self.closed = True
            if self.wake is not None and not self.wake.done():
                self.wake.set_result(None)

        async def more(self) -> bytes:
            while not self.data and not self.closed:
                self.wake = asyncio.get_running_loop().create_future()
                await self.wake
            out = bytes(self.data)
            self.data.clear()
            return out

    async def one() -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_connection(Reader, host, port)
        try:
            raw = b""
            while b"\r\n\r\n" not in raw:
                got = await proto.more()
                if not got:
                    return
                raw += got
            head, raw = raw.split(b"\r\n\r\n", 1)
            chunked = b"chunked" in head.lower()
            body_buf, events = b"", b""
            ended = False
            while True:
                if chunked:
                    while True:  # take every whole chunk in raw
                        eol = raw.find(b"\r\n")
                        if eol < 0:
                            break
                        size = int(raw[:eol].split(b";")[0], 16)
                        if len(raw) < eol + 2 + size + 2:
                            break
                        if size == 0:
                            ended = True
                            break
                        body_buf += raw[eol + 2 : eol + 2 + size]
                        raw = raw[eol + 2 + size + 2 :]
                else:
                    body_buf, raw = body_buf + raw, b""
                events += body_buf
                body_buf = b""
                while b"\n\n" in events:
                    event, events = events.split(b"\n\n", 1)
                    if event.startswith(b"data:"):
                        data = event[5:].strip()
                        if data == b"[DONE]":
                            return
                        text = _content(data)
                        if text:
                            yield text
                if ended:
                    return
                got = await proto.more()
                if not got:
                    return
                raw += got
        finally:
            transport.close()

    return one


def openai_aiohttp(base: str, opts: dict[str, Any]) -> Callable[[], AsyncIterator[str]]:
    from openai import AsyncOpenAI
    from openai import DefaultAioHttpClient

    client = AsyncOpenAI(
        base_url=base + "/v1",
        api_key="bench",
        timeout=600.0,
        max_retries=0,
        http_client=DefaultAioHttpClient(),
    )
    mt = opts.get("max_tokens", MAX_TOKENS)

    async def one() -> AsyncIterator[str]:
        stream = await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, max_tokens=mt
        )  # type: ignore[arg-type]
        async for chunk in stream:
            if chunk.choices:
                text = chunk.choices[0].delta.content
                if text:
                    yield text

    return one


TRANSPORT_SPECS = [
    Spec(
        "raw:aiohttp+json:async",
        "raw",
        "async",
        raw_aiohttp,
        needs=("aiohttp",),
        label="raw aiohttp loop (async)",
    ),
    Spec(
        "raw:asyncio-protocol:async",
        "raw",
        "async",
        raw_protocol,
        label="raw asyncio.Protocol, hand-split chunked SSE (the pure-Python floor)",
    ),
    Spec(
        "engine_clients:VLLMClient.achat_stream:aiohttp",
        "ours",
        "async",
        ec_aiohttp,
        twin="raw:aiohttp+json:async",
        needs=("httpx_aiohttp",),
        label="engine_clients VLLMClient.achat_stream, http_backend=aiohttp",
    ),
    Spec(
        "langchain:ChatVLLM:async:aiohttp",
        "ours",
        "async",
        lc_aiohttp,
        twin="raw:aiohttp+json:async",
        needs=_LC,  # (missing_needs checks the class on each module it lists)
        label="langchain:ChatVLLM.astream, http_backend=aiohttp",
    ),
    Spec(
        "raw:httpx2+json:async",
        "raw",
        "async",
        raw_httpx2,
        needs=("httpx2",),
        label="raw httpx2 (httpx fork) loop, SSE split by hand (async)",
    ),
    Spec(
        "langchain:ChatVLLM:abatch:aiohttp",
        "ours",
        "async",
        lc_abatch_aiohttp,
        twin="raw:aiohttp+json:async",
        needs=_LC,
        scenario="concurrency",
        label="langchain:ChatVLLM.abatch (streaming=True), http_backend=aiohttp",
    ),
    Spec(
        "floor:langchain-core:aiohttp.astream",
        "floor",
        "async",
        lc_floor_aiohttp,
        twin="raw:aiohttp+json:async",
        needs=("aiohttp", "langchain_core"),
        scenario="concurrency",
        label="floor: a minimal LangChain BaseChatModel over the raw aiohttp loop (astream)",
    ),
    Spec(
        "peer:openai:aiohttp:async",
        "peer",
        "async",
        openai_aiohttp,
        twin="raw:aiohttp+json:async",
        needs=("httpx_aiohttp",),
        label="openai SDK chat.completions, DefaultAioHttpClient (async)",
    ),
]
