"""Validate request/response bodies against TGI's OpenAPI 3.0.3 document (``tests/data/tgi-openapi.json``).

What the document does, and what this module does about it (checked by ``tests/unit/test_tgi_fixtures.py``):

1. **No schema sets ``additionalProperties``** (the key does not occur in the file), and TGI's serde types
   do not deny unknown fields, so a misspelled field passes the schema and is silently dropped by the
   server. ``strict=True`` therefore also rejects object keys that no applicable schema declares: it walks
   ``properties``, ``items``, ``$ref``, every ``allOf`` part and the ``oneOf``/``anyOf`` branches the value
   matches. Free-form schemas (no ``properties``, e.g. a tool's JSON-schema ``arguments``/``parameters`` or
   a grammar ``value``) are not walked.
2. utoipa writes ``nullable: true`` beside ``allOf`` with no ``type`` (``usage``/``logprobs`` of chat
   chunks, ``details`` of ``/generate``, ``response_format``, ``tool_choice``, ``stream_options``,
   ``grammar``). OAS 3.0.3 gives ``nullable`` meaning only next to ``type``, so ``OAS30Validator`` would
   reject every recorded chunk's ``"usage": null``. Such nodes are rewritten in memory to ``anyOf: [<node>,
   {enum: [null]}]`` (TGI's ``Option``).
3. ``discriminator`` (``GrammarType``, ``MessageChunk``, ``Completion``) has no ``mapping`` over inline
   branches; the validator would then look up ``#/components/schemas/<value>``, which does not exist, and
   fail every ``response_format``. The discriminators are dropped in memory; the ``oneOf`` with
   ``enum``-typed ``type`` still selects the branch.
4. Numeric ``exclusiveMinimum`` (OAS 3.1 style in a 3.0 document) is read with draft-4 boolean semantics, so
   bounds such as ``temperature > 0`` or ``top_p > 0`` on ``/generate`` are not enforced (TGI answers 422).
5. ``tgi_compat=True`` (default for requests) first rewrites shapes TGI's deserializers accept but the
   document does not describe: tool ``function.parameters`` -> ``arguments`` (serde alias), grammar /
   ``response_format`` type ``json_object`` -> ``json`` (serde alias), a bare tool name as ``tool_choice``
   -> ``{"function": {"name"}}``, the typed object ``{"type": "function", "function": ...}`` loses its
   ``type`` (TGI's own integration tests send it), ``max_completion_tokens`` -> ``max_tokens`` (alias,
   ENGINES.md §2.4), a string ``prompt`` on ``/v1/completions`` -> one-element list; dropped as ignored by
   TGI: ``tool_call_id`` on ``role: tool`` messages (absent from the request ``Message`` schema),
   ``"content": null`` beside ``tool_calls`` (the untagged ``MessageBody`` falls through to its tool-call
   branch) and ``strict`` in a ``json_schema`` grammar value (absent from ``JsonSchemaConfig``; TGI's own
   tests send it). ``tgi_compat=False`` validates the body exactly as given.
6. Responses: the ``object`` key of chat/completion bodies is a serde enum tag that the schemas omit, so
   strict response checks allow a top-level ``object`` by default (``allow_extra``).

``allow_extra`` takes key paths: dotted names with ``*`` for any list index, e.g. ``"object"`` or
``"messages.*.cache_control"``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Collection
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema.exceptions import ValidationError
from openapi_schema_validator import OAS30Validator
from referencing import Registry
from referencing import Resource
from referencing.jsonschema import DRAFT4

SPEC_PATH = Path(__file__).resolve().parents[1] / "data" / "tgi-openapi.json"
RESPONSE_ALLOW_EXTRA: tuple[str, ...] = ("object",)
_URI = "urn:tgi-openapi"
_MAX_ERRORS = 10


def _normalise(node: Any) -> Any:
    if isinstance(node, list):
        return [_normalise(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _normalise(value) for key, value in node.items() if key != "discriminator"}
    if out.get("nullable") is True and "type" not in out:
        del out["nullable"]
        return {"anyOf": [out, {"enum": [None]}]}
    return out


@cache
def spec() -> dict[str, Any]:
    """The OpenAPI document after the in-memory rewrites 2 and 3 of the module docstring."""
    result: dict[str, Any] = _normalise(json.loads(SPEC_PATH.read_text(encoding="utf-8")))
    return result


@cache
def _registry() -> Registry[Any]:
    registry: Registry[Any] = Registry().with_resource(
        _URI, Resource.from_contents(spec(), default_specification=DRAFT4)
    )
    return registry


@cache
def _validator(pointer: str) -> Any:
    return OAS30Validator({"$ref": f"{_URI}#{pointer}"}, registry=_registry())


def _esc(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _node(pointer: str) -> Any:
    node: Any = spec()
    for raw in pointer.split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _operation(path: str, method: str | None) -> tuple[str, dict[str, Any]]:
    item = spec()["paths"].get(path)
    if item is None:
        raise ValueError(f"{path!r} is not a path of the spec; known: {sorted(spec()['paths'])}")
    if method is None:
        if len(item) != 1:
            raise ValueError(f"{path} has several operations {sorted(item)}; pass method=")
        method = next(iter(item))
    if method.lower() not in item:
        raise ValueError(f"{path} has no {method.upper()} operation; it has {sorted(item)}")
    return f"/paths/{_esc(path)}/{method.lower()}", item[method.lower()]


def request_schema_pointer(path: str, method: str = "post") -> str:
    """JSON pointer (into ``spec()``) of the JSON request-body schema of ``method path``."""
    base, op = _operation(path, method)
    if "application/json" not in op.get("requestBody", {}).get("content", {}):
        raise ValueError(f"{method.upper()} {path} has no application/json request body in the spec")
    return f"{base}/requestBody/content/application~1json/schema"


def response_schema_pointer(
    path: str, status: int | str, method: str | None = None, content_type: str | None = None
) -> str:
    """JSON pointer of the response schema; ``content_type`` defaults to JSON, else the only one declared."""
    base, op = _operation(path, method)
    response = op.get("responses", {}).get(str(status))
    if response is None:
        raise ValueError(f"{path} declares no {status} response; it has {sorted(op.get('responses', {}))}")
    content = response.get("content", {})
    if content_type is None:
        only = next(iter(content)) if len(content) == 1 else None
        content_type = only if only and "application/json" not in content else "application/json"
    if content_type not in content:
        raise ValueError(f"{path} {status} has no {content_type} schema; it has {sorted(content)}")
    return f"{base}/responses/{status}/content/{_esc(content_type)}/schema"


def _where(parts: Collection[Any]) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def _describe(error: ValidationError, depth: int = 0) -> list[str]:
    message = error.message if len(error.message) <= 160 else error.message[:157] + "..."
    lines = [f"{'    ' * depth}- {_where(error.absolute_path)}: {message}"]
    if error.context and depth < 2:
        for sub in sorted(error.context, key=lambda e: [str(p) for p in e.schema_path])[:6]:
            lines += _describe(sub, depth + 1)
    return lines


def _applicable(pointer: str, instance: Any) -> list[str]:
    """Pointers of every schema that applies to ``instance``: through $ref, allOf and matching oneOf/anyOf."""
    node = _node(pointer)
    if not isinstance(node, dict):
        return []
    if "$ref" in node:
        return _applicable(node["$ref"].split("#", 1)[1], instance)
    found = [pointer]
    for index in range(len(node.get("allOf", []))):
        found += _applicable(f"{pointer}/allOf/{index}", instance)
    for keyword in ("oneOf", "anyOf"):
        for index in range(len(node.get(keyword, []))):
            branch = f"{pointer}/{keyword}/{index}"
            if _validator(branch).is_valid(instance):
                found += _applicable(branch, instance)
    return found


def _undeclared(
    pointer: str, instance: Any, at: tuple[Any, ...], allow: Collection[str], out: list[str]
) -> None:
    schemas = [(p, _node(p)) for p in _applicable(pointer, instance)]
    if isinstance(instance, dict):
        declared: dict[str, list[str]] = {}
        for p, node in schemas:
            for key in node.get("properties", {}):
                declared.setdefault(key, []).append(f"{p}/properties/{_esc(key)}")
        closed = any("properties" in node for _, node in schemas) and not any(
            node.get("additionalProperties", False) is not False for _, node in schemas
        )
        for key, value in instance.items():
            where = (*at, key)
            if key in declared:
                for sub in declared[key]:
                    _undeclared(sub, value, where, allow, out)
            elif closed and ".".join("*" if isinstance(p, int) else p for p in where) not in allow:
                out.append(_where(where))
    elif isinstance(instance, list):
        for p, node in schemas:
            if "items" in node:
                for index, item in enumerate(instance):
                    _undeclared(f"{p}/items", item, (*at, index), allow, out)


def undeclared_keys(pointer: str, body: Any, allow_extra: Collection[str] = ()) -> list[str]:
    """Paths (``$.a[0].b``) of object keys in ``body`` that no schema applicable at that place declares."""
    out: list[str] = []
    _undeclared(pointer, body, (), frozenset(allow_extra), out)
    return sorted(set(out))


def _check(pointer: str, body: Any, what: str, strict: bool, allow_extra: Collection[str]) -> None:
    errors = sorted(_validator(pointer).iter_errors(body), key=lambda e: _where(e.absolute_path))
    if errors:
        lines = [line for error in errors[:_MAX_ERRORS] for line in _describe(error)]
        more = f"\n  ... and {len(errors) - _MAX_ERRORS} more" if len(errors) > _MAX_ERRORS else ""
        raise AssertionError(f"{what} does not match the TGI spec:\n" + "\n".join(lines) + more)
    if strict:
        extra = undeclared_keys(pointer, body, allow_extra)
        if extra:
            raise AssertionError(
                f"{what} has keys the TGI spec does not declare (strict): {', '.join(extra)}"
            )


def tgi_compat_request(body: Any) -> Any:
    """A copy of ``body`` with the accepted but undocumented shapes (item 5 above) in spec shape."""
    if not isinstance(body, dict):
        return body
    body = copy.deepcopy(body)
    for tool in body.get("tools") or []:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and "parameters" in function and "arguments" not in function:
            function["arguments"] = function.pop("parameters")
    choice = body.get("tool_choice")
    if isinstance(choice, str) and choice not in ("auto", "none", "required"):
        body["tool_choice"] = {"function": {"name": choice}}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        del choice["type"]
    params = body.get("parameters")
    for grammar in (body.get("response_format"), params.get("grammar") if isinstance(params, dict) else None):
        if isinstance(grammar, dict) and grammar.get("type") == "json_object":
            grammar["type"] = "json"
        if (
            isinstance(grammar, dict)
            and grammar.get("type") == "json_schema"
            and isinstance(grammar.get("value"), dict)
        ):
            grammar["value"].pop("strict", None)
    if "max_completion_tokens" in body and "max_tokens" not in body:
        body["max_tokens"] = body.pop("max_completion_tokens")
    if isinstance(body.get("prompt"), str):
        body["prompt"] = [body["prompt"]]
    for message in body.get("messages") or []:
        if isinstance(message, dict) and message.get("role") == "tool":
            message.pop("tool_call_id", None)
        if isinstance(message, dict) and "tool_calls" in message and message.get("content", "") is None:
            del message["content"]
    return body


def validate_request(
    path: str,
    body: Any,
    method: str = "post",
    *,
    strict: bool = False,
    tgi_compat: bool = True,
    allow_extra: Collection[str] = (),
) -> None:
    """Raise ``AssertionError`` unless ``body`` fits the request-body schema of ``method path``."""
    pointer = request_schema_pointer(path, method)
    checked = tgi_compat_request(body) if tgi_compat else body
    _check(pointer, checked, f"{method.upper()} {path} request body", strict, allow_extra)


def validate_response(
    path: str,
    status: int | str,
    body: Any,
    method: str | None = None,
    *,
    content_type: str | None = None,
    strict: bool = False,
    allow_extra: Collection[str] = RESPONSE_ALLOW_EXTRA,
) -> None:
    """Raise ``AssertionError`` unless ``body`` fits the ``status`` response schema of ``path``.

    For ``text/event-stream`` pass one event's JSON (a chat chunk, a ``/generate_stream`` event).
    ``method`` defaults to the path's only operation.
    """
    pointer = response_schema_pointer(path, status, method, content_type)
    _check(pointer, body, f"{path} {status} response", strict, allow_extra)
