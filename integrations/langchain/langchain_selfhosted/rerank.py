"""A reranker for LangChain retrievers: :class:`SelfHostedRerank`, a ``BaseDocumentCompressor`` (what
``ContextualCompressionRetriever`` takes) over the rerank route of llama-server (``--rerank``), vLLM,
text-embeddings-inference or SGLang. It keeps the ``top_n`` most relevant documents, best first, each with its
score in ``metadata["relevance_score"]``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from typing import Literal

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor
from langchain_core.documents import Document

from engine_clients import Reranking
from engine_clients._wrapper_fields import EmbeddingClient
from engine_clients._wrapper_fields import EmbeddingServerFields
from engine_clients._wrapper_fields import embedding_client_class

from .errors import translate_errors

__all__ = ["SelfHostedRerank"]


class SelfHostedRerank(EmbeddingServerFields, BaseDocumentCompressor):
    """``SelfHostedRerank(engine="llamacpp", base_url=...)``; ``engine``: ``"llamacpp"``, ``"vllm"``,
    ``"tei"`` or ``"sglang"`` (or pass ``client=`` a ready client or ``EnginePool``)."""

    engine: Literal["llamacpp", "vllm", "tei", "sglang"] = "llamacpp"
    top_n: int | None = 3
    """How many documents to keep (None: all, reordered)."""

    def _client_class(self) -> type[EmbeddingClient]:
        return embedding_client_class(self.engine)

    def _options(self, **extra: Any) -> dict[str, Any]:
        return super()._options(top_n=self.top_n, **extra)

    @staticmethod
    def _documents(documents: Sequence[Document], ranking: Reranking) -> list[Document]:
        out = []
        for r in ranking.results:
            doc = documents[r.index]
            out.append(
                Document(
                    page_content=doc.page_content,
                    metadata={**doc.metadata, "relevance_score": r.score},
                    id=doc.id,
                )
            )
        return out

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        with translate_errors():
            ranking = self.client.rerank(query, [d.page_content for d in documents], **self._options())
        return self._documents(documents, ranking)

    async def acompress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        with translate_errors():
            ranking = await self.client.arerank(query, [d.page_content for d in documents], **self._options())
        return self._documents(documents, ranking)
