"""LlamaIndex embeddings for self-hosted servers: :class:`LlamaCppEmbedding` (llama-server ``--embedding``),
:class:`VLLMEmbedding` (vLLM ``--runner pooling``), :class:`TEIEmbedding` (text-embeddings-inference),
:class:`SGLangEmbedding` (SGLang ``--is-embedding``).

>>> from llama_index.core import Settings
>>> from llama_index.embeddings.selfhosted import LlamaCppEmbedding
>>> Settings.embed_model = LlamaCppEmbedding(base_url="http://127.0.0.1:8081")
"""

from ._base import EngineEmbedding
from ._base import LlamaCppEmbedding
from ._base import SGLangEmbedding
from ._base import TEIEmbedding
from ._base import VLLMEmbedding

__all__ = ["EngineEmbedding", "LlamaCppEmbedding", "SGLangEmbedding", "TEIEmbedding", "VLLMEmbedding"]
