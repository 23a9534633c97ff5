"""A client's calls: chat, generate, their streams, health, info and tokenize, over one dialect.

Each call builds its request with the dialect (pure, in ``_client_core``), sends it through the transport and
parses the answer with the dialect again; spans and timings wrap the I/O.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from collections.abc import Callable

import httpx

from .. import _otel
from .._call_args import ChatCall
from .._call_args import GenerateCall
from .._call_args import chat_call
from .._call_args import generate_call
from .._call_args import takes
from .._client_core import HEALTH_TIMEOUT
from .._client_core import health_of_status
from .._history_policy import ChatPlan
from .._timing import Measure
from ..dialects.base import HttpRequest
from ..errors import EngineError
from ..errors import ModelRequiredError
from ..errors import NotFoundError
from ..types import Completion
from ..types import EngineInfo
from ..types import HealthStatus
from ..types import StreamEvent
from ..types import TokenInfo
from .models import AsyncModelsAPI
from .otel import atraced

__all__ = ["AsyncClientAPI"]


class AsyncClientAPI(AsyncModelsAPI):
    """The calls of :class:`~engine_clients.BaseClient` (models and adapters: ``_async/models.py``)."""

    @takes(chat_call)
    async def achat(self, call: ChatCall) -> Completion:
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
        default 1.0, 0 turns it off); llama.cpp gets every other adapter at scale 0.

        ``session_id``: the conversation, for a router's or pool's session affinity (see ``affinity``).
        The keyword parameters are the same for every chat method (``engine_clients._call_args``)."""
        await self._aknow_adapters(call.adapter, call.model)
        plan = self._plan(self._chat_request(call), False, call.history)
        return await self._acomplete(plan.http, call, plan)

    @takes(chat_call)
    def achat_stream(self, call: ChatCall) -> AsyncIterator[StreamEvent]:
        """Stream a chat completion as ``Started``, ``Token``/``ToolCallDelta``..., ``End`` events."""
        req = self._chat_request(call)
        adapter, model = call.adapter, call.model

        def build() -> tuple[HttpRequest, ChatPlan]:
            req.adapter = self._adapter_choice(adapter, call.adapter_scale, model)
            plan = self._plan(req, True, call.history)
            return plan.http, plan

        if self._adapters_unread(adapter, model):
            return self._aprepared_stream(None, build, call)
        http, plan = build()
        return self._astream(http, call, plan)

    @takes(generate_call)
    async def agenerate(self, call: GenerateCall) -> Completion:
        """Raw text completion on the engine's native text route (no chat template).

        ``images``: data URLs, http(s) URLs, local paths or ``file://`` URLs, bytes, or chat image parts (the
        chat rules and ``max_media_bytes``). TGI gets them in ``inputs`` as ``![](url)`` before the prompt;
        llama.cpp as a multimodal prompt with the server's media marker (read once from ``/props``; a server
        without vision raises UnsupportedInputError); vLLM refuses them (InvalidRequestError: use chat).

        ``adapter``, ``adapter_scale``, ``session_id``: as for ``chat`` (TGI: ``parameters.adapter_id``)."""
        urls, probe = self._media_probe(call.images)
        if probe is not None:
            await self._aread_marker(probe)
        await self._aknow_adapters(call.adapter, call.model)
        http = self._generate_request(call._replace(images=urls), False)
        return await self._acomplete(http, call)

    @takes(generate_call)
    def agenerate_stream(self, call: GenerateCall) -> AsyncIterator[StreamEvent]:
        """Stream a raw text completion (see ``generate``); with images on llama.cpp the first read asks
        the server for its media marker (and with an adapter, once, for its adapters)."""
        urls, probe = self._media_probe(call.images)

        def build() -> tuple[HttpRequest, ChatPlan | None]:
            return self._generate_request(call._replace(images=urls), True), None

        if probe is None and not self._adapters_unread(call.adapter, call.model):
            return self._astream(build()[0], call)
        return self._aprepared_stream(probe, build, call)

    async def _aprepared_stream(
        self,
        probe: HttpRequest | None,
        build: Callable[[], tuple[HttpRequest, ChatPlan | None]],
        call: ChatCall | GenerateCall,
    ) -> AsyncIterator[StreamEvent]:
        """The stream, once what building it needs is read from the server (the first iteration does
        that): the media marker (``probe``), the adapter list (``adapter``)."""
        if probe is not None:
            await self._aread_marker(probe)
        await self._aknow_adapters(call.adapter, call.model)
        http, plan = build()
        events = self._astream(http, call, plan)
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
        self, http: HttpRequest, call: ChatCall | GenerateCall, plan: ChatPlan | None = None
    ) -> Completion:
        span = self._span(call)
        measure = Measure()
        refit = None if plan is None else plan.refit
        try:
            with _otel.activate(span):
                body = await self.async_transport.request(
                    http, measure=measure, refit=refit, **self._route(call.session_id)
                )
            sent = http if plan is None else plan.http  # (a refused history is sent again, fitted)
            completion = self._timed(isinstance(call, ChatCall), sent, body, measure)
        except BaseException as exc:
            if span is not None:
                span.fail(exc)
            if isinstance(exc, ModelRequiredError) and self.dialect.routes_by_model:
                raise await self._awith_models(exc) from exc
            missing = None
            if call.adapter is not None and isinstance(exc, NotFoundError):
                missing = self.dialect.adapter_error(exc, call.adapter)
            if missing is not None:
                raise missing from exc
            raise
        if span is not None:
            span.done(completion)
        return completion

    def _astream(
        self, http: HttpRequest, call: ChatCall | GenerateCall, plan: ChatPlan | None = None
    ) -> AsyncIterator[StreamEvent]:
        decoder = self._decoder(isinstance(call, ChatCall), http, call.model, plan)
        refit = None if plan is None else plan.refit
        events = self.async_transport.stream(http, decoder, refit=refit, **self._route(call.session_id))
        if _otel.active_tracer() is not None:
            events = atraced(lambda: self._span(call), events)
        if call.adapter is not None:  # (a stream without one stays the transport's own generator)
            events = self._achecked(events, call.adapter)  # an engine's "no such model" names the adapter
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
