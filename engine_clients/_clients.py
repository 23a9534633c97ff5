"""``TGIClient``, ``VLLMClient``, ``LlamaCppClient``, ``TEIClient``, ``SGLangClient``: a dialect paired with
the transport.

A client is three parts, each read on its own: ``_client_core.ClientCore`` (configuration, request building,
spans, lifecycle), the calls written once in ``_async/client.py`` (``achat``...) with their generated twins
in ``_sync/client.py`` (``chat``...) on top of the model and adapter calls of ``_async/models.py``
(``models``, ``adapters``, ``load_model``...), and, for engines that serve them, embeddings and rerank
(``_async/embeddings.py``). Everything engine-specific is in the dialect the class names.
"""

from __future__ import annotations

from typing import Any

from ._async.client import AsyncClientAPI
from ._async.embeddings import AsyncEmbeddingsAPI
from ._sync.client import SyncClientAPI
from ._sync.embeddings import SyncEmbeddingsAPI
from .dialects import LlamaCppDialect
from .dialects import TGIDialect
from .dialects import VLLMDialect
from .dialects.sglang import SGLangDialect
from .dialects.tei import TEIDialect

__all__ = ["BaseClient", "LlamaCppClient", "SGLangClient", "TEIClient", "TGIClient", "VLLMClient"]


class BaseClient(SyncClientAPI, AsyncClientAPI):
    """Shared implementation; use :class:`TGIClient`, :class:`VLLMClient` or :class:`LlamaCppClient`."""


class EmbeddingsMixin(SyncEmbeddingsAPI, AsyncEmbeddingsAPI):
    """``embed``/``rerank`` and their async twins, for clients whose dialect is an ``EmbeddingCodec``.

    ``embed_batch_size``: how many inputs one request carries; None (default) asks the server once (TEI's
    ``max_client_batch_size`` from ``/info``) and falls back to the dialect's default."""

    embed_batch_size: int | None = None


class TGIClient(BaseClient):
    """Hugging Face Text Generation Inference. Base URL from the argument or ``TGI_BASE_URL``."""

    dialect_class = TGIDialect
    env_prefix = "TGI"


class VLLMClient(EmbeddingsMixin, BaseClient):
    """vLLM's OpenAI-compatible server. Base URL from the argument or ``VLLM_BASE_URL``.

    ``embed``/``rerank`` need a pooling model (``--runner pooling``)."""

    dialect_class = VLLMDialect
    env_prefix = "VLLM"


class LlamaCppClient(EmbeddingsMixin, BaseClient):
    """llama.cpp's llama-server. Base URL from the argument or ``LLAMACPP_BASE_URL``.

    ``embed`` needs ``--embedding`` (with ``--pooling``), ``rerank`` needs ``--rerank``."""

    dialect_class = LlamaCppDialect
    env_prefix = "LLAMACPP"

    def affinity_params(self, slot: int) -> dict[str, Any]:
        """Pin the session to one llama-server slot and reuse its KV cache (``id_slot``, ``cache_prompt``);
        a negative ``slot`` lets the server choose (it picks the slot with the most similar cached prompt)."""
        return {"id_slot": slot, "cache_prompt": True} if slot >= 0 else {"cache_prompt": True}


class TEIClient(EmbeddingsMixin, BaseClient):
    """Hugging Face text-embeddings-inference: ``embed``/``rerank``, ``info``, ``health``, ``tokenize`` (no
    chat or text generation). Base URL from the argument or ``TEI_BASE_URL``."""

    dialect_class = TEIDialect
    env_prefix = "TEI"


class SGLangClient(EmbeddingsMixin, BaseClient):
    """SGLang's server (``python -m sglang.launch_server``). Base URL from the argument or
    ``SGLANG_BASE_URL``.

    ``chat`` uses ``/v1/chat/completions`` (reasoning needs ``--reasoning-parser``, tool calls
    ``--tool-call-parser``); ``generate`` uses the native ``/generate``, whose cumulative stream text is
    turned into deltas. ``embed``/``rerank`` need an embedding or reranker model (``--is-embedding``)."""

    dialect_class = SGLangDialect
    env_prefix = "SGLANG"
