"""The parameters of the chat and text-completion calls, written once.

``chat``/``achat``, ``chat_stream``/``achat_stream`` and ``build_chat`` take the parameters of
:func:`chat_call`; ``generate``, ``generate_stream`` and ``build_generate`` those of :func:`generate_call`.
:func:`takes` gives each method that signature (for ``help()``, IDEs and type checkers) and hands its body
the one :class:`ChatCall` or :class:`GenerateCall` the caller's arguments make, so a new keyword is added
here, once. Pure: no I/O.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import Concatenate
from typing import NamedTuple
from typing import ParamSpec
from typing import TypeVar

from ._history_policy import HistoryPolicy
from ._media import ImageInput
from ._requests import ReasoningControls
from .types import MessageInput
from .types import ResponseFormatInput
from .types import ToolChoice
from .types import ToolInput

__all__ = ["ChatCall", "GenerateCall", "chat_call", "generate_call", "takes"]

P = ParamSpec("P")
A = TypeVar("A")
R = TypeVar("R")
S = TypeVar("S")


class ChatCall(NamedTuple):
    """One chat call's arguments, as given (``controls``: the three thinking keywords together)."""

    messages: Sequence[MessageInput] | str
    tools: Sequence[ToolInput] | None
    tool_choice: ToolChoice | bool | None
    response_format: ResponseFormatInput | None
    model: str | None
    extra_body: Mapping[str, Any] | None
    controls: ReasoningControls
    history: HistoryPolicy | None
    adapter: str | None
    adapter_scale: float | None
    session_id: str | None
    sampling: dict[str, Any]


def chat_call(
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
) -> ChatCall:
    """The parameters of every chat method (see ``BaseClient.chat`` for what each one does)."""
    controls = ReasoningControls(thinking, reasoning_effort, thinking_budget)
    return ChatCall(
        messages,
        tools,
        tool_choice,
        response_format,
        model,
        extra_body,
        controls,
        history,
        adapter,
        adapter_scale,
        session_id,
        sampling,
    )


class GenerateCall(NamedTuple):
    """One text-completion call's arguments, as given."""

    prompt: str
    images: Sequence[ImageInput] | None
    response_format: ResponseFormatInput | None
    model: str | None
    extra_body: Mapping[str, Any] | None
    adapter: str | None
    adapter_scale: float | None
    session_id: str | None
    sampling: dict[str, Any]


def generate_call(
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
) -> GenerateCall:
    """The parameters of every text-completion method (see ``BaseClient.generate``)."""
    return GenerateCall(
        prompt, images, response_format, model, extra_body, adapter, adapter_scale, session_id, sampling
    )


def takes(source: Callable[P, A]) -> Callable[[Callable[[S, A], R]], Callable[Concatenate[S, P], R]]:
    """Decorate a method whose body takes what ``source`` returns: the method takes ``source``'s parameters
    and shows its signature (a coroutine function stays one)."""

    def wrap(body: Callable[[S, A], R]) -> Callable[Concatenate[S, P], R]:
        def method(self: S, /, *args: Any, **kwargs: Any) -> R:
            return body(self, source(*args, **kwargs))

        async def amethod(self: S, /, *args: Any, **kwargs: Any) -> Any:
            return await body(self, source(*args, **kwargs))  # type: ignore[misc]

        made: Any = amethod if inspect.iscoroutinefunction(body) else method
        functools.update_wrapper(made, body)
        self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
        sig = inspect.signature(source)
        made.__signature__ = sig.replace(
            parameters=[self_param, *sig.parameters.values()],
            return_annotation=inspect.signature(body).return_annotation,
        )
        return made  # type: ignore[no-any-return]

    return wrap
