"""Embedding and rerank codecs: the OpenAI ``/v1/embeddings`` and Jina-style ``/v1/rerank`` shapes that
llama.cpp and vLLM share, with each engine's own fields (truncation, batch limits) set by its subclass.

Pure codecs like the rest of ``dialects``: a request description in, typed results out, no I/O. Vectors are
always asked for as floats (``encoding_format: "float"``), never base64.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import ClassVar

from ..errors import MalformedResponseError
from ..types import Embeddings
from ..types import Reranking
from ..types import RerankResult
from ..types import Usage
from .base import HttpRequest
from .base import _guard
from .base import parse_usage
from .openai_compat import OpenAICompatDialect

__all__ = ["EmbeddingCodec", "merge_embeddings", "merge_rerankings"]

DEFAULT_EMBED_BATCH = 32


class EmbeddingCodec(OpenAICompatDialect):
    """OpenAI-style embeddings and Jina-style rerank; subclasses name their routes and truncation field."""

    embed_path: ClassVar[str] = "/v1/embeddings"
    rerank_path: ClassVar[str] = "/v1/rerank"
    default_embed_batch: ClassVar[int] = DEFAULT_EMBED_BATCH
    truncate_field: ClassVar[tuple[str, Any] | None] = None
    """(field, value) sent when the caller asks for truncation; None: the engine has no such field."""
    rerank_takes_model: ClassVar[bool] = True
    """False: the rerank request has no ``model`` field (one model per server)."""

    # -- limits --
    def embed_limit_request(self) -> HttpRequest | None:
        """The discovery request whose answer says how many inputs one request may carry (None: no route)."""
        return None

    def parse_embed_limit(self, body: Any) -> int | None:
        return None

    # -- embeddings --
    def apply_truncate(self, body: dict[str, Any], truncate: bool) -> None:
        if not truncate:
            return
        if self.truncate_field is None:
            raise self.unsupported(
                "truncating inputs (no request field for it): shorten the texts, or catch"
                " ContextWindowExceededError"
            )
        body[self.truncate_field[0]] = self.truncate_field[1]

    def build_embed(
        self, texts: list[str], model: str | None, truncate: bool, extra: Mapping[str, Any]
    ) -> HttpRequest:
        body: dict[str, Any] = {"input": texts, "encoding_format": "float"}
        if model or self.model:
            body["model"] = model or self.model
        self.apply_truncate(body, truncate)
        body.update(extra)
        return HttpRequest("POST", self.embed_path, body)

    @_guard
    def parse_embed(self, body: Any) -> Embeddings:
        self.check(isinstance(body, Mapping) and isinstance(body.get("data"), list), "embeddings", body)
        items = sorted(body["data"], key=lambda item: int(item["index"]))
        vectors = [_floats(item["embedding"]) for item in items]
        model = body.get("model")
        return Embeddings(
            vectors, model if isinstance(model, str) else None, parse_usage(body.get("usage")), self.engine
        )

    # -- rerank --
    def build_rerank(
        self,
        query: str,
        documents: list[str],
        top_n: int | None,
        model: str | None,
        truncate: bool,
        extra: Mapping[str, Any],
    ) -> HttpRequest:
        body = self.rerank_body(query, documents, top_n)
        if self.rerank_takes_model and (model or self.model):
            body["model"] = model or self.model
        self.apply_truncate(body, truncate)
        body.update(extra)
        return HttpRequest("POST", self.rerank_path, body)

    def rerank_body(self, query: str, documents: list[str], top_n: int | None) -> dict[str, Any]:
        """The engine's own rerank fields (Jina-style here)."""
        body: dict[str, Any] = {"query": query, "documents": documents}
        if top_n is not None:
            body["top_n"] = top_n
        return body

    @_guard
    def parse_rerank(self, body: Any) -> Reranking:
        self.check(isinstance(body, Mapping) and isinstance(body.get("results"), list), "rerank", body)
        results = [
            RerankResult(int(r["index"]), _score(r["relevance_score"]), _doc_text(r.get("document")))
            for r in body["results"]
        ]
        model = body.get("model")
        return Reranking(
            results, model if isinstance(model, str) else None, parse_usage(body.get("usage")), self.engine
        )


def _floats(v: Any) -> list[float]:
    if not isinstance(v, list):
        raise TypeError(f"an embedding is a list of numbers, got {type(v).__name__}")
    return [float(x) for x in v]


def _score(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ValueError(f"a relevance score is a finite number, got {v!r}")
    return float(v)


def _doc_text(doc: Any) -> str | None:
    if isinstance(doc, str):
        return doc
    if isinstance(doc, Mapping) and isinstance(doc.get("text"), str):
        return str(doc["text"])
    return None


def _add_usage(total: Usage | None, part: Usage | None) -> Usage | None:
    if part is None:
        return total
    if total is None:
        return Usage(part.prompt_tokens, part.completion_tokens, part.total_tokens)
    total.prompt_tokens += part.prompt_tokens
    total.completion_tokens += part.completion_tokens
    total.total_tokens += part.total_tokens
    return total


def merge_embeddings(parts: Sequence[tuple[int, Embeddings]], engine: str) -> Embeddings:
    """One result from the batches (``(batch length, embeddings)`` each), in order; usage summed over the
    batches that report it."""
    out = Embeddings([], None, None, engine)
    for size, part in parts:
        if len(part.vectors) != size:
            raise MalformedResponseError(f"{len(part.vectors)} embeddings for {size} inputs", engine=engine)
        out.vectors.extend(part.vectors)
        out.model = out.model or part.model
        out.usage = _add_usage(out.usage, part.usage)
    return out


def merge_rerankings(
    parts: Sequence[tuple[int, Reranking]], documents: Sequence[str], top_n: int | None, engine: str
) -> Reranking:
    """One ranking from batches reranked apart (``(offset, ranking)`` each): indices into ``documents``,
    best first (ties keep document order), cut to ``top_n``, each with its document text."""
    out = Reranking([], None, None, engine)
    for n, (offset, part) in enumerate(parts):
        end = parts[n + 1][0] if n + 1 < len(parts) else len(documents)
        for r in part.results:
            if not 0 <= r.index < end - offset:
                raise MalformedResponseError(
                    f"rerank answer names document {r.index} of {end - offset}", engine=engine
                )
            out.results.append(RerankResult(r.index + offset, r.score, documents[r.index + offset]))
        out.model = out.model or part.model
        out.usage = _add_usage(out.usage, part.usage)
    out.results.sort(key=lambda r: (-r.score, r.index))
    if top_n is not None:
        del out.results[top_n:]
    return out
