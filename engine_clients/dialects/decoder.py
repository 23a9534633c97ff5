"""The stream accumulator every dialect's decoders share: typed events from parsed chunks, and the final
:class:`Completion` assembled from them (moved out of ``base``, which re-exports it)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

from .._requests import build_tool_call
from .._sse import SSEEvent
from ..errors import EngineError
from ..errors import StreamError
from ..types import Completion
from ..types import End
from ..types import FinishReason
from ..types import HistoryChange
from ..types import JsonObject
from ..types import JsonSchema
from ..types import Reasoning
from ..types import RecoveredCall
from ..types import Started
from ..types import StreamEvent
from ..types import Timings
from ..types import Token
from ..types import TokenLogprob
from ..types import ToolCall
from ..types import ToolCallDelta
from ..types import TopLogprob
from ..types import Usage
from .json_answer import json_answer
from .reasoning import ThinkSplitter
from .reasoning import lstrip_newlines
from .toolcall_recovery import ToolCallRecovery

if TYPE_CHECKING:
    from .base import Dialect

__all__ = ["StreamDecoder", "normalize_finish"]

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
        self.recovery: ToolCallRecovery | None = (
            None  # chat streams that offered tools (see toolcall_recovery)
        )
        self.recovered: list[ToolCall] = []
        self.notes: tuple[RecoveredCall, ...] = ()
        self.history_changes: tuple[HistoryChange, ...] = ()  # set by the client for a fitted chat history
        self.tails: list[Any] = []  # the final events (usage, finish), where engines put their timings
        self.json_format: JsonSchema | JsonObject | None = None  # chat: the JSON response_format asked for
        self.from_reasoning = False  # the answer is JSON taken from the reasoning's end (see json_answer)
        self.trim_newlines = False  # answer text after server-parsed reasoning: its leading newlines go

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
        if not self.parts:
            self.trim_newlines = True
        self.reasoning(out, text)

    def lead_trimmed(self, text: str) -> str:
        """The first answer text after server-parsed reasoning, without leading newlines (see
        ``lstrip_newlines``); callers ask only while ``trim_newlines`` is set, and it ends with real text."""
        text = lstrip_newlines(text)
        if text:
            self.trim_newlines = False
        return text

    def tagged_reasoning(self, out: list[StreamEvent], text: str) -> None:
        """Reasoning the splitter found in the content. After a bare close tag, the content already
        yielded as tokens was reasoning: it cannot be recalled, but the final Completion carries it so."""
        splitter = self.splitter
        if splitter is not None and splitter.relabel:
            splitter.relabel = False
            held = self.recovery.reset() if self.recovery is not None else ""
            self.thoughts[:0] = [*self.parts, held] if held else self.parts
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
        """The calls so far: the engine's (an empty argument string is ``{}``), then recovered ones."""
        calls = []
        for idx in sorted(self.tools):
            b = self.tools[idx]
            raw = b.obj if b.obj is not None and not b.args else "".join(b.args)
            calls.append(build_tool_call(idx, b.id, b.name, raw))
        return calls + self.recovered

    def answer(self, out: list[StreamEvent], text: str) -> None:
        """Answer text: through tool-call recovery when it runs, then a :class:`Token`."""
        if self.recovery is not None:
            text = self.recovery.feed(text)
        if text:
            self.token(out, text)

    def finish(self) -> list[StreamEvent]:
        """What the splitter and tool-call recovery still held, the recovered calls, then :class:`End`."""
        out: list[StreamEvent] = []
        if self.splitter is not None:
            thought, text = self.splitter.flush()
            if thought or self.splitter.relabel:
                self.tagged_reasoning(out, thought)
            if text:
                self.answer(out, text)
        recovery, self.recovery = self.recovery, None
        if recovery is not None:  # recovered calls come once, here, indexed after the engine's
            text, self.recovered, self.notes = recovery.flush(max(self.tools, default=-1) + 1)
            if text:
                self.token(out, text)
            out += [ToolCallDelta(c.index, c.id, c.name, c.raw_arguments) for c in self.recovered]
        if self.json_format is not None:
            self.settle_json(out)
        out.append(self.end())
        return out

    def settle_json(self, out: list[StreamEvent]) -> None:
        """JSON was asked for and the answer is empty: the JSON the reasoning ended with becomes one last
        :class:`Token` (the answer of ``End``), or :class:`StructuredOutputError` (see ``json_answer``)."""
        text = json_answer(
            "".join(self.parts),
            "".join(self.thoughts) or None,
            self.json_format,
            has_tool_calls=bool(self.tools or self.recovered),
            finish=normalize_finish(self.raw_finish, False),
            engine=self.dialect.engine,
        )
        if text is not None:
            self.parts = []  # whitespace only: the answer is the JSON
            self.from_reasoning = True
            self.token(out, text)

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
                recovered=self.notes,
                history_changes=self.history_changes,
                content_from_reasoning=self.from_reasoning,
            )
        )

    def server_timings(self, headers: Mapping[str, str] | None) -> Timings:
        """What the engine reported about this stream's timings (its final events and headers)."""
        return self.dialect.parse_timings(self.tails, headers)

    @property
    def has_output(self) -> bool:
        return bool(self.parts or self.tools or self.thoughts or (self.recovery and self.recovery.pending()))

    def partial(self) -> dict[str, Any]:
        """What arrived before a break, as :class:`StreamError` keyword arguments."""
        text, thought = "".join(self.parts), "".join(self.thoughts)
        if self.recovery is not None:  # the held markup, as it came
            text += self.recovery.pending()
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
