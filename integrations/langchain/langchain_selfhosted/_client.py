"""How a model reaches its server: which engine it talks to, the engine client it talks through (the one
given, a client or an ``EnginePool``, else one built on first use: per event loop for async calls, and again
when a field it was built from changes), and the model name discovered from the server.

:class:`EngineClientMixin` holds only methods; the fields it reads are declared by
:class:`~langchain_selfhosted._base.EngineModelMixin`, the pydantic model that inherits it."""

from __future__ import annotations

import asyncio
import threading
import weakref
from typing import TYPE_CHECKING
from typing import Any
from typing import ClassVar

from engine_clients import BaseClient
from engine_clients import EngineError
from engine_clients import EngineInfo
from engine_clients import EngineUnavailableError
from engine_clients import ThinkTags
from engine_clients import TimeoutError
from engine_clients._wrapper_support import EngineClient
from engine_clients._wrapper_support import connection_kwargs
from engine_clients._wrapper_support import think_tags_for

if TYPE_CHECKING:
    from pydantic import SecretStr

__all__ = ["EngineClient", "EngineClientMixin"]

_lock = threading.Lock()


class _ClientState:
    """Per-instance runtime state. Never pickled or deep-copied with the model (clients hold open
    connections); only the discovered model name and the detected engine survive."""

    def __init__(
        self,
        discovered: str | None = None,
        done: bool = False,
        detected: dict[tuple[Any, ...], str] | None = None,
    ) -> None:
        self.key: tuple[Any, ...] | None = None
        self.client: BaseClient | None = None
        # httpx async pools are bound to the event loop that created them: one async client per loop.
        self.aclient: BaseClient | None = None
        self.aloop: weakref.ReferenceType[asyncio.AbstractEventLoop] | None = None
        self.discovered = discovered
        self.discovery_done = done
        self.info: EngineInfo | None = None  # what the server reported (capabilities for ``profile``)
        # auto mode: the engine detected per base_url; copies made by model_copy share this state
        self.detected: dict[tuple[Any, ...], str] = dict(detected or {})

    def __getstate__(self) -> dict[str, Any]:
        return {"discovered": self.discovered, "done": self.discovery_done, "detected": self.detected}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["discovered"], state["done"], state.get("detected"))  # type: ignore[misc]

    def __deepcopy__(self, memo: dict[int, Any]) -> _ClientState:
        return _ClientState(self.discovered, self.discovery_done, self.detected)  # (a copy of) detected


class EngineClientMixin:
    """The engine, the client and model discovery of :class:`~langchain_selfhosted._base.EngineModelMixin`."""

    if TYPE_CHECKING:  # fields of EngineModelMixin
        client_class: ClassVar[type[BaseClient]]
        base_url: str | None
        api_key: SecretStr | None
        model: str | None
        timeout: float | None
        max_retries: int
        default_headers: dict[str, str] | None
        http_backend: str | None
        split_thinking: bool
        think_tags: ThinkTags | None
        engine_client: EngineClient | None
        _state: _ClientState

    # -- engine --------------------------------------------------------------------------------------
    @classmethod
    def fixed_engine(cls) -> str | None:
        """This class's engine (``"tgi"``, ``"vllm"``, ``"llamacpp"``); None for the auto-mode classes."""
        client_cls = getattr(cls, "client_class", None)
        return client_cls.dialect_class.engine if client_cls is not None else None

    @classmethod
    def engine_name(cls) -> str:
        """``"tgi"``, ``"vllm"`` or ``"llamacpp"``; ``"auto"`` for the classes that detect it."""
        return cls.fixed_engine() or "auto"

    def _configured_engine(self) -> str | None:
        """The engine as configured (no detection): stable for the model's lifetime."""
        return self.fixed_engine()

    @property
    def active_engine(self) -> str | None:
        """The engine this model talks to: its class's, the given client's, or the one detected on first use
        (None until then)."""
        if self.engine_client is not None and self.engine_client.engine is not None:
            return self.engine_client.engine
        return self._known_engine()

    def _known_engine(self) -> str | None:
        """The engine of the clients this model builds, if known without I/O."""
        return self._configured_engine()

    def _resolve_engine(self) -> str:
        """The engine to build a client for (auto mode: detected here, with a few GETs, once)."""
        return self.engine_name()

    async def _aresolve_engine(self) -> str:
        return self._resolve_engine()

    def _client_key(self) -> tuple[Any, ...]:
        key = self.api_key.get_secret_value() if self.api_key else None
        headers = tuple(sorted((self.default_headers or {}).items()))
        tags = self._think_tags()
        return (self.base_url, key, self.model, self.timeout, self.max_retries, headers, tags)

    def _think_tags(self) -> ThinkTags | None:
        return think_tags_for(self.split_thinking, self.think_tags)

    def _client_kwargs(self) -> dict[str, Any]:
        return {**connection_kwargs(self), "think_tags": self._think_tags()}

    def _new_client(self, engine: str) -> BaseClient:
        return self.client_class(self.base_url, **self._client_kwargs())

    def _configure_client(self, client: BaseClient) -> BaseClient:
        """A client this model just built, set up further (the chat models: tool-call recovery)."""
        return client

    def _fresh(self) -> _ClientState:
        """The runtime state, reset when a field the client was built from changed (``model_copy``)."""
        state = self._state
        key = self._client_key()
        if state.key != key:
            with _lock:
                if state.key != key:
                    state.client = state.aclient = state.aloop = None
                    state.key = key
        return state

    @property
    def client(self) -> EngineClient:
        """The engine client (or pool) for synchronous calls: the one given, else created on first use
        (construction does no I/O; auto mode detects the engine here)."""
        if self.engine_client is not None:
            return self.engine_client
        state = self._fresh()
        if state.client is None:
            engine = self._resolve_engine()  # may probe the server: not under the lock
            with _lock:
                if state.client is None:
                    state.client = self._configure_client(self._new_client(engine))
        return state.client

    @property
    def async_client(self) -> EngineClient:
        """The engine client for the running event loop (auto mode: prefer ``await model._aclient()``, which
        detects the engine without blocking the loop)."""
        if self.engine_client is not None:
            return self.engine_client
        state = self._fresh()
        loop = asyncio.get_running_loop()
        if state.aclient is None or state.aloop is None or state.aloop() is not loop:
            state.aclient = self._configure_client(self._new_client(self._resolve_engine()))
            state.aloop = weakref.ref(loop)
        return state.aclient

    async def _aclient(self) -> EngineClient:
        """``async_client``, detecting the engine (auto mode) with async probes."""
        if self.engine_client is not None:
            return self.engine_client
        state = self._fresh()
        loop = asyncio.get_running_loop()
        if state.aclient is None or state.aloop is None or state.aloop() is not loop:
            engine = await self._aresolve_engine()
            state.aclient = self._configure_client(self._new_client(engine))
            state.aloop = weakref.ref(loop)
        return state.aclient

    # -- model discovery -----------------------------------------------------------------------------
    @property
    def model_name(self) -> str | None:
        """The configured model, else the one discovered from the server (None before first use)."""
        return self.model or self._state.discovered

    def _ensure_model(self) -> str | None:
        if self.model is None and not self._state.discovery_done:
            try:
                self._discovered(self.client.info())
            except EngineError as err:
                self._discovery_failed(err)
        return self.model_name

    async def _aensure_model(self) -> str | None:
        if self.model is None and not self._state.discovery_done:
            try:
                self._discovered(await (await self._aclient()).ainfo())
            except EngineError as err:
                self._discovery_failed(err)
        return self.model_name

    def _engine_info(self) -> EngineInfo | None:
        """The server's :class:`EngineInfo`, asked once; None while the server cannot be reached, a blank
        one when it has no discovery route."""
        state = self._state
        if state.info is None:
            try:
                self._discovered(self.client.info())
            except EngineError as err:
                self._discovery_failed(err)
                if state.discovery_done:
                    state.info = EngineInfo(engine=self._known_engine() or "", model=None, version=None)
        return state.info

    def _discovered(self, info: EngineInfo) -> None:
        self._state.discovered = info.model
        self._state.discovery_done = True
        self._state.info = info

    def _discovery_failed(self, err: EngineError) -> None:
        # Not fatal: metadata falls back to what responses carry. A server that did not answer gets
        # asked again next time; one without a discovery route does not.
        if not isinstance(err, EngineUnavailableError | TimeoutError):
            self._state.discovery_done = True
