"""A client's calls: chat, generate, their streams, health, info and tokenize, over one dialect.

Each call builds its request with the dialect (pure, in ``_client_core``), sends it through the transport and
parses the answer with the dialect again; spans and timings wrap the I/O.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import httpx

from .. import _otel
from .._client_core import HEALTH_TIMEOUT, ClientCore, health_of_status
from .._history_policy import ChatPlan, HistoryPolicy
from .._media import ImageInput
from .._requests import ReasoningControls
from .._timing import Measure
from ..dialects.base import HttpRequest
from ..errors import EngineError
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
from .otel import atraced

__all__ = ["AsyncClientAPI"]


class AsyncClientAPI(ClientCore):
    """The calls of :class:`~engine_clients.BaseClient`."""

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
        session_id: str | None = None,
        **sampling: Any,
    ) -> Completion:
        """Chat completion. ``sampling``: max_tokens, temperature, top_p, top_k, seed, stop, penalties,
        logprobs/top_logprobs and the engine's own parameters; anything unknown is refused before sending.

        Thinking controls (None: the engine's default): ``thinking`` turns a reasoning model's thinking on
        or off, ``reasoning_effort`` asks for a level (``"low"``, ``"medium"``, ``"high"``, ...;
        ``"none"`` is off) and ``thinking_budget`` caps the thinking tokens. vLLM and llama.cpp take all
        three; TGI takes none and refuses them (InvalidRequestError) rather than ignore them.

        ``history``: this call's history policy (None: the client's; see the client's ``history``)."""
        controls = ReasoningControls(thinking, reasoning_effort, thinking_budget)
        req = self._chat_request(
            messages, tools, tool_choice, response_format, model, extra_body, sampling, controls
        )
        plan = self._plan(req, False, history)
        return await self._acomplete(plan.http, True, session_id, model, sampling, messages, plan)

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
        session_id: str | None = None,
        **sampling: Any,
    ) -> AsyncIterator[StreamEvent]:
        """Stream a chat completion as ``Started``, ``Token``/``ToolCallDelta``..., ``End`` events."""
        controls = ReasoningControls(thinking, reasoning_effort, thinking_budget)
        req = self._chat_request(
            messages, tools, tool_choice, response_format, model, extra_body, sampling, controls
        )
        plan = self._plan(req, True, history)
        return self._astream(plan.http, True, session_id, model, sampling, messages, plan)

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
        """Raw text completion on the engine's native text route (no chat template).

        ``images``: data URLs, http(s) URLs, local paths or ``file://`` URLs, bytes, or chat image parts (the
        chat rules and ``max_media_bytes``). TGI gets them in ``inputs`` as ``![](url)`` before the prompt;
        llama.cpp as a multimodal prompt with the server's media marker (read once from ``/props``; a server
        without vision raises UnsupportedInputError); vLLM refuses them (InvalidRequestError: use chat)."""
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
        """Stream a raw text completion (see ``generate``); with images on llama.cpp the first read asks
        the server for its media marker."""
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
        plan: ChatPlan | None = None,
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
    ) -> AsyncIterator[StreamEvent]:
        decoder = self._decoder(chat, http, model, plan)
        refit = None if plan is None else plan.refit
        events = self.async_transport.stream(http, decoder, refit=refit, **self._route(session_id))
        if _otel.active_tracer() is None:
            return events
        return atraced(lambda: self._span(chat, model, sampling, prompt), events)

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
            except EngineError:
                if i == 0:  # later routes are optional (older engine versions lack them)
                    raise
                bodies.append(None)
        return self.dialect.parse_info(bodies)

    async def atokenize(self, text: str, *, add_special_tokens: bool = True) -> list[TokenInfo]:
        """Tokens of ``text`` from the engine's own tokenizer endpoint."""
        http = self.dialect.build_tokenize(text, add_special_tokens)
        return self.dialect.parse_tokenize(await self.async_transport.request(http))
