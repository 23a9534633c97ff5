"""TGI and reasoning models: TGI has no reasoning parser, so ``<think>`` arrives inside ``content`` and the
client splits it off. Every mocked TGI answer here is first checked against TGI's OpenAPI spec (strict:
no undeclared key), and every request the client builds is validated against the spec, so the thinking
never leaks into a field TGI does not have."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import respx

from engine_clients import ChatMessage
from engine_clients import End
from engine_clients import InvalidRequestError
from engine_clients import Reasoning
from engine_clients import TGIClient
from engine_clients import ThinkTags
from engine_clients import Token
from engine_clients import ToolCallDelta as ToolDelta
from tests.support import tgi_recordings as rec
from tests.support.openapi import spec
from tests.support.openapi import validate_request
from tests.support.openapi import validate_response

BASE = "http://tgi.test"
CHAT = "/v1/chat/completions"
SPEC_EXTRA = ("messages.*.tool_call_id",)  # as in test_tgi_contract: TGI reads it, the spec omits it
MODEL = "Qwen/Qwen3-0.6B"
MODES = ["sync", "async"]


def answer(content: str) -> dict[str, Any]:
    body = {
        "object": "chat.completion", "id": "", "created": 1764460800, "model": MODEL,
        "system_fingerprint": "3.3.6-dev0-native",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "logprobs": None,
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42},
    }
    validate_response(CHAT, 200, body, strict=True)
    return body


def chunk(content: str, finish: str | None = None) -> dict[str, Any]:
    body = {
        "object": "chat.completion.chunk", "id": "", "created": 1764460800, "model": MODEL,
        "system_fingerprint": "3.3.6-dev0-native",
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": content}, "logprobs": None,
                     "finish_reason": finish}],
        "usage": None,
    }
    validate_response(CHAT, 200, body, content_type="text/event-stream", strict=True)
    return body


def tool_chunk(arguments: str, name: str | None) -> dict[str, Any]:
    body = {
        "object": "chat.completion.chunk", "id": "", "created": 1764460800, "model": MODEL,
        "system_fingerprint": "3.3.6-dev0-native",
        "choices": [{"index": 0, "logprobs": None, "finish_reason": None, "delta": {"role": "assistant",
                     "tool_calls": [{"id": "0", "type": "function", "index": 0,
                                     "function": {"name": name, "arguments": arguments}}]}}],
        "usage": None,
    }
    validate_response(CHAT, 200, body, content_type="text/event-stream", strict=True)
    return body


def stream_body(pieces: list[str], finish: str = "stop") -> bytes:
    return rec.sse_body([chunk(p) for p in pieces] + [chunk("", finish)])


def sent(route: respx.Route) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(route.calls.last.request.content)
    validate_request(CHAT, body, strict=True, tgi_compat=False, allow_extra=SPEC_EXTRA)
    return body


def run_stream(client: TGIClient, mode: str, *args: Any, **kwargs: Any) -> list[Any]:
    if mode == "sync":
        return list(client.chat_stream(*args, **kwargs))

    async def go() -> list[Any]:
        return [e async for e in client.achat_stream(*args, **kwargs)]

    return asyncio.run(go())


def texts(events: list[Any], kind: type) -> str:
    return "".join(e.text for e in events if isinstance(e, kind))


THOUGHT = "\nThe user greets me. Reply briefly.\n"
CONTENT_CASES = [  # (content as TGI sends it, reasoning, answer, client tags)
    (f"<think>{THOUGHT}</think>\n\nHello!", THOUGHT.lstrip(), "Hello!", ThinkTags()),  # whitespace after <think> dropped
    (f"{THOUGHT}</think>\n\nHello!", THOUGHT, "Hello!", ThinkTags()),  # template opened <think>
    (f"{THOUGHT}</think>\n\nHello!", THOUGHT.lstrip(), "Hello!", ThinkTags(implicit_open=True)),
    ("Hello!", None, "Hello!", ThinkTags()),
]


@pytest.mark.parametrize(("content", "reasoning", "said", "tags"), CONTENT_CASES)
@pytest.mark.parametrize("mode", MODES)
@respx.mock
def test_non_streamed(content: str, reasoning: str | None, said: str, tags: ThinkTags, mode: str) -> None:
    route = respx.post(f"{BASE}{CHAT}").mock(return_value=httpx.Response(200, json=answer(content)))
    client = TGIClient(BASE, think_tags=tags)
    result = client.chat("Hi") if mode == "sync" else asyncio.run(client.achat("Hi"))
    sent(route)
    assert (result.reasoning, result.content) == (reasoning, said)
    assert result.usage is not None and result.usage.reasoning_tokens is None  # TGI does not count them


@pytest.mark.parametrize(("content", "reasoning", "said", "tags"), CONTENT_CASES)
@pytest.mark.parametrize("mode", MODES)
@respx.mock
def test_streamed_token_by_token(content: str, reasoning: str | None, said: str, tags: ThinkTags,
                                 mode: str) -> None:
    pieces = ["<think>", *list(THOUGHT), "</think>", "\n\n", "Hello", "!"] if content.startswith("<think>") else (
        [*list(THOUGHT), "</", "think", ">", "\n\n", "Hello", "!"] if reasoning else ["Hello", "!"])
    assert "".join(pieces) == content
    route = respx.post(f"{BASE}{CHAT}").mock(return_value=httpx.Response(
        200, content=stream_body(pieces), headers=rec.SSE_HEADERS))
    events = run_stream(TGIClient(BASE, think_tags=tags), mode, "Hi")
    sent(route)
    end = events[-1]
    assert isinstance(end, End) and (end.reasoning, end.content) == (reasoning, said)
    assert "think>" not in texts(events, Token) + texts(events, Reasoning)
    if reasoning and (content.startswith("<think>") or tags.implicit_open):  # split live
        assert (texts(events, Reasoning), texts(events, Token)) == (reasoning, said)
    elif reasoning:  # missing opening tag: already yielded as tokens, corrected in End
        assert texts(events, Token) == reasoning + said and texts(events, Reasoning) == ""


@pytest.mark.parametrize("mode", MODES)
@respx.mock
def test_json_after_thinking_parses(mode: str) -> None:
    content = '<think>\nThey want JSON with a name.\n</think>\n\n{"firstName": "David", "numCats": 2}'
    route = respx.post(f"{BASE}{CHAT}").mock(return_value=httpx.Response(200, json=answer(content)))
    client = TGIClient(BASE)
    result = client.chat("Give JSON") if mode == "sync" else asyncio.run(client.achat("Give JSON"))
    assert json.loads(result.content) == {"firstName": "David", "numCats": 2}
    assert result.reasoning == "They want JSON with a name.\n"
    pieces = ["<think>", "\nThey want", " JSON", "</think>", "\n\n", '{"firstName"', ': "David", ', '"numCats": 2}']
    respx.post(f"{BASE}{CHAT}").mock(return_value=httpx.Response(
        200, content=stream_body(pieces), headers=rec.SSE_HEADERS))
    end = run_stream(client, mode, "Give JSON", response_format=rec.PERSON_SCHEMA)[-1]
    assert json.loads(end.content) == {"firstName": "David", "numCats": 2}
    body = sent(route)
    assert body["response_format"]["type"] == "json"


@pytest.mark.parametrize("mode", MODES)
@respx.mock
def test_tool_call_stream_after_thinking(mode: str) -> None:
    body = rec.sse_body([
        chunk("<think>"), chunk("Need the weather."), chunk("</think>"),
        tool_chunk('{"location": "Paris, France",', "get_current_weather"),
        tool_chunk(' "format": "celsius"}', None),
    ])
    route = respx.post(f"{BASE}{CHAT}").mock(return_value=httpx.Response(200, content=body,
                                                                          headers=rec.SSE_HEADERS))
    events = run_stream(TGIClient(BASE), mode, "Weather in Paris?", tools=rec.WEATHER_TOOLS,
                        tool_choice="required")
    sent(route)
    end = events[-1]
    assert isinstance(end, End) and end.finish_reason == "tool_calls"  # TGI sent no finish_reason
    assert (end.reasoning, end.content) == ("Need the weather.", "")
    (call,) = end.tool_calls
    assert call.name == "get_current_weather" and call.arguments == {"location": "Paris, France",
                                                                      "format": "celsius"}
    assert any(isinstance(e, ToolDelta) for e in events) and texts(events, Token) == ""


@respx.mock
def test_no_tool_text_answer_with_thinking() -> None:
    """tool_choice auto: when TGI's grammar picks ``no_tool`` it reruns without tools and answers text."""
    content = "<think>No tool fits.</think>\n\nI can't look that up."
    route = respx.post(f"{BASE}{CHAT}").mock(return_value=httpx.Response(200, json=answer(content)))
    result = TGIClient(BASE).chat("Who are you?", tools=rec.WEATHER_TOOLS, tool_choice="auto")
    sent(route)
    assert (result.reasoning, result.content, result.tool_calls) == ("No tool fits.", "I can't look that up.", [])


@pytest.mark.parametrize("stream", [False, True])
def test_history_with_reasoning_fits_the_spec(stream: bool) -> None:
    client = TGIClient(BASE)
    history: list[Any] = [
        {"role": "user", "content": "2+2?"},
        ChatMessage("assistant", "4", reasoning="2+2=4"),
        {"role": "user", "content": "and 3+3?"},
        {"role": "assistant", "content": "6", "reasoning_content": "3+3=6"},
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "reasoning": "call the tool", "tool_calls": [
            {"id": "0", "type": "function", "function": {"name": "get_current_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "0", "content": "sunny"},
    ]
    body = client.build_chat(history, stream=stream, tools=rec.WEATHER_TOOLS).json
    validate_request(CHAT, body, strict=True, tgi_compat=False, allow_extra=SPEC_EXTRA)
    assert [m.get("content") for m in body["messages"][:4]] == ["2+2?", "4", "and 3+3?", "6"]
    assert not any("reasoning" in m or "reasoning_content" in m for m in body["messages"])


def test_the_spec_has_no_thinking_fields_so_controls_are_refused() -> None:
    fields = set(spec()["components"]["schemas"]["ChatRequest"]["properties"])
    assert not fields & {"chat_template_kwargs", "reasoning_effort", "thinking_token_budget",
                         "thinking_budget_tokens", "include_reasoning", "enable_thinking"}
    for control in ({"thinking": False}, {"reasoning_effort": "low"}, {"thinking_budget": 8}):
        with pytest.raises(InvalidRequestError, match="tgi does not support"):
            TGIClient(BASE).build_chat("hi", **control)
