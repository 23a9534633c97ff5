"""``BaseEmbedding`` over ``engine_clients``' ``embed``/``aembed``: sync and natively async.

LlamaIndex hands over up to ``embed_batch_size`` texts at a time (2048 by default here, its maximum); the
engine client then splits them into the batches the server takes (TEI's ``max_client_batch_size`` from
``/info``, else the engine's default, or ``batch_size``), keeping their order."""

from __future__ import annotations

from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import ConfigDict
from pydantic import Field

from engine_clients import LlamaCppClient
from engine_clients import SGLangClient
from engine_clients import TEIClient
from engine_clients import VLLMClient
from engine_clients._wrapper_fields import EmbeddingServerFields

__all__ = ["EngineEmbedding", "LlamaCppEmbedding", "SGLangEmbedding", "TEIEmbedding", "VLLMEmbedding"]


class EngineEmbedding(EmbeddingServerFields, BaseEmbedding):
    """Shared implementation: :class:`LlamaCppEmbedding`, :class:`VLLMEmbedding`, :class:`TEIEmbedding`,
    :class:`SGLangEmbedding`. The connection and batching fields (``base_url``, ``api_key``, ``model``,
    ``timeout``, ``max_retries``, ``default_headers``, ``http_backend``, ``batch_size``, ``truncate``,
    ``client=``) are ``engine_clients``' shared wrapper fields."""

    model_config = ConfigDict(protected_namespaces=(), populate_by_name=True, arbitrary_types_allowed=True)

    embed_batch_size: int = Field(default=2048, gt=0, le=2048)

    def __init__(self, base_url: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("model_name", kwargs.get("model") or "unknown")
        super().__init__(base_url=base_url, **kwargs)

    @classmethod
    def class_name(cls) -> str:
        return cls.__name__

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._embed(texts)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return await self._aembed(texts)

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embed([query])[0]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return (await self._aembed([query]))[0]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embed([text])[0]

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return (await self._aembed([text]))[0]


class LlamaCppEmbedding(EngineEmbedding):
    """llama.cpp's llama-server started with ``--embedding`` (and ``--pooling``)."""

    client_class = LlamaCppClient


class VLLMEmbedding(EngineEmbedding):
    """vLLM serving a pooling model (``--runner pooling``)."""

    client_class = VLLMClient


class TEIEmbedding(EngineEmbedding):
    """Hugging Face text-embeddings-inference."""

    client_class = TEIClient


class SGLangEmbedding(EngineEmbedding):
    """SGLang serving an embedding model (``--is-embedding``)."""

    client_class = SGLangClient
