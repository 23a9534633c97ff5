"""Checks of the TGI test data (tests/data/tgi) and the helpers in tests/support that serve it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support import openapi
from tests.support.tgi_recordings import CLIENT_ADDED_KEYS
from tests.support.tgi_recordings import RECORDINGS
from tests.support.tgi_recordings import SNAPSHOTS_DIR
from tests.support.tgi_recordings import WEATHER_TOOLS
from tests.support.tgi_recordings import generate_stream_body
from tests.support.tgi_recordings import generate_stream_events
from tests.support.tgi_recordings import load
from tests.support.tgi_recordings import names
from tests.support.tgi_recordings import sse_body
from tests.support.tgi_recordings import strip_client_keys
from tests.support.tgi_recordings import wire_chunks
from tests.support.tgi_recordings import wire_json
from tests.support.tgi_recordings import wire_root_list

ALL = sorted(RECORDINGS)
GENERATE = [n for n in ALL if RECORDINGS[n]["route"] == "/"]
CLIENT_DUMPED = [n for n in ALL if RECORDINGS[n]["capture"] != "raw"]
FILE_CLIENT_KEYS = {
    "service_tier",
    "function_call",
    "refusal",
    "best_of_sequences",
    "top_tokens",
    "completion_tokens_details",
    "prompt_tokens_details",
}


def bodies(name: str) -> list[dict[str, Any]]:
    body = wire_json(name)
    return body if isinstance(body, list) else [body]


def parse_sse(raw: bytes) -> tuple[list[Any], int]:
    """Independent SSE reader: (data payloads, '[DONE]' kept as a string; number of comment-only events)."""
    text = raw.decode("utf-8")
    assert text.endswith("\n\n")
    events: list[Any] = []
    comments = 0
    for block in text[:-2].split("\n\n"):
        lines = block.split("\n")
        if all(line.startswith(":") for line in lines):
            comments += 1
            continue
        data = "\n".join(line[5:].removeprefix(" ") for line in lines if line.startswith("data:"))
        events.append(data if data == "[DONE]" else json.loads(data))
    return events, comments


def test_every_snapshot_file_is_described() -> None:
    assert names() == ALL
    assert len(ALL) == 31
    assert (SNAPSHOTS_DIR.parent / "README.md").is_file()
    assert openapi.SPEC_PATH.is_file()


def test_spec_has_no_additional_properties_anywhere() -> None:
    # Why strict=True exists: unknown keys pass every schema of this document.
    assert "additionalProperties" not in openapi.SPEC_PATH.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", ALL)
def test_wire_body_matches_response_schema_strictly(name: str) -> None:
    rec = RECORDINGS[name]
    if rec["stream"]:
        for chunk in wire_chunks(name):
            openapi.validate_response(rec["route"], 200, chunk, content_type="text/event-stream", strict=True)
    elif rec["route"] == "/":
        for body in bodies(name):
            openapi.validate_response("/generate", 200, body, strict=True)
            openapi.validate_response("/", 200, [body], content_type="application/json", strict=True)
    else:
        openapi.validate_response(rec["route"], 200, wire_json(name), strict=True)


@pytest.mark.parametrize("name", CLIENT_DUMPED)
def test_unstripped_recording_fails_strict_validation(name: str) -> None:
    rec = RECORDINGS[name]
    raw = load(name)
    items = raw if isinstance(raw, list) else [raw]
    path = "/generate" if rec["route"] == "/" else rec["route"]
    kind = "text/event-stream" if rec["stream"] else None
    with pytest.raises(AssertionError, match=r"top_tokens|does not declare"):
        for item in items:
            openapi.validate_response(path, 200, item, content_type=kind, strict=True)


@pytest.mark.parametrize("name", ALL)
def test_stripped_body_has_no_client_added_keys(name: str) -> None:
    for body in bodies(name):
        assert not FILE_CLIENT_KEYS & set(body) and not FILE_CLIENT_KEYS & set(body.get("details") or {})
        assert not FILE_CLIENT_KEYS & set(body.get("usage") or {})
        for choice in body.get("choices", []):
            assert "usage" not in choice
            message = choice.get("message", choice.get("delta"))
            if message is None:
                continue
            assert not {"name", "function_call", "refusal"} & set(message)
            assert ("content" in message) != ("tool_calls" in message), message
            assert None not in (message.get("content", ""), message.get("tool_calls", []))


@pytest.mark.parametrize("name", ALL)
def test_nulls_that_are_on_the_wire_are_kept(name: str) -> None:
    for body in bodies(name):
        if "details" in body:
            assert "seed" in body["details"]
            continue
        if body["object"] == "chat.completion.chunk":
            assert "usage" in body
        for choice in body["choices"]:
            assert "logprobs" in choice and "finish_reason" in choice
            for call in choice.get("message", {}).get("tool_calls", []):
                assert call["function"]["description"] is None
    if name.endswith("tools_openai"):
        names_seen = [
            c["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] for c in wire_chunks(name)
        ]
        assert names_seen == ["get_current_weather"] + [None] * 16


@pytest.mark.parametrize("name", [n for n in ALL if RECORDINGS[n]["capture"] == "raw"])
def test_raw_recordings_are_untouched(name: str) -> None:
    assert wire_json(name) == load(name)


def test_client_added_keys_are_only_removed_when_null() -> None:
    body = {"service_tier": "default", "choices": [{"delta": {"role": "assistant", "content": "x"}}]}
    assert strip_client_keys(body, "openai") == body
    assert "service_tier" in CLIENT_ADDED_KEYS["openai"]["body"]


@pytest.mark.parametrize("name", ALL)
def test_recordings_table_matches_the_data(name: str) -> None:
    rec = RECORDINGS[name]
    first = bodies(name)[0]
    if rec["route"] == "/":
        assert rec.get("responses", 1) == len(bodies(name))
        for body in bodies(name):
            assert body["generated_text"] == rec["content"]
            assert body["details"]["finish_reason"] == rec["finish_reason"]
            assert body["details"]["generated_tokens"] == rec["generated_tokens"]
            assert body["details"]["seed"] == rec["seed"]
        return
    assert (first["model"], first["system_fingerprint"]) == (rec["model"], rec["system_fingerprint"])
    if rec["stream"]:
        chunks = wire_chunks(name)
        assert len(chunks) == rec["chunks"]
        with_choice = [c["choices"][0] for c in chunks if c["choices"]]
        assert with_choice[-1]["finish_reason"] == rec["finish_reason"]
        assert all(ch["finish_reason"] is None for ch in with_choice[:-1])
        deltas = [ch["delta"] for ch in with_choice]
        usage = [c["usage"] for c in chunks if c.get("usage")]
        assert usage == ([rec["usage"]] if rec["usage"] else [])
        if "tool_call" in rec:
            calls = [d["tool_calls"][0] for d in deltas]
            joined = {"id": calls[0]["id"], "name": calls[0]["function"]["name"]}
            joined["arguments"] = "".join(c["function"]["arguments"] for c in calls)
            assert joined == rec["tool_call"]
        else:
            assert "".join(d["content"] for d in deltas) == rec["content"]
        return
    assert first["usage"] == rec["usage"]
    choices = first["choices"]
    assert {c["finish_reason"] for c in choices} == {rec["finish_reason"]}
    if "choices" in rec:
        assert [(c["index"], c["text"]) for c in choices] == rec["choices"]
    elif rec["route"] == "/v1/completions":
        assert choices[0]["text"] == rec["content"]
    elif "tool_call" in rec:
        call = choices[0]["message"]["tool_calls"][0]
        assert {"id": call["id"], **{k: call["function"][k] for k in ("name", "arguments")}} == rec[
            "tool_call"
        ]
        json.loads(call["function"]["arguments"])
    else:
        assert choices[0]["message"]["content"] == rec["content"]


@pytest.mark.parametrize("name", ALL)
def test_recorded_request_fits_the_request_schema(name: str) -> None:
    rec = RECORDINGS[name]
    openapi.validate_request(rec["route"], rec["request"], strict=True)


@pytest.mark.parametrize(
    ("name", "complaint"),
    [
        (
            "test_completion_prompts/test_flash_llama_completion_single_prompt",
            r"\$\.prompt: .* not of type 'array'",
        ),
        ("test_grammar_response_format_llama/test_grammar_response_format_llama_json", "json_object"),
        ("test_tools_llama/test_flash_llama_grammar_tools_choice_nostream", r"\$\.tool_choice"),
        ("test_tools_llama/test_flash_llama_grammar_tools_nostream", "'arguments' is a required property"),
        ("test_tools_llama/test_flash_llama_tool_reply_response", r"\$\.messages\[2\]\.tool_call_id"),
        ("test_json_schema_constrain/test_json_schema_basic", r"\$\.response_format\.value\.strict"),
    ],
)
def test_spec_gaps_that_tgi_compat_covers(name: str, complaint: str) -> None:
    # TGI answered these requests, yet the document rejects them as written; tgi_compat documents why.
    rec = RECORDINGS[name]
    with pytest.raises(AssertionError, match=complaint):
        openapi.validate_request(rec["route"], rec["request"], strict=True, tgi_compat=False)


def test_strict_rejects_misspelled_fields_that_plain_validation_lets_through() -> None:
    body: dict[str, Any] = {
        "model": "tgi",
        "messages": [{"role": "user", "content": "hi"}],
        "max_token": 5,
        "stream_options": {"include_usge": True},
    }
    openapi.validate_request("/v1/chat/completions", body)  # the document itself cannot see them
    with pytest.raises(AssertionError) as info:
        openapi.validate_request("/v1/chat/completions", body, strict=True)
    assert "$.max_token" in str(info.value) and "$.stream_options.include_usge" in str(info.value)
    tools = [
        {"type": "function", "function": {"name": "f", "descripton": "x", "parameters": {"type": "object"}}}
    ]
    with pytest.raises(AssertionError, match=r"\$\.tools\[0\]\.function\.descripton"):
        openapi.validate_request(
            "/v1/chat/completions", {"messages": body["messages"], "tools": tools}, strict=True
        )
    with pytest.raises(AssertionError, match=r"\$\.parameters\.max_new_token\b"):
        openapi.validate_request(
            "/generate", {"inputs": "x", "parameters": {"max_new_token": 5}}, strict=True
        )
    openapi.validate_request(
        "/v1/chat/completions", body, strict=True, allow_extra={"max_token", "stream_options.include_usge"}
    )


def test_strict_accepts_a_full_valid_chat_request() -> None:
    call = {"name": "get_current_weather", "arguments": '{"location": "Paris"}', "description": None}
    body = {
        "model": "tgi",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "0", "type": "function", "function": call}],
            },
            {"role": "tool", "tool_call_id": "0", "content": "6.7"},
        ],
        "max_tokens": 32,
        "temperature": 0.0,
        "top_p": 0.95,
        "seed": 42,
        "stop": ["\n\n"],
        "stream": True,
        "stream_options": {"include_usage": True},
        "frequency_penalty": 0.1,
        "presence_penalty": 0.1,
        "logprobs": True,
        "top_logprobs": 2,
        "tools": WEATHER_TOOLS,
        "tool_choice": {"type": "function", "function": {"name": "get_current_weather"}},
        "response_format": None,
        "tool_prompt": None,
        "n": None,
        "logit_bias": None,
    }
    openapi.validate_request("/v1/chat/completions", body, strict=True)


def test_plain_validation_rejects_wrong_types_and_values() -> None:
    with pytest.raises(AssertionError, match=r"\$\.stop: 'x' is not of type 'array'"):
        openapi.validate_request("/v1/chat/completions", {"messages": [], "stop": "x"})
    body = wire_json(GENERATE[0])
    body["details"]["finish_reason"] = "stop"  # chat wording; /generate says eos_token
    with pytest.raises(AssertionError, match=r"\$\.details\.finish_reason"):
        openapi.validate_response("/generate", 200, body)
    with pytest.raises(AssertionError, match="'error_type' is a required property"):
        openapi.validate_response("/v1/chat/completions", 422, {"error": "Input validation error"})


@pytest.mark.parametrize("space", [True, False])
@pytest.mark.parametrize("keepalive", [False, True])
@pytest.mark.parametrize("done", [True, False])
def test_sse_body_round_trips(space: bool, keepalive: bool, done: bool) -> None:
    chunks = wire_chunks("test_completion_prompts/test_chat_hfhub_usage")
    raw = sse_body(chunks, done=done, space=space, keepalive=keepalive)
    events, comments = parse_sse(raw)
    assert events == [*chunks, "[DONE]"] if done else chunks
    assert comments == (len(events) - 1 if keepalive else 0)
    assert raw.startswith(b"data: {" if space else b"data:{")
    assert raw.endswith(b"data: [DONE]\n\n" if done and space else b"\n\n")


def test_sse_body_is_compact_utf8_json() -> None:
    chunk = {"a": [1, 2], "t": "°C \u2019"}
    assert sse_body([chunk]) == 'data: {"a":[1,2],"t":"°C \u2019"}\n\ndata: [DONE]\n\n'.encode()
    assert sse_body([], done=False) == b""


@pytest.mark.parametrize("name", GENERATE)
def test_generate_stream_body_from_recording(name: str) -> None:
    response = bodies(name)[0]
    tokens = response["details"]["tokens"]
    events, comments = parse_sse(generate_stream_body(response, input_length=7))
    assert comments == 0 and "[DONE]" not in events
    assert [e["index"] for e in events] == list(range(1, len(tokens) + 1))
    assert [e["token"] for e in events] == tokens
    assert all(e["generated_text"] is None and e["details"] is None for e in events[:-1])
    assert events[-1]["generated_text"] == response["generated_text"]
    details = response["details"]
    assert events[-1]["details"] == {
        "finish_reason": details["finish_reason"],
        "generated_tokens": details["generated_tokens"],
        "seed": details["seed"],
        "input_length": 7,
    }
    for event in events:
        openapi.validate_response("/generate_stream", 200, event, strict=True)
    text = "".join(e["token"]["text"] for e in events if not e["token"]["special"])
    prompt = RECORDINGS[name]["request"]["inputs"] if "all_params" in name else ""
    assert prompt + text == response["generated_text"]


def test_generate_stream_events_options() -> None:
    name = "test_flash_llama/test_flash_llama_simple"
    events = generate_stream_events(name, details=False, first_index=0)
    assert events[0]["index"] == 0 and events[-1]["details"] is None
    assert list(events[0]["token"]) == ["id", "text", "logprob", "special"]  # TGI's struct order
    last = generate_stream_events(name)[-1]
    assert "input_length" not in last["details"]
    # The 3.3.6 document requires input_length in stream details (TGI sends it); without it the event fails.
    with pytest.raises(AssertionError, match="input_length"):
        openapi.validate_response("/generate_stream", 200, last)
    raw = generate_stream_body(name, space=False, keepalive=True)
    assert raw.startswith(b"data:{") and b"\n\n:\n\n" in raw and b"[DONE]" not in raw


def test_wire_root_list_and_errors() -> None:
    name = "test_flash_grammar_llama/test_flash_llama_grammar_regex"
    assert wire_root_list(name) == [wire_json(name)]
    with pytest.raises(ValueError):
        wire_root_list("test_flash_llama/test_flash_llama_load")
    with pytest.raises(ValueError):
        wire_chunks("test_chat_llama/test_flash_llama_simple")
    with pytest.raises(ValueError, match="not a path"):
        openapi.validate_request("/v1/chat/completion", {})
