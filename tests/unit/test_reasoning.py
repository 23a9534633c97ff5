"""Reasoning models on vLLM and llama.cpp against mocked servers: thinking parsed from ``reasoning`` /
``reasoning_content`` (message and stream delta) or split off ``<think>`` content, ``Reasoning`` events,
usage details, the thinking controls on the wire, refusals, history fields and broken streams."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import respx

from engine_clients import ChatMessage
from engine_clients import End
from engine_clients import EnginePool
from engine_clients import InvalidRequestError
from engine_clients import LlamaCppClient
from engine_clients import Reasoning
from engine_clients import Started
from engine_clients import StreamError
from engine_clients import StreamTimeoutError
from engine_clients import TGIClient
from engine_clients import ThinkTags
from engine_clients import Token
from engine_clients import ToolCallDelta
from engine_clients import VLLMClient
from engine_clients._clients import BaseClient
from tests.support.mock_streams import BrokenStream
from tests.support.mock_streams import event_stream
from tests.support.mock_streams import sse

URL = "http://engine.test"
CHAT = f"{URL}/v1/chat/completions"
CLIENTS = {"vllm": VLLMClient, "llamacpp": LlamaCppClient}
FIELDS = ["reasoning", "reasoning_content"]
MODES = ["sync", "async"]


def client(engine: str, **kwargs: Any) -> BaseClient:
    cls = {"tgi": TGIClient, **CLIENTS}[engine]
    result: BaseClient = cls(URL, max_retries=0, **kwargs)
    return result


def answer(content: str | None, usage: dict[str, Any] | None = None, **message: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content, **message},
                     "finish_reason": "stop"}],
        "usage": usage or {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    }


def chunk(finish: str | None = None, **delta: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def usage_chunk(**usage: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "m", "choices": [],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7, **usage}}


def chat(c: BaseClient, mode: str, *args: Any, **kwargs: Any) -> Any:
    return c.chat(*args, **kwargs) if mode == "sync" else asyncio.run(c.achat(*args, **kwargs))


def stream(c: BaseClient, mode: str, *args: Any, **kwargs: Any) -> list[Any]:
    if mode == "sync":
        return list(c.chat_stream(*args, **kwargs))

    async def run() -> list[Any]:
        return [e async for e in c.achat_stream(*args, **kwargs)]

    return asyncio.run(run())


def sent(route: respx.Route) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(route.calls.last.request.content)
    return body


def texts(events: list[Any], kind: type) -> list[str]:
    return [e.text for e in events if isinstance(e, kind)]


# ---- non-streamed answers -------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", CLIENTS)
@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("mode", MODES)
@respx.mock
def test_message_reasoning_field(engine: str, field: str, mode: str) -> None:
    respx.post(CHAT).mock(return_value=httpx.Response(200, json=answer("42", **{field: "Let me add."})))
    result = chat(client(engine), mode, "hi")
    assert (result.reasoning, result.content) == ("Let me add.", "42")


@pytest.mark.parametrize("engine", CLIENTS)
@respx.mock
def test_plain_answer_has_no_reasoning(engine: str) -> None:
    respx.post(CHAT).mock(return_value=httpx.Response(200, json=answer("Hello", reasoning=None)))
    result = client(engine).chat("hi")
    assert (result.reasoning, result.content) == (None, "Hello")


@pytest.mark.parametrize("engine", CLIENTS)
@respx.mock
def test_think_tags_in_content_are_split_when_the_server_did_not(engine: str) -> None:
    respx.post(CHAT).mock(return_value=httpx.Response(200, json=answer("<think>\nhmm\n</think>\n\nYes.")))
    result = client(engine).chat("hi")
    assert (result.reasoning, result.content) == ("hmm\n", "Yes.")
    respx.post(CHAT).mock(return_value=httpx.Response(200, json=answer("hmm</think>Yes.")))  # no open tag
    result = client(engine).chat("hi")
    assert (result.reasoning, result.content) == ("hmm", "Yes.")


@respx.mock
def test_opt_out_and_custom_tags() -> None:
    body = answer("<think>hmm</think>Yes. [THINK]x[/THINK]")
    respx.post(CHAT).mock(return_value=httpx.Response(200, json=body))
    raw = client("vllm", think_tags=None).chat("hi")
    assert (raw.reasoning, raw.content) == (None, "<think>hmm</think>Yes. [THINK]x[/THINK]")
    custom = client("vllm", think_tags=ThinkTags("[THINK]", "[/THINK]")).chat("hi")
    assert custom.reasoning is None  # "[THINK]" does not open the text
    respx.post(CHAT).mock(return_value=httpx.Response(200, json=answer("[THINK]x[/THINK] ok")))
    custom = client("vllm", think_tags=ThinkTags("[THINK]", "[/THINK]")).chat("hi")
    assert (custom.reasoning, custom.content) == ("x", "ok")


@respx.mock
def test_server_reasoning_leaves_the_content_alone() -> None:
    respx.post(CHAT).mock(return_value=httpx.Response(200, json=answer("a </think> b", reasoning="r")))
    result = client("vllm").chat("hi")
    assert (result.reasoning, result.content) == ("r", "a </think> b")


@pytest.mark.parametrize("engine", CLIENTS)
@respx.mock
def test_usage_details(engine: str) -> None:
    usage = {"prompt_tokens": 21, "completion_tokens": 9, "total_tokens": 30,
             "completion_tokens_details": {"reasoning_tokens": 6}, "prompt_tokens_details": {"cached_tokens": 20}}
    respx.post(CHAT).mock(return_value=httpx.Response(200, json=answer("x", usage)))
    u = client(engine).chat("hi").usage
    assert u is not None and (u.reasoning_tokens, u.cached_prompt_tokens) == (6, 20)
    assert (u.prompt_tokens, u.completion_tokens, u.total_tokens) == (21, 9, 30)
    respx.post(CHAT).mock(return_value=httpx.Response(200, json=answer("x")))
    u = client(engine).chat("hi").usage
    assert u is not None and (u.reasoning_tokens, u.cached_prompt_tokens) == (None, None)
    weird = {**usage, "completion_tokens_details": None, "prompt_tokens_details": {"cached_tokens": True}}
    respx.post(CHAT).mock(return_value=httpx.Response(200, json=answer("x", weird)))
    u = client(engine).chat("hi").usage
    assert u is not None and (u.reasoning_tokens, u.cached_prompt_tokens) == (None, None)


# ---- streams --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", CLIENTS)
@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("mode", MODES)
@respx.mock
def test_stream_reasoning_deltas(engine: str, field: str, mode: str) -> None:
    body = sse(chunk(role="assistant", content=""), chunk(**{field: "Let"}), chunk(**{field: " me think."}),
               chunk(**{field: " Done", "content": "An"}), chunk(content="swer"), chunk(finish="stop"),
               usage_chunk(completion_tokens_details={"reasoning_tokens": 3},
                           prompt_tokens_details={"cached_tokens": 2}))
    respx.post(CHAT).mock(return_value=event_stream(body))
    events = stream(client(engine), mode, "hi")
    assert isinstance(events[0], Started)
    assert texts(events, Reasoning) == ["Let", " me think.", " Done"]
    assert [e.index for e in events if isinstance(e, Reasoning)] == [0, 1, 2]
    assert texts(events, Token) == ["An", "swer"]
    kinds = [type(e).__name__ for e in events[1:-1]]
    assert kinds == ["Reasoning", "Reasoning", "Reasoning", "Token", "Token"]  # reasoning before its content
    end = events[-1]
    assert isinstance(end, End)
    assert (end.reasoning, end.content, end.completion.reasoning) == ("Let me think. Done", "Answer",
                                                                      "Let me think. Done")
    assert end.usage is not None and (end.usage.reasoning_tokens, end.usage.cached_prompt_tokens) == (3, 2)


@pytest.mark.parametrize("engine", CLIENTS)
@pytest.mark.parametrize("mode", MODES)
@respx.mock
def test_stream_think_tags_split_across_chunks(engine: str, mode: str) -> None:
    pieces = ["<th", "ink>", "\nStep", " 1 < 2", "</thi", "nk>", "\n\n", "Ans", "wer"]
    body = sse(*[chunk(content=p) for p in pieces], chunk(finish="stop"))
    respx.post(CHAT).mock(return_value=event_stream(body))
    events = stream(client(engine), mode, "hi")
    thought, said = "".join(texts(events, Reasoning)), "".join(texts(events, Token))
    assert (thought, said) == ("Step 1 < 2", "Answer")
    assert "think" not in said and "<" not in said
    assert (events[-1].reasoning, events[-1].content) == (thought, said)


@pytest.mark.parametrize("mode", MODES)
@respx.mock
def test_stream_missing_open_tag(mode: str) -> None:
    """Default tags: the text before a bare close tag was already yielded as tokens (it cannot be
    recalled), the tag itself never is, and End carries the split that ``chat`` would return."""
    body = sse(chunk(content="I reason"), chunk(content=" a lot</think>"), chunk(content="\n\nAnswer"),
               chunk(finish="stop"))
    respx.post(CHAT).mock(return_value=event_stream(body))
    events = stream(client("vllm"), mode, "hi")
    assert texts(events, Token) == ["I reason", "Answer"]
    assert texts(events, Reasoning) == [" a lot"]
    assert (events[-1].reasoning, events[-1].content) == ("I reason a lot", "Answer")
    # implicit_open: the same stream, split live
    events = stream(client("vllm", think_tags=ThinkTags(implicit_open=True)), mode, "hi")
    assert texts(events, Reasoning) == ["I reason", " a lot"]
    assert texts(events, Token) == ["Answer"]
    assert (events[-1].reasoning, events[-1].content) == ("I reason a lot", "Answer")


@pytest.mark.parametrize("mode", MODES)
@respx.mock
def test_stream_opt_out_keeps_raw_content(mode: str) -> None:
    body = sse(chunk(content="<think>x</think>"), chunk(content="y"), chunk(finish="stop"))
    respx.post(CHAT).mock(return_value=event_stream(body))
    events = stream(client("llamacpp", think_tags=None), mode, "hi")
    assert texts(events, Token) == ["<think>x</think>", "y"] and not texts(events, Reasoning)
    assert (events[-1].reasoning, events[-1].content) == (None, "<think>x</think>y")


@respx.mock
def test_stream_held_partial_tag_is_released_at_the_end() -> None:
    body = sse(chunk(content="<think>a</th"), chunk(finish="length"))  # cut by max_tokens mid-tag
    respx.post(CHAT).mock(return_value=event_stream(body))
    events = list(client("vllm").chat_stream("hi"))
    assert "".join(texts(events, Reasoning)) == "a</th" and not texts(events, Token)
    assert isinstance(events[-1], End) and events[-1].finish_reason == "length"
    body = sse(chunk(content="2 <"), chunk(finish="stop"))
    respx.post(CHAT).mock(return_value=event_stream(body))
    events = list(client("vllm").chat_stream("hi"))
    assert "".join(texts(events, Token)) == events[-1].content == "2 <"


@respx.mock
def test_stream_tool_call_after_reasoning() -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
    body = sse(chunk(reasoning="Call f."),
               chunk(tool_calls=[{"index": 0, "id": "c1", "type": "function",
                                  "function": {"name": "f", "arguments": "{}"}}]),
               chunk(finish="tool_calls"))
    respx.post(CHAT).mock(return_value=event_stream(body))
    events = list(client("vllm").chat_stream("hi", tools=[tool]))
    assert texts(events, Reasoning) == ["Call f."] and any(isinstance(e, ToolCallDelta) for e in events)
    end = events[-1]
    assert end.reasoning == "Call f." and end.content == "" and end.tool_calls[0].name == "f"


# ---- broken streams -------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", CLIENTS)
@pytest.mark.parametrize("mode", MODES)
@respx.mock
def test_stream_cut_in_the_middle_of_reasoning(engine: str, mode: str) -> None:
    body = sse(chunk(reasoning_content="Hmm,"), chunk(reasoning_content=" so"), done=False)
    respx.post(CHAT).mock(return_value=httpx.Response(
        200, stream=BrokenStream(body, httpx.RemoteProtocolError("peer closed"))))
    with pytest.raises(StreamError) as info:
        stream(client(engine), mode, "hi")
    assert (info.value.partial_reasoning, info.value.partial_text) == ("Hmm, so", "")
    respx.post(CHAT).mock(return_value=event_stream(body))  # closed cleanly, but unfinished
    with pytest.raises(StreamError) as info:
        stream(client(engine), mode, "hi")
    assert info.value.partial_reasoning == "Hmm, so"


@pytest.mark.parametrize("mode", MODES)
@respx.mock
def test_cut_inside_think_tags_and_timeouts_keep_partial_reasoning(mode: str) -> None:
    body = sse(chunk(content="<think>Hmm"), chunk(content=" so</thi"), done=False)
    respx.post(CHAT).mock(return_value=httpx.Response(200, stream=BrokenStream(body, httpx.ReadTimeout("t"))))
    with pytest.raises(StreamTimeoutError) as info:
        stream(client("vllm"), mode, "hi")
    assert (info.value.partial_reasoning, info.value.partial_text) == ("Hmm so</thi", "")


@pytest.mark.parametrize("mode", MODES)
@respx.mock
def test_error_event_after_reasoning_only_is_a_stream_error(mode: str) -> None:
    err = {"error": {"message": "engine died", "type": "InternalServerError", "param": None, "code": 500}}
    respx.post(CHAT).mock(return_value=event_stream(sse(chunk(reasoning="Hmm"), err)))
    with pytest.raises(StreamError) as info:
        stream(client("vllm"), mode, "hi")
    assert info.value.partial_reasoning == "Hmm" and info.value.status_code == 500


@pytest.mark.parametrize("mode", MODES)
async def test_pool_never_fails_over_after_reasoning(mode: str) -> None:
    body = sse(chunk(reasoning="Hmm"), done=False)
    urls = ["http://r0.test", "http://r1.test"]
    with respx.mock(assert_all_called=False) as router:
        router.post(f"{urls[0]}/v1/chat/completions").mock(return_value=httpx.Response(
            200, stream=BrokenStream(body, httpx.RemoteProtocolError("peer closed"))))
        other = router.post(f"{urls[1]}/v1/chat/completions").mock(
            return_value=event_stream(sse(chunk(content="x"), chunk(finish="stop"))))
        pool = EnginePool(urls, engine="vllm", max_retries=0)
        with pytest.raises(StreamError) as info:
            if mode == "sync":
                list(pool.chat_stream("hi"))
            else:
                [e async for e in pool.achat_stream("hi")]
        await pool.aclose()
    assert info.value.partial_reasoning == "Hmm"
    assert not other.called  # the reasoning already shown is never repeated from another replica


# ---- thinking controls ----------------------------------------------------------------------------------

WIRE = {  # control -> expected wire fragment, per engine (see the dialects for the source files)
    "vllm": {
        "thinking": (False, {"chat_template_kwargs": {"enable_thinking": False}}),
        "reasoning_effort": ("low", {"reasoning_effort": "low"}),
        "thinking_budget": (256, {"thinking_token_budget": 256}),
    },
    "llamacpp": {
        "thinking": (True, {"chat_template_kwargs": {"enable_thinking": True}}),
        "reasoning_effort": ("high", {"reasoning_effort": "high"}),
        "thinking_budget": (0, {"thinking_budget_tokens": 0}),
    },
}


@pytest.mark.parametrize(("engine", "control"), [(e, c) for e in WIRE for c in WIRE[e]])
@pytest.mark.parametrize("call", ["chat", "achat", "chat_stream", "achat_stream"])
@respx.mock
def test_control_reaches_the_wire(engine: str, control: str, call: str) -> None:
    value, fragment = WIRE[engine][control]
    stream_body = event_stream(sse(chunk(content="x"), chunk(finish="stop")))
    route = respx.post(CHAT).mock(return_value=stream_body if "stream" in call else httpx.Response(
        200, json=answer("x")))
    c = client(engine)
    if call == "chat":
        c.chat("hi", **{control: value})
    elif call == "achat":
        asyncio.run(c.achat("hi", **{control: value}))
    else:
        stream(c, "sync" if call == "chat_stream" else "async", "hi", **{control: value})
    body = sent(route)
    for key, expected in fragment.items():
        assert body[key] == expected
    others = {"chat_template_kwargs", "reasoning_effort", "thinking_token_budget", "thinking_budget_tokens",
              "include_reasoning"} - set(fragment)
    assert not others & set(body)


@pytest.mark.parametrize("engine", CLIENTS)
def test_all_controls_together_and_none_by_default(engine: str) -> None:
    c = client(engine)
    plain = c.build_chat("hi").json
    assert not {"chat_template_kwargs", "reasoning_effort", "thinking_token_budget",
                "thinking_budget_tokens"} & set(plain)
    body = c.build_chat("hi", thinking=True, reasoning_effort="medium", thinking_budget=64).json
    assert body["chat_template_kwargs"] == {"enable_thinking": True} and body["reasoning_effort"] == "medium"
    assert body[{"vllm": "thinking_token_budget", "llamacpp": "thinking_budget_tokens"}[engine]] == 64
    off = c.build_chat("hi", thinking=False, reasoning_effort="none", thinking_budget=0).json
    assert off["chat_template_kwargs"] == {"enable_thinking": False} and off["reasoning_effort"] == "none"


@pytest.mark.parametrize("engine", CLIENTS)
def test_controls_merge_with_extra_body(engine: str) -> None:
    c = client(engine)
    body = c.build_chat("hi", thinking=False, extra_body={"chat_template_kwargs": {"custom": 1}, "top_k": 3}).json
    assert body["chat_template_kwargs"] == {"custom": 1, "enable_thinking": False} and body["top_k"] == 3
    same = c.build_chat("hi", thinking=False, extra_body={"chat_template_kwargs": {"enable_thinking": False}})
    assert same.json["chat_template_kwargs"] == {"enable_thinking": False}
    with pytest.raises(InvalidRequestError, match="enable_thinking"):
        c.build_chat("hi", thinking=False, extra_body={"chat_template_kwargs": {"enable_thinking": True}})
    with pytest.raises(InvalidRequestError, match="reasoning_effort"):
        c.build_chat("hi", reasoning_effort="low", extra_body={"reasoning_effort": "high"})
    alone = c.build_chat("hi", extra_body={"chat_template_kwargs": {"enable_thinking": True}}).json
    assert alone["chat_template_kwargs"] == {"enable_thinking": True}  # extra_body alone still passes


@pytest.mark.parametrize("control", [{"thinking": True}, {"thinking": False}, {"reasoning_effort": "low"},
                                     {"thinking_budget": 100}])
@pytest.mark.parametrize("call", ["chat", "chat_stream", "achat", "achat_stream"])
@respx.mock(assert_all_called=False)
def test_tgi_refuses_every_control_before_sending(control: dict[str, Any], call: str) -> None:
    route = respx.post(f"{URL}/v1/chat/completions").mock(return_value=httpx.Response(200, json=answer("x")))
    c = client("tgi")
    with pytest.raises(InvalidRequestError, match=next(iter(control))):
        if call == "chat":
            c.chat("hi", **control)
        elif call == "achat":
            asyncio.run(c.achat("hi", **control))
        else:
            stream(c, "sync" if call == "chat_stream" else "async", "hi", **control)
    assert not route.called


@pytest.mark.parametrize("engine", ["tgi", *CLIENTS])
@pytest.mark.parametrize("control", ["thinking", "reasoning_effort", "thinking_budget"])
def test_native_text_routes_refuse_the_controls(engine: str, control: str) -> None:
    with pytest.raises(InvalidRequestError, match=control):
        client(engine).build_generate("x", **{control: {"thinking": True}.get(control, 5)})


@pytest.mark.parametrize("bad", [
    {"thinking": "yes"}, {"thinking_budget": -1}, {"thinking_budget": True}, {"thinking_budget": 1.5},
    {"reasoning_effort": ""}, {"reasoning_effort": 3}, {"thinking": False, "reasoning_effort": "high"},
    {"thinking": False, "thinking_budget": 10}, {"thinking": True, "reasoning_effort": "none"},
])
def test_invalid_or_contradictory_controls_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError):
        client("vllm").build_chat("hi", **bad)


# ---- history --------------------------------------------------------------------------------------------

HISTORY_FIELD = {"vllm": "reasoning", "llamacpp": "reasoning_content", "tgi": None}


@pytest.mark.parametrize("engine", HISTORY_FIELD)
@pytest.mark.parametrize("form", ["ChatMessage", "reasoning", "reasoning_content"])
def test_history_reasoning_field_per_engine(engine: str, form: str) -> None:
    turn: Any = (ChatMessage("assistant", "It is 4.", reasoning="2+2=4") if form == "ChatMessage"
                 else {"role": "assistant", "content": "It is 4.", form: "2+2=4"})
    messages = [{"role": "user", "content": "2+2?"}, turn, {"role": "user", "content": "Sure?"}]
    sent_turn = client(engine).build_chat(messages).json["messages"][1]
    field = HISTORY_FIELD[engine]
    expected = {"role": "assistant", "content": "It is 4."}
    if field:
        expected[field] = "2+2=4"
    assert sent_turn == expected  # never merged into the content, never under the other name


def test_history_without_reasoning_is_untouched() -> None:
    messages = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y", "reasoning": None}]
    for engine in HISTORY_FIELD:
        assert client(engine).build_chat(messages).json["messages"][1] == {"role": "assistant", "content": "y"}
    with pytest.raises(InvalidRequestError):
        client("vllm").build_chat([{"role": "assistant", "content": "y", "reasoning": {"x": 1}}])
