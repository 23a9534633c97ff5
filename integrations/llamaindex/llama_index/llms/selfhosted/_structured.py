"""Structured output through the engine's constrained decoding, for :class:`EngineLLM`.

``structured_predict`` and its async and streaming forms send the output class's JSON schema as
``response_format`` (the engine layer maps it to each engine's constrained decoding) and parse the answer,
never the thinking. With ``pydantic_program_mode`` other than DEFAULT, LlamaIndex's own programs run.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from collections.abc import Generator
from typing import TYPE_CHECKING
from typing import Any
from typing import Generic
from typing import cast

from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.base.llms.types import ChatResponse
from llama_index.core.bridge.pydantic import ValidationError
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.events.llm import LLMStructuredPredictEndEvent
from llama_index.core.instrumentation.events.llm import LLMStructuredPredictStartEvent
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.program.streaming_utils import process_streaming_content_incremental
from llama_index.core.prompts import BasePromptTemplate
from llama_index.core.prompts import PromptTemplate
from llama_index.core.types import Model
from llama_index.core.types import PydanticProgramMode

if TYPE_CHECKING:
    from llama_index.core.program.utils import FlexibleModel

__all__ = ["StructuredOutputLLM"]

dispatcher = get_dispatcher(__name__)


class _PartialOutput(Generic[Model]):
    """The growing output object of a structured stream, one chat response at a time."""

    def __init__(self, output_cls: type[Model]) -> None:
        self.output_cls = output_cls
        self.current: Model | FlexibleModel | None = None

    def feed(self, response: ChatResponse) -> Model | FlexibleModel:
        self.current = process_streaming_content_incremental(response, self.output_cls, self.current)
        return self.current


class StructuredOutputLLM(FunctionCallingLLM):
    """The structured-output part of :class:`EngineLLM` (no fields of its own)."""

    # -- structured output through constrained decoding ------------------------------------------------
    def _constrained(self) -> bool:
        return self.pydantic_program_mode == PydanticProgramMode.DEFAULT

    def _structured_request(
        self,
        output_cls: type[Model],
        prompt: BasePromptTemplate,
        llm_kwargs: dict[str, Any] | None,
        prompt_args: dict[str, Any],
    ) -> tuple[list[ChatMessage], dict[str, Any]]:
        messages = self._extend_messages(prompt.format_messages(llm=self, **prompt_args))
        kwargs = {k: v for k, v in (llm_kwargs or {}).items() if k not in ("tools", "tool_choice")}
        kwargs["response_format"] = output_cls
        return messages, kwargs

    def _parse_structured(self, output_cls: type[Model], response: ChatResponse) -> Model:
        text = response.message.content or ""
        try:
            return output_cls.model_validate_json(text)
        except ValidationError as exc:
            finish = response.raw.get("finish_reason") if isinstance(response.raw, dict) else None
            raise ValueError(
                f"{type(self).__name__} output is not a valid {output_cls.__name__} "
                f"(finish_reason={finish!r}): {text[:500]!r}"
            ) from exc

    def _structured_start(
        self,
        output_cls: type[Model],
        prompt: BasePromptTemplate,
        llm_kwargs: dict[str, Any] | None,
        prompt_args: dict[str, Any],
    ) -> tuple[list[ChatMessage], dict[str, Any]]:
        """Announce a structured prediction (start event), and its chat request: messages, and kwargs with
        the output class as ``response_format``."""
        dispatcher.event(
            LLMStructuredPredictStartEvent(output_cls=output_cls, template=prompt, template_args=prompt_args)
        )
        return self._structured_request(output_cls, prompt, llm_kwargs, prompt_args)

    def _structured_end(self, output_cls: type[Model], response: ChatResponse) -> Model:
        """The answer parsed into ``output_cls`` (end event)."""
        result = self._parse_structured(output_cls, response)
        dispatcher.event(LLMStructuredPredictEndEvent(output=result))
        return result

    def structured_predict(
        self,
        output_cls: type[Model],
        prompt: PromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> Model:
        """``output_cls`` from the prompt, the engine constraining decoding to its JSON schema."""
        if not self._constrained():
            out = super().structured_predict(output_cls, prompt, llm_kwargs=llm_kwargs, **prompt_args)
            return cast(Model, out)
        messages, kwargs = self._structured_start(output_cls, prompt, llm_kwargs, prompt_args)
        return self._structured_end(output_cls, self.chat(messages, **kwargs))

    async def astructured_predict(
        self,
        output_cls: type[Model],
        prompt: PromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> Model:
        if not self._constrained():
            out = await super().astructured_predict(output_cls, prompt, llm_kwargs=llm_kwargs, **prompt_args)
            return cast(Model, out)
        messages, kwargs = self._structured_start(output_cls, prompt, llm_kwargs, prompt_args)
        return self._structured_end(output_cls, await self.achat(messages, **kwargs))

    def _structured_stream_call(
        self,
        output_cls: type[Model],
        prompt: PromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> Generator[Model | list[Model] | FlexibleModel | list[FlexibleModel], None, None]:
        # used by stream_structured_predict, which emits the start/progress/end events
        if not self._constrained():
            return super()._structured_stream_call(output_cls, prompt, llm_kwargs, **prompt_args)
        messages, kwargs = self._structured_request(output_cls, prompt, llm_kwargs, prompt_args)
        responses = self.stream_chat(messages, **kwargs)
        partial = _PartialOutput(output_cls)
        return (partial.feed(response) for response in responses)

    async def _structured_astream_call(
        self,
        output_cls: type[Model],
        prompt: PromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> AsyncGenerator[Model | list[Model] | FlexibleModel | list[FlexibleModel], None]:
        if not self._constrained():
            return await super()._structured_astream_call(output_cls, prompt, llm_kwargs, **prompt_args)
        messages, kwargs = self._structured_request(output_cls, prompt, llm_kwargs, prompt_args)
        responses = await self.astream_chat(messages, **kwargs)
        partial = _PartialOutput(output_cls)
        return (partial.feed(response) async for response in responses)
