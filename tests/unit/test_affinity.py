"""session_id on single clients: what reaches a router (respx fakes), per preset, sync and async, streams
included; the cookie router's jar per session; bad ids refused before sending; a fork drops the parent's
connections."""

from __future__ import annotations

import asyncio
import json
import os

import httpx
import pytest
import respx

from engine_clients import InvalidRequestError
from engine_clients import LlamaCppClient
from engine_clients import SessionAffinity
from engine_clients import TGIClient
from engine_clients import VLLMClient

URL = "http://router.test"
CHAT = {
    "id": "c",
    "object": "chat.completion",
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
}
CHUNKS = [
    {"id": "c", "object": "chat.completion.chunk", "model": "m",
     "choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": None}]},
    {"id": "c", "object": "chat.completion.chunk", "model": "m",
     "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
]  # fmt: skip
SSE = "".join(f"data: {json.dumps(c)}\n\n" for c in CHUNKS) + "data: [DONE]\n\n"


def _answer(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    if body.get("stream"):
        return httpx.Response(200, text=SSE, headers={"content-type": "text/event-stream"})
    return httpx.Response(200, json=CHAT)


@pytest.mark.parametrize(
    ("preset", "header"),
    [("vllm-router", "x-session-id"), ("litellm", "x-litellm-session-id"), ("dynamo", "x-dynamo-session-id")],
)
def test_header_presets_carry_the_session_id(preset: str, header: str) -> None:
    with respx.mock(base_url=URL) as mock:
        route = mock.post("/v1/chat/completions").mock(side_effect=_answer)
        client = VLLMClient(URL, affinity=preset)
        client.chat("hi", session_id="user-1")
        list(client.chat_stream("hi", session_id="user-2"))
        client.chat("hi")  # no session: no header
        sent = [c.request.headers.get(header) for c in route.calls]
        assert sent == ["user-1", "user-2", None]


def test_default_is_vllm_router_and_async_paths_carry_it_too() -> None:
    async def go() -> None:
        async with LlamaCppClient(URL) as client:
            await client.achat("hi", session_id="a")
            [e async for e in client.achat_stream("hi", session_id="b")]

    with respx.mock(base_url=URL) as mock:
        route = mock.post("/v1/chat/completions").mock(side_effect=_answer)
        asyncio.run(go())
        assert [c.request.headers["x-session-id"] for c in route.calls] == ["a", "b"]


def test_generate_routes_carry_it() -> None:
    with respx.mock(base_url=URL) as mock:
        route = mock.post("/generate").mock(
            return_value=httpx.Response(200, json={"generated_text": "ok", "details": None})
        )
        TGIClient(URL, affinity=SessionAffinity("header", "X-My-Session")).generate("hi", session_id="s")
        assert route.calls[0].request.headers["x-my-session"] == "s"


def test_cookie_router_keeps_one_jar_per_session() -> None:
    issued: dict[str, str] = {}

    def gateway(request: httpx.Request) -> httpx.Response:
        cookie = request.headers.get("cookie", "")
        if "llm-d-session=" in cookie:
            return httpx.Response(200, json=CHAT)
        pod = f"pod-{len(issued)}"
        issued[pod] = cookie
        return httpx.Response(200, json=CHAT, headers={"set-cookie": f"llm-d-session={pod}; Path=/; HttpOnly"})

    with respx.mock(base_url=URL) as mock:
        route = mock.post("/v1/chat/completions").mock(side_effect=gateway)
        client = VLLMClient(URL, affinity="llm-d")
        for sid in ("alice", "bob", "alice", "bob", "alice"):
            client.chat("hi", session_id=sid)
        cookies = [c.request.headers.get("cookie") for c in route.calls]
        # each session's first request carries no cookie (not even the other session's); later ones their own
        assert cookies == ["", "", "llm-d-session=pod-0", "llm-d-session=pod-1", "llm-d-session=pod-0"]


def test_a_bad_session_id_is_refused_before_sending() -> None:
    with respx.mock(base_url=URL, assert_all_called=False) as mock:
        route = mock.post("/v1/chat/completions").mock(side_effect=_answer)
        client = VLLMClient(URL)
        for bad in ("", "a\r\nX-Injected: 1"):
            with pytest.raises(InvalidRequestError):
                client.chat("hi", session_id=bad)
        assert not route.calls


def test_unknown_preset_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="unknown router"):
        VLLMClient(URL, affinity="nginx")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_drops_the_parents_transport() -> None:
    client = VLLMClient(URL)
    parent_transport = client.sync_transport
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        ok = client.sync_transport is not parent_transport
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    try:
        assert os.read(read, 1) == b"1"
    finally:
        os.close(read)
        os.waitpid(pid, 0)
    assert client.sync_transport is parent_transport  # the parent keeps its own
