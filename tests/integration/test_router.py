"""The router tier: ``vllm-router`` (consistent_hash) in front of two llama-server replicas.

Through the router: detection, chat, streams, tools and structured output with engine_clients, LangChain and
LlamaIndex; session affinity checked with each replica's own counters (llama-server ``/metrics``); and what a
client sees when a replica is killed: requests keep succeeding, and a stream cut by the kill raises
StreamError with the partial text, never a silently short answer.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessageChunk
from langchain_selfhosted import ChatEngine
from langchain_selfhosted import ChatLlamaCpp
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from llama_index.llms.selfhosted import LlamaCpp
from pydantic import BaseModel

from engine_clients import End
from engine_clients import EnginePool
from engine_clients import InternalServerError
from engine_clients import LlamaCppClient
from engine_clients import SessionAffinity
from engine_clients import StreamError
from engine_clients import Token
from engine_clients import ToolCallDelta
from engine_clients import adetect_engine
from engine_clients import connect
from engine_clients import detect_engine
from engine_clients._detect import PROBE_PATHS
from engine_clients.testing import DEFAULT_CONTEXT
from engine_clients.testing import EngineServer
from engine_clients.testing import start_llama_server
from engine_clients.testing.router import llama_server_metrics
from engine_clients.testing.router import start_vllm_router

pytestmark = pytest.mark.integration

GREEDY: dict[str, Any] = {"temperature": 0, "max_tokens": 32}
TOOLS: dict[str, Any] = {"temperature": 0, "max_tokens": 128, "parallel_tool_calls": False}
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "n": {"type": "integer"}}, "required": ["name", "n"]}
WORK = "llamacpp:tokens_predicted_total"  # grows on the replica that generated an answer
POLL_S = 0.05


class Named(BaseModel):
    name: str
    n: int


@dataclass
class Tier:
    router: EngineServer
    replicas: tuple[EngineServer, ...]

    @property
    def url(self) -> str:
        return self.router.base_url

    def work(self) -> list[float]:
        return [llama_server_metrics(r.base_url).get(WORK, 0.0) for r in self.replicas]

    def served_by(self, before: list[float], timeout: float = 5.0) -> int:
        """The one replica whose work counter moved since ``before`` (polled: the counter is updated as
        the task is released, around the time its answer is sent)."""
        deadline = time.monotonic() + timeout
        while True:
            moved = [i for i, (a, b) in enumerate(zip(before, self.work(), strict=True)) if b > a]
            if moved or time.monotonic() >= deadline:
                assert len(moved) == 1, f"expected exactly one replica to do the work, saw {moved}"
                return moved[0]
            time.sleep(POLL_S)


def _replica(**kwargs: Any) -> EngineServer:
    return start_llama_server(parallel=2, extra_args=["--metrics"], **kwargs)


@pytest.fixture(scope="module")
def tier(router_provisioned: None) -> Iterator[Tier]:
    with _replica() as a, _replica() as b, start_vllm_router([a.base_url, b.base_url]) as router:
        yield Tier(router, (a, b))


# ---- detection ----------------------------------------------------------------------------------------


def test_detection_through_the_router(tier: Tier) -> None:
    # What vllm-router 0.1.17 answers to each discovery probe: /props is passed to a worker, the others are
    # its own (404 for /info and /version; /v1/models passed through with llama.cpp's owned_by).
    answers = {p: httpx.get(tier.url + p, timeout=10).status_code for p in PROBE_PATHS}
    assert answers == {"/info": 404, "/props": 200, "/version": 404, "/v1/models": 200}
    assert detect_engine(tier.url) == "llamacpp"
    assert asyncio.run(adetect_engine(tier.url)) == "llamacpp"
    client = connect(tier.url)
    assert isinstance(client, LlamaCppClient)
    assert client.chat("hi", **GREEDY).content.strip() == "Hello world."


def test_engine_given_skips_detection(tier: Tier) -> None:
    sent: list[str] = []
    http = httpx.Client(event_hooks={"request": [lambda r: sent.append(r.url.path)]})
    client = connect(tier.url, engine="llamacpp", http_client=http)
    assert sent == []  # no probe
    client.chat("hi", **GREEDY)
    assert sent == ["/v1/chat/completions"]


# ---- engine_clients through the router ----------------------------------------------------------------


def test_chat_and_stream(tier: Tier) -> None:
    client = LlamaCppClient(tier.url, model=tier.router.model)
    r = client.chat("hi", **GREEDY)
    assert r.content.strip() == "Hello world." and r.finish_reason == "stop"
    streamed = list(client.chat_stream("hi", **GREEDY))
    end = streamed[-1]
    assert isinstance(end, End) and end.content == r.content and end.finish_reason == "stop"
    assert "".join(e.text for e in streamed if isinstance(e, Token)) == end.content
    assert client.generate("\n", **GREEDY).content.strip() == "Hello world."


def test_async_chat_and_stream(tier: Tier) -> None:
    async def go() -> tuple[str, str]:
        async with LlamaCppClient(tier.url) as client:
            r = await client.achat("hi", **GREEDY)
            streamed = [e async for e in client.achat_stream("hi", **GREEDY)]
            return r.content, streamed[-1].content

    text, streamed = asyncio.run(go())
    assert text.strip() == "Hello world." and streamed == text


def test_tools_and_structured_output(tier: Tier) -> None:
    client = LlamaCppClient(tier.url)
    r = client.chat("weather?", tools=[WEATHER], tool_choice="get_weather", **TOOLS)
    assert r.finish_reason == "tool_calls" and [c.name for c in r.tool_calls] == ["get_weather"]
    assert isinstance(r.tool_calls[0].arguments, dict) and "city" in r.tool_calls[0].arguments
    streamed = list(client.chat_stream("weather?", tools=[WEATHER], tool_choice="required", **TOOLS))
    deltas = [e for e in streamed if isinstance(e, ToolCallDelta)]
    assert deltas and streamed[-1].tool_calls[0].raw_arguments == "".join(d.arguments for d in deltas)
    value = json.loads(client.chat("A name and a number.", response_format=SCHEMA, **GREEDY).content)
    assert isinstance(value["name"], str) and isinstance(value["n"], int)


# ---- LangChain through the router ---------------------------------------------------------------------


def test_langchain_through_the_router(tier: Tier) -> None:
    llm = ChatLlamaCpp(base_url=tier.url, temperature=0, max_tokens=128)
    assert llm.invoke("hi").content.strip() == "Hello world."
    chunks = list(llm.stream("hi"))
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    assert "".join(str(c.content) for c in chunks).strip() == "Hello world."
    ai = llm.bind_tools([WEATHER], tool_choice="get_weather").invoke("weather?")
    assert [c["name"] for c in ai.tool_calls] == ["get_weather"]
    named = llm.with_structured_output(Named, method="json_schema").invoke("A name and a number.")
    assert isinstance(named, Named)
    # auto mode detects llama.cpp through the router
    auto = ChatEngine(base_url=tier.url, temperature=0, max_tokens=32)
    assert auto.invoke("hi").content.strip() == "Hello world." and auto.active_engine == "llamacpp"


async def test_langchain_async_through_the_router(tier: Tier) -> None:
    llm = ChatLlamaCpp(base_url=tier.url, temperature=0, max_tokens=32)
    assert (await llm.ainvoke("hi")).content.strip() == "Hello world."
    assert "".join([str(c.content) async for c in llm.astream("hi")]).strip() == "Hello world."


# ---- LlamaIndex through the router -------------------------------------------------------------------


def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"sunny in {city}"


def test_llamaindex_through_the_router(tier: Tier) -> None:
    llm = LlamaCpp(tier.url, temperature=0.0, max_tokens=128, timeout=60)
    hello = [ChatMessage(role="user", content="Say hello.")]
    assert str(llm.chat(hello).message.content).strip() == "Hello world."
    assert "".join(r.delta or "" for r in llm.stream_chat(hello)).strip() == "Hello world."
    tool = FunctionTool.from_defaults(get_weather)
    response = llm.chat_with_tools([tool], user_msg="Weather in Paris?", tool_required=True)
    calls = llm.get_tool_calls_from_response(response, error_on_no_tool_call=True)
    assert [c.tool_name for c in calls] == ["get_weather"] and "city" in calls[0].tool_kwargs
    named = llm.structured_predict(Named, PromptTemplate("A name and a number."))
    assert isinstance(named, Named)
    assert llm.metadata.context_window == DEFAULT_CONTEXT  # /props of a replica, through the router


async def test_llamaindex_async_through_the_router(tier: Tier) -> None:
    llm = LlamaCpp(tier.url, temperature=0.0, max_tokens=32, timeout=60)
    hello = [ChatMessage(role="user", content="Say hello.")]
    assert str((await llm.achat(hello)).message.content).strip() == "Hello world."
    text = "".join([r.delta or "" async for r in await llm.astream_chat(hello)])
    assert text.strip() == "Hello world."


# ---- affinity -----------------------------------------------------------------------------------------


def test_same_session_always_lands_on_the_same_replica(tier: Tier) -> None:
    client = LlamaCppClient(tier.url)  # session ids go out as X-Session-ID, vllm-router's header
    placed: dict[str, set[int]] = {}
    for round_ in range(3):
        for s in range(12):
            sid = f"user-{s}"
            before = tier.work()
            if round_ == 1:
                list(client.chat_stream("hi", session_id=sid, **GREEDY))
            else:
                client.chat("hi", session_id=sid, **GREEDY)
            placed.setdefault(sid, set()).add(tier.served_by(before))
    assert all(len(where) == 1 for where in placed.values()), placed
    assert set().union(*placed.values()) == {0, 1}, "12 sessions should hash onto both replicas"


def test_session_affinity_async_and_langchain(tier: Tier) -> None:
    client = LlamaCppClient(tier.url)
    home = {}
    for sid in ("alice", "bob", "carol", "dave"):
        before = tier.work()
        client.chat("hi", session_id=sid, **GREEDY)
        home[sid] = tier.served_by(before)

    async def asession(sid: str) -> None:
        async with LlamaCppClient(tier.url) as c:
            await c.achat("hi", session_id=sid, **GREEDY)

    llm = ChatLlamaCpp(base_url=tier.url, temperature=0, max_tokens=32)
    for sid, where in home.items():
        before = tier.work()
        asyncio.run(asession(sid))
        assert tier.served_by(before) == where
        before = tier.work()
        llm.invoke("hi", session_id=sid)
        assert tier.served_by(before) == where


def test_affinity_presets() -> None:
    assert SessionAffinity.preset("vllm-router").headers("s1") == {"X-Session-ID": "s1"}
    assert SessionAffinity.preset("litellm").headers("s1") == {"x-litellm-session-id": "s1"}
    assert SessionAffinity.preset("dynamo").headers("s1") == {"X-Dynamo-Session-ID": "s1"}
    llmd = SessionAffinity.preset("llm-d")
    assert llmd.kind == "cookie" and llmd.name == "llm-d-session"


def test_pool_affinity_unchanged_next_to_the_router(tier: Tier) -> None:
    # EnginePool's own llama.cpp slot affinity still pins a session, here to one replica directly.
    with EnginePool([r.base_url for r in tier.replicas], engine="llamacpp", session_slots=2) as pool:
        homes = set()
        for _ in range(3):
            before = tier.work()
            pool.chat("hi", session_id="pooled", **GREEDY)
            homes.add(tier.served_by(before))
        assert len(homes) == 1


# ---- a replica killed ---------------------------------------------------------------------------------


@pytest.fixture
def fragile(router_provisioned: None) -> Iterator[Tier]:
    """A tier of its own (its replicas get killed), with long contexts for long streams and the router's
    health checks every second."""
    with (
        _replica(ctx_per_slot=32768) as a,
        _replica(ctx_per_slot=32768) as b,
        start_vllm_router(
            [a.base_url, b.base_url],
            extra_args=["--health-check-interval-secs", "1", "--health-failure-threshold", "1"],
        ) as router,
    ):
        yield Tier(router, (a, b))


def _kill(server: EngineServer) -> None:
    """SIGKILL, as a crash: no graceful shutdown, in-flight connections reset."""
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=30)


def _sessions_by_replica(tier: Tier, client: LlamaCppClient) -> dict[int, list[str]]:
    homes: dict[int, list[str]] = {0: [], 1: []}
    for s in range(12):
        before = tier.work()
        client.chat("hi", session_id=f"k{s}", max_tokens=4, temperature=0)
        homes[tier.served_by(before)].append(f"k{s}")
    assert homes[0] and homes[1], homes
    return homes


def test_requests_keep_succeeding_with_a_replica_killed(fragile: Tier) -> None:
    client = LlamaCppClient(fragile.url, max_retries=3)
    homes = _sessions_by_replica(fragile, client)
    _kill(fragile.replicas[0])
    survivor = fragile.replicas[1]
    done = llama_server_metrics(survivor.base_url)[WORK]
    # Until the router's health check drops the dead replica, consistent_hash keeps sending its sessions
    # there and vllm-router 0.1.17 answers them HTTP 500 ("error sending request"; its retries go to the
    # same dead worker). The survivor's sessions are never affected.
    deadline = time.monotonic() + 30
    window_errors: list[str] = []
    while True:
        for sid in homes[1][:2]:
            assert client.chat("hi", session_id=sid, **GREEDY).content.strip() == "Hello world."
        try:
            client.chat("hi", session_id=homes[0][0], **GREEDY)
            break
        except InternalServerError as exc:
            window_errors.append(exc.message)
        assert time.monotonic() < deadline, f"the router kept routing to the dead replica: {window_errors[-1]}"
        time.sleep(0.2)
    # From then on every session is answered, the dead replica's included, streams too.
    for sid in homes[0][:3] + homes[1][:3]:
        assert client.chat("hi", session_id=sid, **GREEDY).content.strip() == "Hello world."
        assert "".join(e.text for e in client.chat_stream("hi", session_id=sid, **GREEDY) if isinstance(e, Token))
    assert llama_server_metrics(survivor.base_url)[WORK] > done
    assert all("error sending request" in m for m in window_errors), window_errors


def test_a_stream_cut_by_the_kill_raises_stream_error_with_the_partial_text(fragile: Tier) -> None:
    client = LlamaCppClient(fragile.url, max_retries=0)
    homes = _sessions_by_replica(fragile, client)
    sid = homes[0][0]
    stream = client.chat_stream(
        "hi", session_id=sid, temperature=0, max_tokens=30000, extra_body={"ignore_eos": True}
    )
    seen = ""
    with pytest.raises(StreamError) as info:
        for event in stream:
            if isinstance(event, Token):
                seen += event.text
                if len(seen) >= 200 and fragile.replicas[0].is_running():
                    _kill(fragile.replicas[0])
            assert not isinstance(event, End), "the stream ended normally: it was not cut"
    err = info.value
    assert len(seen) >= 200
    assert err.partial_text == seen  # everything that arrived, nothing more, nothing invented


@pytest.fixture
def slow_to_notice(router_provisioned: None) -> Iterator[Tier]:
    """A tier with vllm-router's default health checks (every 60 s, 3 failures before a worker is dropped):
    for minutes after a replica dies, consistent_hash keeps sending that replica's sessions to it."""
    with _replica() as a, _replica() as b, start_vllm_router([a.base_url, b.base_url]) as router:
        yield Tier(router, (a, b))


def test_every_session_is_answered_while_the_router_still_routes_to_a_dead_replica(slow_to_notice: Tier) -> None:
    """Issue 19 item 5: the router's 500 "error sending request" means no engine saw the request; the client
    asks again without the sticky route, so the dead replica's sessions land on the survivor."""
    client = LlamaCppClient(slow_to_notice.url)
    homes = _sessions_by_replica(slow_to_notice, client)
    _kill(slow_to_notice.replicas[0])
    survivor = slow_to_notice.replicas[1]
    done = llama_server_metrics(survivor.base_url)[WORK]
    for sid in homes[0] + homes[1]:
        assert client.chat("hi", session_id=sid, **GREEDY).content.strip() == "Hello world."
        text = "".join(e.text for e in client.chat_stream("hi", session_id=sid, **GREEDY) if isinstance(e, Token))
        assert text.strip() == "Hello world."
    assert llama_server_metrics(survivor.base_url)[WORK] > done
