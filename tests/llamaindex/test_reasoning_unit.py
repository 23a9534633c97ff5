"""Reasoning models through the LlamaIndex LLMs (wire mocked with respx): a ThinkingBlock beside the answer,
``thinking_delta`` on streamed responses, structured output and tools after thinking, and the thinking sent
back in each engine's field."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.base.llms.types import TextBlock
from llama_index.core.base.llms.types import ThinkingBlock
from llama_index.core.prompts import PromptTemplate
from llama_index.llms.selfhosted import TGI
from llama_index.llms.selfhosted import VLLM
from llama_index.llms.selfhosted import LlamaCpp
from pydantic import BaseModel

from tests.support.fake_engines import chat_answer
from tests.support.mock_streams import sse

URL = "http://engine.test"
USAGE = {
    "prompt_tokens": 9,
    "completion_tokens": 6,
    "total_tokens": 15,
    "prompt_tokens_details": {"cached_tokens": 4},
    "completion_tokens_details": {"reasoning_tokens": 3},
}


class City(BaseModel):
    name: str


def _answer(field: str | None, reasoning: str, content: str, **kw: Any) -> dict[str, Any]:
    body = chat_answer(content, **kw)
    if field:
        body["choices"][0]["message"][field] = reasoning
    body["usage"] = USAGE
    return body


@pytest.mark.parametrize(
    ("cls", "field"), [(VLLM, "reasoning"), (LlamaCpp, "reasoning_content"), (TGI, None)]
)
@respx.mock(base_url=URL, assert_all_called=False)
def test_chat_has_a_thinking_block_beside_the_answer(
    respx_mock: respx.MockRouter, cls: Any, field: str
) -> None:
    content = "Paris." if field else "<think>Hmm.</think>Paris."  # TGI: split client-side
    respx_mock.post("/v1/chat/completions").mock(
        return_value=httpx.Response(200, json=_answer(field, "Hmm.", content))
    )
    response = cls(URL, model="m").chat([ChatMessage(role="user", content="Capital of France?")])
    blocks = response.message.blocks
    assert isinstance(blocks[0], ThinkingBlock) and blocks[0].content == "Hmm."
    assert response.message.content == "Paris."
    assert (
        response.additional_kwargs["reasoning_tokens"] == 3
        and response.additional_kwargs["cached_tokens"] == 4
    )
    assert blocks[0].num_tokens == 3


@respx.mock(base_url=URL, assert_all_called=False)
async def test_stream_chat_publishes_thinking_deltas(respx_mock: respx.MockRouter) -> None:
    def delta(d: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": "c", "model": "m", "choices": [{"index": 0, "delta": d, "finish_reason": finish}]}

    events = [
        delta({"role": "assistant", "reasoning_content": "Let me "}),
        delta({"reasoning_content": "think."}),
        delta({"content": "Paris."}, "stop"),
        {"id": "c", "model": "m", "choices": [], "usage": USAGE},
    ]
    respx_mock.post("/v1/chat/completions").mock(
        side_effect=lambda request: httpx.Response(
            200, content=sse(*events), headers={"content-type": "text/event-stream"}
        )
    )
    llm = LlamaCpp(URL, model="m")
    messages = [ChatMessage(role="user", content="hi")]
    for responses in (
        list(llm.stream_chat(messages)),
        [r async for r in await llm.astream_chat(messages)],
    ):
        assert [r.additional_kwargs.get("thinking_delta") for r in responses[:2]] == ["Let me ", "think."]
        assert "".join(r.delta or "" for r in responses) == "Paris."
        final = responses[-1].message
        assert isinstance(final.blocks[0], ThinkingBlock) and final.blocks[0].content == "Let me think."
        assert final.content == "Paris."


@respx.mock(base_url=URL, assert_all_called=False)
def test_structured_predict_and_tools_parse_the_answer_only(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.post("/v1/chat/completions")
    route.mock(
        return_value=httpx.Response(200, json=chat_answer('<think>{"name": "x"}</think>{"name": "Paris"}'))
    )
    assert TGI(URL, model="m").structured_predict(City, PromptTemplate("A city")) == City(name="Paris")
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    route.mock(return_value=httpx.Response(200, json=_answer("reasoning", "Call f.", "", tool_calls=[call])))
    llm = VLLM(URL, model="m")
    response = llm.chat([ChatMessage(role="user", content="go")])
    [selection] = llm.get_tool_calls_from_response(response)
    assert selection.tool_kwargs == {"a": 1}


@respx.mock(base_url=URL, assert_all_called=False)
def test_thinking_goes_back_in_each_engines_field(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.post("/v1/chat/completions").mock(
        return_value=httpx.Response(200, json=chat_answer("ok"))
    )
    history = [
        ChatMessage(role="user", content="hi"),
        ChatMessage(role="assistant", blocks=[ThinkingBlock(content="Greet."), TextBlock(text="Hello.")]),
        ChatMessage(role="user", content="again"),
    ]
    sent = {}
    for cls in (VLLM, LlamaCpp, TGI):
        cls(URL, model="m").chat(history)
        sent[cls.__name__] = json.loads(route.calls[-1].request.content)["messages"][1]
    assert sent["VLLM"] == {"role": "assistant", "content": "Hello.", "reasoning": "Greet."}
    assert sent["LlamaCpp"] == {"role": "assistant", "content": "Hello.", "reasoning_content": "Greet."}
    assert sent["TGI"] == {"role": "assistant", "content": "Hello."}
