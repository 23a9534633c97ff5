"""The conformance suite, a query engine and a FunctionAgent against real engines: llama.cpp's llama-server
and vLLM (CPU), both running the scripted tiny model.

The scripted model answers plain chat with " Hello world."; under a required or named ``tool_choice`` it makes
a tool call (llama-server: schema-valid arguments such as ``{"city": "a"}``; vLLM: a call whose arguments may
not follow the schema); ``json_schema`` output is schema-valid on both.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from llama_index.core import Document
from llama_index.core import Settings
from llama_index.core import SummaryIndex
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.agent.workflow import ToolCallResult
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.callbacks import CallbackManager
from llama_index.core.callbacks import TokenCountingHandler
from llama_index.core.tools import FunctionTool
from llama_index.llms.selfhosted import VLLM
from llama_index.llms.selfhosted import EngineLLM
from llama_index.llms.selfhosted import LlamaCpp
from pydantic import BaseModel

from engine_clients.testing import DEFAULT_CONTEXT
from engine_clients.testing import EngineServer
from tests.llamaindex.conformance import Backend
from tests.llamaindex.conformance import Expect
from tests.llamaindex.conformance import LlamaIndexConformance
from tests.llamaindex.conformance import Weather

pytestmark = pytest.mark.integration

HELLO = " Hello world."


class CityArgs(BaseModel):
    city: str


def get_weather(city: str = "?", **extra: Any) -> str:
    """Current weather in a city."""
    # ``**extra`` absorbs arguments vLLM's scripted model may invent (its calls need not follow the schema)
    return f"sunny in {city}"


def weather_tool(calls: list[dict[str, Any]] | None = None) -> FunctionTool:
    def fn(city: str = "?", **extra: Any) -> str:
        if calls is not None:
            calls.append({"city": city, **extra})
        return get_weather(city, **extra)

    return FunctionTool.from_defaults(
        fn, name="get_weather", description="Current weather in a city.", fn_schema=CityArgs
    )


class RealBackend(Backend):
    replayed = False
    context_window = DEFAULT_CONTEXT  # llama-server: context per slot; vLLM: max_model_len
    agent_tool = "get_weather"

    def __init__(self, server: EngineServer, cls: type[EngineLLM], *, schema_valid_args: bool) -> None:
        self.server = server
        self.cls = cls
        self.name = server.engine
        self.model_name = server.model
        self.schema_valid_args = schema_valid_args
        self.tools = [weather_tool()]

    def llm(self, **kwargs: Any) -> EngineLLM:
        kwargs.setdefault("temperature", 0.0)
        kwargs.setdefault("api_key", self.server.api_key)
        kwargs.setdefault("timeout", 120.0)
        return self.cls(self.server.base_url, **kwargs)

    def serve(self, scenario: str) -> Expect:
        if scenario in ("chat", "chat_stream"):
            return Expect(messages=[ChatMessage(role="user", content="Say hello.")], text=HELLO)
        if scenario in ("tools", "tools_stream"):
            return Expect(
                messages=[ChatMessage(role="user", content="What is the weather in Paris?")],
                tool_names=frozenset({"get_weather"}),
                tool_args={"city": "a"} if self.schema_valid_args else None,
            )
        if scenario in ("json", "json_stream"):
            return Expect(
                messages=[ChatMessage(role="user", content="The weather in Paris?")], output_cls=Weather
            )
        if scenario in ("text", "text_stream"):
            # raw text, no chat template: the scripted model answers after a newline
            return Expect(messages=[], prompt="Say hello.\n", text=HELLO)
        if scenario in ("info", "agent", "agent_stream"):
            return Expect(messages=[])
        raise AssertionError(scenario)

    def agent_answer_ok(self, text: str) -> bool:
        return text.strip() == HELLO.strip()


@pytest.fixture
def llamacpp_backend(llama_server: EngineServer) -> RealBackend:
    return RealBackend(llama_server, LlamaCpp, schema_valid_args=True)


@pytest.fixture
def vllm_backend(vllm_server: EngineServer) -> RealBackend:
    return RealBackend(vllm_server, VLLM, schema_valid_args=False)


class TestLlamaCppConformance(LlamaIndexConformance):
    @pytest.fixture
    def backend(self, llamacpp_backend: RealBackend) -> RealBackend:
        return llamacpp_backend


class TestVLLMConformance(LlamaIndexConformance):
    @pytest.fixture
    def backend(self, vllm_backend: RealBackend) -> RealBackend:
        return vllm_backend


@pytest.fixture(params=["llamacpp", "vllm"])
def real(request: pytest.FixtureRequest) -> RealBackend:
    backend: RealBackend = request.getfixturevalue(f"{request.param}_backend")
    return backend


# ---- a query engine ------------------------------------------------------------------------------------

DOCS = [
    Document(text="Paris is the capital of France."),
    Document(text="The Seine flows through Paris."),
    Document(text="It rains in Paris in autumn."),
]


async def test_query_engine(real: RealBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    """A SummaryIndex query engine (no embeddings) answers through the chat route with LlamaIndex's
    templates, packed to the context window read from the server; streaming and async too."""
    llm = real.llm(max_tokens=32)
    counter = TokenCountingHandler()
    # the query engine hands the LLM Settings' callback manager, whatever the index was given
    monkeypatch.setattr(Settings, "callback_manager", CallbackManager([counter]))
    index = SummaryIndex.from_documents(DOCS)

    response = index.as_query_engine(llm=llm).query("What is the capital of France?")
    assert str(response).strip() == HELLO.strip()
    assert len(response.source_nodes) == len(DOCS)
    assert llm.metadata.context_window == real.context_window
    (event,) = counter.llm_token_counts
    assert event.prompt_token_count > 100 and event.completion_token_count == 4  # the server's own counts

    streamed = index.as_query_engine(llm=llm, streaming=True).query("What is the capital of France?")
    assert "".join(streamed.response_gen).strip() == HELLO.strip()

    aresponse = await index.as_query_engine(llm=llm).aquery("What is the capital of France?")
    assert str(aresponse).strip() == HELLO.strip()


# ---- a FunctionAgent tool loop, checked on the wire ----------------------------------------------------


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "non-streaming"])
async def test_function_agent_tool_loop(real: RealBackend, streaming: bool) -> None:
    """The agent's first turn forces the tool (``initial_tool_choice``: the scripted model answers plain text
    under "auto"), the engine returns a tool call, the agent runs the tool and sends the call and its result
    back, and the engine's plain answer ends the run. Every request body is recorded to prove the loop."""
    bodies: list[dict[str, Any]] = []

    async def record(request: httpx.Request) -> None:
        if request.method == "POST":
            bodies.append(json.loads(request.content))

    calls: list[dict[str, Any]] = []
    async with httpx.AsyncClient(event_hooks={"request": [record]}, timeout=120.0) as http:
        llm = real.llm(async_http_client=http)
        agent = FunctionAgent(
            tools=[weather_tool(calls)], llm=llm, initial_tool_choice="get_weather", streaming=streaming
        )
        handler = agent.run(user_msg="What is the weather in Paris?")
        results = [ev async for ev in handler.stream_events() if isinstance(ev, ToolCallResult)]
        answer = await handler

    assert len(calls) == 1  # the tool really ran, with the engine's arguments
    if real.schema_valid_args:
        assert calls == [{"city": "a"}]
    (result,) = results
    assert result.tool_name == "get_weather" and not result.tool_output.is_error

    assert len(bodies) == 2
    first, second = bodies
    assert [t["function"]["name"] for t in first["tools"]] == ["get_weather"]
    assert first.get("tool_choice") in ("required", {"type": "function", "function": {"name": "get_weather"}})
    assert second.get("tool_choice") == "auto"
    *_, user, assistant, tool = second["messages"]
    assert user == {"role": "user", "content": "What is the weather in Paris?"}
    (call,) = assistant["tool_calls"]
    assert call["function"]["name"] == "get_weather" and call["id"] == result.tool_id
    assert tool == {"role": "tool", "content": result.tool_output.content, "tool_call_id": call["id"]}
    assert str(answer).strip() == HELLO.strip()


# ---- engine-side limits surface as engine errors -------------------------------------------------------


async def test_context_overflow_raises_engine_error(real: RealBackend) -> None:
    from engine_clients import ContextWindowExceededError

    llm = real.llm()
    too_long = "word " * (real.context_window + 100)
    with pytest.raises(ContextWindowExceededError):
        await llm.achat([ChatMessage(role="user", content=too_long)])
