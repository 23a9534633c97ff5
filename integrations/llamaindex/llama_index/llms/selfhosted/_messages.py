"""LlamaIndex messages as the OpenAI-style dicts ``engine_clients`` takes (engine-independent: the engine
layer maps them onto each engine's wire format). The way back, engine results to LlamaIndex responses:
:mod:`._convert`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from llama_index.core.base.llms.types import AudioBlock
from llama_index.core.base.llms.types import CachePoint
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.base.llms.types import ImageBlock
from llama_index.core.base.llms.types import MessageRole
from llama_index.core.base.llms.types import TextBlock
from llama_index.core.base.llms.types import ThinkingBlock
from llama_index.core.base.llms.types import ToolCallBlock

__all__ = ["to_engine_message", "to_engine_messages"]

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
