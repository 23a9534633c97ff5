"""The engine client of :class:`~llama_index.llms.selfhosted.EngineLLM`: the one given (a client or an
``EnginePool``), else one built on first use, after detecting the engine in auto mode (probes that do not
block the event loop in async code). Copies of an LLM share its client (it holds the connections).

:class:`EngineClientMixin` holds only methods; the fields it reads are declared by ``EngineLLM``."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING
from typing import Any
from typing import ClassVar

import httpx

from engine_clients import BaseClient
from engine_clients import EnginePool
from engine_clients import ThinkTags
from engine_clients import adetect_engine
from engine_clients import client_class
from engine_clients import connect
from engine_clients import detect_engine
from engine_clients._wrapper_support import EngineClient
from engine_clients._wrapper_support import HistoryPolicy
from engine_clients._wrapper_support import chat_client_options
from engine_clients._wrapper_support import think_tags_for

if TYPE_CHECKING:
    from llama_index.core.bridge.pydantic import SecretStr

__all__ = ["EngineClient", "EngineClientMixin"]

_lock = threading.Lock()


class EngineClientMixin:
    """Building, adopting and closing the engine client (methods of ``EngineLLM``)."""

    if TYPE_CHECKING:  # declared on EngineLLM
        client_class: ClassVar[type[BaseClient]]
        base_url: str | None
        engine: str | None
        probe_timeout: float
        model: str | None
        api_key: SecretStr | None
        timeout: float | None
        max_retries: int
        headers: dict[str, str] | None
        http_backend: str | None
        split_thinking: bool
        think_tags: ThinkTags | None
        history: HistoryPolicy
        recover_tool_calls: bool
        _client: EngineClient | None
        _http: tuple[httpx.Client | None, httpx.AsyncClient | None]

    def _adopt_client(self, client: EngineClient) -> None:
        if not isinstance(client, BaseClient | EnginePool):
            raise TypeError(
                f"{type(self).__name__} needs an engine_clients client or EnginePool, got {client!r}"
            )
        if client.engine is not None and self.engine not in (None, client.engine):
            wanted = client_class(self.engine).__name__ if self.engine else ""
            raise TypeError(
                f"{type(self).__name__} is for {self.engine} (a {wanted} or an EnginePool of it), "
                f"got {client!r}"
            )
        if isinstance(client, EnginePool):
            self._client = client
            self.base_url = ",".join(client.replicas)  # as EnginePool reads them from <ENGINE>_BASE_URL
            self.engine = self.engine or client.engine
        else:
            self._adopt(client)

    def _adopt(self, client: BaseClient) -> BaseClient:
        """Use ``client`` and fill the fields it settled (URL from the environment, engine, model)."""
        self._client = client
        self.base_url = client.base_url
        self.engine = client.engine
        if self.model is None:
            self.model = client.model
        return client

    @classmethod
    def fixed_engine(cls) -> str | None:
        """The class's engine (``"tgi"``, ``"vllm"``, ``"llamacpp"``); None for ``EngineLLM`` (auto mode)."""
        dialect = getattr(cls.client_class, "dialect_class", None)
        return dialect.engine if dialect is not None else None

    def _new_client(self, engine: str | None) -> BaseClient:
        """A client for ``engine`` (no I/O: ``engine`` is known, or None and the environment names it), with
        this LLM's ``history`` policy and tool-call recovery."""
        http_client, async_http_client = self._http
        kwargs: dict[str, Any] = {
            "api_key": self.api_key,
            "model": self.model,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "headers": self.headers,
            "http_backend": self.http_backend,
            "think_tags": think_tags_for(self.split_thinking, self.think_tags),
            "history": self.history,
            "http_client": http_client,
            "async_http_client": async_http_client,
        }
        if self.fixed_engine() is not None:
            client = self.client_class(self.base_url, **kwargs)
        else:
            client = connect(self.base_url, engine=engine, **kwargs)
        return chat_client_options(client, self.recover_tool_calls)

    def _probe_args(self) -> tuple[str, dict[str, Any]]:
        assert self.base_url is not None  # a client is made at construction when there is none
        return self.base_url, {"api_key": self.api_key, "probe_timeout": self.probe_timeout}

    def _sync_client(self) -> EngineClient:
        """The client: the given one, else built on first use (auto mode: the engine is detected first)."""
        client = self._client
        if client is not None:
            return client
        engine = self.engine
        if engine is None:  # probing happens outside the lock
            url, kwargs = self._probe_args()
            engine = detect_engine(url, http_client=self._http[0], **kwargs)
        with _lock:
            return self._client or self._adopt(self._new_client(engine))

    async def _async_client(self) -> EngineClient:
        """``_sync_client`` for async code: detection probes do not block the event loop."""
        client = self._client
        if client is not None:
            return client
        engine = self.engine
        if engine is None:
            url, kwargs = self._probe_args()
            engine = await adetect_engine(url, http_client=self._http[1], **kwargs)
        with _lock:
            return self._client or self._adopt(self._new_client(engine))

    @property
    def client(self) -> EngineClient:
        """The underlying ``engine_clients`` client or pool (for ``health()``, ``tokenize()``, ``info()``...).
        In auto mode, reading it first detects the engine."""
        return self._sync_client()

    def _known_engine(self) -> str | None:
        """The engine, if known without I/O (a pool's once it has resolved its replicas)."""
        if self.engine is None and isinstance(self._client, EnginePool):
            return self._client.engine
        return self.engine

    def close(self) -> None:
        """Close the sync HTTP connections (the LLM stays usable: they reopen on demand)."""
        if self._client is not None:
            self._client.close()

    async def aclose(self) -> None:
        """Close the async and sync HTTP connections."""
        if self._client is not None:
            await self._client.aclose()
