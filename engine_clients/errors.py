"""The exception hierarchy: every failure the package reports is an :class:`EngineError`.

Server answers map by HTTP status (parsed by each engine's dialect); transport failures map to
:class:`EngineUnavailableError` / :class:`TimeoutError`; a stream that breaks after output began raises
:class:`StreamError` carrying what had arrived, so nothing is silently lost.
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING
from typing import Any
from typing import TypeVar

if TYPE_CHECKING:
    from .types import ToolCall

__all__ = [
    "AdapterNotFoundError",
    "AuthenticationError",
    "BadRequestError",
    "ChatTemplateError",
    "ContextWindowExceededError",
    "EngineError",
    "EngineUnavailableError",
    "InternalServerError",
    "InvalidRequestError",
    "MalformedResponseError",
    "MediaTooLargeError",
    "ModelLoadingError",
    "ModelRequiredError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "StreamError",
    "StreamTimeoutError",
    "StructuredOutputError",
    "TimeoutError",
    "UnsupportedInputError",
    "UpstreamUnreachableError",
]


class EngineError(Exception):
    """Base class of every error raised by ``engine_clients``.

    Attributes are best effort: ``status_code`` is None for failures that never got an HTTP answer,
    ``error_type`` is the engine's own error kind (``"validation"``, ``"invalid_request_error"``, ...),
    ``body`` the raw error body as received (never the request, so never the API key).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        engine: str | None = None,
        error_type: str | None = None,
        body: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.engine = engine
        self.error_type = error_type
        self.body = body
        self.retry_after = retry_after

    def __str__(self) -> str:
        where = f"{self.engine} " if self.engine and not self.message.startswith(self.engine) else ""
        status = f"HTTP {self.status_code}: " if self.status_code is not None else ""
        return f"{where}{status}{self.message}" if (where or status) else self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments do not survive the default pickling of exceptions.
        return (_rebuild, (type(self), self.message, self.__dict__))


_E = TypeVar("_E", bound=EngineError)


def retyped(err: EngineError, cls: type[_E], message: str, **fields: Any) -> _E:
    """``err``'s answer (status, engine, error type, body) as the more specific ``cls``, with ``message``."""
    return cls(
        message,
        status_code=err.status_code,
        engine=err.engine,
        error_type=err.error_type,
        body=err.body,
        **fields,
    )


def _rebuild(cls: type[EngineError], message: str, state: dict[str, Any]) -> EngineError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class InvalidRequestError(EngineError, ValueError):
    """Rejected on the client side before anything was sent (unsupported parameter, bad schema, ...)."""


class MediaTooLargeError(InvalidRequestError):
    """An image or audio item is larger than the client's ``max_media_bytes``; nothing was sent.
    ``size`` and ``limit`` are in bytes (decoded)."""

    def __init__(self, message: str, *, size: int, limit: int, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.size = size
        self.limit = limit


class BadRequestError(EngineError):
    """The engine refused the request as invalid (HTTP 400/422)."""


class ContextWindowExceededError(BadRequestError):
    """The prompt (plus requested output) does not fit the model's context window.

    ``prompt_tokens`` and ``context_limit`` are filled when the engine says them.
    """

    def __init__(
        self,
        message: str,
        *,
        prompt_tokens: int | None = None,
        context_limit: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.prompt_tokens = prompt_tokens
        self.context_limit = context_limit


class ChatTemplateError(BadRequestError):
    """The model's chat template refused the messages (a Jinja ``raise_exception``: roles that do not
    alternate, a system message after the start, tool-call ids of the wrong shape, ...).

    ``rule`` names what the template enforced (``"alternate"``, ``"system_first"``, ``"tool_call_id"``,
    or ``"template"`` when the engine's text does not say), ``index`` the message that broke it when known,
    ``fix`` what to do (usually ``pass history="fit"``: the client then fits the history to the template,
    see ``engine_clients.dialects.templates``). The message names all three, before the engine's own text.
    """

    def __init__(
        self,
        message: str,
        *,
        rule: str | None = None,
        index: int | None = None,
        fix: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.rule = rule
        self.index = index
        self.fix = fix
        self.server_message = message.strip()
        super().__init__(self._text(), **kwargs)

    def _text(self) -> str:
        what = f"rule {self.rule!r}" if self.rule else "rule unknown"
        where = f", message {self.index}" if self.index is not None else ""
        text = f"the chat template refused the messages ({what}{where}): {self.server_message}"
        return f"{text.rstrip('.')}. Fix: {self.fix}" if self.fix else text

    def locate(self, index: int) -> None:
        """Name the message that broke the rule (the client finds it in the history it sent)."""
        self.index = index
        self.message = self._text()
        self.args = (self.message,)


class ModelRequiredError(BadRequestError):
    """A request without ``model`` to a server that hosts several models (llama-server in router mode
    answers 400 "model name is missing from the request"). ``models``: the ones the server lists, read by the
    client after the refusal (empty if that failed); pass one as ``model=``."""

    def __init__(self, message: str, *, models: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.models = tuple(models)


class UnsupportedInputError(BadRequestError):
    """The server cannot take this kind of input (an image or audio for a text-only model, audio on a
    route that has no audio part). ``kind`` names the input (``"image"``, ``"audio"``, or ``"media"`` when
    the engine's answer does not say which); the message says the fix (e.g. start llama-server with
    ``--mmproj``). Refused before sending when the route has no format for the kind (``status_code`` None),
    mapped from the engine's answer otherwise; never retried."""

    def __init__(self, message: str, *, kind: str = "input", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.kind = kind


class AuthenticationError(EngineError):
    """Missing or wrong API key (HTTP 401)."""


class PermissionDeniedError(AuthenticationError):
    """The key is known but not allowed (HTTP 403)."""


class NotFoundError(EngineError):
    """Route or model not found (HTTP 404)."""


class AdapterNotFoundError(NotFoundError):
    """The server has no LoRA adapter of that name (``adapter=``): refused before sending where the client
    knows the server's adapters (llama.cpp, read once from ``/lora-adapters``), mapped from the answer where
    the server says so (vLLM's 404 "The model `x` does not exist": there adapters are models). Never run
    silently on the base model. ``adapter``: the name asked for; ``available``: the names the server serves,
    when known."""

    def __init__(
        self, message: str, *, adapter: str | None = None, available: tuple[str, ...] = (), **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.adapter = adapter
        self.available = tuple(available)


class RateLimitError(EngineError):
    """The engine is overloaded or rate limiting (HTTP 429); ``retry_after`` when it said one."""


class InternalServerError(EngineError):
    """The engine failed while handling the request (HTTP 5xx other than unavailability, TGI 424)."""


class UpstreamUnreachableError(InternalServerError):
    """A router or proxy in front of the engines could not reach the engine it picked (vllm-router's 500
    "error sending request for url", Envoy's "upstream connect error"): no engine saw the request, so it is
    retried, and the retry leaves out the session's sticky route so the router can pick a live replica."""


class EngineUnavailableError(EngineError):
    """Nothing answered (connection refused/reset), or the engine is loading/unhealthy (502/503/504)."""


class ModelLoadingError(EngineUnavailableError):
    """The server is loading or switching its model (llama-server's 503 "Loading model", also from a
    router-mode llama-server swapping models). Waited on, up to ``Timeouts.load`` seconds, without using up
    ``max_retries``; a pool does not count it against the replica's breaker."""


class MalformedResponseError(EngineError):
    """The engine answered something this package cannot read (bad JSON, wrong shape, oversized event)."""


class StructuredOutputError(EngineError):
    """The request asked for JSON (``response_format``: a JSON schema or a JSON object), the engine answered,
    but the answer's content is empty: a thinking model put its JSON inside the reasoning and it does not fit
    the schema, or put none there at all (often ``max_tokens`` ran out while it was thinking).

    ``content`` and ``reasoning`` hold both texts as received. Raised only when the content is empty and the
    reasoning is not (JSON at the end of the reasoning that fits is returned as the content instead, with
    ``Completion.content_from_reasoning`` set). Not a server fault: never retried, not counted against a
    pool replica. Fix: more ``max_tokens``, a ``thinking_budget``, or ``thinking=False``."""

    def __init__(self, message: str, *, content: str = "", reasoning: str = "", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.content = content
        self.reasoning = reasoning


class TimeoutError(EngineError, builtins.TimeoutError):
    """Connect, read or inter-chunk time limit reached. Also a builtin ``TimeoutError``."""


class StreamError(EngineError):
    """A stream broke after output began: never a silently short answer.

    ``partial_text`` holds the answer text received before the break, ``partial_reasoning`` the thinking
    received before it, and ``partial_tool_calls`` any tool calls assembled so far; ``cause`` (also
    ``__cause__``) is the underlying error.
    """

    def __init__(
        self,
        message: str,
        *,
        partial_text: str = "",
        partial_tool_calls: list[ToolCall] | None = None,
        partial_reasoning: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.partial_text = partial_text
        self.partial_tool_calls = list(partial_tool_calls or [])
        self.partial_reasoning = partial_reasoning


class StreamTimeoutError(StreamError, TimeoutError):
    """No stream chunk arrived within the inter-chunk timeout."""


# ---- an HTTP answer's status -> the error class (engine-neutral; the dialects refine it) ----

_STATUS_CLASSES: dict[int, type[EngineError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: TimeoutError,
    413: BadRequestError,
    415: BadRequestError,
    422: BadRequestError,
    424: InternalServerError,
    429: RateLimitError,
    500: InternalServerError,
    502: EngineUnavailableError,
    503: EngineUnavailableError,
    504: EngineUnavailableError,
}


def status_error(
    status: int,
    message: str,
    *,
    engine: str,
    error_type: str | None = None,
    body: Any = None,
    context: tuple[int | None, int | None] | None = None,
) -> EngineError:
    if context is not None:
        return ContextWindowExceededError(
            message,
            prompt_tokens=context[0],
            context_limit=context[1],
            status_code=status,
            engine=engine,
            error_type=error_type,
            body=body,
        )
    cls = _STATUS_CLASSES.get(status) or (
        InternalServerError if status >= 500 else BadRequestError if status >= 400 else EngineError
    )
    return cls(message, status_code=status, engine=engine, error_type=error_type, body=body)
