"""The chat models' ``history`` and ``recover_tool_calls`` (issue 19 items 1 and 2) on respx vLLM servers:
a strict chat template that wants alternating turns, and a tool parser that leaves the call in the text."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import respx
from langchain_core.messages import AIMessageChunk
from langchain_core.messages import BaseMessage
from langchain_core.messages import HumanMessage
from langchain_core.messages import SystemMessage
from langchain_selfhosted import ChatEngine
from langchain_selfhosted import ChatVLLM
from langchain_selfhosted import errors as lc_errors

from engine_clients.dialects.history import TemplateRules
from tests.support.strict_vllm import LEAK
from tests.support.strict_vllm import MERGED
from tests.support.strict_vllm import sent_roles
from tests.support.strict_vllm import serve

BASE = "http://engine.test"
CHAT = f"{BASE}/v1/chat/completions"
HISTORY: list[BaseMessage] = [SystemMessage("Be brief."), HumanMessage("hi"), HumanMessage("there")]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as r:
        yield r


def merged(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    full = chunks[0]
    for c in chunks[1:]:
        full += c
    return full


def has_merge(meta: dict[str, Any]) -> bool:
    return any(c.items() >= MERGED.items() for c in meta.get("history_changes", []))


# ---- history ----------------------------------------------------------------------------------------------


def test_auto_fits_a_history_the_template_refused(router: respx.MockRouter) -> None:
    router.post(CHAT).mock(side_effect=serve("ok", strict=True))
    model = ChatVLLM(base_url=BASE, model="m")
    msg = model.invoke(HISTORY)
    assert msg.content == "ok"
    assert has_merge(msg.response_metadata)
    assert all(set(c) == {"kind", "index", "detail"} for c in msg.response_metadata["history_changes"])
    assert sent_roles(router) == [["system", "user", "user"], ["system", "user"]]
    # the client learned: the next call is fitted before it goes out
    assert has_merge(model.invoke(HISTORY).response_metadata)
    assert sent_roles(router)[2:] == [["system", "user"]]


def test_auto_fits_a_stream(router: respx.MockRouter) -> None:
    router.post(CHAT).mock(side_effect=serve("ok there", strict=True))
    chunks = list(ChatVLLM(base_url=BASE, model="m").stream(HISTORY))
    assert merged(chunks).content == "ok there"
    assert has_merge(chunks[-1].response_metadata)
    assert all("history_changes" not in c.response_metadata for c in chunks[:-1])


async def test_auto_fits_async(router: respx.MockRouter) -> None:
    router.post(CHAT).mock(side_effect=serve("ok", strict=True))
    model = ChatVLLM(base_url=BASE, model="m")
    msg = await model.ainvoke(HISTORY)
    assert msg.content == "ok" and has_merge(msg.response_metadata)
    chunks = [c async for c in ChatVLLM(base_url=BASE, model="m").astream(HISTORY)]
    assert has_merge(chunks[-1].response_metadata)


def test_keep_raises_the_typed_template_error(router: respx.MockRouter) -> None:
    router.post(CHAT).mock(side_effect=serve("ok", strict=True))
    with pytest.raises(lc_errors.ChatTemplateError) as info:
        ChatVLLM(base_url=BASE, model="m", history="keep").invoke(HISTORY)
    assert "alternate" in str(info.value)
    assert len(router.calls) == 1
    with pytest.raises(lc_errors.ChatTemplateError):
        list(ChatVLLM(base_url=BASE, model="m", history="keep").stream(HISTORY))


def test_a_history_sent_as_given_has_no_changes(router: respx.MockRouter) -> None:
    router.post(CHAT).mock(side_effect=serve("ok"))
    msg = ChatVLLM(base_url=BASE, model="m").invoke(HISTORY)
    assert "history_changes" not in msg.response_metadata
    assert "recovered_tool_calls" not in msg.response_metadata
    assert sent_roles(router) == [["system", "user", "user"]]


def test_history_per_call_and_bound(router: respx.MockRouter) -> None:
    router.post(CHAT).mock(side_effect=serve("ok"))  # lenient: only the policy changes the history
    model = ChatVLLM(base_url=BASE, model="m")
    assert has_merge(model.invoke(HISTORY, history="fit").response_metadata)
    assert has_merge(model.bind(history="fit").invoke(HISTORY).response_metadata)
    assert has_merge(list(model.stream(HISTORY, history="fit"))[-1].response_metadata)
    assert has_merge(ChatVLLM(base_url=BASE, model="m", history="fit").invoke(HISTORY).response_metadata)
    rules = TemplateRules(alternate=True)
    assert has_merge(model.invoke(HISTORY, history=rules).response_metadata)
    assert sent_roles(router) == [["system", "user"]] * 5
    body = json.loads(router.calls[-1].request.content)
    assert "history" not in body  # a client option, never a sampling field on the wire
    assert "history_changes" not in model.invoke(HISTORY).response_metadata  # the model's default: auto


def test_history_field_reaches_the_client() -> None:
    model = ChatVLLM(base_url=BASE, history="mistral")
    assert model.client.history == "mistral"
    assert model.model_copy(update={"history": "keep"}).client.history == "keep"  # a new client
    assert ChatEngine(base_url=BASE, engine="vllm", history="fit").client.history == "fit"
    with pytest.raises(ValueError):
        ChatVLLM(base_url=BASE, history="sometimes")


# ---- tool calls left in the text ------------------------------------------------------------------------------


def test_leaked_tool_call_is_recovered(router: respx.MockRouter) -> None:
    router.post(CHAT).mock(side_effect=serve(LEAK))
    msg = ChatVLLM(base_url=BASE, model="m").bind_tools([WEATHER]).invoke("weather in Paris?")
    assert [(c["name"], c["args"]) for c in msg.tool_calls] == [("get_weather", {"city": "Paris"})]
    assert msg.tool_calls[0]["id"]
    assert "<tool_call>" not in msg.content and msg.content.strip() == ""
    (recovered,) = msg.response_metadata["recovered_tool_calls"]
    assert recovered == {"index": 0, "markup": "hermes", "source": LEAK, "repaired": False}
    json.dumps(msg.response_metadata)  # JSON-ready


def test_leaked_tool_call_is_recovered_in_a_stream(router: respx.MockRouter) -> None:
    router.post(CHAT).mock(side_effect=serve(LEAK))
    chunks = list(ChatVLLM(base_url=BASE, model="m").bind_tools([WEATHER]).stream("weather in Paris?"))
    full = merged(chunks)
    assert [(c["name"], c["args"]) for c in full.tool_calls] == [("get_weather", {"city": "Paris"})]
    assert "<tool_call>" not in full.content
    assert chunks[-1].response_metadata["recovered_tool_calls"][0]["markup"] == "hermes"


async def test_leaked_tool_call_is_recovered_async(router: respx.MockRouter) -> None:
    router.post(CHAT).mock(side_effect=serve(LEAK))
    msg = await ChatVLLM(base_url=BASE, model="m").bind_tools([WEATHER]).ainvoke("weather in Paris?")
    assert [c["name"] for c in msg.tool_calls] == ["get_weather"]
    assert "recovered_tool_calls" in msg.response_metadata


def test_recovery_off_keeps_the_markup(router: respx.MockRouter) -> None:
    router.post(CHAT).mock(side_effect=serve(LEAK))
    model = ChatVLLM(base_url=BASE, model="m", recover_tool_calls=False).bind_tools([WEATHER])
    msg = model.invoke("weather in Paris?")
    assert msg.content == LEAK and msg.tool_calls == [] and msg.invalid_tool_calls == []
    assert "recovered_tool_calls" not in msg.response_metadata
    full = merged(list(model.stream("weather in Paris?")))
    assert full.content == LEAK and full.tool_calls == []


def test_recovery_setting_follows_copies() -> None:
    model = ChatVLLM(base_url=BASE, recover_tool_calls=False)
    assert model.client.dialect.recover_tool_calls is False
    assert model.model_copy(update={"recover_tool_calls": True}).client.dialect.recover_tool_calls is True
    engine = ChatEngine(base_url=BASE, engine="vllm", recover_tool_calls=False)
    assert engine.client.dialect.recover_tool_calls is False


async def test_recovery_off_async(router: respx.MockRouter) -> None:
    router.post(CHAT).mock(side_effect=serve(LEAK))
    model = ChatVLLM(base_url=BASE, model="m", recover_tool_calls=False).bind_tools([WEATHER])
    msg = await model.ainvoke("weather in Paris?")
    assert msg.content == LEAK and msg.tool_calls == []
    engine = ChatEngine(base_url=BASE, engine="vllm", model="m", recover_tool_calls=False)
    chunks = [c async for c in engine.bind_tools([WEATHER]).astream("weather in Paris?")]
    assert merged(chunks).content == LEAK and merged(chunks).tool_calls == []
