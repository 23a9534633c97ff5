"""The chat models' ``profile``: langchain-core's :class:`ModelProfile`, filled from what the server reports.

``profile`` is a field langchain-core sets while the model is constructed, when no server must be contacted.
So the model gets a :class:`LazyProfile`: a dict that asks the server (``client.info()``, once) the first time
a key is looked up (``get``, ``[]``, ``in``; ``create_agent`` reads ``profile.get("structured_output")`` to
choose ``ProviderStrategy``). Iterating, ``len`` and truth show what has been read so far, without asking:
langchain-core's serialization (tracing) tests the field's truth on every call. A server that cannot be
reached leaves it empty and is asked again next time.

One key is this package's own: ``constrained_tool_arguments`` (from ``EngineInfo``), True when the engine
holds a forced tool call's arguments to the tool's schema, so ``with_structured_output(...,
method="function_calling")`` gives schema-valid arguments (vLLM, llama.cpp, TGI); False where it cannot (use
``method="json_schema"`` there); absent when not known.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain_core.language_models.model_profile import ModelProfile

from engine_clients import EngineInfo

__all__ = ["LazyProfile", "profile_from_info"]


def profile_from_info(info: EngineInfo) -> ModelProfile:
    """The capabilities the server reported (keys it said nothing about are left out)."""
    found: dict[str, Any] = {
        "max_input_tokens": info.max_input_tokens,
        "max_output_tokens": info.max_output_tokens,
        "image_inputs": info.image_inputs,
        # every engine downloads http(s) image URLs itself
        "image_url_inputs": info.image_inputs,
        "audio_inputs": info.audio_inputs,
        "tool_calling": info.tool_calling,
        "tool_choice": info.tool_calling,
        "structured_output": info.structured_output,
        "constrained_tool_arguments": info.constrained_tool_arguments,
        "reasoning_output": info.reasoning,
    }
    profile: dict[str, Any] = {"text_inputs": True, "text_outputs": True}
    profile.update({k: v for k, v in found.items() if v is not None})
    return profile  # type: ignore[return-value]


class LazyProfile(dict):  # type: ignore[type-arg]
    """A :class:`ModelProfile` read from the server on first use (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loader: Callable[[], EngineInfo | None] | None = None

    def attach(self, loader: Callable[[], EngineInfo | None]) -> None:
        self._loader = loader

    def _load(self) -> None:
        loader = self._loader
        if loader is None:
            return
        info = loader()
        if info is not None:
            self._loader = None
            for key, value in profile_from_info(info).items():
                super().setdefault(key, value)  # what the user put in the dict wins

    def __getitem__(self, key: Any) -> Any:
        self._load()
        return super().__getitem__(key)

    def get(self, key: Any, default: Any = None) -> Any:
        self._load()
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self._load()
        return super().__contains__(key)

    def __repr__(self) -> str:
        return f"LazyProfile({super().__repr__()}{', not read yet' if self._loader else ''})"

    def __reduce__(self) -> Any:
        # pickles and deep copies carry what was read so far, never the loader (it holds the model)
        return (dict, (dict(super().items()),))
