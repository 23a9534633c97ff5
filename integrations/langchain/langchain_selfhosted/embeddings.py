"""LangChain ``Embeddings`` for self-hosted servers: :class:`LlamaCppEmbeddings` (llama-server
``--embedding``), :class:`VLLMEmbeddings` (vLLM ``--runner pooling``), :class:`TEIEmbeddings`
(text-embeddings-inference) and :class:`SGLangEmbeddings` (SGLang ``--is-embedding``). Sync and natively
async; batches follow the server's limit; errors are the ``langchain_selfhosted.errors`` classes
(``ContextWindowExceededError`` is also LangChain's ``ContextOverflowError``)."""

from __future__ import annotations

from langchain_core.embeddings import Embeddings

from engine_clients import LlamaCppClient
from engine_clients import SGLangClient
from engine_clients import TEIClient
from engine_clients import VLLMClient
from engine_clients._wrapper_fields import EmbeddingServerFields

from .errors import translate_errors

__all__ = [
    "LlamaCppEmbeddings",
    "SGLangEmbeddings",
    "SelfHostedClientMixin",
    "TEIEmbeddings",
    "VLLMEmbeddings",
]

SelfHostedClientMixin = EmbeddingServerFields
"""Connection fields and the lazily built engine client, shared by the embeddings and the reranker."""


class _EngineEmbeddings(SelfHostedClientMixin, Embeddings):
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        with translate_errors():
            return self._embed(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        with translate_errors():
            return await self._aembed(texts)

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
