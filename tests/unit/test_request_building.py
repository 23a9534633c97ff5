"""Every parameter a user sets reaches the wire, under the name and shape each engine reads."""

from typing import Any

import pydantic
import pytest

from engine_clients import Grammar
from engine_clients import InvalidRequestError
from engine_clients import JsonObject
from engine_clients import JsonSchema
from engine_clients import LlamaCppClient
from engine_clients import Regex
from engine_clients import TGIClient
from engine_clients import VLLMClient

TGI = TGIClient("http://tgi.test")
VLLM = VLLMClient("http://vllm.test")
LLAMA = LlamaCppClient("http://llama.test")

COMMON_CHAT = [
    ("max_tokens", 7, "max_tokens", 7),
    ("temperature", 0.3, "temperature", 0.3),
    ("top_p", 0.9, "top_p", 0.9),
    ("seed", 42, "seed", 42),
    ("stop", "END", "stop", ["END"]),
    ("stop", ["a", "b"], "stop", ["a", "b"]),
    ("frequency_penalty", 0.5, "frequency_penalty", 0.5),
    ("presence_penalty", 0.25, "presence_penalty", 0.25),
    ("logprobs", True, "logprobs", True),
    ("top_logprobs", 3, "top_logprobs", 3),
]
CHAT_CASES: list[tuple[Any, str, Any, str, Any]] = [
    *[(TGI, *c) for c in COMMON_CHAT],
    (TGI, "tool_prompt", "Use tools:", "tool_prompt", "Use tools:"),
    *[(VLLM, *c) for c in COMMON_CHAT],
    (VLLM, "top_k", 5, "top_k", 5),
    (VLLM, "min_p", 0.1, "min_p", 0.1),
    (VLLM, "repetition_penalty", 1.1, "repetition_penalty", 1.1),
    (VLLM, "min_tokens", 2, "min_tokens", 2),
    (VLLM, "ignore_eos", True, "ignore_eos", True),
    (VLLM, "structured_outputs", {"choice": ["a", "b"]}, "structured_outputs", {"choice": ["a", "b"]}),
    *[(LLAMA, *c) for c in COMMON_CHAT],
    (LLAMA, "top_k", 5, "top_k", 5),
    (LLAMA, "min_p", 0.1, "min_p", 0.1),
    (LLAMA, "typical_p", 0.8, "typical_p", 0.8),
    (LLAMA, "repetition_penalty", 1.1, "repeat_penalty", 1.1),
    (LLAMA, "n_probs", 2, "n_probs", 2),
    (LLAMA, "cache_prompt", True, "cache_prompt", True),
    (LLAMA, "id_slot", 1, "id_slot", 1),
    (LLAMA, "grammar", 'root ::= "a"', "grammar", 'root ::= "a"'),
    (LLAMA, "json_schema", {"type": "object"}, "json_schema", {"type": "object"}),
]


@pytest.mark.parametrize(("client", "name", "value", "wire", "expected"), CHAT_CASES)
def test_chat_sampling_reaches_the_wire(client: Any, name: str, value: Any, wire: str, expected: Any) -> None:
    body = client.build_chat("hi", **{name: value}).json
    assert body[wire] == expected


GENERATE_CASES: list[tuple[Any, str, Any, str, Any]] = [
    (TGI, "max_tokens", 7, "parameters.max_new_tokens", 7),
    (TGI, "temperature", 0.5, "parameters.temperature", 0.5),
    (TGI, "top_p", 0.9, "parameters.top_p", 0.9),
    (TGI, "top_k", 10, "parameters.top_k", 10),
    (TGI, "seed", 3, "parameters.seed", 3),
    (TGI, "stop", "x", "parameters.stop", ["x"]),
    (TGI, "repetition_penalty", 1.2, "parameters.repetition_penalty", 1.2),
    (TGI, "frequency_penalty", 0.1, "parameters.frequency_penalty", 0.1),
    (TGI, "typical_p", 0.9, "parameters.typical_p", 0.9),
    (TGI, "truncate", 5, "parameters.truncate", 5),
    (TGI, "watermark", True, "parameters.watermark", True),
    (TGI, "decoder_input_details", True, "parameters.decoder_input_details", True),
    (TGI, "top_n_tokens", 2, "parameters.top_n_tokens", 2),
    (TGI, "top_logprobs", 2, "parameters.top_n_tokens", 2),
    (TGI, "grammar", {"type": "regex", "value": "a+"}, "parameters.grammar", {"type": "regex", "value": "a+"}),
    (TGI, "do_sample", True, "parameters.do_sample", True),
    (TGI, "return_full_text", True, "parameters.return_full_text", True),
    (TGI, "adapter_id", "lora1", "parameters.adapter_id", "lora1"),
    (VLLM, "max_tokens", 7, "max_tokens", 7),
    (VLLM, "temperature", 0.5, "temperature", 0.5),
    (VLLM, "top_k", 4, "top_k", 4),
    (VLLM, "seed", 1, "seed", 1),
    (VLLM, "stop", "x", "stop", ["x"]),
    (VLLM, "min_p", 0.2, "min_p", 0.2),
    (VLLM, "repetition_penalty", 1.3, "repetition_penalty", 1.3),
    (VLLM, "presence_penalty", 0.3, "presence_penalty", 0.3),
    (VLLM, "logprobs", True, "logprobs", 0),
    (VLLM, "top_logprobs", 4, "logprobs", 4),
    (LLAMA, "max_tokens", 7, "n_predict", 7),
    (LLAMA, "temperature", 0.5, "temperature", 0.5),
    (LLAMA, "top_k", 4, "top_k", 4),
    (LLAMA, "top_p", 0.8, "top_p", 0.8),
    (LLAMA, "min_p", 0.05, "min_p", 0.05),
    (LLAMA, "seed", 1, "seed", 1),
    (LLAMA, "stop", "x", "stop", ["x"]),
    (LLAMA, "repetition_penalty", 1.3, "repeat_penalty", 1.3),
    (LLAMA, "frequency_penalty", 0.2, "frequency_penalty", 0.2),
    (LLAMA, "presence_penalty", 0.2, "presence_penalty", 0.2),
    (LLAMA, "logprobs", True, "n_probs", 1),
    (LLAMA, "top_logprobs", 3, "n_probs", 3),
    (LLAMA, "n_probs", 2, "n_probs", 2),
    (LLAMA, "cache_prompt", False, "cache_prompt", False),
    (LLAMA, "id_slot", 0, "id_slot", 0),
    (LLAMA, "grammar", 'root ::= "a"', "grammar", 'root ::= "a"'),
    (LLAMA, "json_schema", {"type": "object"}, "json_schema", {"type": "object"}),
]


def _get(body: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        body = body[part]
    return body


@pytest.mark.parametrize(("client", "name", "value", "wire", "expected"), GENERATE_CASES)
def test_generate_sampling_reaches_the_wire(client: Any, name: str, value: Any, wire: str, expected: Any) -> None:
    assert _get(client.build_generate("hi", **{name: value}).json, wire) == expected


def test_native_routes() -> None:
    assert TGI.build_generate("x").path == "/generate"
    assert TGI.build_generate("x", stream=True).path == "/generate_stream"
    assert VLLM.build_generate("x").path == "/v1/completions"
    assert LLAMA.build_generate("x").path == "/completion"
    for c in (TGI, VLLM, LLAMA):
        assert c.build_chat("x").path == "/v1/chat/completions"


def test_tgi_temperature_zero_means_greedy() -> None:
    params = TGI.build_generate("x", temperature=0).json["parameters"]
    assert "temperature" not in params and params["do_sample"] is False


@pytest.mark.parametrize(
    ("client", "name"),
    [(TGI, "top_k"), (TGI, "min_p"), (TGI, "bogus"), (VLLM, "typical_p"), (LLAMA, "truncate")],
)
def test_unsupported_parameter_is_refused_before_sending(client: Any, name: str) -> None:
    with pytest.raises(InvalidRequestError, match=name):
        client.build_chat("hi", **{name: 1})


def test_extra_body_passes_through() -> None:
    assert VLLM.build_chat("hi", extra_body={"chat_template_kwargs": {"x": 1}}).json["chat_template_kwargs"] == {"x": 1}
    assert TGI.build_generate("hi", extra_body={"parameters": {"foo": 1}}).json["parameters"]["foo"] == 1


def test_streams_ask_for_usage() -> None:
    assert VLLM.build_chat("hi", stream=True).json["stream_options"] == {"include_usage": True}
    assert TGI.build_chat("hi", stream=True).json["stream_options"] == {"include_usage": True}
    # llama-server 11434 sends no usage in streams unless asked (ENGINES.md's Feb-2025 build always did)
    assert LLAMA.build_chat("hi", stream=True).json["stream_options"] == {"include_usage": True}


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}


@pytest.mark.parametrize("choice", ["auto", "none", "required"])
def test_string_tool_choices_pass_through(choice: str) -> None:
    for c in (TGI, VLLM, LLAMA):
        assert c.build_chat("hi", tools=[WEATHER, TIME], tool_choice=choice).json["tool_choice"] == choice


@pytest.mark.parametrize("choice", ["any", True])
def test_any_and_true_mean_required(choice: Any) -> None:
    assert VLLM.build_chat("hi", tools=[WEATHER], tool_choice=choice).json["tool_choice"] == "required"


def test_named_tool_choice_per_engine() -> None:
    named = {"type": "function", "function": {"name": "get_time"}}
    vllm = VLLM.build_chat("hi", tools=[WEATHER, TIME], tool_choice="get_time").json
    assert vllm["tool_choice"] == named and len(vllm["tools"]) == 2
    tgi = TGI.build_chat("hi", tools=[WEATHER, TIME], tool_choice=named).json
    assert tgi["tool_choice"] == {"function": {"name": "get_time"}}
    # llama-server ignores named choices: only that tool, and "required"
    llama = LLAMA.build_chat("hi", tools=[WEATHER, TIME], tool_choice="get_time").json
    assert llama["tool_choice"] == "required"
    assert [t["function"]["name"] for t in llama["tools"]] == ["get_time"]


def test_tgi_tool_definitions_use_the_spec_arguments_key() -> None:
    fn = TGI.build_chat("hi", tools=[WEATHER]).json["tools"][0]["function"]
    assert fn["arguments"] == WEATHER["function"]["parameters"] and "parameters" not in fn


def test_tool_choice_naming_an_unknown_tool_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="nope"):
        VLLM.build_chat("hi", tools=[WEATHER], tool_choice="nope")


def test_tool_choice_without_tools_is_refused() -> None:
    with pytest.raises(InvalidRequestError):
        VLLM.build_chat("hi", tool_choice="required")


class Person(pydantic.BaseModel):
    name: str
    age: int


class Team(pydantic.BaseModel):
    lead: Person
    members: list[Person]


SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}


def test_structured_output_per_engine_chat() -> None:
    assert VLLM.build_chat("hi", response_format=SCHEMA).json["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": SCHEMA},
    }
    assert LLAMA.build_chat("hi", response_format=JsonSchema(SCHEMA, strict=True)).json["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": SCHEMA, "strict": True},
    }
    assert TGI.build_chat("hi", response_format=SCHEMA).json["response_format"] == {"type": "json", "value": SCHEMA}
    assert TGI.build_chat("hi", response_format=Regex("a+")).json["response_format"] == {
        "type": "regex",
        "value": "a+",
    }
    assert VLLM.build_chat("hi", response_format=Regex("a+")).json["structured_outputs"] == {"regex": "a+"}
    assert LLAMA.build_chat("hi", response_format=Grammar('root ::= "a"')).json["grammar"] == 'root ::= "a"'
    assert VLLM.build_chat("hi", response_format=JsonObject()).json["response_format"] == {"type": "json_object"}


def test_structured_output_per_engine_generate() -> None:
    assert VLLM.build_generate("x", response_format=SCHEMA).json["structured_outputs"] == {"json": SCHEMA}
    assert LLAMA.build_generate("x", response_format=SCHEMA).json["json_schema"] == SCHEMA
    assert TGI.build_generate("x", response_format=SCHEMA).json["parameters"]["grammar"] == {
        "type": "json",
        "value": SCHEMA,
    }


def test_never_sends_removed_guided_fields() -> None:
    for fmt in (SCHEMA, Regex("a"), Grammar("root ::= x"), JsonObject()):
        for body in (VLLM.build_chat("hi", response_format=fmt).json, VLLM.build_generate("x", response_format=fmt).json):
            assert not any(k.startswith("guided_") for k in body)


def test_pydantic_class_and_openai_dict_are_accepted() -> None:
    body = VLLM.build_chat("hi", response_format=Person).json
    assert body["response_format"]["json_schema"]["name"] == "Person"
    assert body["response_format"]["json_schema"]["schema"]["required"] == ["name", "age"]
    openai_form = {"type": "json_schema", "json_schema": {"name": "p", "schema": SCHEMA}}
    assert LLAMA.build_chat("hi", response_format=openai_form).json["response_format"]["json_schema"]["schema"] == SCHEMA


def test_tgi_inlines_defs() -> None:
    value = TGI.build_chat("hi", response_format=Team).json["response_format"]["value"]
    assert "$defs" not in value and "$ref" not in str(value)
    assert value["properties"]["lead"]["properties"]["age"]["type"] == "integer"
    assert value["properties"]["members"]["items"]["required"] == ["name", "age"]


def test_tgi_refuses_recursive_schema_before_sending() -> None:
    recursive = {
        "type": "object",
        "properties": {"child": {"$ref": "#/$defs/Node"}},
        "$defs": {"Node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/Node"}}}},
    }
    with pytest.raises(InvalidRequestError, match="recursive"):
        TGI.build_chat("hi", response_format=recursive)


def test_tgi_refuses_tools_with_response_format() -> None:
    with pytest.raises(InvalidRequestError):
        TGI.build_chat("hi", tools=[WEATHER], response_format=SCHEMA)


def test_unsupported_format_per_engine() -> None:
    with pytest.raises(InvalidRequestError):
        LLAMA.build_chat("hi", response_format=Regex("a"))
    with pytest.raises(InvalidRequestError):
        TGI.build_chat("hi", response_format=Grammar("root ::= x"))


def test_messages_round_trip_tool_calls_and_results() -> None:
    messages = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "a"}}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    vllm = VLLM.build_chat(messages).json["messages"]
    assert vllm[1]["tool_calls"][0]["function"]["arguments"] == '{"city": "a"}'
    assert vllm[2] == {"role": "tool", "tool_call_id": "c1", "content": "sunny"}
    tgi = TGI.build_chat(messages).json["messages"]
    assert "content" not in tgi[1]  # TGI's message is content XOR tool_calls


def test_model_field() -> None:
    assert VLLMClient("http://x", model="m").build_chat("hi").json["model"] == "m"
    # TGI reads model as a LoRA adapter id: only sent when asked per request
    assert "model" not in TGIClient("http://x", model="m").build_chat("hi").json
    assert TGI.build_chat("hi", model="adapter").json["model"] == "adapter"


def test_tool_strict_flag() -> None:
    strict_tool = {"type": "function", "function": {**WEATHER["function"], "strict": True}}
    assert VLLM.build_chat("hi", tools=[strict_tool]).json["tools"][0]["function"]["strict"] is True
    assert LLAMA.build_chat("hi", tools=[strict_tool]).json["tools"][0]["function"]["strict"] is True
    assert "strict" not in TGI.build_chat("hi", tools=[strict_tool]).json["tools"][0]["function"]  # not in TGI's spec
    assert "strict" not in VLLM.build_chat("hi", tools=[WEATHER]).json["tools"][0]["function"]


def test_tgi_assistant_text_with_tool_calls_keeps_the_calls() -> None:
    call = {"id": "0", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    msg = TGI.build_chat([{"role": "user", "content": "x"}, {"role": "assistant", "content": "Let me check.", "tool_calls": [call]}]).json["messages"][1]
    assert msg == {"role": "assistant", "tool_calls": [call]}
