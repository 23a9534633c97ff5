"""Validate request bodies against SGLang's own request models, as JSON Schemas built from the released
``sglang==0.5.23`` wheel by ``scripts/sglang_schemas.py`` (``tests/data/sglang/``, provenance there).

``strict=True`` (the default) closes every object schema that declares ``properties`` but says nothing about
other keys (``additionalProperties: false``). pydantic models and the ``GenerateReqInput`` dataclass
*ignore* unknown keys, so a misspelt field would reach SGLang and be dropped silently; the strict check
turns that into a test failure. Free-form objects (``Dict`` fields such as ``chat_template_kwargs``, a
tool's ``parameters``, a ``json_schema``'s ``schema``) say ``additionalProperties`` themselves and stay open.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

DATA = Path(__file__).resolve().parents[1] / "data" / "sglang"
MODELS = (
    "ChatCompletionRequest",
    "CompletionRequest",
    "EmbeddingRequest",
    "GenerateReqInput",
    "TokenizeRequest",
    "V1RerankReqInput",
    "LoadLoRAAdapterReqInput",
    "UnloadLoRAAdapterReqInput",
)


@cache
def schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DATA / f"{name}.schema.json").read_text(encoding="utf-8"))
    return loaded


def _close(node: Any) -> Any:
    if isinstance(node, list):
        return [_close(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _close(value) for key, value in node.items()}
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


@cache
def _validator(name: str, strict: bool) -> Draft202012Validator:
    chosen = _close(copy.deepcopy(schema(name))) if strict else schema(name)
    return Draft202012Validator(chosen)


def errors(name: str, body: Any, *, strict: bool = True) -> list[str]:
    """Every violation of ``name``'s schema by ``body`` (empty: valid)."""
    found = _validator(name, strict).iter_errors(body)
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in found]


def validate(name: str, body: Any, *, strict: bool = True) -> None:
    problems = errors(name, body, strict=strict)
    assert not problems, f"{name} refuses the body:\n  " + "\n  ".join(problems[:10]) + f"\n{body!r}"


def properties(name: str, sub: str | None = None) -> set[str]:
    """The field names of ``name`` (or of its ``$defs`` entry ``sub``)."""
    node = schema(name)["$defs"][sub] if sub else schema(name)
    return set(node["properties"])
