"""ChatTGI / TGILLM against real recorded TGI responses (respx), through ``invoke``, ``stream``, ``bind_tools``
and ``with_structured_output``; every request body is validated strictly against TGI's OpenAPI spec."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from typing import Literal

import httpx
import pytest
import respx
from langchain_core.exceptions import ModelInvalidRequestError
from langchain_core.messages import AIMessage
from langchain_core.messages import AIMessageChunk
from langchain_core.messages import BaseMessage
from langchain_core.messages import HumanMessage
from langchain_core.messages import SystemMessage
from langchain_core.messages import ToolMessage
from langchain_selfhosted import TGILLM
from langchain_selfhosted import ChatTGI
from pydantic import BaseModel
from pydantic import Field

from engine_clients import InvalidRequestError
from tests.support import tgi_recordings as rec
from tests.support.openapi import validate_request

BASE = "http://tgi.test"
CHAT = f"{BASE}/v1/chat/completions"
SPEC_EXTRA = ("messages.*.tool_call_id",)  # what TGI reads on tool messages; its spec omits it
SAMPLING = ("max_tokens", "seed", "temperature", "top_p", "stop")


def lc_messages(messages: list[dict[str, Any]]) -> list[BaseMessage]:
    """The recorded OpenAI-style messages as LangChain messages."""
    out: list[BaseMessage] = []
    for m in messages:
        if m["role"] == "system":
            out.append(SystemMessage(m["content"]))
        elif m["role"] == "user":
            out.append(HumanMessage(m["content"]))
        elif m["role"] == "tool":
            out.append(ToolMessage(m["content"], tool_call_id=m["tool_call_id"]))
        else:
            calls = [
                {"name": c["function"]["name"], "args": json.loads(c["function"]["arguments"]), "id": c["id"]}
                for c in m.get("tool_calls") or []
            ]
            out.append(AIMessage(m.get("content") or "", tool_calls=calls))
    return out


def without_nulls(obj: Any) -> Any:
    """The recorded request minus the null keys the recording client added (``function.description``)."""
    if isinstance(obj, dict):
        return {k: without_nulls(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [without_nulls(v) for v in obj]
    return obj


def model_for(name: str, **extra: Any) -> ChatTGI:
    request = rec.RECORDINGS[name]["request"]
    return ChatTGI(base_url=BASE, **{k: request[k] for k in SAMPLING if k in request}, **extra)


def sent(route: respx.Route) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(route.calls.last.request.content)
    validate_request("/v1/chat/completions", body, strict=True, tgi_compat=False, allow_extra=SPEC_EXTRA)
    return body


def mock_json(name: str) -> respx.Route:
    return router.post(CHAT).mock(return_value=httpx.Response(200, json=rec.wire_json(name)))


def mock_stream(name: str) -> respx.Route:
    body = rec.sse_body(rec.wire_chunks(name))
    return router.post(CHAT).mock(return_value=httpx.Response(200, content=body, headers=rec.SSE_HEADERS))


def chat_names(stream: bool, *, tools: bool | None = None, fmt: bool = False) -> list[str]:
    out = []
    for n, r in rec.RECORDINGS.items():
        if r["route"] != "/v1/chat/completions" or r["stream"] != stream:
            continue
        if ("response_format" in r["request"]) != fmt:
            continue
        if tools is not None and ("tools" in r["request"]) != tools:
            continue
        out.append(n)
    return out


INFO = {"model_id": "meta-llama/Llama-3.1-8B-Instruct", "version": "3.1.2", "max_input_tokens": 8000}
router: respx.MockRouter


@pytest.fixture(autouse=True)
def _mock() -> Iterator[None]:
    global router
    with respx.mock(assert_all_called=False) as router:
        router.get(f"{BASE}/info").mock(return_value=httpx.Response(200, json=INFO))  # model discovery
        yield


# ---- invoke / stream of plain chat ------------------------------------------------------------------------


@pytest.mark.parametrize("name", chat_names(False, tools=False))
async def test_invoke_recordings(name: str) -> None:
    r = rec.RECORDINGS[name]
    route = mock_json(name)
    model = model_for(name)
    message = model.invoke(lc_messages(r["request"]["messages"]))
    body = sent(route)
    assert body["messages"] == without_nulls(r["request"]["messages"])
    assert {k: body[k] for k in SAMPLING if k in body} == {
        k: r["request"][k] for k in SAMPLING if k in r["request"]
    }
    assert message.content == r["content"]
    assert message.response_metadata["model_name"] == r["model"]
    assert message.response_metadata["finish_reason"] == r["finish_reason"]
    if r.get("usage"):
        u = r["usage"]
        assert message.usage_metadata == {
            "input_tokens": u["prompt_tokens"],
            "output_tokens": u["completion_tokens"],
            "total_tokens": u["total_tokens"],
        }
    again = await model.ainvoke(lc_messages(r["request"]["messages"]))
    assert again.content == message.content and again.usage_metadata == message.usage_metadata


@pytest.mark.parametrize("name", chat_names(True, tools=False))
@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_stream_recordings(name: str, mode: str) -> None:
    r = rec.RECORDINGS[name]
    route = mock_stream(name)
    model = model_for(name)
    messages = lc_messages(r["request"]["messages"])
    chunks = list(model.stream(messages)) if mode == "sync" else [c async for c in model.astream(messages)]
    body = sent(route)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    full = chunks[0]
    for c in chunks[1:]:
        full += c
    assert isinstance(full, AIMessageChunk)
    assert full.content == r["content"]
    assert chunks[-1].chunk_position == "last"
    assert sum(c.chunk_position == "last" for c in chunks) == 1
    assert full.response_metadata["finish_reason"] == r["finish_reason"]
    assert full.response_metadata["model_name"] == r["model"]
    if r.get("usage"):
        assert full.usage_metadata is not None
        assert full.usage_metadata["total_tokens"] == r["usage"]["total_tokens"]
        assert sum(bool(c.usage_metadata) for c in chunks) == 1  # input tokens counted once
    else:
        assert full.usage_metadata is None


def test_stream_reaches_callbacks_token_by_token() -> None:
    from langchain_core.callbacks import BaseCallbackHandler

    class Tokens(BaseCallbackHandler):
        def __init__(self) -> None:
            self.tokens: list[str] = []

        def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
            self.tokens.append(token)

    name = "test_completion_prompts/test_chat_hfhub_usage"
    mock_stream(name)
    handler = Tokens()
    # streaming=True makes invoke use the stream route, so callbacks see each token as it arrives
    message = model_for(name, streaming=True).invoke("Say 'OK!'", config={"callbacks": [handler]})
    assert message.content == "OK!"
    assert "".join(handler.tokens) == "OK!" and len([t for t in handler.tokens if t]) > 1


# ---- tools --------------------------------------------------------------------------------------------


def test_tool_call_recordings_through_bind_tools() -> None:
    for name in chat_names(False, tools=True):
        r = rec.RECORDINGS[name]
        route = mock_json(name)
        choice = r["request"].get("tool_choice")
        model = model_for(name).bind_tools(rec.WEATHER_TOOLS, tool_choice=choice)
        message = model.invoke(lc_messages(r["request"]["messages"]))
        body = sent(route)
        assert [t["function"]["name"] for t in body["tools"]] == [
            t["function"]["name"] for t in rec.WEATHER_TOOLS
        ]
        assert body["tools"][0]["function"]["arguments"] == rec.WEATHER_TOOLS[0]["function"]["parameters"]
        if "tool_call" in r:
            (call,) = message.tool_calls
            assert call["name"] == r["tool_call"]["name"] and call["id"] == r["tool_call"]["id"]
            assert call["args"] == json.loads(r["tool_call"]["arguments"])
            assert message.response_metadata["finish_reason"] == "tool_calls"  # TGI says "stop"
            assert message.response_metadata["raw_finish_reason"] == "stop"
        else:
            assert not message.tool_calls and message.content == r["content"]


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("any", "required"),
        ("required", "required"),
        (True, "required"),
        ("get_n_day_weather_forecast", {"function": {"name": "get_n_day_weather_forecast"}}),
        (
            {"type": "function", "function": {"name": "get_n_day_weather_forecast"}},
            {"function": {"name": "get_n_day_weather_forecast"}},
        ),
        (None, None),
    ],
)
def test_every_tool_choice_form_fits_tgi(choice: Any, wire: Any) -> None:
    name = "test_tools_llama/test_flash_llama_grammar_tools_nostream"
    route = mock_json(name)
    model_for(name).bind_tools(rec.WEATHER_TOOLS, tool_choice=choice).invoke("weather?")
    assert sent(route).get("tool_choice") == wire


def test_bind_tools_accepts_langchain_tool_kinds() -> None:
    from langchain_core.tools import tool
    from typing_extensions import TypedDict

    @tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    def multiply(a: int, b: int) -> int:
        """Multiply two integers."""
        return a * b

    class Search(BaseModel):
        """Search the web."""

        query: str

    class Lookup(TypedDict):
        """Look a word up."""

        word: str

    route = mock_json("test_tools_llama/test_flash_llama_grammar_tools_nostream")
    tools = [add, multiply, Search, Lookup, rec.WEATHER_TOOLS[0]]
    ChatTGI(base_url=BASE).bind_tools(tools, tool_choice="Search").invoke("hi")
    body = sent(route)
    assert [t["function"]["name"] for t in body["tools"]] == [
        "add",
        "multiply",
        "Search",
        "Lookup",
        "get_current_weather",
    ]
    assert body["tool_choice"] == {"function": {"name": "Search"}}
    assert body["tools"][2]["function"]["arguments"]["properties"] == {"query": {"type": "string"}}


def test_bind_tools_refuses_unknown_tool_name() -> None:
    with pytest.raises(ValueError, match="nope"):
        ChatTGI(base_url=BASE).bind_tools(rec.WEATHER_TOOLS, tool_choice="nope")


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_streamed_tool_call_recording(mode: str) -> None:
    name = "test_tools_llama/test_flash_llama_grammar_tools_openai"
    r = rec.RECORDINGS[name]
    route = mock_stream(name)
    model = model_for(name).bind_tools(rec.WEATHER_TOOLS)
    messages = lc_messages(r["request"]["messages"])
    chunks = list(model.stream(messages)) if mode == "sync" else [c async for c in model.astream(messages)]
    sent(route)
    assert all(c.tool_call_chunks for c in chunks[:-1])  # TGI streams arguments fragment by fragment
    assert chunks[0].tool_call_chunks[0]["name"] == "get_current_weather"
    assert all(tc["name"] is None for c in chunks[1:] for tc in c.tool_call_chunks)  # name once
    full = chunks[0]
    for c in chunks[1:]:
        full += c
    assert isinstance(full, AIMessageChunk)
    (call,) = full.tool_calls
    assert call["name"] == "get_current_weather" and call["id"] == "0"  # the id, not "0" repeated
    assert call["args"] == json.loads(r["tool_call"]["arguments"])
    assert full.response_metadata["finish_reason"] == "tool_calls"


def test_tool_results_go_back_as_tgi_expects() -> None:
    name = "test_tools_llama/test_flash_llama_tool_reply_response"
    r = rec.RECORDINGS[name]
    route = mock_json(name)
    history = lc_messages(r["request"]["messages"])
    message = model_for(name).invoke(history)
    body = sent(route)
    assistant = body["messages"][1]
    assert "content" not in assistant  # TGI's message is content XOR tool_calls
    (call,) = assistant["tool_calls"]
    assert call["id"] == "0" and call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"longitude": 2.2945, "latitude": 48.8567}
    assert body["messages"][2] == {"role": "tool", "tool_call_id": "0", "content": "6.7"}
    assert message.content == r["content"]


# ---- structured output ----------------------------------------------------------------------------------


class Weather(BaseModel):
    unit: str
    temperature: list[int]


class Person(BaseModel):
    firstName: str
    lastName: str
    hobby: str
    numCats: int = Field(ge=0)


@pytest.mark.parametrize("schema_kind", ["pydantic", "json_schema", "typeddict"])
def test_structured_output_json_schema_recording(schema_kind: str) -> None:
    from typing_extensions import TypedDict

    class WeatherDict(TypedDict):
        unit: str
        temperature: list[int]

    name = "test_grammar_response_format_llama/test_grammar_response_format_llama_json.1"
    r = rec.RECORDINGS[name]
    route = mock_json(name)
    schema: Any = {"pydantic": Weather, "json_schema": rec.WEATHER_SCHEMA, "typeddict": WeatherDict}[
        schema_kind
    ]
    result = model_for(name).with_structured_output(schema).invoke(lc_messages(r["request"]["messages"]))
    body = sent(route)
    assert body["response_format"]["type"] == "json"
    assert body["response_format"]["value"]["properties"].keys() == {"unit", "temperature"}
    expected = json.loads(r["content"])
    if schema_kind == "pydantic":
        assert result == Weather(**expected)
    else:
        assert result == expected


def test_structured_output_include_raw() -> None:
    name = "test_grammar_response_format_llama/test_grammar_response_format_llama_json.1"
    mock_json(name)
    out = model_for(name).with_structured_output(Weather, include_raw=True).invoke("weather?")
    assert isinstance(out, dict)
    assert isinstance(out["raw"], AIMessage) and out["parsing_error"] is None
    assert out["parsed"] == Weather(unit="fahrenheit", temperature=[72, 79, 88])


def test_structured_output_include_raw_keeps_parsing_errors() -> None:
    mock_json("test_chat_llama/test_flash_llama_simple")  # prose, not JSON
    out = ChatTGI(base_url=BASE).with_structured_output(Weather, include_raw=True).invoke("weather?")
    assert isinstance(out, dict)
    assert out["parsed"] is None and out["parsing_error"] is not None
    assert isinstance(out["raw"], AIMessage)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_structured_output_streams_partial_objects(mode: str) -> None:
    name = "test_json_schema_constrain/test_json_schema_stream"
    r = rec.RECORDINGS[name]
    route = mock_stream(name)
    chain = model_for(name).with_structured_output(rec.PERSON_SCHEMA, strict=True)
    messages = lc_messages(r["request"]["messages"])
    parts = list(chain.stream(messages)) if mode == "sync" else [p async for p in chain.astream(messages)]
    body = sent(route)
    assert "$schema" not in json.dumps(body["response_format"]["value"]["properties"])
    assert len(parts) > 1 and all(isinstance(p, dict) for p in parts)
    assert parts[-1] == json.loads(r["content"])
    assert all(set(p) <= set(parts[-1]) for p in parts)  # grows key by key


def test_structured_output_function_calling_recording() -> None:
    class get_current_weather(BaseModel):
        """Get the current weather"""

        location: str
        format: Literal["celsius", "fahrenheit"]

    name = "test_tools_llama/test_flash_llama_grammar_tools_choice_nostream"
    r = rec.RECORDINGS[name]
    route = mock_json(name)
    chain = model_for(name).with_structured_output(get_current_weather, method="function_calling")
    result = chain.invoke(lc_messages(r["request"]["messages"]))
    body = sent(route)
    assert body["tool_choice"] == {"function": {"name": "get_current_weather"}}
    assert [t["function"]["name"] for t in body["tools"]] == ["get_current_weather"]
    assert result == get_current_weather(**json.loads(r["tool_call"]["arguments"]))


def test_json_mode_is_refused_by_tgi_before_sending() -> None:
    route = router.post(CHAT)
    chain = ChatTGI(base_url=BASE).with_structured_output(Weather, method="json_mode")
    with pytest.raises(InvalidRequestError) as info:
        chain.invoke("weather?")
    assert isinstance(info.value, ModelInvalidRequestError) and isinstance(info.value, ValueError)
    assert not route.called


# ---- TGILLM on /generate ----------------------------------------------------------------------------------


def generate_names() -> list[str]:
    return [n for n, r in rec.RECORDINGS.items() if r["route"] == "/" and "responses" not in r]


def generate_kwargs(request: dict[str, Any]) -> dict[str, Any]:
    params = {k: v for k, v in request["parameters"].items() if v is not None and k != "details"}
    if "max_new_tokens" in params:
        params["max_tokens"] = params.pop("max_new_tokens")
    if params.get("stop") == []:
        params.pop("stop")
    return params


@pytest.mark.parametrize("name", generate_names())
def test_llm_generate_recordings(name: str) -> None:
    r = rec.RECORDINGS[name]
    route = router.post(f"{BASE}/generate").mock(return_value=httpx.Response(200, json=rec.wire_json(name)))
    llm = TGILLM(base_url=BASE, model="tgi-model", **generate_kwargs(r["request"]))
    result = llm.generate([r["request"]["inputs"]])
    validate_request("/generate", json.loads(route.calls.last.request.content), strict=True, tgi_compat=False)
    (gen,) = result.generations[0]
    assert gen.text == r["content"]
    assert gen.generation_info is not None
    assert gen.generation_info["finish_reason"] in ("stop", "length")
    assert gen.generation_info["model_name"] == "tgi-model"
    assert gen.generation_info["token_usage"]["completion_tokens"] == r["generated_tokens"]
    assert len(gen.generation_info["logprobs"]["content"]) == r["generated_tokens"]
    assert result.llm_output is not None
    assert result.llm_output["token_usage"]["completion_tokens"] == r["generated_tokens"]


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_llm_stream_recording(mode: str) -> None:
    name = "test_flash_llama/test_flash_llama_simple"
    r = rec.RECORDINGS[name]
    body = rec.generate_stream_body(name, input_length=4)
    route = router.post(f"{BASE}/generate_stream").mock(
        return_value=httpx.Response(200, content=body, headers=rec.SSE_HEADERS)
    )
    llm = TGILLM(base_url=BASE, **generate_kwargs(r["request"]))
    prompt = r["request"]["inputs"]
    parts = list(llm.stream(prompt)) if mode == "sync" else [p async for p in llm.astream(prompt)]
    validate_request(
        "/generate_stream", json.loads(route.calls.last.request.content), strict=True, tgi_compat=False
    )
    assert len(parts) > 2 and "".join(parts) == r["content"]
