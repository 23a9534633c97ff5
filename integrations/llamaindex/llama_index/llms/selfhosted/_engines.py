"""The engine LLMs: each declares its client class and its engine's own sampling fields, nothing else."""

from typing import ClassVar

from llama_index.core.bridge.pydantic import Field

from engine_clients import BaseClient
from engine_clients import LlamaCppClient
from engine_clients import SGLangClient
from engine_clients import TGIClient
from engine_clients import VLLMClient

from ._base import COMMON_PARAMS
from ._base import EngineLLM

__all__ = ["TGI", "VLLM", "LlamaCpp", "SGLang"]


class TGI(EngineLLM):
    """Hugging Face Text Generation Inference as a LlamaIndex LLM.

    >>> from llama_index.llms.selfhosted import TGI
    >>> llm = TGI("http://127.0.0.1:8080", max_tokens=256)   # or set TGI_BASE_URL
    >>> print(llm.complete("Hello").text)

    ``model`` is sent only per request (TGI reads it as a LoRA adapter id). ``top_k``,
    ``repetition_penalty`` and ``typical_p`` apply to the native ``/generate`` route
    (``complete(..., formatted=True)``): TGI's chat route does not take them.
    """

    client_class: ClassVar[type[BaseClient]] = TGIClient
    chat_params: ClassVar[tuple[str, ...]] = (*COMMON_PARAMS, "tool_prompt")
    text_params: ClassVar[tuple[str, ...]] = (*COMMON_PARAMS, "top_k", "repetition_penalty", "typical_p")

    top_k: int | None = Field(default=None, description="Top-k sampling (native /generate route only).")
    repetition_penalty: float | None = Field(
        default=None, description="Repetition penalty (native /generate route only)."
    )
    typical_p: float | None = Field(default=None, description="Typical sampling mass (/generate only).")
    tool_prompt: str | None = Field(
        default=None, description="Text TGI puts before the tool definitions in tool-calling prompts."
    )


class _SharedSampling(EngineLLM):
    """The sampling extras that vLLM, llama.cpp and SGLang all read, on both routes."""

    chat_params: ClassVar[tuple[str, ...]] = (*COMMON_PARAMS, "top_k", "min_p", "repetition_penalty")
    text_params: ClassVar[tuple[str, ...]] = chat_params

    top_k: int | None = Field(default=None, description="Top-k sampling.")
    min_p: float | None = Field(default=None, description="Min-p sampling.")
    repetition_penalty: float | None = Field(default=None, description="Repetition penalty.")


class VLLM(_SharedSampling):
    """vLLM's OpenAI-compatible server as a LlamaIndex LLM (``VLLM_BASE_URL``, ``VLLM_API_KEY``).

    Tool calling needs the server started with ``--enable-auto-tool-choice --tool-call-parser ...``.
    """

    client_class: ClassVar[type[BaseClient]] = VLLMClient


class LlamaCpp(_SharedSampling):
    """llama.cpp's llama-server as a LlamaIndex LLM (``LLAMACPP_BASE_URL``, ``LLAMACPP_API_KEY``).

    Tool calling needs the server started with ``--jinja``. ``context_window`` is the per-slot context
    (``n_ctx`` divided among ``--parallel`` slots), which is what a request actually gets.
    """

    client_class: ClassVar[type[BaseClient]] = LlamaCppClient
    chat_params: ClassVar[tuple[str, ...]] = (*_SharedSampling.chat_params, "typical_p")
    text_params: ClassVar[tuple[str, ...]] = chat_params

    typical_p: float | None = Field(default=None, description="Locally typical sampling mass.")


class SGLang(_SharedSampling):
    """SGLang's server (``python -m sglang.launch_server``) as a LlamaIndex LLM (``SGLANG_BASE_URL``,
    ``SGLANG_API_KEY``; no ``/v1`` in the URL).

    Chat uses ``/v1/chat/completions`` (tool calling needs ``--tool-call-parser ...``, separate thinking
    ``--reasoning-parser ...``; no ``thinking_budget`` there); ``complete(..., formatted=True)`` uses the
    native ``/generate``. ``Regex``/``Grammar`` from ``engine_clients`` as ``response_format`` become
    SGLang's ``regex``/``ebnf``.
    """

    client_class: ClassVar[type[BaseClient]] = SGLangClient
    chat_params: ClassVar[tuple[str, ...]] = (*_SharedSampling.chat_params, "min_tokens")
    text_params: ClassVar[tuple[str, ...]] = chat_params

    min_tokens: int | None = Field(default=None, description="Least number of tokens to generate.")
