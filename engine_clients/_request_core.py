"""How a client builds its requests, without sending them: the caller's arguments normalized into a
:class:`~engine_clients._requests.ChatRequest` or ``GenerateRequest``, the history policy applied
(:class:`~engine_clients._history_policy.ChatPlan`), and the dialect's HTTP request. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Sequence

from ._call_args import ChatCall
from ._call_args import GenerateCall
from ._call_args import chat_call
from ._call_args import generate_call
from ._call_args import takes
from ._history_policy import ChatPlan
from ._history_policy import HistoryPolicy
from ._history_policy import check_policy
from ._media import ImageInput
from ._media import normalize_images
from ._models_core import ModelsCore
from ._requests import ChatRequest
from ._requests import GenerateRequest
from ._requests import normalize_messages
from ._requests import normalize_response_format
from ._requests import normalize_tool_choice
from ._requests import normalize_tools
from .dialects.base import HttpRequest
from .dialects.history import TemplateRules
from .errors import InvalidRequestError

__all__ = ["RequestCore"]

_CONTROLS = frozenset({"thinking", "reasoning_effort", "thinking_budget"})


class RequestCore(ModelsCore):
    """Request building shared by the sync and async API (the fields are set by ``ClientCore``)."""

    max_media_bytes: int
    history: HistoryPolicy
    _learned: TemplateRules | None
    _media_marker: str | None

    def _chat_request(self, call: ChatCall) -> ChatRequest:
        norm_tools = normalize_tools(call.tools)
        return ChatRequest(
            messages=normalize_messages(call.messages, self.max_media_bytes),
            tools=norm_tools,
            tool_choice=normalize_tool_choice(call.tool_choice, norm_tools),
            response_format=normalize_response_format(call.response_format),
            sampling=call.sampling,
            extra_body=dict(call.extra_body or {}),
            model=call.model,
            reasoning=call.controls,
            adapter=self._adapter_choice(call.adapter, call.adapter_scale, call.model),
        )

    @takes(chat_call)
    def build_chat(self, call: ChatCall) -> HttpRequest:
        """The HTTP request ``chat`` would send, without sending it (for inspection and tests);
        ``stream=True``: the one ``chat_stream`` would send. ``session_id`` reaches a router in headers,
        which the request leaves to the transport."""
        stream = bool(call.sampling.pop("stream", False))
        return self._plan(self._chat_request(call), stream, call.history).http

    def _plan(self, req: ChatRequest, stream: bool, history: HistoryPolicy | None) -> ChatPlan:
        policy = self.history if history is None else check_policy(history, self.dialect.engine)
        return ChatPlan(self.dialect, req, stream, policy, self._learned, self._learn)

    def _learn(self, rules: TemplateRules) -> None:
        self._learned = rules

    @takes(generate_call)
    def build_generate(self, call: GenerateCall) -> HttpRequest:
        """The HTTP request ``generate`` would send, without sending it (images on llama.cpp need the
        server's media marker, and adapters its adapter list, which ``generate`` reads first);
        ``stream=True``: the one ``generate_stream`` would send."""
        stream = bool(call.sampling.pop("stream", False))
        return self._generate_request(call, stream)

    def _generate_request(self, call: GenerateCall, stream: bool) -> HttpRequest:
        if not isinstance(call.prompt, str):
            raise InvalidRequestError("prompt must be a string", engine=self.dialect.engine)
        controls = sorted(_CONTROLS & call.sampling.keys())
        if controls:
            raise InvalidRequestError(
                f"{', '.join(controls)}: thinking controls act through the chat template, which the native"
                " text route does not apply; use chat",
                engine=self.dialect.engine,
            )
        req = GenerateRequest(
            call.prompt,
            normalize_response_format(call.response_format),
            call.sampling,
            dict(call.extra_body or {}),
            call.model,
            normalize_images(call.images, self.max_media_bytes),
            self._media_marker,
            self._adapter_choice(call.adapter, call.adapter_scale, call.model),
        )
        return self.dialect.build_generate(req, stream)

    def _media_probe(self, images: Sequence[ImageInput] | None) -> tuple[tuple[str, ...], HttpRequest | None]:
        """``images`` normalized (refused before any I/O when the route cannot take them), and the discovery
        request to answer before sending them on the native text route, if one is needed."""
        urls = normalize_images(images, self.max_media_bytes)
        if not urls or self._media_marker is not None:
            return urls, None
        return urls, self.dialect.media_probe(urls)
