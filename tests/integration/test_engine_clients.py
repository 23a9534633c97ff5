"""The engine clients against real llama-server and vLLM processes serving scripted tiny models.

The scripted models answer a plain chat turn with " Hello world." under greedy decoding, so exact output is
asserted. Same tests, both engines, sync and async.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from engine_clients import AuthenticationError
from engine_clients import BaseClient
from engine_clients import Completion
from engine_clients import ContextWindowExceededError
from engine_clients import End
from engine_clients import HealthStatus
from engine_clients import LlamaCppClient
from engine_clients import Started
from engine_clients import Token
from engine_clients import ToolCallDelta
from engine_clients import VLLMClient

CLIENTS: dict[str, type[BaseClient]] = {"llamacpp": LlamaCppClient, "vllm": VLLMClient}
GREEDY: dict[str, Any] = {"temperature": 0, "max_tokens": 32}
TOOLS: dict[str, Any] = {"temperature": 0, "max_tokens": 128, "parallel_tool_calls": False}
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
CLOCK = {"type": "function", "function": {"name": "get_time", "description": "Time in a zone", "parameters": {
    "type": "object", "properties": {"tz": {"type": "integer"}}, "required": ["tz"]}}}
SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "n": {"type": "integer"}}, "required": ["name", "n"]}


@pytest.fixture(params=["llama_server", "vllm_server"])
def server(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(request.param)


@pytest.fixture
def client(server: Any) -> Any:
    c = CLIENTS[server.engine](server.base_url, model=server.model)
    yield c
    c.close()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_chat(client: BaseClient) -> None:
    r = client.chat("hi", **GREEDY)
    assert r.content.strip() == "Hello world."
    assert r.finish_reason == "stop"
    assert r.usage is not None and r.usage.completion_tokens > 0 and r.usage.prompt_tokens > 0
    assert r.model


def test_achat_matches_chat(client: BaseClient) -> None:
    async def go() -> Completion:
        try:
            return await client.achat("hi", **GREEDY)
        finally:
            await client.aclose()

    assert run(go()).content == client.chat("hi", **GREEDY).content


def test_chat_stream_events_and_usage(client: BaseClient) -> None:
    events = list(client.chat_stream("hi", **GREEDY))
    assert isinstance(events[0], Started) and events[0].model
    tokens = [e for e in events if isinstance(e, Token)]
    end = events[-1]
    assert isinstance(end, End) and sum(isinstance(e, End) for e in events) == 1
    assert "".join(t.text for t in tokens) == end.content and end.content.strip() == "Hello world."
    assert end.finish_reason == "stop"
    assert end.usage is not None and end.usage.completion_tokens >= len(tokens)


def test_achat_stream(client: BaseClient) -> None:
    async def go() -> list[Any]:
        async with client:
            return [e async for e in client.achat_stream("hi", **GREEDY)]

    events = run(go())
    assert events[-1].content.strip() == "Hello world."


def test_native_generate(client: BaseClient) -> None:
    # Raw text route without the chat template: after the prompt "\n" the scripted model says " Hello world."
    r = client.generate("\n", **GREEDY)
    assert r.content.strip() == "Hello world."
    assert r.finish_reason == "stop" and r.usage is not None and r.usage.completion_tokens > 0
    streamed = list(client.generate_stream("\n", **GREEDY))
    assert streamed[-1].content == r.content


def test_agenerate(client: BaseClient) -> None:
    async def go() -> tuple[Completion, list[Any]]:
        async with client:
            return await client.agenerate("\n", **GREEDY), [e async for e in client.agenerate_stream("\n", **GREEDY)]

    r, events = run(go())
    assert r.content.strip() == "Hello world." and events[-1].content == r.content


def test_stop_sequence(client: BaseClient) -> None:
    r = client.chat("hi", stop="world", **GREEDY)
    assert r.content.strip() == "Hello" and r.finish_reason == "stop"


def test_max_tokens_gives_length(client: BaseClient) -> None:
    r = client.chat("hi", temperature=0, max_tokens=1)
    assert r.finish_reason == "length" and r.usage is not None and r.usage.completion_tokens == 1
    end = list(client.chat_stream("hi", temperature=0, max_tokens=1))[-1]
    assert end.finish_reason == "length"


def test_seed_determinism(client: BaseClient) -> None:
    a = client.chat("hi", temperature=1.5, seed=1234, max_tokens=8)
    b = client.chat("hi", temperature=1.5, seed=1234, max_tokens=8)
    assert a.content == b.content


def test_tokenize(client: BaseClient) -> None:
    tokens = client.tokenize("Hello world", add_special_tokens=False)
    assert len(tokens) >= 2 and all(isinstance(t.id, int) for t in tokens)


def test_health_and_info(client: BaseClient, server: Any) -> None:
    assert client.health() is HealthStatus.HEALTHY
    info = client.info()
    assert info.engine == server.engine and info.model == server.model
    assert info.max_total_tokens and info.max_total_tokens >= 512  # the context limit each engine publishes
    assert info.version


def test_health_of_a_dead_port() -> None:
    assert LlamaCppClient("http://127.0.0.1:9", max_retries=0).health() is HealthStatus.UNHEALTHY


def test_logprobs(client: BaseClient) -> None:
    r = client.chat("hi", logprobs=True, top_logprobs=2, **GREEDY)
    assert r.logprobs and len(r.logprobs) >= 2
    assert r.logprobs[0].logprob is not None and r.logprobs[0].top_logprobs
    stream = [e for e in client.chat_stream("hi", logprobs=True, top_logprobs=2, **GREEDY) if isinstance(e, Token)]
    assert any(t.logprob is not None for t in stream)


@pytest.mark.parametrize("mode", ["required", "named"])
def test_tool_calls(client: BaseClient, mode: str) -> None:
    choice = "required" if mode == "required" else "get_time"
    r = client.chat("What time is it?", tools=[WEATHER, CLOCK], tool_choice=choice, **TOOLS)
    assert r.tool_calls, r
    assert r.finish_reason == "tool_calls"
    if mode == "named":  # honoured on llama.cpp too (sent as that one tool + "required")
        assert {c.name for c in r.tool_calls} == {"get_time"}
    else:
        assert {c.name for c in r.tool_calls} <= {"get_weather", "get_time"}
    assert all(c.id for c in r.tool_calls)


def test_tool_call_stream(client: BaseClient) -> None:
    events = list(client.chat_stream("weather?", tools=[WEATHER], tool_choice="required", **TOOLS))
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    end = events[-1]
    assert deltas and deltas[0].name == "get_weather" and deltas[0].id
    assert end.finish_reason == "tool_calls" and [c.name for c in end.tool_calls] == ["get_weather"]
    assert "".join(d.arguments for d in deltas) == end.tool_calls[0].raw_arguments


def test_tool_auto_answers_text(client: BaseClient) -> None:
    r = client.chat("hi", tools=[WEATHER], tool_choice="auto", **GREEDY)
    assert r.content.strip() == "Hello world." and not r.tool_calls


def test_tool_result_round_trip(client: BaseClient) -> None:
    first = client.chat("weather?", tools=[WEATHER], tool_choice="required", **TOOLS)
    call = first.tool_calls[0]
    messages = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    r = client.chat(messages, tools=[WEATHER], **GREEDY)
    assert r.finish_reason == "stop" and r.content.strip() == "Hello world."


def test_structured_output_json_schema(client: BaseClient) -> None:
    r = client.chat("Give a name and a number.", response_format=SCHEMA, **GREEDY)
    value = json.loads(r.content)
    assert isinstance(value["name"], str) and isinstance(value["n"], int)
    # The vLLM fixture runs --reasoning-parser qwen3: vLLM then holds the grammar back until the reasoning
    # has ended, which for a raw prompt means a "</think>" in it (seen with vLLM 0.32: without one, the
    # output of /v1/completions is unconstrained). llama-server constrains from the first token.
    prompt = "<think>\n\n</think>\n\n" if client.engine == "vllm" else "\n"
    g = client.generate(prompt, response_format=SCHEMA, **GREEDY)
    assert set(json.loads(g.content)) == {"name", "n"}


def test_api_key_rejected(request: pytest.FixtureRequest) -> None:
    server = request.getfixturevalue("llama_server_keyed")
    with pytest.raises(AuthenticationError) as info:
        LlamaCppClient(server.base_url, api_key="wrong-key").chat("hi", **GREEDY)
    assert "wrong-key" not in str(info.value)
    assert LlamaCppClient(server.base_url, api_key=server.api_key).chat("hi", **GREEDY).content.strip() == "Hello world."


def test_context_window_exceeded(client: BaseClient) -> None:
    limit = client.info().max_total_tokens
    assert limit is not None
    with pytest.raises(ContextWindowExceededError) as info:
        client.chat("x " * (limit * 2), **GREEDY)
    if info.value.context_limit is not None:
        assert info.value.context_limit <= limit


def test_twenty_concurrent_streams(client: BaseClient) -> None:
    async def one() -> str:
        return "".join([e.text async for e in client.achat_stream("hi", **GREEDY) if isinstance(e, Token)])

    async def go() -> list[str]:
        async with client:
            return await asyncio.gather(*(one() for _ in range(20)))

    assert [t.strip() for t in run(go())] == ["Hello world."] * 20


def test_one_client_across_event_loops(client: BaseClient) -> None:
    # asyncio.run per call (scripts, notebooks, sync wrappers) must not reuse a dead loop's connections
    for _ in range(3):
        assert run(client.achat("hi", **GREEDY)).content.strip() == "Hello world."
