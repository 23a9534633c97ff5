"""What every dialect shares: the HTTP request description, the stream accumulator, JSON and parsing helpers
(the error half is ``error_codec.py``).

A dialect is a pure codec: it turns an operation into an :class:`HttpRequest`, and a status + body (or one
SSE event) into typed results, events or errors. It performs no I/O.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import ClassVar

from ..errors import EngineError
from ..errors import MalformedResponseError
from ..types import HistoryChange
from ..types import JsonObject
from ..types import JsonSchema
from ..types import Timings
from ..types import TokenLogprob
from ..types import TopLogprob
from ..types import Usage
from .decoder import StreamDecoder
from .decoder import normalize_finish
from .error_codec import ErrorCodec
from .error_codec import clip
from .error_codec import status_error
from .reasoning import DEFAULT_THINK_TAGS
from .reasoning import ThinkSplitter
from .reasoning import ThinkTags

__all__ = [
    "SHAPE_ERRORS",
    "HttpRequest",
    "StreamDecoder",
    "loads",
    "normalize_finish",
    "same_name",
    "status_error",
]

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
        raise MalformedResponseError(f"invalid JSON from the engine: {exc}", body=clip(data)) from None


def same_name(names: str) -> dict[str, str]:
    """Parameters the wire spells as callers do: ``"top_k min_p"`` -> ``{"top_k": "top_k", ...}``."""
    return {name: name for name in names.split()}


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
    return logprob_list(obj.get("content") if isinstance(obj, Mapping) else None) or []


def logprob_list(items: Any, text: str = "token") -> list[TokenLogprob] | None:
    """A list of token items (OpenAI's and llama.cpp's name the token ``token``, TGI's ``text``); None when
    ``items`` is not a list."""
    if not isinstance(items, list):
        return None
    return [token_logprob(it, text) for it in items if isinstance(it, Mapping)]


def token_logprob(item: Mapping[str, Any], text: str = "token") -> TokenLogprob:
    tid = item.get("id")
    return TokenLogprob(
        str(item.get(text, "")),
        _float(item.get("logprob")),
        tid if isinstance(tid, int) else None,
        top_list(item, text=text),
    )


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


class Dialect(ErrorCodec):
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
        body = clip(data) if isinstance(data, bytes | str) else data
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

    def check(self, ok: bool, what: str, body: Any) -> None:
        if not ok:
            raise MalformedResponseError(
                f"unexpected {what} from {self.engine}", engine=self.engine, body=body
            )


def first_int(pattern: re.Pattern[str], text: str) -> tuple[int, ...] | None:
    m = pattern.search(text)
    return tuple(int(g) for g in m.groups() if g is not None) if m else None
