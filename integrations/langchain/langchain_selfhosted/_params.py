"""Sampling fields of vLLM, llama.cpp and SGLang, the same on their chat and text routes (TGI's differ per
route and are declared on ``ChatTGI`` and ``TGILLM``)."""

from __future__ import annotations

from typing import Annotated
from typing import Any

from pydantic import BaseModel

from ._base import SAMPLING

__all__ = ["LlamaCppParams", "SGLangParams", "VLLMParams"]


class _SharedParams(BaseModel):
    """The sampling extras that vLLM, llama.cpp and SGLang all read."""

    top_k: Annotated[int | None, SAMPLING] = None
    min_p: Annotated[float | None, SAMPLING] = None
    repetition_penalty: Annotated[float | None, SAMPLING] = None
    """Sent as llama.cpp's ``repeat_penalty``."""


class VLLMParams(_SharedParams):
    min_tokens: Annotated[int | None, SAMPLING] = None
    ignore_eos: Annotated[bool | None, SAMPLING] = None
    structured_outputs: Annotated[dict[str, Any] | None, SAMPLING] = None
    """vLLM's ``structured_outputs`` object, e.g. ``{"regex": ...}`` or ``{"choice": [...]}``."""


class LlamaCppParams(_SharedParams):
    typical_p: Annotated[float | None, SAMPLING] = None
    n_probs: Annotated[int | None, SAMPLING] = None
    """Return the probabilities of the top ``n_probs`` tokens at each generated token."""
    cache_prompt: Annotated[bool | None, SAMPLING] = None
    """Reuse the KV cache of the prompt prefix a slot already holds (llama-server's default: on)."""
    id_slot: Annotated[int | None, SAMPLING] = None
    """The server slot to run in, and whose prompt cache to use (-1: any idle slot)."""
    grammar: Annotated[str | None, SAMPLING] = None
    """A GBNF grammar constraining every answer."""
    json_schema: Annotated[dict[str, Any] | None, SAMPLING] = None
    """A JSON schema constraining every answer."""


class SGLangParams(_SharedParams):
    """The sampling extras SGLang reads on both its chat route (``ChatCompletionRequest``) and ``/generate``
    (``SamplingParams``). Output constraints go per call: ``response_format=Regex(...)`` / ``Grammar(...)``
    (``engine_clients``) become SGLang's ``regex`` / ``ebnf``, a JSON schema its ``response_format`` (chat)
    or ``json_schema`` (``/generate``)."""

    min_tokens: Annotated[int | None, SAMPLING] = None
    ignore_eos: Annotated[bool | None, SAMPLING] = None
    stop_token_ids: Annotated[list[int] | None, SAMPLING] = None
    stop_regex: Annotated[str | list[str] | None, SAMPLING] = None
    """Stop where the output matches this regular expression (or any of these)."""
