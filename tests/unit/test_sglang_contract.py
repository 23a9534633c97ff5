"""SGLang contract: every request body ``SGLangClient`` builds is validated against SGLang's own request
models from the released ``sglang==0.5.23`` wheel (``tests/data/sglang/``, built by
``scripts/sglang_schemas.py``), strictly: a field SGLang would silently ignore fails the test too."""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine_clients import Grammar
from engine_clients import InvalidRequestError
from engine_clients import JsonObject
from engine_clients import JsonSchema
from engine_clients import Regex
from engine_clients import SGLangClient
from engine_clients import Tool
from engine_clients.dialects.openai_compat import COMMON_CHAT_PARAMS
from engine_clients.dialects.sglang import _CHAT_EXTRAS
from engine_clients.dialects.sglang import _SAMPLING
from engine_clients.dialects.sglang import _TOP_LEVEL
from engine_clients.dialects.sglang import SGLangDialect
from tests.support.sglang_contract import MODELS
from tests.support.sglang_contract import errors
from tests.support.sglang_contract import properties
from tests.support.sglang_contract import schema
from tests.support.sglang_contract import validate

URL = "http://sglang.test:30000"
WEATHER = Tool(
    "get_weather",
    "Weather in a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
CLOCK = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
ALL_CHAT_SAMPLING: dict[str, Any] = {
    "max_tokens": 32,
    "temperature": 0.7,
    "top_p": 0.9,
    "seed": 7,
    "stop": ["\n\n"],
    "frequency_penalty": 0.1,
    "presence_penalty": 0.2,
    "logprobs": True,
    "top_logprobs": 2,
    "top_k": 20,
    "min_p": 0.05,
    "min_tokens": 1,
    "repetition_penalty": 1.1,
    "stop_token_ids": [2],
    "stop_regex": "\\d{5}",
    "ignore_eos": False,
    "no_stop_trim": True,
    "skip_special_tokens": True,
    "logit_bias": {"13": -1.0},
    "parallel_tool_calls": False,
    "continue_final_message": False,
    "separate_reasoning": True,
    "stream_reasoning": False,
    "lora_path": "sql-adapter",
    "rid": "req-1",
    "priority": 1,
}
ALL_GENERATE_SAMPLING: dict[str, Any] = {
    "max_tokens": 16,
    "temperature": 0.0,
    "top_p": 1.0,
    "top_k": 40,
    "min_p": 0.1,
    "seed": 3,
    "stop": "END",
    "stop_token_ids": [2, 3],
    "stop_regex": ["\\.$"],
    "frequency_penalty": 0.5,
    "presence_penalty": -0.5,
    "repetition_penalty": 1.2,
    "min_tokens": 2,
    "ignore_eos": True,
    "skip_special_tokens": False,
    "spaces_between_special_tokens": True,
    "no_stop_trim": False,
    "logit_bias": {"42": 2.0},
    "logprobs": True,
    "top_logprobs": 3,
    "lora_path": "sql-adapter",
    "rid": "gen-1",
    "priority": 0,
    "session_id": "s-1",
}


@pytest.fixture(scope="module")
def client() -> SGLangClient:
    return SGLangClient(URL, model="qwen3-8b")


def chat_body(client: SGLangClient, *args: Any, **kwargs: Any) -> dict[str, Any]:
    body: dict[str, Any] = client.build_chat(*args, **kwargs).json
    validate("ChatCompletionRequest", body)
    return body


def generate_body(client: SGLangClient, *args: Any, **kwargs: Any) -> dict[str, Any]:
    request = client.build_generate(*args, **kwargs)
    assert (request.method, request.path) == ("POST", "/generate")
    validate("GenerateReqInput", request.json)
    return dict(request.json)


# ---- the schemas themselves ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_schemas_load_and_check_themselves(name: str) -> None:
    Draft = __import__("jsonschema").Draft202012Validator
    Draft.check_schema(schema(name))


def test_the_strict_check_catches_what_sglang_would_drop_or_refuse() -> None:
    assert errors("ChatCompletionRequest", {"messages": [], "max_token": 5})  # misspelt: ignored by SGLang
    assert not errors("ChatCompletionRequest", {"messages": [], "max_token": 5}, strict=False)
    gen = {"text": "hi", "sampling_params": {"max_tokens": 5}}  # the /generate gate answers 400
    assert errors("GenerateReqInput", gen, strict=False)
    assert errors("GenerateReqInput", {"text": "hi", "sampling_params": {"json_schema": {"type": "object"}}})
    both = {"text": "hi", "sampling_params": {"regex": "a", "ebnf": "root ::= 'a'"}}
    assert errors("GenerateReqInput", both)  # verify(): only one constraint
    assert errors("GenerateReqInput", {"text": "hi", "sampling_params": {"top_p": 0}})  # verify(): (0, 1]
    assert errors("V1RerankReqInput", {"query": "q", "documents": ["a"], "model": "m"})


def test_every_name_the_dialect_maps_is_a_field_of_sglang() -> None:
    chat = properties("ChatCompletionRequest")
    assert {v for k, v in {**COMMON_CHAT_PARAMS, **_CHAT_EXTRAS}.items()} <= chat
    assert set(SGLangDialect.chat_params.values()) <= chat
    assert set(_SAMPLING.values()) <= properties("GenerateReqInput", "SamplingParams")
    assert set(_TOP_LEVEL.values()) | {"text", "stream", "return_text_in_logprobs"} <= properties(
        "GenerateReqInput"
    )


# ---- chat ------------------------------------------------------------------------------------------------


def test_chat_with_every_sampling_parameter(client: SGLangClient) -> None:
    body = chat_body(client, "Hi", **ALL_CHAT_SAMPLING)
    assert body["max_completion_tokens"] == 32 and "max_tokens" not in body  # max_tokens is deprecated
    assert body["model"] == "qwen3-8b" and body["stop_regex"] == "\\d{5}"


def test_chat_stream(client: SGLangClient) -> None:
    body = chat_body(client, "Hi", stream=True, max_tokens=8)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    "choice",
    [None, "auto", "none", "required", "get_weather", {"type": "function", "function": {"name": "get_time"}}],
)
@pytest.mark.parametrize("stream", [False, True])
def test_chat_tools_with_every_tool_choice(client: SGLangClient, choice: Any, stream: bool) -> None:
    tools = [WEATHER, CLOCK, Tool("strict_tool", None, {"type": "object", "properties": {}}, strict=True)]
    body = chat_body(client, "Weather?", tools=tools, tool_choice=choice, stream=stream)
    assert [t["function"]["name"] for t in body["tools"]] == ["get_weather", "get_time", "strict_tool"]
    if isinstance(choice, str) and choice not in ("auto", "none", "required"):
        assert body["tool_choice"] == {"type": "function", "function": {"name": choice}}


def test_chat_history_with_reasoning_tool_calls_and_images(client: SGLangClient) -> None:
    image = "data:image/png;base64,iVBORw0KGgo="
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": image}}]},
        {
            "role": "assistant",
            "content": "",
            "reasoning": "I should call the tool.",
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "user", "content": "Thanks"},
    ]  # fmt: skip
    body = chat_body(client, messages, tools=[WEATHER])
    assert body["messages"][2]["reasoning_content"] == "I should call the tool."  # the field SGLang reads


@pytest.mark.parametrize(
    ("fmt", "where"),
    [
        (JsonSchema(SCHEMA, "person"), "response_format"),
        (JsonSchema(SCHEMA, "person", strict=True), "response_format"),
        (JsonObject(), "response_format"),
        (Regex(r"\d{3}-\d{4}"), "regex"),
        (Grammar('root ::= "yes" | "no"'), "ebnf"),
        (SCHEMA, "response_format"),
    ],
)
def test_chat_structured_output(client: SGLangClient, fmt: Any, where: str) -> None:
    body = chat_body(client, "Answer", response_format=fmt)
    assert where in body
    if where == "regex":
        assert body["regex"] == r"\d{3}-\d{4}" and "response_format" not in body


@pytest.mark.parametrize(
    ("kwargs", "expect"),
    [
        ({"thinking": True}, {"chat_template_kwargs": {"enable_thinking": True, "thinking": True}}),
        ({"thinking": False}, {"chat_template_kwargs": {"enable_thinking": False, "thinking": False}}),
        ({"reasoning_effort": "low"}, {"reasoning_effort": "low"}),
        ({"reasoning_effort": "none"}, {"reasoning_effort": "none"}),
        (
            {"thinking": True, "extra_body": {"chat_template_kwargs": {"custom": 1}}},
            {"chat_template_kwargs": {"enable_thinking": True, "thinking": True, "custom": 1}},
        ),
    ],
)
def test_chat_thinking_controls(client: SGLangClient, kwargs: dict[str, Any], expect: dict[str, Any]) -> None:
    body = chat_body(client, "Think", **kwargs)
    assert {k: body[k] for k in expect} == expect


def test_chat_refusals(client: SGLangClient) -> None:
    with pytest.raises(InvalidRequestError, match="thinking_budget"):
        client.build_chat("Hi", thinking_budget=64)  # ChatCompletionRequest has no budget field
    with pytest.raises(InvalidRequestError, match="typical_p"):
        client.build_chat("Hi", typical_p=0.5)
    with pytest.raises(InvalidRequestError, match="refuses"):
        client.build_chat("Hi", tools=[WEATHER], tool_choice="required", response_format=SCHEMA)
    with pytest.raises(InvalidRequestError):
        client.build_chat("Hi", tools=[WEATHER], tool_choice="get_weather", response_format=Regex("a"))
    chat_body(client, "Hi", tools=[WEATHER], tool_choice="auto", response_format=SCHEMA)  # SGLang warns only


# ---- native /generate ------------------------------------------------------------------------------------


def test_generate_with_every_parameter(client: SGLangClient) -> None:
    body = generate_body(client, "Once upon a time", **ALL_GENERATE_SAMPLING)
    sp = body["sampling_params"]
    assert sp["max_new_tokens"] == 16 and sp["sampling_seed"] == 3 and sp["min_new_tokens"] == 2
    assert body["return_logprob"] is True and body["top_logprobs_num"] == 3
    assert body["return_text_in_logprobs"] is True and body["text"] == "Once upon a time"
    assert "model" not in body  # GenerateReqInput has no model field


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("fmt", "key"),
    [
        (JsonSchema(SCHEMA), "json_schema"),
        (JsonObject(), "json_schema"),
        (Regex("[a-z]+"), "regex"),
        (Grammar('root ::= "a"'), "ebnf"),
    ],
)
def test_generate_structured_output(client: SGLangClient, fmt: Any, key: str, stream: bool) -> None:
    body = generate_body(client, "Name:", response_format=fmt, stream=stream, max_tokens=8)
    value = body["sampling_params"][key]
    assert isinstance(value, str)  # json_schema is a JSON string inside sampling_params
    if isinstance(fmt, JsonSchema):
        assert json.loads(value) == SCHEMA
    assert body.get("stream", False) is stream


def test_generate_lora_and_extra_body(client: SGLangClient) -> None:
    body = generate_body(
        client, "Hi", model="qwen3-8b:sql-adapter", extra_body={"sampling_params": {"n": 1}, "return_hidden_states": False}
    )  # fmt: skip
    assert body["lora_path"] == "sql-adapter" and body["sampling_params"] == {"n": 1}


def test_generate_refusals(client: SGLangClient) -> None:
    with pytest.raises(InvalidRequestError, match="typical_p"):
        client.build_generate("Hi", typical_p=0.5)
    with pytest.raises(InvalidRequestError, match="chat route"):
        client.build_generate("Hi", images=["data:image/png;base64,iVBORw0KGgo="])


# ---- embeddings, rerank, tokenize ------------------------------------------------------------------------


def test_embed_body() -> None:
    dialect = SGLangDialect("bge-m3")
    request = dialect.build_embed(["a", "b"], None, False, {})
    assert request.path == "/v1/embeddings"
    validate("EmbeddingRequest", request.json)
    with pytest.raises(InvalidRequestError, match="truncat"):
        dialect.build_embed(["a"], None, True, {})  # EmbeddingRequest has no truncation field


@pytest.mark.parametrize("top_n", [None, 1, 3])
def test_rerank_body(top_n: int | None) -> None:
    request = SGLangDialect("bge-reranker").build_rerank(
        "q", ["a", "b", "c"], top_n, "bge-reranker", False, {}
    )
    assert request.path == "/v1/rerank" and "model" not in request.json
    validate("V1RerankReqInput", request.json)


def test_tokenize_body() -> None:
    request = SGLangDialect("m").build_tokenize("hello", False)
    assert request.path == "/v1/tokenize"
    validate("TokenizeRequest", request.json)


def test_adapter_load_and_unload_bodies() -> None:
    dialect = SGLangDialect("qwen")
    load = dialect.build_load_adapter("sql", "/adapters/sql")
    assert (load.method, load.path) == ("POST", "/load_lora_adapter")
    validate("LoadLoRAAdapterReqInput", load.json)
    unload = dialect.build_unload_adapter("sql")
    assert (unload.method, unload.path) == ("POST", "/unload_lora_adapter")
    validate("UnloadLoRAAdapterReqInput", unload.json)
    assert errors("LoadLoRAAdapterReqInput", {"lora_name": "sql"})  # lora_path is required
