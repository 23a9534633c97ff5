"""The checks of ``engine-clients doctor`` past plain chat: structured output, the reasoning split, images,
embeddings (and mixed-length batches), rerank, tokenize; and :data:`CHECKS`, the order they run in."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from ..dialects.fixes import fix_for
from ..errors import EngineError
from ..errors import InvalidRequestError
from ..errors import UnsupportedInputError
from ..types import Grammar
from ..types import Regex
from .chat import SHORT
from .chat import _add
from .chat import _failed
from .chat import _needs_chat
from .chat import _quote
from .chat import check_chat
from .chat import check_info
from .chat import check_stream
from .chat import check_tools
from .core import Session
from .core import _short

__all__ = ["CHECKS", "TINY_PNG"]

CITY_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
}
# a 1x1 PNG
TINY_PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJ"
    "RU5ErkJggg=="
)


def check_structured(s: Session, need: int | None) -> None:
    if not _needs_chat(s, "structured_output", "structured output"):
        return
    formats: list[tuple[str, Any, Callable[[str], bool]]] = [
        ("json_schema", CITY_SCHEMA, _city_json),
        ("regex", Regex(r"(yes|no)"), lambda text: re.fullmatch(r"(yes|no)", text.strip()) is not None),
        ("grammar", Grammar('root ::= "yes" | "no"'), lambda text: text.strip() in ("yes", "no")),
    ]
    with s.client() as client:
        for name, fmt, valid in formats:
            label = f"structured output: {name}"
            try:
                r = client.chat(
                    "Name a city and its population.", response_format=fmt, max_tokens=64, temperature=0
                )
            except InvalidRequestError as exc:
                if not isinstance(exc, UnsupportedInputError) and exc.status_code is None:
                    _add(s, "structured_output", label, "skip", _short(exc))
                    continue
                _failed(s, "structured_output", label, exc)
                continue
            except EngineError as exc:
                _failed(s, "structured_output", label, exc)
                continue
            if valid(r.content):
                _add(s, "structured_output", label, "ok", f"constrained: {_quote(r.content)}")
            elif r.reasoning or "think>" in r.content:
                seen = f"the constrained text became thinking: {_quote(r.reasoning or r.content)}"
                _add(s, "structured_output", label, "warn", seen + " (send thinking=False with constraints)")
            else:
                seen = f"not constrained: {_quote(r.content)}"
                _add(s, "structured_output", label, "fail", seen, fix_for(s.engine, "structured_output"))


def _city_json(text: str) -> bool:
    try:
        value = json.loads(text)
    except ValueError:
        return False
    return (
        isinstance(value, dict)
        and isinstance(value.get("city"), str)
        and isinstance(value.get("population"), int)
    )


def check_reasoning(s: Session, need: int | None) -> None:
    """With the client's ``<think>`` splitter off: thinking in ``reasoning`` was split by the server."""
    label = "reasoning split"
    if not _needs_chat(s, "reasoning", label):
        return
    with s.client() as client:
        try:
            r = client.chat("Say hello.", thinking=True, max_tokens=64, temperature=0)
        except InvalidRequestError as exc:
            if exc.status_code is not None:
                _failed(s, "reasoning", label, exc)
                return
            r = None  # the engine takes no thinking control (TGI): ask plainly
        except EngineError as exc:
            _failed(s, "reasoning", label, exc)
            return
        if r is None:
            try:
                r = client.chat("Say hello.", max_tokens=64, temperature=0)
            except EngineError as exc:
                _failed(s, "reasoning", label, exc)
                return
    if r.reasoning:
        _add(s, "reasoning", label, "ok", f"split by the server: thinking {_quote(r.reasoning)}")
    elif "</think>" in r.content:
        fix = fix_for(s.engine, "reasoning")
        seen = "the thinking is left in the content (<think>…</think>); the client splits it off"
        _add(s, "reasoning", label, "warn" if fix else "ok", seen, fix)
    else:
        _add(
            s,
            "reasoning",
            label,
            "skip",
            "no thinking in the answer (not a reasoning model, or it did not think)",
        )


def check_images(s: Session, need: int | None) -> None:
    label = "images"
    if not _needs_chat(s, "images", label):
        return
    message = {
        "role": "user",
        "content": [
            {"type": "text", "text": "Describe it."},
            {"type": "image_url", "image_url": {"url": TINY_PNG}},
        ],
    }
    with s.client() as client:
        try:
            r = client.chat([message], **SHORT)
        except EngineError as exc:
            _failed(s, "images", label, exc)
            return
    usage = f" ({r.usage.prompt_tokens} prompt tokens)" if r.usage else ""
    _add(s, "images", label, "ok", f"a 1x1 PNG was read{usage}")


def _cos(a: list[float], b: list[float]) -> float:
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(x * x for x in b))
    if na == 0 or nb == 0:
        return 0.0 if na != nb else 1.0
    return sum(x * y for x, y in zip(a, b, strict=True)) / (na * nb)


def check_embeddings(s: Session, need: int | None) -> None:
    label = "embeddings"
    with s.client() as client:
        embed = getattr(client, "embed", None)
        if embed is None:
            _add(
                s,
                "embeddings",
                label,
                "fail",
                f"{s.engine} serves no embeddings",
                fix_for(s.engine, "embeddings"),
            )
            return
        try:
            batch = embed(["python code", "weather in paris"], batch_size=8).vectors
            alone = embed(["weather in paris"], batch_size=8).vectors[0]
        except EngineError as exc:
            _failed(s, "embeddings", label, exc)
            return
    _add(s, "embeddings", label, "ok", f"{len(batch)} vectors of {len(batch[0])} dimensions")
    similarity = _cos(batch[1], alone)
    if similarity >= 0.999:
        _add(
            s,
            "embeddings_batch",
            "embeddings: mixed lengths in one batch",
            "ok",
            "the same vector in a batch as alone",
        )
    else:
        seen = (
            f"a text's vector differs in a batch of unequal lengths (cosine {similarity:.3f} to itself alone)"
        )
        _add(
            s,
            "embeddings_batch",
            "embeddings: mixed lengths in one batch",
            "fail",
            seen,
            fix_for(s.engine, "embeddings_batch"),
        )


def check_rerank(s: Session, need: int | None) -> None:
    label = "rerank"
    with s.client() as client:
        rerank = getattr(client, "rerank", None)
        if rerank is None:
            _add(s, "rerank", label, "fail", f"{s.engine} serves no reranking", fix_for(s.engine, "rerank"))
            return
        try:
            r = rerank("paris weather", ["weather in paris", "python code"], batch_size=8)
        except EngineError as exc:
            _failed(s, "rerank", label, exc)
            return
    best = r.results[0] if r.results else None
    seen = f"best: document {best.index} (score {best.score:.2f})" if best else "no results"
    _add(s, "rerank", label, "ok" if best else "fail", seen)


def check_tokenize(s: Session, need: int | None) -> None:
    with s.client() as client:
        try:
            tokens = client.tokenize("Hello world")
        except EngineError as exc:
            _failed(s, "tokenize", "tokenize", exc)
            return
    _add(s, "tokenize", "tokenize", "ok", f"'Hello world' is {len(tokens)} tokens")


CHECKS: list[tuple[str, Callable[[Session, int | None], None]]] = [
    ("info", check_info),
    ("chat", check_chat),
    ("streaming", check_stream),
    ("tools", check_tools),
    ("structured_output", check_structured),
    ("reasoning", check_reasoning),
    ("images", check_images),
    ("embeddings", check_embeddings),
    ("rerank", check_rerank),
    ("tokenize", check_tokenize),
]
