"""LangChain text-completion LLMs on each engine's native text route (no chat template):
:class:`TGILLM` (``/generate``), :class:`VLLMLLM` (``/v1/completions``), :class:`LlamaCppLLM`
(``/completion``) and :class:`SGLangLLM` (``/generate``); :class:`EngineTextLLM` detects the engine on
first use.

>>> from langchain_selfhosted import LlamaCppLLM
>>> LlamaCppLLM(base_url="http://127.0.0.1:8080", max_tokens=16).invoke("Once upon a time")
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from collections.abc import Iterator
from contextlib import aclosing
from typing import Annotated
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import LangSmithParams
from langchain_core.language_models.llms import LLM
from langchain_core.outputs import Generation
from langchain_core.outputs import GenerationChunk
from langchain_core.outputs import LLMResult

from engine_clients import Completion
from engine_clients import End
from engine_clients import LlamaCppClient
from engine_clients import SGLangClient
from engine_clients import TGIClient
from engine_clients import Token
from engine_clients import VLLMClient

from ._base import SAMPLING
from ._base import AutoEngineMixin
from ._base import EngineModelMixin
from ._convert import logprobs_payload
from ._params import LlamaCppParams
from ._params import SGLangParams
from ._params import VLLMParams
from ._stream import ChunkStream
from ._stream import astream_chunks
from ._stream import stream_chunks
from .errors import translate_errors

__all__ = ["TGILLM", "VLLMLLM", "EngineTextLLM", "LlamaCppLLM", "SGLangLLM"]

_CALL_ARGS = ("response_format", "model")


def _info(completion: Completion, model_name: str | None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "finish_reason": completion.finish_reason,
        "model_name": completion.model or model_name,
    }
    if completion.usage is not None:
        info["token_usage"] = dataclasses.asdict(completion.usage)
    if completion.logprobs is not None:
        info["logprobs"] = logprobs_payload(completion.logprobs)
    if completion.timings is not None:
        info["timings"] = completion.timings.to_dict()
    return info


class _BaseEngineLLM(EngineModelMixin, LLM):
    """Shared implementation of the engine text-completion LLMs.

    ``response_format`` may be passed per call (a Pydantic class, a JSON schema, ``Regex``/``Grammar``
    from ``engine_clients``) to constrain the output on engines that support it.
    """

    @property
    def _llm_type(self) -> str:
        return self._configured_engine() or "auto"

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        self._patch_ls_params(params, stop, kwargs)
        return params

    @staticmethod
    def _usage(gens: list[list[Generation]], model_name: str | None) -> dict[str, Any]:
        totals = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        for (g,) in gens:
            usage = (g.generation_info or {}).get("token_usage") or {}
            for k in totals:
                totals[k] += usage.get(k) or 0
        return {"token_usage": totals, "model_name": model_name}

    # -- sync --
    def _complete(self, prompt: str, stop: list[str] | None, kwargs: dict[str, Any]) -> Generation:
        args = self._request(stop, kwargs, _CALL_ARGS)
        with translate_errors():
            completion = self.client.generate(prompt, **args)
        # Model discovery after the answer: a request refused before sending costs no round trip.
        model_name = args.get("model") or self._ensure_model()
        return Generation(text=completion.content, generation_info=_info(completion, model_name))

    def _call(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> str:
        return self._complete(prompt, stop, kwargs).text

    def _generate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        gens = [[self._complete(p, stop, kwargs)] for p in prompts]
        return LLMResult(generations=gens, llm_output=self._usage(gens, self.model_name))

    def _stream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[GenerationChunk]:
        args = self._request(stop, kwargs, _CALL_ARGS)
        chunks = ChunkStream(_chunk, args.get("model"))
        yield from stream_chunks(
            self, lambda client: client.generate_stream(prompt, **args), chunks, run_manager
        )

    # -- async --
    async def _acomplete(self, prompt: str, stop: list[str] | None, kwargs: dict[str, Any]) -> Generation:
        args = self._request(stop, kwargs, _CALL_ARGS)
        with translate_errors():
            completion = await (await self._aclient()).agenerate(prompt, **args)
        model_name = args.get("model") or await self._aensure_model()
        return Generation(text=completion.content, generation_info=_info(completion, model_name))

    async def _acall(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> str:
        return (await self._acomplete(prompt, stop, kwargs)).text

    async def _agenerate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        results = await asyncio.gather(*(self._acomplete(p, stop, kwargs) for p in prompts))
        gens = [[g] for g in results]
        return LLMResult(generations=gens, llm_output=self._usage(gens, self.model_name))

    async def _astream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[GenerationChunk]:
        args = self._request(stop, kwargs, _CALL_ARGS)
        chunks = ChunkStream(_chunk, args.get("model"))
        stream = astream_chunks(
            self, lambda client: client.agenerate_stream(prompt, **args), chunks, run_manager
        )
        async with aclosing(stream):  # stopped early: the engine stream is closed now, not when collected
            async for chunk in stream:
                yield chunk


def _chunk(event: Any, model_name: str | None) -> GenerationChunk | None:
    if isinstance(event, Token):
        return GenerationChunk(text=event.text)
    if isinstance(event, End):
        return GenerationChunk(text="", generation_info=_info(event.completion, model_name))
    return None


class TGILLM(_BaseEngineLLM):
    """Text completion on TGI's native ``/generate`` route. Env: ``TGI_BASE_URL``, ``TGI_API_KEY``."""

    client_class = TGIClient

    top_k: Annotated[int | None, SAMPLING] = None
    repetition_penalty: Annotated[float | None, SAMPLING] = None
    typical_p: Annotated[float | None, SAMPLING] = None
    truncate: Annotated[int | None, SAMPLING] = None
    """Keep only the last ``truncate`` prompt tokens."""
    watermark: Annotated[bool | None, SAMPLING] = None
    decoder_input_details: Annotated[bool | None, SAMPLING] = None
    top_n_tokens: Annotated[int | None, SAMPLING] = None
    do_sample: Annotated[bool | None, SAMPLING] = None
    best_of: Annotated[int | None, SAMPLING] = None
    return_full_text: Annotated[bool | None, SAMPLING] = None
    adapter_id: Annotated[str | None, SAMPLING] = None
    """LoRA adapter to generate with."""
    grammar: Annotated[dict[str, Any] | None, SAMPLING] = None
    """TGI grammar object ``{"type": "json" | "regex", "value": ...}`` constraining every answer."""


class VLLMLLM(VLLMParams, _BaseEngineLLM):
    """Text completion on vLLM's ``/v1/completions``. Env: ``VLLM_BASE_URL``, ``VLLM_API_KEY``."""

    client_class = VLLMClient

    presence_penalty: Annotated[float | None, SAMPLING] = None


class LlamaCppLLM(LlamaCppParams, _BaseEngineLLM):
    """Text completion on llama-server's native ``/completion``. Env: ``LLAMACPP_BASE_URL``,
    ``LLAMACPP_API_KEY``."""

    client_class = LlamaCppClient

    presence_penalty: Annotated[float | None, SAMPLING] = None


class SGLangLLM(SGLangParams, _BaseEngineLLM):
    """Text completion on SGLang's native ``/generate`` (its cumulative stream is read as deltas). Env:
    ``SGLANG_BASE_URL``, ``SGLANG_API_KEY``."""

    client_class = SGLangClient

    presence_penalty: Annotated[float | None, SAMPLING] = None


class EngineTextLLM(AutoEngineMixin, _BaseEngineLLM):
    """Text completion on the native text route of whichever engine serves ``base_url``, detected on first
    use (or given as ``engine=``); see :class:`~langchain_selfhosted.ChatEngine` for how. Only the common
    sampling fields are typed: an engine's own go in ``model_kwargs``. ``client=`` takes a ready client or
    ``EnginePool``."""
