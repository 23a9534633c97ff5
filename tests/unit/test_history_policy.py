"""``history=``: the client's side of fitting a history to a strict chat template (issue 19 item 1), on
respx servers that answer the way llama.cpp, vLLM and TGI answer a template's refusal."""

from __future__ import annotations

import itertools
import json
import pickle
from typing import Any

import httpx
import pytest
import respx

from engine_clients import BaseClient
from engine_clients import ChatTemplateError
from engine_clients import InvalidRequestError
from engine_clients import LlamaCppClient
from engine_clients import TGIClient
from engine_clients import VLLMClient
from engine_clients.dialects.history import TemplateRules
from tests.support.mock_streams import event_stream
from tests.support.mock_streams import sse

URL = "http://engine.test"
HISTORY: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {"role": "system", "content": "Answer in English."},
    {"role": "user", "content": "hi"},
    {"role": "user", "content": [{"type": "text", "text": "there"}]},
]
LLAMA_REFUSAL = {
    "error": {
        "code": 400,
        "message": "Unable to generate parser for this template. Automatic parser generation failed: While "
        "executing CallExpression at line 7, column 17 in source: ... Jinja Exception: System message must be "
        "at the beginning.",
        "type": "invalid_request_error",
    }
}
VLLM_REFUSAL = {
    "object": "error",
    "message": "Conversation roles must alternate user/assistant/user/assistant/...",
    "type": "BadRequestError",
    "code": 400,
}
TGI_REFUSAL = {
    "error": "Template error: Conversation roles must alternate user/assistant/...",
    "error_type": "template_error",
}
ANSWER = {
    "id": "c",
    "object": "chat.completion",
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
}
STREAM = sse(
    {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": None}]},
    {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
)
CASES = [
    (LlamaCppClient, LLAMA_REFUSAL, 400),
    (VLLMClient, VLLM_REFUSAL, 400),
    (TGIClient, TGI_REFUSAL, 422),
]


def strict(request: httpx.Request, refusal: dict[str, Any], status: int) -> httpx.Response:
    """A server whose template takes one leading system message and alternating string turns."""
    body = json.loads(request.content)
    ok = event_stream(STREAM) if body.get("stream") else httpx.Response(200, json=ANSWER)
    messages = body["messages"]
    roles = [m["role"] for m in messages]
    fits = (
        roles.count("system") <= 1
        and "system" not in roles[1:]
        and all(a != b for a, b in itertools.pairwise(roles))
        and all(isinstance(m["content"], str) for m in messages)
    )
    return ok if fits else httpx.Response(status, json=refusal)


def sent(route: respx.Route) -> list[list[dict[str, Any]]]:
    return [json.loads(c.request.content)["messages"] for c in route.calls]


@pytest.mark.parametrize(("cls", "refusal", "status"), CASES, ids=["llamacpp", "vllm", "tgi"])
@pytest.mark.parametrize("mode", ["sync", "async", "stream", "astream"])
async def test_auto_fits_after_a_templates_refusal_and_remembers(
    cls: Any, refusal: dict[str, Any], status: int, mode: str
) -> None:
    with respx.mock:
        route = respx.post(f"{URL}/v1/chat/completions").mock(
            side_effect=lambda r: strict(r, refusal, status)
        )
        client = cls(URL, model="m")
        if mode == "sync":
            answer = client.chat(HISTORY)
        elif mode == "async":
            answer = await client.achat(HISTORY)
        elif mode == "stream":
            answer = list(client.chat_stream(HISTORY))[-1].completion
        else:
            answer = [e async for e in client.achat_stream(HISTORY)][-1].completion
        assert answer.content == "ok"
        first, fitted = sent(route)
        assert first == HISTORY  # sent as given first
        assert [m["role"] for m in fitted] == ["system", "user"]
        assert (
            fitted[0]["content"] == "Be brief.\n\nAnswer in English."
            and fitted[1]["content"] == "hi\n\nthere"
        )
        kinds = {c.kind for c in answer.history_changes}
        assert {"merged_system", "merged_consecutive", "flattened_content"} <= kinds
        # remembered: the next call is fitted before it goes out, one request
        assert client.chat(HISTORY).history_changes == answer.history_changes
        assert route.call_count == 3


def test_a_lenient_server_gets_the_history_byte_for_byte() -> None:
    with respx.mock:
        route = respx.post(f"{URL}/v1/chat/completions").respond(200, json=ANSWER)
        client = VLLMClient(URL, model="m")
        answer = client.chat(HISTORY)
    assert route.call_count == 1
    assert json.loads(route.calls[0].request.content)["messages"] == HISTORY
    assert answer.history_changes == ()


def test_keep_raises_a_typed_error_naming_the_rule_and_the_fix() -> None:
    with respx.mock:
        route = respx.post(f"{URL}/v1/chat/completions").respond(400, json=LLAMA_REFUSAL)
        with pytest.raises(ChatTemplateError) as info:
            LlamaCppClient(URL, history="keep").chat(HISTORY)
    assert route.call_count == 1
    err = info.value
    assert err.rule == "system_first" and err.fix is not None and 'history="fit"' in err.fix
    assert 'history="fit"' in str(err)


@pytest.mark.parametrize(("cls", "refusal", "status"), CASES, ids=["llamacpp", "vllm", "tgi"])
def test_keep_names_the_message_that_broke_the_rule(
    cls: type[BaseClient], refusal: dict[str, Any], status: int
) -> None:
    """The server names the rule; the client finds the message that broke it in the history it sent (here
    the second system message, whether the template said "system first" or "alternate")."""
    with respx.mock:
        respx.post(f"{URL}/v1/chat/completions").mock(side_effect=lambda r: strict(r, refusal, status))
        client = cls(URL, model="m", history="keep")
        with pytest.raises(ChatTemplateError) as info:
            client.chat(HISTORY)
        with pytest.raises(ChatTemplateError) as streamed:
            list(client.chat_stream(HISTORY))
    assert info.value.index == streamed.value.index == 1
    assert "message 1)" in str(info.value) and info.value.fix is not None
    assert pickle.loads(pickle.dumps(info.value)).index == 1


def test_a_refused_fitted_history_names_no_message() -> None:
    """When the refused history is the fitted one, its indexes are not the caller's: no index is named."""
    with respx.mock:
        respx.post(f"{URL}/v1/chat/completions").respond(400, json=VLLM_REFUSAL)
        with pytest.raises(ChatTemplateError) as info:
            VLLMClient(URL, model="m").chat(HISTORY)
    assert info.value.index is None and "message" not in str(info.value).split(":")[0]


def test_fit_fits_before_sending_and_per_call_overrides() -> None:
    with respx.mock:
        route = respx.post(f"{URL}/v1/chat/completions").respond(200, json=ANSWER)
        client = VLLMClient(URL, model="m", history="fit")
        fitted = client.chat(HISTORY)
        kept = client.chat(HISTORY, history="keep")
        rules = client.chat(HISTORY, history=TemplateRules(text_content=True))
    first, second, third = sent(route)
    assert [m["role"] for m in first] == ["system", "user"] and fitted.history_changes
    assert second == HISTORY and kept.history_changes == ()
    assert [m["role"] for m in third] == ["system", "system", "user", "user"]
    assert {c.kind for c in rules.history_changes} == {"flattened_content"}


def test_build_chat_shows_the_fitted_request() -> None:
    body = VLLMClient(URL, model="m").build_chat(HISTORY, history="fit").json
    assert [m["role"] for m in body["messages"]] == ["system", "user"]


def test_a_refusal_fitting_cannot_cure_is_raised() -> None:
    """The fitted history is refused too: the server's own error reaches the caller, one retry only."""
    with respx.mock:
        route = respx.post(f"{URL}/v1/chat/completions").respond(400, json=VLLM_REFUSAL)
        with pytest.raises(ChatTemplateError):
            VLLMClient(URL, model="m").chat(HISTORY)
    assert route.call_count == 2


def test_mistral_ids_when_the_template_names_them() -> None:
    refusal = {
        "object": "error",
        "message": "Tool call IDs should be alphanumeric strings with length 9!",
        "type": "BadRequestError",
        "code": 400,
    }
    history = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_0123456789abcdef",
                    "type": "function",
                    "function": {"name": "w", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_0123456789abcdef", "content": "sunny"},
    ]

    def server(request: httpx.Request) -> httpx.Response:
        ids = [m.get("tool_call_id") for m in json.loads(request.content)["messages"] if m["role"] == "tool"]
        ok = all(len(i) == 9 and i.isalnum() for i in ids)
        return httpx.Response(200, json=ANSWER) if ok else httpx.Response(400, json=refusal)

    with respx.mock:
        route = respx.post(f"{URL}/v1/chat/completions").mock(side_effect=server)
        answer = VLLMClient(URL, model="m").chat(history)
    assert answer.content == "ok" and route.call_count == 2
    fitted = sent(route)[1]
    assert fitted[1]["tool_calls"][0]["id"] == fitted[2]["tool_call_id"]
    assert "renamed_tool_call_id" in {c.kind for c in answer.history_changes}


def test_an_unknown_policy_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="history must be one of"):
        VLLMClient(URL, history="sometimes")  # type: ignore[arg-type]
