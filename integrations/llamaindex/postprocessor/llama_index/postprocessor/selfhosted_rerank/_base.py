"""``SelfHostedRerank``: reorders retrieved nodes by the server's relevance score and keeps ``top_n``."""

from __future__ import annotations

from typing import Any, Literal

from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle
from pydantic import ConfigDict, Field, PrivateAttr, SecretStr

from engine_clients import EnginePool, LlamaCppClient, Reranking, TEIClient, VLLMClient

__all__ = ["SelfHostedRerank"]

Client = LlamaCppClient | VLLMClient | TEIClient
_CLIENTS: dict[str, type[Client]] = {"llamacpp": LlamaCppClient, "vllm": VLLMClient, "tei": TEIClient}


class SelfHostedRerank(BaseNodePostprocessor):
    """``SelfHostedRerank(engine="llamacpp", base_url=..., top_n=3)``; ``engine``: ``"llamacpp"``,
    ``"vllm"`` or ``"tei"`` (or ``client=`` a ready client or ``EnginePool``). Each kept node's score
    becomes the server's relevance score; batches follow the server's limit."""

    model_config = ConfigDict(protected_namespaces=(), populate_by_name=True, arbitrary_types_allowed=True)

    engine: Literal["llamacpp", "vllm", "tei"] = "llamacpp"
    base_url: str | None = None
    api_key: SecretStr | None = None
    model: str | None = None
    timeout: float | None = None
    max_retries: int = 2
    default_headers: dict[str, str] | None = None
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
            self._built = _CLIENTS[self.engine](
                self.base_url,
                api_key=self.api_key,
                model=self.model,
                timeout=self.timeout,
                max_retries=self.max_retries,
                headers=self.default_headers,
            )
        return self._built

    def _options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"truncate": self.truncate, "top_n": self.top_n}
        if self.batch_size is not None:
            options["batch_size"] = self.batch_size
        if self.model is not None:
            options["model"] = self.model
        return options

    @staticmethod
    def _texts(nodes: list[NodeWithScore]) -> list[str]:
        return [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]

    @staticmethod
    def _apply(nodes: list[NodeWithScore], ranking: Reranking) -> list[NodeWithScore]:
        return [NodeWithScore(node=nodes[r.index].node, score=r.score) for r in ranking.results]

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        if query_bundle is None:
            raise ValueError("SelfHostedRerank needs the query (query_bundle or query_str)")
        if not nodes:
            return []
        ranking = self.client.rerank(query_bundle.query_str, self._texts(nodes), **self._options())
        return self._apply(nodes, ranking)

    async def _apostprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        if query_bundle is None:
            raise ValueError("SelfHostedRerank needs the query (query_bundle or query_str)")
        if not nodes:
            return []
        ranking = await self.client.arerank(query_bundle.query_str, self._texts(nodes), **self._options())
        return self._apply(nodes, ranking)
