"""Real engines for integration tests: provisioning, scripted tiny models and a server launcher.

Typical use::

    from engine_clients.testing import start_llama_server, start_vllm_server

    with start_llama_server() as server:   # builds llama.cpp and a scripted GGUF on first use
        print(server.base_url, server.model)

The scripted models answer plain chat with " Hello world." under greedy decoding, so tests can assert on real
engine output. Provision ahead of time (minutes, cold) with ``python -m engine_clients.testing provision``.
"""

from ._embedding import (
    EMBED_KEYWORDS,
    EMBED_MODEL_NAME,
    EMBED_STOPWORDS,
    EMBED_WORDS,
    RERANK_MODEL_NAME,
    scripted_embed_gguf,
    scripted_hf_embed_model,
    scripted_rerank_gguf,
    start_llama_embed_server,
    start_llama_rerank_server,
    start_vllm_pooling_server,
)
from ._vision import (
    VISION_IMAGE_TOKENS,
    VISION_MODEL_NAME,
    VLLM_VISION_IMAGE_TOKENS,
    start_llama_vision_server,
    start_vllm_vision_server,
    vision_gguf,
    vision_hf_model,
)
from .launcher import (
    DEFAULT_CONTEXT,
    DEFAULT_MODEL_NAME,
    EngineServer,
    EngineStartError,
    start_llama_server,
    start_vllm_server,
)
from .provision import (
    ProvisionError,
    cache_root,
    chat_template_path,
    ensure_llama_server,
    ensure_vllm,
    scripted_gguf,
    scripted_hf_model,
)

__all__ = [
    "DEFAULT_CONTEXT",
    "DEFAULT_MODEL_NAME",
    "EMBED_KEYWORDS",
    "EMBED_MODEL_NAME",
    "EMBED_STOPWORDS",
    "EMBED_WORDS",
    "RERANK_MODEL_NAME",
    "VISION_IMAGE_TOKENS",
    "VISION_MODEL_NAME",
    "VLLM_VISION_IMAGE_TOKENS",
    "EngineServer",
    "EngineStartError",
    "ProvisionError",
    "cache_root",
    "chat_template_path",
    "ensure_llama_server",
    "ensure_vllm",
    "scripted_embed_gguf",
    "scripted_gguf",
    "scripted_hf_embed_model",
    "scripted_hf_model",
    "scripted_rerank_gguf",
    "start_llama_embed_server",
    "start_llama_rerank_server",
    "start_llama_server",
    "start_llama_vision_server",
    "start_vllm_pooling_server",
    "start_vllm_server",
    "start_vllm_vision_server",
    "vision_gguf",
    "vision_hf_model",
]
