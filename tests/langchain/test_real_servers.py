"""Checks beyond the standard suite against the real engines: the text-completion LLMs, API keys, context
overflow as LangChain's ContextOverflowError, the server tokenizer, a tool round trip."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.exceptions import ContextOverflowError
from langchain_core.exceptions import ModelAuthenticationError
from langchain_core.messages import HumanMessage
from langchain_core.messages import ToolMessage
from langchain_selfhosted import VLLMLLM
from langchain_selfhosted import ChatLlamaCpp
from langchain_selfhosted import ChatVLLM
from langchain_selfhosted import LlamaCppLLM

import engine_clients
from engine_clients.testing import DEFAULT_CONTEXT
from engine_clients.testing import EngineServer

pytestmark = pytest.mark.integration

ENGINES = {"llama_server": (ChatLlamaCpp, LlamaCppLLM), "vllm_server": (ChatVLLM, VLLMLLM)}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture(params=list(ENGINES))
def server(request: pytest.FixtureRequest) -> tuple[EngineServer, Any, Any]:
    return request.getfixturevalue(request.param), *ENGINES[request.param]


async def test_llm_on_native_text_route(server: tuple[EngineServer, Any, Any]) -> None:
    srv, _, llm_cls = server
    llm = llm_cls(base_url=srv.base_url, temperature=0, max_tokens=16, seed=1)
    # No chat template on this route: after a bare "\n" the scripted model says " Hello world."
    result = llm.generate(["\n"])
    (gen,) = result.generations[0]
    assert gen.text.strip() == "Hello world." and gen.generation_info["finish_reason"] == "stop"
    assert gen.generation_info["model_name"] == srv.model
    assert gen.generation_info["token_usage"]["completion_tokens"] > 0
    assert "".join(llm.stream("\n")) == gen.text
    assert "".join([p async for p in llm.astream("\n")]) == gen.text


def test_tool_round_trip(server: tuple[EngineServer, Any, Any]) -> None:
    srv, chat_cls, _ = server
    llm = chat_cls(base_url=srv.base_url, temperature=0, max_tokens=128)
    question = HumanMessage("What is the weather in Paris?")
    ai = llm.bind_tools([WEATHER], tool_choice="get_weather").invoke([question])
    calls = ai.tool_calls + ai.invalid_tool_calls
    assert [c["name"] for c in calls] == ["get_weather"] and calls[0]["id"]
    answer = llm.bind_tools([WEATHER]).invoke(
        [question, ai, ToolMessage("sunny", tool_call_id=calls[0]["id"])]
    )
    assert answer.content and not answer.tool_calls


def test_context_overflow_is_langchains(server: tuple[EngineServer, Any, Any]) -> None:
    srv, chat_cls, _ = server
    llm = chat_cls(base_url=srv.base_url, max_tokens=8, max_retries=0)
    with pytest.raises(ContextOverflowError) as info:
        llm.invoke("word " * 5000)
    assert isinstance(info.value, engine_clients.ContextWindowExceededError)
    assert info.value.context_limit == DEFAULT_CONTEXT  # tokens per request on both fixtures


def test_server_tokenizer(server: tuple[EngineServer, Any, Any]) -> None:
    srv, chat_cls, _ = server
    llm = chat_cls(base_url=srv.base_url)
    ids = llm.get_token_ids("Hello world")
    assert ids and all(isinstance(i, int) for i in ids)
    assert llm.get_num_tokens("Hello world") == len(ids)


def test_api_key(llama_server_keyed: EngineServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLAMACPP_API_KEY", raising=False)
    assert (
        ChatLlamaCpp(base_url=llama_server_keyed.base_url, api_key=llama_server_keyed.api_key)
        .invoke("hi")
        .content
    )
    with pytest.raises(ModelAuthenticationError) as info:
        ChatLlamaCpp(base_url=llama_server_keyed.base_url, api_key="wrong", max_retries=0).invoke("hi")
    assert isinstance(info.value, engine_clients.AuthenticationError)
    monkeypatch.setenv("LLAMACPP_API_KEY", llama_server_keyed.api_key)
    assert ChatLlamaCpp(base_url=llama_server_keyed.base_url).invoke("hi").content  # key from the environment
