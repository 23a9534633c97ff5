"""``EngineLLM``: the LlamaIndex LLM shared by :class:`TGI`, :class:`VLLM` and :class:`LlamaCpp`.

Every method here is engine-neutral: it converts LlamaIndex types to OpenAI-style dicts and calls the
``engine_clients`` client named by the subclass, which handles each engine's wire format. Subclasses only
declare ``client_class``, their engine's own sampling fields, and which fields go to which route.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, cast

import httpx
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr, SecretStr, ValidationError
from llama_index.core.constants import DEFAULT_CONTEXT_WINDOW, DEFAULT_NUM_OUTPUTS
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.events.llm import (
    LLMStructuredPredictEndEvent,
    LLMStructuredPredictStartEvent,
)
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.custom import CustomLLM
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.program.streaming_utils import process_streaming_content_incremental
from llama_index.core.prompts import BasePromptTemplate, PromptTemplate
from llama_index.core.types import Model, PydanticProgramMode

from engine_clients import BaseClient, EngineError, EngineInfo, StreamEvent

from ._convert import (
    ChatStreamAssembler,
    CompletionStreamAssembler,
    chat_response,
    chat_to_completion_response,
    completion_response,
    keep_first_tool_call,
    to_engine_messages,
    tool_selections,
)

if TYPE_CHECKING:
    from llama_index.core.program.utils import FlexibleModel
    from llama_index.core.tools.types import BaseTool

__all__ = ["COMMON_PARAMS", "EngineLLM"]

logger = logging.getLogger(__name__)
dispatcher = get_dispatcher(__name__)

#: Sampling fields every engine takes on both routes.
COMMON_PARAMS: tuple[str, ...] = (
    "temperature",
    "max_tokens",
    "top_p",
    "seed",
    "stop",
    "frequency_penalty",
    "presence_penalty",
)
#: After a failed server-info read, metadata uses fallbacks for this long before asking again.
METADATA_RETRY_S = 30.0

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class _Assembler(Protocol[R_co]):
    def feed(self, event: StreamEvent) -> R_co | None: ...


def _sync_responses(events: Iterator[StreamEvent], assembler: _Assembler[R]) -> Generator[R, None, None]:
    try:
        for event in events:
            out = assembler.feed(event)
            if out is not None:
                yield out
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()  # stopping early releases the HTTP connection


async def _async_responses(
    events: AsyncIterator[StreamEvent], assembler: _Assembler[R]
) -> AsyncGenerator[R, None]:
    try:
        async for event in events:
            out = assembler.feed(event)
            if out is not None:
                yield out
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


def _user(prompt: str) -> list[ChatMessage]:
    return [ChatMessage(role=MessageRole.USER, content=prompt)]


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


class EngineLLM(FunctionCallingLLM, CustomLLM):
    """A LlamaIndex ``FunctionCallingLLM`` (and ``CustomLLM``) over a self-hosted inference server.

    Use :class:`~integrations.llamaindex.TGI`, :class:`~integrations.llamaindex.VLLM` or
    :class:`~integrations.llamaindex.LlamaCpp`.

    * ``chat``/``stream_chat`` (and ``a``-prefixed twins, natively async) use the server's chat route with
      its chat template; tool calls come back as ``ToolCallBlock``s plus OpenAI-style dicts in
      ``message.additional_kwargs["tool_calls"]``; token usage is in ``raw["usage"]`` and
      ``additional_kwargs`` (what ``TokenCountingHandler`` reads).
    * ``complete(prompt)`` sends the prompt as one user turn through the chat route (this is a chat model).
      ``complete(prompt, formatted=True)`` sends the text verbatim to the engine's native text route (TGI
      ``/generate``, vLLM ``/v1/completions``, llama.cpp ``/completion``): no chat template. With
      ``is_chat_model=False`` LlamaIndex formats prompts itself (``completion_to_prompt``) and uses that
      route.
    * ``metadata`` is read from the server on first use and cached; constructing never touches the network.
    * ``structured_predict`` and its streaming/async forms use the engine's constrained decoding
      (``response_format`` = the output class) unless ``pydantic_program_mode`` says otherwise.
    """

    client_class: ClassVar[type[BaseClient]] = BaseClient
    #: Fields sent on the chat route and on the native text route (declared per engine).
    chat_params: ClassVar[tuple[str, ...]] = COMMON_PARAMS
    text_params: ClassVar[tuple[str, ...]] = COMMON_PARAMS

    base_url: str | None = Field(
        default=None, description="Server URL; defaults to the engine's *_BASE_URL environment variable."
    )
    model: str | None = Field(
        default=None,
        description="Model id sent with requests (default: the server's only model); metadata.model_name.",
    )
    api_key: SecretStr | None = Field(
        default=None,
        exclude=True,
        repr=False,
        description="Bearer token; defaults to the engine's *_API_KEY environment variable.",
    )
    timeout: float | None = Field(default=None, description="Request timeout in seconds (client default).")
    max_retries: int = Field(default=2, ge=0, description="Retries of failed requests before output began.")
    headers: dict[str, str] | None = Field(
        default=None, exclude=True, repr=False, description="Extra HTTP headers sent with every request."
    )
    temperature: float | None = Field(default=None, description="Sampling temperature (engine default).")
    max_tokens: int | None = Field(
        default=None, description="Most tokens to generate (engine default); also metadata.num_output."
    )
    top_p: float | None = Field(default=None, description="Nucleus sampling probability mass.")
    seed: int | None = Field(default=None, description="Sampling seed.")
    stop: str | list[str] | None = Field(default=None, description="Stop sequence(s).")
    frequency_penalty: float | None = Field(default=None, description="OpenAI-style frequency penalty.")
    presence_penalty: float | None = Field(default=None, description="OpenAI-style presence penalty.")
    additional_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="More sampling parameters for every request, by the engine client's names "
        "(names an engine does not take are refused before sending).",
    )
    extra_body: dict[str, Any] | None = Field(
        default=None, description="Raw JSON fields merged into every request body."
    )
    context_window: int | None = Field(
        default=None, description="Overrides the context window read from the server."
    )
    is_chat_model: bool = Field(
        default=True,
        description="True: LlamaIndex talks to the chat route with chat messages. False: it formats prompts "
        "itself (completion_to_prompt) and complete() uses the native text route.",
    )
    is_function_calling_model: bool = Field(
        default=True, description="Whether the server was started with tool calling enabled."
    )

    _client: BaseClient = PrivateAttr()
    _info: EngineInfo | None = PrivateAttr(default=None)
    _info_retry_at: float = PrivateAttr(default=0.0)

    def __init__(
        self,
        base_url: str | None = None,
        *,
        client: BaseClient | None = None,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
        **kwargs: Any,
    ) -> None:
        """``base_url`` (or the environment variable), sampling fields and connection settings; or a ready
        ``client`` of this engine's client class. ``http_client``/``async_http_client`` are passed to the
        client (custom transports, proxies, test mocks). Nothing is sent until the first call."""
        super().__init__(base_url=base_url, **kwargs)
        if client is None:
            client = self._new_client(http_client, async_http_client)
        elif not isinstance(client, self.client_class):
            raise TypeError(f"{type(self).__name__} needs a {self.client_class.__name__}, got {client!r}")
        self._client = client
        self.base_url = client.base_url
        if self.model is None:
            self.model = client.model

    def _new_client(
        self, http_client: httpx.Client | None = None, async_http_client: httpx.AsyncClient | None = None
    ) -> BaseClient:
        return self.client_class(
            self.base_url,
            api_key=self.api_key,
            model=self.model,
            timeout=self.timeout,
            max_retries=self.max_retries,
            headers=self.headers,
            http_client=http_client,
            async_http_client=async_http_client,
        )

    @classmethod
    def class_name(cls) -> str:
        dialect = getattr(cls.client_class, "dialect_class", None)
        return f"{dialect.engine}_llm" if dialect is not None else "engine_llm"

    @property
    def client(self) -> BaseClient:
        """The underlying ``engine_clients`` client (for ``health()``, ``tokenize()``, ``info()``...)."""
        return self._client

    @property
    def engine(self) -> str:
        return self._client.engine

    def close(self) -> None:
        """Close the sync HTTP connections (the LLM stays usable: they reopen on demand)."""
        self._client.close()

    async def aclose(self) -> None:
        """Close the async and sync HTTP connections."""
        await self._client.aclose()

    # -- copying and pickling: the client holds connections; copies share it, unpickling builds a new one --
    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> EngineLLM:
        memo = {} if memo is None else memo
        memo[id(self._client)] = self._client
        return super().__deepcopy__(memo)

    def __getstate__(self) -> dict[Any, Any]:
        client = self._client
        self._client = None  # type: ignore[assignment]  # not picklable: left out quietly
        try:
            state: dict[Any, Any] = super().__getstate__()
        finally:
            self._client = client
        state["__pydantic_private__"] = {**(state.get("__pydantic_private__") or {}), "_client": None}
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        if getattr(self, "_client", None) is None:
            self._client = self._new_client()

    # -- metadata -----------------------------------------------------------------------------------------
    @property
    def metadata(self) -> LLMMetadata:
        """Model name and the server's real context window, read from the server on first use and cached
        (``num_output``/flags follow the fields). In async code, ``await llm.aget_metadata()`` first to keep
        that one read off the event loop. If the server does not answer, fallbacks are used (and it is asked
        again after a while)."""
        if self._info is None and self._needs_info() and time.monotonic() >= self._info_retry_at:
            try:
                self._info = self._client.info()
            except EngineError as exc:
                self._info_failed(exc)
        return self._build_metadata(self._info)

    async def aget_metadata(self) -> LLMMetadata:
        """``metadata``, reading the server info with the async client when it is not cached yet."""
        if self._info is None and self._needs_info() and time.monotonic() >= self._info_retry_at:
            try:
                self._info = await self._client.ainfo()
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
            is_function_calling_model=self.is_function_calling_model,
            model_name=self.model or (info.model if info is not None else None) or "unknown",
        )

    def to_payload(self) -> dict[str, Any]:
        """What callbacks and instrumentation events get: no credentials, and no server round trip (the
        metadata is included once it has been read)."""
        payload: dict[str, Any] = {"class_name": self.class_name(), "engine": self.engine}
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

    # -- request arguments --------------------------------------------------------------------------------
    def _call_kwargs(self, params: tuple[str, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Field defaults for the route, then ``additional_kwargs``, then the call's own kwargs (``None``
        unsets a default); ``extra_body`` dicts are merged."""
        out: dict[str, Any] = {name: getattr(self, name) for name in params}
        out.update(self.additional_kwargs)
        out.update(kwargs)
        body = {**(self.extra_body or {}), **(out.pop("extra_body", None) or {})}
        if body:
            out["extra_body"] = body
        return {k: v for k, v in out.items() if v is not None}

    def _text_route(self, formatted: bool) -> bool:
        return formatted or not self.is_chat_model

    def _text_prompt(self, prompt: str, formatted: bool) -> str:
        if formatted or self.completion_to_prompt is None:
            return prompt
        return self.completion_to_prompt(prompt)

    # -- chat -----------------------------------------------------------------------------------------------
    def _chat(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> ChatResponse:
        completion = self._client.chat(
            to_engine_messages(messages), **self._call_kwargs(self.chat_params, kwargs)
        )
        return chat_response(completion)

    def _stream_chat(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> ChatResponseGen:
        events = self._client.chat_stream(
            to_engine_messages(messages), **self._call_kwargs(self.chat_params, kwargs)
        )
        return _sync_responses(events, ChatStreamAssembler())

    async def _achat(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> ChatResponse:
        completion = await self._client.achat(
            to_engine_messages(messages), **self._call_kwargs(self.chat_params, kwargs)
        )
        return chat_response(completion)

    def _astream_chat(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> ChatResponseAsyncGen:
        events = self._client.achat_stream(
            to_engine_messages(messages), **self._call_kwargs(self.chat_params, kwargs)
        )
        return _async_responses(events, ChatStreamAssembler())

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
        return self._astream_chat(messages, kwargs)

    # -- completion -----------------------------------------------------------------------------------------
    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Completion: through the chat route as one user message; ``formatted=True`` (or
        ``is_chat_model=False``) uses the engine's native text route without any chat template."""
        if self._text_route(formatted):
            completion = self._client.generate(
                self._text_prompt(prompt, formatted), **self._call_kwargs(self.text_params, kwargs)
            )
            return completion_response(completion)
        return chat_to_completion_response(self._chat(_user(prompt), kwargs))

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        if self._text_route(formatted):
            events = self._client.generate_stream(
                self._text_prompt(prompt, formatted), **self._call_kwargs(self.text_params, kwargs)
            )
            return _sync_responses(events, CompletionStreamAssembler())
        return (chat_to_completion_response(r) for r in self._stream_chat(_user(prompt), kwargs))

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        if self._text_route(formatted):
            completion = await self._client.agenerate(
                self._text_prompt(prompt, formatted), **self._call_kwargs(self.text_params, kwargs)
            )
            return completion_response(completion)
        return chat_to_completion_response(await self._achat(_user(prompt), kwargs))

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        if self._text_route(formatted):
            events = self._client.agenerate_stream(
                self._text_prompt(prompt, formatted), **self._call_kwargs(self.text_params, kwargs)
            )
            return _async_responses(events, CompletionStreamAssembler())
        chats = self._astream_chat(_user(prompt), kwargs)

        async def gen() -> CompletionResponseAsyncGen:
            async for r in chats:
                yield chat_to_completion_response(r)

        return gen()

    # -- tool calling ---------------------------------------------------------------------------------------
    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        tool_choice: str | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Chat arguments with OpenAI-style tool specs. ``tool_choice`` (``"auto"``, ``"none"``,
        ``"required"``, a tool name or an OpenAI dict) wins over ``tool_required`` (= ``"required"``)."""
        specs = [tool.metadata.to_openai_tool(skip_length_check=True) for tool in tools]
        messages = list(chat_history or [])  # never the caller's list
        if user_msg is not None:
            messages.append(
                ChatMessage(role=MessageRole.USER, content=user_msg)
                if isinstance(user_msg, str)
                else user_msg
            )
        out: dict[str, Any] = {"messages": messages, **kwargs}
        if specs:
            out["tools"] = specs
            out["tool_choice"] = tool_choice or ("required" if tool_required else "auto")
            # sent where the engine takes it; a single call is enforced on the response either way
            if "parallel_tool_calls" in getattr(self._client.dialect, "chat_params", {}):
                out.setdefault("parallel_tool_calls", allow_parallel_tool_calls)
        return out

    def _validate_chat_with_tools_response(
        self,
        response: ChatResponse,
        tools: Sequence[BaseTool],
        allow_parallel_tool_calls: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        if not allow_parallel_tool_calls:
            keep_first_tool_call(response)
        return response

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        """The tool calls in ``response`` (streamed partial arguments are parsed as far as they go; arguments
        that are not a JSON object become ``{}``). Raises ValueError when there is none and
        ``error_on_no_tool_call``."""
        selections = tool_selections(response.message)
        if not selections and error_on_no_tool_call:
            raise ValueError("Expected at least one tool call, but got 0 tool calls.")
        return selections

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
        dispatcher.event(
            LLMStructuredPredictStartEvent(output_cls=output_cls, template=prompt, template_args=prompt_args)
        )
        messages, kwargs = self._structured_request(output_cls, prompt, llm_kwargs, prompt_args)
        result = self._parse_structured(output_cls, self.chat(messages, **kwargs))
        dispatcher.event(LLMStructuredPredictEndEvent(output=result))
        return result

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
        dispatcher.event(
            LLMStructuredPredictStartEvent(output_cls=output_cls, template=prompt, template_args=prompt_args)
        )
        messages, kwargs = self._structured_request(output_cls, prompt, llm_kwargs, prompt_args)
        result = self._parse_structured(output_cls, await self.achat(messages, **kwargs))
        dispatcher.event(LLMStructuredPredictEndEvent(output=result))
        return result

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

        def gen() -> Generator[Model | FlexibleModel, None, None]:
            current: Model | FlexibleModel | None = None
            for response in responses:
                current = process_streaming_content_incremental(response, output_cls, current)
                yield current

        return gen()

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

        async def gen() -> AsyncGenerator[Model | FlexibleModel, None]:
            current: Model | FlexibleModel | None = None
            async for response in responses:
                current = process_streaming_content_incremental(response, output_cls, current)
                yield current

        return gen()
