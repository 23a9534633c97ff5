"""Stream decoding against mocked engines, sync and async: event order, assembly, cuts and errors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import respx

from engine_clients import BadRequestError
from engine_clients import ContextWindowExceededError
from engine_clients import End
from engine_clients import InternalServerError
from engine_clients import LlamaCppClient
from engine_clients import Started
from engine_clients import StreamError
from engine_clients import StreamTimeoutError
from engine_clients import TGIClient
from engine_clients import Token
from engine_clients import ToolCallDelta
from engine_clients import VLLMClient
from tests.support.mock_streams import BrokenStream
from tests.support.mock_streams import event_stream
from tests.support.mock_streams import sse

V = "http://vllm.test"


def chunk(content: str | None = None, finish: str | None = None, **delta: Any) -> dict[str, Any]:
    d: dict[str, Any] = dict(delta)
    if content is not None:
        d["content"] = content
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "m",
            "choices": [{"index": 0, "delta": d, "finish_reason": finish}]}


USAGE = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "m", "choices": [],
         "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}
VLLM_TEXT = sse(chunk("", role="assistant"), chunk("Hello"), chunk(" world"), chunk(finish="stop"), USAGE)


def collect(mode: str, make: Any) -> list[Any]:
    if mode == "sync":
        return list(make(False))

    import asyncio

    async def run() -> list[Any]:
        return [e async for e in make(True)]

    return asyncio.run(run())


def chat(client: Any, is_async: bool, *args: Any, **kwargs: Any) -> Any:
    return client.achat_stream(*args, **kwargs) if is_async else client.chat_stream(*args, **kwargs)


MODES = ["sync", "async"]


@pytest.mark.parametrize("mode", MODES)
@respx.mock
def test_event_order_and_assembly(mode: str) -> None:
    respx.post(f"{V}/v1/chat/completions").mock(return_value=event_stream(VLLM_TEXT))
    client = VLLMClient(V)
    events = collect(mode, lambda a: chat(client, a, "hi"))
    assert isinstance(events[0], Started) and events[0].engine == "vllm" and events[0].model == "m"
    assert [e.text for e in events if isinstance(e, Token)] == ["Hello", " world"]
    assert [e.index for e in events if isinstance(e, Token)] == [0, 1]
    end = events[-1]
    assert isinstance(end, End)
    assert end.content == "Hello world" and end.finish_reason == "stop"
    assert end.usage is not None and (end.usage.prompt_tokens, end.usage.total_tokens) == (5, 7)


@pytest.mark.parametrize("mode", MODES)
@respx.mock
def test_framing_without_space_and_with_keepalives(mode: str) -> None:
    body = b":\n\n" + sse(chunk("a"), chunk("b", finish="length"), space=False).replace(b"\n\n", b"\n\n: ping\n\n")
    respx.post(f"{V}/v1/chat/completions").mock(return_value=event_stream(body))
    events = collect(mode, lambda a: chat(VLLMClient(V), a, "hi"))
    assert events[-1].content == "ab" and events[-1].finish_reason == "length"


@pytest.mark.parametrize("mode", MODES)
@respx.mock
def test_missing_done_after_finish_is_complete(mode: str) -> None:
    respx.post(f"{V}/v1/chat/completions").mock(return_value=event_stream(sse(chunk("a"), chunk(finish="stop"), done=False)))
    assert collect(mode, lambda a: chat(VLLMClient(V), a, "hi"))[-1].content == "a"


@pytest.mark.parametrize("mode", MODES)
@respx.mock
def test_closed_stream_without_finish_is_an_error_with_partial_text(mode: str) -> None:
    respx.post(f"{V}/v1/chat/completions").mock(return_value=event_stream(sse(chunk("Hel"), chunk("lo"), done=False)))
    with pytest.raises(StreamError) as info:
        collect(mode, lambda a: chat(VLLMClient(V), a, "hi"))
    assert info.value.partial_text == "Hello"


@pytest.mark.parametrize("mode", MODES)
@respx.mock
def test_connection_cut_mid_stream(mode: str) -> None:
    body = sse(chunk("Hel"), chunk("lo"), done=False) + b'data: {"id":"chatcmpl-1","choi'
    respx.post(f"{V}/v1/chat/completions").mock(
        return_value=httpx.Response(200, stream=BrokenStream(body, httpx.RemoteProtocolError("peer closed")))
    )
    with pytest.raises(StreamError) as info:
        collect(mode, lambda a: chat(VLLMClient(V, max_retries=3), a, "hi"))
    assert info.value.partial_text == "Hello"
    assert respx.calls.call_count == 1  # never retried once output began


@pytest.mark.parametrize("mode", MODES)
@respx.mock
def test_stalled_stream_hits_the_chunk_timeout(mode: str) -> None:
    respx.post(f"{V}/v1/chat/completions").mock(
        return_value=httpx.Response(200, stream=BrokenStream(sse(chunk("x"), done=False), httpx.ReadTimeout("t")))
    )
    with pytest.raises(StreamTimeoutError) as info:
        collect(mode, lambda a: chat(VLLMClient(V), a, "hi"))
    assert info.value.partial_text == "x"
    assert isinstance(info.value, TimeoutError)


@pytest.mark.parametrize("mode", MODES)
@respx.mock
def test_error_event_after_output_keeps_partial_text(mode: str) -> None:
    err = {"error": {"message": "engine died", "type": "InternalServerError", "param": None, "code": 500}}
    respx.post(f"{V}/v1/chat/completions").mock(return_value=event_stream(sse(chunk("par"), err)))
    with pytest.raises(StreamError) as info:
        collect(mode, lambda a: chat(VLLMClient(V), a, "hi"))
    assert info.value.partial_text == "par" and info.value.status_code == 500
    assert isinstance(info.value.__cause__, InternalServerError)


@pytest.mark.parametrize("mode", MODES)
@respx.mock
def test_error_event_before_output_is_the_typed_error(mode: str) -> None:
    err = {"error": {"message": "Input validation error: `inputs` must have less than 10 tokens. Given: 20",
                     "http_status_code": 422}}
    respx.post("http://tgi.test/v1/chat/completions").mock(return_value=event_stream(sse(err)))
    with pytest.raises(ContextWindowExceededError) as info:
        collect(mode, lambda a: chat(TGIClient("http://tgi.test"), a, "hi"))
    assert (info.value.prompt_tokens, info.value.context_limit) == (20, 10)


@pytest.mark.parametrize("mode", MODES)
@respx.mock
def test_llamacpp_error_field_line(mode: str) -> None:
    body = b'error: {"code":400,"message":"Cannot use tools with stream","type":"invalid_request_error"}\n\ndata: [DONE]\n\n'
    respx.post("http://llama.test/v1/chat/completions").mock(return_value=event_stream(body))
    with pytest.raises(BadRequestError, match="Cannot use tools"):
        collect(mode, lambda a: chat(LlamaCppClient("http://llama.test"), a, "hi"))


def tool_delta(index: int, id: Any = None, name: Any = None, args: Any = None, **extra: Any) -> dict[str, Any]:
    fn: dict[str, Any] = {}
    if name is not None or "with_null_name" in extra:
        fn["name"] = name
    if args is not None:
        fn["arguments"] = args
    tc: dict[str, Any] = {"index": index, "function": fn}
    if id is not None:
        tc["id"] = id
        tc["type"] = "function"
    return chunk(None, tool_calls=[tc])


@pytest.mark.parametrize("mode", MODES)
@respx.mock
def test_vllm_style_tool_stream(mode: str) -> None:
    body = sse(
        tool_delta(0, "chatcmpl-tool-1", "get_weather"),
        tool_delta(0, args='{"city": '),
        tool_delta(0, args='"Paris"}'),
        tool_delta(1, "chatcmpl-tool-2", "get_time", "{}"),
        chunk(finish="tool_calls"),
    )
    respx.post(f"{V}/v1/chat/completions").mock(return_value=event_stream(body))
    events = collect(mode, lambda a: chat(VLLMClient(V), a, "hi", tools=[{"type": "function", "function": {"name": "get_weather"}}]))
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert [(d.index, d.id, d.name) for d in deltas][:1] == [(0, "chatcmpl-tool-1", "get_weather")]
    end = events[-1]
    assert end.finish_reason == "tool_calls"
    assert [(c.name, c.arguments) for c in end.tool_calls] == [("get_weather", {"city": "Paris"}), ("get_time", {})]


@pytest.mark.parametrize("mode", MODES)
@respx.mock
def test_tgi_style_tool_stream_repeats_id_and_has_no_finish(mode: str) -> None:
    body = sse(
        tool_delta(0, "0", "get_weather", "{"),
        tool_delta(0, "0", None, '"city":', with_null_name=True),
        tool_delta(0, "0", None, '"a"}', with_null_name=True),
    )
    respx.post("http://tgi.test/v1/chat/completions").mock(return_value=event_stream(body))
    events = collect(mode, lambda a: chat(TGIClient("http://tgi.test"), a, "hi", tools=[{"type": "function", "function": {"name": "get_weather"}}]))
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert [d.id for d in deltas] == ["0", None, None]  # the id is reported once, not concatenated
    assert "".join(d.arguments for d in deltas) == '{"city":"a"}'
    end = events[-1]
    assert end.finish_reason == "tool_calls" and end.completion.raw_finish_reason is None
    assert end.tool_calls[0].arguments == {"city": "a"} and end.tool_calls[0].id == "0"


@respx.mock
def test_tool_arguments_as_object_or_invalid() -> None:
    body = {"id": "", "model": "m", "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "tool_calls": [
        {"id": "0", "type": "function", "function": {"name": "a", "arguments": {"x": 1}}},
        {"id": "1", "type": "function", "function": {"name": "b", "arguments": '"a"'}},
        {"id": "2", "type": "function", "function": {"name": "c", "arguments": "{not json"}},
    ]}}]}
    respx.post(f"{V}/v1/chat/completions").mock(return_value=httpx.Response(200, json=body))
    result = VLLMClient(V).chat("hi")
    a, b, c = result.tool_calls
    assert a.arguments == {"x": 1} and a.valid
    assert b.arguments is None and b.raw_arguments == '"a"' and "not an object" in (b.error or "")
    assert c.arguments is None and c.raw_arguments == "{not json" and not c.valid
    assert result.finish_reason == "tool_calls" and result.raw_finish_reason == "stop"


def tgi_token(i: int, text: str, special: bool = False, final: dict[str, Any] | None = None) -> dict[str, Any]:
    ev: dict[str, Any] = {"index": i, "token": {"id": i, "text": text, "logprob": -0.5, "special": special},
                          "generated_text": None, "details": None}
    if final:
        ev.update(final)
    return ev


@pytest.mark.parametrize("mode", MODES)
@respx.mock
def test_tgi_generate_stream(mode: str) -> None:
    body = sse(tgi_token(1, "Hello"), tgi_token(2, " world"), tgi_token(3, "</s>", True, {
        "generated_text": "Hello world",
        "details": {"finish_reason": "eos_token", "generated_tokens": 3, "seed": None, "input_length": 4}}), done=False)
    respx.post("http://tgi.test/generate_stream").mock(return_value=event_stream(body))
    client = TGIClient("http://tgi.test")
    events = collect(mode, lambda a: client.agenerate_stream("x") if a else client.generate_stream("x"))
    assert [e.text for e in events if isinstance(e, Token)] == ["Hello", " world"]  # EOS is not text
    assert [e.logprob for e in events if isinstance(e, Token)] == [-0.5, -0.5]
    end = events[-1]
    assert end.content == "Hello world" and end.finish_reason == "stop" and end.completion.raw_finish_reason == "eos_token"
    assert end.usage is not None and (end.usage.prompt_tokens, end.usage.completion_tokens) == (4, 3)


@pytest.mark.parametrize("mode", MODES)
@respx.mock
def test_tgi_generate_stream_cut_before_final_event(mode: str) -> None:
    respx.post("http://tgi.test/generate_stream").mock(
        return_value=event_stream(sse(tgi_token(1, "Hel"), tgi_token(2, "lo"), done=False)))
    client = TGIClient("http://tgi.test")
    with pytest.raises(StreamError) as info:
        collect(mode, lambda a: client.agenerate_stream("x") if a else client.generate_stream("x"))
    assert info.value.partial_text == "Hello"


@respx.mock
def test_tgi_generate_stream_error_event() -> None:
    body = sse({"error": "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 2048. Given: 2040 "
                         "`inputs` tokens and 20 `max_new_tokens`", "error_type": "validation"}, done=False)
    respx.post("http://tgi.test/generate_stream").mock(return_value=event_stream(body))
    with pytest.raises(ContextWindowExceededError) as info:
        list(TGIClient("http://tgi.test").generate_stream("x"))
    assert info.value.status_code == 422 and info.value.context_limit == 2048


@pytest.mark.parametrize("mode", MODES)
@respx.mock
def test_llamacpp_native_completion_stream(mode: str) -> None:
    body = sse({"content": "Hello", "stop": False}, {"content": " world", "stop": False},
               {"content": "", "stop": True, "stop_type": "limit", "tokens_predicted": 2, "tokens_evaluated": 3,
                "model": "tiny"}, done=False)
    respx.post("http://llama.test/completion").mock(return_value=event_stream(body))
    client = LlamaCppClient("http://llama.test")
    events = collect(mode, lambda a: client.agenerate_stream("x") if a else client.generate_stream("x"))
    end = events[-1]
    assert end.content == "Hello world" and end.finish_reason == "length" and end.completion.model == "tiny"
    assert end.usage is not None and end.usage.total_tokens == 5


@pytest.mark.parametrize("mode", MODES)
@respx.mock
def test_vllm_completions_stream(mode: str) -> None:
    def c(text: str, finish: Any = None) -> dict[str, Any]:
        return {"id": "cmpl-1", "object": "text_completion", "model": "m", "usage": None,
                "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}]}
    usage = {"id": "cmpl-1", "object": "text_completion", "model": "m", "choices": [],
             "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}
    respx.post(f"{V}/v1/completions").mock(return_value=event_stream(sse(c("a"), c("b", "length"), usage)))
    client = VLLMClient(V)
    end = collect(mode, lambda a: client.agenerate_stream("x") if a else client.generate_stream("x"))[-1]
    assert end.content == "ab" and end.finish_reason == "length" and end.usage.total_tokens == 3


@respx.mock
def test_logprobs_in_chat_streams() -> None:
    def lp_chunk(tok: str, lp: float) -> dict[str, Any]:
        ch = chunk(tok)
        ch["choices"][0]["logprobs"] = {"content": [{"token": tok, "logprob": lp, "top_logprobs": [{"token": tok, "logprob": lp}]}]}
        return ch
    respx.post(f"{V}/v1/chat/completions").mock(return_value=event_stream(sse(lp_chunk("a", -0.1), lp_chunk("b", -0.2), chunk(finish="stop"))))
    events = list(VLLMClient(V).chat_stream("hi", logprobs=True, top_logprobs=1))
    assert [e.logprob for e in events if isinstance(e, Token)] == [-0.1, -0.2]
    assert [lp.token for lp in events[-1].completion.logprobs] == ["a", "b"]
