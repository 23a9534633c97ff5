"""The pydantic fields the wrapper distributions share, declared once here instead of once per wrapper:
the connection fields of every class, and the embedding and rerank wrappers' batching fields with the
client built from them (``langchain-selfhosted``'s ``*Embeddings`` and ``SelfHostedRerank``,
``llama-index-embeddings-selfhosted``, ``llama-index-postprocessor-selfhosted-rerank``).

Private: not part of ``engine_clients``' API; it changes together with the wrappers."""

from __future__ import annotations

from typing import Any
from typing import ClassVar

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import PrivateAttr
from pydantic import SecretStr

from ._clients import LlamaCppClient
from ._clients import SGLangClient
from ._clients import TEIClient
from ._clients import VLLMClient
from ._pool import EnginePool
from ._wrapper_support import batch_options
from ._wrapper_support import connection_kwargs

__all__ = [
    "ConnectionFields",
    "EmbeddingClient",
    "EmbeddingServerFields",
    "EmbeddingTarget",
    "embedding_client_class",
]

EmbeddingClient = LlamaCppClient | VLLMClient | TEIClient | SGLangClient
"""The engine clients with ``embed`` and ``rerank``."""
EmbeddingTarget = EmbeddingClient | EnginePool
"""What an embedding or rerank wrapper talks through."""

_BY_ENGINE: dict[str, type[EmbeddingClient]] = {
    "llamacpp": LlamaCppClient,
    "vllm": VLLMClient,
    "tei": TEIClient,
    "sglang": SGLangClient,
}


def embedding_client_class(engine: str) -> type[EmbeddingClient]:
    """The client class of a rerank wrapper's ``engine`` field (``"llamacpp"``, ``"vllm"``, ``"tei"`` or
    ``"sglang"``)."""
    return _BY_ENGINE[engine]


class ConnectionFields(BaseModel):
    """The connection fields of every wrapper class: chat models, LLMs, embeddings and rerankers."""

    model_config = ConfigDict(protected_namespaces=(), populate_by_name=True, arbitrary_types_allowed=True)

    base_url: str | None = None
    """Server URL; defaults to ``$<ENGINE>_BASE_URL`` (``VLLM_BASE_URL``, ``LLAMACPP_BASE_URL``,
    ``TGI_BASE_URL``, ``SGLANG_BASE_URL``, ``TEI_BASE_URL``)."""
    api_key: SecretStr | None = None
    """Bearer token; defaults to ``$<ENGINE>_API_KEY``. Never shown in repr, serialized or pickled."""
    model: str | None = None
    """Model id sent with each request. None: the server's own (a chat model reads its name from the server
    once, on first use, for metadata and tracing)."""
    timeout: float | None = None
    """Seconds; bounds the whole answer, and each stream chunk when streaming. None: the client's defaults."""
    max_retries: int = 2
    """Retries on connection errors, timeouts, 429 and 502/503/504 (before any output arrived)."""
    default_headers: dict[str, str] | None = None
    """Extra HTTP headers sent with every request."""
    http_backend: str | None = None
    """The async socket layer: ``"httpx"`` or ``"aiohttp"`` (faster for thousands of concurrent streams;
    ``pip install 'llm-engine-clients[aiohttp]'``). None: ``$ENGINE_CLIENTS_HTTP_BACKEND``, else httpx."""


class EmbeddingServerFields(ConnectionFields):
    """Connection and batching fields, and the engine client built from them on first use (or the one
    given as ``client=``, never closed here). Subclasses name their client class in ``client_class`` or
    override :meth:`_client_class`."""

    client_class: ClassVar[type[EmbeddingClient]]

    batch_size: int | None = None
    """Inputs per request; None: the server's limit (TEI's ``/info``), else the engine's default."""
    truncate: bool = False
    """Ask the server to cut inputs over the model's limit (vLLM, TEI); otherwise they raise
    ``ContextWindowExceededError``. SGLang has no per-request truncation and refuses it."""
    engine_client: EmbeddingTarget | None = Field(default=None, alias="client", exclude=True, repr=False)
    """``client=``: a ready ``engine_clients`` client or ``EnginePool`` (never closed by this object)."""

    _built: EmbeddingClient | None = PrivateAttr(default=None)

    def _client_class(self) -> type[EmbeddingClient]:
        return self.client_class

    @property
    def client(self) -> EmbeddingTarget:
        if self.engine_client is not None:
            return self.engine_client
        if self._built is None:
            self._built = self._client_class()(self.base_url, **connection_kwargs(self))
        return self._built

    def _embed(self, texts: list[str]) -> list[list[float]]:
        return self.client.embed(texts, **self._options()).vectors

    async def _aembed(self, texts: list[str]) -> list[list[float]]:
        return (await self.client.aembed(texts, **self._options())).vectors

    def _options(self, **extra: Any) -> dict[str, Any]:
        """``embed``/``rerank`` keywords (``extra``: ``top_n`` for rerank)."""
        return batch_options(self, **extra)
