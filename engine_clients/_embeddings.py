"""``embed``/``aembed`` and ``rerank``/``arerank``: the client side of embeddings and reranking.

A mixin for the clients whose engines serve them (llama.cpp, vLLM, TEI). Everything engine-specific (routes,
fields, limits) is in the dialect's :class:`~engine_clients.dialects.embeddings.EmbeddingCodec`; this module
splits the inputs into batches the server accepts (its own limit when it publishes one, read once), sends
them through the same transport as chat (same errors, retries, timeouts) and merges the answers in order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ._transport import AsyncTransport, SyncTransport
from .dialects.embeddings import EmbeddingCodec, merge_embeddings, merge_rerankings
from .errors import EngineError, InvalidRequestError
from .types import Embeddings, Reranking

__all__ = ["EmbeddingsMixin"]


class _Client(Protocol):
    """What the mixin needs from the client it is mixed into."""

    dialect: Any
    embed_batch_size: int | None

    @property
    def sync_transport(self) -> SyncTransport: ...

    @property
    def async_transport(self) -> AsyncTransport: ...

    def batch_limit(self) -> int: ...

    async def abatch_limit(self) -> int: ...


def _codec(client: _Client) -> EmbeddingCodec:
    codec = client.dialect
    if not isinstance(codec, EmbeddingCodec):  # pragma: no cover - the mixin is only on embedding clients
        raise InvalidRequestError(f"{codec.engine} serves no embeddings")
    return codec


def _texts(texts: Sequence[str] | str, what: str, engine: str) -> list[str]:
    items = [texts] if isinstance(texts, str) else list(texts)
    if not all(isinstance(t, str) for t in items):
        raise InvalidRequestError(f"{what} must be strings", engine=engine)
    return items


def _chunks(items: list[str], size: int) -> list[tuple[int, list[str]]]:
    return [(i, items[i : i + size]) for i in range(0, len(items), size)]


def _size(given: int | None, engine: str) -> int | None:
    if given is not None and (isinstance(given, bool) or not isinstance(given, int) or given < 1):
        raise InvalidRequestError("batch_size must be a positive integer", engine=engine)
    return given


def _top_n(top_n: int | None, engine: str) -> int | None:
    if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 0):
        raise InvalidRequestError("top_n must be a non-negative integer", engine=engine)
    return top_n


def _rerank_inputs(
    client: _Client, query: str, documents: Sequence[str], top_n: int | None, batch_size: int | None
) -> tuple[EmbeddingCodec, str, list[str], int | None, int | None]:
    """The checked inputs of ``rerank``/``arerank``: codec, query, documents, top_n and a given batch size."""
    codec = _codec(client)
    [checked] = _texts([query], "query", codec.engine)
    docs = _texts(documents, "documents", codec.engine)
    return codec, checked, docs, _top_n(top_n, codec.engine), _size(batch_size, codec.engine)


class EmbeddingsMixin:
    """``embed``/``rerank`` and their async twins, for clients whose dialect is an ``EmbeddingCodec``.

    ``embed_batch_size``: how many inputs one request carries; None (default) asks the server once (TEI's
    ``max_client_batch_size`` from ``/info``) and falls back to the dialect's default."""

    embed_batch_size: int | None = None

    # -- the server's batch limit, read once --
    def batch_limit(self: _Client) -> int:
        """How many inputs one embed or rerank request carries (the server's limit, else a default)."""
        if self.embed_batch_size is None:
            codec = _codec(self)
            req = codec.embed_limit_request()
            found = None
            if req is not None:
                try:
                    found = codec.parse_embed_limit(self.sync_transport.request(req))
                except EngineError:
                    found = None
            self.embed_batch_size = found or codec.default_embed_batch
        return self.embed_batch_size

    async def abatch_limit(self: _Client) -> int:
        if self.embed_batch_size is None:
            codec = _codec(self)
            req = codec.embed_limit_request()
            found = None
            if req is not None:
                try:
                    found = codec.parse_embed_limit(await self.async_transport.request(req))
                except EngineError:
                    found = None
            self.embed_batch_size = found or codec.default_embed_batch
        return self.embed_batch_size

    # -- embeddings --
    def embed(
        self: _Client,
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
        codec = _codec(self)
        items = _texts(texts, "texts", codec.engine)
        size = _size(batch_size, codec.engine) or self.batch_limit()
        parts = []
        for _, chunk in _chunks(items, size):
            http = codec.build_embed(chunk, model, truncate, extra_body or {})
            parts.append((len(chunk), codec.parse_embed(self.sync_transport.request(http))))
        return merge_embeddings(parts, codec.engine)

    async def aembed(
        self: _Client,
        texts: Sequence[str] | str,
        *,
        model: str | None = None,
        truncate: bool = False,
        batch_size: int | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> Embeddings:
        codec = _codec(self)
        items = _texts(texts, "texts", codec.engine)
        size = _size(batch_size, codec.engine) or await self.abatch_limit()
        parts = []
        for _, chunk in _chunks(items, size):
            http = codec.build_embed(chunk, model, truncate, extra_body or {})
            answer = await self.async_transport.request(http)
            parts.append((len(chunk), codec.parse_embed(answer)))
        return merge_embeddings(parts, codec.engine)

    # -- rerank --
    def rerank(
        self: _Client,
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
        codec, query, docs, top, size = _rerank_inputs(self, query, documents, top_n, batch_size)
        size = size or self.batch_limit()
        if not docs or top == 0:
            return Reranking([], model or codec.model, None, codec.engine)
        chunks = _chunks(docs, size)
        wire_top = top if len(chunks) == 1 else None
        parts = []
        for offset, chunk in chunks:
            http = codec.build_rerank(query, chunk, wire_top, model, truncate, extra_body or {})
            parts.append((offset, codec.parse_rerank(self.sync_transport.request(http))))
        return merge_rerankings(parts, docs, top, codec.engine)

    async def arerank(
        self: _Client,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | None = None,
        model: str | None = None,
        truncate: bool = False,
        batch_size: int | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> Reranking:
        codec, query, docs, top, size = _rerank_inputs(self, query, documents, top_n, batch_size)
        size = size or await self.abatch_limit()
        if not docs or top == 0:
            return Reranking([], model or codec.model, None, codec.engine)
        chunks = _chunks(docs, size)
        wire_top = top if len(chunks) == 1 else None
        parts = []
        for offset, chunk in chunks:
            http = codec.build_rerank(query, chunk, wire_top, model, truncate, extra_body or {})
            answer = await self.async_transport.request(http)
            parts.append((offset, codec.parse_rerank(answer)))
        return merge_rerankings(parts, docs, top, codec.engine)
