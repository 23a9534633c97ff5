"""LangChain models for self-hosted TGI, vLLM and llama.cpp servers, built on ``engine_clients``.

Chat models (``BaseChatModel``): :class:`ChatTGI`, :class:`ChatVLLM`, :class:`ChatLlamaCpp`.
Text-completion LLMs on each engine's native text route: :class:`TGILLM`, :class:`VLLMLLM`,
:class:`LlamaCppLLM`.

Errors raised are ``engine_clients`` errors that also inherit from LangChain's (``ContextOverflowError``,
``ModelRateLimitError``, ...): see :mod:`integrations.langchain.errors`.
"""

from .chat_models import ChatLlamaCpp, ChatTGI, ChatVLLM
from .llms import TGILLM, VLLMLLM, LlamaCppLLM

__all__ = ["TGILLM", "VLLMLLM", "ChatLlamaCpp", "ChatTGI", "ChatVLLM", "LlamaCppLLM"]
