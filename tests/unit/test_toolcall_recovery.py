"""Tool calls recovered from markup the server's tool parser left in the content (issue 19 item 2).

Every form is checked whole (``parse_chat``) and streamed (the chat stream decoders, the content split at
every position, inside the markup openers too): both give the same calls, the same content and the same
report. Calls never come from tools that were not offered, and a cut call is never runnable.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from engine_clients import End
from engine_clients import LlamaCppClient
from engine_clients import Token
from engine_clients import ToolCallDelta
from engine_clients import VLLMClient
from engine_clients._requests import ChatRequest
from engine_clients._sse import SSEEvent
from engine_clients.dialects import LlamaCppDialect
from engine_clients.dialects import TGIDialect
from engine_clients.dialects import VLLMDialect
from engine_clients.dialects.base import HttpRequest
from engine_clients.dialects.base import StreamDecoder
from engine_clients.dialects.toolcall_recovery import ToolCallRecovery
from engine_clients.dialects.toolcall_recovery import recover_tool_calls
from engine_clients.types import Completion
from engine_clients.types import Tool
from tests.support.mock_streams import event_stream
from tests.support.mock_streams import sse

TOOLS = [
    Tool("get_weather", parameters={"type": "object", "properties": {"city": {"type": "string"}}}),
    Tool("get_time"),
]
NAMES = ("get_weather", "get_time")
PARIS = {"city": "Paris"}
W = '{"name": "get_weather", "arguments": {"city": "Paris"}}'

G, T0 = ("get_weather", PARIS), ("get_time", {})
T = '{"name": "get_time", "arguments": {}}'
WP = '{"type": "function", "name": "get_weather", "parameters": {"city": "Paris"}}'


def case(id: str, text: str, content: str, markup: str, *calls: Any) -> Any:
    return pytest.param(text, content, list(calls), markup, id=id)


MIDS = '[TOOL_CALLS]get_weather[CALL_ID]a1b2c3d4e[ARGS]{"city": "Paris"}[TOOL_CALLS]get_time[ARGS]{}'
CASES = [
    case("hermes-text", f"Let me check.\n\n<tool_call>\n{W}\n</tool_call>", "Let me check.", "hermes", G),
    case("hermes-two", f"<tool_call>{W}</tool_call>\n<tool_call>\n{T}\n</tool_call>", "", "hermes", G, T0),
    case(
        "between", f"A <tool_call>{W}</tool_call> B <tool_call>{T}</tool_call> C", "A\nB\nC", "hermes", G, T0
    ),
    case("mistral-list", f"[TOOL_CALLS] [{W}, {T}]", "", "mistral", G, T0),
    case("mistral-args", '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}', "", "mistral", G),
    case("mistral-ids", MIDS, "", "mistral", G, T0),
    case("llama3", "<|python_tag|>" + WP, "", "llama3", G),
    case(
        "llama3-two", f'<|python_tag|>{WP}; {{"name": "get_time", "parameters": {{}}}}', "", "llama3", G, T0
    ),
    case("bare", "  " + W + "\n", "", "json", G),
    case("bare-fence", f"```json\n{WP}\n```", "", "json", G),
]
# content left alone: no markup, markup of tools not offered, JSON answers that are not calls
UNTOUCHED = [
    "Hello [world] <b>bold</b> a < b  \n",
    '<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call>',
    "<tool_call>[" + W + ', {"name": "rm_rf"}]</tool_call>',  # a block is all or nothing
    "[TOOL_CALLS][" + W + ', {"name": "rm_rf"}]',
    "[TOOL_CALLS]rm_rf[ARGS]{}",
    "[TOOL_CALLS] is how Mistral marks calls; <tool_call> is Hermes'",
    '<|python_tag|>brave_search.call(query="weather")',
    '{"name": "Alice", "age": 3}',
    '{"answer": {"name": "get_weather", "arguments": {}}}',
    '{"name": "get_weather"}',  # bare JSON needs arguments or parameters
    '{"name": "get_weather", "arguments": {}, "extra": 1}',
    "```python\nprint(1)\n```",
    "",
    "   ",
]


def splits(text: str) -> list[list[str]]:
    """The text in two pieces at every position, and in pieces of 1 to 7 characters."""
    out = [[text[:k], text[k:]] for k in range(len(text) + 1)]
    out += [[text[i : i + n] for i in range(0, len(text), n)] for n in range(1, 8)]
    return out


def streamed(text: str, pieces: list[str], first_index: int = 0) -> tuple[str, Any, Any]:
    r = ToolCallRecovery(NAMES)
    shown = "".join(r.feed(p) for p in pieces)
    rest, calls, recovered = r.flush(first_index)
    assert shown + rest == recover_tool_calls(text, NAMES, first_index)[0]
    return shown + rest, calls, recovered


@pytest.mark.parametrize(("text", "content", "calls", "markup"), CASES)
def test_each_family_whole_and_streamed_at_every_split(
    text: str, content: str, calls: list[Any], markup: str
) -> None:
    whole = recover_tool_calls(text, NAMES)
    assert whole[0] == content
    assert [(c.name, c.arguments, c.valid) for c in whole[1]] == [(n, a, True) for n, a in calls]
    assert [(r.index, r.markup, r.repaired) for r in whole[2]] == [
        (i, markup, False) for i in range(len(calls))
    ]
    assert all(json.loads(c.raw_arguments) == c.arguments for c in whole[1])
    for pieces in splits(text):
        assert streamed(text, pieces) == whole, pieces


@pytest.mark.parametrize("text", UNTOUCHED)
def test_content_without_offered_calls_is_untouched(text: str) -> None:
    assert recover_tool_calls(text, NAMES) == (text, [], ())
    for pieces in splits(text):
        assert streamed(text, pieces) == (text, [], ())


def test_each_block_is_judged_alone() -> None:
    text = "<tool_call>" + W + '</tool_call>\n<tool_call>{"name": "rm_rf"}</tool_call>'
    content, calls, _ = recover_tool_calls(text, NAMES)
    assert content == '<tool_call>{"name": "rm_rf"}</tool_call>' and [c.name for c in calls] == [
        "get_weather"
    ]


def test_text_passes_through_until_an_opener_could_start() -> None:
    r = ToolCallRecovery(NAMES)
    assert r.feed("Hello") == "Hello"
    assert r.feed(" there ") == " there"  # blanks wait: markup may follow them
    assert r.feed("<tool") == ""
    assert r.feed("s are") == " <tools are"
    assert r.feed(" fine.\n\n<tool_call>") == " fine."
    assert r.feed(W + "</tool_call>") == ""
    text, calls, recovered = r.flush(3)
    assert text == "" and [(c.index, c.id, c.name) for c in calls] == [(3, "recovered_3", "get_weather")]
    assert recovered[0].source == "<tool_call>" + W + "</tool_call>"


def test_a_json_answer_is_released_as_soon_as_it_cannot_be_a_call() -> None:
    r = ToolCallRecovery(NAMES)
    assert r.feed('{"na') == ""
    assert r.feed('me": "Alice", "age"') == '{"name": "Alice", "age"'
    r = ToolCallRecovery(NAMES)
    assert r.feed('```json\n{"name": "get_weather", "arguments": {"city": ') == ""  # still a candidate


@pytest.mark.parametrize(
    "text",
    [
        "<tool_call>{'name': 'get_weather', 'arguments': {'city': 'Paris',}}</tool_call>",
        '<tool_call>{"name": "get_weather", "arguments": "{city: \'Paris\'}"}</tool_call>',
        '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris",}',
    ],
)
def test_almost_json_arguments_are_repaired_and_reported(text: str) -> None:
    content, calls, recovered = recover_tool_calls(text, NAMES)
    assert content == "" and calls[0].arguments == PARIS and json.loads(calls[0].raw_arguments) == PARIS
    assert recovered[0].repaired
    for pieces in splits(text)[::5]:
        assert streamed(text, pieces) == (content, calls, recovered)


def test_unrepairable_arguments_make_an_invalid_call_with_the_raw_text() -> None:
    text = '<tool_call>{"name": "get_weather", "arguments": "Paris, please"}</tool_call>'
    content, calls, _ = recover_tool_calls(text, NAMES)
    assert (
        content == "" and not calls[0].valid and calls[0].raw_arguments == "Paris, please" and calls[0].error
    )


@pytest.mark.parametrize(
    "text",
    [
        'Checking.<tool_call>{"name": "get_weather", "arguments": {"city": "Pa',
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}',  # never closed
        '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Pa',
        '[TOOL_CALLS]get_weather[ARGS]{"city": ',
        "[TOOL_CALLS]get_weather[AR",
        '<|python_tag|>{"name": "get_weather", "parameters": {',
        '{"name": "get_weather", "arguments": {"city": "Par',
        '```json\n{"name": "get_weather", "arguments": {}}',  # the fence never closed
    ],
)
def test_a_cut_call_stays_invalid_with_its_raw_text(text: str) -> None:
    content, calls, recovered = recover_tool_calls(text, NAMES)
    assert [(c.name, c.arguments, c.valid) for c in calls] == [("get_weather", None, False)]
    assert "cut off" in (calls[0].error or "") and recovered[0].source in text
    assert calls[0].raw_arguments in text and content == ("Checking." if text.startswith("Checking") else "")
    for pieces in splits(text)[::3]:
        assert streamed(text, pieces) == (content, calls, recovered)


def test_a_cut_name_of_a_tool_not_offered_stays_in_the_content() -> None:
    text = '<tool_call>{"name": "rm_rf", "arguments": {"pa'
    assert recover_tool_calls(text, NAMES) == (text, [], ())


# ---- through the dialects -------------------------------------------------------------------------------

DIALECTS = [VLLMDialect, LlamaCppDialect, TGIDialect]


def request(dialect: Any, stream: bool, **kwargs: Any) -> HttpRequest:
    req = ChatRequest([{"role": "user", "content": "weather?"}], tools=list(TOOLS), **kwargs)
    http: HttpRequest = dialect.build_chat(req, stream)
    return http


def answer(content: str, finish: str = "stop", calls: list[Any] | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        msg["tool_calls"] = calls
    return {"id": "c1", "model": "m", "choices": [{"index": 0, "message": msg, "finish_reason": finish}]}


def chunk(finish: str | None = None, **delta: Any) -> SSEEvent:
    body = {"id": "c1", "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return SSEEvent("message", json.dumps(body).encode())


def run(decoder: StreamDecoder, events: list[SSEEvent]) -> list[Any]:
    out: list[Any] = []
    for ev in events:
        out += decoder.feed(ev)
    return out + decoder.eof()


def stream_of(
    pieces: list[str], finish: str = "stop", before: list[SSEEvent] | None = None
) -> list[SSEEvent]:
    return [
        *(before or []),
        *(chunk(content=p) for p in pieces),
        chunk(finish),
        SSEEvent("message", b"[DONE]"),
    ]


def same(a: Completion, b: Completion) -> None:
    assert (a.content, a.tool_calls, a.recovered, a.finish_reason) == (
        b.content,
        b.tool_calls,
        b.recovered,
        b.finish_reason,
    )


@pytest.mark.parametrize("cls", DIALECTS)
@pytest.mark.parametrize(("text", "content", "calls", "markup"), CASES)
def test_parse_chat_and_the_stream_decoder_agree(
    cls: Any, text: str, content: str, calls: Any, markup: str
) -> None:
    dialect = cls("m")
    whole = dialect.parse_chat(answer(text), request(dialect, False))
    assert whole.content == content and [(c.name, c.arguments) for c in whole.tool_calls] == calls
    assert whole.finish_reason == "tool_calls" and len(whole.recovered) == len(calls)
    for pieces in splits(text)[:: max(1, len(text) // 12)]:
        events = run(dialect.chat_stream_decoder(request(dialect, True)), stream_of(pieces))
        end = events[-1]
        assert isinstance(end, End)
        same(end.completion, whole)
        assert "".join(e.text for e in events if isinstance(e, Token)) == content
        deltas = [e for e in events if isinstance(e, ToolCallDelta)]
        assert [(d.index, d.name, json.loads(d.arguments)) for d in deltas] == [
            (i, n, a) for i, (n, a) in enumerate(calls)
        ]
        assert events.index(deltas[0]) == len(events) - 1 - len(deltas)  # once, at the end, before End


def test_recovered_calls_come_after_the_engines_own() -> None:
    dialect = VLLMDialect("m")
    leaked = "<tool_call>" + W + "</tool_call>"
    parsed = {"index": 0, "id": "t0", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
    whole = dialect.parse_chat(answer(leaked, calls=[parsed]), request(dialect, False))
    assert [(c.index, c.name) for c in whole.tool_calls] == [(0, "get_time"), (1, "get_weather")]
    assert [r.index for r in whole.recovered] == [1]
    before = [chunk(tool_calls=[parsed])]
    events = run(
        dialect.chat_stream_decoder(request(dialect, True)),
        stream_of([leaked[:9], leaked[9:]], before=before),
    )
    assert [d.index for d in events if isinstance(d, ToolCallDelta)] == [0, 1]
    same(events[-1].completion, whole)


@pytest.mark.parametrize(
    "think", ["<think>Use <tool_call> here.", "Use <tool_call> here."]
)  # bare close tag too
def test_reasoning_is_split_off_before_recovery(think: str) -> None:
    dialect = LlamaCppDialect("m")
    text = think + "</think>\n<tool_call>" + W + "</tool_call>"
    whole = dialect.parse_chat(answer(text), request(dialect, False))
    assert whole.reasoning == "Use <tool_call> here." and whole.content == "" and whole.tool_calls[0].valid
    for pieces in splits(text)[::4]:
        same(
            run(dialect.chat_stream_decoder(request(dialect, True)), stream_of(pieces))[-1].completion, whole
        )


def test_a_cut_stream_keeps_the_call_invalid() -> None:
    dialect = VLLMDialect("m")
    text = 'Sure.\n<tool_call>{"name": "get_weather", "arguments": {"city": "Pa'
    whole = dialect.parse_chat(answer(text, "length"), request(dialect, False))
    assert whole.content == "Sure." and not whole.tool_calls[0].valid and whole.finish_reason == "length"
    end = run(dialect.chat_stream_decoder(request(dialect, True)), stream_of(list(text), "length"))[-1]
    same(end.completion, whole)


def test_a_parameterless_call_streamed_without_arguments_gets_an_empty_object() -> None:
    dialect = VLLMDialect("m")
    call = chunk(tool_calls=[{"index": 0, "id": "t0", "type": "function", "function": {"name": "get_time"}}])
    end = run(dialect.chat_stream_decoder(request(dialect, True)), [call, chunk("tool_calls")])[-1]
    (tc,) = end.completion.tool_calls
    assert (tc.name, tc.arguments, tc.raw_arguments, tc.valid) == ("get_time", {}, "{}", True)
    assert (
        recover_tool_calls('<tool_call>{"name": "get_time"}</tool_call>', NAMES)[1][0].raw_arguments == "{}"
    )


@pytest.mark.parametrize("how", ["dialect", "request", "tool_choice_none", "no_request"])
def test_recovery_off_leaves_the_content_unchanged(how: str) -> None:
    dialect = VLLMDialect("m", recover_tool_calls=how != "dialect")
    kwargs = {"request": {"recover_tool_calls": False}, "tool_choice_none": {"tool_choice": "none"}}.get(
        how, {}
    )
    text = "<tool_call>" + W + "</tool_call>"
    http = request(dialect, False, **kwargs)
    assert http.recover_tools == (() if how != "no_request" else NAMES)
    whole = dialect.parse_chat(answer(text), http if how != "no_request" else None)
    assert (whole.content, whole.tool_calls, whole.recovered) == (text, [], ())
    events = run(
        dialect.chat_stream_decoder(request(dialect, True, **kwargs) if how != "no_request" else None),
        stream_of([text[:5], text[5:]]),
    )
    assert (
        "".join(e.text for e in events if isinstance(e, Token)) == text
        and not events[-1].completion.tool_calls
    )


def test_a_request_can_turn_recovery_on_where_the_dialect_has_it_off() -> None:
    dialect = VLLMDialect("m", recover_tool_calls=False)
    assert request(dialect, False, recover_tool_calls=True).recover_tools == NAMES


def test_only_the_tools_llama_server_was_sent_are_recoverable() -> None:
    from engine_clients._requests import NamedToolChoice

    http = request(LlamaCppDialect("m"), False, tool_choice=NamedToolChoice("get_time"))
    assert http.recover_tools == ("get_time",)


def test_native_generate_streams_never_recover() -> None:
    assert LlamaCppDialect("m").generate_stream_decoder().recovery is None
    assert VLLMDialect("m").generate_stream_decoder().recovery is None


# ---- end to end, with respx -------------------------------------------------------------------------------

V, L = "http://vllm.test", "http://llama.test"


def sse_chunk(**delta: Any) -> dict[str, Any]:
    return {"id": "c1", "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}


@respx.mock
def test_vllm_chat_stream_recovers_end_to_end() -> None:
    text = "On it.\n<tool_call>" + W + "</tool_call>"
    pieces = [sse_chunk(content=text[i : i + 4]) for i in range(0, len(text), 4)]
    done = {"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    respx.post(f"{V}/v1/chat/completions").mock(return_value=event_stream(sse(*pieces, done)))
    events = list(VLLMClient(V).chat_stream("weather?", tools=TOOLS))
    assert "".join(e.text for e in events if isinstance(e, Token)) == "On it."
    end = events[-1]
    assert [(c.name, c.arguments) for c in end.tool_calls] == [
        ("get_weather", PARIS)
    ] and end.completion.recovered


@respx.mock
def test_llamacpp_chat_recovers_end_to_end() -> None:
    respx.post(f"{L}/v1/chat/completions").mock(
        return_value=httpx.Response(200, json=answer('[TOOL_CALLS]get_weather[ARGS]{"city": "Paris",}'))
    )
    result = LlamaCppClient(L).chat("weather?", tools=TOOLS)
    assert result.content == "" and result.tool_calls[0].arguments == PARIS and result.recovered[0].repaired
