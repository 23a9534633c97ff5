"""Per-request timings on every result: client-measured figures, and what each engine reports (llama.cpp
``timings``, TGI's ``x-*-time`` headers and ``/generate`` details; vLLM reports none)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx

from engine_clients import End
from engine_clients import LlamaCppClient
from engine_clients import Reasoning
from engine_clients import TGIClient
from engine_clients import Timings
from engine_clients import Token
from engine_clients import VLLMClient
from tests.support import tgi_recordings as rec

LLAMA = "http://llama.test"
TGI = "http://tgi.test"
VLLM = "http://vllm.test"

LLAMA_TIMINGS = {
    "cache_n": 20,
    "prompt_n": 1,
    "prompt_ms": 12.5,
    "prompt_per_token_ms": 12.5,
    "prompt_per_second": 80.0,
    "predicted_n": 3,
    "predicted_ms": 30.0,
    "predicted_per_token_ms": 10.0,
    "predicted_per_second": 100.0,
}
USAGE = {
    "prompt_tokens": 21,
    "completion_tokens": 3,
    "total_tokens": 24,
    "prompt_tokens_details": {"cached_tokens": 20},
}
TGI_HEADERS = {
    "x-compute-type": "gpu+optimized",
    "x-compute-time": "0.25",
    "x-compute-characters": "12",
    "x-total-time": "250",
    "x-validation-time": "2",
    "x-queue-time": "8",
    "x-inference-time": "240",
    "x-time-per-token": "48",
    "x-prompt-tokens": "7",
    "x-generated-tokens": "5",
}


class Chunks(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body sent as separate network chunks (one SSE event each), as the engines send streams."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for c in self.chunks:
            yield c


def events(*objs: Any, done: bool = True) -> list[bytes]:
    out = [b"data: " + json.dumps(o).encode() + b"\n\n" for o in objs]
    return [*out, b"data: [DONE]\n\n"] if done else out


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


LLAMA_STREAM = events(
    chunk({"role": "assistant", "content": None}),
    chunk({"reasoning_content": "hm"}),
    chunk({"content": "Hello"}),
    chunk({"content": " world"}),
    chunk({}, "stop"),
    {"id": "chatcmpl-1", "model": "m", "choices": [], "usage": USAGE, "timings": LLAMA_TIMINGS},
)


def llama_answer() -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Hi!"}, "finish_reason": "stop"}
        ],
        "usage": USAGE,
        "timings": LLAMA_TIMINGS,
    }


def assert_client_figures(t: Timings, *, stream: bool) -> None:
    assert t.time_to_first_byte is not None and t.total_time is not None
    assert 0 <= t.time_to_first_byte <= t.total_time
    if stream:
        assert t.time_to_first_token is not None
        assert t.time_to_first_byte <= t.time_to_first_token <= t.total_time
    else:
        assert t.time_to_first_token is None
        assert t.inter_token_p50 is None and t.inter_token_max is None


def assert_llama_server_figures(t: Timings) -> None:
    assert t.server_prompt_time == pytest.approx(0.0125)
    assert t.server_generation_time == pytest.approx(0.030)
    assert t.server_tokens_per_second == 100.0
    assert t.server_cached_tokens == 20
    assert t.server["cache_n"] == 20 and t.server["predicted_n"] == 3
    assert t.server_queue_time is None and t.server_total_time is None  # llama.cpp does not say


@respx.mock
def test_llama_chat_answer_carries_client_and_server_timings() -> None:
    respx.post(f"{LLAMA}/v1/chat/completions").mock(return_value=httpx.Response(200, json=llama_answer()))
    with LlamaCppClient(LLAMA) as client:
        c = client.chat("hi")
    assert c.usage is not None and c.usage.cached_prompt_tokens == 20
    assert c.timings is not None
    assert_client_figures(c.timings, stream=False)
    assert_llama_server_figures(c.timings)
    assert c.timings.tokens_per_second == pytest.approx(3 / c.timings.total_time)


@respx.mock
def test_llama_chat_stream_end_carries_timings_and_gaps() -> None:
    respx.post(f"{LLAMA}/v1/chat/completions").mock(
        return_value=httpx.Response(
            200, stream=Chunks(LLAMA_STREAM), headers={"content-type": "text/event-stream"}
        )
    )
    with LlamaCppClient(LLAMA) as client:
        evs = list(client.chat_stream("hi"))
    assert [type(e).__name__ for e in evs[1:]] == ["Reasoning", "Token", "Token", "End"]
    end = evs[-1]
    assert isinstance(end, End)
    t = end.completion.timings
    assert t is not None
    assert_client_figures(t, stream=True)
    assert_llama_server_figures(t)
    # three chunks carried a reasoning piece or a token: two gaps between them
    assert t.inter_token_p50 is not None and t.inter_token_max is not None
    assert 0 <= t.inter_token_p50 <= t.inter_token_max <= t.total_time
    assert end.usage is not None and end.usage.cached_prompt_tokens == 20


@respx.mock
async def test_llama_async_chat_and_stream_carry_timings() -> None:
    respx.post(f"{LLAMA}/v1/chat/completions").mock(
        side_effect=[
            httpx.Response(200, json=llama_answer()),
            httpx.Response(200, stream=Chunks(LLAMA_STREAM), headers={"content-type": "text/event-stream"}),
        ]
    )
    async with LlamaCppClient(LLAMA) as client:
        c = await client.achat("hi")
        evs = [e async for e in client.achat_stream("hi")]
    assert c.timings is not None
    assert_client_figures(c.timings, stream=False)
    assert_llama_server_figures(c.timings)
    end = evs[-1]
    assert isinstance(end, End) and end.completion.timings is not None
    assert_client_figures(end.completion.timings, stream=True)
    assert_llama_server_figures(end.completion.timings)


@respx.mock
def test_llama_native_completion_reports_cache_hits_in_usage_and_timings() -> None:
    body = {"content": "Hi", "stop": True, "stop_type": "eos", "tokens_evaluated": 21, "tokens_predicted": 3}
    respx.post(f"{LLAMA}/completion").mock(
        side_effect=[
            httpx.Response(200, json={**body, "timings": LLAMA_TIMINGS}),
            httpx.Response(
                200,
                stream=Chunks(
                    events(
                        {"content": "Hi", "stop": False},
                        {**body, "content": "", "timings": LLAMA_TIMINGS},
                        done=False,
                    )
                ),
                headers={"content-type": "text/event-stream"},
            ),
        ]
    )
    with LlamaCppClient(LLAMA) as client:
        c = client.generate("hi")
        end = list(client.generate_stream("hi"))[-1]
    for completion in (c, end.completion if isinstance(end, End) else None):
        assert completion is not None and completion.timings is not None
        assert completion.usage is not None and completion.usage.cached_prompt_tokens == 20
        assert_llama_server_figures(completion.timings)


@respx.mock
def test_tgi_generate_reads_timing_headers_and_details() -> None:
    body = rec.wire_json("test_flash_llama/test_flash_llama_all_params")
    respx.post(f"{TGI}/generate").mock(return_value=httpx.Response(200, json=body, headers=TGI_HEADERS))
    with TGIClient(TGI) as client:
        c = client.generate("Test request", max_tokens=5)
    t = c.timings
    assert t is not None
    assert_client_figures(t, stream=False)
    assert t.server_queue_time == pytest.approx(0.008)
    assert t.server_generation_time == pytest.approx(0.240)
    assert t.server_total_time == pytest.approx(0.250)
    assert t.server_tokens_per_second == pytest.approx(5 / 0.240)
    assert t.server_prompt_time is None and t.server_cached_tokens is None  # TGI does not say
    assert t.server["x-validation-time"] == 2 and t.server["x-time-per-token"] == 48
    assert t.server["x-compute-time"] == 0.25
    assert t.server["seed"] == 0 and t.server["generated_tokens"] == 5 and t.server["prefill_tokens"] == 0


@respx.mock
async def test_tgi_chat_reads_timing_headers_async() -> None:
    body = rec.wire_json("test_chat_llama/test_flash_llama_simple")
    respx.post(f"{TGI}/v1/chat/completions").mock(
        return_value=httpx.Response(200, json=body, headers=TGI_HEADERS)
    )
    async with TGIClient(TGI) as client:
        c = await client.achat("hi")
    assert c.timings is not None
    assert c.timings.server_queue_time == pytest.approx(0.008)
    assert c.timings.server_total_time == pytest.approx(0.250)


@respx.mock
def test_tgi_generate_stream_details_and_no_headers_guessed() -> None:
    stream = rec.generate_stream_body("test_flash_llama/test_flash_llama_all_params")
    respx.post(f"{TGI}/generate_stream").mock(
        return_value=httpx.Response(200, content=stream, headers=rec.SSE_HEADERS)
    )
    with TGIClient(TGI) as client:
        evs = list(client.generate_stream("Test request", max_tokens=5))
    end = evs[-1]
    assert isinstance(end, End) and end.completion.timings is not None
    t = end.completion.timings
    assert_client_figures(t, stream=True)
    assert t.server["generated_tokens"] == 5 and t.server["seed"] == 0
    # a TGI stream's headers carry no times: nothing is made up
    assert t.server_queue_time is None and t.server_generation_time is None and t.server_total_time is None


@respx.mock
def test_vllm_reports_no_server_timings() -> None:
    answer = {
        "id": "chatcmpl-1",
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    }
    respx.post(f"{VLLM}/v1/chat/completions").mock(return_value=httpx.Response(200, json=answer))
    with VLLMClient(VLLM) as client:
        c = client.chat("hi")
    t = c.timings
    assert t is not None
    assert_client_figures(t, stream=False)
    assert t.server == {}
    assert (t.server_prompt_time, t.server_generation_time, t.server_cached_tokens) == (None, None, None)
    assert c.usage is not None and c.usage.cached_prompt_tokens is None


@respx.mock
def test_stream_without_usage_leaves_rate_unknown() -> None:
    body = events(chunk({"content": "a"}), chunk({"content": "b"}, "stop"))
    respx.post(f"{VLLM}/v1/chat/completions").mock(
        return_value=httpx.Response(200, stream=Chunks(body), headers={"content-type": "text/event-stream"})
    )
    with VLLMClient(VLLM) as client:
        evs = list(client.chat_stream("hi"))
    assert sum(isinstance(e, Token) for e in evs) == 2 and not any(isinstance(e, Reasoning) for e in evs)
    t = evs[-1].completion.timings if isinstance(evs[-1], End) else None
    assert t is not None
    assert t.tokens_per_second is None  # no usage: the token count is not guessed from chunks
    assert t.time_to_first_token is not None


def test_timings_to_dict_leaves_unknown_out() -> None:
    t = Timings(total_time=0.5, server_cached_tokens=3, server={"cache_n": 3})
    assert t.to_dict() == {"total_time": 0.5, "server_cached_tokens": 3, "server": {"cache_n": 3}}
    assert Timings().to_dict() == {}


@respx.mock
def test_pool_stats_count_cache_hits_per_replica() -> None:
    from engine_clients import EnginePool

    a, b = "http://a.test", "http://b.test"
    cold = {**llama_answer(), "usage": {"prompt_tokens": 21, "completion_tokens": 3, "total_tokens": 24}}
    respx.post(f"{a}/v1/chat/completions").mock(
        side_effect=[httpx.Response(200, json=cold), httpx.Response(200, json=llama_answer())]
    )
    respx.post(f"{b}/v1/chat/completions").mock(return_value=httpx.Response(200, json=llama_answer()))
    with EnginePool([a, b], engine="llamacpp") as pool:
        pool.chat("hi", session_id="s1")  # both calls of one session go to one replica
        pool.chat("hi", session_id="s1")
        stats = pool.stats()
    by_url = {r.url: r for r in stats.replicas}
    used = [r for r in by_url.values() if r.successes]
    assert len(used) == 1
    expected = {a: (20, 1), b: (40, 2)}[used[0].url]  # replica a answers cold first, b always cached
    assert (used[0].cached_tokens_in, used[0].cache_hits) == expected
    assert stats.cached_tokens_in == sum(r.cached_tokens_in for r in stats.replicas)
    assert stats.to_dict()["replicas"][0]["cached_tokens_in"] >= 0
