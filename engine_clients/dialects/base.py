"""What every dialect shares: the HTTP request description, the stream accumulator, JSON and error helpers.

A dialect is a pure codec: it turns an operation into an :class:`HttpRequest`, and a status + body (or one
SSE event) into typed results, events or errors. It performs no I/O.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..errors import (
    AuthenticationError,
    BadRequestError,
    ChatTemplateError,
    ContextWindowExceededError,
    EngineError,
    EngineUnavailableError,
    InternalServerError,
    InvalidRequestError,
    MalformedResponseError,
    ModelLoadingError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    TimeoutError,
    UnsupportedInputError,
)
from ..types import HistoryChange, JsonObject, JsonSchema, Timings, TokenLogprob, TopLogprob, Usage
from .decoder import StreamDecoder, normalize_finish
from .fixes import with_fix
from .reasoning import DEFAULT_THINK_TAGS, ThinkSplitter, ThinkTags
from .templates import template_fix, template_rule_of

__all__ = ["SHAPE_ERRORS", "HttpRequest", "StreamDecoder", "loads", "normalize_finish", "status_error"]

# What reading an answer of an unexpected shape raises (a list where an object was due, a missing key, ...);
# dialect entry points turn these into MalformedResponseError so only typed errors leave the package.
SHAPE_ERRORS = (KeyError, IndexError, TypeError, AttributeError, ValueError)

try:  # optional accelerator: the stream hot path is mostly JSON decoding
    import orjson

    _loads: Callable[[bytes | str], Any] = orjson.loads
    _JSONError: tuple[type[Exception], ...] = (orjson.JSONDecodeError, ValueError)
except ImportError:  # pragma: no cover - depends on the environment
    _loads = json.loads
    _JSONError = (ValueError,)


def loads(data: bytes | str) -> Any:
    try:
        return _loads(data)
    except _JSONError as exc:
        raise MalformedResponseError(f"invalid JSON from the engine: {exc}", body=_clip(data)) from None


def _clip(data: bytes | str, n: int = 500) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return text if len(text) <= n else text[:n] + "…"


@dataclass(slots=True)
class HttpRequest:
    method: str
    path: str
    json: Any = None
    stream: bool = False
    recover_tools: tuple[str, ...] = field(default=(), compare=False)
    """Chat: the offered tools whose calls may be recovered from markup left in the answer's content (pass
    this request to ``parse_chat``/``chat_stream_decoder``); empty: no recovery."""
    history_changes: tuple[HistoryChange, ...] = field(default=(), compare=False)
    """Chat: what was changed in the history to fit the server's chat template (reported on the answer)."""
    text: bool = field(default=False, compare=False)
    """The answer may be plain text (vLLM's adapter routes): returned as a string when it is not JSON."""
    fallback: HttpRequest | None = field(default=None, compare=False)
    """Discovery: the route's older name, asked instead when this one answers 404 (SGLang's
    ``/get_model_info`` for ``/model_info``)."""
    json_format: JsonSchema | JsonObject | None = field(default=None, compare=False)
    """Chat: the JSON ``response_format`` asked for (an empty answer may take it from the reasoning's end)."""


def parse_usage(obj: Any) -> Usage | None:
    """OpenAI-style usage, with ``completion_tokens_details.reasoning_tokens`` and
    ``prompt_tokens_details.cached_tokens`` when the engine reports them."""
    if not isinstance(obj, Mapping):
        return None
    p = _int(obj.get("prompt_tokens"))
    c = _int(obj.get("completion_tokens"))
    t = _int(obj.get("total_tokens")) or p + c
    usage = Usage(p, c, t)
    details = obj.get("completion_tokens_details")
    if isinstance(details, Mapping):
        usage.reasoning_tokens = _opt_int(details.get("reasoning_tokens"))
    details = obj.get("prompt_tokens_details")
    if isinstance(details, Mapping):
        usage.cached_prompt_tokens = _opt_int(details.get("cached_tokens"))
    return usage


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def _opt_int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _float(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def parse_openai_logprobs(obj: Any) -> list[TokenLogprob]:
    """Chat logprobs ``{"content": [{"token", "logprob", "top_logprobs": [...]}]}``."""
    items = obj.get("content") if isinstance(obj, Mapping) else None
    out: list[TokenLogprob] = []
    for it in items if isinstance(items, list) else ():
        if not isinstance(it, Mapping):
            continue
        out.append(
            TokenLogprob(str(it.get("token", "")), _float(it.get("logprob")), top_logprobs=top_list(it))
        )
    return out


def top_list(item: Mapping[str, Any], key: str = "top_logprobs", text: str = "token") -> list[TopLogprob]:
    tops = item.get(key)
    if not isinstance(tops, list):
        return []
    return [
        TopLogprob(str(t.get(text, "")), _float(t.get("logprob"))) for t in tops if isinstance(t, Mapping)
    ]


def text_of(content: Any) -> str:
    """Message text: a string, OpenAI-style content parts joined, or "" when absent."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        return "".join(
            p.get("text", "") for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str)
        )
    raise MalformedResponseError(f"message content is a JSON {type(content).__name__}", body=content)


# ---- errors ---------------------------------------------------------------------------------------

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


_GUARDED = ("parse_chat", "parse_generate", "parse_info", "parse_tokenize")


def _guard(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def guarded(self: Dialect, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self, *args, **kwargs)
        except EngineError:
            raise
        except SHAPE_ERRORS as exc:
            raise self.malformed(exc, args[0] if args else None) from None

    guarded.__guarded__ = True  # type: ignore[attr-defined]
    return guarded


class Dialect:
    """Base of all dialects. Subclasses set ``engine`` and implement the operations they support.

    The parse methods of every subclass are guarded: an answer of an unexpected shape raises
    :class:`MalformedResponseError`, never a ``KeyError``/``TypeError`` from inside the codec.
    """

    engine: ClassVar[str] = ""
    health_path: ClassVar[str] = "/health"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in _GUARDED:
            fn = cls.__dict__.get(name)
            if fn is not None and not getattr(fn, "__guarded__", False):
                setattr(cls, name, _guard(fn))

    def malformed(self, exc: BaseException, data: Any = None) -> MalformedResponseError:
        body = _clip(data) if isinstance(data, bytes | str) else data
        return MalformedResponseError(
            f"unexpected answer shape from {self.engine}: {type(exc).__name__}: {exc}",
            engine=self.engine,
            body=body,
        )

    def __init__(
        self,
        model: str | None = None,
        think_tags: ThinkTags | None = DEFAULT_THINK_TAGS,
        recover_tool_calls: bool = True,
    ) -> None:
        self.model = model
        self.think_tags = think_tags
        # recover tool calls from markup a server's tool parser missed (a ChatRequest may override it)
        self.recover_tool_calls = recover_tool_calls

    def parse_timings(self, bodies: list[Any], headers: Mapping[str, str] | None) -> Timings:
        """The timings an engine reported in an answer's body (or a stream's final events, ``bodies``) and
        response ``headers``. None of them here; engines that report some override this. Never raises."""
        return Timings()

    def think_splitter(self) -> ThinkSplitter | None:
        """A fresh ``<think>`` splitter for one chat answer, or None when ``think_tags`` is None."""
        return ThinkSplitter(self.think_tags) if self.think_tags is not None else None

    # -- errors --
    def error_fields(self, obj: Any, text: str) -> tuple[str, str | None]:
        """(message, engine error type) from any error body shape the engines use."""
        if isinstance(obj, Mapping):
            err = obj.get("error")
            if isinstance(err, Mapping):
                return str(err.get("message") or err), _str(err.get("type") or err.get("error_type"))
            if isinstance(err, str):
                return err, _str(obj.get("error_type") or obj.get("type"))
            if obj.get("object") == "error" or "message" in obj:
                return str(obj.get("message")), _str(obj.get("type"))
            if "detail" in obj:
                return str(obj["detail"]), None
        if isinstance(obj, list) and obj:
            return self.error_fields(obj[0], text)
        return (text.strip() or "(empty body)"), None

    def context_limits(self, message: str, obj: Any) -> tuple[int | None, int | None] | None:
        """(prompt tokens, limit) when the error says the context window was exceeded, else None."""
        return None

    # (pattern over the error message, input kind or None to take it from the match's first group, fix)
    unsupported_inputs: ClassVar[tuple[tuple[re.Pattern[str], str | None, str], ...]] = ()

    def unsupported_input(
        self, status: int, message: str, error_type: str | None, body: Any
    ) -> UnsupportedInputError | None:
        """The typed error when the engine says it cannot take an input kind (image, audio)."""
        if status < 400:
            return None
        for pattern, kind, fix in self.unsupported_inputs:
            m = pattern.search(message)
            if m:
                found = kind or m.group(1).lower()
                what = "image or audio" if found == "media" else found
                return UnsupportedInputError(
                    f"{message.rstrip('.')}. This server cannot take {what} input: {fix}",
                    kind=found,
                    status_code=status,
                    engine=self.engine,
                    error_type=error_type,
                    body=body,
                )
        return None

    def refuse_input(self, kind: str, where: str) -> UnsupportedInputError:
        """A kind of input the route has no wire format for, refused before sending."""
        return UnsupportedInputError(
            f"{self.engine} takes no {kind} input on {where}", kind=kind, engine=self.engine
        )

    def is_loading(self, message: str, etype: str | None) -> bool:
        """Whether a 503 says the model is loading (waited on) rather than the server being unhealthy."""
        return False

    def parse_error(self, status: int, body: bytes) -> EngineError:
        obj: Any = None
        text = body.decode("utf-8", "replace")
        if body:
            try:
                obj = json.loads(body)
            except ValueError:
                obj = None
        message, etype = self.error_fields(obj, text)
        if not body and status == 401:
            message = "unauthorized: missing or wrong API key"
        unsupported = self.unsupported_input(status, message, etype, obj if obj is not None else _clip(text))
        if unsupported is not None:
            return unsupported
        if status == 503 and self.is_loading(message, etype):
            return ModelLoadingError(
                message, status_code=status, engine=self.engine, error_type=etype, body=obj or _clip(text)
            )
        context = self.context_limits(message, obj) if status in (400, 413, 422, 500) else None
        if context is None and status in (400, 422, 500):
            # A chat template that raised over the messages (llama.cpp 400 "Unable to generate parser for
            # this template ...", vLLM 400 with the Jinja exception's text, TGI 422 "Template error: ...").
            rule = template_rule_of(message, etype)
            if rule is not None:
                return ChatTemplateError(
                    message,
                    rule=rule,
                    fix=template_fix(rule),
                    status_code=status,
                    engine=self.engine,
                    error_type=etype,
                    body=obj if obj is not None else _clip(text),
                )
        return status_error(
            status,
            with_fix(self.engine, message),  # "tools param requires --jinja flag. Fix: start ... --jinja"
            engine=self.engine,
            error_type=etype,
            body=obj if obj is not None else _clip(text),
            context=context,
        )

    def event_error(self, obj: Any, default_status: int = 500) -> EngineError:
        """An error object received inside a 200 stream."""
        message, etype = self.error_fields(obj, "")
        status = default_status
        err = obj.get("error") if isinstance(obj, Mapping) else None
        if isinstance(err, Mapping):
            code = err.get("http_status_code", err.get("code"))
            if isinstance(code, int) and 400 <= code < 600:
                status = code
        status = _EVENT_STATUS.get(etype or "", status)
        unsupported = self.unsupported_input(status, message, etype, obj)
        if unsupported is not None:
            return unsupported
        return status_error(
            status,
            with_fix(self.engine, message),
            engine=self.engine,
            error_type=etype,
            body=obj,
            context=self.context_limits(message, obj),
        )

    def check(self, ok: bool, what: str, body: Any) -> None:
        if not ok:
            raise MalformedResponseError(
                f"unexpected {what} from {self.engine}", engine=self.engine, body=body
            )

    def unsupported(self, what: str) -> InvalidRequestError:
        return InvalidRequestError(f"{self.engine} does not support {what}", engine=self.engine)


# Error types some engines put in stream error events, mapped to the status they would have had.
_EVENT_STATUS = {
    "validation": 422,
    "overloaded": 429,
    "generation": 424,
    "invalid_request_error": 400,
    "authentication_error": 401,
    "unavailable_error": 503,
    "exceed_context_size_error": 400,
}


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def first_int(pattern: re.Pattern[str], text: str) -> tuple[int, ...] | None:
    m = pattern.search(text)
    return tuple(int(g) for g in m.groups() if g is not None) if m else None
