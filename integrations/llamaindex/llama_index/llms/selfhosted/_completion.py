"""Completion for :class:`~llama_index.llms.selfhosted.EngineLLM`: ``complete``, ``stream_complete`` and their
async forms. A prompt goes through the chat route as one user message, or, with ``formatted=True`` (or
``is_chat_model=False``), verbatim to the engine's native text route (TGI ``/generate``, vLLM
``/v1/completions``, llama.cpp ``/completion``), without any chat template."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any
from typing import ClassVar

from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.base.llms.types import ChatResponse
from llama_index.core.base.llms.types import ChatResponseAsyncGen
from llama_index.core.base.llms.types import ChatResponseGen
from llama_index.core.base.llms.types import CompletionResponse
from llama_index.core.base.llms.types import CompletionResponseAsyncGen
from llama_index.core.base.llms.types import CompletionResponseGen
from llama_index.core.base.llms.types import MessageRole
from llama_index.core.llms.callbacks import llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM

from ._client import EngineClient
from ._convert import CompletionStreamAssembler
from ._convert import astream_responses
from ._convert import chat_to_completion_response
from ._convert import completion_response
from ._convert import stream_responses

__all__ = ["CompletionLLM"]


def _user(prompt: str) -> list[ChatMessage]:
    return [ChatMessage(role=MessageRole.USER, content=prompt)]


class CompletionLLM(FunctionCallingLLM):
    """The completion part of ``EngineLLM`` (no fields of its own; a ``FunctionCallingLLM`` so that
    LlamaIndex instruments these methods, as it does the ones a subclass implements)."""

    if TYPE_CHECKING:  # declared on EngineLLM (the chat requests: ChatLLM)
        text_params: ClassVar[tuple[str, ...]]
        is_chat_model: bool

        def _sync_client(self) -> EngineClient: ...
        async def _async_client(self) -> EngineClient: ...
        def _call_kwargs(
            self, params: tuple[str, ...], kwargs: dict[str, Any], engine: str | None = None
        ) -> dict[str, Any]: ...
        def _chat(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> ChatResponse: ...
        def _stream_chat(
            self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]
        ) -> ChatResponseGen: ...
        async def _achat(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> ChatResponse: ...
        async def _astream_chat(
            self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]
        ) -> ChatResponseAsyncGen: ...

    # -- the native text route ----------------------------------------------------------------------------
    def _text_route(self, formatted: bool) -> bool:
        return formatted or not self.is_chat_model

    def _text_prompt(self, prompt: str, formatted: bool) -> str:
        if formatted or self.completion_to_prompt is None:
            return prompt
        return self.completion_to_prompt(prompt)

    def _text_kwargs(self, client: EngineClient, kwargs: dict[str, Any]) -> dict[str, Any]:
        return self._call_kwargs(self.text_params, kwargs, client.engine)

    # -- the LlamaIndex API ---------------------------------------------------------------------------------
    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Completion: through the chat route as one user message; ``formatted=True`` (or
        ``is_chat_model=False``) uses the engine's native text route without any chat template."""
        if self._text_route(formatted):
            client = self._sync_client()
            text = self._text_prompt(prompt, formatted)
            return completion_response(client.generate(text, **self._text_kwargs(client, kwargs)))
        return chat_to_completion_response(self._chat(_user(prompt), kwargs))

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        if self._text_route(formatted):
            client = self._sync_client()
            text = self._text_prompt(prompt, formatted)
            events = client.generate_stream(text, **self._text_kwargs(client, kwargs))
            return stream_responses(events, CompletionStreamAssembler())
        return (chat_to_completion_response(r) for r in self._stream_chat(_user(prompt), kwargs))

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        if self._text_route(formatted):
            client = await self._async_client()
            text = self._text_prompt(prompt, formatted)
            return completion_response(await client.agenerate(text, **self._text_kwargs(client, kwargs)))
        return chat_to_completion_response(await self._achat(_user(prompt), kwargs))

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        if self._text_route(formatted):
            client = await self._async_client()
            text = self._text_prompt(prompt, formatted)
            events = client.agenerate_stream(text, **self._text_kwargs(client, kwargs))
            return astream_responses(events, CompletionStreamAssembler())
        chats = await self._astream_chat(_user(prompt), kwargs)
        return (chat_to_completion_response(r) async for r in chats)
