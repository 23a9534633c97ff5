"""Validate request bodies against TEI's OpenAPI document (``tests/data/tei-openapi.json``).

Like ``openapi.py`` for TGI: ``nullable`` beside ``allOf`` is rewritten to ``anyOf [..., null]`` and
``discriminator`` is dropped (``openapi._normalise``). TEI's serde types do not deny unknown fields either,
so ``validate_request`` also rejects top-level keys the request schema does not declare.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from openapi_schema_validator import OAS30Validator
from referencing import Registry
from referencing import Resource
from referencing.jsonschema import DRAFT4

from .openapi import _normalise

SPEC_PATH = Path(__file__).resolve().parents[1] / "data" / "tei-openapi.json"
_URI = "urn:tei-openapi"


@cache
def spec() -> dict[str, Any]:
    result: dict[str, Any] = _normalise(json.loads(SPEC_PATH.read_text(encoding="utf-8")))
    return result


@cache
def _registry() -> Registry[Any]:
    return Registry().with_resource(_URI, Resource.from_contents(spec(), default_specification=DRAFT4))


def _schema(path: str) -> dict[str, Any]:
    op = spec()["paths"][path]["post"]
    schema: dict[str, Any] = op["requestBody"]["content"]["application/json"]["schema"]
    return schema


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec()["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def validate_request(path: str, body: Any) -> None:
    """Raise ``AssertionError`` unless ``body`` fits ``POST path``'s request schema, with no undeclared key."""
    schema = _schema(path)
    pointer = (
        "/paths/"
        + path.replace("~", "~0").replace("/", "~1")
        + "/post/requestBody/content/application~1json/schema"
    )
    validator = OAS30Validator({"$ref": f"{_URI}#{pointer}"}, registry=_registry())
    errors = list(validator.iter_errors(body))
    assert not errors, f"POST {path} body does not match the TEI spec: {[e.message for e in errors[:5]]}"
    declared = _resolve(schema).get("properties", {})
    extra = sorted(set(body) - set(declared))
    assert not extra, f"POST {path} body has keys the TEI spec does not declare: {extra}"
