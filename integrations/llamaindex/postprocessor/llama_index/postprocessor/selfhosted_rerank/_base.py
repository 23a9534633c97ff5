"""``SelfHostedRerank``: reorders retrieved nodes by the server's relevance score and keeps ``top_n``."""

from __future__ import annotations

from typing import Any, Literal

from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle
from pydantic import ConfigDict, Field, PrivateAttr, SecretStr

from engine_clients import EnginePool, LlamaCppClient, Reranking, SGLangClient, TEIClient, VLLMClient
from engine_clients._wrapper_support import batch_options, connection_kwargs

__all__ = ["SelfHostedRerank"]

Client = LlamaCppClient | VLLMClient | TEIClient | SGLangClient
_CLIENTS: dict[str, type[Client]] = {
    "llamacpp": LlamaCppClient,
    "vllm": VLLMClient,
    "tei": TEIClient,
    "sglang": SGLangClient,
}


class SelfHostedRerank(BaseNodePostprocessor):
    """``SelfHostedRerank(engine="llamacpp", base_url=..., top_n=3)``; ``engine``: ``"llamacpp"``,
    ``"vllm"``, ``"tei"`` or ``"sglang"`` (or ``client=`` a ready client or ``EnginePool``). Each kept node's
    score becomes the server's relevance score; batches follow the server's limit."""

    model_config = ConfigDict(protected_namespaces=(), populate_by_name=True, arbitrary_types_allowed=True)

    engine: Literal["llamacpp", "vllm", "tei", "sglang"] = "llamacpp"
    base_url: str | None = None
    api_key: SecretStr | None = None
    model: str | None = None
    timeout: float | None = None
    max_retries: int = 2
    default_headers: dict[str, str] | None = None
    http_backend: str | None = None  # "httpx" or "aiohttp" (None: $ENGINE_CLIENTS_HTTP_BACKEND)
    top_n: int | None = 3
    """How many nodes to keep (None: all, reordered)."""
    batch_size: int | None = None
    truncate: bool = False
    engine_client: Client | EnginePool | None = Field(default=None, alias="client", exclude=True, repr=False)

    _built: Client | None = PrivateAttr(default=None)

    @classmethod
    def class_name(cls) -> str:
        return "SelfHostedRerank"

    @property
    def client(self) -> Client | EnginePool:
        if self.engine_client is not None:
            return self.engine_client
        if self._built is None:
            self._built = _CLIENTS[self.engine](self.base_url, **connection_kwargs(self))
        return self._built

    def _options(self) -> dict[str, Any]:
        return batch_options(self, top_n=self.top_n)

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
