"""What the chat models and the LLMs share: constructor fields, the lazily created engine client (or the one
given, a client or an ``EnginePool``), model discovery, the server's tokenizer and tracing parameters.
Engine-neutral: an engine class names its client class and declares its own sampling fields
(``Annotated[..., SAMPLING]``), nothing else; :class:`AutoEngineMixin` finds the engine on first use."""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from typing import Annotated, Any, ClassVar

from langchain_core.language_models import LangSmithParams
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, field_validator, model_validator

from engine_clients import (
    PROBE_TIMEOUT,
    BaseClient,
    EngineError,
    EngineInfo,
    EnginePool,
    EngineUnavailableError,
    ThinkTags,
    TimeoutError,
    adetect_engine,
    client_class,
    connect,
    detect_engine,
)

from .errors import translate_errors

__all__ = ["SAMPLING", "AutoEngineMixin", "EngineClient", "EngineModelMixin"]

EngineClient = BaseClient | EnginePool
"""What a model talks through: one engine client, or an ``EnginePool`` of replicas (same API)."""


class _Sampling:
    """Marks a field as a sampling parameter sent with every request under its own name (the engine
    layer maps names to wire fields and refuses names its engine does not have)."""

    def __repr__(self) -> str:
        return "SAMPLING"


SAMPLING = _Sampling()
_lock = threading.Lock()


def canonical_engine(name: str) -> str:
    """``"tgi"``, ``"vllm"`` or ``"llamacpp"`` for any name ``engine_clients`` knows (``"llama.cpp"``...);
    ``InvalidRequestError`` (a ``ValueError``) otherwise."""
    return client_class(name).dialect_class.engine


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


class EngineModelMixin(BaseModel):
    """Fields and plumbing shared by the chat models and the LLMs of every engine."""

    model_config = ConfigDict(protected_namespaces=(), populate_by_name=True, arbitrary_types_allowed=True)

    client_class: ClassVar[type[BaseClient]]
    """The engine client the wrapper drives (``TGIClient``, ``VLLMClient``, ``LlamaCppClient``); auto-mode
    classes have none."""

    base_url: str | None = None
    """Server URL; defaults to ``$<ENGINE>_BASE_URL`` (``TGI_BASE_URL``, ``VLLM_BASE_URL``, ...)."""
    api_key: SecretStr | None = None
    """Bearer token; defaults to ``$<ENGINE>_API_KEY``. Never shown in repr, serialized or pickled."""
    model: str | None = None
    """Model id. When omitted it is read from the server (once, on first use) for metadata and tracing."""
    timeout: float | None = None
    """Seconds; bounds the whole answer, and each stream chunk when streaming. None: the client's defaults."""
    max_retries: int = 2
    """Retries on connection errors, timeouts, 429 and 502/503/504 (before any output arrived)."""
    default_headers: dict[str, str] | None = None
    """Extra HTTP headers sent with every request."""
    split_thinking: bool = True
    """Split a model's ``<think>…</think>`` out of the answer text into
    ``additional_kwargs["reasoning_content"]`` when the server has no reasoning parser (always on TGI;
    a no-op when the server already did it). False keeps the raw text."""
    think_tags: ThinkTags | None = None
    """Other tags than ``<think>``/``</think>``, or ``ThinkTags(implicit_open=True)`` when the chat template
    opens the tag in the prompt (the output then starts inside the thinking)."""
    engine_client: EngineClient | None = Field(default=None, alias="client", exclude=True, repr=False)
    """``client=``: a ready ``engine_clients`` client or ``EnginePool`` to talk through instead of one built
    from the fields above (whose connection settings then are the client's own). The model never closes it.
    A model on an ``EnginePool`` cannot be pickled; one on a client pickles without it (rebuilt from
    ``base_url`` on first use)."""

    temperature: Annotated[float | None, SAMPLING] = None
    max_tokens: Annotated[int | None, SAMPLING] = None
    top_p: Annotated[float | None, SAMPLING] = None
    seed: Annotated[int | None, SAMPLING] = None
    stop: Annotated[list[str] | None, SAMPLING] = None
    frequency_penalty: Annotated[float | None, SAMPLING] = None
    logprobs: Annotated[bool | None, SAMPLING] = None
    """Return token log-probabilities (``response_metadata["logprobs"]`` / ``generation_info``)."""
    top_logprobs: Annotated[int | None, SAMPLING] = None

    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Further sampling parameters by the engine layer's names; unknown ones are refused before sending."""
    extra_body: dict[str, Any] | None = None
    """Merged into the JSON body as is (no checks): for server options this package does not model."""

    _state: _ClientState = PrivateAttr(default_factory=_ClientState)

    # -- construction --------------------------------------------------------------------------------
    @model_validator(mode="before")
    @classmethod
    def _from_env(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        values = dict(values)
        given = values.get("client", values.get("engine_client"))
        if isinstance(given, BaseClient | EnginePool):
            cls._check_client_engine(values, given.engine)
            if isinstance(given, BaseClient):
                values["base_url"] = values.get("base_url") or given.base_url
                if values.get("model") is None:
                    values["model"] = given.model
            else:  # the replicas, as EnginePool takes them from <ENGINE>_BASE_URL
                values["base_url"] = values.get("base_url") or ",".join(given.replicas)
            return values
        return cls._connection_from_env(values)

    @classmethod
    def _connection_from_env(cls, values: dict[str, Any]) -> dict[str, Any]:
        """``base_url``/``api_key`` defaults from the environment (no client given)."""
        prefix = cls.client_class.env_prefix
        if not values.get("base_url"):
            values["base_url"] = os.environ.get(f"{prefix}_BASE_URL")
        if not values["base_url"]:
            raise ValueError(f"{cls.__name__} needs base_url (or the {prefix}_BASE_URL environment variable)")
        if values.get("api_key") is None and os.environ.get(f"{prefix}_API_KEY"):
            values["api_key"] = os.environ[f"{prefix}_API_KEY"]
        return values

    @classmethod
    def _check_client_engine(cls, values: dict[str, Any], engine: str | None) -> None:
        """Refuse a given client of another engine than this class's (a pool not resolved yet passes)."""
        own = cls.fixed_engine()
        if own is not None and engine is not None and engine != own:
            raise ValueError(f"{cls.__name__} talks to {own}, but the client given is for {engine}")

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return True

    @property
    def lc_secrets(self) -> dict[str, str]:
        prefix = self._env_prefix()
        return {"api_key": f"{prefix or 'ENGINE'}_API_KEY"}

    def _env_prefix(self) -> str | None:
        engine = self.active_engine
        return client_class(engine).env_prefix if engine is not None else None

    def __getstate__(self) -> dict[str, Any]:
        if isinstance(self.engine_client, EnginePool):
            raise TypeError(
                f"{type(self).__name__} on an EnginePool cannot be pickled (the pool holds state)"
            )
        state: dict[str, Any] = super().__getstate__()
        # The key stays out of pickles; an unpickled model reads it from the environment again. A given
        # client is left out too: the unpickled model builds its own from base_url.
        state["__dict__"] = {**state["__dict__"], "api_key": None, "engine_client": None}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        prefix = self._env_prefix()
        key = os.environ.get(f"{prefix}_API_KEY") if prefix else None
        if self.api_key is None and key:
            self.__dict__["api_key"] = SecretStr(key)

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Any:
        memo = {} if memo is None else memo
        if self.engine_client is not None:  # copies share the given client (it holds connections)
            memo[id(self.engine_client)] = self.engine_client
        return super().__deepcopy__(memo)

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
        return (self.think_tags or ThinkTags()) if self.split_thinking else None

    def _client_kwargs(self) -> dict[str, Any]:
        return {
            "api_key": self.api_key,
            "model": self.model,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "headers": self.default_headers,
            "think_tags": self._think_tags(),
        }

    def _new_client(self, engine: str) -> BaseClient:
        return self.client_class(self.base_url, **self._client_kwargs())

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
                    state.client = self._new_client(engine)
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
            state.aclient = self._new_client(self._resolve_engine())
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
            state.aclient = self._new_client(engine)
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

    # -- request parameters --------------------------------------------------------------------------
    @classmethod
    def sampling_fields(cls) -> tuple[str, ...]:
        """Names of this class's sampling fields (common ones plus the engine's own)."""
        return tuple(name for name, f in cls.model_fields.items() if SAMPLING in f.metadata)

    @property
    def _default_params(self) -> dict[str, Any]:
        params = {n: getattr(self, n) for n in self.sampling_fields()}
        return {k: v for k, v in params.items() if v is not None}

    def _request(
        self, stop: list[str] | None, kwargs: dict[str, Any], passthrough: tuple[str, ...]
    ) -> dict[str, Any]:
        """Keyword arguments for the client call: field defaults < model_kwargs < per-call kwargs."""
        kw = dict(kwargs)
        call = {k: kw.pop(k) for k in passthrough if k in kw}
        extra = {**(self.extra_body or {}), **(kw.pop("extra_body", None) or {})}
        sampling = {**self._default_params, **self.model_kwargs, **kw}
        if stop is not None:
            sampling["stop"] = stop
        if not sampling.get("stop"):
            sampling.pop("stop", None)  # [] means "no stop sequences"
        return {**call, **({"extra_body": extra} if extra else {}), **sampling}

    # -- tokenizer -----------------------------------------------------------------------------------
    def get_token_ids(self, text: str) -> list[int]:
        """Token ids from the server's own tokenizer (no special tokens added where the engine allows)."""
        with translate_errors():
            return [t.id for t in self.client.tokenize(text, add_special_tokens=False)]

    # -- tracing -------------------------------------------------------------------------------------
    def _patch_ls_params(
        self, params: LangSmithParams, stop: list[str] | None, kwargs: dict[str, Any]
    ) -> None:
        params["ls_provider"] = self.active_engine or "auto"
        if "ls_model_name" not in params and self.model_name:
            params["ls_model_name"] = self.model_name
        if not stop and self.stop:
            params["ls_stop"] = self.stop

    def _base_identifying_params(self) -> dict[str, Any]:
        return {
            "engine": self._configured_engine() or "auto",
            "base_url": self.base_url,
            "model_name": self.model_name,
        }


class AutoEngineMixin(EngineModelMixin):
    """Auto mode: the engine behind ``base_url`` is found on first use by probing its discovery routes
    (``engine_clients.detect_engine``: a few short GETs, once), or taken from ``engine=``. Constructing does
    no I/O. Only the sampling fields every engine shares are typed; pass an engine's own parameters in
    ``model_kwargs`` (or per call), and raw body fields in ``extra_body``.

    The API key is ``api_key=``, else ``$<ENGINE>_API_KEY`` once the engine is known (given, named by the
    environment, or detected: the probes themselves send only ``api_key=``). Serialized, the key refers to
    that variable (``ENGINE_API_KEY`` while the engine is unknown)."""

    engine: str | None = None
    """``"tgi"``, ``"vllm"`` or ``"llamacpp"`` (``"llama.cpp"`` too) to skip detection; None: detect it."""
    probe_timeout: float = PROBE_TIMEOUT
    """Seconds each detection probe may take."""

    @classmethod
    def _connection_from_env(cls, values: dict[str, Any]) -> dict[str, Any]:
        """With no ``base_url``: ``$<ENGINE>_BASE_URL`` of the ``engine`` given, else the one such variable
        that is set (which also names the engine), as ``engine_clients.connect`` does."""
        engine = values.get("engine")
        if engine is not None:
            values["engine"] = engine = canonical_engine(engine)
        if not values.get("base_url"):
            try:  # builds a client only to read what the environment says: no I/O
                found = connect(None, engine=engine)
            except EngineError as exc:
                raise ValueError(f"{cls.__name__} needs base_url: {exc}") from None
            values["base_url"], values["engine"] = found.base_url, found.engine
            engine = found.engine
        if engine is not None and values.get("api_key") is None:
            key = os.environ.get(f"{client_class(engine).env_prefix}_API_KEY")
            if key:
                values["api_key"] = key
        return values

    @classmethod
    def _check_client_engine(cls, values: dict[str, Any], engine: str | None) -> None:
        wanted = values.get("engine")
        if wanted is not None:
            values["engine"] = wanted = canonical_engine(wanted)
            if engine is not None and engine != wanted:
                raise ValueError(f"engine={wanted!r}, but the client given is for {engine}")
        elif engine is not None:
            values["engine"] = engine

    def _configured_engine(self) -> str | None:
        return self.engine

    def _probe_key(self) -> tuple[Any, ...]:
        return (self.base_url,)  # the engine behind a URL (never the key: this state is pickled)

    def _client_key(self) -> tuple[Any, ...]:
        return (*super()._client_key(), self.engine)

    def _known_engine(self) -> str | None:
        if self.engine is not None:
            return self.engine
        return self._state.detected.get(self._probe_key())

    def _resolve_engine(self) -> str:
        engine = self._known_engine()
        if engine is None:
            assert self.base_url is not None  # the validator made sure
            engine = detect_engine(self.base_url, api_key=self.api_key, probe_timeout=self.probe_timeout)
            self._state.detected[self._probe_key()] = engine
        return engine

    async def _aresolve_engine(self) -> str:
        engine = self._known_engine()
        if engine is None:
            assert self.base_url is not None
            engine = await adetect_engine(
                self.base_url, api_key=self.api_key, probe_timeout=self.probe_timeout
            )
            self._state.detected[self._probe_key()] = engine
        return engine

    def _new_client(self, engine: str) -> BaseClient:
        return connect(self.base_url, engine=engine, **self._client_kwargs())  # engine given: no probes
