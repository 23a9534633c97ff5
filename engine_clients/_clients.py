"""``TGIClient``, ``VLLMClient``, ``LlamaCppClient``: a dialect paired with the transport.

The sync and async methods are the same few lines over the same codec; everything engine-specific is in
the dialect the class names. ``_ClientCore`` holds configuration and request building, ``_SyncAPI`` the
blocking calls and :class:`BaseClient` adds their async twins.

Reasoning models: chat answers carry the thinking in ``Completion.reasoning`` and streams yield it as
:class:`~engine_clients.Reasoning` events, never inside ``Token.text``. Engines that parse the thinking
out themselves deliver it apart; otherwise it is split off the content at ``think_tags``. The per-request
controls ``thinking``, ``reasoning_effort`` and ``thinking_budget`` map to each engine's own fields, and
a route that has no field for one refuses it with :class:`InvalidRequestError` before sending.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypedDict

import httpx
from typing_extensions import Self

from . import _otel
from ._affinity import OnHeaders, SessionAffinity, SessionRouting
from ._embeddings import EmbeddingsMixin
from ._media import DEFAULT_MAX_MEDIA_BYTES, ImageInput, normalize_images
from ._requests import (
    ChatRequest,
    GenerateRequest,
    ReasoningControls,
    normalize_messages,
    normalize_response_format,
    normalize_tool_choice,
    normalize_tools,
)
from ._sse import DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_STREAM_BYTES
from ._timing import Measure
from ._transport import AsyncTransport, SyncTransport, Timeouts, redact_url
from .dialects import LlamaCppDialect, OpenAICompatDialect, TGIDialect, VLLMDialect
from .dialects.base import HttpRequest, StreamDecoder
from .dialects.reasoning import DEFAULT_THINK_TAGS, ThinkTags
from .dialects.tei import TEIDialect
from .errors import EngineError, InvalidRequestError
from .types import (
    Completion,
    EngineInfo,
    HealthStatus,
    MessageInput,
    ResponseFormatInput,
    StreamEvent,
    TokenInfo,
    ToolChoice,
    ToolInput,
)

if TYPE_CHECKING:
    from pydantic import SecretStr

__all__ = ["BaseClient", "LlamaCppClient", "TEIClient", "TGIClient", "VLLMClient"]

HEALTH_TIMEOUT = 5.0
_CONTROLS = frozenset({"thinking", "reasoning_effort", "thinking_budget"})


class _Route(TypedDict):
    """Transport keywords for one call: a router's session header or cookie, and its Set-Cookie reader."""

    headers: dict[str, str] | None
    on_headers: OnHeaders | None


class _ClientCore:
    """Configuration, transports and request building shared by the sync and async API."""

    dialect_class: ClassVar[type[OpenAICompatDialect]]
    env_prefix: ClassVar[str]
    trace_content: bool | None = None
    """Record prompt and completion text on OpenTelemetry spans (None: the environment variable
    ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` decides; off unless it is ``true``)."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | SecretStr | None = None,
        model: str | None = None,
        timeout: float | Timeouts | httpx.Timeout | None = None,
        max_retries: int = 2,
        headers: Mapping[str, str] | None = None,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        max_stream_bytes: int = DEFAULT_MAX_STREAM_BYTES,
        think_tags: ThinkTags | None = DEFAULT_THINK_TAGS,
        affinity: SessionAffinity | str | None = None,
        max_media_bytes: int = DEFAULT_MAX_MEDIA_BYTES,
    ) -> None:
        """``think_tags``: the tags a model wraps its thinking in inside the content, split off into
        ``reasoning`` on chat routes (a no-op when the engine already parsed the thinking out); pass
        ``ThinkTags(implicit_open=True)`` when the chat template opens the tag in the prompt, or None to
        leave the content raw. Native text routes (``generate``) are never split.

        ``affinity``: how a call's ``session_id`` reaches a router in front of the engines (a
        :class:`SessionAffinity`, or a preset name: ``"vllm-router"``, the default, sends ``X-Session-ID``;
        ``"litellm"``, ``"dynamo"``, ``"llm-d"``).

        ``max_media_bytes``: the largest image or audio item (decoded) sent inline; a larger one raises
        :class:`MediaTooLargeError` before anything is sent."""
        url = base_url or os.environ.get(f"{self.env_prefix}_BASE_URL")
        if not url:
            raise InvalidRequestError(
                f"no base_url given and {self.env_prefix}_BASE_URL is not set",
                engine=self.dialect_class.engine,
            )
        if "," in url:
            raise InvalidRequestError(
                f"{url!r} names several servers: use EnginePool for replicas",
                engine=self.dialect_class.engine,
            )
        self.base_url = url.rstrip("/")
        key = api_key if api_key is not None else os.environ.get(f"{self.env_prefix}_API_KEY")
        if isinstance(key, str):
            from pydantic import SecretStr  # not at import time: pydantic costs ~40 ms to import

            key = SecretStr(key)
        self.api_key: SecretStr | None = key
        self.model = model
        self.timeouts = Timeouts.coerce(timeout)
        self.max_retries = max_retries
        self.dialect = self.dialect_class(model, think_tags)
        hdrs = {"user-agent": "llm-engine-clients/0.1"}
        hdrs.update(headers or {})
        if self.api_key is not None and self.api_key.get_secret_value():
            hdrs["authorization"] = f"Bearer {self.api_key.get_secret_value()}"
        self._http_headers = hdrs
        self._limits = (max_event_bytes, max_stream_bytes)
        self._given_sync = http_client
        self._given_async = async_http_client
        self._sync: SyncTransport | None = None
        self._async: AsyncTransport | None = None
        self._async_loop: asyncio.AbstractEventLoop | None = None
        self.max_media_bytes = max_media_bytes
        self._media_marker: str | None = None  # llama-server's /props media_marker, read on first need
        self.affinity = SessionAffinity.coerce(affinity)
        self._routing = SessionRouting(self.affinity)
        self._pid = os.getpid()  # a forked child opens its own connections (see _after_fork)

    @property
    def engine(self) -> str:
        return self.dialect.engine

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={redact_url(self.base_url)!r}, model={self.model!r})"

    # -- transports, created on first use so a sync-only user never opens an async client and vice versa --
    def _transport_args(self) -> tuple[Any, ...]:
        return (
            self.base_url,
            self._http_headers,
            self.timeouts,
            self.max_retries,
            self.dialect.parse_error,
            *self._limits,
        )

    def _after_fork(self) -> None:
        """In a forked child, drop the parent's transports: their pooled sockets are shared with the
        parent, so the child opens its own connections (a given ``http_client`` is the caller's to manage)."""
        if self._pid != os.getpid():
            self._sync = self._async = None
            self._async_loop = None
            self._pid = os.getpid()

    @property
    def sync_transport(self) -> SyncTransport:
        self._after_fork()
        if self._sync is None:
            self._sync = SyncTransport(*self._transport_args(), http_client=self._given_sync)
        return self._sync

    @property
    def async_transport(self) -> AsyncTransport:
        self._after_fork()
        loop = _running_loop()
        if self._async is not None and self._given_async is None and self._async_loop is not loop:
            # httpx's async connections belong to the event loop that opened them (asyncio.run per call, a
            # notebook's loop then a thread's, ...): each loop gets its own; the old one dies with its loop.
            self._async = None
        if self._async is None:
            self._async = AsyncTransport(*self._transport_args(), http_client=self._given_async)
            self._async_loop = loop
        return self._async

    # -- request building (pure) --
    def _chat_request(
        self,
        messages: Sequence[MessageInput] | str,
        tools: Sequence[ToolInput] | None,
        tool_choice: ToolChoice | bool | None,
        response_format: ResponseFormatInput | None,
        model: str | None,
        extra_body: Mapping[str, Any] | None,
        sampling: dict[str, Any],
        reasoning: ReasoningControls,
    ) -> ChatRequest:
        norm_tools = normalize_tools(tools)
        return ChatRequest(
            messages=normalize_messages(messages, self.max_media_bytes),
            tools=norm_tools,
            tool_choice=normalize_tool_choice(tool_choice, norm_tools),
            response_format=normalize_response_format(response_format),
            sampling=sampling,
            extra_body=dict(extra_body or {}),
            model=model,
            reasoning=reasoning,
        )

    def build_chat(
        self,
        messages: Sequence[MessageInput] | str,
        *,
        tools: Sequence[ToolInput] | None = None,
        tool_choice: ToolChoice | bool | None = None,
        response_format: ResponseFormatInput | None = None,
        model: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        thinking: bool | None = None,
        reasoning_effort: str | None = None,
        thinking_budget: int | None = None,
        stream: bool = False,
        **sampling: Any,
    ) -> HttpRequest:
        """The HTTP request ``chat`` would send, without sending it (for inspection and tests)."""
        controls = ReasoningControls(thinking, reasoning_effort, thinking_budget)
        req = self._chat_request(
            messages, tools, tool_choice, response_format, model, extra_body, sampling, controls
        )
        return self.dialect.build_chat(req, stream)

    def build_generate(
        self,
        prompt: str,
        *,
        images: Sequence[ImageInput] | None = None,
        response_format: ResponseFormatInput | None = None,
        model: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        stream: bool = False,
        **sampling: Any,
    ) -> HttpRequest:
        """The HTTP request ``generate`` would send, without sending it (images on llama.cpp need the
        server's media marker, which ``generate`` reads first)."""
        if not isinstance(prompt, str):
            raise InvalidRequestError("prompt must be a string", engine=self.engine)
        controls = sorted(_CONTROLS & sampling.keys())
        if controls:
            raise InvalidRequestError(
                f"{', '.join(controls)}: thinking controls act through the chat template, which the native"
                " text route does not apply; use chat",
                engine=self.engine,
            )
        req = GenerateRequest(
            prompt,
            normalize_response_format(response_format),
            sampling,
            dict(extra_body or {}),
            model,
            normalize_images(images, self.max_media_bytes),
            self._media_marker,
        )
        return self.dialect.build_generate(req, stream)

    def _media_probe(self, images: Sequence[ImageInput] | None) -> tuple[tuple[str, ...], HttpRequest | None]:
        """``images`` normalized (refused before any I/O when the route cannot take them), and the discovery
        request to answer before sending them on the native text route, if one is needed."""
        urls = normalize_images(images, self.max_media_bytes)
        if not urls or self._media_marker is not None:
            return urls, None
        return urls, self.dialect.media_probe(urls)

    def affinity_params(self, slot: int) -> dict[str, Any]:
        """Sampling parameters that keep one session's prompt cache warm on this server, for session
        affinity in :class:`EnginePool` (``slot`` is the session's stable slot number on this replica).
        Empty by default: the engine needs nothing beyond being sent to the same replica."""
        return {}

    def _route(self, session_id: str | None) -> _Route:
        """Transport keywords that carry ``session_id`` to a router (see ``affinity``)."""
        headers, on_headers = self._routing.route(session_id)
        return {"headers": headers, "on_headers": on_headers}

    def _span(
        self, chat: bool, model: str | None, sampling: Mapping[str, Any], prompt: Any
    ) -> _otel.Call | None:
        """An OpenTelemetry span for one request (None when opentelemetry is absent or records nothing)."""
        tracer = _otel.active_tracer()
        if tracer is None:
            return None
        return _otel.Call.open(
            tracer,
            operation="chat" if chat else "text_completion",
            engine=self.engine,
            base_url=self.base_url,
            model=model or self.model,
            sampling=sampling,
            prompt=(lambda: normalize_messages(prompt)) if chat else (lambda: prompt),
            capture=self.trace_content,
        )

    def _timed(self, chat: bool, body: Any, measure: Measure) -> Completion:
        """The parsed answer with its timings: the transport's clock readings and the engine's figures."""
        completion = self.dialect.parse_chat(body) if chat else self.dialect.parse_generate(body)
        server = self.dialect.parse_timings([body], measure.headers)
        completion.timings = measure.timings(server, completion.usage)
        return completion

    def _decoder(self, chat: bool, model: str | None) -> StreamDecoder:
        decoder = self.dialect.chat_stream_decoder() if chat else self.dialect.generate_stream_decoder()
        if model:
            decoder.model = model
        return decoder


class _SyncAPI(_ClientCore):
    """The blocking calls."""

    def chat(
        self,
        messages: Sequence[MessageInput] | str,
        *,
        tools: Sequence[ToolInput] | None = None,
        tool_choice: ToolChoice | bool | None = None,
        response_format: ResponseFormatInput | None = None,
        model: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        thinking: bool | None = None,
        reasoning_effort: str | None = None,
        thinking_budget: int | None = None,
        session_id: str | None = None,
        **sampling: Any,
    ) -> Completion:
        """Chat completion. ``sampling``: max_tokens, temperature, top_p, top_k, seed, stop, penalties,
        logprobs/top_logprobs and the engine's own parameters; anything unknown is refused before sending.

        Thinking controls (None: the engine's default): ``thinking`` turns a reasoning model's thinking on
        or off, ``reasoning_effort`` asks for a level (``"low"``, ``"medium"``, ``"high"``, ...;
        ``"none"`` is off) and ``thinking_budget`` caps the thinking tokens. vLLM and llama.cpp take all
        three; TGI takes none and refuses them (InvalidRequestError) rather than ignore them."""
        http = self.build_chat(
            messages,
            tools=tools,
            tool_choice=tool_choice,
            response_format=response_format,
            model=model,
            extra_body=extra_body,
            thinking=thinking,
            reasoning_effort=reasoning_effort,
            thinking_budget=thinking_budget,
            **sampling,
        )
        return self._complete(http, True, session_id, model, sampling, messages)

    def chat_stream(
        self,
        messages: Sequence[MessageInput] | str,
        *,
        tools: Sequence[ToolInput] | None = None,
        tool_choice: ToolChoice | bool | None = None,
        response_format: ResponseFormatInput | None = None,
        model: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        thinking: bool | None = None,
        reasoning_effort: str | None = None,
        thinking_budget: int | None = None,
        session_id: str | None = None,
        **sampling: Any,
    ) -> Iterator[StreamEvent]:
        """Stream a chat completion as ``Started``, ``Token``/``ToolCallDelta``..., ``End`` events."""
        http = self.build_chat(
            messages,
            tools=tools,
            tool_choice=tool_choice,
            response_format=response_format,
            model=model,
            extra_body=extra_body,
            thinking=thinking,
            reasoning_effort=reasoning_effort,
            thinking_budget=thinking_budget,
            stream=True,
            **sampling,
        )
        return self._stream(http, True, session_id, model, sampling, messages)

    def generate(
        self,
        prompt: str,
        *,
        images: Sequence[ImageInput] | None = None,
        response_format: ResponseFormatInput | None = None,
        model: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        session_id: str | None = None,
        **sampling: Any,
    ) -> Completion:
        """Raw text completion on the engine's native text route (no chat template).

        ``images``: data URLs, http(s) URLs, local paths or ``file://`` URLs, bytes, or chat image parts (the
        chat rules and ``max_media_bytes``). TGI gets them in ``inputs`` as ``![](url)`` before the prompt;
        llama.cpp as a multimodal prompt with the server's media marker (read once from ``/props``; a server
        without vision raises UnsupportedInputError); vLLM refuses them (InvalidRequestError: use chat)."""
        urls = self._read_marker(images)
        http = self.build_generate(
            prompt,
            images=urls,
            response_format=response_format,
            model=model,
            extra_body=extra_body,
            **sampling,
        )
        return self._complete(http, False, session_id, model, sampling, prompt)

    def generate_stream(
        self,
        prompt: str,
        *,
        images: Sequence[ImageInput] | None = None,
        response_format: ResponseFormatInput | None = None,
        model: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        session_id: str | None = None,
        **sampling: Any,
    ) -> Iterator[StreamEvent]:
        urls = self._read_marker(images)
        http = self.build_generate(
            prompt,
            images=urls,
            response_format=response_format,
            model=model,
            extra_body=extra_body,
            stream=True,
            **sampling,
        )
        return self._stream(http, False, session_id, model, sampling, prompt)

    def _read_marker(self, images: Sequence[ImageInput] | None) -> tuple[str, ...]:
        urls, probe = self._media_probe(images)
        if probe is not None:
            self._media_marker = self.dialect.parse_media_probe(self.sync_transport.request(probe))
        return urls

    def _complete(
        self,
        http: HttpRequest,
        chat: bool,
        session_id: str | None,
        model: str | None,
        sampling: Any,
        prompt: Any,
    ) -> Completion:
        call = self._span(chat, model, sampling, prompt)
        measure = Measure()
        try:
            with _otel.activate(call):
                body = self.sync_transport.request(http, measure=measure, **self._route(session_id))
            completion = self._timed(chat, body, measure)
        except BaseException as exc:
            if call is not None:
                call.fail(exc)
            raise
        if call is not None:
            call.done(completion)
        return completion

    def _stream(
        self,
        http: HttpRequest,
        chat: bool,
        session_id: str | None,
        model: str | None,
        sampling: Any,
        prompt: Any,
    ) -> Iterator[StreamEvent]:
        events = self.sync_transport.stream(http, self._decoder(chat, model), **self._route(session_id))
        if _otel.active_tracer() is None:
            return events
        return _otel.traced(lambda: self._span(chat, model, sampling, prompt), events)

    def health(self) -> HealthStatus:
        """HEALTHY when ready; DEGRADED when it answers but is not ready (loading); UNHEALTHY: no answer."""
        try:
            return _health(self.sync_transport.status(self.dialect.health_path, HEALTH_TIMEOUT))
        except httpx.HTTPError:
            return HealthStatus.UNHEALTHY

    def info(self) -> EngineInfo:
        """Engine name, model id, version and context limits, from the engine's discovery routes."""
        bodies = []
        for i, r in enumerate(self.dialect.info_requests()):
            try:
                bodies.append(self.sync_transport.request(r))
            except EngineError:
                if i == 0:  # later routes are optional (older engine versions lack them)
                    raise
                bodies.append(None)
        return self.dialect.parse_info(bodies)

    def tokenize(self, text: str, *, add_special_tokens: bool = True) -> list[TokenInfo]:
        """Tokens of ``text`` from the engine's own tokenizer endpoint."""
        http = self.dialect.build_tokenize(text, add_special_tokens)
        return self.dialect.parse_tokenize(self.sync_transport.request(http))

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BaseClient(_SyncAPI):
    """Shared implementation; use :class:`TGIClient`, :class:`VLLMClient` or :class:`LlamaCppClient`."""

    async def achat(
        self,
        messages: Sequence[MessageInput] | str,
        *,
        tools: Sequence[ToolInput] | None = None,
        tool_choice: ToolChoice | bool | None = None,
        response_format: ResponseFormatInput | None = None,
        model: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        thinking: bool | None = None,
        reasoning_effort: str | None = None,
        thinking_budget: int | None = None,
        session_id: str | None = None,
        **sampling: Any,
    ) -> Completion:
        http = self.build_chat(
            messages,
            tools=tools,
            tool_choice=tool_choice,
            response_format=response_format,
            model=model,
            extra_body=extra_body,
            thinking=thinking,
            reasoning_effort=reasoning_effort,
            thinking_budget=thinking_budget,
            **sampling,
        )
        return await self._acomplete(http, True, session_id, model, sampling, messages)

    def achat_stream(
        self,
        messages: Sequence[MessageInput] | str,
        *,
        tools: Sequence[ToolInput] | None = None,
        tool_choice: ToolChoice | bool | None = None,
        response_format: ResponseFormatInput | None = None,
        model: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        thinking: bool | None = None,
        reasoning_effort: str | None = None,
        thinking_budget: int | None = None,
        session_id: str | None = None,
        **sampling: Any,
    ) -> AsyncIterator[StreamEvent]:
        """``async for event in client.achat_stream(...)``: the async twin of :meth:`chat_stream`."""
        http = self.build_chat(
            messages,
            tools=tools,
            tool_choice=tool_choice,
            response_format=response_format,
            model=model,
            extra_body=extra_body,
            thinking=thinking,
            reasoning_effort=reasoning_effort,
            thinking_budget=thinking_budget,
            stream=True,
            **sampling,
        )
        return self._astream(http, True, session_id, model, sampling, messages)

    async def agenerate(
        self,
        prompt: str,
        *,
        images: Sequence[ImageInput] | None = None,
        response_format: ResponseFormatInput | None = None,
        model: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        session_id: str | None = None,
        **sampling: Any,
    ) -> Completion:
        urls, probe = self._media_probe(images)
        if probe is not None:
            await self._aread_marker(probe)
        http = self.build_generate(
            prompt,
            images=urls,
            response_format=response_format,
            model=model,
            extra_body=extra_body,
            **sampling,
        )
        return await self._acomplete(http, False, session_id, model, sampling, prompt)

    def agenerate_stream(
        self,
        prompt: str,
        *,
        images: Sequence[ImageInput] | None = None,
        response_format: ResponseFormatInput | None = None,
        model: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        session_id: str | None = None,
        **sampling: Any,
    ) -> AsyncIterator[StreamEvent]:
        urls, probe = self._media_probe(images)

        def build() -> HttpRequest:
            return self.build_generate(
                prompt,
                images=urls,
                response_format=response_format,
                model=model,
                extra_body=extra_body,
                stream=True,
                **sampling,
            )

        if probe is None:
            return self._astream(build(), False, session_id, model, sampling, prompt)
        return self._aprobed_stream(probe, build, session_id, model, sampling, prompt)

    async def _aprobed_stream(
        self,
        probe: HttpRequest,
        build: Callable[[], HttpRequest],
        session_id: str | None,
        model: str | None,
        sampling: Any,
        prompt: str,
    ) -> AsyncIterator[StreamEvent]:
        """The stream, once the media marker is read (the first iteration does that request)."""
        await self._aread_marker(probe)
        async for event in self._astream(build(), False, session_id, model, sampling, prompt):
            yield event

    async def _aread_marker(self, probe: HttpRequest) -> None:
        self._media_marker = self.dialect.parse_media_probe(await self.async_transport.request(probe))

    async def _acomplete(
        self,
        http: HttpRequest,
        chat: bool,
        session_id: str | None,
        model: str | None,
        sampling: Any,
        prompt: Any,
    ) -> Completion:
        call = self._span(chat, model, sampling, prompt)
        measure = Measure()
        try:
            with _otel.activate(call):
                body = await self.async_transport.request(http, measure=measure, **self._route(session_id))
            completion = self._timed(chat, body, measure)
        except BaseException as exc:
            if call is not None:
                call.fail(exc)
            raise
        if call is not None:
            call.done(completion)
        return completion

    def _astream(
        self,
        http: HttpRequest,
        chat: bool,
        session_id: str | None,
        model: str | None,
        sampling: Any,
        prompt: Any,
    ) -> AsyncIterator[StreamEvent]:
        events = self.async_transport.stream(http, self._decoder(chat, model), **self._route(session_id))
        if _otel.active_tracer() is None:
            return events
        return _otel.atraced(lambda: self._span(chat, model, sampling, prompt), events)

    async def ahealth(self) -> HealthStatus:
        try:
            return _health(await self.async_transport.status(self.dialect.health_path, HEALTH_TIMEOUT))
        except httpx.HTTPError:
            return HealthStatus.UNHEALTHY

    async def ainfo(self) -> EngineInfo:
        bodies = []
        for i, r in enumerate(self.dialect.info_requests()):
            try:
                bodies.append(await self.async_transport.request(r))
            except EngineError:
                if i == 0:
                    raise
                bodies.append(None)
        return self.dialect.parse_info(bodies)

    async def atokenize(self, text: str, *, add_special_tokens: bool = True) -> list[TokenInfo]:
        http = self.dialect.build_tokenize(text, add_special_tokens)
        return self.dialect.parse_tokenize(await self.async_transport.request(http))

    async def aclose(self) -> None:
        if self._async is not None:
            await self._async.aclose()
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError(f"{type(self).__name__} holds open connections and cannot be pickled")


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _health(status: int) -> HealthStatus:
    if status < 300:
        return HealthStatus.HEALTHY
    return HealthStatus.DEGRADED


class TGIClient(BaseClient):
    """Hugging Face Text Generation Inference. Base URL from the argument or ``TGI_BASE_URL``."""

    dialect_class = TGIDialect
    env_prefix = "TGI"


class VLLMClient(EmbeddingsMixin, BaseClient):
    """vLLM's OpenAI-compatible server. Base URL from the argument or ``VLLM_BASE_URL``.

    ``embed``/``rerank`` need a pooling model (``--runner pooling``)."""

    dialect_class = VLLMDialect
    env_prefix = "VLLM"


class LlamaCppClient(EmbeddingsMixin, BaseClient):
    """llama.cpp's llama-server. Base URL from the argument or ``LLAMACPP_BASE_URL``.

    ``embed`` needs ``--embedding`` (with ``--pooling``), ``rerank`` needs ``--rerank``."""

    dialect_class = LlamaCppDialect
    env_prefix = "LLAMACPP"

    def affinity_params(self, slot: int) -> dict[str, Any]:
        """Pin the session to one llama-server slot and reuse its KV cache (``id_slot``, ``cache_prompt``);
        a negative ``slot`` lets the server choose (it picks the slot with the most similar cached prompt)."""
        return {"id_slot": slot, "cache_prompt": True} if slot >= 0 else {"cache_prompt": True}


class TEIClient(EmbeddingsMixin, BaseClient):
    """Hugging Face text-embeddings-inference: ``embed``/``rerank``, ``info``, ``health``, ``tokenize`` (no
    chat or text generation). Base URL from the argument or ``TEI_BASE_URL``."""

    dialect_class = TEIDialect
    env_prefix = "TEI"
