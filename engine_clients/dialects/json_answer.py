"""JSON answers after thinking: a pure codec, no I/O.

With ``response_format`` (a JSON schema or a JSON object) a thinking model sometimes leaves the answer's
content empty and writes the JSON inside its reasoning instead: the model skips its end-of-thinking tag, or
the engine applies the grammar to the thinking (vLLM issues #41132, #50938, #50948). :func:`json_answer`
decides what such an answer means, for ``parse_chat`` and for the end of a chat stream alike:

- the content is not empty, tool calls were made, the request asked for no JSON, or there was no reasoning:
  nothing to do (None);
- the reasoning ends with a JSON object or array (trailing whitespace and a closing code fence allowed) that
  fits the schema (:func:`matches_schema`; any object for ``json_object``): that JSON text is the answer;
- otherwise: :class:`~engine_clients.StructuredOutputError`, carrying both texts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..errors import StructuredOutputError
from ..types import JsonObject
from ..types import JsonSchema

__all__ = ["json_answer", "matches_schema", "trailing_json"]

_DECODER = json.JSONDecoder()
_MAX_TRIES = 4096  # openings tried, from the end: bounds the work on a long reasoning full of braces
_MAX_DEPTH = 64  # schema nesting followed (a recursive $ref on the same value stops here)


def json_answer(
    content: str,
    reasoning: str | None,
    fmt: JsonSchema | JsonObject | None,
    *,
    has_tool_calls: bool,
    finish: str | None,
    engine: str | None,
) -> str | None:
    """The JSON text to answer with, taken from the end of ``reasoning``; None when there is nothing to do
    (see the module docstring). Raises :class:`StructuredOutputError` when the reasoning ends with no JSON
    that fits. ``finish`` (the normalized finish reason) only improves the error's message."""
    if fmt is None or has_tool_calls or content.strip() or not reasoning or not reasoning.strip():
        return None
    found = trailing_json(reasoning)
    if found is not None:
        value, text = found
        if isinstance(fmt, JsonObject):
            if isinstance(value, dict):
                return text
            what = "ends with JSON that is not an object"
        elif matches_schema(value, fmt.schema):
            return text
        else:
            what = "ends with JSON that does not fit the schema"
    else:
        what = "does not end with JSON"
    cut = " (the answer stopped at max_tokens while thinking)" if finish == "length" else ""
    raise StructuredOutputError(
        f"response_format asked for JSON, but the answer's content is empty and its reasoning {what}{cut};"
        " give it more max_tokens, a thinking_budget, or thinking=False",
        content=content,
        reasoning=reasoning,
        engine=engine,
    )


def trailing_json(text: str) -> tuple[Any, str] | None:
    """``(value, its text)`` of the top-level JSON object or array ``text`` ends with (after trailing
    whitespace and a closing code fence); None when it ends with none."""
    end = text.rstrip()
    if end.endswith("```"):
        end = end[:-3].rstrip()
    if not end or end[-1] not in "}]":
        return None
    # From the last opening back: the only opening whose value ends exactly at the end is the outermost
    # one (values nested in it close before it does), and earlier drafts end before the end too.
    i = len(end)
    for _ in range(_MAX_TRIES):
        i = max(end.rfind("{", 0, i), end.rfind("[", 0, i))
        if i < 0:
            return None
        try:
            value, stop = _DECODER.raw_decode(end, i)
        except (ValueError, RecursionError):
            continue
        if stop == len(end):
            return value, end[i:]
    return None


def matches_schema(value: Any, schema: Any, root: Any = None, depth: int = 0) -> bool:
    """Whether ``value`` fits ``schema`` as far as its structural keywords say: ``type``, ``enum``, ``const``,
    ``properties``, ``required``, ``additionalProperties``, ``items``, ``anyOf``/``oneOf``/``allOf`` and
    local ``$ref`` (what schemas built from pydantic models, TypedDicts and LangChain tools use). Lengths,
    ranges, patterns and formats are not checked: this tells a finished answer from a draft or a fragment,
    the engine's grammar did the rest."""
    if not isinstance(schema, Mapping):
        return schema is not False  # True (or a bare {}) takes anything
    if depth > _MAX_DEPTH:
        return True
    root = schema if root is None else root
    deeper = depth + 1
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = _resolve(root, ref)
        if target is not None and not matches_schema(value, target, root, deeper):
            return False
    kind = schema.get("type")
    if kind is not None and not any(_is_type(value, k) for k in (kind if isinstance(kind, list) else [kind])):
        return False
    enum = schema.get("enum")
    if isinstance(enum, list) and not any(_equal(value, e) for e in enum):
        return False
    if "const" in schema and not _equal(value, schema["const"]):
        return False
    for key, need in (("allOf", all), ("anyOf", any), ("oneOf", any)):
        options = schema.get(key)
        if (
            isinstance(options, list)
            and options
            and not need(matches_schema(value, s, root, deeper) for s in options)
        ):
            return False
    if isinstance(value, dict):
        return _object_fits(value, schema, root, deeper)
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, Mapping | bool):
            return all(matches_schema(v, items, root, deeper) for v in value)
    return True


def _object_fits(value: dict[str, Any], schema: Mapping[str, Any], root: Any, depth: int) -> bool:
    required = schema.get("required")
    if isinstance(required, list) and any(isinstance(k, str) and k not in value for k in required):
        return False
    props = schema.get("properties")
    props = props if isinstance(props, Mapping) else {}
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        sub = props.get(key, extra)
        if not matches_schema(item, sub, root, depth):
            return False
    return True


def _resolve(root: Any, ref: str) -> Any:
    """A local ``#/...`` JSON pointer into ``root`` (``#/$defs/Name``); None when it leads nowhere."""
    if not ref.startswith("#"):
        return None
    node = root
    for raw in ref[1:].split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _is_type(value: Any, kind: Any) -> bool:
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    if isinstance(value, bool):
        return False
    if kind == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if kind == "number":
        return isinstance(value, int | float)
    return True  # a type this check does not know: not held against the value


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: ``true`` is not ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)
