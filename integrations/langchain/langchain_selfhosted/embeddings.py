"""LangChain ``Embeddings`` for self-hosted servers: :class:`LlamaCppEmbeddings` (llama-server
``--embedding``), :class:`VLLMEmbeddings` (vLLM ``--runner pooling``), :class:`TEIEmbeddings`
(text-embeddings-inference) and :class:`SGLangEmbeddings` (SGLang ``--is-embedding``). Sync and natively
async; batches follow the server's limit; errors are the ``langchain_selfhosted.errors`` classes
(``ContextWindowExceededError`` is also LangChain's ``ContextOverflowError``)."""

from __future__ import annotations

from typing import Any, ClassVar

from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr

from engine_clients import EnginePool, LlamaCppClient, SGLangClient, TEIClient, VLLMClient
from engine_clients._wrapper_support import batch_options, connection_kwargs

from .errors import translate_errors

__all__ = [
    "LlamaCppEmbeddings",
    "SGLangEmbeddings",
    "SelfHostedClientMixin",
    "TEIEmbeddings",
    "VLLMEmbeddings",
]

Client = LlamaCppClient | VLLMClient | TEIClient | SGLangClient
EmbeddingClient = Client | EnginePool


class SelfHostedClientMixin(BaseModel):
    """Connection fields and the lazily built engine client, shared by the embeddings and the reranker."""

    model_config = ConfigDict(protected_namespaces=(), populate_by_name=True, arbitrary_types_allowed=True)

    client_class: ClassVar[type[Client]]

    base_url: str | None = None
    """Server URL; defaults to ``$<ENGINE>_BASE_URL`` (``LLAMACPP_BASE_URL``, ``VLLM_BASE_URL``,
    ``TEI_BASE_URL``, ``SGLANG_BASE_URL``)."""
    api_key: SecretStr | None = None
    """Bearer token; defaults to ``$<ENGINE>_API_KEY``."""
    model: str | None = None
    """Model name sent with each request (None: the server's own)."""
    timeout: float | None = None
    max_retries: int = 2
    default_headers: dict[str, str] | None = None
    http_backend: str | None = None  # "httpx" or "aiohttp" (None: $ENGINE_CLIENTS_HTTP_BACKEND)
    batch_size: int | None = None
    """Inputs per request; None: the server's limit (TEI's ``/info``), else the engine's default."""
    truncate: bool = False
    """Ask the server to cut inputs over the model's limit (vLLM, TEI); otherwise they raise
    ``ContextWindowExceededError``. SGLang has no per-request truncation and refuses it."""
    engine_client: EmbeddingClient | None = Field(default=None, alias="client", exclude=True, repr=False)
    """``client=``: a ready ``engine_clients`` client or ``EnginePool`` (never closed by this object)."""

    _built: Client | None = PrivateAttr(default=None)

    @property
    def client(self) -> EmbeddingClient:
        if self.engine_client is not None:
            return self.engine_client
        if self._built is None:
            self._built = self.client_class(self.base_url, **connection_kwargs(self))
        return self._built

    def _options(self) -> dict[str, Any]:
        return batch_options(self)


class _EngineEmbeddings(SelfHostedClientMixin, Embeddings):
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        with translate_errors():
            return self.client.embed(texts, **self._options()).vectors

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        with translate_errors():
            return (await self.client.aembed(texts, **self._options())).vectors

    async def aembed_query(self, text: str) -> list[float]:
        return (await self.aembed_documents([text]))[0]


class LlamaCppEmbeddings(_EngineEmbeddings):
    """Embeddings from llama.cpp's llama-server started with ``--embedding`` (and ``--pooling``)."""

    client_class = LlamaCppClient


class VLLMEmbeddings(_EngineEmbeddings):
    """Embeddings from vLLM serving a pooling model (``--runner pooling``)."""

    client_class = VLLMClient


class TEIEmbeddings(_EngineEmbeddings):
    """Embeddings from Hugging Face text-embeddings-inference."""

    client_class = TEIClient


class SGLangEmbeddings(_EngineEmbeddings):
    """Embeddings from SGLang serving an embedding model (``--is-embedding``)."""

    client_class = SGLangClient
