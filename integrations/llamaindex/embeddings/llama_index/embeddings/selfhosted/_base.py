"""``BaseEmbedding`` over ``engine_clients``' ``embed``/``aembed``: sync and natively async.

LlamaIndex hands over up to ``embed_batch_size`` texts at a time (2048 by default here, its maximum); the
engine client then splits them into the batches the server takes (TEI's ``max_client_batch_size`` from
``/info``, else the engine's default, or ``batch_size``), keeping their order."""

from __future__ import annotations

from typing import Any, ClassVar

from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import ConfigDict, Field, PrivateAttr, SecretStr

from engine_clients import EnginePool, LlamaCppClient, SGLangClient, TEIClient, VLLMClient
from engine_clients._wrapper_support import batch_options, connection_kwargs

__all__ = ["EngineEmbedding", "LlamaCppEmbedding", "SGLangEmbedding", "TEIEmbedding", "VLLMEmbedding"]

Client = LlamaCppClient | VLLMClient | TEIClient | SGLangClient


class EngineEmbedding(BaseEmbedding):
    """Shared implementation: :class:`LlamaCppEmbedding`, :class:`VLLMEmbedding`, :class:`TEIEmbedding`,
    :class:`SGLangEmbedding`."""

    model_config = ConfigDict(protected_namespaces=(), populate_by_name=True, arbitrary_types_allowed=True)

    client_class: ClassVar[type[Client]]

    base_url: str | None = None
    """Server URL; defaults to ``$LLAMACPP_BASE_URL`` / ``$VLLM_BASE_URL`` / ``$TEI_BASE_URL`` /
    ``$SGLANG_BASE_URL``."""
    api_key: SecretStr | None = None
    model: str | None = None
    """Model name sent with each request (None: the server's own)."""
    timeout: float | None = None
    max_retries: int = 2
    default_headers: dict[str, str] | None = None
    http_backend: str | None = None  # "httpx" or "aiohttp" (None: $ENGINE_CLIENTS_HTTP_BACKEND)
    batch_size: int | None = None
    """Inputs per HTTP request; None: the server's limit."""
    truncate: bool = False
    """Ask the server to cut over-long inputs (vLLM, TEI; SGLang refuses it); otherwise
    ``ContextWindowExceededError``."""
    embed_batch_size: int = Field(default=2048, gt=0, le=2048)
    engine_client: Client | EnginePool | None = Field(default=None, alias="client", exclude=True, repr=False)
    """``client=``: a ready ``engine_clients`` client or ``EnginePool`` (never closed here)."""

    _built: Client | None = PrivateAttr(default=None)

    def __init__(self, base_url: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("model_name", kwargs.get("model") or "unknown")
        super().__init__(base_url=base_url, **kwargs)  # type: ignore[call-arg]  # pydantic fields

    @classmethod
    def class_name(cls) -> str:
        return cls.__name__

    @property
    def client(self) -> Client | EnginePool:
        if self.engine_client is not None:
            return self.engine_client
        if self._built is None:
            self._built = self.client_class(self.base_url, **connection_kwargs(self))
        return self._built

    def _options(self) -> dict[str, Any]:
        return batch_options(self)

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self.client.embed(texts, **self._options()).vectors

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return (await self.client.aembed(texts, **self._options())).vectors

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._get_text_embeddings([query])[0]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return (await self._aget_text_embeddings([query]))[0]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embeddings([text])[0]

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return (await self._aget_text_embeddings([text]))[0]


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
