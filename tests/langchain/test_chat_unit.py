"""Chat models and LLMs without a server (respx): construction, secrets, model discovery, tracing params,
the server tokenizer, tool calls (valid, invalid, streamed), message conversion, structured output
requests, error mapping onto LangChain's exception types, event loops."""

from __future__ import annotations

import asyncio
import copy
import json
import pickle
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx
from langchain_core.exceptions import ContextOverflowError
from langchain_core.exceptions import ModelAuthenticationError
from langchain_core.exceptions import ModelConnectionError
from langchain_core.exceptions import ModelInvalidRequestError
from langchain_core.exceptions import ModelRateLimitError
from langchain_core.load import dumpd
from langchain_core.load import dumps
from langchain_core.messages import AIMessage
from langchain_core.messages import AIMessageChunk
from langchain_core.messages import HumanMessage
from langchain_core.messages import SystemMessage
from langchain_core.messages import ToolMessage
from langchain_selfhosted import TGILLM
from langchain_selfhosted import VLLMLLM
from langchain_selfhosted import ChatLlamaCpp
from langchain_selfhosted import ChatTGI
from langchain_selfhosted import ChatVLLM
from langchain_selfhosted import LlamaCppLLM
from langchain_selfhosted import errors as lc_errors
from pydantic import BaseModel

import engine_clients
from tests.support.mock_streams import sse

BASE = "http://engine.test"
CHAT = f"{BASE}/v1/chat/completions"
CHAT_CLASSES = [ChatTGI, ChatVLLM, ChatLlamaCpp]
ALL_CLASSES = [*CHAT_CLASSES, TGILLM, VLLMLLM, LlamaCppLLM]


def answer(
    content: str = "hi", *, tool_calls: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-1",
        "model": "served-model",
        "choices": [
            {"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop", **extra}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }


def call(name: str, arguments: str, id: str = "call_1") -> dict[str, Any]:
    return {"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-2",
        "model": "served-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


USAGE_CHUNK = {
    "id": "chatcmpl-2",
    "model": "served-model",
    "choices": [],
    "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
}


def stream_response(*events: Any) -> httpx.Response:
    return httpx.Response(200, content=sse(*events), headers={"content-type": "text/event-stream"})


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as r:
        yield r


def body_of(router: respx.MockRouter, index: int = -1) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(router.calls[index].request.content)
    return data


def merged(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    full = chunks[0]
    for c in chunks[1:]:
        full += c
    return full


# ---- construction, secrets, serialization ----------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_construction_touches_no_network(router: respx.MockRouter, cls: Any) -> None:
    model = cls(base_url=BASE, api_key="k")
    assert model.model is None and model.model_name is None
    assert not router.calls


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_base_url_and_key_from_environment(monkeypatch: pytest.MonkeyPatch, cls: Any) -> None:
    prefix = cls.client_class.env_prefix
    monkeypatch.delenv(f"{prefix}_BASE_URL", raising=False)
    with pytest.raises(ValueError, match=f"{prefix}_BASE_URL"):
        cls()
    monkeypatch.setenv(f"{prefix}_BASE_URL", "http://env.test")
    monkeypatch.setenv(f"{prefix}_API_KEY", "env-key")
    model = cls()
    assert model.base_url == "http://env.test"
    assert model.api_key.get_secret_value() == "env-key"
    assert cls(api_key="given").api_key.get_secret_value() == "given"


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_api_key_never_leaks(monkeypatch: pytest.MonkeyPatch, cls: Any) -> None:
    monkeypatch.delenv(f"{cls.client_class.env_prefix}_API_KEY", raising=False)
    model = cls(base_url=BASE, api_key="s3cr3t-key", model="m")
    _ = model.client  # a client holding the key exists
    for text in (repr(model), str(model), dumps(model), json.dumps(dumpd(model)), str(model.asdict())):
        assert "s3cr3t-key" not in text
    blob = pickle.dumps(model)
    assert b"s3cr3t-key" not in blob
    restored = pickle.loads(blob)
    assert restored.api_key is None and restored.model == "m"  # the key is not pickled...
    monkeypatch.setenv(f"{cls.client_class.env_prefix}_API_KEY", "from-env")
    assert pickle.loads(blob).api_key.get_secret_value() == "from-env"  # ...the environment supplies it


def test_copies_get_their_own_clients(router: respx.MockRouter) -> None:
    router.post(CHAT).mock(return_value=httpx.Response(200, json=answer()))
    router.post("http://other.test/v1/chat/completions").mock(
        return_value=httpx.Response(200, json=answer("b"))
    )
    model = ChatVLLM(base_url=BASE, model="m")
    model.invoke("hi")
    clone = copy.deepcopy(model)
    assert clone.invoke("hi").content == "hi"
    moved = model.model_copy(update={"base_url": "http://other.test"})
    assert moved.invoke("hi").content == "b"  # not the original's client
    assert model.invoke("hi").content == "hi"


# ---- discovery, tracing ------------------------------------------------------------------------------------


def test_model_is_discovered_once_on_first_use(router: respx.MockRouter) -> None:
    models = router.get(f"{BASE}/v1/models").mock(
        return_value=httpx.Response(200, json={"data": [{"id": "served-model", "max_model_len": 1024}]})
    )
    router.get(f"{BASE}/version").mock(return_value=httpx.Response(200, json={"version": "0.32"}))
    router.post(CHAT).mock(return_value=httpx.Response(200, json=answer()))
    model = ChatVLLM(base_url=BASE)
    assert "ls_model_name" not in model._get_ls_params()
    message = model.invoke("hi")
    assert message.response_metadata["model_name"] == "served-model"
    model.invoke("hi")
    assert models.call_count == 1
    assert model.model_name == "served-model"
    assert model._get_ls_params()["ls_model_name"] == "served-model"
    assert "model" not in body_of(router)  # discovery is for metadata; requests stay model-less


def test_discovered_model_names_tgi_generate_results(router: respx.MockRouter) -> None:
    router.get(f"{BASE}/info").mock(return_value=httpx.Response(200, json={"model_id": "org/tgi-model"}))
    router.post(f"{BASE}/generate").mock(
        return_value=httpx.Response(200, json={"generated_text": "x", "details": {"finish_reason": "length"}})
    )
    result = TGILLM(base_url=BASE).generate(["a"])
    assert result.generations[0][0].generation_info["model_name"] == "org/tgi-model"


def test_discovery_failure_is_not_fatal(router: respx.MockRouter) -> None:
    router.get(f"{BASE}/v1/models").mock(return_value=httpx.Response(404, json={"error": "no such route"}))
    router.post(CHAT).mock(return_value=httpx.Response(200, json=answer()))
    model = ChatLlamaCpp(base_url=BASE)
    assert model.invoke("hi").response_metadata["model_name"] == "served-model"  # from the answer
    model.invoke("hi")
    assert sum(c.request.url.path == "/v1/models" for c in router.calls) == 1


@pytest.mark.parametrize("cls", CHAT_CLASSES)
def test_ls_params(cls: Any) -> None:
    model = cls(base_url=BASE, model="m", temperature=0.3, max_tokens=9, stop=["x"])
    params = model._get_ls_params()
    assert params == {
        "ls_provider": cls.engine_name(),
        "ls_model_type": "chat",
        "ls_model_name": "m",
        "ls_temperature": 0.3,
        "ls_max_tokens": 9,
        "ls_stop": ["x"],
    }
    assert model._get_ls_params(stop=["y"], model="other")["ls_stop"] == ["y"]
    assert model._get_ls_params(model="other")["ls_model_name"] == "other"
    assert model._llm_type == f"{cls.engine_name()}-chat"
    ident = model._identifying_params
    assert ident["engine"] == cls.engine_name() and ident["model_name"] == "m" and ident["temperature"] == 0.3


@pytest.mark.parametrize("cls", [TGILLM, VLLMLLM, LlamaCppLLM])
def test_llm_ls_params(cls: Any) -> None:
    params = cls(base_url=BASE, model="m", temperature=0.1)._get_ls_params()
    assert params["ls_provider"] == cls.engine_name() and params["ls_model_type"] == "llm"
    assert params["ls_model_name"] == "m"
    assert cls(base_url=BASE)._llm_type == cls.engine_name()


@pytest.mark.parametrize(
    ("cls", "answer_body"),
    [
        (ChatLlamaCpp, {"tokens": [{"id": 10, "piece": "he"}, {"id": 11, "piece": "llo"}]}),
        (ChatVLLM, {"tokens": [10, 11], "token_strs": ["he", "llo"], "count": 2}),
        (
            ChatTGI,
            [
                {"id": 10, "text": "he", "start": 0, "stop": 2},
                {"id": 11, "text": "llo", "start": 2, "stop": 5},
            ],
        ),
        (LlamaCppLLM, {"tokens": [10, 11]}),
    ],
)
def test_token_counts_come_from_the_server_tokenizer(
    router: respx.MockRouter, cls: Any, answer_body: Any
) -> None:
    route = router.post(f"{BASE}/tokenize").mock(return_value=httpx.Response(200, json=answer_body))
    model = cls(base_url=BASE, model="m")
    assert model.get_token_ids("hello") == [10, 11]
    assert model.get_num_tokens("hello") == 2
    assert "hello" in route.calls.last.request.content.decode()


# ---- messages and tool calls -----------------------------------------------------------------------------


def test_history_with_tool_calls_goes_out_openai_style(router: respx.MockRouter) -> None:
    router.post(CHAT).mock(return_value=httpx.Response(200, json=answer()))
    history = [
        SystemMessage("be brief"),
        HumanMessage("weather in Paris?", name="ann"),
        AIMessage("", tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "call_9"}]),
        ToolMessage("sunny", tool_call_id="call_9"),
        ToolMessage(
            [{"type": "text", "text": "and "}, {"type": "text", "text": "warm"}], tool_call_id="call_9"
        ),
    ]
    ChatLlamaCpp(base_url=BASE, model="m").invoke(history)
    messages = body_of(router)["messages"]
    assert messages[0] == {"role": "system", "content": "be brief"}
    assert messages[1] == {"role": "user", "name": "ann", "content": "weather in Paris?"}
    assert messages[2]["role"] == "assistant"
    assert messages[2]["tool_calls"] == [
        {
            "id": "call_9",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }
    ]
    assert messages[3] == {"role": "tool", "tool_call_id": "call_9", "content": "sunny"}
    assert messages[4]["content"] == "and \nwarm" or messages[4]["content"] == "and warm"


def test_provider_specific_assistant_blocks_become_text(router: respx.MockRouter) -> None:
    """Text blocks become the content; a thinking block goes back as vLLM's ``reasoning``, never content."""
    router.post(CHAT).mock(return_value=httpx.Response(200, json=answer()))
    ai = AIMessage(
        [{"type": "thinking", "thinking": "hm", "signature": "x"}, {"type": "text", "text": "Hello"}]
    )
    ChatVLLM(base_url=BASE, model="m").invoke([HumanMessage("hi"), ai, HumanMessage("again")])
    assert body_of(router)["messages"][1] == {"role": "assistant", "content": "Hello", "reasoning": "hm"}


def test_image_blocks_become_image_url_parts(router: respx.MockRouter) -> None:
    router.post(CHAT).mock(return_value=httpx.Response(200, json=answer()))
    msg = HumanMessage(
        [{"type": "text", "text": "what?"}, {"type": "image", "base64": "AAAA", "mime_type": "image/png"}]
    )
    ChatVLLM(base_url=BASE, model="m").invoke([msg])
    content = body_of(router)["messages"][0]["content"]
    assert content[1] == {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}


def test_tool_calls_valid_and_invalid(router: respx.MockRouter) -> None:
    calls = [
        call("get_weather", '{"city": "a"}', "c1"),
        call("get_weather", '"a"', "c2"),
        call("x", "{bad", "c3"),
    ]
    router.post(CHAT).mock(return_value=httpx.Response(200, json=answer("", tool_calls=calls)))
    message = ChatVLLM(base_url=BASE, model="m").invoke("hi")
    assert message.tool_calls == [
        {"name": "get_weather", "args": {"city": "a"}, "id": "c1", "type": "tool_call"}
    ]
    assert [(c["id"], c["args"]) for c in message.invalid_tool_calls] == [("c2", '"a"'), ("c3", "{bad")]
    assert all(c["error"] for c in message.invalid_tool_calls)
    assert message.response_metadata["finish_reason"] == "tool_calls"


def test_tool_call_cut_by_max_tokens_is_invalid_not_empty(router: respx.MockRouter) -> None:
    """finish_reason "length" with arguments "{": an invalid tool call, never a call with {} arguments."""
    body = answer("", tool_calls=[call("get_weather", "{", "c1")])
    body["choices"][0]["finish_reason"] = "length"
    router.post(CHAT).mock(return_value=httpx.Response(200, json=body))
    message = ChatLlamaCpp(base_url=BASE, model="m").invoke("hi")
    assert message.tool_calls == []
    assert [(c["name"], c["args"]) for c in message.invalid_tool_calls] == [("get_weather", "{")]
    assert message.response_metadata["finish_reason"] == "length"


async def test_streamed_tool_calls_become_tool_call_chunks(router: respx.MockRouter) -> None:
    events = [
        chunk(
            {
                "role": "assistant",
                "tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f", "arguments": ""}}],
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a": '}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
        chunk({"tool_calls": [{"index": 1, "id": "c2", "function": {"name": "g", "arguments": '"bare"'}}]}),
        chunk({}, "tool_calls"),
        USAGE_CHUNK,
    ]
    router.post(CHAT).mock(side_effect=lambda request: stream_response(*events))
    model = ChatVLLM(base_url=BASE, model="m").bind_tools([{"type": "function", "function": {"name": "f"}}])
    for chunks in (list(model.stream("hi")), [c async for c in model.astream("hi")]):
        assert [tc["args"] for c in chunks for tc in c.tool_call_chunks] == ["", '{"a": ', "1}", '"bare"']
        full = merged(chunks)
        assert full.tool_calls == [{"name": "f", "args": {"a": 1}, "id": "c1", "type": "tool_call"}]
        assert [(c["name"], c["args"]) for c in full.invalid_tool_calls] == [("g", '"bare"')]
        assert full.usage_metadata == {"input_tokens": 5, "output_tokens": 3, "total_tokens": 8}
        assert full.response_metadata["finish_reason"] == "tool_calls"
        assert chunks[-1].chunk_position == "last"


def test_stream_without_tool_call_ids_gets_the_made_up_id_once(router: respx.MockRouter) -> None:
    events = [
        chunk({"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": '{"a"'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}),
        chunk({}, "tool_calls"),
    ]
    router.post(CHAT).mock(return_value=stream_response(*events))
    full = merged(list(ChatLlamaCpp(base_url=BASE, model="m").stream("hi")))
    assert full.tool_calls == [{"name": "f", "args": {"a": 1}, "id": "call_0", "type": "tool_call"}]


def test_logprobs_in_response_metadata(router: respx.MockRouter) -> None:
    lp = {"content": [{"token": "hi", "logprob": -0.1, "top_logprobs": [{"token": "hi", "logprob": -0.1}]}]}
    router.post(CHAT).mock(return_value=httpx.Response(200, json=answer(logprobs=lp)))
    message = ChatVLLM(base_url=BASE, model="m", logprobs=True, top_logprobs=1).invoke("x")
    assert message.response_metadata["logprobs"]["content"][0]["token"] == "hi"
    assert message.response_metadata["logprobs"]["content"][0]["top_logprobs"] == [
        {"token": "hi", "logprob": -0.1}
    ]
    events = [chunk({"content": "hi"}, logprobs=None), chunk({}, "stop")]
    events[0]["choices"][0]["logprobs"] = lp
    router.post(CHAT).mock(return_value=stream_response(*events))
    full = merged(list(ChatVLLM(base_url=BASE, model="m", logprobs=True).stream("x")))
    assert full.response_metadata["logprobs"]["content"][0]["logprob"] == -0.1


def test_stream_usage_can_be_turned_off(router: respx.MockRouter) -> None:
    router.post(CHAT).mock(
        side_effect=lambda r: stream_response(chunk({"content": "a"}), chunk({}, "stop"), USAGE_CHUNK)
    )
    assert merged(list(ChatVLLM(base_url=BASE, model="m").stream("x"))).usage_metadata is not None
    assert (
        merged(list(ChatVLLM(base_url=BASE, model="m", stream_usage=False).stream("x"))).usage_metadata
        is None
    )


@pytest.mark.parametrize(
    ("choice", "tools_sent", "wire"),
    [
        ("auto", ["f", "g"], "auto"),
        ("none", ["f", "g"], "none"),
        ("any", ["f", "g"], "required"),
        (True, ["f", "g"], "required"),
        ("g", ["g"], "required"),  # llama-server ignores named choices: only that tool, required
        ({"type": "function", "function": {"name": "g"}}, ["g"], "required"),
    ],
)
def test_llamacpp_tool_choice_forms(
    router: respx.MockRouter, choice: Any, tools_sent: list[str], wire: str
) -> None:
    router.post(CHAT).mock(return_value=httpx.Response(200, json=answer()))
    tools = [
        {"type": "function", "function": {"name": n, "parameters": {"type": "object", "properties": {}}}}
        for n in "fg"
    ]
    ChatLlamaCpp(base_url=BASE, model="m").bind_tools(tools, tool_choice=choice).invoke("x")
    body = body_of(router)
    assert [t["function"]["name"] for t in body["tools"]] == tools_sent
    assert body["tool_choice"] == wire


def test_vllm_named_tool_choice(router: respx.MockRouter) -> None:
    router.post(CHAT).mock(return_value=httpx.Response(200, json=answer()))
    tools = [{"type": "function", "function": {"name": n}} for n in "fg"]
    ChatVLLM(base_url=BASE, model="m").bind_tools(tools, tool_choice="g").invoke("x")
    assert body_of(router)["tool_choice"] == {"type": "function", "function": {"name": "g"}}


# ---- structured output requests -----------------------------------------------------------------------------


class Joke(BaseModel):
    """A joke."""

    setup: str
    punchline: str


@pytest.mark.parametrize("cls", [ChatVLLM, ChatLlamaCpp])
def test_structured_output_methods_on_the_wire(router: respx.MockRouter, cls: Any) -> None:
    joke = '{"setup": "s", "punchline": "p"}'
    router.post(CHAT).mock(return_value=httpx.Response(200, json=answer(joke)))
    model = cls(base_url=BASE, model="m")

    assert model.with_structured_output(Joke).invoke("x") == Joke(setup="s", punchline="p")
    fmt = body_of(router)["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "Joke"
    assert fmt["json_schema"]["schema"]["required"] == ["setup", "punchline"]

    model.with_structured_output(Joke, strict=True).invoke("x")
    assert body_of(router)["response_format"]["json_schema"]["strict"] is True

    assert model.with_structured_output(Joke, method="json_mode").invoke("x") == Joke(
        setup="s", punchline="p"
    )
    assert body_of(router)["response_format"] == {"type": "json_object"}

    assert model.with_structured_output(Joke.model_json_schema(), method="json_mode").invoke("x") == {
        "setup": "s",
        "punchline": "p",
    }

    untitled = {"type": "object", "properties": {"setup": {"type": "string"}}}
    model.with_structured_output(untitled).invoke("x")
    assert body_of(router)["response_format"]["json_schema"]["schema"] == untitled

    router.post(CHAT).mock(return_value=httpx.Response(200, json=answer("", tool_calls=[call("Joke", joke)])))
    assert model.with_structured_output(Joke, method="function_calling").invoke("x") == Joke(
        setup="s", punchline="p"
    )
    body = body_of(router)
    assert [t["function"]["name"] for t in body["tools"]] == ["Joke"] and "response_format" not in body


def test_structured_output_rejects_unknown_method() -> None:
    with pytest.raises(ValueError, match="method"):
        ChatVLLM(base_url=BASE).with_structured_output(Joke, method="xml")  # type: ignore[arg-type]


# ---- errors ------------------------------------------------------------------------------------------------

LLAMA_CTX = {
    "error": {
        "code": 400,
        "message": "request (5000 tokens) exceeds the available context size (4096 tokens), try increasing it",
        "type": "exceed_context_size_error",
        "n_prompt_tokens": 5000,
        "n_ctx": 4096,
    }
}


def test_context_overflow_is_both_error_types(router: respx.MockRouter) -> None:
    router.post(CHAT).mock(return_value=httpx.Response(400, json=LLAMA_CTX))
    with pytest.raises(ContextOverflowError) as info:
        ChatLlamaCpp(base_url=BASE, model="m").invoke("long")
    err = info.value
    assert isinstance(err, engine_clients.ContextWindowExceededError)
    assert isinstance(err, lc_errors.ContextWindowExceededError)
    assert (err.prompt_tokens, err.context_limit, err.status_code) == (5000, 4096, 400)
    assert "exceeds the available context size" in str(err)
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is type(err) and again.context_limit == 4096


@pytest.mark.parametrize(
    ("status", "lc_type", "engine_type", "retryable"),
    [
        (429, ModelRateLimitError, engine_clients.RateLimitError, True),
        (401, ModelAuthenticationError, engine_clients.AuthenticationError, False),
        (503, ModelConnectionError, engine_clients.EngineUnavailableError, True),
        (422, ModelInvalidRequestError, engine_clients.BadRequestError, False),
    ],
)
async def test_http_errors_map_to_langchain_types(
    router: respx.MockRouter, status: int, lc_type: type, engine_type: type, retryable: bool
) -> None:
    router.post(CHAT).mock(return_value=httpx.Response(status, json={"error": {"message": "nope"}}))
    model = ChatVLLM(base_url=BASE, model="m", max_retries=0)
    for attempt in ("invoke", "ainvoke", "stream"):
        with pytest.raises(lc_type) as info:
            if attempt == "invoke":
                model.invoke("x")
            elif attempt == "ainvoke":
                await model.ainvoke("x")
            else:
                list(model.stream("x"))
        assert isinstance(info.value, engine_type)
        assert info.value.is_retryable is retryable


def test_errors_mid_stream_keep_partial_output(router: respx.MockRouter) -> None:
    body = sse(chunk({"content": "Hel"}), {"error": {"message": "boom", "type": "server_error"}}, done=False)
    router.post(CHAT).mock(
        return_value=httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})
    )
    seen: list[str] = []
    with pytest.raises(engine_clients.StreamError) as info:
        for c in ChatVLLM(base_url=BASE, model="m").stream("x"):
            seen.append(c.text)
    assert isinstance(info.value, lc_errors.StreamError)
    assert info.value.partial_text == "Hel" and "".join(seen) == "Hel"


def test_langchain_retry_helpers_see_retryable_errors(router: respx.MockRouter) -> None:
    route = router.post(CHAT).mock(
        side_effect=[httpx.Response(429, json={"error": "slow down"}), httpx.Response(200, json=answer("ok"))]
    )
    model = ChatVLLM(base_url=BASE, model="m", max_retries=0)
    retrying = model.with_retry(retry_if_exception_type=(ModelRateLimitError,), wait_exponential_jitter=False)
    assert retrying.invoke("x").content == "ok" and route.call_count == 2

    router.post(CHAT).mock(return_value=httpx.Response(400, json=LLAMA_CTX))
    router.post("http://big.test/v1/chat/completions").mock(
        return_value=httpx.Response(200, json=answer("big"))
    )
    small = ChatLlamaCpp(base_url=BASE, model="m")
    big = ChatLlamaCpp(base_url="http://big.test", model="m")
    assert (
        small.with_fallbacks([big], exceptions_to_handle=(ContextOverflowError,)).invoke("x").content == "big"
    )


# ---- event loops, LLMs -----------------------------------------------------------------------------------


def test_one_model_across_event_loops(router: respx.MockRouter) -> None:
    router.post(CHAT).mock(side_effect=lambda r: httpx.Response(200, json=answer()))
    model = ChatVLLM(base_url=BASE, model="m")
    assert asyncio.run(model.ainvoke("x")).content == "hi"
    assert asyncio.run(model.ainvoke("x")).content == "hi"  # a fresh loop gets a fresh async client


@pytest.mark.parametrize(
    ("cls", "path", "body", "stream_events"),
    [
        (
            LlamaCppLLM,
            "/completion",
            {
                "content": " world",
                "stop_type": "eos",
                "tokens_evaluated": 2,
                "tokens_predicted": 1,
                "model": "g",
            },
            [
                {"content": " wor", "stop": False},
                {"content": "ld", "stop": False},
                {
                    "content": "",
                    "stop": True,
                    "stop_type": "eos",
                    "tokens_evaluated": 2,
                    "tokens_predicted": 2,
                },
            ],
        ),
        (
            VLLMLLM,
            "/v1/completions",
            {
                "model": "g",
                "choices": [{"index": 0, "text": " world", "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3},
            },
            [
                {"model": "g", "choices": [{"index": 0, "text": " wor", "finish_reason": None}]},
                {"model": "g", "choices": [{"index": 0, "text": "ld", "finish_reason": "stop"}]},
            ],
        ),
    ],
)
async def test_llms(
    router: respx.MockRouter, cls: Any, path: str, body: dict[str, Any], stream_events: list[Any]
) -> None:
    done = cls is VLLMLLM
    router.post(f"{BASE}{path}").mock(
        side_effect=lambda request: (
            httpx.Response(
                200, content=sse(*stream_events, done=done), headers={"content-type": "text/event-stream"}
            )
            if json.loads(request.content).get("stream")
            else httpx.Response(200, json=body)
        )
    )
    llm = cls(base_url=BASE, model="m", max_tokens=4)
    assert llm.invoke("Hello") == " world"
    assert await llm.ainvoke("Hello") == " world"
    result = await llm.agenerate(["a", "b"])
    assert [g[0].text for g in result.generations] == [" world", " world"]
    assert result.llm_output["token_usage"]["total_tokens"] == 6
    assert result.generations[0][0].generation_info["finish_reason"] == "stop"
    assert list(llm.stream("Hello")) == [" wor", "ld", ""]
    assert [p async for p in llm.astream("Hello")] == [" wor", "ld", ""]
    llm.invoke("Hello", response_format=Joke)
    sent = body_of(router)
    assert "json_schema" in sent or "structured_outputs" in sent
