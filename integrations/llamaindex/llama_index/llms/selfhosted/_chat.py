"""Chat for :class:`~llama_index.llms.selfhosted.EngineLLM`: ``chat``, ``stream_chat`` and their async
forms, on the server's chat route with its chat template (messages converted by :mod:`._messages`, answers
by :mod:`._convert`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any
from typing import ClassVar

from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.base.llms.types import ChatResponse
from llama_index.core.base.llms.types import ChatResponseAsyncGen
from llama_index.core.base.llms.types import ChatResponseGen
from llama_index.core.llms.callbacks import llm_chat_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM

from ._client import EngineClient
from ._convert import ChatStreamAssembler
from ._convert import astream_responses
from ._convert import chat_response
from ._convert import stream_responses
from ._messages import to_engine_messages

__all__ = ["ChatLLM"]


class ChatLLM(FunctionCallingLLM):
    """The chat part of ``EngineLLM`` (no fields of its own; a ``FunctionCallingLLM`` so that LlamaIndex
    instruments these methods, as it does the ones a subclass implements)."""

    if TYPE_CHECKING:  # declared on EngineLLM
        chat_params: ClassVar[tuple[str, ...]]

        def _sync_client(self) -> EngineClient: ...
        async def _async_client(self) -> EngineClient: ...
        def _call_kwargs(
            self, params: tuple[str, ...], kwargs: dict[str, Any], engine: str | None = None
        ) -> dict[str, Any]: ...

    def _chat_kwargs(self, client: EngineClient, kwargs: dict[str, Any]) -> dict[str, Any]:
        return self._call_kwargs(self.chat_params, kwargs, client.engine)

    # -- the requests (complete() and structured output call these too) -----------------------------------
    def _chat(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> ChatResponse:
        client = self._sync_client()
        completion = client.chat(to_engine_messages(messages), **self._chat_kwargs(client, kwargs))
        return chat_response(completion)

    def _stream_chat(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> ChatResponseGen:
        client = self._sync_client()
        events = client.chat_stream(to_engine_messages(messages), **self._chat_kwargs(client, kwargs))
        return stream_responses(events, ChatStreamAssembler())

    async def _achat(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> ChatResponse:
        client = await self._async_client()
        completion = await client.achat(to_engine_messages(messages), **self._chat_kwargs(client, kwargs))
        return chat_response(completion)

    async def _astream_chat(
        self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]
    ) -> ChatResponseAsyncGen:
        client = await self._async_client()
        events = client.achat_stream(to_engine_messages(messages), **self._chat_kwargs(client, kwargs))
        return astream_responses(events, ChatStreamAssembler())

    # -- the LlamaIndex API (callbacks and instrumentation events around the requests) ----------------------
    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Chat completion. ``kwargs``: sampling parameters, ``tools``, ``tool_choice``, ``response_format``
        (a pydantic class, JSON schema, or an ``engine_clients`` format), ``model``, ``extra_body``."""
        return self._chat(messages, kwargs)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """Streamed chat; the last response (``delta=""``) carries the finished message and the usage."""
        return self._stream_chat(messages, kwargs)

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return await self._achat(messages, kwargs)

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        return await self._astream_chat(messages, kwargs)
