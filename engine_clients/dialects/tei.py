"""Hugging Face text-embeddings-inference (TEI): embeddings, reranking, tokenize, ``/info`` and ``/health``.

Routes (``tests/data/tei-openapi.json``, TEI 1.9): ``/v1/embeddings`` (OpenAI shape, with usage) for plain
embeddings; ``/embed`` when the caller asks for truncation (only it has a ``truncate`` field; it answers a
bare list of vectors, no usage); ``/rerank`` (``query`` + ``texts``, a bare list of ``{index, score}``, no
``top_n``: the client cuts); ``/info`` (``max_client_batch_size``, ``max_input_length``, ``model_type``);
``/tokenize`` (``inputs``, a list of token lists). Errors are ``{"error": str, "error_type": ...}``; an input
over the limit is ``Input validation error: `inputs` must have less than N tokens. Given: M``. TEI serves
no text generation: chat and generate are refused before sending.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .._requests import ChatRequest
from .._requests import GenerateRequest
from ..types import Completion
from ..types import Embeddings
from ..types import EngineInfo
from ..types import Reranking
from ..types import RerankResult
from ..types import TokenInfo
from .base import HttpRequest
from .base import _guard
from .base import first_int
from .embeddings import EmbeddingCodec
from .embeddings import _floats
from .embeddings import _score

__all__ = ["TEIDialect"]

_CTX = re.compile(r"must have less than (\d+) tokens\. Given: (\d+)")


class TEIDialect(EmbeddingCodec):
    engine = "tei"
    embed_path = "/v1/embeddings"
    rerank_path = "/rerank"
    rerank_takes_model = False
    truncate_field = ("truncate", True)

    # -- no text generation --
    def build_chat(self, req: ChatRequest, stream: bool) -> HttpRequest:
        raise self.unsupported("chat (text-embeddings-inference serves embeddings and reranking)")

    def build_generate(self, req: GenerateRequest, stream: bool) -> HttpRequest:
        raise self.unsupported("generate (text-embeddings-inference serves embeddings and reranking)")

    def parse_generate(self, body: Any) -> Completion:
        raise NotImplementedError

    # -- limits and errors --
    def embed_limit_request(self) -> HttpRequest | None:
        return HttpRequest("GET", "/info")

    def parse_embed_limit(self, body: Any) -> int | None:
        size = body.get("max_client_batch_size") if isinstance(body, Mapping) else None
        return size if isinstance(size, int) and size > 0 else None

    def context_limits(self, message: str, obj: Any) -> tuple[int | None, int | None] | None:
        found = first_int(_CTX, message)
        return (found[1], found[0]) if found else None

    # -- embeddings: /v1/embeddings, or /embed to truncate --
    def build_embed(
        self, texts: list[str], model: str | None, truncate: bool, extra: Mapping[str, Any]
    ) -> HttpRequest:
        if not truncate:
            body: dict[str, Any] = {"input": texts, "encoding_format": "float"}
            if model or self.model:
                body["model"] = model or self.model
            body.update(extra)
            return HttpRequest("POST", "/v1/embeddings", body)
        return HttpRequest("POST", "/embed", {"inputs": texts, "truncate": True, **extra})

    @_guard
    def parse_embed(self, body: Any) -> Embeddings:
        if isinstance(body, list):  # /embed
            return Embeddings([_floats(v) for v in body], self.model, None, self.engine)
        parsed: Embeddings = super().parse_embed(body)
        return parsed

    # -- rerank: /rerank, no top_n or model on the wire --
    def rerank_body(self, query: str, documents: list[str], top_n: int | None) -> dict[str, Any]:
        return {"query": query, "texts": documents, "return_text": False}

    @_guard
    def parse_rerank(self, body: Any) -> Reranking:
        self.check(isinstance(body, list), "rerank", body)
        results = [RerankResult(int(r["index"]), _score(r["score"]), r.get("text")) for r in body]
        return Reranking(results, self.model, None, self.engine)

    # -- discovery --
    def info_requests(self) -> list[HttpRequest]:
        return [HttpRequest("GET", "/info")]

    @_guard
    def parse_info(self, bodies: list[Any]) -> EngineInfo:
        info = bodies[0]
        self.check(isinstance(info, Mapping) and "model_id" in info, "/info answer", info)
        limit = info.get("max_input_length")
        limit = limit if isinstance(limit, int) else None
        version = info.get("version")
        return EngineInfo(
            engine=self.engine,
            model=str(info.get("served_model_name") or info["model_id"]),
            version=version if isinstance(version, str) else None,
            max_input_tokens=limit,
            max_total_tokens=limit,
            raw={"info": info},
        )

    def build_tokenize(self, text: str, add_special_tokens: bool) -> HttpRequest:
        return HttpRequest("POST", "/tokenize", {"inputs": text, "add_special_tokens": add_special_tokens})

    @_guard
    def parse_tokenize(self, body: Any) -> list[TokenInfo]:
        self.check(
            isinstance(body, list) and bool(body) and isinstance(body[0], list), "tokenize answer", body
        )
        return [TokenInfo(int(t["id"]), t.get("text")) for t in body[0]]
