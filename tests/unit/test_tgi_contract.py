"""TGI contract: real recorded TGI responses replayed through the client, and every request body the
client builds validated (strictly: no undeclared field) against TGI's own OpenAPI spec."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import httpx
import pytest
import respx

from engine_clients import End
from engine_clients import TGIClient
from engine_clients import Token
from engine_clients import ToolCallDelta
from tests.support import tgi_recordings as rec
from tests.support.openapi import validate_request

BASE = "http://tgi.test"
# tool_call_id on tool messages is what TGI reads (its recorded tests send it) but the spec omits it
SPEC_EXTRA = ("messages.*.tool_call_id",)

CHAT_KEYS = {"max_tokens", "seed", "temperature", "top_p", "stop", "logprobs", "top_logprobs",
             "frequency_penalty", "presence_penalty"}


def chat_kwargs(request: dict[str, Any]) -> dict[str, Any]:
    kw = {k: v for k, v in request.items() if k in CHAT_KEYS}
    for k in ("tools", "tool_choice", "response_format"):
        if k in request:
            kw[k] = request[k]
    return kw


def generate_kwargs(request: dict[str, Any]) -> dict[str, Any]:
    params = {k: v for k, v in request["parameters"].items() if v is not None and k != "details"}
    if "max_new_tokens" in params:
        params["max_tokens"] = params.pop("max_new_tokens")
    return params


def names(route: str, stream: bool) -> list[str]:
    return [n for n, r in rec.RECORDINGS.items()
            if r["route"] == route and r["stream"] == stream and "responses" not in r]


def usage_dict(usage: Any) -> dict[str, Any]:
    """The OpenAI usage keys (TGI reports no reasoning or cached-token details: those stay None)."""
    assert usage.reasoning_tokens is None and usage.cached_prompt_tokens is None
    return {k: v for k, v in dataclasses.asdict(usage).items() if v is not None}


def sent_json(route: respx.Route) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(route.calls.last.request.content)
    return body


@pytest.mark.parametrize("name", names("/v1/chat/completions", False))
@respx.mock
def test_chat_recordings(name: str) -> None:
    r = rec.RECORDINGS[name]
    route = respx.post(f"{BASE}/v1/chat/completions").mock(return_value=httpx.Response(200, json=rec.wire_json(name)))
    result = TGIClient(BASE).chat(r["request"]["messages"], **chat_kwargs(r["request"]))
    validate_request("/v1/chat/completions", sent_json(route), strict=True, tgi_compat=False, allow_extra=SPEC_EXTRA)
    assert result.model == r["model"]
    assert result.raw_finish_reason == r["finish_reason"]
    if "tool_call" in r:
        (call,) = result.tool_calls
        assert (call.id, call.name) == (r["tool_call"]["id"], r["tool_call"]["name"])
        assert call.arguments == json.loads(r["tool_call"]["arguments"])
        assert result.finish_reason == "tool_calls"  # TGI says "stop"; a tool call was made
        assert result.content == ""
    else:
        assert result.content == r["content"] and not result.tool_calls
    if r.get("usage"):
        assert result.usage is not None and usage_dict(result.usage) == r["usage"]


@pytest.mark.parametrize("name", names("/v1/chat/completions", True))
@pytest.mark.parametrize("mode", ["sync", "async"])
@respx.mock
def test_chat_stream_recordings(name: str, mode: str) -> None:
    r = rec.RECORDINGS[name]
    route = respx.post(f"{BASE}/v1/chat/completions").mock(
        return_value=httpx.Response(200, content=rec.sse_body(rec.wire_chunks(name)), headers=rec.SSE_HEADERS))
    client = TGIClient(BASE)
    kwargs = chat_kwargs(r["request"])
    if mode == "sync":
        events = list(client.chat_stream(r["request"]["messages"], **kwargs))
    else:
        async def run() -> list[Any]:
            return [e async for e in client.achat_stream(r["request"]["messages"], **kwargs)]
        events = asyncio.run(run())
    validate_request("/v1/chat/completions", sent_json(route), strict=True, tgi_compat=False, allow_extra=SPEC_EXTRA)
    end = events[-1]
    assert isinstance(end, End)
    assert sum(isinstance(e, End) for e in events) == 1
    assert end.completion.raw_finish_reason == r["finish_reason"]
    if "tool_call" in r:
        (call,) = end.tool_calls
        assert call.name == r["tool_call"]["name"] and call.valid
        assert call.arguments == json.loads(r["tool_call"]["arguments"])
        assert "".join(e.arguments for e in events if isinstance(e, ToolCallDelta)) == r["tool_call"]["arguments"]
        assert end.finish_reason == "tool_calls"  # although TGI sent no finish_reason at all
    else:
        assert "".join(e.text for e in events if isinstance(e, Token)) == r["content"] == end.content
    if r.get("usage"):
        assert end.usage is not None and usage_dict(end.usage) == r["usage"]


@pytest.mark.parametrize("name", names("/", False))
@respx.mock
def test_generate_recordings(name: str) -> None:
    r = rec.RECORDINGS[name]
    route = respx.post(f"{BASE}/generate").mock(return_value=httpx.Response(200, json=rec.wire_json(name)))
    result = TGIClient(BASE).generate(r["request"]["inputs"], **generate_kwargs(r["request"]))
    validate_request("/generate", sent_json(route), strict=True, tgi_compat=False)
    assert result.content == r["content"]
    assert result.raw_finish_reason == r["finish_reason"]
    assert result.usage is not None and result.usage.completion_tokens == r["generated_tokens"]
    assert result.logprobs is not None and len(result.logprobs) == r["generated_tokens"]


@pytest.mark.parametrize("name", names("/", False))
@respx.mock
def test_generate_stream_from_recordings(name: str) -> None:
    r = rec.RECORDINGS[name]
    body = rec.generate_stream_body(rec.wire_json(name), input_length=4)
    route = respx.post(f"{BASE}/generate_stream").mock(
        return_value=httpx.Response(200, content=body, headers=rec.SSE_HEADERS))
    events = list(TGIClient(BASE).generate_stream(r["request"]["inputs"], **generate_kwargs(r["request"])))
    validate_request("/generate_stream", sent_json(route), strict=True, tgi_compat=False)
    end = events[-1]
    text = "".join(e.text for e in events if isinstance(e, Token))
    # special tokens (EOS) are not text; return_full_text prepends the prompt only to generated_text
    assert text == end.content
    assert r["content"].endswith(text)
    assert end.completion.raw_finish_reason == r["finish_reason"]


def test_every_request_shape_the_client_builds_fits_the_spec() -> None:
    client = TGIClient(BASE)
    tools = rec.WEATHER_TOOLS
    history = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "0", "type": "function", "function": {"name": "get_current_weather", "arguments": '{"location": "x"}'}}]},
        {"role": "tool", "tool_call_id": "0", "content": "sunny"},
    ]
    bodies = [
        client.build_chat(history, max_tokens=5, stop="x", logprobs=True, top_logprobs=2, seed=1, temperature=0.5,
                          top_p=0.5, frequency_penalty=0.1, presence_penalty=0.1, stream=True),
        client.build_chat("hi", tools=tools, tool_choice="auto", tool_prompt="Use:"),
        client.build_chat("hi", tools=tools, tool_choice="required"),
        client.build_chat("hi", tools=tools, tool_choice="none"),
        client.build_chat("hi", tools=tools, tool_choice="get_n_day_weather_forecast"),
        client.build_chat("hi", response_format=rec.PERSON_SCHEMA),
        client.build_chat("hi", response_format={"type": "regex", "value": "a+"}),
    ]
    for b in bodies:
        validate_request(b.path, b.json, strict=True, tgi_compat=False, allow_extra=SPEC_EXTRA)
    gen = client.build_generate("x", max_tokens=3, top_k=2, top_logprobs=2, response_format=rec.PERSON_SCHEMA,
                                repetition_penalty=1.1, typical_p=0.5, watermark=True, truncate=3)
    validate_request(gen.path, gen.json, strict=True, tgi_compat=False)
