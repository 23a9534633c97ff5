"""Conversions between LlamaIndex's message/response types and ``engine_clients``' engine-neutral ones.

Everything here is engine-independent: the engine layer maps the OpenAI-style dicts produced here onto each
engine's wire format. Messages to dicts are in :mod:`._messages` (re-exported here); this module turns engine
results and stream events into LlamaIndex responses, and reads tool calls back out of them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator
from collections.abc import AsyncIterator
from collections.abc import Generator
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import Protocol
from typing import TypeVar

from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.base.llms.types import ChatResponse
from llama_index.core.base.llms.types import CompletionResponse
from llama_index.core.base.llms.types import LogProb
from llama_index.core.base.llms.types import MessageRole
from llama_index.core.base.llms.types import TextBlock
from llama_index.core.base.llms.types import ThinkingBlock
from llama_index.core.base.llms.types import ToolCallBlock
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.llms.utils import parse_partial_json

from engine_clients import Completion
from engine_clients import End
from engine_clients import Reasoning
from engine_clients import StreamEvent
from engine_clients import Token
from engine_clients import ToolCall
from engine_clients import ToolCallDelta
from engine_clients import TopLogprob
from engine_clients import Usage
from engine_clients._wrapper_support import aclosing_events
from engine_clients._wrapper_support import closing_events
from engine_clients._wrapper_support import completion_report

from ._messages import _legacy_tool_call
from ._messages import to_engine_message as to_engine_message
from ._messages import to_engine_messages as to_engine_messages

__all__ = [
    "ChatStreamAssembler",
    "CompletionStreamAssembler",
    "InvalidToolCallError",
    "astream_responses",
    "chat_response",
    "completion_response",
    "stream_responses",
    "to_engine_messages",
    "tool_calls_of",
    "tool_selections",
]


# ---- engine results -> LlamaIndex responses ------------------------------------------------------------


def usage_kwargs(usage: Usage | None) -> dict[str, int]:
    """Token counts the way llama-index-llms-openai reports them in ``ChatResponse.additional_kwargs``."""
    if usage is None:
        return {}
    out = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }
    if usage.reasoning_tokens is not None:
        out["reasoning_tokens"] = usage.reasoning_tokens
    if usage.cached_prompt_tokens is not None:
        out["cached_tokens"] = usage.cached_prompt_tokens
    return out


def result_kwargs(completion: Completion) -> dict[str, Any]:
    """A whole answer's ``additional_kwargs``: the usage counts, ``timings`` (seconds, the known figures
    only; see ``engine_clients.Timings``), and where non-empty ``history_changes`` (what was changed in the
    history to fit the chat template) and ``recovered_tool_calls`` (calls recovered from leaked markup)."""
    out: dict[str, Any] = usage_kwargs(completion.usage)
    if completion.timings is not None:
        out["timings"] = completion.timings.to_dict()
    out.update(completion_report(completion))
    return out


def _raw(completion: Completion) -> dict[str, Any]:
    """``raw``: the engine result as a plain dict. ``raw["usage"]`` is what TokenCountingHandler reads (it
    falls back to ``additional_kwargs`` when ``raw["usage"]`` is None); ``raw["timings"]`` holds the known
    timing figures, and ``raw["history_changes"]`` / ``raw["recovered_tool_calls"]`` the same lists, as in
    ``additional_kwargs`` (``raw["recovered"]``: the engine result's own field, always present)."""
    raw = dataclasses.asdict(completion)
    if completion.timings is not None:
        raw["timings"] = completion.timings.to_dict()
    raw["history_changes"] = list(raw["history_changes"])
    raw["recovered"] = list(raw["recovered"])
    raw.update(completion_report(completion))
    return raw


def _logprob_row(token: str, logprob: float | None, tops: Sequence[TopLogprob] | None) -> list[LogProb]:
    if tops:
        return [LogProb(token=t.token, logprob=t.logprob) for t in tops if t.logprob is not None]
    return [LogProb(token=token, logprob=logprob)] if logprob is not None else []


def _logprobs(completion: Completion) -> list[list[LogProb]] | None:
    if not completion.logprobs:
        return None
    return [_logprob_row(t.token, t.logprob, t.top_logprobs) for t in completion.logprobs]


def _tool_call_block(call: ToolCall) -> ToolCallBlock:
    return ToolCallBlock(
        tool_call_id=call.id,
        tool_name=call.name,
        tool_kwargs=call.arguments if call.arguments is not None else call.raw_arguments,
    )


class InvalidToolCallError(ValueError):
    """The model produced a tool call whose arguments are not a JSON object: cut off by the token limit
    (``finish_reason="length"``) or malformed. Raised by ``get_tool_calls_from_response`` so that no agent
    runs the tool with made-up (empty) arguments. ``calls`` holds each invalid call's id, name, raw
    arguments and the reason."""

    def __init__(self, calls: list[dict[str, Any]]) -> None:
        self.calls = calls
        described = "; ".join(f"{c['name']}({c['arguments']!r}): {c['error']}" for c in calls)
        super().__init__(f"invalid tool call arguments, the tool was not run: {described}")


def _invalid_call(call: ToolCall, finish_reason: str) -> dict[str, Any]:
    error = call.error or "arguments are not a JSON object"
    if finish_reason == "length":
        error = f"cut off by the token limit (finish_reason='length'; raise max_tokens): {error}"
    return {"id": call.id, "name": call.name, "arguments": call.raw_arguments, "error": error}


def _assistant(
    content: str, blocks: list[ToolCallBlock], extra: dict[str, Any], thinking: ThinkingBlock | None = None
) -> ChatMessage:
    head: list[ThinkingBlock | TextBlock] = [thinking] if thinking is not None else []
    return ChatMessage(
        role=MessageRole.ASSISTANT, blocks=[*head, TextBlock(text=content), *blocks], additional_kwargs=extra
    )


def chat_response(completion: Completion, *, delta: str | None = None) -> ChatResponse:
    """A ``ChatResponse``: text and ``ToolCallBlock``s in ``message.blocks``, the calls also as OpenAI-style
    dicts in ``message.additional_kwargs["tool_calls"]`` (calls whose arguments are not a JSON object also in
    ``additional_kwargs["invalid_tool_calls"]``); usage in ``raw["usage"]`` and ``additional_kwargs``."""
    extra: dict[str, Any] = {}
    if completion.tool_calls:
        extra["tool_calls"] = [c.to_openai() for c in completion.tool_calls]
        invalid = [_invalid_call(c, completion.finish_reason) for c in completion.tool_calls if not c.valid]
        if invalid:
            extra["invalid_tool_calls"] = invalid
    thinking = None
    if completion.reasoning:
        tokens = completion.usage.reasoning_tokens if completion.usage is not None else None
        thinking = ThinkingBlock(content=completion.reasoning, num_tokens=tokens)
    blocks = [_tool_call_block(c) for c in completion.tool_calls]
    message = _assistant(completion.content, blocks, extra, thinking)
    return ChatResponse(
        message=message,
        raw=_raw(completion),
        delta=delta,
        logprobs=_logprobs(completion),
        additional_kwargs=result_kwargs(completion),
    )


def completion_response(completion: Completion, *, delta: str | None = None) -> CompletionResponse:
    return CompletionResponse(
        text=completion.content,
        raw=_raw(completion),
        delta=delta,
        logprobs=_logprobs(completion),
        additional_kwargs=result_kwargs(completion),
    )


def chat_to_completion_response(response: ChatResponse) -> CompletionResponse:
    return CompletionResponse(
        text=response.message.content or "",
        raw=response.raw,
        delta=response.delta,
        logprobs=response.logprobs,
        additional_kwargs=response.additional_kwargs,
    )


def _token_raw(event: Token) -> dict[str, Any]:
    # per token, on the hot path: a flat dict (dataclasses.asdict recurses and deep-copies)
    return {"text": event.text, "index": event.index, "id": event.id, "logprob": event.logprob}


class ChatStreamAssembler:
    """Turns stream events into cumulative ``ChatResponse``s.

    One response per text token (``delta`` = the token), per reasoning piece (``delta`` = "",
    ``additional_kwargs["thinking_delta"]`` = the piece, which agents publish as
    ``AgentStream.thinking_delta``;
    the thinking so far in a ``ThinkingBlock``) and per tool-call fragment (``delta`` = ""), with the
    tool calls so far accumulated into ``ToolCallBlock``s (arguments as the partial JSON string) and
    ``message.additional_kwargs["tool_calls"]``, like llama-index-llms-openai. The stream's last response
    (``delta`` = "") carries the finished result: parsed tool-call arguments, ``raw`` (the whole
    ``Completion`` as a dict) and the usage that token counting reads.
    """

    def __init__(self) -> None:
        self.text = ""
        self.reasoning = ""
        self.calls: dict[int, dict[str, Any]] = {}

    def _message(self) -> ChatMessage:
        calls = [self.calls[i] for i in sorted(self.calls)]
        blocks = [
            ToolCallBlock(
                tool_call_id=c["id"] or None,
                tool_name=c["function"]["name"],
                tool_kwargs=c["function"]["arguments"],
            )
            for c in calls
        ]
        # each response owns its tool-call dicts (later fragments must not change earlier responses)
        owned = [{**c, "function": dict(c["function"])} for c in calls]
        thinking = ThinkingBlock(content=self.reasoning) if self.reasoning else None
        return _assistant(self.text, blocks, {"tool_calls": owned} if owned else {}, thinking)

    def feed(self, event: StreamEvent) -> ChatResponse | None:
        if isinstance(event, Token):
            self.text += event.text
            row = _logprob_row(event.text, event.logprob, event.top_logprobs)
            return ChatResponse(
                message=self._message(),
                delta=event.text,
                raw=_token_raw(event),
                logprobs=[row] if row else None,
            )
        if isinstance(event, Reasoning):
            self.reasoning += event.text
            return ChatResponse(
                message=self._message(),
                delta="",
                raw={"reasoning": event.text, "index": event.index},
                additional_kwargs={"thinking_delta": event.text},
            )
        if isinstance(event, ToolCallDelta):
            call = self.calls.setdefault(
                event.index,
                {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
            )
            if event.id:
                call["id"] = event.id
            if event.name:
                call["function"]["name"] = event.name
            call["function"]["arguments"] += event.arguments
            return ChatResponse(message=self._message(), delta="", raw=dataclasses.asdict(event))
        if isinstance(event, End):
            return chat_response(event.completion, delta="")
        return None  # Started: nothing to show yet


class CompletionStreamAssembler:
    """Stream events as cumulative ``CompletionResponse``s; the last one (``delta`` = "") carries usage."""

    def __init__(self) -> None:
        self.text = ""

    def feed(self, event: StreamEvent) -> CompletionResponse | None:
        if isinstance(event, Token):
            self.text += event.text
            row = _logprob_row(event.text, event.logprob, event.top_logprobs)
            return CompletionResponse(
                text=self.text,
                delta=event.text,
                raw=_token_raw(event),
                logprobs=[row] if row else None,
            )
        if isinstance(event, End):
            return completion_response(event.completion, delta="")
        return None


R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class _Assembler(Protocol[R_co]):
    def feed(self, event: StreamEvent) -> R_co | None: ...


def stream_responses(events: Iterator[StreamEvent], assembler: _Assembler[R]) -> Generator[R, None, None]:
    """The responses an assembler makes of a stream; stopping early closes the stream (releasing its HTTP
    connection)."""
    with closing_events(events):
        for event in events:
            if (response := assembler.feed(event)) is not None:
                yield response


async def astream_responses(
    events: AsyncIterator[StreamEvent], assembler: _Assembler[R]
) -> AsyncGenerator[R, None]:
    """:func:`stream_responses` for async streams."""
    async with aclosing_events(events):
        async for event in events:
            if (response := assembler.feed(event)) is not None:
                yield response


# ---- tool calls out of a response ----------------------------------------------------------------------


def tool_calls_of(message: ChatMessage) -> list[tuple[str, str, Any]]:
    """(id, name, arguments) of each tool call in a message: its ``ToolCallBlock``s, else (messages made by
    other integrations) ``additional_kwargs["tool_calls"]``."""
    blocks = [b for b in message.blocks if isinstance(b, ToolCallBlock)]
    if blocks:
        return [(b.tool_call_id or "", b.tool_name, b.tool_kwargs) for b in blocks]
    out = []
    for tc in message.additional_kwargs.get("tool_calls") or []:
        d = _legacy_tool_call(tc)
        out.append((d["id"], d["function"]["name"], d["function"]["arguments"]))
    return out


def _kwargs(args: Any) -> dict[str, Any]:
    if isinstance(args, Mapping):
        return dict(args)
    if not isinstance(args, str) or not args.strip():
        return {}
    try:
        value = parse_partial_json(args)  # complete JSON, or the partial JSON of a call still streaming
    except (ValueError, TypeError):
        return {}
    return value if isinstance(value, dict) else {}


def tool_selections(message: ChatMessage) -> list[ToolSelection]:
    """The calls as ``ToolSelection``s. A finished response with a call whose arguments are not a JSON
    object raises :class:`InvalidToolCallError`; a response still streaming parses partial arguments."""
    invalid = message.additional_kwargs.get("invalid_tool_calls")
    if invalid:
        raise InvalidToolCallError(list(invalid))
    return [
        ToolSelection(tool_id=call_id, tool_name=name, tool_kwargs=_kwargs(args))
        for call_id, name, args in tool_calls_of(message)
    ]


def keep_first_tool_call(response: ChatResponse) -> ChatResponse:
    """Drop every tool call after the first (``allow_parallel_tool_calls=False``)."""
    message = response.message
    seen = False
    blocks = []
    for b in message.blocks:
        if isinstance(b, ToolCallBlock):
            if seen:
                continue
            seen = True
        blocks.append(b)
    message.blocks = blocks
    calls = message.additional_kwargs.get("tool_calls")
    if isinstance(calls, list) and len(calls) > 1:
        message.additional_kwargs["tool_calls"] = calls[:1]
    return response
