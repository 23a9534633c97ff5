"""The SGLang codec without a server: the cumulative ``/generate`` stream decoder fed event by event, the
answer and error shapes of ``sglang==0.5.23`` (see ``engine_clients/dialects/sglang_generate.py``), and
``info()`` falling back to the older discovery routes."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from engine_clients import BadRequestError
from engine_clients import ContextWindowExceededError
from engine_clients import End
from engine_clients import InternalServerError
from engine_clients import SGLangClient
from engine_clients import StreamError
from engine_clients import Token
from engine_clients._sse import SSEEvent
from engine_clients.dialects.sglang import SGLangDialect

URL = "http://sglang.test:30000"


def ev(obj: Any) -> SSEEvent:
    return SSEEvent("message", obj if isinstance(obj, bytes) else json.dumps(obj).encode())


def chunk(
    text: str, ids: list[int], done: int, finish: dict[str, Any] | None = None, **meta: Any
) -> dict[str, Any]:
    info = {"id": "rid-1", "finish_reason": finish, "prompt_tokens": 4, "completion_tokens": done,
            "cached_tokens": 2, "reasoning_tokens": 0, **meta}  # fmt: skip
    return {"text": text, "output_ids": ids, "meta_info": info}


def feed(events: list[Any]) -> list[Any]:
    decoder = SGLangDialect().generate_stream_decoder()
    out: list[Any] = []
    for e in events:
        out += decoder.feed(ev(e))
    return out


def tokens(out: list[Any]) -> list[str]:
    return [e.text for e in out if isinstance(e, Token)]


def test_cumulative_text_becomes_deltas() -> None:
    out = feed(
        [
            chunk("Hel", [1], 1),
            chunk("Hello", [1, 2], 2),
            chunk("Hello", [1, 2, 3], 3),  # a step that added no printable text (UTF-8 held back)
            chunk("Hello wor", [1, 2, 3, 4], 4),
            chunk("Hello world.", [1, 2, 3, 4, 5], 5, {"type": "stop", "matched": 151645}, e2e_latency=0.5),
            b"[DONE]",
        ]
    )
    assert tokens(out) == ["Hel", "lo", " wor", "ld."]
    end = out[-1]
    assert isinstance(end, End) and end.completion.content == "Hello world." and end.completion.id == "rid-1"
    usage = end.completion.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_prompt_tokens) == (4, 5, 2)


def test_the_decoder_never_rescans_what_it_emitted() -> None:
    """Only the length already emitted is remembered: the prefix is never compared again (O(total))."""
    out = feed([chunk("abc", [1], 1), chunk("XYZdef", [1, 2], 2, {"type": "length", "length": 2})])
    assert tokens(out) == ["abc", "def"]
    assert out[-1].completion.finish_reason == "length"


def test_incremental_streaming_output_is_recognised() -> None:
    """--incremental-streaming-output: events after the first carry fewer ids than completion_tokens."""
    out = feed(
        [
            chunk("Hel", [1], 1),
            chunk("lo", [2], 2),
            chunk(" world", [3], 3),
            chunk(".", [4], 4, {"type": "stop", "matched": "."}),
            b"[DONE]",
        ]
    )
    assert tokens(out) == ["Hel", "lo", " world", "."] and out[-1].completion.content == "Hello world."


def test_logprobs_are_read_once_from_cumulative_lists() -> None:
    lp = [[-0.1, 1, "a"], [-0.2, 2, "b"], [-0.3, 3, "c"]]
    tops = [[[-0.1, 1, "a"], [-2.0, 9, "z"]], None, None]
    out = feed(
        [
            chunk("a", [1], 1, output_token_logprobs=lp[:1], output_top_logprobs=tops[:1]),
            chunk("ab", [1, 2], 2, output_token_logprobs=lp[:2], output_top_logprobs=tops[:2]),
            chunk("abc", [1, 2, 3], 3, {"type": "stop"}, output_token_logprobs=lp, output_top_logprobs=tops),
        ]
    )
    got = out[-1].completion.logprobs
    assert [(x.token, x.id, x.logprob) for x in got] == [("a", 1, -0.1), ("b", 2, -0.2), ("c", 3, -0.3)]
    assert [(t.token, t.logprob) for t in got[0].top_logprobs] == [("a", -0.1), ("z", -2.0)]


def test_abort_with_status_is_a_typed_error() -> None:
    abort = {
        "type": "abort",
        "message": "out of memory",
        "status_code": 500,
        "err_type": "InternalServerError",
    }
    with pytest.raises(InternalServerError, match="out of memory"):  # before any output: the error itself
        feed([chunk("", [], 0, abort)])
    with pytest.raises(StreamError) as info:
        feed([chunk("Hi", [1], 1), chunk("Hi", [1], 1, abort)])
    assert info.value.partial_text == "Hi" and info.value.status_code == 500


def test_abort_without_status_ends_like_an_answer() -> None:
    """/abort_request (no status): SGLang ends the stream normally; the finish reason says abort."""
    out = feed([chunk("Hi", [1], 1), chunk("Hi", [1], 1, {"type": "abort", "message": "Aborted"})])
    done = out[-1].completion
    assert done.content == "Hi" and done.raw_finish_reason == "abort" and done.finish_reason == "unknown"


def test_error_objects_inside_the_stream() -> None:
    # http_server.py generate_request: a ValueError while streaming
    err = {"error": {"message": "The input (5000 tokens) is longer than the model's context length (4096 tokens).",
                     "type": "invalid_request_error", "code": 400, "retryable": False}}  # fmt: skip
    with pytest.raises(ContextWindowExceededError) as info:
        feed([err])
    assert (info.value.prompt_tokens, info.value.context_limit) == (5000, 4096)
    with pytest.raises(StreamError) as cut:
        feed([chunk("Hel", [1], 1), {"error": {"message": "boom", "code": 400}}])
    assert cut.value.partial_text == "Hel" and isinstance(cut.value.__cause__, BadRequestError)


def test_done_before_a_finish_is_a_cut_stream() -> None:
    with pytest.raises(StreamError, match="ended before"):
        feed([chunk("Hel", [1], 1), b"[DONE]"])


def test_parse_generate_shapes() -> None:
    d = SGLangDialect("m")
    body = chunk("Hello", [1, 2], 2, {"type": "length", "length": 2}, e2e_latency=0.25)
    out = d.parse_generate(body)
    assert out.content == "Hello" and out.finish_reason == "length" and out.usage.total_tokens == 6
    assert d.parse_timings([body], None).server_total_time == 0.25
    with pytest.raises(BadRequestError):
        d.parse_generate(chunk("", [], 0, {"type": "abort", "message": "bad", "status_code": 400}))


def test_error_bodies() -> None:
    d = SGLangDialect()
    gate = b'{"error": "unknown field `max_tokens`, expected one of `max_new_tokens`, `stop`"}'
    assert "unknown field" in str(d.parse_error(400, gate))
    message = (
        "Requested token count exceeds the model's maximum context length of 2048 tokens. You requested a"
        " total of 2100 tokens: 2000 tokens from the input messages and 100 tokens for the completion."
    )
    limit = json.dumps(
        {"object": "error", "type": "BadRequestError", "code": 400, "message": message}
    ).encode()
    err = d.parse_error(400, limit)
    assert isinstance(err, ContextWindowExceededError) and (err.prompt_tokens, err.context_limit) == (
        2000,
        2048,
    )
    image = b'{"object": "error", "message": "image input is not supported for this model", "type": "x", "code": 400}'
    assert type(d.parse_error(400, image)).__name__ == "UnsupportedInputError"


@respx.mock
def test_info_asks_the_older_route_names_on_404() -> None:
    respx.get(f"{URL}/v1/models").respond(
        200, json={"data": [{"id": "m", "owned_by": "sglang", "max_model_len": 8}]}
    )
    respx.get(f"{URL}/model_info").respond(404, json={"detail": "Not Found"})
    respx.get(f"{URL}/get_model_info").respond(200, json={"model_path": "p", "is_generation": True})
    respx.get(f"{URL}/server_info").respond(404, json={"detail": "Not Found"})
    respx.get(f"{URL}/get_server_info").respond(200, json={"version": "0.4.10", "context_length": 8})
    info = SGLangClient(URL).info()
    assert (info.model, info.version, info.max_total_tokens) == ("m", "0.4.10", 8)
    assert info.raw["model_info"] == {"model_path": "p", "is_generation": True}


@respx.mock
def test_info_without_the_optional_routes() -> None:
    respx.get(f"{URL}/v1/models").respond(200, json={"data": [{"id": "m", "owned_by": "sglang"}]})
    respx.get(url__startswith=URL).mock(return_value=httpx.Response(500, json={"detail": "x"}))
    info = SGLangClient(URL, max_retries=0).info()
    assert info.model == "m" and info.version is None and info.reasoning is None
