"""``aembed``/``arerank``: the calls behind embeddings and reranking, for clients whose engines serve them
(llama.cpp, vLLM, TEI). Input checks and batching are pure, in ``engine_clients/_embeddings.py``."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from .._client_core import ClientCore
from .._embeddings import batch_size_of
from .._embeddings import chunks_of
from .._embeddings import codec_of
from .._embeddings import rerank_inputs
from .._embeddings import texts_of
from ..dialects.embeddings import merge_embeddings
from ..dialects.embeddings import merge_rerankings
from ..errors import EngineError
from ..types import Embeddings
from ..types import Reranking

__all__ = ["AsyncEmbeddingsAPI"]


class AsyncEmbeddingsAPI(ClientCore):
    """``aembed``/``arerank`` for clients whose dialect is an ``EmbeddingCodec``."""

    embed_batch_size: int | None = None

    async def abatch_limit(self) -> int:
        """How many inputs one embed or rerank request carries (the server's limit, else a default)."""
        if self.embed_batch_size is None:
            codec = codec_of(self.dialect)
            req = codec.embed_limit_request()
            found = None
            if req is not None:
                try:
                    found = codec.parse_embed_limit(await self.async_transport.request(req))
                except EngineError:
                    found = None
            self.embed_batch_size = found or codec.default_embed_batch
        return self.embed_batch_size

    async def aembed(
        self,
        texts: Sequence[str] | str,
        *,
        model: str | None = None,
        truncate: bool = False,
        batch_size: int | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> Embeddings:
        """One vector (floats) per text, in order. Batches follow the server's limit (or ``batch_size``).

        An input over the model's token limit raises :class:`ContextWindowExceededError`, unless
        ``truncate=True`` asks the engine to cut it (engines with no such field refuse ``truncate``)."""
        codec = codec_of(self.dialect)
        items = texts_of(texts, "texts", codec.engine)
        size = batch_size_of(batch_size, codec.engine) or await self.abatch_limit()
        parts = []
        for _, chunk in chunks_of(items, size):
            http = codec.build_embed(chunk, model, truncate, extra_body or {})
            answer = await self.async_transport.request(http)
            parts.append((len(chunk), codec.parse_embed(answer)))
        return merge_embeddings(parts, codec.engine)

    async def arerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | None = None,
        model: str | None = None,
        truncate: bool = False,
        batch_size: int | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> Reranking:
        """Documents by relevance to ``query``, best first, at most ``top_n``; each result has the
        document's ``index`` in ``documents``, its ``score`` and its text. More documents than one request
        takes are reranked in batches and merged (scores of one model are comparable across requests)."""
        codec, query, docs, top, size = rerank_inputs(self.dialect, query, documents, top_n, batch_size)
        size = size or await self.abatch_limit()
        if not docs or top == 0:
            return Reranking([], model or codec.model, None, codec.engine)
        chunks = chunks_of(docs, size)
        wire_top = top if len(chunks) == 1 else None
        parts = []
        for offset, chunk in chunks:
            http = codec.build_rerank(query, chunk, wire_top, model, truncate, extra_body or {})
            answer = await self.async_transport.request(http)
            parts.append((offset, codec.parse_rerank(answer)))
        return merge_rerankings(parts, docs, top, codec.engine)
