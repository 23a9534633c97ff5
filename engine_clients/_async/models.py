"""A client's models and LoRA adapters: list, load and unload them, and what ``adapter=`` reads first.

Every engine's routes and answers are in its dialect (``dialects/adapters.py`` for the OpenAI-compatible
defaults, ``dialects/llamacpp_models.py`` for llama-server's adapters and router mode); this is the I/O.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from .._client_core import ClientCore
from .._model_types import AdapterInfo
from .._model_types import ModelInfo
from ..errors import EngineError
from ..errors import ModelRequiredError
from ..errors import NotFoundError
from ..errors import retyped
from ..types import StreamEvent

__all__ = ["AsyncModelsAPI"]


class AsyncModelsAPI(ClientCore):
    """``models``, ``load_model``, ``unload_model``, ``adapters``, ``load_adapter``, ``unload_adapter``."""

    async def amodels(self) -> list[ModelInfo]:
        """The models the server serves, each with its state: ``loaded``, ``loading``, ``unloaded``, ...
        (llama-server in router mode; vLLM lists its base model and, with ``parent`` set, its adapters;
        servers that load their models at start report ``loaded``)."""
        http = self.dialect.models_request()
        return self.dialect.parse_models(await self.async_transport.request(http))

    async def aload_model(self, name: str, *, wait: bool = True) -> None:
        """Load model ``name`` (llama-server router mode: ``POST /models/load``); with ``wait`` (default),
        return once it is ready (bounded by ``Timeouts.load``). Loading a model that is loaded is a no-op.
        A router also loads a model on its first request, and evicts the least recently used one beyond
        ``--models-max``. Engines without runtime loading raise InvalidRequestError."""
        try:
            await self.async_transport.request(self.dialect.build_load_model(name))
        except EngineError as err:
            if not self.dialect.model_action_done(err):
                raise
        ready = self.dialect.model_ready_request(name) if wait else None
        if ready is not None:
            await self.async_transport.request(ready, timeout=self.timeouts.load)

    async def aunload_model(self, name: str) -> None:
        """Unload model ``name`` (llama-server router mode: ``POST /models/unload``; its instance stops in
        the background, within about a second). Unloading a model that is not loaded is a no-op."""
        try:
            await self.async_transport.request(self.dialect.build_unload_model(name))
        except EngineError as err:
            if not self.dialect.model_action_done(err):
                raise

    async def aadapters(self, *, model: str | None = None) -> list[AdapterInfo]:
        """The LoRA adapters the server serves (vLLM and SGLang: ``/v1/models`` entries with a ``parent``;
        llama.cpp: ``/lora-adapters``, on a router those of ``model``). TGI does not list its adapters
        (InvalidRequestError). The names are what ``adapter=`` takes."""
        http = self.dialect.adapters_request(model or self.model)
        adapters = self.dialect.parse_adapters(await self.async_transport.request(http))
        if self.dialect.adapter_table_needed:
            self._remember_adapters(model, adapters)
        return adapters

    async def aload_adapter(self, name: str, path: str) -> None:
        """Load the adapter at ``path`` (a directory or file on the *server*) as ``name`` (vLLM: needs
        ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``; SGLang). Engines that load adapters only at start raise
        InvalidRequestError; vLLM answers an adapter already loaded with BadRequestError, a missing path
        with NotFoundError."""
        await self.async_transport.request(self.dialect.build_load_adapter(name, path))
        self._forget_adapters()

    async def aunload_adapter(self, name: str) -> None:
        """Unload adapter ``name`` (vLLM, SGLang); requests for it then raise AdapterNotFoundError."""
        await self.async_transport.request(self.dialect.build_unload_adapter(name))
        self._forget_adapters()

    # -- what the calls need -------------------------------------------------------------------------
    async def _aknow_adapters(self, adapter: str | None, model: str | None) -> None:
        """Read the server's adapters once, where the dialect spells a choice by server-side id."""
        if self._adapters_unread(adapter, model):
            await self.aadapters(model=model)

    async def _awith_models(self, err: ModelRequiredError) -> ModelRequiredError:
        """``err`` with the models the server lists named in it (unchanged if listing them fails)."""
        try:
            names = tuple(m.id for m in await self.amodels())
        except EngineError:
            return err
        listed = ", ".join(names) or "none listed"
        return retyped(err, ModelRequiredError, f"{err.message} (its models: {listed})", models=names)

    async def _achecked(
        self, events: AsyncIterator[StreamEvent], adapter: str | None
    ) -> AsyncIterator[StreamEvent]:
        """``events`` of a request for ``adapter``, with a "no such model" refusal naming the adapter (and a
        router's "model name is missing" its models, as non-streamed calls do)."""
        try:
            async for event in events:
                yield event
        except ModelRequiredError as err:
            raise await self._awith_models(err) from err
        except NotFoundError as err:
            missing = self.dialect.adapter_error(err, adapter) if adapter is not None else None
            if missing is None:
                raise
            raise missing from err
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()
