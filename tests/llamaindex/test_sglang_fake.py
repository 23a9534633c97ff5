"""The LlamaIndex classes for SGLang against the fake SGLang server (``engine_clients/testing/fake_sglang.py``:
SGLang cannot run here, its wheel pins CUDA): the conformance suite for :class:`SGLang`, the auto-mode
``EngineLLM`` detecting it, :class:`SGLangEmbedding` and the reranker with ``engine="sglang"``.

The fake's scripted model answers "Hello world." (chat and ``/generate``), calls the offered (or named) tool
with placeholder arguments filled from the tool's schema (``{"city": "Paris"}`` here) and fills a
``json_schema`` the same way. Not marked ``integration``: nothing to provision, the server is in-process.
"""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.schema import NodeWithScore
from llama_index.core.schema import QueryBundle
from llama_index.core.schema import TextNode
from llama_index.embeddings.selfhosted import SGLangEmbedding
from llama_index.llms.selfhosted import EngineLLM
from llama_index.llms.selfhosted import SGLang
from llama_index.postprocessor.selfhosted_rerank import SelfHostedRerank

from engine_clients import SGLangClient
from engine_clients.testing import _fake_sglang_answers as script
from engine_clients.testing.fake_sglang import FakeSGLang
from tests.llamaindex.conformance import Backend
from tests.llamaindex.conformance import Expect
from tests.llamaindex.conformance import LlamaIndexConformance
from tests.llamaindex.conformance import Weather
from tests.llamaindex.test_real_engines import weather_tool

HELLO = "".join(script.PIECES)


class FakeSGLangBackend(Backend):
    name = "sglang"
    replayed = False
    context_window = script.CONTEXT_LENGTH  # /v1/models max_model_len
    model_name = script.MODEL_PATH
    agent_tool = "get_weather"

    def __init__(self, server: FakeSGLang, cls: type[EngineLLM]) -> None:
        self.server = server
        self.cls = cls
        self.tools = [weather_tool()]

    def llm(self, **kwargs: Any) -> EngineLLM:
        kwargs.setdefault("temperature", 0.0)
        kwargs.setdefault("timeout", 30.0)
        return self.cls(self.server.base_url, **kwargs)

    def serve(self, scenario: str) -> Expect:
        if scenario in ("chat", "chat_stream", "text", "text_stream"):
            return Expect(messages=[ChatMessage(role="user", content="Say hello.")], text=HELLO)
        if scenario in ("tools", "tools_stream"):
            return Expect(
                messages=[ChatMessage(role="user", content="What is the weather in Paris?")],
                tool_names=frozenset({"get_weather"}),
                tool_args={"city": "Paris"},  # the fake's placeholder for a string
            )
        if scenario in ("json", "json_stream"):
            return Expect(
                messages=[ChatMessage(role="user", content="The weather in Paris?")],
                output_cls=Weather,
                output=Weather(unit="Paris", temperature=[1]),
            )
        if scenario in ("info", "agent", "agent_stream"):
            return Expect(messages=[])
        raise AssertionError(scenario)

    def agent_answer_ok(self, text: str) -> bool:
        return text.strip() == HELLO


class TestSGLangConformance(LlamaIndexConformance):
    @pytest.fixture
    def backend(self, sglang_fake: FakeSGLang) -> FakeSGLangBackend:
        return FakeSGLangBackend(sglang_fake, SGLang)


class TestEngineLLMOnSGLangConformance(LlamaIndexConformance):
    """The auto-mode class: SGLang detected from ``/v1/models`` ``owned_by`` on first use."""

    @pytest.fixture
    def backend(self, sglang_fake: FakeSGLang) -> FakeSGLangBackend:
        return FakeSGLangBackend(sglang_fake, EngineLLM)

    def test_is_function_calling_and_custom_llm(self, backend: Backend) -> None:
        """The auto-mode class is ``engine_llm`` (not ``<engine>_llm``); ``engine`` is filled in on first use."""
        llm = backend.llm()
        assert isinstance(llm, FunctionCallingLLM) and isinstance(llm, CustomLLM)
        assert llm.class_name() == "engine_llm" and llm.engine is None
        assert llm.complete("Hi").text == HELLO
        assert llm.engine == "sglang" and type(llm.client) is SGLangClient


# ---- the rest --------------------------------------------------------------------------------------------


def test_sglang_sampling_fields_reach_both_routes(sglang_fake: FakeSGLang) -> None:
    llm = SGLang(sglang_fake.base_url, top_k=4, min_p=0.05, repetition_penalty=1.2, min_tokens=1)
    assert llm.chat([ChatMessage(role="user", content="Hi")]).message.content == HELLO
    body = sglang_fake.posts("/v1/chat/completions")[-1]
    assert {k: body[k] for k in ("top_k", "min_p", "repetition_penalty", "min_tokens")} == {
        "top_k": 4,
        "min_p": 0.05,
        "repetition_penalty": 1.2,
        "min_tokens": 1,
    }
    assert llm.complete("Hi", formatted=True).text == HELLO
    sampling = sglang_fake.posts("/generate")[-1]["sampling_params"]
    assert {k: sampling[k] for k in ("top_k", "min_p", "repetition_penalty", "min_new_tokens")} == {
        "top_k": 4,
        "min_p": 0.05,
        "repetition_penalty": 1.2,
        "min_new_tokens": 1,
    }
    assert llm.class_name() == "sglang_llm"


async def test_sglang_embedding(sglang_fake: FakeSGLang) -> None:
    embed = SGLangEmbedding(base_url=sglang_fake.base_url)
    vectors = embed.get_text_embedding_batch(["hello world", "paris weather"])
    assert len(vectors) == 2 and all(len(v) == script.EMBED_DIM for v in vectors)
    assert await embed.aget_query_embedding("hello world") == vectors[0]
    assert embed.class_name() == "SGLangEmbedding"


async def test_sglang_rerank(sglang_fake: FakeSGLang) -> None:
    texts = ["the cat", "weather in paris today", "paris travel guide"]
    nodes = [NodeWithScore(node=TextNode(text=t)) for t in texts]
    rerank = SelfHostedRerank(engine="sglang", base_url=sglang_fake.base_url, top_n=2)
    kept = rerank.postprocess_nodes(nodes, QueryBundle("paris weather"))
    assert [n.node.get_content() for n in kept] == ["weather in paris today", "paris travel guide"]
    assert kept[0].score is not None and kept[1].score is not None and kept[0].score > kept[1].score
    again = await rerank.apostprocess_nodes(nodes, QueryBundle("paris weather"))
    assert [(n.node.node_id, n.score) for n in again] == [(n.node.node_id, n.score) for n in kept]
