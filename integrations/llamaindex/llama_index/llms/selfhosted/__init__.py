"""LlamaIndex LLMs for self-hosted inference servers: :class:`TGI`, :class:`VLLM`, :class:`LlamaCpp`,
:class:`SGLang`.

>>> from llama_index.core import Settings
>>> from llama_index.llms.selfhosted import LlamaCpp
>>> Settings.llm = LlamaCpp()          # LLAMACPP_BASE_URL, or LlamaCpp("http://127.0.0.1:8080")

:class:`EngineLLM` itself is the auto mode: ``EngineLLM("http://host:8080")`` detects the engine on first use
(``engine="vllm"`` skips that), with only the common sampling fields typed. Every class also takes
``client=``: a ready ``engine_clients`` client or an ``EnginePool`` of replicas
(``EngineLLM(client=EnginePool(["http://a:8000", "http://b:8000"], engine="vllm"))``).

All are ``FunctionCallingLLM``s (and ``CustomLLM``s) sharing :class:`EngineLLM`: chat, completion,
streaming and their async forms, tool calling (``FunctionAgent``), structured output through the engine's
constrained decoding, callbacks/instrumentation with the server's token counts, and metadata (context window,
model) read from the server on first use. Needs the ``llamaindex`` extra (``llama-index-core``).
"""

from ._base import EngineLLM
from ._convert import InvalidToolCallError
from ._engines import TGI
from ._engines import VLLM
from ._engines import LlamaCpp
from ._engines import SGLang

__all__ = ["TGI", "VLLM", "EngineLLM", "InvalidToolCallError", "LlamaCpp", "SGLang"]
