"""A conformance suite for the LlamaIndex LLMs (LlamaIndex has no shared one).

:class:`LlamaIndexConformance` holds the tests; a test module subclasses it and provides a ``backend`` fixture
(a :class:`Backend`): recorded TGI responses replayed with respx, or a real llama-server / vLLM with the
scripted tiny model. Each test asks the backend to ``serve`` a scenario and gets what to send and expect;
replayed backends also install the mock for it. Sync and async forms run as one parametrized test.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from llama_index.core.agent.workflow import AgentStream
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.agent.workflow import ToolCallResult
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.base.llms.types import ChatResponse
from llama_index.core.base.llms.types import CompletionResponse
from llama_index.core.base.llms.types import ToolCallBlock
from llama_index.core.callbacks import CallbackManager
from llama_index.core.callbacks import TokenCountingHandler
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.llm import LLMChatEndEvent
from llama_index.core.instrumentation.events.llm import LLMChatInProgressEvent
from llama_index.core.instrumentation.events.llm import LLMChatStartEvent
from llama_index.core.instrumentation.events.llm import LLMCompletionEndEvent
from llama_index.core.instrumentation.events.llm import LLMCompletionStartEvent
from llama_index.core.instrumentation.events.llm import LLMStructuredPredictEndEvent
from llama_index.core.instrumentation.events.llm import LLMStructuredPredictStartEvent
from llama_index.core.instrumentation.span_handlers import SimpleSpanHandler
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from llama_index.llms.selfhosted import EngineLLM
from pydantic import BaseModel

MODES = ["sync", "async"]


class Weather(BaseModel):
    unit: str
    temperature: list[int]


class Person(BaseModel):
    firstName: str  # the recorded schema's names
    lastName: str
    hobby: str
    numCats: int


@dataclasses.dataclass
class Expect:
    """What to send for a scenario and what must come back. ``None`` means "not fixed: any valid value"."""

    messages: list[ChatMessage]
    text: str | None = None
    usage: dict[str, int] | None = None  # exact usage; None: any positive counts (if has_usage)
    has_usage: bool = True
    tool_names: frozenset[str] = frozenset()
    tool_args: dict[str, Any] | None = None
    output_cls: type[BaseModel] = Weather
    output: BaseModel | None = None
    prompt: str = "Say hello."
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)


class Backend:
    """A server for the suite. Subclasses fill these in."""

    name: str
    replayed: bool
    context_window: int
    model_name: str
    tools: list[FunctionTool]
    #: the tool an agent is told to call first (FunctionAgent.initial_tool_choice)
    agent_tool: str

    def llm(self, **kwargs: Any) -> EngineLLM:
        raise NotImplementedError

    def serve(self, scenario: str) -> Expect:
        """Scenarios: chat, chat_stream, tools, tools_stream, json, json_stream, text, text_stream, info,
        agent, agent_stream."""
        raise NotImplementedError

    def agent_answer_ok(self, text: str) -> bool:
        raise NotImplementedError


# ---- helpers ---------------------------------------------------------------------------------------------


async def chat(llm: EngineLLM, mode: str, messages: list[ChatMessage], **kw: Any) -> ChatResponse:
    return llm.chat(messages, **kw) if mode == "sync" else await llm.achat(messages, **kw)


async def stream_chat(
    llm: EngineLLM, mode: str, messages: list[ChatMessage], **kw: Any
) -> list[ChatResponse]:
    if mode == "sync":
        return list(llm.stream_chat(messages, **kw))
    return [r async for r in await llm.astream_chat(messages, **kw)]


async def complete(llm: EngineLLM, mode: str, prompt: str, **kw: Any) -> CompletionResponse:
    return llm.complete(prompt, **kw) if mode == "sync" else await llm.acomplete(prompt, **kw)


async def stream_complete(llm: EngineLLM, mode: str, prompt: str, **kw: Any) -> list[CompletionResponse]:
    if mode == "sync":
        return list(llm.stream_complete(prompt, **kw))
    return [r async for r in await llm.astream_complete(prompt, **kw)]


def check_async_only(llm: EngineLLM, mode: str) -> None:
    """The async methods are natively async: they never open the client's sync transport (no executor)."""
    if mode == "async":
        assert llm.client._sync is None
        assert llm.client._async is not None


def check_usage(expect: Expect, response: ChatResponse | CompletionResponse) -> None:
    raw = response.raw
    assert isinstance(raw, dict)
    # every whole answer carries its timings (seconds), the same in raw and additional_kwargs
    extra = dict(response.additional_kwargs)
    timings = extra.pop("timings", None)
    assert timings is not None and timings == raw["timings"] and timings["total_time"] >= 0
    if not expect.has_usage:
        assert raw["usage"] is None and extra == {}
        return
    usage = raw["usage"]
    assert usage is not None
    if expect.usage is not None:
        assert {k: usage[k] for k in expect.usage} == expect.usage
    else:
        assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    # the keys llama-index-llms-openai reports, read by TokenCountingHandler, plus the details the engine
    # reported (never made up)
    details = {"cached_tokens": usage["cached_prompt_tokens"], "reasoning_tokens": usage["reasoning_tokens"]}
    extra = {k: v for k, v in extra.items() if k != "timings"}  # timings: checked in test_timings*
    assert extra == {
        "prompt_tokens": usage["prompt_tokens"],
        "completion_tokens": usage["completion_tokens"],
        "total_tokens": usage["total_tokens"],
        **{k: v for k, v in details.items() if v is not None},
    }


def check_tool_calls(llm: EngineLLM, expect: Expect, response: ChatResponse) -> None:
    calls = llm.get_tool_calls_from_response(response)
    assert calls and {c.tool_name for c in calls} <= expect.tool_names
    if expect.tool_args is not None:
        assert calls[0].tool_kwargs == expect.tool_args
    assert all(isinstance(c.tool_kwargs, dict) and c.tool_id for c in calls)
    # the same calls as ToolCallBlocks and as OpenAI-style dicts in additional_kwargs
    blocks = [b for b in response.message.blocks if isinstance(b, ToolCallBlock)]
    dicts = response.message.additional_kwargs["tool_calls"]
    assert (
        [b.tool_name for b in blocks]
        == [d["function"]["name"] for d in dicts]
        == [c.tool_name for c in calls]
    )
    assert [b.tool_call_id for b in blocks] == [d["id"] for d in dicts] == [c.tool_id for c in calls]


class EventCollector(BaseEventHandler):
    events: list[BaseEvent] = []

    @classmethod
    def class_name(cls) -> str:
        return "EventCollector"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        self.events.append(event)


def token_counter(llm: EngineLLM) -> TokenCountingHandler:
    counter = TokenCountingHandler()
    llm.callback_manager = CallbackManager([counter])
    return counter


async def collect(stream: AsyncIterator[Any]) -> list[Any]:
    return [x async for x in stream]


# ---- the suite -------------------------------------------------------------------------------------------


class LlamaIndexConformance:
    """Subclass with a ``backend`` fixture returning a :class:`Backend`."""

    # -- identity and metadata --
    def test_is_function_calling_and_custom_llm(self, backend: Backend) -> None:
        llm = backend.llm()
        assert isinstance(llm, FunctionCallingLLM) and isinstance(llm, CustomLLM)
        assert llm.class_name() == f"{llm.engine}_llm"

    async def test_metadata_from_server(self, backend: Backend) -> None:
        backend.serve("info")
        llm = backend.llm()
        meta = llm.metadata
        assert meta.context_window == backend.context_window
        assert meta.num_output == 256  # LlamaIndex's default when max_tokens is not set
        assert meta.is_chat_model and meta.is_function_calling_model
        assert meta.model_name == backend.model_name
        assert llm.metadata is not meta and llm.metadata == meta  # rebuilt from the cached info
        async_llm = backend.llm(max_tokens=100)
        assert (await async_llm.aget_metadata()).num_output == 100
        assert async_llm.metadata.model_name == backend.model_name

    # -- chat --
    @pytest.mark.parametrize("mode", MODES)
    async def test_chat(self, backend: Backend, mode: str) -> None:
        expect = backend.serve("chat")
        llm = backend.llm()
        response = await chat(llm, mode, expect.messages, **expect.kwargs)
        check_async_only(llm, mode)
        assert response.message.role == "assistant"
        if expect.text is not None:
            assert response.message.content == expect.text
        assert response.raw["finish_reason"] in ("stop", "length")
        assert "tool_calls" not in response.message.additional_kwargs
        check_usage(expect, response)

    @pytest.mark.parametrize("mode", MODES)
    async def test_stream_chat(self, backend: Backend, mode: str) -> None:
        expect = backend.serve("chat_stream")
        llm = backend.llm()
        responses = await stream_chat(llm, mode, expect.messages, **expect.kwargs)
        check_async_only(llm, mode)
        text = "".join(r.delta or "" for r in responses)
        last = responses[-1]
        assert last.delta == "" and last.message.content == text
        if expect.text is not None:
            assert text == expect.text
        # cumulative messages: each response holds everything so far
        assert all(
            r.message.content == "".join(x.delta or "" for x in responses[: i + 1])
            for i, r in enumerate(responses)
        )
        check_usage(expect, last)

    # -- completion --
    @pytest.mark.parametrize("mode", MODES)
    async def test_complete_through_chat(self, backend: Backend, mode: str) -> None:
        expect = backend.serve("chat")
        llm = backend.llm()
        response = await complete(llm, mode, expect.prompt, **expect.kwargs)
        if expect.text is not None:
            assert response.text == expect.text
        check_usage(expect, response)

    @pytest.mark.parametrize("mode", MODES)
    async def test_stream_complete_through_chat(self, backend: Backend, mode: str) -> None:
        expect = backend.serve("chat_stream")
        llm = backend.llm()
        responses = await stream_complete(llm, mode, expect.prompt, **expect.kwargs)
        text = "".join(r.delta or "" for r in responses)
        assert responses[-1].text == text
        if expect.text is not None:
            assert text == expect.text
        check_usage(expect, responses[-1])

    @pytest.mark.parametrize("mode", MODES)
    async def test_complete_native_text_route(self, backend: Backend, mode: str) -> None:
        expect = backend.serve("text")
        llm = backend.llm()
        response = await complete(llm, mode, expect.prompt, formatted=True, **expect.kwargs)
        check_async_only(llm, mode)
        if expect.text is not None:
            assert response.text == expect.text
        check_usage(expect, response)

    @pytest.mark.parametrize("mode", MODES)
    async def test_stream_complete_native_text_route(self, backend: Backend, mode: str) -> None:
        expect = backend.serve("text_stream")
        llm = backend.llm()
        responses = await stream_complete(llm, mode, expect.prompt, formatted=True, **expect.kwargs)
        check_async_only(llm, mode)
        text = "".join(r.delta or "" for r in responses)
        assert responses[-1].text == text
        if expect.text is not None:
            assert text == expect.text
        check_usage(expect, responses[-1])

    # -- tools --
    @pytest.mark.parametrize("mode", MODES)
    async def test_chat_with_tools(self, backend: Backend, mode: str) -> None:
        expect = backend.serve("tools")
        llm = backend.llm()
        kw = {"chat_history": expect.messages, "tool_required": True, **expect.kwargs}
        if mode == "sync":
            response = llm.chat_with_tools(backend.tools, **kw)
        else:
            response = await llm.achat_with_tools(backend.tools, **kw)
        check_tool_calls(llm, expect, response)
        assert response.raw["finish_reason"] == "tool_calls"
        check_usage(expect, response)

    @pytest.mark.parametrize("mode", MODES)
    async def test_stream_chat_with_tools(self, backend: Backend, mode: str) -> None:
        expect = backend.serve("tools_stream")
        llm = backend.llm()
        kw = {"chat_history": expect.messages, "tool_required": True, **expect.kwargs}
        if mode == "sync":
            responses = list(llm.stream_chat_with_tools(backend.tools, **kw))
        else:
            responses = await collect(await llm.astream_chat_with_tools(backend.tools, **kw))
        last = responses[-1]
        check_tool_calls(llm, expect, last)
        # deltas accumulate into additional_kwargs["tool_calls"] while streaming, as llama-index-llms-openai
        partial = [r for r in responses[:-1] if r.message.additional_kwargs.get("tool_calls")]
        assert partial, "no streamed tool-call fragments"
        fragments = [r.message.additional_kwargs["tool_calls"][0]["function"]["arguments"] for r in partial]
        assert all(b.startswith(a) for a, b in itertools.pairwise(fragments))
        assert fragments[-1] == last.message.additional_kwargs["tool_calls"][0]["function"]["arguments"]
        # and partial arguments already parse as far as they go
        assert all(
            isinstance(c.tool_kwargs, dict) for r in partial for c in llm.get_tool_calls_from_response(r)
        )
        check_usage(expect, last)

    @pytest.mark.parametrize("mode", MODES)
    async def test_predict_and_call(self, backend: Backend, mode: str) -> None:
        expect = backend.serve("tools")
        llm = backend.llm()
        kw = {"chat_history": expect.messages, "tool_required": True, **expect.kwargs}
        if mode == "sync":
            result = llm.predict_and_call(backend.tools, **kw)
        else:
            result = await llm.apredict_and_call(backend.tools, **kw)
        (source,) = result.sources
        assert source.tool_name in expect.tool_names
        assert result.response == source.content

    async def test_no_tool_call(self, backend: Backend) -> None:
        expect = backend.serve("chat")
        llm = backend.llm()
        response = await llm.achat(expect.messages, **expect.kwargs)
        assert llm.get_tool_calls_from_response(response, error_on_no_tool_call=False) == []
        with pytest.raises(ValueError, match="tool call"):
            llm.get_tool_calls_from_response(response)

    # -- structured output --
    @pytest.mark.parametrize("mode", MODES)
    async def test_structured_predict(self, backend: Backend, mode: str, events: list[BaseEvent]) -> None:
        expect = backend.serve("json")
        llm = backend.llm()
        prompt = PromptTemplate("{question}")
        question = expect.messages[-1].content
        if mode == "sync":
            out = llm.structured_predict(
                expect.output_cls, prompt, llm_kwargs=expect.kwargs, question=question
            )
        else:
            out = await llm.astructured_predict(
                expect.output_cls, prompt, llm_kwargs=expect.kwargs, question=question
            )
        assert isinstance(out, expect.output_cls)
        if expect.output is not None:
            assert out == expect.output
        kinds = [type(e) for e in events]
        assert LLMStructuredPredictStartEvent in kinds and LLMStructuredPredictEndEvent in kinds
        assert LLMChatEndEvent in kinds

    @pytest.mark.parametrize("mode", MODES)
    async def test_stream_structured_predict(self, backend: Backend, mode: str) -> None:
        expect = backend.serve("json_stream")
        llm = backend.llm()
        prompt = PromptTemplate("{question}")
        question = expect.messages[-1].content
        if mode == "sync":
            outs = list(
                llm.stream_structured_predict(
                    expect.output_cls, prompt, llm_kwargs=expect.kwargs, question=question
                )
            )
        else:
            outs = await collect(
                await llm.astream_structured_predict(
                    expect.output_cls, prompt, llm_kwargs=expect.kwargs, question=question
                )
            )
        assert outs
        final = outs[-1]
        assert isinstance(final, expect.output_cls)
        if expect.output is not None:
            assert final == expect.output

    async def test_structured_llm(self, backend: Backend) -> None:
        expect = backend.serve("json")
        sllm = backend.llm(**expect.kwargs).as_structured_llm(expect.output_cls)
        response = await sllm.achat(expect.messages)
        assert isinstance(response.raw, expect.output_cls)

    # -- callbacks and instrumentation --
    @pytest.mark.parametrize(
        "call", ["chat", "achat", "stream_chat", "astream_chat", "complete", "acomplete", "stream_complete"]
    )
    async def test_token_counting(self, backend: Backend, call: str) -> None:
        expect = backend.serve("chat_stream" if "stream" in call else "chat")
        llm = backend.llm()
        counter = token_counter(llm)
        if "chat" in call:
            mode = "async" if call.startswith("a") else "sync"
            if "stream" in call:
                last: ChatResponse | CompletionResponse = (
                    await stream_chat(llm, mode, expect.messages, **expect.kwargs)
                )[-1]
            else:
                last = await chat(llm, mode, expect.messages, **expect.kwargs)
        else:
            mode = "async" if call.startswith("a") else "sync"
            if "stream" in call:
                last = (await stream_complete(llm, mode, expect.prompt, **expect.kwargs))[-1]
            else:
                last = await complete(llm, mode, expect.prompt, **expect.kwargs)
        (event,) = counter.llm_token_counts
        usage = last.raw["usage"]
        assert (event.prompt_token_count, event.completion_token_count) == (
            usage["prompt_tokens"],
            usage["completion_tokens"],
        )
        assert counter.total_llm_token_count == usage["prompt_tokens"] + usage["completion_tokens"]

    async def test_token_counting_tool_stream(self, backend: Backend) -> None:
        expect = backend.serve("tools_stream")
        llm = backend.llm()
        counter = token_counter(llm)
        responses = list(
            llm.stream_chat_with_tools(
                backend.tools, chat_history=expect.messages, tool_required=True, **expect.kwargs
            )
        )
        (event,) = counter.llm_token_counts
        usage = responses[-1].raw["usage"]
        if usage is None:  # the engine sent none: the handler estimates with its tokenizer
            assert event.prompt_token_count > 0
        else:
            assert event.completion_token_count == usage["completion_tokens"]

    @pytest.mark.parametrize("mode", MODES)
    async def test_chat_events(self, backend: Backend, mode: str, events: list[BaseEvent]) -> None:
        expect = backend.serve("chat_stream")
        llm = backend.llm(api_key="very-secret-key", context_window=999, model=backend.model_name)
        responses = await stream_chat(llm, mode, expect.messages, **expect.kwargs)
        start = next(e for e in events if isinstance(e, LLMChatStartEvent))
        end = next(e for e in events if isinstance(e, LLMChatEndEvent))
        progress = [e for e in events if isinstance(e, LLMChatInProgressEvent)]
        assert start.model_dict["class_name"] == llm.class_name()
        assert start.model_dict["context_window"] == 999
        assert start.model_dict["model_name"] == backend.model_name
        assert "very-secret-key" not in repr(start.model_dict) and "api_key" not in start.model_dict
        assert len(progress) == len(responses)
        assert end.response is not None and end.response.raw["usage"] == responses[-1].raw["usage"]
        assert start.span_id == end.span_id

    async def test_completion_events_and_spans(
        self, backend: Backend, events: list[BaseEvent], spans: SimpleSpanHandler
    ) -> None:
        expect = backend.serve("chat")
        llm = backend.llm()
        response = await llm.acomplete(expect.prompt, **expect.kwargs)
        kinds = [type(e) for e in events]
        assert LLMCompletionStartEvent in kinds and LLMCompletionEndEvent in kinds
        assert LLMChatStartEvent not in kinds  # complete() is one LLM event, not a nested chat
        end = next(e for e in events if isinstance(e, LLMCompletionEndEvent))
        assert end.response.text == response.text
        names = [s.id_.split("-")[0] for s in spans.completed_spans]
        assert f"{type(llm).__name__}.acomplete" in names

    async def test_callback_manager_llm_event(self, backend: Backend) -> None:
        from llama_index.core.callbacks import CBEventType
        from llama_index.core.callbacks import LlamaDebugHandler

        expect = backend.serve("chat")
        llm = backend.llm()
        debug = LlamaDebugHandler()
        llm.callback_manager = CallbackManager([debug])
        llm.chat(expect.messages, **expect.kwargs)
        (pair,) = debug.get_event_pairs(CBEventType.LLM)
        assert pair[1].payload is not None and "response" in pair[1].payload

    # -- agent --
    # llama-index-workflows inspects the agent's pydantic fields, which warns
    @pytest.mark.filterwarnings("ignore::DeprecationWarning")
    @pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "non-streaming"])
    async def test_function_agent(self, backend: Backend, streaming: bool) -> None:
        backend.serve("agent_stream" if streaming else "agent")
        llm = backend.llm()
        agent = FunctionAgent(
            tools=backend.tools, llm=llm, initial_tool_choice=backend.agent_tool, streaming=streaming
        )
        handler = agent.run(user_msg="What is the weather in Paris?")
        results: list[ToolCallResult] = []
        deltas: list[str] = []
        async for ev in handler.stream_events():
            if isinstance(ev, ToolCallResult):
                results.append(ev)
            elif isinstance(ev, AgentStream):
                deltas.append(ev.delta)
        answer = await handler
        assert [r.tool_name for r in results] == [backend.agent_tool]
        assert backend.agent_answer_ok(str(answer))
        if streaming:
            assert str(answer).strip() and "".join(deltas).strip().endswith(str(answer).strip())
