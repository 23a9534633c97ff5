"""embed/rerank on TEIClient (respx fakes; every request body checked against TEI's OpenAPI document),
LlamaCppClient and VLLMClient (wire fields), and through EnginePool."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from engine_clients import ContextWindowExceededError
from engine_clients import EngineError
from engine_clients import EnginePool
from engine_clients import InvalidRequestError
from engine_clients import LlamaCppClient
from engine_clients import MalformedResponseError
from engine_clients import TEIClient
from engine_clients import VLLMClient
from tests.support.tei_openapi import validate_request

URL = "http://tei.test"
INFO = {
    "model_id": "BAAI/bge-small-en-v1.5",
    "model_dtype": "float16",
    "served_model_name": "bge-small",
    "model_type": {"embedding": {"pooling": "cls"}},
    "max_concurrent_requests": 512,
    "max_input_length": 512,
    "max_batch_tokens": 16384,
    "max_client_batch_size": 2,
    "auto_truncate": False,
    "tokenization_workers": 4,
    "version": "1.9.3",
}


def _vector(text: str) -> list[float]:
    return [float(len(text)), float(text.count("a"))]


class FakeTEI:
    """/info, /v1/embeddings, /embed, /rerank, /tokenize; records each body after checking it against the spec."""

    def __init__(self, mock: respx.MockRouter) -> None:
        self.bodies: list[tuple[str, Any]] = []
        mock.get("/info").respond(json=INFO)
        for path in ("/v1/embeddings", "/embed", "/rerank", "/tokenize"):
            mock.post(path).mock(side_effect=self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        path, body = request.url.path, json.loads(request.content)
        validate_request(path, body)
        self.bodies.append((path, body))
        if path == "/v1/embeddings":
            data = [
                {"object": "embedding", "index": i, "embedding": _vector(t)}
                for i, t in enumerate(body["input"])
            ]
            data.reverse()  # order comes from "index", not from the list
            n = sum(len(t.split()) for t in body["input"])
            return httpx.Response(
                200,
                json={
                    "object": "list",
                    "data": data,
                    "model": "bge-small",
                    "usage": {"prompt_tokens": n, "total_tokens": n},
                },
            )
        if path == "/embed":
            return httpx.Response(200, json=[_vector(t) for t in body["inputs"]])
        if path == "/rerank":
            q = set(body["query"].split())
            ranks = [{"index": i, "score": len(q & set(t.split())) / 10} for i, t in enumerate(body["texts"])]
            return httpx.Response(200, json=sorted(ranks, key=lambda r: -r["score"]))
        return httpx.Response(
            200, json=[[{"id": 7, "text": "paris", "special": False, "start": 0, "stop": 5}]]
        )


@pytest.fixture
def tei() -> Any:
    with respx.mock(base_url=URL, assert_all_called=False) as mock:
        yield FakeTEI(mock)


TEXTS = ["a", "bb a", "ccc", "dddd a a", "e"]


def test_tei_embed_batches_by_server_limit_in_order(tei: FakeTEI) -> None:
    with TEIClient(URL) as client:
        result = client.embed(TEXTS)
    assert result.vectors == [_vector(t) for t in TEXTS]
    assert [len(b["input"]) for p, b in tei.bodies] == [2, 2, 1]  # max_client_batch_size from /info
    assert all(b["encoding_format"] == "float" for _, b in tei.bodies)
    assert result.usage is not None and result.usage.prompt_tokens == 8  # summed over the batches
    assert result.model == "bge-small" and result.engine == "tei"


async def test_tei_aembed_and_explicit_batch_size(tei: FakeTEI) -> None:
    async with TEIClient(URL) as client:
        result = await client.aembed(TEXTS, batch_size=4)
    assert result.vectors == [_vector(t) for t in TEXTS]
    assert [len(b["input"]) for _, b in tei.bodies] == [4, 1]


def test_tei_truncate_uses_embed_route(tei: FakeTEI) -> None:
    with TEIClient(URL) as client:
        result = client.embed(["x a", "y"], truncate=True)
    assert tei.bodies == [("/embed", {"inputs": ["x a", "y"], "truncate": True})]
    assert result.vectors == [_vector("x a"), _vector("y")]
    assert result.usage is None  # /embed reports none


def test_tei_rerank_merges_batches_and_cuts_top_n(tei: FakeTEI) -> None:
    docs = ["python code", "paris weather today", "paris guide", "berlin weather", "cat"]
    with TEIClient(URL) as client:
        ranking = client.rerank("paris weather", docs, top_n=3)
    assert [r.index for r in ranking.results] == [1, 2, 3]  # ties keep document order
    assert [r.document for r in ranking.results] == [docs[1], docs[2], docs[3]]
    assert ranking.results[0].score == pytest.approx(0.2)
    assert [len(b["texts"]) for _, b in tei.bodies] == [2, 2, 1]
    assert all(p == "/rerank" and "top_n" not in b for p, b in tei.bodies)


async def test_tei_arerank_truncate_and_empty(tei: FakeTEI) -> None:
    async with TEIClient(URL) as client:
        ranking = await client.arerank("paris", ["paris", "cat"], truncate=True)
        assert [r.index for r in ranking.results] == [0, 1]
        assert tei.bodies[-1][1]["truncate"] is True
        assert (await client.arerank("paris", [])).results == []


def test_tei_info_tokenize_and_no_chat(tei: FakeTEI) -> None:
    with TEIClient(URL) as client:
        info = client.info()
        assert (info.engine, info.model, info.version, info.max_input_tokens) == (
            "tei",
            "bge-small",
            "1.9.3",
            512,
        )
        assert [(t.id, t.text) for t in client.tokenize("paris")] == [(7, "paris")]
        with pytest.raises(InvalidRequestError, match="chat"):
            client.chat("hi")


def test_tei_context_error_is_typed() -> None:
    body = {
        "error": "Input validation error: `inputs` must have less than 512 tokens. Given: 600",
        "error_type": "Validation",
    }
    with respx.mock(base_url=URL) as mock:
        mock.get("/info").respond(json=INFO)
        mock.post("/v1/embeddings").respond(413, json=body)
        with TEIClient(URL) as client, pytest.raises(ContextWindowExceededError) as exc:
            client.embed(["long"])
    assert (exc.value.prompt_tokens, exc.value.context_limit) == (600, 512)


def test_server_limit_unreadable_falls_back_and_retries_apply() -> None:
    with respx.mock(base_url=URL) as mock:
        mock.get("/info").respond(404)
        route = mock.post("/v1/embeddings")
        ok = {
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": [1.0]}],
            "model": "m",
            "usage": {"prompt_tokens": 1, "total_tokens": 1},
        }
        route.side_effect = [
            httpx.Response(503, json={"error": "overloaded", "error_type": "Overloaded"}),
            httpx.Response(200, json=ok),
        ]
        with TEIClient(URL, max_retries=1, timeout=5) as client:
            assert client.embed("x").vectors == [[1.0]]
            assert client.batch_limit() == 32  # the default when /info does not answer
    assert route.call_count == 2


def test_malformed_answers_are_typed() -> None:
    with respx.mock(base_url=URL) as mock:
        mock.post("/v1/embeddings").respond(
            json={"object": "list", "data": [{"index": 0, "embedding": "AAAA"}]}
        )
        mock.post("/v1/rerank").respond(json={"results": [{"index": 5, "relevance_score": 0.5}]})
        with LlamaCppClient(URL) as client:
            with pytest.raises(MalformedResponseError):
                client.embed(["a"])
            with pytest.raises(MalformedResponseError):
                client.rerank("q", ["a", "b"])


def _capture(mock: respx.MockRouter, path: str, answer: dict[str, Any]) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json=answer)

    mock.post(path).mock(side_effect=handle)
    return seen


EMB = {
    "object": "list",
    "data": [{"object": "embedding", "index": 0, "embedding": [0.5, 0.5]}],
    "model": "m",
    "usage": {"prompt_tokens": 3, "total_tokens": 3},
}
RERANK = {
    "model": "m",
    "results": [
        {"index": 1, "relevance_score": 0.9, "document": {"text": "b"}},
        {"index": 0, "relevance_score": 0.1},
    ],
    "usage": {"prompt_tokens": 9, "total_tokens": 9},
}


def test_vllm_wire_fields() -> None:
    with respx.mock(base_url=URL) as mock:
        emb = _capture(mock, "/v1/embeddings", EMB)
        rr = _capture(mock, "/v1/rerank", RERANK)
        with VLLMClient(URL, model="m") as client:
            client.embed(["a"], truncate=True)
            ranking = client.rerank("q", ["a", "b"], top_n=2, truncate=True)
    assert emb == [{"input": ["a"], "encoding_format": "float", "model": "m", "truncate_prompt_tokens": -1}]
    assert rr == [
        {"query": "q", "documents": ["a", "b"], "top_n": 2, "model": "m", "truncate_prompt_tokens": -1}
    ]
    assert [(r.index, r.document) for r in ranking.results] == [(1, "b"), (0, "a")]
    assert ranking.usage is not None and ranking.usage.prompt_tokens == 9


def test_llamacpp_wire_fields_and_truncate_refused() -> None:
    with respx.mock(base_url=URL) as mock:
        emb = _capture(mock, "/v1/embeddings", EMB)
        with LlamaCppClient(URL) as client:
            client.embed("a")
            with pytest.raises(InvalidRequestError, match="truncat"):
                client.embed("a", truncate=True)
            with pytest.raises(InvalidRequestError):
                client.embed([1, 2])  # type: ignore[list-item]
    assert emb == [{"input": ["a"], "encoding_format": "float"}]


def test_llamacpp_ubatch_error_is_context_window() -> None:
    body = {
        "error": {
            "code": 500,
            "message": "input (602 tokens) is too large to process. increase the physical batch size (current batch size: 512)",
            "type": "server_error",
        }
    }
    with respx.mock(base_url=URL) as mock:
        mock.post("/v1/embeddings").respond(500, json=body)
        with LlamaCppClient(URL, max_retries=0) as client, pytest.raises(ContextWindowExceededError) as exc:
            client.embed("cat " * 600)
    assert (exc.value.prompt_tokens, exc.value.context_limit) == (602, 512)


async def test_pool_routes_embed_and_rerank_with_failover() -> None:
    with respx.mock(assert_all_called=False) as mock:
        mock.post("http://a.test/v1/embeddings").mock(side_effect=httpx.ConnectError("refused"))
        mock.post("http://b.test/v1/embeddings").respond(json=EMB)
        mock.post("http://b.test/v1/rerank").respond(json=RERANK)
        mock.post("http://a.test/v1/rerank").respond(json=RERANK)
        pool = EnginePool(["http://a.test", "http://b.test"], engine="vllm", max_retries=0)
        try:
            for _ in range(2):
                assert pool.embed(["a"]).vectors == [[0.5, 0.5]]
            assert (await pool.aembed(["a"])).vectors == [[0.5, 0.5]]
            assert [r.index for r in pool.rerank("q", ["a", "b"]).results] == [1, 0]
            assert [r.index for r in (await pool.arerank("q", ["a", "b"], top_n=1)).results] == [1]
        finally:
            await pool.aclose()


def test_bad_arguments() -> None:
    with LlamaCppClient(URL) as client:
        with pytest.raises(InvalidRequestError):
            client.rerank("q", ["a"], top_n=-1)
        with pytest.raises(InvalidRequestError):
            client.embed(["a"], batch_size=0)
        assert client.rerank("q", ["a"], top_n=0).results == []
        assert client.embed([], batch_size=4).vectors == []
    assert issubclass(ContextWindowExceededError, EngineError)


def test_connect_detects_tei() -> None:
    from engine_clients import client_class
    from engine_clients import connect

    with respx.mock(base_url=URL, assert_all_called=False) as mock:
        mock.get("/info").respond(json=INFO)
        mock.get("/props").respond(404)
        mock.get("/version").respond(404)
        mock.get("/v1/models").respond(404)
        client = connect(URL)
    assert isinstance(client, TEIClient)
    assert client_class("text-embeddings-inference") is TEIClient
