"""What a client is apart from its I/O: configuration, transports, request building, spans and lifecycle.

The calls themselves (``chat``/``achat`` and the rest) are written once in ``_async/client.py``;
``_sync/client.py`` is generated from it. Everything engine-specific is in the dialect the client names.

Reasoning models: chat answers carry the thinking in ``Completion.reasoning`` and streams yield it as
:class:`~engine_clients.Reasoning` events, never inside ``Token.text``. Engines that parse the thinking
out themselves deliver it apart; otherwise it is split off the content at ``think_tags``. The per-request
controls ``thinking``, ``reasoning_effort`` and ``thinking_budget`` map to each engine's own fields, and
a route that has no field for one refuses it with :class:`InvalidRequestError` before sending.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any
from typing import ClassVar
from typing import TypedDict

import httpx
from typing_extensions import Self

from . import _otel
from ._affinity import OnHeaders
from ._affinity import SessionAffinity
from ._affinity import SessionRouting
from ._call_args import ChatCall
from ._call_args import GenerateCall
from ._history_policy import ChatPlan
from ._history_policy import HistoryPolicy
from ._history_policy import check_policy
from ._http import http_backend as http_backend_of
from ._media import DEFAULT_MAX_MEDIA_BYTES
from ._request_core import RequestCore
from ._requests import normalize_messages
from ._sse import DEFAULT_MAX_EVENT_BYTES
from ._sse import DEFAULT_MAX_STREAM_BYTES
from ._timing import Measure
from ._transport import AsyncTransport
from ._transport import SyncTransport
from ._transport import Timeouts
from ._transport import redact_url
from .dialects import OpenAICompatDialect
from .dialects.base import HttpRequest
from .dialects.base import StreamDecoder
from .dialects.history import TemplateRules
from .dialects.reasoning import DEFAULT_THINK_TAGS
from .dialects.reasoning import ThinkTags
from .errors import InvalidRequestError
from .types import Completion
from .types import HealthStatus

if TYPE_CHECKING:
    from pydantic import SecretStr

__all__ = ["HEALTH_TIMEOUT", "ClientCore", "health_of_status"]

HEALTH_TIMEOUT = 5.0


class _Route(TypedDict):
    """Transport keywords for one call: a router's session header or cookie, and its Set-Cookie reader."""

    headers: dict[str, str] | None
    on_headers: OnHeaders | None


class ClientCore(RequestCore):
    """Configuration, transports, spans and lifecycle shared by the sync and async API (request building:
    :class:`~engine_clients._request_core.RequestCore`)."""

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
        history: HistoryPolicy = "auto",
        http_backend: str | None = None,
    ) -> None:
        """``think_tags``: the tags a model wraps its thinking in inside the content, split off into
        ``reasoning`` on chat routes (a no-op when the engine already parsed the thinking out); pass
        ``ThinkTags(implicit_open=True)`` when the chat template opens the tag in the prompt, or None to
        leave the content raw. Native text routes (``generate``) are never split.

        ``affinity``: how a call's ``session_id`` reaches a router in front of the engines (a
        :class:`SessionAffinity`, or a preset name: ``"vllm-router"``, the default, sends ``X-Session-ID``;
        ``"litellm"``, ``"dynamo"``, ``"llm-d"``).

        ``max_media_bytes``: the largest image or audio item (decoded) sent inline; a larger one raises
        :class:`MediaTooLargeError` before anything is sent.

        ``history``: how a chat history meets a strict chat template: ``"auto"`` (sent as given; fitted and
        sent once more when the server's template refuses it, and fitted from then on), ``"fit"``,
        ``"mistral"``, ``"keep"`` or a :class:`TemplateRules` (see ``engine_clients/_history_policy.py``).
        Each call may override it; changes are reported in ``Completion.history_changes``.

        ``http_backend``: the async socket layer, ``"httpx"`` (default) or ``"aiohttp"`` (the faster one for
        thousands of concurrent streams; ``pip install 'llm-engine-clients[aiohttp]'``); None reads
        ``$ENGINE_CLIENTS_HTTP_BACKEND``. Same timeouts, retries, errors and streams either way."""
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
        self.http_backend = http_backend_of(http_backend)
        self._sync: SyncTransport | None = None
        self._async: AsyncTransport | None = None
        self._async_loop: asyncio.AbstractEventLoop | None = None
        self.max_media_bytes = max_media_bytes
        self._media_marker: str | None = None  # llama-server's /props media_marker, read on first need
        self.affinity = SessionAffinity.coerce(affinity)
        self._routing = SessionRouting(self.affinity)
        self._pid = os.getpid()  # a forked child opens its own connections (see _after_fork)
        self.history = check_policy(history, self.dialect.engine)
        self._learned: TemplateRules | None = None  # the rules a template error taught (history="auto")

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
            self._sync = SyncTransport(
                *self._transport_args(), http_client=self._given_sync, backend=self.http_backend
            )
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
            self._async = AsyncTransport(
                *self._transport_args(), http_client=self._given_async, backend=self.http_backend
            )
            self._async_loop = loop
        return self._async

    def affinity_params(self, slot: int) -> dict[str, Any]:
        """Sampling parameters that keep one session's prompt cache warm on this server, for session
        affinity in :class:`EnginePool` (``slot`` is the session's stable slot number on this replica).
        Empty by default: the engine needs nothing beyond being sent to the same replica."""
        return {}

    def _route(self, session_id: str | None) -> _Route:
        """Transport keywords that carry ``session_id`` to a router (see ``affinity``)."""
        headers, on_headers = self._routing.route(session_id)
        return {"headers": headers, "on_headers": on_headers}

    def _span(self, call: ChatCall | GenerateCall) -> _otel.Call | None:
        """An OpenTelemetry span for one request (None when opentelemetry is absent or records nothing)."""
        tracer = _otel.active_tracer()
        if tracer is None:
            return None
        prompt: Callable[[], Any]  # what the span records of the input, made only when captured
        if isinstance(call, ChatCall):
            messages = call.messages
            operation, prompt = "chat", lambda: normalize_messages(messages)
        else:
            text = call.prompt
            operation, prompt = "text_completion", lambda: text
        return _otel.Call.open(
            tracer,
            operation=operation,
            engine=self.engine,
            base_url=self.base_url,
            model=call.model or self.model,
            sampling=call.sampling,
            prompt=prompt,
            capture=self.trace_content,
        )

    def _timed(self, chat: bool, http: HttpRequest, body: Any, measure: Measure) -> Completion:
        """The parsed answer with its timings: the transport's clock readings and the engine's figures. The
        request tells the codec which tools were offered (tool calls leaked into content are recovered)."""
        completion = self.dialect.parse_chat(body, http) if chat else self.dialect.parse_generate(body)
        completion.history_changes = http.history_changes
        server = self.dialect.parse_timings([body], measure.headers)
        completion.timings = measure.timings(server, completion.usage)
        return completion

    def _decoder(
        self, chat: bool, http: HttpRequest, model: str | None, plan: ChatPlan | None
    ) -> StreamDecoder:
        decoder = self.dialect.chat_stream_decoder(http) if chat else self.dialect.generate_stream_decoder()
        if model:
            decoder.model = model
        if plan is not None:
            decoder.history_changes = http.history_changes
            plan.decoder = decoder
        return decoder

    # -- lifecycle: hand-written, since aclose closes both halves --
    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()

    async def aclose(self) -> None:
        if self._async is not None:
            await self._async.aclose()
        self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
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


def health_of_status(status: int) -> HealthStatus:
    if status < 300:
        return HealthStatus.HEALTHY
    return HealthStatus.DEGRADED
