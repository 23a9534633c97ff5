"""``SGLangClient`` against the fake SGLang server (a real HTTP server on loopback that answers like
``sglang==0.5.23``, ``engine_clients/testing/fake_sglang.py``): sync and async calls, cumulative streams,
reasoning, tools, errors inside streams, cancellation, and the discovery, embedding and rerank routes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from engine_clients import AuthenticationError
from engine_clients import BadRequestError
from engine_clients import ContextWindowExceededError
from engine_clients import End
from engine_clients import HealthStatus
from engine_clients import InternalServerError
from engine_clients import Reasoning
from engine_clients import SGLangClient
from engine_clients import Started
from engine_clients import StreamError
from engine_clients import Token
from engine_clients import ToolCallDelta
from engine_clients import UnsupportedInputError
from engine_clients import connect
from engine_clients.testing.fake_sglang import FakeSGLang
from engine_clients.testing.fake_sglang import start_fake_sglang

MODES = ["sync", "async"]
WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}  # fmt: skip


@pytest.fixture(scope="module")
def server() -> Iterator[FakeSGLang]:
    with start_fake_sglang() as srv:
        yield srv


@pytest.fixture(scope="module")
def thinker() -> Iterator[FakeSGLang]:
    with start_fake_sglang(thinking=True, reasoning_parser="qwen3") as srv:
        yield srv


def run(mode: str, client: SGLangClient, method: str, *args: Any, **kwargs: Any) -> Any:
    if mode == "sync":
        return getattr(client, method)(*args, **kwargs)
    import asyncio

    async def call() -> Any:
        try:
            return await getattr(client, "a" + method)(*args, **kwargs)
        finally:
            await client.aclose()

    return asyncio.run(call())


def events(mode: str, client: SGLangClient, method: str, *args: Any, **kwargs: Any) -> list[Any]:
    if mode == "sync":
        return list(getattr(client, method)(*args, **kwargs))
    import asyncio

    async def drain() -> list[Any]:
        try:
            return [e async for e in getattr(client, "a" + method)(*args, **kwargs)]
        finally:
            await client.aclose()

    return asyncio.run(drain())


def text_of(evs: list[Any]) -> str:
    return "".join(e.text for e in evs if isinstance(e, Token))


# ---- native /generate ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_generate(server: FakeSGLang, mode: str) -> None:
    out = run(mode, SGLangClient(server.base_url), "generate", "Hi there", max_tokens=16)
    assert out.content == "Hello world." and out.finish_reason == "stop" and out.raw_finish_reason == "stop"
    assert out.engine == "sglang" and out.id and len(out.id) == 32
    assert out.usage is not None and (out.usage.prompt_tokens, out.usage.completion_tokens) == (2, 3)
    assert out.usage.cached_prompt_tokens == 0 and out.usage.reasoning_tokens == 0
    assert out.timings is not None and out.timings.server_total_time == 0.0125
    assert (
        out.timings.server_tokens_per_second == 240.0 and out.timings.server["first_token_latency"] == 0.004
    )


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("incremental", [False, True])
def test_generate_stream_turns_cumulative_text_into_deltas(mode: str, incremental: bool) -> None:
    with start_fake_sglang(incremental=incremental) as srv:
        evs = events(mode, SGLangClient(srv.base_url), "generate_stream", "Hi", max_tokens=16)
    assert isinstance(evs[0], Started) and isinstance(evs[-1], End)
    assert [e.text for e in evs if isinstance(e, Token)] == ["Hello", " world", "."]
    done = evs[-1].completion
    assert done.content == "Hello world." and done.finish_reason == "stop"
    assert done.usage is not None and done.usage.completion_tokens == 3
    assert done.timings is not None and done.timings.server_total_time == 0.0125


@pytest.mark.parametrize("incremental", [False, True])
def test_long_stream_each_piece_once(incremental: bool) -> None:
    with start_fake_sglang(incremental=incremental) as srv:
        evs = list(SGLangClient(srv.base_url).generate_stream("Go", max_tokens=300, ignore_eos=True))
    tokens = [e.text for e in evs if isinstance(e, Token)]
    assert len(tokens) == 300 and "".join(tokens) == "Hello world." * 100
    assert evs[-1].completion.finish_reason == "length" and evs[-1].completion.raw_finish_reason == "length"


@pytest.mark.parametrize("mode", MODES)
def test_generate_logprobs(server: FakeSGLang, mode: str) -> None:
    out = run(mode, SGLangClient(server.base_url), "generate", "Hi", max_tokens=16, logprobs=True)
    assert [(lp.token, lp.id, lp.logprob) for lp in out.logprobs] == [
        ("Hello", 9707, -0.25),
        (" world", 1879, -0.25),
        (".", 13, -0.25),
    ]
    evs = events(mode, SGLangClient(server.base_url), "generate_stream", "Hi", max_tokens=16, logprobs=True)
    assert [lp.token for lp in evs[-1].completion.logprobs] == ["Hello", " world", "."]


def test_generate_length_finish(server: FakeSGLang) -> None:
    out = SGLangClient(server.base_url).generate("Hi", max_tokens=2)
    assert out.content == "Hello world" and out.finish_reason == "length"


# ---- chat ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_chat_reasoning_comes_apart(thinker: FakeSGLang, mode: str) -> None:
    out = run(mode, SGLangClient(thinker.base_url, model="m"), "chat", "Hello", max_tokens=64)
    assert out.content == "Hello world." and out.reasoning == "The user says hello."
    assert out.usage is not None and out.usage.reasoning_tokens == 5
    evs = events(mode, SGLangClient(thinker.base_url), "chat_stream", "Hello", max_tokens=64)
    assert "".join(e.text for e in evs if isinstance(e, Reasoning)) == "The user says hello."
    assert text_of(evs) == "Hello world." and evs[-1].completion.usage.reasoning_tokens == 5


def test_chat_thinking_off_and_no_parser(thinker: FakeSGLang) -> None:
    out = SGLangClient(thinker.base_url).chat("Hello", thinking=False)
    assert out.content == "Hello world." and out.reasoning is None
    assert thinker.posts("/v1/chat/completions")[-1]["chat_template_kwargs"]["enable_thinking"] is False
    with start_fake_sglang(thinking=True) as srv:  # no --reasoning-parser: <think> split on the client
        evs = list(SGLangClient(srv.base_url).chat_stream("Hello"))
        out = SGLangClient(srv.base_url).chat("Hello")
    assert text_of(evs) == "Hello world." and evs[-1].completion.reasoning == "The user says hello."
    assert out.content == "Hello world." and out.reasoning == "The user says hello."


@pytest.mark.parametrize("mode", MODES)
def test_chat_tool_calls(server: FakeSGLang, mode: str) -> None:
    client = SGLangClient(server.base_url)
    out = run(mode, client, "chat", "Weather in Paris?", tools=[WEATHER], tool_choice="required")
    assert out.finish_reason == "tool_calls" and out.tool_calls[0].name == "get_weather"
    assert out.tool_calls[0].arguments == {"city": "Paris"}
    evs = events(mode, SGLangClient(server.base_url), "chat_stream", "Weather?", tools=[WEATHER])
    assert any(isinstance(e, ToolCallDelta) for e in evs)
    assert evs[-1].completion.tool_calls[0].arguments == {"city": "Paris"}


def test_chat_json_schema(server: FakeSGLang) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}
    out = SGLangClient(server.base_url).chat("Who?", response_format=schema)
    assert json.loads(out.content) == {"name": "Paris", "age": 1}


# ---- errors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_generate_errors(server: FakeSGLang, mode: str) -> None:
    client = SGLangClient(server.base_url, max_retries=0)
    with pytest.raises(BadRequestError, match="scripted failure"):
        run(mode, client, "generate", "!error")
    with pytest.raises(StreamError) as info:  # {"error": ...} inside the 200 stream, after output
        events(mode, SGLangClient(server.base_url), "generate_stream", "!error")
    assert info.value.partial_text == "Hello" and info.value.status_code == 400
    with pytest.raises(StreamError) as info:  # finish_reason {"type": "abort", "status_code": 500}
        events(mode, SGLangClient(server.base_url), "generate_stream", "!abort")
    assert info.value.status_code == 500 and isinstance(info.value.__cause__, InternalServerError)
    with pytest.raises(InternalServerError, match="scripted abort"):
        run(mode, SGLangClient(server.base_url, max_retries=0), "generate", "!abort")


@pytest.mark.parametrize("mode", MODES)
def test_context_window(server: FakeSGLang, mode: str) -> None:
    prompt = "word " * 5000
    with pytest.raises(ContextWindowExceededError) as info:
        run(mode, SGLangClient(server.base_url), "generate", prompt)
    assert (info.value.prompt_tokens, info.value.context_limit) == (5000, 4096)
    with pytest.raises(ContextWindowExceededError):  # in the stream, before any output: the typed error
        events(mode, SGLangClient(server.base_url), "generate_stream", prompt)
    with pytest.raises(ContextWindowExceededError):
        run(mode, SGLangClient(server.base_url), "chat", prompt)


def test_contract_gate_and_chat_stream_error(server: FakeSGLang) -> None:
    with pytest.raises(BadRequestError, match="unknown field `bogus`"):
        SGLangClient(server.base_url).generate("Hi", extra_body={"sampling_params": {"bogus": 1}})
    with pytest.raises(BadRequestError, match="scripted failure"):  # nothing but the role chunk came first
        list(SGLangClient(server.base_url).chat_stream("!error"))


def test_images_on_a_text_model(server: FakeSGLang) -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "What is it?"}, image]}]
    with pytest.raises(UnsupportedInputError) as info:  # serving_chat.py: 400 for a text-only model
        SGLangClient(server.base_url).chat(messages)
    assert info.value.kind == "image"
    with start_fake_sglang(vision=True) as srv:
        assert SGLangClient(srv.base_url).chat(messages).content == "Hello world."
        assert SGLangClient(srv.base_url).info().image_inputs is True


def test_api_key() -> None:
    with start_fake_sglang(api_key="sk-1") as srv:
        with pytest.raises(AuthenticationError):
            SGLangClient(srv.base_url).generate("Hi")
        assert SGLangClient(srv.base_url).health() == HealthStatus.HEALTHY  # /health stays open
        assert SGLangClient(srv.base_url, api_key="sk-1").generate("Hi").content == "Hello world."
        assert type(connect(srv.base_url, api_key="sk-1")) is SGLangClient


# ---- cancellation ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["generate_stream", "chat_stream"])
def test_closing_a_stream_closes_the_connection(route: str) -> None:
    with start_fake_sglang() as srv:
        stream = getattr(SGLangClient(srv.base_url), route)("Hi !hold")
        for event in stream:
            if isinstance(event, Token):
                break
        stream.close()
        assert srv.disconnect_seen.wait(5)  # SGLang aborts a request whose client went away
        assert len(srv.disconnected) == 1 and not srv.posts("/abort_request")


def test_closing_an_async_stream_closes_the_connection() -> None:
    import asyncio

    async def main(srv: FakeSGLang) -> None:
        client = SGLangClient(srv.base_url)
        stream = client.agenerate_stream("Hi !hold")
        async for event in stream:
            if isinstance(event, Token):
                break
        await stream.aclose()  # type: ignore[attr-defined]
        await client.aclose()

    with start_fake_sglang() as srv:
        asyncio.run(main(srv))
        assert srv.disconnect_seen.wait(5) and len(srv.disconnected) == 1


# ---- discovery, embeddings, rerank, tokenize -------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_info_health_tokenize(thinker: FakeSGLang, mode: str) -> None:
    info = run(mode, SGLangClient(thinker.base_url), "info")
    assert (info.engine, info.model, info.version) == ("sglang", "scripted/sglang-tiny", "0.5.23")
    assert (info.max_total_tokens, info.max_input_tokens) == (4096, 4095)
    assert info.reasoning is True and info.tool_calling is True and info.image_inputs is False
    assert info.structured_output is True
    assert run(mode, SGLangClient(thinker.base_url), "health") == HealthStatus.HEALTHY
    tokens = run(mode, SGLangClient(thinker.base_url), "tokenize", "hello big world")
    assert len(tokens) == 3 and all(t.text is None for t in tokens)


def test_health_while_starting(server: FakeSGLang) -> None:
    server.starting = True
    try:
        assert SGLangClient(server.base_url).health() == HealthStatus.DEGRADED
    finally:
        server.starting = False


@pytest.mark.parametrize("mode", MODES)
def test_embed_and_rerank(server: FakeSGLang, mode: str) -> None:
    emb = run(mode, SGLangClient(server.base_url), "embed", ["hello world", "goodbye"])
    assert len(emb.vectors) == 2 and len(emb.vectors[0]) == 8 and emb.model == "scripted/sglang-tiny"
    docs = ["the cat sat", "hello world", "hello there world"]
    ranked = run(mode, SGLangClient(server.base_url), "rerank", "hello world", docs, top_n=2)
    assert [(r.index, r.document) for r in ranked.results] == [(1, "hello world"), (2, "hello there world")]
    assert ranked.results[0].score == 1.0 and ranked.usage is not None
    assert server.posts("/v1/rerank")[-1] == {"query": "hello world", "documents": docs, "return_documents": False,
                                              "top_n": 2}  # fmt: skip


@pytest.mark.parametrize("mode", MODES)
def test_adapters_load_list_select_and_unload(mode: str) -> None:
    """Runtime LoRA on SGLang (--enable-lora): loaded adapters are /v1/models entries with a parent, a request
    names one as base:adapter, and the server's LoRAUpdateOutput refusals become typed errors."""
    with start_fake_sglang(lora=True) as srv:
        client = SGLangClient(srv.base_url)
        run(mode, client, "load_adapter", "sql", "/adapters/sql")
        [sql] = run(mode, client, "adapters")
        assert (sql.name, sql.path, sql.parent) == ("sql", "/adapters/sql", "scripted/sglang-tiny")
        run(mode, client, "chat", "hi", adapter="sql", max_tokens=4)  # no base model named: lora_path
        assert srv.posts("/v1/chat/completions")[-1]["lora_path"] == "sql"
        named = SGLangClient(srv.base_url, model="scripted/sglang-tiny")
        run(mode, named, "chat", "hi", adapter="sql", max_tokens=4)
        assert srv.posts("/v1/chat/completions")[-1]["model"] == "scripted/sglang-tiny:sql"
        with pytest.raises(BadRequestError, match="already loaded"):
            run(mode, client, "load_adapter", "sql", "/adapters/sql")
        run(mode, client, "unload_adapter", "sql")
        assert run(mode, client, "adapters") == []
        with pytest.raises(BadRequestError, match="does not exist"):
            run(mode, client, "unload_adapter", "sql")
    assert srv.posts("/load_lora_adapter")[0] == {"lora_name": "sql", "lora_path": "/adapters/sql"}


def test_adapters_on_a_server_without_lora_say_the_flag(server: FakeSGLang) -> None:
    with pytest.raises(BadRequestError) as info:
        SGLangClient(server.base_url).load_adapter("sql", "/adapters/sql")
    assert info.value.status_code == 400 and "--enable-lora" in str(info.value)
    assert "success" not in str(info.value)  # the server's own sentence, not its JSON
