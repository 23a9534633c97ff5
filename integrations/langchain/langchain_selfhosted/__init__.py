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

from .chat_models import ChatEngine, ChatLlamaCpp, ChatSGLang, ChatTGI, ChatVLLM
from .embeddings import LlamaCppEmbeddings, SGLangEmbeddings, TEIEmbeddings, VLLMEmbeddings
from .llms import TGILLM, VLLMLLM, EngineTextLLM, LlamaCppLLM, SGLangLLM
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
