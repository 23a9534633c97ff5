"""A client's calls: chat, generate, their streams, health, info and tokenize, over one dialect.

Each call builds its request with the dialect (pure, in ``_client_core``), sends it through the transport and
parses the answer with the dialect again; spans and timings wrap the I/O.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import httpx

from .. import _otel
from .._client_core import HEALTH_TIMEOUT, health_of_status
from .._history_policy import ChatPlan, HistoryPolicy
from .._media import ImageInput
from .._requests import ReasoningControls
from .._timing import Measure
from ..dialects.base import HttpRequest
from ..errors import EngineError, ModelRequiredError, NotFoundError
from ..types import (
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
from .models import AsyncModelsAPI
from .otel import atraced

__all__ = ["AsyncClientAPI"]


class AsyncClientAPI(AsyncModelsAPI):
    """The calls of :class:`~engine_clients.BaseClient` (models and adapters: ``_async/models.py``)."""

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
        history: HistoryPolicy | None = None,
        adapter: str | None = None,
        adapter_scale: float | None = None,
        session_id: str | None = None,
        **sampling: Any,
    ) -> Completion:
        """Chat completion. ``sampling``: max_tokens, temperature, top_p, top_k, seed, stop, penalties,
        logprobs/top_logprobs and the engine's own parameters; anything unknown is refused before sending.

        Thinking controls (None: the engine's default): ``thinking`` turns a reasoning model's thinking on
        or off, ``reasoning_effort`` asks for a level (``"low"``, ``"medium"``, ``"high"``, ...;
        ``"none"`` is off) and ``thinking_budget`` caps the thinking tokens. vLLM and llama.cpp take all
        three; TGI takes none and refuses them (InvalidRequestError) rather than ignore them.

        ``history``: this call's history policy (None: the client's; see the client's ``history``).

        ``adapter``: a LoRA adapter the server serves, by name (see ``adapters()``; None: the server's
        default), spelled as each engine wants it; one it does not have raises AdapterNotFoundError, never
        runs on the base model (TGI cannot tell). ``adapter_scale``: its strength (llama.cpp only;
        default 1.0, 0 turns it off); llama.cpp gets every other adapter at scale 0."""
        controls = ReasoningControls(thinking, reasoning_effort, thinking_budget)
        await self._aknow_adapters(adapter, model)
        choice = self._adapter_choice(adapter, adapter_scale, model)
        req = self._chat_request(
            messages, tools, tool_choice, response_format, model, extra_body, sampling, controls, choice
        )
        plan = self._plan(req, False, history)
        return await self._acomplete(plan.http, True, session_id, model, sampling, messages, plan, adapter)

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
        history: HistoryPolicy | None = None,
        adapter: str | None = None,
        adapter_scale: float | None = None,
        session_id: str | None = None,
        **sampling: Any,
    ) -> AsyncIterator[StreamEvent]:
        """Stream a chat completion as ``Started``, ``Token``/``ToolCallDelta``..., ``End`` events."""
        controls = ReasoningControls(thinking, reasoning_effort, thinking_budget)
        choice = self._adapter_choice(adapter, adapter_scale, model)
        req = self._chat_request(
            messages, tools, tool_choice, response_format, model, extra_body, sampling, controls, choice
        )

        def build() -> tuple[HttpRequest, ChatPlan]:
            req.adapter = self._adapter_choice(adapter, adapter_scale, model)
            plan = self._plan(req, True, history)
            return plan.http, plan

        if self._adapters_unread(adapter, model):
            return self._aprepared_stream(None, adapter, model, build, True, session_id, sampling, messages)
        http, plan = build()
        return self._astream(http, True, session_id, model, sampling, messages, plan, adapter)

    async def agenerate(
        self,
        prompt: str,
        *,
        images: Sequence[ImageInput] | None = None,
        response_format: ResponseFormatInput | None = None,
        model: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        adapter: str | None = None,
        adapter_scale: float | None = None,
        session_id: str | None = None,
        **sampling: Any,
    ) -> Completion:
        """Raw text completion on the engine's native text route (no chat template).

        ``images``: data URLs, http(s) URLs, local paths or ``file://`` URLs, bytes, or chat image parts (the
        chat rules and ``max_media_bytes``). TGI gets them in ``inputs`` as ``![](url)`` before the prompt;
        llama.cpp as a multimodal prompt with the server's media marker (read once from ``/props``; a server
        without vision raises UnsupportedInputError); vLLM refuses them (InvalidRequestError: use chat).

        ``adapter``, ``adapter_scale``: as for ``chat`` (TGI: ``parameters.adapter_id``)."""
        urls, probe = self._media_probe(images)
        if probe is not None:
            await self._aread_marker(probe)
        await self._aknow_adapters(adapter, model)
        http = self.build_generate(
            prompt,
            images=urls,
            response_format=response_format,
            model=model,
            extra_body=extra_body,
            adapter=adapter,
            adapter_scale=adapter_scale,
            **sampling,
        )
        return await self._acomplete(http, False, session_id, model, sampling, prompt, None, adapter)

    def agenerate_stream(
        self,
        prompt: str,
        *,
        images: Sequence[ImageInput] | None = None,
        response_format: ResponseFormatInput | None = None,
        model: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        adapter: str | None = None,
        adapter_scale: float | None = None,
        session_id: str | None = None,
        **sampling: Any,
    ) -> AsyncIterator[StreamEvent]:
        """Stream a raw text completion (see ``generate``); with images on llama.cpp the first read asks
        the server for its media marker (and with an adapter, once, for its adapters)."""
        urls, probe = self._media_probe(images)

        def build() -> tuple[HttpRequest, ChatPlan | None]:
            http = self.build_generate(
                prompt,
                images=urls,
                response_format=response_format,
                model=model,
                extra_body=extra_body,
                adapter=adapter,
                adapter_scale=adapter_scale,
                stream=True,
                **sampling,
            )
            return http, None

        if probe is None and not self._adapters_unread(adapter, model):
            return self._astream(build()[0], False, session_id, model, sampling, prompt, None, adapter)
        return self._aprepared_stream(probe, adapter, model, build, False, session_id, sampling, prompt)

    async def _aprepared_stream(
        self,
        probe: HttpRequest | None,
        adapter: str | None,
        model: str | None,
        build: Callable[[], tuple[HttpRequest, ChatPlan | None]],
        chat: bool,
        session_id: str | None,
        sampling: Any,
        prompt: Any,
    ) -> AsyncIterator[StreamEvent]:
        """The stream, once what building it needs is read from the server (the first iteration does
        that): the media marker (``probe``), the adapter list (``adapter``)."""
        if probe is not None:
            await self._aread_marker(probe)
        await self._aknow_adapters(adapter, model)
        http, plan = build()
        events = self._astream(http, chat, session_id, model, sampling, prompt, plan, adapter)
        try:
            async for event in events:
                yield event
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()

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
        plan: ChatPlan | None = None,
        adapter: str | None = None,
    ) -> Completion:
        call = self._span(chat, model, sampling, prompt)
        measure = Measure()
        refit = None if plan is None else plan.refit
        try:
            with _otel.activate(call):
                body = await self.async_transport.request(
                    http, measure=measure, refit=refit, **self._route(session_id)
                )
            completion = self._timed(chat, http if plan is None else plan.http, body, measure)
        except BaseException as exc:
            if call is not None:
                call.fail(exc)
            if isinstance(exc, ModelRequiredError) and self.dialect.routes_by_model:
                raise await self._awith_models(exc) from exc
            missing = None
            if adapter is not None and isinstance(exc, NotFoundError):
                missing = self.dialect.adapter_error(exc, adapter)
            if missing is not None:
                raise missing from exc
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
        plan: ChatPlan | None = None,
        adapter: str | None = None,
    ) -> AsyncIterator[StreamEvent]:
        decoder = self._decoder(chat, http, model, plan)
        refit = None if plan is None else plan.refit
        events = self.async_transport.stream(http, decoder, refit=refit, **self._route(session_id))
        if _otel.active_tracer() is not None:
            events = atraced(lambda: self._span(chat, model, sampling, prompt), events)
        if adapter is not None:  # (a stream without one stays the transport's own generator)
            events = self._achecked(events, adapter)  # an engine's "no such model" names the adapter
        return events

    async def ahealth(self) -> HealthStatus:
        """HEALTHY when ready; DEGRADED when it answers but is not ready (loading); UNHEALTHY: no answer."""
        try:
            status = await self.async_transport.status(self.dialect.health_path, HEALTH_TIMEOUT)
        except httpx.HTTPError:
            return HealthStatus.UNHEALTHY
        return health_of_status(status)

    async def ainfo(self) -> EngineInfo:
        """Engine name, model id, version and context limits, from the engine's discovery routes."""
        bodies = []
        for i, r in enumerate(self.dialect.info_requests()):
            try:
                bodies.append(await self.async_transport.request(r))
                continue
            except EngineError as exc:
                failure = exc
            if r.fallback is not None and failure.status_code == 404:  # the route's older name
                try:
                    bodies.append(await self.async_transport.request(r.fallback))
                    continue
                except EngineError as exc:
                    failure = exc
            if i == 0:  # later routes are optional (older engine versions lack them)
                raise failure
            bodies.append(None)
        return self.dialect.parse_info(bodies)

    async def atokenize(self, text: str, *, add_special_tokens: bool = True) -> list[TokenInfo]:
        """Tokens of ``text`` from the engine's own tokenizer endpoint."""
        http = self.dialect.build_tokenize(text, add_special_tokens)
        return self.dialect.parse_tokenize(await self.async_transport.request(http))
