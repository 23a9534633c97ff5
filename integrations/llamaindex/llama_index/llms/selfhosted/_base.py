"""``EngineLLM``: the LlamaIndex LLM shared by :class:`TGI`, :class:`VLLM` and :class:`LlamaCpp`, and usable
directly in auto mode (the engine behind ``base_url`` detected on first use, or given as ``engine=``).

Every method here is engine-neutral: it converts LlamaIndex types to OpenAI-style dicts and calls the
``engine_clients`` client (named by the subclass, detected, or given: a client or an ``EnginePool``), which
handles each engine's wire format. Subclasses only declare ``client_class``, their engine's own sampling
fields, and which fields go to which route.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

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
from llama_index.core.bridge.pydantic import Field, PrivateAttr, SecretStr
from llama_index.core.constants import DEFAULT_CONTEXT_WINDOW, DEFAULT_NUM_OUTPUTS
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.custom import CustomLLM
from llama_index.core.llms.llm import ToolSelection

from engine_clients import (
    PROBE_TIMEOUT,
    BaseClient,
    EngineError,
    EngineInfo,
    EnginePool,
    StreamEvent,
    ThinkTags,
    adetect_engine,
    client_class,
    connect,
    detect_engine,
)

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
from ._structured import StructuredOutputLLM

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

__all__ = ["COMMON_PARAMS", "EngineClient", "EngineLLM"]

EngineClient = BaseClient | EnginePool
"""What an LLM talks through: one engine client, or an ``EnginePool`` of replicas (same API)."""

logger = logging.getLogger(__name__)
dispatcher = get_dispatcher(__name__)

#: Thinking controls of reasoning models. Sent on both routes so that a native text route, which cannot honour
#: them, refuses them (InvalidRequestError) instead of dropping them.
REASONING_PARAMS: tuple[str, ...] = ("thinking", "reasoning_effort", "thinking_budget")
#: Fields sent on both routes of every engine (sampling, and the thinking controls).
COMMON_PARAMS: tuple[str, ...] = (
    "temperature",
    "max_tokens",
    "top_p",
    "seed",
    "stop",
    "frequency_penalty",
    "presence_penalty",
    *REASONING_PARAMS,
)
#: After a failed server-info read, metadata uses fallbacks for this long before asking again.
METADATA_RETRY_S = 30.0
#: ``allow_parallel_tool_calls`` carried from ``_prepare_chat_with_tools`` to the request when the engine (and
#: so whether it takes ``parallel_tool_calls``) is only known once the client exists (auto mode, pools).
_PARALLEL_IF_TAKEN = "_parallel_tool_calls_if_taken"
_lock = threading.Lock()

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


def _canonical(engine: str) -> str:
    """``"tgi"``, ``"vllm"`` or ``"llamacpp"`` for any engine name ``engine_clients`` knows."""
    return client_class(engine).dialect_class.engine


def _takes_chat_param(engine: str | None, name: str) -> bool:
    return engine is not None and name in client_class(engine).dialect_class.chat_params


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


class EngineLLM(StructuredOutputLLM, CustomLLM):
    """A LlamaIndex ``FunctionCallingLLM`` (and ``CustomLLM``) over a self-hosted inference server.

    Use :class:`~llama_index.llms.selfhosted.TGI`, :class:`~llama_index.llms.selfhosted.VLLM` or
    :class:`~llama_index.llms.selfhosted.LlamaCpp`, or ``EngineLLM`` itself in auto mode::

        llm = EngineLLM("http://127.0.0.1:8080")                 # engine detected on first use
        llm = EngineLLM("http://gpu:8000", engine="vllm", additional_kwargs={"top_k": 20})
        llm = EngineLLM(client=EnginePool(["http://a:8000", "http://b:8000"], engine="vllm"))

    * Auto mode: constructing does no I/O; the first call (or ``metadata``) probes the server's discovery
      routes (a few short GETs, ``probe_timeout`` s each; see ``engine_clients.connect``), the engine found is
      written to ``engine``, and every call talks its dialect. ``engine=`` skips the probes. Without
      ``base_url``, ``$<ENGINE>_BASE_URL`` of the ``engine`` given is used, or else the only
      ``TGI_BASE_URL``/``VLLM_BASE_URL``/``LLAMACPP_BASE_URL`` set (naming the engine). Only the common
      sampling fields are typed: an engine's own go in ``additional_kwargs`` (refused before sending by an
      engine that lacks them), raw body fields in ``extra_body``.
    * ``client=``: a ready ``engine_clients`` client or ``EnginePool`` (any engine for ``EngineLLM``, the
      class's own for ``TGI``/``VLLM``/``LlamaCpp``); its connection settings are its own.

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
    engine: str | None = Field(
        default=None,
        description="'tgi', 'vllm' or 'llamacpp'. Fixed by TGI/VLLM/LlamaCpp; on EngineLLM, None means: "
        "detect it on first use (then it is filled in).",
    )
    probe_timeout: float = Field(
        default=PROBE_TIMEOUT, gt=0, description="Seconds each engine-detection probe may take (auto mode)."
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
    thinking: bool | None = Field(
        default=None,
        description="Reasoning models: thinking on or off (the chat template's enable_thinking; None: the "
        "server's default). TGI has no field for it and refuses it.",
    )
    reasoning_effort: str | None = Field(
        default=None, description="Reasoning models: 'low', 'medium', 'high'."
    )
    thinking_budget: int | None = Field(
        default=None, description="Reasoning models: most thinking tokens (vLLM, llama.cpp)."
    )
    split_thinking: bool = Field(
        default=True,
        description="Split a model's <think>...</think> out of the answer text into a ThinkingBlock when the "
        "server has no reasoning parser (always on TGI; a no-op when the server did it). False: raw text.",
    )
    think_tags: ThinkTags | None = Field(
        default=None,
        exclude=True,
        description="Other tags than <think>/</think>, or ThinkTags(implicit_open=True) when the chat "
        "template opens the tag in the prompt (the output then starts inside the thinking).",
    )
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
        default=True,
        description="Whether the server was started with tool calling enabled (unset: what the server "
        "reports, where it says, e.g. llama.cpp's chat template capabilities; else True).",
    )

    _client: EngineClient | None = PrivateAttr(default=None)
    _http: tuple[httpx.Client | None, httpx.AsyncClient | None] = PrivateAttr(default=(None, None))
    _info: EngineInfo | None = PrivateAttr(default=None)
    _info_retry_at: float = PrivateAttr(default=0.0)

    def __init__(
        self,
        base_url: str | None = None,
        *,
        client: EngineClient | None = None,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
        **kwargs: Any,
    ) -> None:
        """``base_url`` (or the environment variable), sampling fields and connection settings; or a ready
        ``client`` (an ``engine_clients`` client or ``EnginePool``). ``http_client``/``async_http_client``
        are passed to the client, and used by the detection probes (custom transports, proxies, test mocks).
        Nothing is sent until the first call."""
        super().__init__(**{"base_url": base_url, **kwargs})  # the fields are declared on this class
        fixed = self.fixed_engine()
        if self.engine is not None:
            self.engine = _canonical(self.engine)
        if fixed is not None:
            if self.engine not in (None, fixed):
                raise ValueError(f"{type(self).__name__} is for {fixed}, not engine={self.engine!r}")
            self.engine = fixed
        if client is not None:
            self._adopt_client(client)
            return
        self._http = (http_client, async_http_client)
        if self.base_url is None or self.engine is not None:
            # no probing needed: the engine is known, or the environment names it (as connect() reads it)
            self._adopt(self._new_client(self.engine))

    def _adopt_client(self, client: EngineClient) -> None:
        if not isinstance(client, BaseClient | EnginePool):
            raise TypeError(
                f"{type(self).__name__} needs an engine_clients client or EnginePool, got {client!r}"
            )
        if client.engine is not None and self.engine not in (None, client.engine):
            wanted = client_class(self.engine).__name__ if self.engine else ""
            raise TypeError(
                f"{type(self).__name__} is for {self.engine} (a {wanted} or an EnginePool of it), "
                f"got {client!r}"
            )
        if isinstance(client, EnginePool):
            self._client = client
            self.base_url = ",".join(client.replicas)  # as EnginePool reads them from <ENGINE>_BASE_URL
            self.engine = self.engine or client.engine
        else:
            self._adopt(client)

    def _adopt(self, client: BaseClient) -> BaseClient:
        """Use ``client`` and fill the fields it settled (URL from the environment, engine, model)."""
        self._client = client
        self.base_url = client.base_url
        self.engine = client.engine
        if self.model is None:
            self.model = client.model
        return client

    @classmethod
    def fixed_engine(cls) -> str | None:
        """The class's engine (``"tgi"``, ``"vllm"``, ``"llamacpp"``); None for ``EngineLLM`` (auto mode)."""
        dialect = getattr(cls.client_class, "dialect_class", None)
        return dialect.engine if dialect is not None else None

    def _new_client(self, engine: str | None) -> BaseClient:
        """A client for ``engine`` (no I/O: ``engine`` is known, or None and the environment names it)."""
        http_client, async_http_client = self._http
        kwargs: dict[str, Any] = {
            "api_key": self.api_key,
            "model": self.model,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "headers": self.headers,
            "think_tags": (self.think_tags or ThinkTags()) if self.split_thinking else None,
            "http_client": http_client,
            "async_http_client": async_http_client,
        }
        if self.fixed_engine() is not None:
            return self.client_class(self.base_url, **kwargs)
        return connect(self.base_url, engine=engine, **kwargs)

    def _probe_args(self) -> tuple[str, dict[str, Any]]:
        assert self.base_url is not None  # a client is made at construction when there is none
        return self.base_url, {"api_key": self.api_key, "probe_timeout": self.probe_timeout}

    def _sync_client(self) -> EngineClient:
        """The client: the given one, else built on first use (auto mode: the engine is detected first)."""
        client = self._client
        if client is not None:
            return client
        engine = self.engine
        if engine is None:  # probing happens outside the lock
            url, kwargs = self._probe_args()
            engine = detect_engine(url, http_client=self._http[0], **kwargs)
        with _lock:
            return self._client or self._adopt(self._new_client(engine))

    async def _async_client(self) -> EngineClient:
        """``_sync_client`` for async code: detection probes do not block the event loop."""
        client = self._client
        if client is not None:
            return client
        engine = self.engine
        if engine is None:
            url, kwargs = self._probe_args()
            engine = await adetect_engine(url, http_client=self._http[1], **kwargs)
        with _lock:
            return self._client or self._adopt(self._new_client(engine))

    @classmethod
    def class_name(cls) -> str:
        engine = cls.fixed_engine()
        return f"{engine}_llm" if engine is not None else "engine_llm"

    @property
    def client(self) -> EngineClient:
        """The underlying ``engine_clients`` client or pool (for ``health()``, ``tokenize()``, ``info()``...).
        In auto mode, reading it first detects the engine."""
        return self._sync_client()

    def _known_engine(self) -> str | None:
        """The engine, if known without I/O (a pool's once it has resolved its replicas)."""
        if self.engine is None and isinstance(self._client, EnginePool):
            return self._client.engine
        return self.engine

    def close(self) -> None:
        """Close the sync HTTP connections (the LLM stays usable: they reopen on demand)."""
        if self._client is not None:
            self._client.close()

    async def aclose(self) -> None:
        """Close the async and sync HTTP connections."""
        if self._client is not None:
            await self._client.aclose()

    # -- copying and pickling: the client holds connections; copies share it, unpickling builds a new one --
    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> EngineLLM:
        memo = {} if memo is None else memo
        for shared in (self._client, *self._http):
            if shared is not None:
                memo[id(shared)] = shared
        return super().__deepcopy__(memo)

    def __getstate__(self) -> dict[Any, Any]:
        if isinstance(self._client, EnginePool):
            raise TypeError(
                f"{type(self).__name__} on an EnginePool cannot be pickled (the pool holds state)"
            )
        client, http = self._client, self._http
        self._client, self._http = None, (None, None)  # not picklable: left out quietly
        try:
            state: dict[Any, Any] = super().__getstate__()
        finally:
            self._client, self._http = client, http
        private = {**(state.get("__pydantic_private__") or {}), "_client": None, "_http": (None, None)}
        state["__pydantic_private__"] = private
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        if getattr(self, "_client", None) is None and (self.base_url is None or self.engine is not None):
            self._adopt(self._new_client(self.engine))

    # -- metadata -----------------------------------------------------------------------------------------
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

    # -- request arguments --------------------------------------------------------------------------------
    def _call_kwargs(
        self, params: tuple[str, ...], kwargs: dict[str, Any], engine: str | None = None
    ) -> dict[str, Any]:
        """Field defaults for the route, then ``additional_kwargs``, then the call's own kwargs (``None``
        unsets a default); ``extra_body`` dicts are merged. ``engine``: the one the request goes to."""
        out: dict[str, Any] = {name: getattr(self, name) for name in params}
        out.update(self.additional_kwargs)
        kwargs = dict(kwargs)
        parallel = kwargs.pop(_PARALLEL_IF_TAKEN, None)
        if parallel is not None and _takes_chat_param(engine, "parallel_tool_calls"):
            out["parallel_tool_calls"] = parallel
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
        client = self._sync_client()
        completion = client.chat(
            to_engine_messages(messages), **self._call_kwargs(self.chat_params, kwargs, client.engine)
        )
        return chat_response(completion)

    def _stream_chat(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> ChatResponseGen:
        client = self._sync_client()
        events = client.chat_stream(
            to_engine_messages(messages), **self._call_kwargs(self.chat_params, kwargs, client.engine)
        )
        return _sync_responses(events, ChatStreamAssembler())

    async def _achat(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> ChatResponse:
        client = await self._async_client()
        completion = await client.achat(
            to_engine_messages(messages), **self._call_kwargs(self.chat_params, kwargs, client.engine)
        )
        return chat_response(completion)

    async def _astream_chat(
        self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]
    ) -> ChatResponseAsyncGen:
        client = await self._async_client()
        events = client.achat_stream(
            to_engine_messages(messages), **self._call_kwargs(self.chat_params, kwargs, client.engine)
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
        return await self._astream_chat(messages, kwargs)

    # -- completion -----------------------------------------------------------------------------------------
    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Completion: through the chat route as one user message; ``formatted=True`` (or
        ``is_chat_model=False``) uses the engine's native text route without any chat template."""
        if self._text_route(formatted):
            client = self._sync_client()
            completion = client.generate(
                self._text_prompt(prompt, formatted),
                **self._call_kwargs(self.text_params, kwargs, client.engine),
            )
            return completion_response(completion)
        return chat_to_completion_response(self._chat(_user(prompt), kwargs))

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        if self._text_route(formatted):
            client = self._sync_client()
            events = client.generate_stream(
                self._text_prompt(prompt, formatted),
                **self._call_kwargs(self.text_params, kwargs, client.engine),
            )
            return _sync_responses(events, CompletionStreamAssembler())
        return (chat_to_completion_response(r) for r in self._stream_chat(_user(prompt), kwargs))

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        if self._text_route(formatted):
            client = await self._async_client()
            completion = await client.agenerate(
                self._text_prompt(prompt, formatted),
                **self._call_kwargs(self.text_params, kwargs, client.engine),
            )
            return completion_response(completion)
        return chat_to_completion_response(await self._achat(_user(prompt), kwargs))

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        if self._text_route(formatted):
            client = await self._async_client()
            events = client.agenerate_stream(
                self._text_prompt(prompt, formatted),
                **self._call_kwargs(self.text_params, kwargs, client.engine),
            )
            return _async_responses(events, CompletionStreamAssembler())
        chats = await self._astream_chat(_user(prompt), kwargs)

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
            engine = self._known_engine()
            if engine is None:  # auto mode before detection, or a pool not resolved yet: decided per call
                out.setdefault(_PARALLEL_IF_TAKEN, allow_parallel_tool_calls)
            elif _takes_chat_param(engine, "parallel_tool_calls"):
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
        """The tool calls in ``response`` (streamed partial arguments are parsed as far as they go). Raises
        :class:`InvalidToolCallError` when the finished response holds a call whose arguments are not a JSON
        object (cut off by ``max_tokens``, or malformed), and ValueError when there is none and
        ``error_on_no_tool_call``."""
        selections = tool_selections(response.message)
        if not selections and error_on_no_tool_call:
            raise ValueError("Expected at least one tool call, but got 0 tool calls.")
        return selections
