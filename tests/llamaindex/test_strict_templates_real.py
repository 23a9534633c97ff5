"""LlamaIndex on a llama-server whose chat template is strict (issue 19 item 1): a late system message, and a
FunctionAgent whose tool call carries the engine's own id, must get through with the default
``history="auto"``.

The server runs the ``combined`` strict template of ``engine_clients.testing._strict_templates`` (one system
message at the start, alternating roles, tool-call ids of 9 letters or digits, string content).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.agent.workflow import ToolCallResult
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.memory import ChatMemoryBuffer
from llama_index.core.tools import FunctionTool
from llama_index.llms.selfhosted import LlamaCpp

from engine_clients.testing import EngineServer
from engine_clients.testing._strict_templates import start_llama_strict_server

pytestmark = pytest.mark.integration

ANSWER = "Hello world."
SUMMARY = "Summary of earlier conversation: the user greeted you and you greeted back."
HISTORY = [
    ChatMessage(role="system", content="You are terse."),
    ChatMessage(role="user", content="Hi."),
    ChatMessage(role="assistant", content="Hello."),
    ChatMessage(role="system", content=SUMMARY),
    ChatMessage(role="user", content="Say hello."),
]


@pytest.fixture(scope="module")
def strict_llama(llamacpp_provisioned: None) -> Iterator[EngineServer]:
    with start_llama_strict_server("combined") as server:
        yield server


def _kinds(kwargs: dict[str, Any]) -> set[str]:
    return {c["kind"] for c in kwargs.get("history_changes", ())}


def test_chat_with_late_system_message(strict_llama: EngineServer) -> None:
    llm = LlamaCpp(strict_llama.base_url, temperature=0.0, max_tokens=16, timeout=120.0)
    r = llm.chat(HISTORY)
    assert (r.message.content or "").strip() == ANSWER
    assert _kinds(r.additional_kwargs) == {"moved_system"}
    *_, last = llm.stream_chat(HISTORY)
    assert (last.message.content or "").strip() == ANSWER


def _weather(calls: list[str]) -> FunctionTool:
    def get_weather(city: str = "?", **extra: Any) -> str:
        """Current weather in a city."""
        calls.append(city)
        return f"sunny in {city}"

    return FunctionTool.from_defaults(
        get_weather, name="get_weather", description="Current weather in a city."
    )


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_function_agent_two_turns(strict_llama: EngineServer) -> None:
    """Turn 1 forces the tool: llama-server names the call with its own (32-character) id, which the strict
    template refuses when the call goes back with its result; the client fits the ids and, having learned,
    fits turn 2 (same memory, plus a late summary system message) before sending it."""
    bodies: list[dict[str, Any]] = []
    statuses: list[int] = []

    async def record(request: httpx.Request) -> None:
        if request.method == "POST":
            bodies.append(json.loads(request.content))

    async def status(response: httpx.Response) -> None:
        if response.request.method == "POST":
            statuses.append(response.status_code)

    calls: list[str] = []
    hooks = {"request": [record], "response": [status]}
    memory = ChatMemoryBuffer.from_defaults(token_limit=4000)
    async with httpx.AsyncClient(event_hooks=hooks, timeout=120.0) as http:
        llm = LlamaCpp(strict_llama.base_url, temperature=0.0, max_tokens=64, async_http_client=http)
        system = "You are a helpful, terse assistant."
        tools = [_weather(calls)]
        forced = FunctionAgent(tools=tools, llm=llm, system_prompt=system, initial_tool_choice="get_weather")
        handler = forced.run(user_msg="What is the weather in Paris?", memory=memory)
        results = [ev async for ev in handler.stream_events() if isinstance(ev, ToolCallResult)]
        first = await handler
        assert statuses == [200, 400, 200], statuses  # the call, the refused result round, the fitted one
        await memory.aput(ChatMessage(role="system", content=SUMMARY))
        second = await FunctionAgent(tools=tools, llm=llm, system_prompt=system).run(
            user_msg="Say hello.", memory=memory
        )

    assert calls == ["a"] and len(results) == 1 and not results[0].tool_output.is_error
    assert str(first).strip() == ANSWER and str(second).strip() == ANSWER
    assert statuses == [200, 400, 200, 200], statuses  # turn 2: fitted before it went out
    engine_id = results[0].tool_id
    refused, fitted, turn2 = bodies[1], bodies[2], bodies[3]
    assert [tc["id"] for m in refused["messages"] for tc in m.get("tool_calls") or ()] == [engine_id]
    (fitted_id,) = [tc["id"] for m in fitted["messages"] for tc in m.get("tool_calls") or ()]
    assert fitted_id != engine_id and len(fitted_id) == 9 and fitted_id.isalnum()
    assert [m["tool_call_id"] for m in fitted["messages"] if m["role"] == "tool"] == [fitted_id]
    # turn 2: one system message (the summary moved into it), the same fitted id
    roles = [m["role"] for m in turn2["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "user"], roles
    assert SUMMARY in turn2["messages"][0]["content"]
    assert [tc["id"] for m in turn2["messages"] for tc in m.get("tool_calls") or ()] == [fitted_id]
