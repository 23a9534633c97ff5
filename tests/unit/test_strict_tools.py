"""Function-calling structured output that validates (issue 19 item 6), against mocked servers.

vLLM holds a tool call's arguments to the tool's schema only when the tool is strict (recent versions build an
xgrammar structural tag for a named or required choice and pin only strict tools' arguments), so a named
``tool_choice`` sends that tool strict unless the caller set ``strict``. llama.cpp (a grammar from the schema
under ``"required"``) and TGI (its router's tool grammar) constrain the arguments anyway. Each engine says so in
``EngineInfo.constrained_tool_arguments``, and LangChain's ``profile``.
"""

from __future__ import annotations

import json
from typing import Any

import pydantic
import pytest
import respx

from engine_clients import LlamaCppClient
from engine_clients import TGIClient
from engine_clients import Tool
from engine_clients import VLLMClient
from engine_clients.dialects.openai_compat import OpenAICompatDialect

URL = "http://engine.test"
CHAT = f"{URL}/v1/chat/completions"
VLLM = VLLMClient(URL)
LLAMA = LlamaCppClient(URL)
TGI = TGIClient(URL)

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}


def functions(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["function"]["name"]: t["function"] for t in body["tools"]}


# ---- the wire -------------------------------------------------------------------------------------------


def test_vllm_named_choice_sends_that_tool_strict() -> None:
    body = VLLM.build_chat("hi", tools=[WEATHER, TIME], tool_choice="get_weather").json
    fns = functions(body)
    assert fns["get_weather"]["strict"] is True
    assert "strict" not in fns["get_time"]  # only the named tool
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert fns["get_weather"]["parameters"] == WEATHER["function"]["parameters"]  # the schema as given


@pytest.mark.parametrize("strict", [False, True])
def test_vllm_named_choice_keeps_a_strict_the_caller_set(strict: bool) -> None:
    tool = Tool("get_weather", parameters=WEATHER["function"]["parameters"], strict=strict)
    body = VLLM.build_chat("hi", tools=[tool], tool_choice="get_weather").json
    assert functions(body)["get_weather"]["strict"] is strict


@pytest.mark.parametrize("choice", [None, "auto", "none"])
def test_vllm_unforced_choices_leave_strict_alone(choice: str | None) -> None:
    body = VLLM.build_chat("hi", tools=[WEATHER], tool_choice=choice).json
    assert "strict" not in functions(body)["get_weather"]


def test_vllm_required_sends_every_tool_strict_unless_set() -> None:
    """``"required"`` (LangChain's ``tool_choice="any"``) forces a call too: its tools' arguments are pinned."""
    time_loose = Tool("get_time", parameters={"type": "object", "properties": {}}, strict=False)
    body = VLLM.build_chat("hi", tools=[WEATHER, time_loose], tool_choice="required").json
    assert functions(body)["get_weather"]["strict"] is True
    assert functions(body)["get_time"]["strict"] is False


def test_llamacpp_named_choice_is_that_tool_required_constrained_by_its_grammar() -> None:
    body = LLAMA.build_chat("hi", tools=[WEATHER, TIME], tool_choice="get_weather").json
    assert body["tool_choice"] == "required" and list(functions(body)) == ["get_weather"]
    assert "strict" not in functions(body)["get_weather"]  # llama-server constrains arguments without it


def test_tgi_named_choice_sends_no_strict_field() -> None:
    body = TGI.build_chat("hi", tools=[WEATHER, TIME], tool_choice="get_weather").json
    assert body["tool_choice"] == {"function": {"name": "get_weather"}}
    assert all("strict" not in t["function"] for t in body["tools"])  # not in TGI's spec; always constrained


def test_an_engine_not_known_to_constrain_gets_no_strict() -> None:
    class Plain(OpenAICompatDialect):
        engine = "plain"

    assert Plain.constrains_named_tools is None
    from engine_clients._requests import ChatRequest
    from engine_clients._requests import normalize_tool_choice
    from engine_clients._requests import normalize_tools

    tools = normalize_tools([WEATHER])
    req = ChatRequest([{"role": "user", "content": "hi"}], tools, normalize_tool_choice("get_weather", tools))
    assert "strict" not in functions(Plain().build_chat(req, False).json)["get_weather"]
    assert Plain().parse_info([{"data": [{"id": "m"}]}]).constrained_tool_arguments is None


# ---- what the engines report ------------------------------------------------------------------------------


def test_info_reports_constrained_tool_arguments() -> None:
    with respx.mock() as router:
        router.get(f"{URL}/v1/models").respond(json={"data": [{"id": "m", "max_model_len": 1024}]})
        router.get(f"{URL}/version").respond(json={"version": "0.32.0"})
        router.get(f"{URL}/props").respond(json={"default_generation_settings": {"n_ctx": 4096}})
        router.get(f"{URL}/info").respond(
            json={"model_id": "m", "version": "3.3.6", "max_total_tokens": 4096}
        )
        assert VLLMClient(URL).info().constrained_tool_arguments is True
        assert LlamaCppClient(URL).info().constrained_tool_arguments is True
        assert TGIClient(URL).info().constrained_tool_arguments is True


# ---- LangChain: with_structured_output(method="function_calling") -----------------------------------------


class City(pydantic.BaseModel):
    """A city and its population."""

    name: str
    population: int


def tool_answer(name: str, arguments: str) -> dict[str, Any]:
    call = {"id": "chatcmpl-tool-1", "type": "function", "function": {"name": name, "arguments": arguments}}
    return {
        "id": "chatcmpl-1",
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "", "tool_calls": [call]},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    }


@pytest.mark.parametrize(("strict", "sent"), [(None, True), (False, False), (True, True)])
def test_langchain_function_calling_goes_out_strict_and_named_on_vllm(
    strict: bool | None, sent: bool
) -> None:
    lc = pytest.importorskip("langchain_selfhosted")
    with respx.mock() as router:
        route = router.post(CHAT).respond(json=tool_answer("City", '{"name": "Lyon", "population": 520000}'))
        model = lc.ChatVLLM(base_url=URL, model="m", max_retries=0)
        city = model.with_structured_output(City, method="function_calling", strict=strict).invoke("Lyon?")
    assert city == City(name="Lyon", population=520000)
    body = json.loads(route.calls.last.request.content)
    assert body["tool_choice"] == {"type": "function", "function": {"name": "City"}}
    assert functions(body)["City"]["strict"] is sent


def test_langchain_function_calling_on_llamacpp_is_required_with_the_one_tool() -> None:
    lc = pytest.importorskip("langchain_selfhosted")
    with respx.mock() as router:
        route = router.post(CHAT).respond(json=tool_answer("City", '{"name": "Lyon", "population": 1}'))
        model = lc.ChatLlamaCpp(base_url=URL, model="m", max_retries=0)
        assert model.with_structured_output(City, method="function_calling").invoke("Lyon?").population == 1
    body = json.loads(route.calls.last.request.content)
    assert body["tool_choice"] == "required" and list(functions(body)) == ["City"]


def test_langchain_profile_says_whether_tool_arguments_are_constrained() -> None:
    lc = pytest.importorskip("langchain_selfhosted")
    with respx.mock() as router:
        router.get(f"{URL}/v1/models").respond(json={"data": [{"id": "m"}]})
        router.get(f"{URL}/version").respond(json={"version": "0.32.0"})
        model = lc.ChatVLLM(base_url=URL, max_retries=0)
        assert model.profile is not None
        assert model.profile.get("constrained_tool_arguments") is True


# ---- LangChain: the structured-output error (Task A's error, as LangChain code catches it) ----------------


def test_langchain_json_schema_answer_from_the_reasoning_and_its_error() -> None:
    lc = pytest.importorskip("langchain_selfhosted")
    exceptions = pytest.importorskip("langchain_core.exceptions")

    def reply(reasoning: str) -> dict[str, Any]:
        body = tool_answer("x", "{}")
        body["choices"][0]["message"] = {"role": "assistant", "content": "", "reasoning": reasoning}
        return body

    model = lc.ChatVLLM(base_url=URL, model="m", max_retries=0).with_structured_output(City)
    with respx.mock() as router:
        router.post(CHAT).respond(json=reply('Lyon.\n{"name": "Lyon", "population": 520000}'))
        assert model.invoke("Lyon?") == City(name="Lyon", population=520000)
    with respx.mock() as router:
        router.post(CHAT).respond(json=reply('Draft {"name": "Lyon"}'))
        with pytest.raises(lc.errors.StructuredOutputError) as info:
            model.invoke("Lyon?")
    err = info.value
    assert isinstance(err, exceptions.OutputParserException) and isinstance(err, exceptions.ModelError)
    assert err.reasoning == 'Draft {"name": "Lyon"}' and err.content == ""
