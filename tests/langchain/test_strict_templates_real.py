"""LangChain on a llama-server whose chat template is strict (issue 19 item 1): the late system message that
LangGraph's summarization middleware inserts must get through with the default ``history="auto"``.

The server runs the ``combined`` strict template of ``engine_clients.testing._strict_templates`` (one system
message at the start, alternating roles, Mistral tool-call ids, string content): it refuses the late system
message with a 400, the client fits the history (moving the summary into the leading system message) and
sends it once more.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langchain_core.messages import BaseMessage
from langchain_core.messages import HumanMessage
from langchain_core.messages import SystemMessage
from langchain_selfhosted import ChatLlamaCpp

from engine_clients import ChatTemplateError
from engine_clients.testing import EngineServer
from engine_clients.testing._strict_templates import start_llama_strict_server

pytestmark = pytest.mark.integration

ANSWER = "Hello world."
SUMMARY = "Summary of earlier conversation: the user greeted you and you greeted back."
HISTORY: list[BaseMessage] = [
    SystemMessage("You are terse."),
    HumanMessage("Hi."),
    AIMessage("Hello."),
    SystemMessage(SUMMARY),
    HumanMessage("Say hello."),
]


@pytest.fixture(scope="module")
def strict_llama(llamacpp_provisioned: None) -> Iterator[EngineServer]:
    with start_llama_strict_server("combined") as server:
        yield server


def _kinds(meta: dict[str, Any]) -> set[str]:
    return {c["kind"] for c in meta.get("history_changes", ())}


def test_invoke_with_late_system_message(strict_llama: EngineServer) -> None:
    llm = ChatLlamaCpp(base_url=strict_llama.base_url, temperature=0, max_tokens=16)
    ai = llm.invoke(HISTORY)
    assert ai.content.strip() == ANSWER
    assert _kinds(ai.response_metadata) == {"moved_system"}


def test_stream_with_late_system_message(strict_llama: EngineServer) -> None:
    llm = ChatLlamaCpp(base_url=strict_llama.base_url, temperature=0, max_tokens=16)
    chunks = list(llm.stream(HISTORY))
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole += chunk
    assert str(whole.content).strip() == ANSWER
    assert _kinds(whole.response_metadata) == {"moved_system"}


async def test_ainvoke_with_late_system_message(strict_llama: EngineServer) -> None:
    llm = ChatLlamaCpp(base_url=strict_llama.base_url, temperature=0, max_tokens=16)
    ai = await llm.ainvoke(HISTORY)
    assert ai.content.strip() == ANSWER and _kinds(ai.response_metadata) == {"moved_system"}


def test_keep_raises(strict_llama: EngineServer) -> None:
    llm = ChatLlamaCpp(base_url=strict_llama.base_url, temperature=0, max_tokens=16, history="keep")
    with pytest.raises(ChatTemplateError) as info:
        llm.invoke(HISTORY)
    assert info.value.rule == "system_first"


def test_create_agent_with_late_system_message(strict_llama: EngineServer) -> None:
    """An agent with a system prompt, fed a history whose summary is a late SystemMessage."""
    from langchain.agents import create_agent
    from langchain_core.tools import tool

    @tool
    def get_weather(city: str) -> str:
        """Current weather in a city."""
        return f"sunny in {city}"

    llm = ChatLlamaCpp(base_url=strict_llama.base_url, temperature=0, max_tokens=16)
    agent = create_agent(llm, tools=[get_weather], system_prompt="You are a helpful, terse assistant.")
    state = agent.invoke({"messages": HISTORY[1:]})  # the agent puts its own system prompt first
    last = state["messages"][-1]
    assert isinstance(last, AIMessage) and last.content.strip() == ANSWER and not last.tool_calls
    # the agent's system prompt and the input's late summary: the summary was moved up
    assert _kinds(last.response_metadata) == {"moved_system"}
