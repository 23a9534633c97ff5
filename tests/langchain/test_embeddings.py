"""LangChain embeddings and reranker: langchain-tests' standard suites (unit for every engine, integration on
the real llama-server --embedding and vLLM pooling servers) and a retrieval chain on real servers: documents
-> InMemoryVectorStore with LlamaCppEmbeddings -> SelfHostedRerank (llama-server --rerank) -> ChatLlamaCpp."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_selfhosted import ChatLlamaCpp
from langchain_selfhosted import LlamaCppEmbeddings
from langchain_selfhosted import SelfHostedRerank
from langchain_selfhosted import SGLangEmbeddings
from langchain_selfhosted import TEIEmbeddings
from langchain_selfhosted import VLLMEmbeddings
from langchain_selfhosted.errors import ContextWindowExceededError
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests

from engine_clients.testing import EngineServer

QUERY = "paris weather"
DOCUMENTS = [
    "python code examples",
    "weather in paris today",
    "paris travel guide",
    "berlin weather forecast",
    "the cat",
]


class TestLlamaCppEmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[LlamaCppEmbeddings]:
        return LlamaCppEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"base_url": "http://127.0.0.1:1"}


class TestVLLMEmbeddingsUnit(TestLlamaCppEmbeddingsUnit):
    @property
    def embeddings_class(self) -> type[VLLMEmbeddings]:  # type: ignore[override]
        return VLLMEmbeddings


class TestTEIEmbeddingsUnit(TestLlamaCppEmbeddingsUnit):
    @property
    def embeddings_class(self) -> type[TEIEmbeddings]:  # type: ignore[override]
        return TEIEmbeddings


class TestSGLangEmbeddingsUnit(TestLlamaCppEmbeddingsUnit):
    @property
    def embeddings_class(self) -> type[SGLangEmbeddings]:  # type: ignore[override]
        return SGLangEmbeddings


@pytest.mark.integration
class TestLlamaCppEmbeddingsIntegration(EmbeddingsIntegrationTests):
    server_fixture = "llama_embed_server"

    @pytest.fixture(autouse=True)
    def _server(self, request: pytest.FixtureRequest) -> None:
        self.server: EngineServer = request.getfixturevalue(self.server_fixture)

    @property
    def embeddings_class(self) -> type[LlamaCppEmbeddings]:
        return LlamaCppEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"base_url": self.server.base_url, "default_headers": self.server.headers}


@pytest.mark.integration
class TestVLLMEmbeddingsIntegration(TestLlamaCppEmbeddingsIntegration):
    server_fixture = "vllm_pooling_server"

    @property
    def embeddings_class(self) -> type[VLLMEmbeddings]:  # type: ignore[override]
        return VLLMEmbeddings


def _rag_chain(embed: EngineServer, rerank: EngineServer, llm: EngineServer) -> Any:
    store = InMemoryVectorStore(LlamaCppEmbeddings(base_url=embed.base_url, default_headers=embed.headers))
    store.add_documents([Document(page_content=d, metadata={"i": i}) for i, d in enumerate(DOCUMENTS)])
    retriever = store.as_retriever(search_kwargs={"k": 4})
    reranker = SelfHostedRerank(
        engine="llamacpp", base_url=rerank.base_url, default_headers=rerank.headers, top_n=2
    )

    def rerank_docs(inputs: dict[str, Any]) -> dict[str, Any]:
        docs = reranker.compress_documents(inputs["docs"], inputs["question"])
        return {**inputs, "docs": docs, "context": "\n".join(d.page_content for d in docs)}

    prompt = ChatPromptTemplate.from_messages(
        [("system", "Answer from the context:\n{context}"), ("human", "{question}")]
    )
    llm_model = ChatLlamaCpp(base_url=llm.base_url, default_headers=llm.headers, max_tokens=8)
    retrieve = RunnableLambda(lambda q: {"question": q, "docs": retriever.invoke(q)})
    return retrieve | RunnableLambda(rerank_docs), prompt | llm_model | StrOutputParser()


@pytest.mark.integration
def test_retrieval_chain_on_real_servers(
    llama_embed_server: EngineServer, llama_rerank_server: EngineServer, llama_server: EngineServer
) -> None:
    retrieval, answer = _rag_chain(llama_embed_server, llama_rerank_server, llama_server)
    found = retrieval.invoke(QUERY)
    # the vector store finds the two-keyword document first, the reranker keeps it on top with its score
    contents = [d.page_content for d in found["docs"]]
    assert contents[0] == "weather in paris today"
    assert contents[1] in ("paris travel guide", "berlin weather forecast")  # one shared keyword each: a tie
    assert found["docs"][0].metadata["i"] == 1
    assert found["docs"][0].metadata["relevance_score"] > found["docs"][1].metadata["relevance_score"]
    text = answer.invoke(found)
    assert isinstance(text, str) and text


@pytest.mark.integration
async def test_async_embeddings_rerank_and_errors(
    llama_embed_server: EngineServer, llama_rerank_server: EngineServer
) -> None:
    emb = LlamaCppEmbeddings(
        base_url=llama_embed_server.base_url, default_headers=llama_embed_server.headers, batch_size=2
    )
    vectors = await emb.aembed_documents(DOCUMENTS)
    for got, want in zip(vectors, emb.embed_documents(DOCUMENTS), strict=True):
        assert got == pytest.approx(want, abs=1e-6)
    with pytest.raises(ContextWindowExceededError):
        await emb.aembed_query("cat " * 600)
    reranker = SelfHostedRerank(
        base_url=llama_rerank_server.base_url, default_headers=llama_rerank_server.headers, top_n=1
    )
    docs = await reranker.acompress_documents([Document(page_content=d) for d in DOCUMENTS], QUERY)
    assert [d.page_content for d in docs] == ["weather in paris today"]
