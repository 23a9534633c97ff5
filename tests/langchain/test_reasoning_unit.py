"""Reasoning models through the LangChain chat models (wire mocked with respx): thinking apart from the
answer on invoke and stream, reasoning token counts, structured output and tools after thinking, and the
thinking sent back in each engine's field."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx
from langchain_core.messages import AIMessage
from langchain_core.messages import HumanMessage
from langchain_selfhosted import ChatLlamaCpp
from langchain_selfhosted import ChatTGI
from langchain_selfhosted import ChatVLLM
from pydantic import BaseModel

from tests.langchain.test_chat_unit import BASE
from tests.langchain.test_chat_unit import CHAT
from tests.langchain.test_chat_unit import answer
from tests.langchain.test_chat_unit import body_of
from tests.langchain.test_chat_unit import call
from tests.langchain.test_chat_unit import chunk
from tests.langchain.test_chat_unit import merged
from tests.langchain.test_chat_unit import stream_response

DETAILED_USAGE = {
    "prompt_tokens": 9,
    "completion_tokens": 6,
    "total_tokens": 15,
    "prompt_tokens_details": {"cached_tokens": 4},
    "completion_tokens_details": {"reasoning_tokens": 3},
}


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as r:
        yield r


class City(BaseModel):
    name: str


def _reasoning_answer(field: str, reasoning: str, content: str, **kw: Any) -> dict[str, Any]:
    body = answer(content, **kw)
    body["choices"][0]["message"][field] = reasoning
    body["usage"] = DETAILED_USAGE
    return body


def test_invoke_keeps_thinking_apart(router: respx.MockRouter) -> None:
    for cls, field in ((ChatVLLM, "reasoning"), (ChatLlamaCpp, "reasoning_content")):
        router.post(CHAT).mock(
            return_value=httpx.Response(200, json=_reasoning_answer(field, "Hmm.", "Paris."))
        )
        message = cls(base_url=BASE, model="m").invoke("Capital of France?")
        assert message.content == "Paris."
        assert message.additional_kwargs["reasoning_content"] == "Hmm."
        assert message.content_blocks[0] == {"type": "reasoning", "reasoning": "Hmm."}
        assert message.usage_metadata == {
            "input_tokens": 9,
            "output_tokens": 6,
            "total_tokens": 15,
            "input_token_details": {"cache_read": 4},
            "output_token_details": {"reasoning": 3},
        }


def test_tgi_think_tags_are_split_client_side(router: respx.MockRouter) -> None:
    router.post(CHAT).mock(return_value=httpx.Response(200, json=answer("<think>Hmm.</think>Paris.")))
    message = ChatTGI(base_url=BASE, model="m").invoke("Capital of France?")
    assert message.content == "Paris."
    assert message.additional_kwargs["reasoning_content"] == "Hmm."


def test_no_reasoning_no_key(router: respx.MockRouter) -> None:
    router.post(CHAT).mock(return_value=httpx.Response(200, json=answer("Paris.")))
    message = ChatVLLM(base_url=BASE, model="m").invoke("Capital of France?")
    assert "reasoning_content" not in message.additional_kwargs
    assert "input_token_details" not in (message.usage_metadata or {})  # not reported: not made up


async def test_stream_carries_reasoning_deltas_apart(router: respx.MockRouter) -> None:
    events = [
        chunk({"role": "assistant", "reasoning": "Let me "}),
        chunk({"reasoning": "think."}),
        chunk({"content": "Par"}),
        chunk({"content": "is."}, "stop"),
        {"id": "chatcmpl-2", "model": "served-model", "choices": [], "usage": DETAILED_USAGE},
    ]
    router.post(CHAT).mock(side_effect=lambda request: stream_response(*events))
    model = ChatVLLM(base_url=BASE, model="m")
    for chunks in (list(model.stream("hi")), [c async for c in model.astream("hi")]):
        assert [c.additional_kwargs.get("reasoning_content") for c in chunks if c.additional_kwargs] == [
            "Let me ",
            "think.",
        ]
        assert "".join(str(c.content) for c in chunks) == "Paris."
        full = merged(chunks)
        assert full.content == "Paris." and full.additional_kwargs["reasoning_content"] == "Let me think."
        assert full.content_blocks[0] == {"type": "reasoning", "reasoning": "Let me think."}
        assert full.usage_metadata is not None
        assert full.usage_metadata.get("output_token_details") == {"reasoning": 3}


def test_structured_output_and_tools_parse_the_answer_only(router: respx.MockRouter) -> None:
    router.post(CHAT).mock(
        return_value=httpx.Response(200, json=answer('<think>{"name": "wrong"}</think>{"name": "Paris"}'))
    )
    assert ChatTGI(base_url=BASE, model="m").with_structured_output(City).invoke("A city") == City(
        name="Paris"
    )
    body = _reasoning_answer("reasoning_content", "I should call it.", "", tool_calls=[call("f", '{"a": 1}')])
    router.post(CHAT).mock(return_value=httpx.Response(200, json=body))
    message = ChatLlamaCpp(base_url=BASE, model="m").bind_tools(
        [{"type": "function", "function": {"name": "f"}}]
    )
    result = message.invoke("go")
    assert result.tool_calls[0]["args"] == {"a": 1} and result.content == ""
    assert result.additional_kwargs["reasoning_content"] == "I should call it."


def test_thinking_goes_back_in_each_engines_field(router: respx.MockRouter) -> None:
    router.post(CHAT).mock(return_value=httpx.Response(200, json=answer("ok")))
    history = [
        HumanMessage("hi"),
        AIMessage("Hello.", additional_kwargs={"reasoning_content": "Greet back."}),
        HumanMessage("again"),
    ]
    sent = {}
    for cls in (ChatVLLM, ChatLlamaCpp, ChatTGI):
        cls(base_url=BASE, model="m").invoke(history)
        sent[cls.__name__] = body_of(router)["messages"][1]
    assert sent["ChatVLLM"] == {"role": "assistant", "content": "Hello.", "reasoning": "Greet back."}
    assert sent["ChatLlamaCpp"] == {
        "role": "assistant",
        "content": "Hello.",
        "reasoning_content": "Greet back.",
    }
    assert sent["ChatTGI"] == {"role": "assistant", "content": "Hello."}  # TGI has no such field
