"""The LlamaIndex LLMs' ``history`` and ``recover_tool_calls`` (issue 19 items 1 and 2) on respx vLLM
servers: a strict chat template that wants alternating turns, and a tool parser that leaves the call in the
text."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import respx
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.base.llms.types import ChatResponse
from llama_index.core.base.llms.types import MessageRole
from llama_index.core.base.llms.types import ToolCallBlock
from llama_index.core.tools import FunctionTool
from llama_index.llms.selfhosted import VLLM
from llama_index.llms.selfhosted import EngineLLM

from engine_clients import ChatTemplateError
from engine_clients.dialects.history import TemplateRules
from tests.support.strict_vllm import LEAK
from tests.support.strict_vllm import MERGED
from tests.support.strict_vllm import sent_roles
from tests.support.strict_vllm import serve

URL = "http://engine.test"
CHAT = f"{URL}/v1/chat/completions"
HISTORY = [
    ChatMessage(role=MessageRole.SYSTEM, content="Be brief."),
    ChatMessage(role=MessageRole.USER, content="hi"),
    ChatMessage(role=MessageRole.USER, content="there"),
]


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


TOOLS = [FunctionTool.from_defaults(fn=get_weather)]


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as r:
        yield r


def has_merge(response: ChatResponse) -> bool:
    changes = response.additional_kwargs.get("history_changes", [])
    found = any(c.items() >= MERGED.items() for c in changes)
    assert response.raw is not None and response.raw["history_changes"] == changes  # raw: the same list
    return found


# ---- history ----------------------------------------------------------------------------------------------


def test_auto_fits_a_history_the_template_refused(router: respx.MockRouter) -> None:
    router.post(CHAT).mock(side_effect=serve("ok", strict=True))
    llm = VLLM(URL, model="m")
    response = llm.chat(HISTORY)
    assert response.message.content == "ok"
    assert has_merge(response)
    assert sent_roles(router) == [["system", "user", "user"], ["system", "user"]]
    assert has_merge(llm.chat(HISTORY))  # learned: fitted before it goes out
    assert sent_roles(router)[2:] == [["system", "user"]]


def test_auto_fits_a_stream(router: respx.MockRouter) -> None:
    router.post(CHAT).mock(side_effect=serve("ok there", strict=True))
    responses = list(VLLM(URL, model="m").stream_chat(HISTORY))
    assert responses[-1].message.content == "ok there"
    assert has_merge(responses[-1])
    assert all("history_changes" not in r.additional_kwargs for r in responses[:-1])


async def test_auto_fits_async(router: respx.MockRouter) -> None:
    router.post(CHAT).mock(side_effect=serve("ok", strict=True))
    assert has_merge(await VLLM(URL, model="m").achat(HISTORY))
    responses = [r async for r in await VLLM(URL, model="m").astream_chat(HISTORY)]
    assert has_merge(responses[-1])


def test_keep_raises_the_template_error(router: respx.MockRouter) -> None:
    router.post(CHAT).mock(side_effect=serve("ok", strict=True))
    with pytest.raises(ChatTemplateError, match="alternate"):
        VLLM(URL, model="m", history="keep").chat(HISTORY)
    assert len(router.calls) == 1


def test_history_per_call_and_unchanged(router: respx.MockRouter) -> None:
    router.post(CHAT).mock(side_effect=serve("ok"))  # lenient: only the policy changes the history
    llm = VLLM(URL, model="m")
    plain = llm.chat(HISTORY)
    assert "history_changes" not in plain.additional_kwargs
    assert "recovered_tool_calls" not in plain.additional_kwargs
    assert plain.raw is not None and plain.raw["history_changes"] == [] and plain.raw["recovered"] == []
    assert has_merge(llm.chat(HISTORY, history="fit"))
    assert has_merge(list(llm.stream_chat(HISTORY, history=TemplateRules(alternate=True)))[-1])
    assert has_merge(VLLM(URL, model="m", history="fit").chat(HISTORY))
    assert sent_roles(router) == [["system", "user", "user"]] + [["system", "user"]] * 3
    assert "history" not in json.loads(router.calls[-1].request.content)


def test_fields_reach_the_client() -> None:
    llm = VLLM(URL, history="mistral", recover_tool_calls=False)
    assert llm.client.history == "mistral"
    assert llm.client.dialect.recover_tool_calls is False
    auto = EngineLLM(URL, engine="vllm", history="keep", recover_tool_calls=False)
    assert auto.client.history == "keep" and auto.client.dialect.recover_tool_calls is False
    with pytest.raises(ValueError):
        VLLM(URL, history="sometimes")


# ---- tool calls left in the text ------------------------------------------------------------------------------


def test_leaked_tool_call_is_recovered(router: respx.MockRouter) -> None:
    router.post(CHAT).mock(side_effect=serve(LEAK))
    llm = VLLM(URL, model="m")
    response = llm.chat_with_tools(TOOLS, user_msg="weather in Paris?")
    (selection,) = llm.get_tool_calls_from_response(response)
    assert (selection.tool_name, selection.tool_kwargs) == ("get_weather", {"city": "Paris"})
    assert selection.tool_id
    assert "<tool_call>" not in (response.message.content or "")
    (recovered,) = response.additional_kwargs["recovered_tool_calls"]
    assert recovered == {"index": 0, "markup": "hermes", "source": LEAK, "repaired": False}
    assert response.raw is not None and response.raw["recovered_tool_calls"] == [recovered]
    json.dumps(response.additional_kwargs)


def test_leaked_tool_call_is_recovered_in_a_stream(router: respx.MockRouter) -> None:
    router.post(CHAT).mock(side_effect=serve(LEAK))
    llm = VLLM(URL, model="m")
    last = list(llm.stream_chat_with_tools(TOOLS, user_msg="weather in Paris?"))[-1]
    (selection,) = llm.get_tool_calls_from_response(last)
    assert (selection.tool_name, selection.tool_kwargs) == ("get_weather", {"city": "Paris"})
    assert "<tool_call>" not in (last.message.content or "")
    assert last.additional_kwargs["recovered_tool_calls"][0]["markup"] == "hermes"


async def test_leaked_tool_call_is_recovered_async(router: respx.MockRouter) -> None:
    router.post(CHAT).mock(side_effect=serve(LEAK))
    llm = VLLM(URL, model="m")
    response = await llm.achat_with_tools(TOOLS, user_msg="weather in Paris?")
    assert [s.tool_name for s in llm.get_tool_calls_from_response(response)] == ["get_weather"]


def test_recovery_off_keeps_the_markup(router: respx.MockRouter) -> None:
    router.post(CHAT).mock(side_effect=serve(LEAK))
    llm = VLLM(URL, model="m", recover_tool_calls=False)
    response = llm.chat_with_tools(TOOLS, user_msg="weather in Paris?")
    assert response.message.content == LEAK
    assert not [b for b in response.message.blocks if isinstance(b, ToolCallBlock)]
    assert llm.get_tool_calls_from_response(response, error_on_no_tool_call=False) == []
    assert "recovered_tool_calls" not in response.additional_kwargs
    last = list(llm.stream_chat_with_tools(TOOLS, user_msg="weather in Paris?"))[-1]
    assert last.message.content == LEAK
    assert llm.get_tool_calls_from_response(last, error_on_no_tool_call=False) == []
