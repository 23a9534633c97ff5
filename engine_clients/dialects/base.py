"""What every dialect shares: the HTTP request description, the stream accumulator, JSON and error helpers.

A dialect is a pure codec: it turns an operation into an :class:`HttpRequest`, and a status + body (or one
SSE event) into typed results, events or errors. It performs no I/O.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from .._requests import build_tool_call
from .._sse import SSEEvent
from ..errors import (
    AuthenticationError,
    BadRequestError,
    ContextWindowExceededError,
    EngineError,
    EngineUnavailableError,
    InternalServerError,
    InvalidRequestError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    StreamError,
    TimeoutError,
    UnsupportedInputError,
)
from ..types import (
    Completion,
    End,
    FinishReason,
    Reasoning,
    Started,
    StreamEvent,
    Timings,
    Token,
    TokenLogprob,
    ToolCall,
    ToolCallDelta,
    TopLogprob,
    Usage,
)
from .reasoning import DEFAULT_THINK_TAGS, ThinkSplitter, ThinkTags

__all__ = ["SHAPE_ERRORS", "HttpRequest", "StreamDecoder", "loads", "status_error"]

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


_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "eos_token": "stop",
    "stop_sequence": "stop",
    "eos": "stop",
    "word": "stop",
    "end_turn": "stop",
    "length": "length",
    "limit": "length",
    "max_tokens": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


def normalize_finish(raw: Any, has_tool_calls: bool) -> FinishReason:
    norm = (_FINISH.get(raw, "unknown") if isinstance(raw, str) else "unknown") if raw else "stop"
    # TGI answers tool calls with "stop" (or nothing at all in streams); vLLM's named choice with "stop".
    if has_tool_calls and norm in ("stop", "unknown"):
        return "tool_calls"
    return norm


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


# ---- streams --------------------------------------------------------------------------------------


class _ToolBuf:
    __slots__ = ("args", "id", "name", "obj")

    def __init__(self) -> None:
        self.id: str | None = None
        self.name: str | None = None
        self.args: list[str] = []
        self.obj: Any = None  # arguments sent as a JSON object (old TGI)


class StreamDecoder:
    """Per-request stream state shared by every dialect: turns parsed chunks into typed events and
    assembles the final :class:`Completion`. Subclasses implement :meth:`feed` for their wire format.

    ``splitter`` (chat streams) separates ``<think>`` reasoning from content; reasoning, whether split off
    here or sent apart by the engine, becomes :class:`Reasoning` events and never a :class:`Token`."""

    def __init__(self, dialect: Dialect, model: str | None) -> None:
        self.dialect = dialect
        self.model = model
        self.id: str | None = None
        self.started = False
        self.parts: list[str] = []
        self.index = 0
        self.tools: dict[int, _ToolBuf] = {}
        self.raw_finish: str | None = None
        self.finished = False  # the engine said the generation ended (finish reason / final event)
        self.done = False  # nothing more will come: End has been produced
        self.usage: Usage | None = None
        self.logprobs: list[TokenLogprob] | None = None
        self.thoughts: list[str] = []  # reasoning pieces
        self.splitter: ThinkSplitter | None = None
        self.tails: list[Any] = []  # the final events (usage, finish), where engines put their timings

    # -- subclasses --
    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        raise NotImplementedError

    # -- helpers for subclasses --
    def start(self, out: list[StreamEvent], model: Any = None, id: Any = None) -> None:
        if isinstance(model, str) and model:
            self.model = model
        if isinstance(id, str) and id:
            self.id = id
        if not self.started:
            self.started = True
            out.append(Started(self.dialect.engine, self.model, self.id))

    def token(
        self,
        out: list[StreamEvent],
        text: str,
        id: int | None = None,
        logprob: float | None = None,
        top: list[TopLogprob] | None = None,
    ) -> None:
        self.parts.append(text)
        out.append(Token(text, self.index, id, logprob, top))
        self.index += 1
        if logprob is not None or top:
            if self.logprobs is None:
                self.logprobs = []
            self.logprobs.append(TokenLogprob(text, logprob, id, top or []))

    def reasoning(self, out: list[StreamEvent], text: str) -> None:
        out.append(Reasoning(text, len(self.thoughts)))
        self.thoughts.append(text)

    def server_reasoning(self, out: list[StreamEvent], text: str) -> None:
        """Reasoning the engine parsed out itself: the content needs no client-side splitting."""
        splitter = self.splitter
        if splitter is not None and splitter.server_parsed():
            self.splitter = None
        self.reasoning(out, text)

    def tagged_reasoning(self, out: list[StreamEvent], text: str) -> None:
        """Reasoning the splitter found in the content. After a bare close tag, the content already
        yielded as tokens was reasoning: it cannot be recalled, but the final Completion carries it so."""
        splitter = self.splitter
        if splitter is not None and splitter.relabel:
            splitter.relabel = False
            self.thoughts[:0] = self.parts
            self.parts = []
        if text:
            self.reasoning(out, text)

    def tool_delta(self, out: list[StreamEvent], index: Any, id: Any, name: Any, args: Any) -> None:
        idx = index if isinstance(index, int) and not isinstance(index, bool) else 0
        buf = self.tools.get(idx)
        if buf is None:
            buf = self.tools[idx] = _ToolBuf()
        new_id = id if isinstance(id, str | int) and not isinstance(id, bool) and buf.id is None else None
        if new_id is not None:
            buf.id = new_id = str(new_id)
        new_name = name if isinstance(name, str) and name and buf.name is None else None
        if new_name is not None:
            buf.name = new_name
        fragment = ""
        if isinstance(args, str):
            fragment = args
            buf.args.append(args)
        elif args is not None:
            buf.obj = args
            fragment = json.dumps(args)
        if new_id is not None or new_name is not None or fragment:
            out.append(ToolCallDelta(idx, new_id, new_name, fragment))

    def tool_calls(self) -> list[ToolCall]:
        calls = []
        for idx in sorted(self.tools):
            b = self.tools[idx]
            raw = b.obj if b.obj is not None and not b.args else "".join(b.args)
            calls.append(build_tool_call(idx, b.id, b.name, raw))
        return calls

    def finish(self) -> list[StreamEvent]:
        """What the splitter still held, then :class:`End`."""
        out: list[StreamEvent] = []
        if self.splitter is not None:
            thought, text = self.splitter.flush()
            if thought or self.splitter.relabel:
                self.tagged_reasoning(out, thought)
            if text:
                self.token(out, text)
        out.append(self.end())
        return out

    def end(self) -> End:
        self.done = True
        calls = self.tool_calls()
        return End(
            Completion(
                content="".join(self.parts),
                reasoning="".join(self.thoughts) or None,
                finish_reason=normalize_finish(self.raw_finish, bool(calls)),
                raw_finish_reason=self.raw_finish,
                tool_calls=calls,
                usage=self.usage,
                model=self.model,
                id=self.id,
                logprobs=self.logprobs,
                engine=self.dialect.engine,
            )
        )

    def server_timings(self, headers: Mapping[str, str] | None) -> Timings:
        """What the engine reported about this stream's timings (its final events and headers)."""
        return self.dialect.parse_timings(self.tails, headers)

    @property
    def has_output(self) -> bool:
        return bool(self.parts or self.tools or self.thoughts)

    def partial(self) -> dict[str, Any]:
        """What arrived before a break, as :class:`StreamError` keyword arguments."""
        text, thought = "".join(self.parts), "".join(self.thoughts)
        if self.splitter is not None:
            held_thought, held_text = self.splitter.flush()
            text, thought = text + held_text, thought + held_thought
        return {"partial_text": text, "partial_reasoning": thought, "partial_tool_calls": self.tool_calls()}

    def eof(self) -> list[StreamEvent]:
        """The body ended. Complete only if the engine said it finished; otherwise the stream was cut."""
        if self.done:
            return []
        if self.finished:
            return self.finish()
        raise self.cut("the stream ended before the engine finished (connection closed mid-stream)")

    def cut(self, message: str, cause: EngineError | None = None) -> StreamError:
        extra: dict[str, Any] = {}
        if cause is not None:
            extra = {"status_code": cause.status_code, "error_type": cause.error_type, "body": cause.body}
        err = StreamError(message, engine=self.dialect.engine, **self.partial(), **extra)
        err.__cause__ = cause
        return err

    def fail(self, err: EngineError) -> EngineError:
        """An error event inside the stream: the typed error itself before any output, else a StreamError."""
        if not self.has_output:
            return err
        return self.cut(f"the engine reported an error mid-stream: {err.message}", err)


_GUARDED = ("parse_chat", "parse_generate", "parse_info", "parse_tokenize")


def _guard(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def guarded(self: Dialect, *args: Any) -> Any:
        try:
            return fn(self, *args)
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

    def __init__(self, model: str | None = None, think_tags: ThinkTags | None = DEFAULT_THINK_TAGS) -> None:
        self.model = model
        self.think_tags = think_tags

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
        return status_error(
            status,
            message,
            engine=self.engine,
            error_type=etype,
            body=obj if obj is not None else _clip(text),
            context=self.context_limits(message, obj) if status in (400, 413, 422, 500) else None,
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
            message,
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
