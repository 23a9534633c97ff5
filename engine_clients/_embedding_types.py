"""What ``embed`` and ``rerank`` return (kept apart from ``types.py``, which re-exports them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .types import Usage

__all__ = ["Embeddings", "RerankResult", "Reranking"]


@dataclass(slots=True)
class Embeddings:
    """Vectors of ``embed(texts)``, one list of floats per text in the order given."""

    vectors: list[list[float]]
    model: str | None = None
    usage: Usage | None = None
    """Prompt tokens of all the batches (None when the route reports none)."""
    engine: str | None = None


@dataclass(slots=True)
class RerankResult:
    """One document's relevance: ``index`` into the documents given, its ``score`` and its text."""

    index: int
    score: float
    document: str | None = None


@dataclass(slots=True)
class Reranking:
    """``rerank(query, documents)``: results best first, at most ``top_n``."""

    results: list[RerankResult]
    model: str | None = None
    usage: Usage | None = None
    engine: str | None = None
