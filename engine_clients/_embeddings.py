"""The pure half of ``embed``/``rerank``: input checks and batching (the calls: ``_async/embeddings.py``).

Everything engine-specific (routes, fields, limits) is in the dialect's
:class:`~engine_clients.dialects.embeddings.EmbeddingCodec`; the calls split the inputs into batches the
server accepts (its own limit when it publishes one, read once), send them through the same transport as
chat (same errors, retries, timeouts) and merge the answers in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .dialects.embeddings import EmbeddingCodec
from .errors import InvalidRequestError

__all__ = ["batch_size_of", "chunks_of", "codec_of", "rerank_inputs", "texts_of"]


def codec_of(dialect: Any) -> EmbeddingCodec:
    codec = dialect
    if not isinstance(codec, EmbeddingCodec):  # pragma: no cover - the mixin is only on embedding clients
        raise InvalidRequestError(f"{codec.engine} serves no embeddings")
    return codec


def texts_of(texts: Sequence[str] | str, what: str, engine: str) -> list[str]:
    items = [texts] if isinstance(texts, str) else list(texts)
    if not all(isinstance(t, str) for t in items):
        raise InvalidRequestError(f"{what} must be strings", engine=engine)
    return items


def chunks_of(items: list[str], size: int) -> list[tuple[int, list[str]]]:
    return [(i, items[i : i + size]) for i in range(0, len(items), size)]


def batch_size_of(given: int | None, engine: str) -> int | None:
    if given is not None and (isinstance(given, bool) or not isinstance(given, int) or given < 1):
        raise InvalidRequestError("batch_size must be a positive integer", engine=engine)
    return given


def _top_n(top_n: int | None, engine: str) -> int | None:
    if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 0):
        raise InvalidRequestError("top_n must be a non-negative integer", engine=engine)
    return top_n


def rerank_inputs(
    dialect: Any, query: str, documents: Sequence[str], top_n: int | None, batch_size: int | None
) -> tuple[EmbeddingCodec, str, list[str], int | None, int | None]:
    """The checked inputs of ``rerank``/``arerank``: codec, query, documents, top_n and a given batch size."""
    codec = codec_of(dialect)
    [checked] = texts_of([query], "query", codec.engine)
    docs = texts_of(documents, "documents", codec.engine)
    return codec, checked, docs, _top_n(top_n, codec.engine), batch_size_of(batch_size, codec.engine)
