"""LlamaIndex TEIEmbedding and SelfHostedRerank on a respx TEI fake: batches from /info, order, async,
top_n, node scores, a ready EnginePool as client."""

from __future__ import annotations

import json

import httpx
import pytest
import respx
from llama_index.core.schema import NodeWithScore
from llama_index.core.schema import TextNode
from llama_index.embeddings.selfhosted import TEIEmbedding
from llama_index.postprocessor.selfhosted_rerank import SelfHostedRerank

from engine_clients import EnginePool

URL = "http://tei.test"


def _fake(mock: respx.MockRouter, sizes: list[int]) -> None:
    mock.get("/info").respond(
        json={"model_id": "m", "max_client_batch_size": 2, "model_type": {"embedding": {}}}
    )

    def embed(request: httpx.Request) -> httpx.Response:
        texts = json.loads(request.content)["input"]
        sizes.append(len(texts))
        data = [
            {"object": "embedding", "index": i, "embedding": [float(len(t))]} for i, t in enumerate(texts)
        ]
        return httpx.Response(
            200,
            json={
                "object": "list",
                "data": data,
                "model": "m",
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            },
        )

    def rerank(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        return httpx.Response(
            200, json=[{"index": i, "score": float(len(t))} for i, t in enumerate(body["texts"])]
        )

    mock.post("/v1/embeddings").mock(side_effect=embed)
    mock.post("/rerank").mock(side_effect=rerank)


async def test_tei_embedding_batches_from_server() -> None:
    sizes: list[int] = []
    with respx.mock(base_url=URL, assert_all_called=False) as mock:
        _fake(mock, sizes)
        model = TEIEmbedding(base_url=URL)
        texts = ["a", "bb", "ccc", "dddd", "eeeee"]
        assert model.get_text_embedding_batch(texts) == [[1.0], [2.0], [3.0], [4.0], [5.0]]
        assert await model.aget_query_embedding("xyz") == [3.0]
    assert sizes == [2, 2, 1, 1]


async def test_reranker_keeps_top_n_with_scores() -> None:
    with respx.mock(base_url=URL, assert_all_called=False) as mock:
        _fake(mock, [])
        nodes = [NodeWithScore(node=TextNode(text=t), score=0.0) for t in ["a", "ccc", "bb"]]
        reranker = SelfHostedRerank(engine="tei", base_url=URL, top_n=2)
        top = reranker.postprocess_nodes(nodes, query_str="q")
        assert [(n.node.get_content(), n.score) for n in top] == [("ccc", 3.0), ("bb", 2.0)]
        pool = EnginePool([URL], engine="tei")
        try:
            pooled = SelfHostedRerank(client=pool, top_n=None)
            assert [n.node.get_content() for n in await pooled.apostprocess_nodes(nodes, query_str="q")] == [
                "ccc",
                "bb",
                "a",
            ]
        finally:
            await pool.aclose()
        assert reranker.postprocess_nodes([], query_str="q") == []
        with pytest.raises(ValueError):
            reranker.postprocess_nodes(nodes)
