"""The OpenAI-style stream decoders (moved out of ``openai_compat``, which re-exports them): chat chunks
with reasoning, content and tool-call deltas, and legacy ``/v1/completions`` chunks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._sse import SSEEvent
from ..errors import EngineError
from ..errors import MalformedResponseError
from ..types import StreamEvent
from ..types import TokenLogprob
from ..types import TopLogprob
from .base import SHAPE_ERRORS
from .base import Dialect
from .base import HttpRequest
from .base import StreamDecoder
from .base import _float
from .base import loads
from .base import parse_openai_logprobs
from .base import parse_usage
from .reasoning import FAST_ANSWER
from .reasoning import PASS
from .toolcall_recovery import ToolCallRecovery

__all__ = ["ChatStreamDecoder", "CompletionsStreamDecoder", "parse_completion_logprobs"]


def parse_completion_logprobs(obj: Any) -> list[TokenLogprob] | None:
    """Legacy completions logprobs ``{"tokens", "token_logprobs", "top_logprobs": [{tok: lp}]}``."""
    if not isinstance(obj, Mapping):
        return None
    tokens = obj.get("tokens") or []
    lps = obj.get("token_logprobs") or []
    tops = obj.get("top_logprobs") or []
    out = []
    for i, tok in enumerate(tokens):
        top = tops[i] if i < len(tops) and isinstance(tops[i], Mapping) else {}
        out.append(
            TokenLogprob(
                str(tok),
                _float(lps[i]) if i < len(lps) else None,
                top_logprobs=[TopLogprob(str(k), _float(v)) for k, v in top.items()],
            )
        )
    return out


class _OpenAIStreamDecoder(StreamDecoder):
    """OpenAI-style streams: JSON chunks with ``choices``, ``usage`` and ``model``, ``[DONE]`` at the end,
    and error objects inside the stream. Subclasses read one choice."""

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        try:
            data = event.data
            if event.event == "error":
                raise self.fail(self.dialect.event_error(_maybe_json(data)))
            if data == b"[DONE]":
                return self.finish()
            obj = loads(data)
            if not isinstance(obj, Mapping):
                raise MalformedResponseError(f"unexpected stream event from {self.dialect.engine}", body=obj)
            if obj.get("error"):
                raise self.fail(self.dialect.event_error(obj))
            out: list[StreamEvent] = []
            if not self.started:
                self.start(out, obj.get("model"), obj.get("id"))
            usage = obj.get("usage")
            if usage:
                self.usage = parse_usage(usage)
                self.tails.append(obj)
            choices = obj.get("choices")
            if choices:
                choice = choices[0]
                if not isinstance(choice, Mapping):
                    raise MalformedResponseError("unexpected choice in stream event", body=obj)
                self.choice(out, choice)
                fr = choice.get("finish_reason")
                if fr:
                    self.raw_finish = str(fr)
                    self.finished = True
                    if not usage:
                        self.tails.append(obj)
            return out
        except EngineError:
            raise
        except SHAPE_ERRORS as exc:  # a well-formed event of an unexpected shape
            raise self.fail(self.dialect.malformed(exc, data=event.data)) from None

    def choice(self, out: list[StreamEvent], choice: Mapping[str, Any]) -> None:
        raise NotImplementedError


class ChatStreamDecoder(_OpenAIStreamDecoder):
    """``chat.completion.chunk`` streams: reasoning (``reasoning`` or ``reasoning_content``, or split off
    the content at ``<think>`` tags), content and tool-call deltas."""

    def __init__(self, dialect: Dialect, model: str | None, request: HttpRequest | None = None) -> None:
        super().__init__(dialect, model)
        self.splitter = dialect.think_splitter()
        if request is not None:
            if request.recover_tools:
                self.recovery = ToolCallRecovery(request.recover_tools)
            self.json_format = request.json_format

    def choice(self, out: list[StreamEvent], choice: Mapping[str, Any]) -> None:
        delta = choice.get("delta") or {}
        content = delta.get("content")
        if content is None or len(delta) > 1:  # a lone content delta holds no reasoning: skip the lookups
            thought = delta.get("reasoning") or delta.get("reasoning_content")
            if thought and isinstance(thought, str):
                self.server_reasoning(out, thought)
        if self.trim_newlines and content and isinstance(content, str):
            content = self.lead_trimmed(content)
        if content and isinstance(content, str):
            sp = self.splitter
            if sp is not None and (sp.fast != FAST_ANSWER or sp.c1 in content or sp.c2 in content):
                thought, content = sp.feed(content)
                if thought or sp.relabel:
                    self.tagged_reasoning(out, thought)
                if sp.fast == PASS:
                    self.splitter = None
            lp = choice.get("logprobs") if content else None
            if content and self.recovery is not None:
                kept = self.recovery.feed(content)
                if kept != content:  # held back or let out late: its logprobs go to the result only
                    if lp:
                        self.logprobs = (self.logprobs or []) + parse_openai_logprobs(lp)
                    content, lp = kept, None
            if content:
                if lp:
                    self.token_with_logprobs(out, content, lp)
                else:
                    self.token(out, content)
        calls = delta.get("tool_calls")
        if calls:
            for tc in calls if isinstance(calls, list) else [calls]:
                if isinstance(tc, Mapping):
                    fn = tc.get("function") or {}
                    self.tool_delta(
                        out, tc.get("index", 0), tc.get("id"), fn.get("name"), fn.get("arguments")
                    )

    def token_with_logprobs(self, out: list[StreamEvent], content: str, lp: Any) -> None:
        items = parse_openai_logprobs(lp)
        if len(items) == 1:
            it = items[0]
            self.token(out, content, None, it.logprob, it.top_logprobs)
        else:  # several tokens in one chunk: text once, logprobs kept for the result
            self.token(out, content)
            if items:
                self.logprobs = (self.logprobs or []) + items


class CompletionsStreamDecoder(_OpenAIStreamDecoder):
    """Legacy ``/v1/completions`` streams (``text_completion`` chunks)."""

    def choice(self, out: list[StreamEvent], choice: Mapping[str, Any]) -> None:
        text = choice.get("text")
        if text and isinstance(text, str):
            lps = parse_completion_logprobs(choice.get("logprobs"))
            if lps and len(lps) == 1:
                self.token(out, text, None, lps[0].logprob, lps[0].top_logprobs)
            else:
                self.token(out, text)


def _maybe_json(data: bytes) -> Any:
    try:
        return loads(data)
    except MalformedResponseError:
        return {"error": {"message": data.decode("utf-8", "replace")}}
