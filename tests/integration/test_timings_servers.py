"""Timings and prompt-cache hits on real engines: a repeated prompt is served from the prefix cache, and
the figures are consistent, through engine_clients, LangChain and LlamaIndex."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessageChunk
from langchain_selfhosted import ChatLlamaCpp
from langchain_selfhosted import ChatVLLM
from llama_index.core.base.llms.types import ChatMessage
from llama_index.llms.selfhosted import LlamaCpp

from engine_clients import End
from engine_clients import LlamaCppClient
from engine_clients import Timings
from engine_clients import VLLMClient
from engine_clients.testing import EngineServer

pytestmark = pytest.mark.integration

# Long enough to fill whole cache blocks on both engines; each test uses its own text.
BODY = "Please repeat these words in order: " + " ".join(f"word{i}" for i in range(40)) + "."


def messages(tag: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"[{tag}] {BODY}"}]


def consistent(t: Timings | None, *, stream: bool) -> Timings:
    assert t is not None
    assert t.time_to_first_byte is not None and t.total_time is not None
    assert 0 <= t.time_to_first_byte <= t.total_time
    if stream:
        assert t.time_to_first_token is not None
        assert 0 <= t.time_to_first_token <= t.total_time
        if t.inter_token_max is not None:
            assert (
                t.inter_token_p50 is not None and 0 <= t.inter_token_p50 <= t.inter_token_max <= t.total_time
            )
    for name in (
        "tokens_per_second",
        "server_prompt_time",
        "server_generation_time",
        "server_tokens_per_second",
    ):
        value = getattr(t, name)
        assert value is None or value >= 0, (name, value)
    return t


def test_llama_repeated_prompt_hits_the_cache(llama_server: EngineServer) -> None:
    with LlamaCppClient(llama_server.base_url) as client:
        client.chat(messages("ec"), max_tokens=4, temperature=0)
        again = client.chat(messages("ec"), max_tokens=4, temperature=0)
        events = list(client.chat_stream(messages("ec"), max_tokens=4, temperature=0))
        client.generate(f"[ec-native] {BODY}", max_tokens=4, temperature=0)
        native = client.generate(f"[ec-native] {BODY}", max_tokens=4, temperature=0)
    assert again.usage is not None and again.usage.cached_prompt_tokens
    t = consistent(again.timings, stream=False)
    assert t.server_cached_tokens and t.server["cache_n"] == t.server_cached_tokens
    assert t.server_prompt_time is not None and t.server_generation_time is not None
    assert t.server_tokens_per_second is not None and t.tokens_per_second is not None
    assert t.server_queue_time is None and t.server_total_time is None  # llama-server does not say
    end = events[-1]
    assert isinstance(end, End) and end.usage is not None and end.usage.cached_prompt_tokens
    st = consistent(end.completion.timings, stream=True)
    assert st.server_cached_tokens and st.server_prompt_time is not None
    assert native.usage is not None and native.usage.cached_prompt_tokens
    consistent(native.timings, stream=False)
    print(f"\nllama-server chat: {t.to_dict()}\nllama-server stream: {st.to_dict()}")


def test_llama_timings_through_langchain(llama_server: EngineServer) -> None:
    llm = ChatLlamaCpp(base_url=llama_server.base_url, max_tokens=4, temperature=0)
    llm.invoke(messages("lc")[0]["content"])
    ai = llm.invoke(messages("lc")[0]["content"])
    assert ai.usage_metadata is not None and ai.usage_metadata["input_token_details"]["cache_read"] > 0
    timings = ai.response_metadata["timings"]
    assert timings["server_cached_tokens"] > 0 and 0 <= timings["time_to_first_byte"] <= timings["total_time"]
    chunks = list(llm.stream(messages("lc")[0]["content"]))
    merged: Any = chunks[0]
    for c in chunks[1:]:
        merged = merged + c
    assert isinstance(merged, AIMessageChunk)
    st = merged.response_metadata["timings"]
    assert st["server_cached_tokens"] > 0 and 0 <= st["time_to_first_token"] <= st["total_time"]


def test_llama_timings_through_llamaindex(llama_server: EngineServer) -> None:
    llm = LlamaCpp(llama_server.base_url, temperature=0.0, max_tokens=4)
    msgs = [ChatMessage(role="user", content=messages("li")[0]["content"])]
    llm.chat(msgs)
    response = llm.chat(msgs)
    assert response.additional_kwargs["cached_tokens"] > 0
    timings = response.additional_kwargs["timings"]
    assert timings == response.raw["timings"]
    assert timings["server_cached_tokens"] > 0 and 0 <= timings["time_to_first_byte"] <= timings["total_time"]
    last = list(llm.stream_chat(msgs))[-1]
    assert (
        last.additional_kwargs["timings"]["time_to_first_token"]
        <= last.additional_kwargs["timings"]["total_time"]
    )


def test_vllm_repeated_prompt_reports_cached_tokens_and_metrics(vllm_server: EngineServer) -> None:
    with VLLMClient(vllm_server.base_url, model=vllm_server.model) as client:
        client.chat(messages("vllm"), max_tokens=4, temperature=0)
        again = client.chat(messages("vllm"), max_tokens=4, temperature=0)
        end = list(client.chat_stream(messages("vllm"), max_tokens=4, temperature=0))[-1]
    assert again.usage is not None and again.usage.cached_prompt_tokens  # --enable-prompt-tokens-details
    t = consistent(again.timings, stream=False)
    # --enable-per-request-metrics: vLLM's own figures
    assert t.server_generation_time is not None and t.server_queue_time is not None
    assert isinstance(end, End) and end.usage is not None and end.usage.cached_prompt_tokens
    st = consistent(end.completion.timings, stream=True)
    assert st.server_generation_time is not None
    assert t.server_cached_tokens is None  # vLLM reports cache hits in usage only
    lc = ChatVLLM(base_url=vllm_server.base_url, max_tokens=4, temperature=0).invoke(
        messages("vllm")[0]["content"]
    )
    assert lc.response_metadata["timings"]["total_time"] >= 0
    print(f"\nvLLM chat: {t.to_dict()}\nvLLM stream: {st.to_dict()}")
