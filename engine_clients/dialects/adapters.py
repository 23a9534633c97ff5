"""LoRA adapters and the models a server hosts: the codec every dialect starts from (pure, no I/O).

The defaults are the OpenAI-compatible servers' (vLLM, SGLang's OpenAI routes): an adapter is selected by
sending its name as ``model``, ``GET /v1/models`` lists the base model and the adapters (entries with a
``parent``), and nothing is loaded or unloaded at runtime unless the dialect names the routes
(``load_adapter_path``...). Engines that spell it otherwise override one method each: llama.cpp
(``llamacpp_models.py``: ``lora`` ids from ``/lora-adapters``, router mode), TGI (``adapter_id``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from typing import ClassVar

from .._model_types import AdapterInfo
from .._model_types import ModelInfo
from .._model_types import ModelState
from .._requests import AdapterChoice
from ..errors import AdapterNotFoundError
from ..errors import EngineError
from ..errors import NotFoundError
from ..errors import retyped
from .base import SHAPE_ERRORS
from .base import Dialect
from .base import HttpRequest

__all__ = ["AdapterCodec", "adapter_named", "model_state"]

_STATES: frozenset[str] = frozenset(
    ("loaded", "loading", "unloaded", "sleeping", "downloading", "downloaded", "failed")
)


def model_state(value: Any) -> ModelState:
    """A server's state word as a :data:`ModelState` (``"unknown"`` for one this package does not know)."""
    return value if isinstance(value, str) and value in _STATES else "unknown"  # type: ignore[return-value]


def adapter_named(name: str, known: tuple[AdapterInfo, ...]) -> AdapterInfo | None:
    """The adapter ``name`` designates: its name, its path, its file name (with or without ``.gguf``) or,
    on llama.cpp, its numeric id."""
    for a in known:
        if name == a.name:
            return a
    for a in known:
        if a.path and (name == a.path or name == a.path.rsplit("/", 1)[-1]):
            return a
        if a.path and name == a.path.rsplit("/", 1)[-1].removesuffix(".gguf"):
            return a
        if a.id is not None and name == str(a.id):
            return a
    return None


class AdapterCodec(Dialect):
    """Adapter selection and listing, model listing and loading: OpenAI-compatible defaults."""

    # The routes that load/unload an adapter at runtime, taking ``{"lora_name", "lora_path"}`` and
    # ``{"lora_name"}`` (None: this engine cannot; vLLM needs VLLM_ALLOW_RUNTIME_LORA_UPDATING=True).
    load_adapter_path: ClassVar[str | None] = None
    unload_adapter_path: ClassVar[str | None] = None
    # The dialect spells an adapter by a server-side id, so the client reads the server's adapters once
    # (``adapters_request``) and passes them in ``AdapterChoice.known``.
    adapter_table_needed: ClassVar[bool] = False
    # A request without ``model`` may be refused because the server hosts several models (llama.cpp's
    # router mode): the client then lists them into the ModelRequiredError.
    routes_by_model: ClassVar[bool] = False

    # -- selecting an adapter per request ---------------------------------------------------------
    def apply_adapter(self, body: dict[str, Any], choice: AdapterChoice | None) -> None:
        """Select ``choice`` in a chat or completions ``body``: OpenAI-compatible servers serve each adapter
        as a model of its own name (vLLM: ``--lora-modules name=path``)."""
        if choice is None:
            return
        self.refuse_scale(choice)
        body["model"] = choice.name

    def refuse_scale(self, choice: AdapterChoice) -> None:
        if choice.scale is not None and choice.scale != 1.0:
            raise self.unsupported(
                f"adapter_scale={choice.scale!r} (it applies an adapter at full strength; scales are a"
                " llama.cpp feature)"
            )

    def adapter_missing(self, name: str, known: tuple[AdapterInfo, ...]) -> AdapterNotFoundError:
        names = tuple(a.name for a in known)
        served = ", ".join(repr(n) for n in names) if names else "none"
        return AdapterNotFoundError(
            f"this server has no adapter {name!r} (it serves: {served})",
            adapter=name,
            available=names,
            engine=self.engine,
        )

    def adapter_error(self, err: EngineError, adapter: str) -> AdapterNotFoundError | None:
        """The typed error when ``err``, the answer to a request for ``adapter``, says the server has no
        such model: OpenAI-compatible servers serve adapters as models (vLLM 0.32: 404 "The model `x` does
        not exist. Valid aliases: ..."). None: ``err`` says something else."""
        if not isinstance(err, NotFoundError) or isinstance(err, AdapterNotFoundError):
            return None
        message = f"{err.message} (no adapter {adapter!r} on this server: see client.adapters())"
        return retyped(err, AdapterNotFoundError, message, adapter=adapter)

    # -- listing ----------------------------------------------------------------------------------
    def adapters_request(self, model: str | None = None) -> HttpRequest:
        """The request whose answer :meth:`parse_adapters` reads (``model``: the base model, where the
        server hosts several)."""
        return HttpRequest("GET", "/v1/models")

    def parse_adapters(self, body: Any) -> list[AdapterInfo]:
        """``/v1/models`` entries with a ``parent`` (vLLM, SGLang): adapters served on that base model."""
        return [
            AdapterInfo(name=m.id, path=_str(m.raw.get("root")), parent=m.parent, raw=m.raw)
            for m in self.parse_models(body)
            if m.parent is not None
        ]

    def models_request(self) -> HttpRequest:
        return HttpRequest("GET", "/v1/models")

    def parse_models(self, body: Any) -> list[ModelInfo]:
        """OpenAI-style ``{"data": [{"id", "parent"?, "max_model_len"?}]}``: every model is loaded."""
        try:
            data = body.get("data") if isinstance(body, Mapping) else None
            if not isinstance(data, list):
                raise self.malformed(TypeError("no data list"), body)
            out = []
            for entry in data:
                if not isinstance(entry, Mapping) or not isinstance(entry.get("id"), str):
                    continue
                out.append(self.model_entry(entry))
            return out
        except EngineError:
            raise
        except SHAPE_ERRORS as exc:
            raise self.malformed(exc, body) from None

    def model_entry(self, entry: Mapping[str, Any]) -> ModelInfo:
        limit = entry.get("max_model_len")
        return ModelInfo(
            id=entry["id"],
            state="loaded",
            parent=_str(entry.get("parent")),
            context_length=limit if isinstance(limit, int) and not isinstance(limit, bool) else None,
            raw=dict(entry),
        )

    # -- loading and unloading --------------------------------------------------------------------
    def build_load_adapter(self, name: str, path: str) -> HttpRequest:
        if self.load_adapter_path is None:
            raise self.unsupported("loading adapters at runtime (start the server with them)")
        return HttpRequest("POST", self.load_adapter_path, {"lora_name": name, "lora_path": path}, text=True)

    def build_unload_adapter(self, name: str) -> HttpRequest:
        if self.unload_adapter_path is None:
            raise self.unsupported("unloading adapters at runtime")
        return HttpRequest("POST", self.unload_adapter_path, {"lora_name": name}, text=True)

    def build_load_model(self, name: str) -> HttpRequest:
        raise self.unsupported("loading models at runtime (it serves the models it was started with)")

    def build_unload_model(self, name: str) -> HttpRequest:
        raise self.unsupported("unloading models at runtime")

    def model_ready_request(self, name: str) -> HttpRequest | None:
        """A request the server answers once model ``name`` is ready (None: loading is synchronous)."""
        return None

    def model_action_done(self, err: EngineError) -> bool:
        """Whether ``err``, the answer to a load or unload, says the model already is in the asked state."""
        return False


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None
