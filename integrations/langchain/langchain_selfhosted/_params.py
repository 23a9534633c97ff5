"""Sampling fields of vLLM and llama.cpp, the same on their chat and text routes (TGI's differ per route
and are declared on ``ChatTGI`` and ``TGILLM``)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel

from ._base import SAMPLING

__all__ = ["LlamaCppParams", "VLLMParams"]


class VLLMParams(BaseModel):
    top_k: Annotated[int | None, SAMPLING] = None
    min_p: Annotated[float | None, SAMPLING] = None
    repetition_penalty: Annotated[float | None, SAMPLING] = None
    min_tokens: Annotated[int | None, SAMPLING] = None
    ignore_eos: Annotated[bool | None, SAMPLING] = None
    structured_outputs: Annotated[dict[str, Any] | None, SAMPLING] = None
    """vLLM's ``structured_outputs`` object, e.g. ``{"regex": ...}`` or ``{"choice": [...]}``."""


class LlamaCppParams(BaseModel):
    top_k: Annotated[int | None, SAMPLING] = None
    min_p: Annotated[float | None, SAMPLING] = None
    typical_p: Annotated[float | None, SAMPLING] = None
    repetition_penalty: Annotated[float | None, SAMPLING] = None
    """Sent as llama.cpp's ``repeat_penalty``."""
    n_probs: Annotated[int | None, SAMPLING] = None
    cache_prompt: Annotated[bool | None, SAMPLING] = None
    id_slot: Annotated[int | None, SAMPLING] = None
    grammar: Annotated[str | None, SAMPLING] = None
    """A GBNF grammar constraining every answer."""
    json_schema: Annotated[dict[str, Any] | None, SAMPLING] = None
    """A JSON schema constraining every answer."""
