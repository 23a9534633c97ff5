"""What ``client.models()`` and ``client.adapters()`` return: the models and LoRA adapters a server serves.

Kept apart from ``types.py`` (the per-request model) and re-exported from ``engine_clients``.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Literal
from typing import TypeAlias

__all__ = ["AdapterInfo", "ModelInfo", "ModelState"]

ModelState: TypeAlias = Literal[
    "loaded", "loading", "unloaded", "sleeping", "downloading", "downloaded", "failed", "unknown"
]
"""A model's state on the server. llama-server in router mode reports ``unloaded`` -> ``loading`` ->
``loaded`` (``sleeping`` after ``--sleep-idle-seconds``; ``downloading``/``downloaded`` for ``-hf`` models;
``failed`` when its instance exited with an error); servers that hold their models for their whole life
(vLLM, TGI, SGLang, a plain llama-server) report ``loaded``."""


@dataclass(slots=True)
class AdapterInfo:
    """A LoRA adapter a server serves.

    ``name`` is what ``adapter=`` takes: the adapter's model id on vLLM and SGLang; on llama.cpp the GGUF's
    ``adapter.lora.task_name`` or else its file name without ``.gguf`` (the path, the file name and the
    numeric ``id`` are accepted too). ``path`` is where the server loaded it from, ``parent`` the base model
    it applies to (vLLM, SGLang), ``scale`` the server-wide scale (llama.cpp: applied to requests that do
    not choose; ``--lora`` starts at 1.0, ``--lora-scaled FILE:0`` at 0) and ``id`` llama.cpp's index."""

    name: str
    path: str | None = None
    parent: str | None = None
    scale: float | None = None
    id: int | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ModelInfo:
    """A model a server lists, with its state.

    ``parent`` is set for a LoRA adapter listed as a model (vLLM: ``/v1/models`` entries with ``parent``; send
    its id as ``adapter=``). ``context_length`` is the context a request gets, when the server says (vLLM
    ``max_model_len``; llama-server ``n_ctx`` of a loaded model); ``aliases`` other names the server routes
    to this model (llama-server router mode)."""

    id: str
    state: ModelState = "loaded"
    parent: str | None = None
    context_length: int | None = None
    aliases: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def is_adapter(self) -> bool:
        return self.parent is not None
