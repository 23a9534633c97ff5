"""embed/rerank through engine_clients on the real servers of test_embedding_servers.py: llama-server
--embedding / --rerank and vLLM's pooling runner (max_model_len 512). Vectors match one-text requests, order
is kept across batches, usage is summed, over-long inputs are typed errors or truncated on request."""

from __future__ import annotations

import math

import pytest

from engine_clients import ContextWindowExceededError
from engine_clients import InvalidRequestError
from engine_clients import LlamaCppClient
from engine_clients import VLLMClient
from engine_clients import connect
from engine_clients.testing import EngineServer

pytestmark = pytest.mark.integration

QUERY = "paris weather"
DOCUMENTS = [
    "python code examples",
    "weather in paris today",
    "paris travel guide",
    "berlin weather forecast",
    "the cat",
]


def _cos(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (
        math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    )


@pytest.mark.parametrize("fixture", ["llama_embed_server", "vllm_pooling_server"])
async def test_embed_batches_keep_order_and_usage(fixture: str, request: pytest.FixtureRequest) -> None:
    server: EngineServer = request.getfixturevalue(fixture)
    client = connect(server.base_url, headers=server.headers)
    assert isinstance(client, LlamaCppClient | VLLMClient)
    with client:
        whole = client.embed(DOCUMENTS, batch_size=2)
        singles = [client.embed(d).vectors[0] for d in DOCUMENTS]
        assert len(whole.vectors) == len(DOCUMENTS)
        for got, want in zip(whole.vectors, singles, strict=True):
            assert got == pytest.approx(want, abs=1e-5)
        assert whole.usage is not None and whole.usage.prompt_tokens > 0
        assert whole.usage.prompt_tokens == sum(client.embed(d).usage.prompt_tokens for d in DOCUMENTS)  # type: ignore[union-attr]
        query = (await client.aembed(QUERY)).vectors[0]
        scores = [_cos(query, v) for v in whole.vectors]
        assert max(range(len(scores)), key=scores.__getitem__) == 1
        with pytest.raises(ContextWindowExceededError):
            client.embed("cat " * 600)


def test_llama_rerank(llama_rerank_server: EngineServer) -> None:
    with LlamaCppClient(llama_rerank_server.base_url, headers=llama_rerank_server.headers) as client:
        ranking = client.rerank(QUERY, DOCUMENTS, top_n=3, batch_size=2)
        assert ranking.results[0].index == 1 and ranking.results[0].document == DOCUMENTS[1]
        assert len(ranking.results) == 3
        assert [r.score for r in ranking.results] == sorted((r.score for r in ranking.results), reverse=True)
        whole = client.rerank(QUERY, DOCUMENTS)
        assert [r.index for r in whole.results][:1] == [1]
        assert whole.usage is not None and whole.usage.prompt_tokens == sum(
            4 + len(d.split()) for d in DOCUMENTS
        )
        with pytest.raises(InvalidRequestError):
            client.rerank(QUERY, DOCUMENTS, truncate=True)


async def test_vllm_rerank_and_truncate(vllm_pooling_server: EngineServer) -> None:
    async with VLLMClient(vllm_pooling_server.base_url, headers=vllm_pooling_server.headers) as client:
        ranking = await client.arerank(QUERY, DOCUMENTS, top_n=2)
        assert ranking.results[0].index == 1
        assert ranking.results[0].score == pytest.approx(2 / math.sqrt(2 * 4), abs=1e-3)
        cut = await client.aembed(["cat " * 600], truncate=True)
        assert len(cut.vectors[0]) == len((await client.aembed("cat")).vectors[0])
