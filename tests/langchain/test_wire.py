"""Every typed sampling field of every class reaches the wire under the engine's own name (respx captures
the request), plus model_kwargs, extra_body, per-call overrides, headers and refusals before sending."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx
from langchain_core.exceptions import ModelInvalidRequestError
from langchain_selfhosted import TGILLM
from langchain_selfhosted import VLLMLLM
from langchain_selfhosted import ChatLlamaCpp
from langchain_selfhosted import ChatTGI
from langchain_selfhosted import ChatVLLM
from langchain_selfhosted import LlamaCppLLM

from engine_clients import InvalidRequestError
from tests.support.openapi import validate_request

BASE = "http://engine.test"
CHAT_ANSWER = {
    "id": "c1",
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}
ANSWERS: dict[str, Any] = {
    "/v1/chat/completions": CHAT_ANSWER,
    "/v1/completions": {
        "id": "c2",
        "model": "m",
        "choices": [{"index": 0, "text": "hi", "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    },
    "/completion": {"content": "hi", "stop_type": "eos", "tokens_evaluated": 3, "tokens_predicted": 1},
    "/generate": {
        "generated_text": "hi",
        "details": {"finish_reason": "eos_token", "generated_tokens": 1, "prefill": [], "tokens": []},
    },
}

# Per class: cases of (field values, expected wire fields). Fields whose wire names collide (e.g. TGI's
# top_logprobs and top_n_tokens both become top_n_tokens) are in separate cases.
COMMON = {
    "temperature": 0.5,
    "max_tokens": 7,
    "top_p": 0.9,
    "seed": 11,
    "stop": ["END"],
    "frequency_penalty": 0.25,
    "logprobs": True,
    "top_logprobs": 3,
}
VLLM_FIELDS = {
    **COMMON,
    "presence_penalty": 0.5,
    "top_k": 5,
    "min_p": 0.05,
    "repetition_penalty": 1.1,
    "min_tokens": 2,
    "ignore_eos": True,
    "structured_outputs": {"regex": "[a-z]+"},
}
THINKING = {"thinking": True, "reasoning_effort": "low", "thinking_budget": 64}
#: TGI's chat route has no field for the thinking controls: refused before sending (tested below).
REFUSED = {ChatTGI: set(THINKING)}
CASES: dict[type, tuple[str, list[tuple[dict[str, Any], dict[str, Any]]]]] = {
    ChatTGI: (
        "/v1/chat/completions",
        [
            (
                {**COMMON, "presence_penalty": 0.5, "tool_prompt": "Tools:"},
                {**COMMON, "presence_penalty": 0.5, "tool_prompt": "Tools:"},
            )
        ],
    ),
    ChatVLLM: (
        "/v1/chat/completions",
        [
            (VLLM_FIELDS, VLLM_FIELDS),
            (
                THINKING,
                {
                    "chat_template_kwargs": {"enable_thinking": True},
                    "reasoning_effort": "low",
                    "thinking_token_budget": 64,
                },
            ),
        ],
    ),
    ChatLlamaCpp: (
        "/v1/chat/completions",
        [
            (
                {
                    **COMMON,
                    "presence_penalty": 0.5,
                    "top_k": 5,
                    "min_p": 0.05,
                    "typical_p": 0.8,
                    "repetition_penalty": 1.1,
                    "n_probs": 2,
                    "cache_prompt": True,
                    "id_slot": 1,
                    "grammar": 'root ::= "a"',
                },
                {
                    **COMMON,
                    "presence_penalty": 0.5,
                    "top_k": 5,
                    "min_p": 0.05,
                    "typical_p": 0.8,
                    "repeat_penalty": 1.1,
                    "n_probs": 2,
                    "cache_prompt": True,
                    "id_slot": 1,
                    "grammar": 'root ::= "a"',
                },
            ),
            (
                THINKING,
                {
                    "chat_template_kwargs": {"enable_thinking": True},
                    "reasoning_effort": "low",
                    "thinking_budget_tokens": 64,
                },
            ),
            ({"json_schema": {"type": "object"}}, {"json_schema": {"type": "object"}}),
        ],
    ),
    TGILLM: (
        "/generate",
        [
            (
                {
                    **{k: v for k, v in COMMON.items() if k != "top_logprobs"},
                    "top_k": 5,
                    "repetition_penalty": 1.1,
                    "typical_p": 0.8,
                    "truncate": 100,
                    "watermark": True,
                    "decoder_input_details": True,
                    "top_n_tokens": 2,
                    "do_sample": True,
                    "best_of": 2,
                    "return_full_text": False,
                    "adapter_id": "lora-1",
                    "grammar": {"type": "regex", "value": "[a-z]+"},
                },
                {
                    "parameters": {
                        "details": True,  # token logprobs always come with details: logprobs needs nothing else
                        "temperature": 0.5,
                        "max_new_tokens": 7,
                        "top_p": 0.9,
                        "seed": 11,
                        "stop": ["END"],
                        "frequency_penalty": 0.25,
                        "top_k": 5,
                        "repetition_penalty": 1.1,
                        "typical_p": 0.8,
                        "truncate": 100,
                        "watermark": True,
                        "decoder_input_details": True,
                        "top_n_tokens": 2,
                        "do_sample": True,
                        "best_of": 2,
                        "return_full_text": False,
                        "adapter_id": "lora-1",
                        "grammar": {"type": "regex", "value": "[a-z]+"},
                    }
                },
            ),
            ({"top_logprobs": 4}, {"parameters": {"details": True, "top_n_tokens": 4}}),
        ],
    ),
    VLLMLLM: (
        "/v1/completions",
        [
            (
                {
                    **COMMON,
                    "presence_penalty": 0.5,
                    "top_k": 5,
                    "min_p": 0.05,
                    "repetition_penalty": 1.1,
                    "min_tokens": 2,
                    "ignore_eos": True,
                    "structured_outputs": {"regex": "[a-z]+"},
                },
                {
                    **{k: v for k, v in COMMON.items() if k not in ("logprobs", "top_logprobs")},
                    "logprobs": 3,  # completions take the number of alternatives
                    "presence_penalty": 0.5,
                    "top_k": 5,
                    "min_p": 0.05,
                    "repetition_penalty": 1.1,
                    "min_tokens": 2,
                    "ignore_eos": True,
                    "structured_outputs": {"regex": "[a-z]+"},
                },
            )
        ],
    ),
    LlamaCppLLM: (
        "/completion",
        [
            (
                {
                    **{k: v for k, v in COMMON.items() if k not in ("logprobs", "top_logprobs")},
                    "presence_penalty": 0.5,
                    "top_k": 5,
                    "min_p": 0.05,
                    "typical_p": 0.8,
                    "repetition_penalty": 1.1,
                    "n_probs": 2,
                    "cache_prompt": True,
                    "id_slot": 1,
                    "grammar": 'root ::= "a"',
                },
                {
                    "temperature": 0.5,
                    "n_predict": 7,
                    "top_p": 0.9,
                    "seed": 11,
                    "stop": ["END"],
                    "frequency_penalty": 0.25,
                    "presence_penalty": 0.5,
                    "top_k": 5,
                    "min_p": 0.05,
                    "typical_p": 0.8,
                    "repeat_penalty": 1.1,
                    "n_probs": 2,
                    "cache_prompt": True,
                    "id_slot": 1,
                    "grammar": 'root ::= "a"',
                },
            ),
            ({"logprobs": True, "top_logprobs": 4}, {"n_probs": 4}),
            ({"json_schema": {"type": "object"}}, {"json_schema": {"type": "object"}}),
        ],
    ),
}


# adapter= (engine_clients spells it per engine; adapter_scale is llama.cpp's alone, refused elsewhere)
for _cls, _wire in (
    (ChatTGI, {"model": "sql"}),
    (ChatVLLM, {"model": "sql"}),
    (TGILLM, {"parameters": {"details": True, "adapter_id": "sql"}}),
    (VLLMLLM, {"model": "sql"}),
):
    CASES[_cls][1].append(({"adapter": "sql"}, _wire))
    REFUSED.setdefault(_cls, set()).add("adapter_scale")
for _cls in (ChatLlamaCpp, LlamaCppLLM):
    CASES[_cls][1].append(({"adapter": "sql", "adapter_scale": 0.5}, {"lora": [{"id": 0, "scale": 0.5}]}))
LORA_ADAPTERS = [{"id": 0, "path": "/adapters/sql.gguf", "scale": 0.0, "task_name": "sql"}]


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as r:
        for path, answer in ANSWERS.items():
            r.post(f"{BASE}{path}").mock(return_value=httpx.Response(200, json=answer))
        r.get(f"{BASE}/lora-adapters").mock(return_value=httpx.Response(200, json=LORA_ADAPTERS))
        yield r


def last_body(router: respx.MockRouter) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(router.calls.last.request.content)
    return body


@pytest.mark.parametrize("cls", list(CASES), ids=lambda c: c.__name__)
def test_every_sampling_field_is_tested(cls: Any) -> None:
    tested = {name for fields, _ in CASES[cls][1] for name in fields}
    assert tested | REFUSED.get(cls, set()) == set(cls.sampling_fields())


@pytest.mark.parametrize("field", sorted(THINKING))
def test_tgi_refuses_thinking_controls_before_sending(router: respx.MockRouter, field: str) -> None:
    with pytest.raises(InvalidRequestError, match=field):
        ChatTGI(base_url=BASE, model="m", **{field: THINKING[field]}).invoke("hello")
    assert not router.calls


@pytest.mark.parametrize(
    ("cls", "case"),
    [(cls, i) for cls, (_, cases) in CASES.items() for i in range(len(cases))],
    ids=lambda v: v.__name__ if isinstance(v, type) else str(v),
)
async def test_sampling_fields_reach_the_wire(router: respx.MockRouter, cls: Any, case: int) -> None:
    path, cases = CASES[cls]
    fields, wire = cases[case]
    model = cls(base_url=BASE, model="m", **fields)
    for call in (model.invoke, model.ainvoke):
        result = call("hello")
        if hasattr(result, "__await__"):
            await result
        request = router.calls.last.request
        assert request.url.path == path
        body = last_body(router)
        expected = {**wire}
        if "parameters" in wire:  # TGI /generate nests its parameters
            assert body["parameters"] == wire["parameters"]
            validate_request("/generate", body, strict=True, tgi_compat=False)
        else:
            assert {k: body.get(k) for k in expected} == expected
            unexpected = (
                set(body) - set(expected) - {"messages", "prompt", "model", "stream", "stream_options"}
            )
            assert not unexpected, unexpected
        if cls is ChatTGI:
            validate_request(path, body, strict=True, tgi_compat=False)


@pytest.mark.parametrize("cls", [ChatTGI, ChatVLLM, ChatLlamaCpp, TGILLM, VLLMLLM, LlamaCppLLM])
def test_streams_send_the_same_fields(router: respx.MockRouter, cls: Any) -> None:
    path, cases = CASES[cls]
    fields, wire = cases[0]
    stream_path = "/generate_stream" if path == "/generate" else path
    router.post(f"{BASE}{stream_path}").mock(return_value=httpx.Response(500, json={"error": "stop here"}))
    model = cls(base_url=BASE, model="m", max_retries=0, **fields)
    with pytest.raises(Exception, match="stop here"):
        list(model.stream("hello"))
    body = last_body(router)
    if "parameters" in wire:
        assert body["parameters"] == wire["parameters"]
    else:
        assert {k: body.get(k) for k in wire} == wire


def test_model_kwargs_extra_body_and_call_overrides(router: respx.MockRouter) -> None:
    model = ChatVLLM(
        base_url=BASE,
        model="m",
        temperature=0.1,
        max_tokens=5,
        model_kwargs={"min_p": 0.2, "max_tokens": 6},
        extra_body={"chat_template_kwargs": {"enable_thinking": False}, "priority": 1},
    )
    model.invoke("hello", max_tokens=9, stop=["x"], extra_body={"priority": 2})
    body = last_body(router)
    assert body["temperature"] == 0.1
    assert body["min_p"] == 0.2
    assert body["max_tokens"] == 9  # per call > model_kwargs > field
    assert body["stop"] == ["x"]
    assert body["chat_template_kwargs"] == {"enable_thinking": False} and body["priority"] == 2
    model.bind(temperature=0.7).invoke("hello")
    assert last_body(router)["temperature"] == 0.7
    model.invoke("hello", model="other")
    assert last_body(router)["model"] == "other"


def test_empty_stop_list_sends_no_stop(router: respx.MockRouter) -> None:
    ChatLlamaCpp(base_url=BASE, model="m", stop=[]).invoke("hello")
    assert "stop" not in last_body(router)
    ChatLlamaCpp(base_url=BASE, model="m", stop="END").invoke("hello")
    assert last_body(router)["stop"] == ["END"]


def test_unsupported_parameters_are_refused_before_sending(router: respx.MockRouter) -> None:
    with pytest.raises(InvalidRequestError, match="top_k") as info:
        ChatTGI(base_url=BASE).invoke("hello", top_k=3)  # TGI's chat route has no top_k
    assert isinstance(info.value, ModelInvalidRequestError)
    with pytest.raises(InvalidRequestError, match="bogus"):
        ChatVLLM(base_url=BASE, model="m", model_kwargs={"bogus": 1}).invoke("hello")
    assert not router.calls


def test_api_key_and_headers_are_sent(router: respx.MockRouter) -> None:
    model = ChatVLLM(base_url=BASE, model="m", api_key="sekret", default_headers={"x-team": "a"})
    model.invoke("hello")
    headers = router.calls.last.request.headers
    assert headers["authorization"] == "Bearer sekret"
    assert headers["x-team"] == "a"
