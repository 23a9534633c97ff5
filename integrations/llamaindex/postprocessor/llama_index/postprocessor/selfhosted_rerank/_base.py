"""``SelfHostedRerank``: reorders retrieved nodes by the server's relevance score and keeps ``top_n``."""

from __future__ import annotations

from typing import Any
from typing import Literal

from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode
from llama_index.core.schema import NodeWithScore
from llama_index.core.schema import QueryBundle
from pydantic import ConfigDict

from engine_clients import Reranking
from engine_clients._wrapper_fields import EmbeddingClient
from engine_clients._wrapper_fields import EmbeddingServerFields
from engine_clients._wrapper_fields import embedding_client_class

__all__ = ["SelfHostedRerank"]


class SelfHostedRerank(EmbeddingServerFields, BaseNodePostprocessor):
    """``SelfHostedRerank(engine="llamacpp", base_url=..., top_n=3)``; ``engine``: ``"llamacpp"``,
    ``"vllm"``, ``"tei"`` or ``"sglang"`` (or ``client=`` a ready client or ``EnginePool``). Each kept node's
    score becomes the server's relevance score; batches follow the server's limit."""

    model_config = ConfigDict(protected_namespaces=(), populate_by_name=True, arbitrary_types_allowed=True)

    engine: Literal["llamacpp", "vllm", "tei", "sglang"] = "llamacpp"
    top_n: int | None = 3
    """How many nodes to keep (None: all, reordered)."""

    @classmethod
    def class_name(cls) -> str:
        return "SelfHostedRerank"

    def _client_class(self) -> type[EmbeddingClient]:
        return embedding_client_class(self.engine)

    def _options(self, **extra: Any) -> dict[str, Any]:
        return super()._options(top_n=self.top_n, **extra)

    @staticmethod
    def _texts(nodes: list[NodeWithScore]) -> list[str]:
        return [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]

    @staticmethod
    def _apply(nodes: list[NodeWithScore], ranking: Reranking) -> list[NodeWithScore]:
        return [NodeWithScore(node=nodes[r.index].node, score=r.score) for r in ranking.results]

    @staticmethod
    def _query(nodes: list[NodeWithScore], query_bundle: QueryBundle | None) -> str | None:
        """The query to rank ``nodes`` by; None: nothing to rank (no request)."""
        if query_bundle is None:
            raise ValueError("SelfHostedRerank needs the query (query_bundle or query_str)")
        return query_bundle.query_str if nodes else None

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        if (query := self._query(nodes, query_bundle)) is None:
            return []
        return self._apply(nodes, self.client.rerank(query, self._texts(nodes), **self._options()))

    async def _apostprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        if (query := self._query(nodes, query_bundle)) is None:
            return []
        return self._apply(nodes, await self.client.arerank(query, self._texts(nodes), **self._options()))
