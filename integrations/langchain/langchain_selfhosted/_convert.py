"""Conversions between LangChain objects and the engine layer's (engine-neutral) types."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from typing import cast

from langchain_core.messages import AIMessage
from langchain_core.messages import AIMessageChunk
from langchain_core.messages import BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import invalid_tool_call
from langchain_core.messages.tool import tool_call
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.messages.utils import convert_to_openai_messages
from langchain_core.outputs import ChatGenerationChunk

from engine_clients import Completion
from engine_clients import End
from engine_clients import Reasoning
from engine_clients import Started
from engine_clients import StreamEvent
from engine_clients import Token
from engine_clients import TokenLogprob
from engine_clients import ToolCallDelta
from engine_clients import Usage
from engine_clients._wrapper_support import completion_report

from .errors import InvalidRequestError

__all__ = [
    "StreamConverter",
    "completion_metadata",
    "completion_to_message",
    "logprobs_payload",
    "to_openai_messages",
    "usage_metadata",
]


_REASONING_BLOCKS = {"reasoning": "reasoning", "thinking": "thinking"}  # block type -> its text key


def _reasoning_of(message: BaseMessage) -> str | None:
    """An assistant turn's thinking: ``additional_kwargs["reasoning_content"]`` (what this package
    produces), else standard ``reasoning`` / Anthropic-style ``thinking`` content blocks."""
    text = message.additional_kwargs.get("reasoning_content")
    if isinstance(text, str):
        return text
    if isinstance(message.content, list):
        parts = [
            str(b.get(_REASONING_BLOCKS[b["type"]], ""))
            for b in message.content
            if isinstance(b, dict) and b.get("type") in _REASONING_BLOCKS
        ]
        if parts:
            return "".join(parts)
    return None


def to_openai_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """OpenAI-style message dicts: assistant tool calls as ``tool_calls`` (JSON-string arguments),
    ``ToolMessage`` as ``role: tool`` + ``tool_call_id``, standard image blocks as ``image_url`` parts, and
    an assistant turn's thinking as ``reasoning`` (the engine layer sends it in the engine's own field)."""
    messages = list(messages)
    try:  # standard image/audio blocks (base64 or url), image_url and input_audio become OpenAI parts
        out: list[dict[str, Any]] = convert_to_openai_messages(messages, text_format="string")
    except (ValueError, KeyError) as exc:  # a block by file_id (no server-side files), one missing mime_type
        raise InvalidRequestError(f"cannot send this message content: {exc!r}") from None
    for original, m in zip(messages, out, strict=True):
        if m["role"] != "assistant":
            continue
        if isinstance(m.get("content"), list):
            # Provider-specific blocks (thinking, tool_use, ...) are not something a chat template reads;
            # the tool calls themselves are already in ``tool_calls``.
            m["content"] = "".join(
                b.get("text", "") for b in m["content"] if isinstance(b, dict) and b.get("type") == "text"
            )
        reasoning = _reasoning_of(original)
        if reasoning:
            m["reasoning"] = reasoning
    return out


def usage_metadata(usage: Usage | None) -> UsageMetadata | None:
    if usage is None:
        return None
    meta: dict[str, Any] = {
        "input_tokens": usage.prompt_tokens,
        "output_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
    }
    # langchain-core's standard detail keys, only for what the engine reported (never a guessed 0)
    if usage.cached_prompt_tokens is not None:
        meta["input_token_details"] = {"cache_read": usage.cached_prompt_tokens}
    if usage.reasoning_tokens is not None:
        meta["output_token_details"] = {"reasoning": usage.reasoning_tokens}
    return cast(UsageMetadata, meta)  # cast: mypy reads the NotRequired detail keys as required


def logprobs_payload(logprobs: Sequence[TokenLogprob]) -> dict[str, Any]:
    """OpenAI's chat shape ``{"content": [{"token", "logprob", "top_logprobs": [...]}]}``, as ChatOpenAI
    reports it in ``response_metadata["logprobs"]``."""
    return {
        "content": [
            {
                "token": lp.token,
                "logprob": lp.logprob,
                **({"id": lp.id} if lp.id is not None else {}),
                "top_logprobs": [{"token": t.token, "logprob": t.logprob} for t in lp.top_logprobs],
            }
            for lp in logprobs
        ]
    }


def completion_metadata(completion: Completion, model_name: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "finish_reason": completion.finish_reason,
        "model_name": completion.model or model_name,
    }
    if completion.engine:
        meta["engine"] = completion.engine
    if completion.raw_finish_reason and completion.raw_finish_reason != completion.finish_reason:
        meta["raw_finish_reason"] = completion.raw_finish_reason
    if completion.logprobs is not None:
        meta["logprobs"] = logprobs_payload(completion.logprobs)
    if completion.timings is not None:  # seconds; see engine_clients.Timings
        meta["timings"] = completion.timings.to_dict()
    meta.update(completion_report(completion))  # "history_changes", "recovered_tool_calls" (non-empty)
    return meta


def completion_to_message(completion: Completion, model_name: str | None) -> AIMessage:
    """An ``AIMessage``; tool calls whose arguments are not a JSON object go to ``invalid_tool_calls``."""
    calls, invalid = [], []
    for tc in completion.tool_calls:
        if tc.arguments is not None:
            calls.append(tool_call(name=tc.name, args=tc.arguments, id=tc.id))
        else:
            invalid.append(invalid_tool_call(name=tc.name, args=tc.raw_arguments, id=tc.id, error=tc.error))
    return AIMessage(
        content=completion.content,
        additional_kwargs={"reasoning_content": completion.reasoning} if completion.reasoning else {},
        tool_calls=calls,
        invalid_tool_calls=invalid,
        usage_metadata=usage_metadata(completion.usage),
        response_metadata=completion_metadata(completion, model_name),
        id=completion.id,
    )


class StreamConverter:
    """Turns one stream's events into ``ChatGenerationChunk``s; the ``End`` event becomes the last chunk
    (``chunk_position="last"``) carrying usage, finish reason and model name."""

    def __init__(self, model_name: str | None, *, include_usage: bool = True) -> None:
        self.model_name = model_name
        self.include_usage = include_usage
        self.id: str | None = None
        self._announced: dict[int, tuple[bool, bool]] = {}  # index -> (id sent, name sent)

    def feed(self, event: StreamEvent, model_name: str | None = None) -> ChatGenerationChunk | None:
        """The chunk for ``event`` (None: nothing to show). ``model_name``: the model's name, where it is
        known by then (it goes with the last chunk)."""
        if isinstance(event, Token):  # first: once per token
            return ChatGenerationChunk(message=AIMessageChunk(content=event.text, id=self.id))
        self.model_name = model_name or self.model_name
        if isinstance(event, Reasoning):
            # additional_kwargs strings concatenate when chunks merge; content_blocks shows a reasoning block
            message = AIMessageChunk(
                content="", additional_kwargs={"reasoning_content": event.text}, id=self.id
            )
            return ChatGenerationChunk(message=message)
        if isinstance(event, ToolCallDelta):
            return self._tool_delta(event)
        if isinstance(event, End):
            return self._end(event)
        if isinstance(event, Started):
            self.id = event.id
            self.model_name = event.model or self.model_name
        return None

    def _tool_delta(self, event: ToolCallDelta) -> ChatGenerationChunk:
        had_id, had_name = self._announced.get(event.index, (False, False))
        self._announced[event.index] = (had_id or event.id is not None, had_name or event.name is not None)
        chunk = tool_call_chunk(name=event.name, args=event.arguments, id=event.id, index=event.index)
        return ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=[chunk], id=self.id))

    def _end(self, event: End) -> ChatGenerationChunk:
        completion = event.completion
        self.id = completion.id or self.id
        # Chunk fields concatenate on merge, so ids/names the deltas never carried (the engine layer made
        # them up at the end, e.g. "call_0") are sent once here, and nothing already sent is repeated.
        late = []
        for tc in completion.tool_calls:
            had_id, had_name = self._announced.get(tc.index, (False, False))
            if tc.index not in self._announced:
                late.append(tool_call_chunk(name=tc.name, args=tc.raw_arguments, id=tc.id, index=tc.index))
            elif not (had_id and had_name):
                late.append(
                    tool_call_chunk(
                        name=None if had_name else tc.name,
                        args="",
                        id=None if had_id else tc.id,
                        index=tc.index,
                    )
                )
        # Logprobs come whole with the last chunk: engines may pack several tokens' logprobs in one event.
        meta = completion_metadata(completion, self.model_name)
        message = AIMessageChunk(
            content="",
            tool_call_chunks=late,
            usage_metadata=usage_metadata(completion.usage) if self.include_usage else None,
            response_metadata=meta,
            id=self.id,
            chunk_position="last",
        )
        return ChatGenerationChunk(message=message)
