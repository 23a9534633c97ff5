"""A fully self-hosted RAG with LlamaIndex: documents -> VectorStoreIndex with LlamaCppEmbedding (llama-server
--embedding, one-hot bag-of-words vectors) -> SelfHostedRerank (llama-server --rerank, score grows with shared
keywords) -> an answer from LlamaCpp (the scripted chat model). The documents are built on the scripted
vocabulary so the right one is known: "weather in paris today" shares two keywords with the question."""

from __future__ import annotations

import pytest
from llama_index.core import Document
from llama_index.core import VectorStoreIndex
from llama_index.core.schema import NodeWithScore
from llama_index.core.schema import TextNode
from llama_index.embeddings.selfhosted import LlamaCppEmbedding
from llama_index.embeddings.selfhosted import TEIEmbedding
from llama_index.embeddings.selfhosted import VLLMEmbedding
from llama_index.llms.selfhosted import LlamaCpp
from llama_index.postprocessor.selfhosted_rerank import SelfHostedRerank

from engine_clients import ContextWindowExceededError
from engine_clients.testing import EngineServer

QUERY = "paris weather"
DOCUMENTS = [
    "python code examples",
    "weather in paris today",
    "paris travel guide",
    "berlin weather forecast",
    "the cat",
]


def test_classes_are_llamaindex_components() -> None:
    for cls in (LlamaCppEmbedding, VLLMEmbedding, TEIEmbedding):
        model = cls(base_url="http://127.0.0.1:1")
        assert model.class_name() == cls.__name__
        assert model.embed_batch_size == 2048  # the engine client splits by the server's limit
    assert SelfHostedRerank(engine="tei").class_name() == "SelfHostedRerank"


@pytest.mark.integration
def test_rag_retrieves_the_right_document(
    llama_embed_server: EngineServer, llama_rerank_server: EngineServer, llama_server: EngineServer
) -> None:
    embed = LlamaCppEmbedding(
        base_url=llama_embed_server.base_url, default_headers=llama_embed_server.headers, batch_size=2
    )
    index = VectorStoreIndex.from_documents(
        [Document(text=t, id_=f"doc{i}") for i, t in enumerate(DOCUMENTS)], embed_model=embed
    )
    reranker = SelfHostedRerank(
        base_url=llama_rerank_server.base_url, default_headers=llama_rerank_server.headers, top_n=2
    )
    llm = LlamaCpp(base_url=llama_server.base_url, default_headers=llama_server.headers, max_tokens=8)
    engine = index.as_query_engine(llm=llm, similarity_top_k=4, node_postprocessors=[reranker])
    response = engine.query(QUERY)
    sources = [n.node.get_content() for n in response.source_nodes]
    # two shared keywords first; then one of the one-keyword documents (they tie)
    assert sources[0] == "weather in paris today"
    assert sources[1] in ("paris travel guide", "berlin weather forecast")
    assert response.source_nodes[0].score is not None and response.source_nodes[0].score > 0.5
    assert str(response)  # the scripted model answered


@pytest.mark.integration
async def test_async_rag_and_embedding_errors(
    llama_embed_server: EngineServer, llama_rerank_server: EngineServer
) -> None:
    embed = LlamaCppEmbedding(
        base_url=llama_embed_server.base_url, default_headers=llama_embed_server.headers
    )
    vectors = await embed.aget_text_embedding_batch(DOCUMENTS)
    assert len(vectors) == len(DOCUMENTS)
    query = await embed.aget_query_embedding(QUERY)
    best = max(
        range(len(DOCUMENTS)), key=lambda i: sum(a * b for a, b in zip(query, vectors[i], strict=True))
    )
    assert best == 1
    with pytest.raises(ContextWindowExceededError):
        await embed.aget_query_embedding("cat " * 600)
    reranker = SelfHostedRerank(
        base_url=llama_rerank_server.base_url, default_headers=llama_rerank_server.headers, top_n=1
    )
    nodes = [NodeWithScore(node=TextNode(text=t), score=0.0) for t in DOCUMENTS]
    [top] = await reranker.apostprocess_nodes(nodes, query_str=QUERY)
    assert top.node.get_content() == "weather in paris today"
