"""The conformance suite for :class:`TGI` against real TGI responses (TGI's recorded snapshots) replayed with
respx; every request the LLM sends is also validated, strictly, against TGI's OpenAPI document."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.tools import FunctionTool
from llama_index.llms.selfhosted import TGI

from tests.llamaindex.conformance import Backend
from tests.llamaindex.conformance import Expect
from tests.llamaindex.conformance import LlamaIndexConformance
from tests.llamaindex.conformance import Person
from tests.llamaindex.conformance import Weather
from tests.support import tgi_recordings as rec
from tests.support.openapi import validate_request

BASE = "http://tgi.test"
SPEC_EXTRA = ("messages.*.tool_call_id",)  # TGI reads it (its own tests send it); the spec omits it
INFO = {
    "model_id": "meta-llama/Llama-3.1-8B-Instruct",
    "model_sha": None,
    "model_pipeline_tag": "text-generation",
    "max_concurrent_requests": 128,
    "max_best_of": 2,
    "max_stop_sequences": 4,
    "max_input_tokens": 1024,
    "max_total_tokens": 2048,
    "validation_workers": 2,
    "max_client_batch_size": 4,
    "router": "text-generation-router",
    "version": "3.3.6",
}

CHAT = "test_continue_final_message/test_llama_completion_single_prompt"
CHAT_STREAM = "test_completion_prompts/test_chat_hfhub_usage"
TOOLS = "test_tools_llama/test_flash_llama_grammar_tools_nostream"
TOOLS_STREAM = "test_tools_llama/test_flash_llama_grammar_tools_openai"
TOOL_REPLY = "test_tools_llama/test_flash_llama_tool_reply_response"
JSON = "test_grammar_response_format_llama/test_grammar_response_format_llama_json.2"
JSON_STREAM = "test_json_schema_constrain/test_json_schema_stream"
TEXT = "test_flash_llama/test_flash_llama_simple"


def get_current_weather(location: str, format: str) -> str:
    """Get the current weather."""
    return f"72 degrees {format} in {location}"


def get_n_day_weather_forecast(location: str, format: str, num_days: int) -> str:
    """Get an N-day weather forecast."""
    return f"sunny for {num_days} days in {location}"


def messages(name: str) -> list[ChatMessage]:
    return [
        ChatMessage(role=m["role"], content=m["content"]) for m in rec.RECORDINGS[name]["request"]["messages"]
    ]


def sampling(name: str) -> dict[str, Any]:
    request = rec.RECORDINGS[name]["request"]
    return {k: request[k] for k in ("max_tokens", "seed", "temperature") if k in request}


def json_response(name: str) -> httpx.Response:
    return httpx.Response(200, json=rec.wire_json(name))


def sse_response(name: str) -> httpx.Response:
    return httpx.Response(200, content=rec.sse_body(rec.wire_chunks(name)), headers=rec.SSE_HEADERS)


def usage(name: str) -> dict[str, int] | None:
    return rec.RECORDINGS[name].get("usage")


class TGIBackend(Backend):
    name = "tgi"
    replayed = True
    context_window = 1024 + 256  # min(max_total_tokens, max_input_tokens + num_output) at max_tokens=None
    model_name = INFO["model_id"]
    agent_tool = "get_current_weather"

    def __init__(self, router: respx.MockRouter) -> None:
        self.router = router
        router.get("/info").mock(return_value=httpx.Response(200, json=INFO))  # LlamaIndex reads metadata
        self.tools = [
            FunctionTool.from_defaults(get_current_weather),
            FunctionTool.from_defaults(get_n_day_weather_forecast),
        ]

    def llm(self, **kwargs: Any) -> TGI:
        return TGI(BASE, max_retries=0, **kwargs)

    def _chat_route(self, *responses: httpx.Response) -> None:
        route = self.router.post("/v1/chat/completions")
        if len(responses) == 1:
            route.mock(return_value=responses[0])
        else:
            route.mock(side_effect=list(responses))

    def serve(self, scenario: str) -> Expect:
        if scenario == "info":
            return Expect(messages=[])
        if scenario in ("chat", "chat_stream"):
            name = CHAT if scenario == "chat" else CHAT_STREAM
            self._chat_route(json_response(name) if scenario == "chat" else sse_response(name))
            msgs = messages(name)
            return Expect(
                messages=msgs,
                prompt=msgs[-1].content or "",
                text=rec.RECORDINGS[name]["content"],
                usage=usage(name),
                kwargs=sampling(name),
            )
        if scenario in ("tools", "tools_stream"):
            name = TOOLS if scenario == "tools" else TOOLS_STREAM
            self._chat_route(json_response(name) if scenario == "tools" else sse_response(name))
            call = rec.RECORDINGS[name]["tool_call"]
            return Expect(
                messages=messages(name),
                tool_names=frozenset({call["name"]}),
                tool_args=json.loads(call["arguments"]),
                usage=usage(name),
                has_usage=usage(name) is not None,
                kwargs=sampling(name),
            )
        if scenario == "json":
            self._chat_route(json_response(JSON))
            return Expect(
                messages=messages(JSON),
                output_cls=Weather,
                output=Weather.model_validate_json(rec.RECORDINGS[JSON]["content"]),
                kwargs=sampling(JSON),
            )
        if scenario == "json_stream":
            self._chat_route(sse_response(JSON_STREAM))
            return Expect(
                messages=messages(JSON_STREAM),
                output_cls=Person,
                output=Person.model_validate_json(rec.RECORDINGS[JSON_STREAM]["content"]),
                kwargs=sampling(JSON_STREAM),
            )
        if scenario in ("text", "text_stream"):
            if scenario == "text":
                self.router.post("/generate").mock(return_value=json_response(TEXT))
                counts = {"prompt_tokens": 0, "completion_tokens": 10}  # no prefill recorded: 0 prompt tokens
            else:
                body = rec.generate_stream_body(TEXT, input_length=4)
                self.router.post("/generate_stream").mock(
                    return_value=httpx.Response(200, content=body, headers=rec.SSE_HEADERS)
                )
                counts = {"prompt_tokens": 4, "completion_tokens": 10}
            return Expect(
                messages=[],
                prompt=rec.RECORDINGS[TEXT]["request"]["inputs"],
                text=rec.RECORDINGS[TEXT]["content"],
                usage=counts,
                kwargs={"max_tokens": 10},
            )
        if scenario == "agent":
            self._chat_route(json_response(TOOLS), json_response(TOOL_REPLY))
            return Expect(messages=[])
        if scenario == "agent_stream":
            self._chat_route(sse_response(TOOLS_STREAM), sse_response(CHAT_STREAM))
            return Expect(messages=[])
        raise AssertionError(scenario)

    def agent_answer_ok(self, text: str) -> bool:
        return text in (rec.RECORDINGS[TOOL_REPLY]["content"], rec.RECORDINGS[CHAT_STREAM]["content"])


@pytest.fixture
def tgi_router() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router
        for call in router.calls:  # every body this LLM sent must fit TGI's own spec
            request = call.request
            if request.method == "POST":
                validate_request(
                    request.url.path,
                    json.loads(request.content),
                    strict=True,
                    tgi_compat=False,
                    allow_extra=SPEC_EXTRA,
                )


@pytest.fixture
def backend(tgi_router: respx.MockRouter) -> TGIBackend:
    return TGIBackend(tgi_router)


class TestTGIConformance(LlamaIndexConformance):
    pass


# ---- TGI-specific checks of what is sent ---------------------------------------------------------------


def sent(router: respx.MockRouter, index: int = -1) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(router.calls[index].request.content)
    return body


def test_structured_predict_sends_grammar_not_tools(backend: TGIBackend) -> None:
    from llama_index.core.prompts import PromptTemplate

    backend.serve("json")
    backend.llm().structured_predict(Weather, PromptTemplate("weather?"))
    body = sent(backend.router)
    assert "tools" not in body
    assert body["response_format"]["type"] == "json"
    assert body["response_format"]["value"]["required"] == ["unit", "temperature"]


def test_tool_required_and_named_choice_on_the_wire(backend: TGIBackend) -> None:
    backend.serve("tools")
    llm = backend.llm()
    llm.chat_with_tools(backend.tools, user_msg="weather?", tool_required=True)
    assert sent(backend.router)["tool_choice"] == "required"
    llm.chat_with_tools(backend.tools, user_msg="weather?", tool_choice="get_current_weather")
    assert sent(backend.router)["tool_choice"] == {"function": {"name": "get_current_weather"}}
    llm.chat_with_tools(backend.tools, user_msg="weather?")
    body = sent(backend.router)
    assert body["tool_choice"] == "auto"
    assert "parallel_tool_calls" not in body  # TGI does not take it: enforced on the response instead
    assert [t["function"]["name"] for t in body["tools"]] == [
        "get_current_weather",
        "get_n_day_weather_forecast",
    ]


def test_tool_round_trip_messages(backend: TGIBackend) -> None:
    """An assistant tool call and its tool result, as a FunctionAgent keeps them, go out as TGI reads them."""
    backend.serve("tools")
    llm = backend.llm()
    first = llm.chat_with_tools(backend.tools, user_msg="weather?", tool_required=True)
    call = llm.get_tool_calls_from_response(first)[0]
    history = [
        ChatMessage(role="user", content="weather?"),
        first.message,
        ChatMessage(role="tool", content="72F", additional_kwargs={"tool_call_id": call.tool_id}),
    ]
    llm.chat_with_tools(backend.tools, chat_history=history)
    assistant, tool = sent(backend.router)["messages"][1:3]
    assert "content" not in assistant  # TGI's message is content XOR tool_calls
    assert assistant["tool_calls"][0]["function"] == {
        "name": "get_current_weather",
        "arguments": json.dumps(call.tool_kwargs),
    }
    assert tool == {"role": "tool", "content": "72F", "tool_call_id": call.tool_id}


def test_sampling_fields_per_route(backend: TGIBackend) -> None:
    backend.serve("chat")
    backend.serve("text")
    llm = backend.llm(temperature=0.5, top_k=5, tool_prompt="Tools:", additional_kwargs={"seed": 3})
    llm.chat([ChatMessage(role="user", content="hi")], max_tokens=7)
    body = sent(backend.router)
    assert (body["temperature"], body["max_tokens"], body["seed"]) == (0.5, 7, 3)
    assert "top_k" not in body  # TGI's chat route has none
    llm.complete("hi", formatted=True, temperature=None)
    params = sent(backend.router)["parameters"]
    assert params["top_k"] == 5 and "temperature" not in params and "tool_prompt" not in params


def test_metadata_needs_no_server_when_configured(backend: TGIBackend) -> None:
    llm = backend.llm(model="my-adapter", context_window=4096, max_tokens=32)
    meta = llm.metadata
    assert (meta.context_window, meta.num_output, meta.model_name) == (4096, 32, "my-adapter")
    assert not backend.router.calls  # both fields given: no need to ask


def test_metadata_is_fetched_once(backend: TGIBackend) -> None:
    backend.serve("info")
    llm = backend.llm()
    assert not backend.router.calls  # constructing sends nothing
    for _ in range(5):
        assert llm.metadata.context_window == 1280
    assert len(backend.router.calls) == 1
    llm.max_tokens = 512  # num_output follows the field; the window is recomputed from the cached info
    assert (llm.metadata.num_output, llm.metadata.context_window) == (512, 1536)
    assert len(backend.router.calls) == 1


def test_metadata_falls_back_when_the_server_is_down(
    backend: TGIBackend, caplog: pytest.LogCaptureFixture
) -> None:
    route = backend.router.get("/info").mock(return_value=httpx.Response(503, json={"error": "loading"}))
    llm = backend.llm()
    assert llm.metadata.context_window == 3900  # LlamaIndex's default while the server does not answer
    assert llm.metadata.model_name == "unknown"
    assert route.call_count == 1  # not asked again at once
    assert "could not read the server info" in caplog.text
    llm.clear_metadata_cache()
    route.mock(return_value=httpx.Response(200, json=INFO))
    assert llm.metadata.context_window == 1280
