"""The metadata of :class:`~llama_index.llms.selfhosted.EngineLLM` (``llm.metadata``): the model and the
server's real context window, read from the server on first use and cached, with fallbacks (asked again after
a while) when the server does not answer; and what callbacks and instrumentation events get (``to_payload``).

:class:`MetadataMixin` holds only methods; the fields it reads are declared by ``EngineLLM``."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING
from typing import Any

from llama_index.core.base.llms.types import LLMMetadata
from llama_index.core.constants import DEFAULT_CONTEXT_WINDOW
from llama_index.core.constants import DEFAULT_NUM_OUTPUTS

from engine_clients import EngineError
from engine_clients import EngineInfo

from ._client import EngineClient

__all__ = ["METADATA_RETRY_S", "MetadataMixin"]

# the name it had before the metadata moved out of ``_base``: logging configured for that still applies
logger = logging.getLogger(f"{__package__}._base")

#: After a failed server-info read, metadata uses fallbacks for this long before asking again.
METADATA_RETRY_S = 30.0


def _context_window(info: EngineInfo | None, num_output: int) -> int:
    """The window LlamaIndex must keep prompt + ``num_output`` inside, from the server's real limits.

    llama.cpp and vLLM publish one limit (prompt and output together). TGI publishes a prompt limit and a
    total one; ``min(total, input + num_output)`` keeps both satisfied once LlamaIndex reserves
    ``num_output``.
    """
    if info is None:
        return DEFAULT_CONTEXT_WINDOW
    total, prompt_limit = info.max_total_tokens, info.max_input_tokens
    if total and prompt_limit and prompt_limit < total:
        return min(total, prompt_limit + num_output)
    return total or prompt_limit or DEFAULT_CONTEXT_WINDOW


class MetadataMixin:
    """``metadata``, its async read and its cache (methods of ``EngineLLM``)."""

    if TYPE_CHECKING:  # declared on EngineLLM
        model: str | None
        max_tokens: int | None
        context_window: int | None
        is_chat_model: bool
        is_function_calling_model: bool
        _info: EngineInfo | None
        _info_retry_at: float

        @property
        def model_fields_set(self) -> set[str]: ...
        @classmethod
        def class_name(cls) -> str: ...
        def _sync_client(self) -> EngineClient: ...
        async def _async_client(self) -> EngineClient: ...
        def _known_engine(self) -> str | None: ...

    @property
    def metadata(self) -> LLMMetadata:
        """Model name and the server's real context window, read from the server on first use and cached
        (``num_output``/flags follow the fields). In async code, ``await llm.aget_metadata()`` first to keep
        that one read off the event loop. If the server does not answer, fallbacks are used (and it is asked
        again after a while)."""
        if self._info is None and self._needs_info() and time.monotonic() >= self._info_retry_at:
            try:
                self._info = self._sync_client().info()
            except EngineError as exc:
                self._info_failed(exc)
        return self._build_metadata(self._info)

    async def aget_metadata(self) -> LLMMetadata:
        """``metadata``, reading the server info with the async client when it is not cached yet."""
        if self._info is None and self._needs_info() and time.monotonic() >= self._info_retry_at:
            try:
                self._info = await (await self._async_client()).ainfo()
            except EngineError as exc:
                self._info_failed(exc)
        return self._build_metadata(self._info)

    def clear_metadata_cache(self) -> None:
        """Forget the server info (after the server was restarted with another model or context size)."""
        self._info = None
        self._info_retry_at = 0.0

    def _needs_info(self) -> bool:
        return self.context_window is None or self.model is None

    def _info_failed(self, exc: EngineError) -> None:
        self._info_retry_at = time.monotonic() + METADATA_RETRY_S
        logger.warning(
            "%s: could not read the server info (%s); metadata uses context_window=%d for now",
            type(self).__name__,
            exc,
            self.context_window or DEFAULT_CONTEXT_WINDOW,
        )

    def _build_metadata(self, info: EngineInfo | None) -> LLMMetadata:
        num_output = self.max_tokens or DEFAULT_NUM_OUTPUTS
        return LLMMetadata(
            context_window=self.context_window or _context_window(info, num_output),
            num_output=num_output,
            is_chat_model=self.is_chat_model,
            is_function_calling_model=self._function_calling(info),
            model_name=self.model or (info.model if info is not None else None) or "unknown",
        )

    def _function_calling(self, info: EngineInfo | None) -> bool:
        """The field when set; else what the server reported (llama.cpp: its chat template handles tools)."""
        if "is_function_calling_model" in self.model_fields_set or info is None or info.tool_calling is None:
            return self.is_function_calling_model
        return info.tool_calling

    def to_payload(self) -> dict[str, Any]:
        """What callbacks and instrumentation events get: no credentials, and no server round trip (the
        metadata is included once it has been read)."""
        payload: dict[str, Any] = {"class_name": self.class_name(), "engine": self._known_engine()}
        if self._info is not None or not self._needs_info():
            payload.update(self._build_metadata(self._info).model_dump())
        else:
            payload.update(
                model_name=self.model,
                num_output=self.max_tokens or DEFAULT_NUM_OUTPUTS,
                is_chat_model=self.is_chat_model,
                is_function_calling_model=self.is_function_calling_model,
            )
        return payload
