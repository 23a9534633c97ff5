"""How a client builds its requests, without sending them: the caller's arguments normalized into a
:class:`~engine_clients._requests.ChatRequest` or ``GenerateRequest``, the history policy applied
(:class:`~engine_clients._history_policy.ChatPlan`), and the dialect's HTTP request. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ._history_policy import ChatPlan, HistoryPolicy, check_policy
from ._media import ImageInput, normalize_images
from ._models_core import ModelsCore
from ._requests import (
    AdapterChoice,
    ChatRequest,
    GenerateRequest,
    ReasoningControls,
    normalize_messages,
    normalize_response_format,
    normalize_tool_choice,
    normalize_tools,
)
from .dialects.base import HttpRequest
from .dialects.history import TemplateRules
from .errors import InvalidRequestError
from .types import MessageInput, ResponseFormatInput, ToolChoice, ToolInput

__all__ = ["RequestCore"]

_CONTROLS = frozenset({"thinking", "reasoning_effort", "thinking_budget"})


class RequestCore(ModelsCore):
    """Request building shared by the sync and async API (the fields are set by ``ClientCore``)."""

    max_media_bytes: int
    history: HistoryPolicy
    _learned: TemplateRules | None
    _media_marker: str | None

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
        adapter: AdapterChoice | None = None,
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
            adapter=adapter,
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
        history: HistoryPolicy | None = None,
        adapter: str | None = None,
        adapter_scale: float | None = None,
        stream: bool = False,
        **sampling: Any,
    ) -> HttpRequest:
        """The HTTP request ``chat`` would send, without sending it (for inspection and tests)."""
        controls = ReasoningControls(thinking, reasoning_effort, thinking_budget)
        choice = self._adapter_choice(adapter, adapter_scale, model)
        req = self._chat_request(
            messages, tools, tool_choice, response_format, model, extra_body, sampling, controls, choice
        )
        return self._plan(req, stream, history).http

    def _plan(self, req: ChatRequest, stream: bool, history: HistoryPolicy | None) -> ChatPlan:
        policy = self.history if history is None else check_policy(history, self.dialect.engine)
        return ChatPlan(self.dialect, req, stream, policy, self._learned, self._learn)

    def _learn(self, rules: TemplateRules) -> None:
        self._learned = rules

    def build_generate(
        self,
        prompt: str,
        *,
        images: Sequence[ImageInput] | None = None,
        response_format: ResponseFormatInput | None = None,
        model: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        adapter: str | None = None,
        adapter_scale: float | None = None,
        stream: bool = False,
        **sampling: Any,
    ) -> HttpRequest:
        """The HTTP request ``generate`` would send, without sending it (images on llama.cpp need the
        server's media marker, and adapters its adapter list, which ``generate`` reads first)."""
        if not isinstance(prompt, str):
            raise InvalidRequestError("prompt must be a string", engine=self.dialect.engine)
        controls = sorted(_CONTROLS & sampling.keys())
        if controls:
            raise InvalidRequestError(
                f"{', '.join(controls)}: thinking controls act through the chat template, which the native"
                " text route does not apply; use chat",
                engine=self.dialect.engine,
            )
        req = GenerateRequest(
            prompt,
            normalize_response_format(response_format),
            sampling,
            dict(extra_body or {}),
            model,
            normalize_images(images, self.max_media_bytes),
            self._media_marker,
            self._adapter_choice(adapter, adapter_scale, model),
        )
        return self.dialect.build_generate(req, stream)

    def _media_probe(self, images: Sequence[ImageInput] | None) -> tuple[tuple[str, ...], HttpRequest | None]:
        """``images`` normalized (refused before any I/O when the route cannot take them), and the discovery
        request to answer before sending them on the native text route, if one is needed."""
        urls = normalize_images(images, self.max_media_bytes)
        if not urls or self._media_marker is not None:
            return urls, None
        return urls, self.dialect.media_probe(urls)
