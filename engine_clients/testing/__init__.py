"""Real engines for integration tests: provisioning, scripted tiny models and a server launcher.

Typical use::

    from engine_clients.testing import start_llama_server, start_vllm_server

    with start_llama_server() as server:   # builds llama.cpp and a scripted GGUF on first use
        print(server.base_url, server.model)

The scripted models answer plain chat with " Hello world." under greedy decoding, so tests can assert on real
engine output. Provision ahead of time (minutes, cold) with ``python -m engine_clients.testing provision``.
SGLang cannot run on these machines: ``start_fake_sglang()`` runs a loopback server that answers like it
(``fake_sglang.py``)."""

from ._embedding import EMBED_KEYWORDS
from ._embedding import EMBED_MODEL_NAME
from ._embedding import EMBED_STOPWORDS
from ._embedding import EMBED_WORDS
from ._embedding import RERANK_MODEL_NAME
from ._embedding import scripted_embed_gguf
from ._embedding import scripted_hf_embed_model
from ._embedding import scripted_rerank_gguf
from ._embedding import start_llama_embed_server
from ._embedding import start_llama_rerank_server
from ._embedding import start_vllm_pooling_server
from ._lora import LORA_WORDS
from ._lora import lora_answer
from ._lora import scripted_lora_gguf
from ._lora import scripted_lora_peft
from ._lora import scripted_models_dir
from ._lora import start_llama_lora_server
from ._lora import start_llama_router
from ._lora import start_vllm_lora_server
from ._strict_templates import STRICT_TEMPLATES
from ._strict_templates import start_llama_strict_server
from ._strict_templates import start_vllm_strict_server
from ._strict_templates import strict_template_path
from ._strict_templates import write_strict_templates
from ._vision import VISION_IMAGE_TOKENS
from ._vision import VISION_MODEL_NAME
from ._vision import VLLM_VISION_IMAGE_TOKENS
from ._vision import start_llama_vision_server
from ._vision import start_vllm_vision_server
from ._vision import vision_gguf
from ._vision import vision_hf_model
from .fake_sglang import FakeSGLang
from .fake_sglang import start_fake_sglang
from .launcher import DEFAULT_CONTEXT
from .launcher import DEFAULT_MODEL_NAME
from .launcher import EngineServer
from .launcher import EngineStartError
from .launcher import start_llama_server
from .launcher import start_vllm_server
from .provision import ProvisionError
from .provision import cache_root
from .provision import chat_template_path
from .provision import ensure_llama_server
from .provision import ensure_vllm
from .provision import scripted_gguf
from .provision import scripted_hf_model

__all__ = [
    "DEFAULT_CONTEXT",
    "DEFAULT_MODEL_NAME",
    "EMBED_KEYWORDS",
    "EMBED_MODEL_NAME",
    "EMBED_STOPWORDS",
    "EMBED_WORDS",
    "LORA_WORDS",
    "RERANK_MODEL_NAME",
    "STRICT_TEMPLATES",
    "VISION_IMAGE_TOKENS",
    "VISION_MODEL_NAME",
    "VLLM_VISION_IMAGE_TOKENS",
    "EngineServer",
    "EngineStartError",
    "FakeSGLang",
    "ProvisionError",
    "cache_root",
    "chat_template_path",
    "ensure_llama_server",
    "ensure_vllm",
    "lora_answer",
    "scripted_embed_gguf",
    "scripted_gguf",
    "scripted_hf_embed_model",
    "scripted_hf_model",
    "scripted_lora_gguf",
    "scripted_lora_peft",
    "scripted_models_dir",
    "scripted_rerank_gguf",
    "start_fake_sglang",
    "start_llama_embed_server",
    "start_llama_lora_server",
    "start_llama_rerank_server",
    "start_llama_router",
    "start_llama_server",
    "start_llama_strict_server",
    "start_llama_vision_server",
    "start_vllm_lora_server",
    "start_vllm_pooling_server",
    "start_vllm_server",
    "start_vllm_strict_server",
    "start_vllm_vision_server",
    "strict_template_path",
    "vision_gguf",
    "vision_hf_model",
    "write_strict_templates",
]
