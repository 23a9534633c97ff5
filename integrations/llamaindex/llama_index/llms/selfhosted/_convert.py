"""Conversions between LlamaIndex's message/response types and ``engine_clients``' engine-neutral ones.

Everything here is engine-independent: the engine layer maps the OpenAI-style dicts produced here onto each
engine's wire format.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

from llama_index.core.base.llms.types import (
    AudioBlock,
    CachePoint,
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    ImageBlock,
    LogProb,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.llms.utils import parse_partial_json

from engine_clients import (
    Completion,
    End,
    Reasoning,
    StreamEvent,
    Token,
    ToolCall,
    ToolCallDelta,
    TopLogprob,
    Usage,
)

__all__ = [
    "ChatStreamAssembler",
    "CompletionStreamAssembler",
    "InvalidToolCallError",
    "chat_response",
    "completion_response",
    "to_engine_messages",
    "tool_calls_of",
    "tool_selections",
]

_ROLES = {
    MessageRole.SYSTEM: "system",
    MessageRole.DEVELOPER: "system",
    MessageRole.USER: "user",
    MessageRole.ASSISTANT: "assistant",
    MessageRole.CHATBOT: "assistant",
    MessageRole.MODEL: "assistant",
    MessageRole.TOOL: "tool",
    MessageRole.FUNCTION: "tool",
}


# ---- LlamaIndex messages -> OpenAI-style dicts ---------------------------------------------------------


def _arguments_str(args: Any) -> str:
    if isinstance(args, str):
        return args or "{}"
    return json.dumps(args if args is not None else {})


def _image_part(block: ImageBlock) -> dict[str, Any]:
    """Bytes as base64 data; a path or a URL as given (the engine layer reads local files, under its size
    limit, and leaves http(s) URLs for the server to fetch)."""
    if block.image is not None:
        data = block.resolve_image(as_base64=True).read().decode("ascii")
        url = f"data:{block.image_mimetype or 'image/png'};base64,{data}"
        part: dict[str, Any] = {"type": "image_url", "image_url": {"url": url}}
    elif block.path is not None:
        part = {"type": "image", "path": str(block.path), "mime_type": block.image_mimetype}
    else:
        part = {"type": "image_url", "image_url": {"url": str(block.url)}}
    if block.detail and part["type"] == "image_url":
        part["image_url"]["detail"] = block.detail
    return part


def _audio_part(block: AudioBlock) -> dict[str, Any]:
    if block.audio is not None:
        data = block.resolve_audio(as_base64=True).read().decode("ascii")
        return {"type": "audio", "base64": data, "format": block.format}
    source = block.path if block.path is not None else block.url
    return {"type": "audio", "path": str(source), "format": block.format}


def _legacy_tool_call(tc: Any) -> dict[str, Any]:
    """An OpenAI-style tool call dict from what ``additional_kwargs["tool_calls"]`` may hold: dicts (this
    package, LangChain-ish shapes) or objects with ``model_dump`` (llama-index-llms-openai)."""
    if hasattr(tc, "model_dump"):
        tc = tc.model_dump()
    if not isinstance(tc, Mapping):
        raise ValueError(f"unsupported tool call in additional_kwargs: {tc!r}")
    fn = tc.get("function") or {}
    name = fn.get("name", tc.get("name"))
    args = fn.get("arguments", tc.get("arguments", tc.get("args")))
    return {
        "id": str(tc.get("id") or ""),
        "type": "function",
        "function": {"name": name or "", "arguments": _arguments_str(args)},
    }


def to_engine_message(message: ChatMessage) -> dict[str, Any]:
    """One LlamaIndex message as an OpenAI-style dict.

    Text blocks are joined (as ``ChatMessage.content`` joins them); images and audio become media parts
    (``image_url`` / ``input_audio`` once the engine layer has read any local file);
    ``ToolCallBlock``s (or, for older producers, ``additional_kwargs["tool_calls"]``) become ``tool_calls``;
    a tool result's ``additional_kwargs["tool_call_id"]`` becomes ``tool_call_id``. An assistant turn's
    ``ThinkingBlock``s become ``reasoning`` (the engine layer sends it in the engine's own field, or leaves it
    out where the engine has none); cache points are not sent.
    """
    role = _ROLES.get(message.role, str(message.role.value))
    texts: list[str] = []
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    thinking: list[str] = []
    has_media = False
    for block in message.blocks:
        if isinstance(block, TextBlock):
            texts.append(block.text)
            parts.append({"type": "text", "text": block.text})
        elif isinstance(block, ImageBlock):
            has_media = True
            parts.append(_image_part(block))
        elif isinstance(block, AudioBlock):
            has_media = True
            parts.append(_audio_part(block))
        elif isinstance(block, ToolCallBlock):
            calls.append(
                {
                    "id": block.tool_call_id or f"call_{len(calls)}",
                    "type": "function",
                    "function": {"name": block.tool_name, "arguments": _arguments_str(block.tool_kwargs)},
                }
            )
        elif isinstance(block, ThinkingBlock):
            if block.content:
                thinking.append(block.content)
        elif isinstance(block, CachePoint):
            continue
        else:
            raise ValueError(f"{type(block).__name__} content is not supported by this LLM")
    if not calls and role == "assistant":
        calls = [_legacy_tool_call(tc) for tc in message.additional_kwargs.get("tool_calls") or []]

    out: dict[str, Any] = {"role": role}
    text = "\n".join(texts)
    if has_media:
        out["content"] = parts
    else:
        out["content"] = None if calls and not text else text
    if calls:
        out["tool_calls"] = calls
    if thinking and role == "assistant":
        out["reasoning"] = "".join(thinking)
    if role == "tool":
        call_id = message.additional_kwargs.get("tool_call_id")
        if call_id is not None:
            out["tool_call_id"] = str(call_id)
        name = message.additional_kwargs.get("name")
        if name:
            out["name"] = str(name)
    return out


def to_engine_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    return [to_engine_message(m) for m in messages]


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
    """A whole answer's ``additional_kwargs``: the usage counts, and ``timings`` (seconds, the known
    figures only; see ``engine_clients.Timings``)."""
    out: dict[str, Any] = usage_kwargs(completion.usage)
    if completion.timings is not None:
        out["timings"] = completion.timings.to_dict()
    return out


def _raw(completion: Completion) -> dict[str, Any]:
    """``raw``: the engine result as a plain dict. ``raw["usage"]`` is what TokenCountingHandler reads (it
    falls back to ``additional_kwargs`` when ``raw["usage"]`` is None); ``raw["timings"]`` holds the known
    timing figures, as in ``additional_kwargs``."""
    raw = dataclasses.asdict(completion)
    if completion.timings is not None:
        raw["timings"] = completion.timings.to_dict()
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
