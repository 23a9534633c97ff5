"""Engine-neutral request model: user inputs (dicts, dataclasses, pydantic classes) normalized once,
before a dialect maps them onto its wire format."""

from __future__ import annotations

import json
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from ._media import DEFAULT_MAX_MEDIA_BYTES
from ._media import normalize_content
from ._model_types import AdapterInfo
from .errors import InvalidRequestError
from .types import ChatMessage
from .types import Grammar
from .types import JsonObject
from .types import JsonSchema
from .types import MessageInput
from .types import Regex
from .types import ResponseFormat
from .types import ResponseFormatInput
from .types import Tool
from .types import ToolCall
from .types import ToolChoice
from .types import ToolInput

__all__ = [
    "AdapterChoice",
    "ChatRequest",
    "GenerateRequest",
    "NamedToolChoice",
    "ReasoningControls",
    "build_tool_call",
    "normalize_messages",
    "normalize_response_format",
    "normalize_tool_choice",
    "normalize_tools",
    "parse_arguments",
]


@dataclass(slots=True, frozen=True)
class NamedToolChoice:
    name: str


@dataclass(slots=True, frozen=True)
class ReasoningControls:
    """Per-request thinking controls; None leaves the engine's default. Dialects map them to wire fields
    and refuse (InvalidRequestError) those their route cannot honour."""

    thinking: bool | None = None
    effort: str | None = None
    budget: int | None = None

    def __post_init__(self) -> None:
        if self.thinking is not None and not isinstance(self.thinking, bool):
            raise InvalidRequestError(f"thinking must be True, False or None, not {self.thinking!r}")
        if self.effort is not None and (not isinstance(self.effort, str) or not self.effort):
            raise InvalidRequestError(f"reasoning_effort must be a non-empty string, not {self.effort!r}")
        budget = self.budget
        if budget is not None and (not isinstance(budget, int) or isinstance(budget, bool) or budget < 0):
            raise InvalidRequestError(f"thinking_budget must be a token count >= 0, not {budget!r}")
        if self.thinking is False and ((budget or 0) > 0 or self.effort not in (None, "none")):
            raise InvalidRequestError(
                f"thinking=False contradicts reasoning_effort={self.effort!r} / thinking_budget={budget!r}"
            )
        if self.thinking is True and self.effort == "none":
            raise InvalidRequestError('thinking=True contradicts reasoning_effort="none"')

    @property
    def empty(self) -> bool:
        return self.thinking is None and self.effort is None and self.budget is None


NO_REASONING_CONTROLS = ReasoningControls()


@dataclass(slots=True, frozen=True)
class AdapterChoice:
    """``adapter=`` of one request: the LoRA adapter's ``name``, its ``scale`` (None: full strength; only
    llama.cpp takes another) and, where the dialect needs them to spell the choice, the server's adapters
    (``known``: llama.cpp selects by id, read once from ``/lora-adapters`` by the client)."""

    name: str
    scale: float | None = None
    known: tuple[AdapterInfo, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidRequestError(f"adapter must be a non-empty adapter name, not {self.name!r}")
        scale = self.scale
        if scale is not None and (
            isinstance(scale, bool) or not isinstance(scale, int | float) or scale != scale
        ):
            raise InvalidRequestError(f"adapter_scale must be a number, not {scale!r}")


@dataclass(slots=True)
class ChatRequest:
    messages: list[dict[str, Any]]
    tools: list[Tool] = field(default_factory=list)
    tool_choice: str | NamedToolChoice | None = None
    response_format: ResponseFormat | None = None
    sampling: dict[str, Any] = field(default_factory=dict)
    extra_body: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    reasoning: ReasoningControls = NO_REASONING_CONTROLS
    recover_tool_calls: bool | None = None
    """Recover tool calls from markup left in the answer's content (None: the dialect's setting)."""
    adapter: AdapterChoice | None = None


@dataclass(slots=True)
class GenerateRequest:
    prompt: str
    response_format: ResponseFormat | None = None
    sampling: dict[str, Any] = field(default_factory=dict)
    extra_body: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    images: tuple[str, ...] = ()
    """``data:`` or http(s) URLs, in order (see ``_media.normalize_images``)."""
    media_marker: str | None = None
    """The server's placeholder for one media item in a prompt (llama-server ``/props``), when known."""
    adapter: AdapterChoice | None = None


def normalize_messages(
    messages: Sequence[MessageInput] | str, max_media_bytes: int = DEFAULT_MAX_MEDIA_BYTES
) -> list[dict[str, Any]]:
    """OpenAI-style message dicts from dicts or :class:`ChatMessage` objects (a string: one user turn).

    A turn's thinking is under ``"reasoning"`` (from ``ChatMessage.reasoning`` or a dict's ``reasoning``
    / ``reasoning_content``); each dialect renames or drops it for its engine. Images and audio become
    OpenAI content parts (local files read and base64-encoded, each at most ``max_media_bytes``); a past
    tool call whose arguments are not JSON is refused, naming its message."""
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    if not messages:
        raise InvalidRequestError("messages must not be empty")
    out: list[dict[str, Any]] = []
    for index, m in enumerate(messages):
        if isinstance(m, ChatMessage):
            d: dict[str, Any] = {"role": m.role, "content": m.content}
            if m.tool_calls:
                d["tool_calls"] = [tc.to_openai() for tc in m.tool_calls]
            if m.tool_call_id is not None:
                d["tool_call_id"] = m.tool_call_id
            if m.name is not None:
                d["name"] = m.name
            if m.reasoning:
                d["reasoning"] = m.reasoning
        elif isinstance(m, Mapping):
            if "role" not in m:
                raise InvalidRequestError(f"message without a role: {dict(m)!r}")
            d = dict(m)
            if d.get("tool_calls"):
                d["tool_calls"] = [_openai_tool_call(tc) for tc in d["tool_calls"]]
            if "reasoning" in d or "reasoning_content" in d:
                thought = d.pop("reasoning", None) or d.pop("reasoning_content", None)
                d.pop("reasoning_content", None)
                if thought:
                    if not isinstance(thought, str):
                        raise InvalidRequestError(f"message reasoning must be a string, not {thought!r}")
                    d["reasoning"] = thought
        else:
            raise InvalidRequestError(f"unsupported message type {type(m).__name__}")
        if isinstance(d.get("content"), list):
            d["content"] = normalize_content(d["content"], max_media_bytes, f"message {index}")
        for call in d.get("tool_calls") or ():
            _check_history_arguments(index, call)
        out.append(d)
    return out


def _check_history_arguments(index: int, call: Mapping[str, Any]) -> None:
    """Engines answer a past call with unparseable arguments with a 500 (llama.cpp) or a template error."""
    fn = call.get("function") or {}
    try:
        json.loads(fn.get("arguments") or "{}")
    except ValueError as exc:
        raise InvalidRequestError(
            f"message {index} (assistant): the arguments of its tool call {fn.get('name')!r}"
            f" (id {call.get('id')!r}) are not valid JSON ({exc}); fix or drop that call before sending"
        ) from None


def _openai_tool_call(tc: Any) -> dict[str, Any]:
    if isinstance(tc, ToolCall):
        return tc.to_openai()
    if not isinstance(tc, Mapping):
        raise InvalidRequestError(f"unsupported tool call {tc!r}")
    fn = dict(tc.get("function") or {})
    if "name" not in fn and "name" in tc:  # LangChain-style {"name", "args", "id"}
        fn = {"name": tc["name"], "arguments": tc.get("args", tc.get("arguments", {}))}
    args = fn.get("arguments", {})
    if not isinstance(args, str):
        args = json.dumps(args)
    return {
        "id": str(tc.get("id") or ""),
        "type": "function",
        "function": {"name": fn["name"], "arguments": args},
    }


def normalize_tools(tools: Sequence[ToolInput] | None) -> list[Tool]:
    if not tools:
        return []
    out: list[Tool] = []
    for t in tools:
        if isinstance(t, Tool):
            out.append(t)
            continue
        if not isinstance(t, Mapping):
            raise InvalidRequestError(f"unsupported tool {t!r}: pass Tool or an OpenAI-style dict")
        fn = t.get("function", t)
        if not isinstance(fn, Mapping) or not fn.get("name"):
            raise InvalidRequestError(f"tool without a function name: {dict(t)!r}")
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        strict = fn.get("strict")
        out.append(
            Tool(
                name=str(fn["name"]),
                description=fn.get("description"),
                parameters=dict(params),
                strict=strict if isinstance(strict, bool) else None,
            )
        )
    names = [t.name for t in out]
    if len(set(names)) != len(names):
        raise InvalidRequestError(f"duplicate tool names: {names}")
    return out


def normalize_tool_choice(
    choice: ToolChoice | bool | None, tools: list[Tool]
) -> str | NamedToolChoice | None:
    """``"auto"`` | ``"none"`` | ``"required"`` | :class:`NamedToolChoice`; ``"any"``/True mean required."""
    if choice is None:
        return None
    if not tools and choice != "none":
        raise InvalidRequestError("tool_choice needs tools")
    if choice is True or choice == "any":
        return "required"
    if choice is False:
        return "none"
    if isinstance(choice, str):
        if choice in ("auto", "none", "required"):
            return choice
        name = choice
    elif isinstance(choice, Mapping):
        fn = choice.get("function")
        found = fn.get("name") if isinstance(fn, Mapping) else choice.get("name")
        if not isinstance(found, str):
            raise InvalidRequestError(f"unsupported tool_choice {dict(choice)!r}")
        name = found
    else:
        raise InvalidRequestError(f"unsupported tool_choice {choice!r}")
    if name not in {t.name for t in tools}:
        raise InvalidRequestError(f"tool_choice names {name!r}, which is not among the tools")
    return NamedToolChoice(name)


def normalize_response_format(fmt: ResponseFormatInput | None) -> ResponseFormat | None:
    """A format object from a format object, a pydantic model class, a JSON schema or an OpenAI dict."""
    if fmt is None or isinstance(fmt, JsonSchema | JsonObject | Regex | Grammar):
        return fmt
    if isinstance(fmt, type):
        schema_fn = getattr(fmt, "model_json_schema", None)
        if schema_fn is None:
            raise InvalidRequestError(f"{fmt.__name__} is not a pydantic model class")
        return JsonSchema(schema=schema_fn(), name=fmt.__name__)
    if not isinstance(fmt, Mapping):
        raise InvalidRequestError(f"unsupported response_format {fmt!r}")
    kind = fmt.get("type")
    if kind == "json_schema" and isinstance(fmt.get("json_schema"), Mapping):  # OpenAI form
        js = fmt["json_schema"]
        return JsonSchema(
            schema=dict(js.get("schema") or {}), name=js.get("name") or "response", strict=js.get("strict")
        )
    if kind in ("json_schema", "json") and "value" in fmt:  # TGI form
        value = fmt["value"]
        if isinstance(value, str):
            value = json.loads(value)
        if kind == "json_schema" and isinstance(value, Mapping) and "schema" in value:
            return JsonSchema(schema=dict(value["schema"]), name=value.get("name") or "response")
        return JsonSchema(schema=dict(value))
    if kind == "json_object":
        schema = fmt.get("schema", fmt.get("value"))  # llama.cpp's and TGI's forms
        return JsonSchema(schema=dict(schema)) if isinstance(schema, Mapping) else JsonObject()
    if kind == "regex" and isinstance(fmt.get("value"), str):
        return Regex(fmt["value"])
    if kind in ("grammar", "gbnf") and isinstance(fmt.get("value", fmt.get("grammar")), str):
        return Grammar(fmt.get("value", fmt.get("grammar")))
    if kind == "object" or "properties" in fmt or "$schema" in fmt or "anyOf" in fmt:  # a bare JSON schema
        return JsonSchema(schema=dict(fmt), name=str(fmt.get("title") or "response"))
    raise InvalidRequestError(f"unsupported response_format {dict(fmt)!r}")


def parse_arguments(raw: Any) -> tuple[dict[str, Any] | None, str, str | None]:
    """(parsed object or None, raw string, error). Engines send a JSON string or (old TGI) an object."""
    if isinstance(raw, Mapping):
        return dict(raw), json.dumps(raw), None
    if raw is None or raw == "":
        return {}, "{}", None
    if not isinstance(raw, str):
        return None, json.dumps(raw), f"arguments are a JSON {type(raw).__name__}, not an object"
    try:
        value = json.loads(raw)
    except ValueError as exc:
        return None, raw, f"arguments are not valid JSON: {exc}"
    if not isinstance(value, dict):
        return None, raw, f"arguments are a JSON {type(value).__name__}, not an object"
    return value, raw, None


def build_tool_call(index: int, id: str | None, name: str | None, raw: Any) -> ToolCall:
    args, raw_str, err = parse_arguments(raw)
    return ToolCall(
        id=id or f"call_{index}",
        name=name or "",
        arguments=args,
        raw_arguments=raw_str,
        index=index,
        error=err,
    )
