"""Smoke tests of the provisioned engines and scripted models, with plain httpx (not the package's client)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from engine_clients.testing import DEFAULT_CONTEXT
from engine_clients.testing import EngineServer

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
        },
    },
}
PERSON_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}
PERSON_FORMAT = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON_SCHEMA}}


def _chat(server: EngineServer, **extra: Any) -> dict[str, Any]:
    body = {
        "model": server.model,
        "messages": [{"role": "user", "content": "Say hello."}],
        "temperature": 0,
        "max_tokens": 64,
        **extra,
    }
    url = f"{server.base_url}/v1/chat/completions"
    response = httpx.post(url, json=body, headers=server.headers, timeout=60)
    assert response.status_code == 200, response.text
    choice: dict[str, Any] = response.json()["choices"][0]
    return choice


def _tool_round_trip(server: EngineServer) -> dict[str, Any]:
    """A conversation with an assistant tool call and its result: exercises the chat template's tool parts."""
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "a"}'},
    }
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in a?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    return _chat(server, messages=messages, tools=[WEATHER_TOOL])


def _assert_person(text: str) -> None:
    data = json.loads(text)
    assert isinstance(data["name"], str)
    assert isinstance(data["age"], int)


# --- llama-server -------------------------------------------------------------------------------------------


def test_llama_health(llama_server: EngineServer) -> None:
    response = httpx.get(f"{llama_server.base_url}/health", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_llama_plain_chat(llama_server: EngineServer) -> None:
    choice = _chat(llama_server)
    assert choice["message"]["content"].strip() == "Hello world."
    assert choice["finish_reason"] == "stop"


def test_llama_tool_choice_required(llama_server: EngineServer) -> None:
    choice = _chat(llama_server, tools=[WEATHER_TOOL], tool_choice="required")
    assert choice["finish_reason"] == "tool_calls"
    calls = choice["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["get_weather"]
    arguments = json.loads(calls[0]["function"]["arguments"])
    assert isinstance(arguments["city"], str)
    assert isinstance(arguments["days"], int)


def test_llama_tool_result_round_trip(llama_server: EngineServer) -> None:
    choice = _tool_round_trip(llama_server)
    assert choice["message"]["content"].strip() == "Hello world."
    assert choice["finish_reason"] == "stop"


def test_llama_json_schema(llama_server: EngineServer) -> None:
    choice = _chat(llama_server, response_format=PERSON_FORMAT)
    _assert_person(choice["message"]["content"])


def test_llama_api_key(llama_server_keyed: EngineServer) -> None:
    url = f"{llama_server_keyed.base_url}/v1/chat/completions"
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    assert httpx.post(url, json=body, timeout=30).status_code == 401
    assert llama_server_keyed.api_key == "test-secret-key"
    choice = _chat(llama_server_keyed)
    assert choice["message"]["content"].strip() == "Hello world."


# --- vLLM ---------------------------------------------------------------------------------------------------


def test_vllm_plain_chat(vllm_server: EngineServer) -> None:
    choice = _chat(vllm_server)
    assert choice["message"]["content"] == " Hello world."
    assert choice["finish_reason"] == "stop"


def test_vllm_models_has_max_model_len(vllm_server: EngineServer) -> None:
    response = httpx.get(f"{vllm_server.base_url}/v1/models", timeout=10)
    assert response.status_code == 200
    (model,) = response.json()["data"]
    assert model["id"] == vllm_server.model
    assert model["max_model_len"] == DEFAULT_CONTEXT == 8192


def test_vllm_tool_choice_required(vllm_server: EngineServer) -> None:
    choice = _chat(vllm_server, tools=[WEATHER_TOOL], tool_choice="required")
    assert choice["finish_reason"] == "tool_calls"
    calls = choice["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["get_weather"]
    assert calls[0]["id"].startswith("chatcmpl-tool-")
    # vLLM 0.32 does not pin non-strict tools' arguments to their schema; the scripted model writes an object.
    assert isinstance(json.loads(calls[0]["function"]["arguments"]), dict)


def test_vllm_strict_tool_arguments_follow_schema(vllm_server: EngineServer) -> None:
    strict_tool = {**WEATHER_TOOL, "function": {**WEATHER_TOOL["function"], "strict": True}}
    choice = _chat(vllm_server, tools=[strict_tool], tool_choice="required")
    (call,) = choice["message"]["tool_calls"]
    arguments = json.loads(call["function"]["arguments"])
    assert isinstance(arguments["city"], str)
    assert isinstance(arguments["days"], int)


def test_vllm_tool_result_round_trip(vllm_server: EngineServer) -> None:
    choice = _tool_round_trip(vllm_server)
    assert choice["message"]["content"] == " Hello world."
    assert choice["finish_reason"] == "stop"


def test_vllm_json_schema(vllm_server: EngineServer) -> None:
    choice = _chat(vllm_server, response_format=PERSON_FORMAT)
    _assert_person(choice["message"]["content"])


@pytest.mark.parametrize("path", ["/health", "/version"])
def test_vllm_service_routes(vllm_server: EngineServer, path: str) -> None:
    assert httpx.get(f"{vllm_server.base_url}{path}", timeout=10).status_code == 200
