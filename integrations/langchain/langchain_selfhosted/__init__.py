"""LangChain models for self-hosted TGI, vLLM, llama.cpp and SGLang servers, built on ``engine_clients``.

Chat models (``BaseChatModel``): :class:`ChatTGI`, :class:`ChatVLLM`, :class:`ChatLlamaCpp`,
:class:`ChatSGLang`, and :class:`ChatEngine`, which detects the engine behind a URL on first use (or takes
``engine=``). Text-completion LLMs on each engine's native text route: :class:`TGILLM`, :class:`VLLMLLM`,
:class:`LlamaCppLLM`, :class:`SGLangLLM`, and the auto-detecting :class:`EngineTextLLM`.

Embeddings (``Embeddings``): :class:`LlamaCppEmbeddings`, :class:`VLLMEmbeddings`, :class:`TEIEmbeddings`,
:class:`SGLangEmbeddings`; a reranker for ``ContextualCompressionRetriever``: :class:`SelfHostedRerank`.

Every class also takes ``client=``: a ready ``engine_clients`` client or an ``EnginePool`` of replicas
(``ChatEngine(client=EnginePool(["http://a:8000", "http://b:8000"], engine="vllm"))``).

Errors raised are ``engine_clients`` errors that also inherit from LangChain's (``ContextOverflowError``,
``ModelRateLimitError``, ...): see :mod:`langchain_selfhosted.errors`.
"""

from .chat_models import ChatEngine
from .chat_models import ChatLlamaCpp
from .chat_models import ChatSGLang
from .chat_models import ChatTGI
from .chat_models import ChatVLLM
from .embeddings import LlamaCppEmbeddings
from .embeddings import SGLangEmbeddings
from .embeddings import TEIEmbeddings
from .embeddings import VLLMEmbeddings
from .llms import TGILLM
from .llms import VLLMLLM
from .llms import EngineTextLLM
from .llms import LlamaCppLLM
from .llms import SGLangLLM
from .rerank import SelfHostedRerank

__all__ = [
    "TGILLM",
    "VLLMLLM",
    "ChatEngine",
    "ChatLlamaCpp",
    "ChatSGLang",
    "ChatTGI",
    "ChatVLLM",
    "EngineTextLLM",
    "LlamaCppEmbeddings",
    "LlamaCppLLM",
    "SGLangEmbeddings",
    "SGLangLLM",
    "SelfHostedRerank",
    "TEIEmbeddings",
    "VLLMEmbeddings",
]
