"""What the chat models and the LLMs share: constructor fields, the lazily created engine client, model
discovery, the server's tokenizer and tracing parameters. Engine-neutral: an engine class names its client
class and declares its own sampling fields (``Annotated[..., SAMPLING]``), nothing else."""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from typing import Annotated, Any, ClassVar

from langchain_core.language_models import LangSmithParams
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, field_validator, model_validator

from engine_clients import BaseClient, EngineError, EngineInfo, EngineUnavailableError, TimeoutError

from .errors import translate_errors

__all__ = ["SAMPLING", "EngineModelMixin"]


class _Sampling:
    """Marks a field as a sampling parameter sent with every request under its own name (the engine
    layer maps names to wire fields and refuses names its engine does not have)."""

    def __repr__(self) -> str:
        return "SAMPLING"


SAMPLING = _Sampling()
_lock = threading.Lock()


class _ClientState:
    """Per-instance runtime state. Never pickled or deep-copied with the model (clients hold open
    connections); only the discovered model name survives."""

    def __init__(self, discovered: str | None = None, done: bool = False) -> None:
        self.key: tuple[Any, ...] | None = None
        self.client: BaseClient | None = None
        # httpx async pools are bound to the event loop that created them: one async client per loop.
        self.aclient: BaseClient | None = None
        self.aloop: weakref.ReferenceType[asyncio.AbstractEventLoop] | None = None
        self.discovered = discovered
        self.discovery_done = done

    def __getstate__(self) -> dict[str, Any]:
        return {"discovered": self.discovered, "done": self.discovery_done}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["discovered"], state["done"])  # type: ignore[misc]

    def __deepcopy__(self, memo: dict[int, Any]) -> _ClientState:
        return _ClientState(self.discovered, self.discovery_done)


class EngineModelMixin(BaseModel):
    """Fields and plumbing shared by the chat models and the LLMs of every engine."""

    model_config = ConfigDict(protected_namespaces=())

    client_class: ClassVar[type[BaseClient]]
    """The engine client the wrapper drives (``TGIClient``, ``VLLMClient``, ``LlamaCppClient``)."""

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
        prefix = cls.client_class.env_prefix
        values = dict(values)
        if not values.get("base_url"):
            values["base_url"] = os.environ.get(f"{prefix}_BASE_URL")
        if not values["base_url"]:
            raise ValueError(f"{cls.__name__} needs base_url (or the {prefix}_BASE_URL environment variable)")
        if values.get("api_key") is None and os.environ.get(f"{prefix}_API_KEY"):
            values["api_key"] = os.environ[f"{prefix}_API_KEY"]
        return values

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return True

    @property
    def lc_secrets(self) -> dict[str, str]:
        return {"api_key": f"{self.client_class.env_prefix}_API_KEY"}

    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = super().__getstate__()
        # The key stays out of pickles; an unpickled model reads it from the environment again.
        state["__dict__"] = {**state["__dict__"], "api_key": None}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        key = os.environ.get(f"{self.client_class.env_prefix}_API_KEY")
        if self.api_key is None and key:
            self.__dict__["api_key"] = SecretStr(key)

    # -- engine --------------------------------------------------------------------------------------
    @classmethod
    def engine_name(cls) -> str:
        """``"tgi"``, ``"vllm"`` or ``"llamacpp"``."""
        return cls.client_class.dialect_class.engine

    def _client_key(self) -> tuple[Any, ...]:
        key = self.api_key.get_secret_value() if self.api_key else None
        headers = tuple(sorted((self.default_headers or {}).items()))
        return (self.base_url, key, self.model, self.timeout, self.max_retries, headers)

    def _new_client(self) -> BaseClient:
        return self.client_class(
            self.base_url,
            api_key=self.api_key,
            model=self.model,
            timeout=self.timeout,
            max_retries=self.max_retries,
            headers=self.default_headers,
        )

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
    def client(self) -> BaseClient:
        """The engine client for synchronous calls, created on first use (construction does no I/O)."""
        state = self._fresh()
        if state.client is None:
            with _lock:
                if state.client is None:
                    state.client = self._new_client()
        return state.client

    @property
    def async_client(self) -> BaseClient:
        """The engine client for the running event loop."""
        state = self._fresh()
        loop = asyncio.get_running_loop()
        if state.aclient is None or state.aloop is None or state.aloop() is not loop:
            state.aclient = self._new_client()
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
                self._discovered(await self.async_client.ainfo())
            except EngineError as err:
                self._discovery_failed(err)
        return self.model_name

    def _discovered(self, info: EngineInfo) -> None:
        self._state.discovered = info.model
        self._state.discovery_done = True

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
        params["ls_provider"] = self.engine_name()
        if "ls_model_name" not in params and self.model_name:
            params["ls_model_name"] = self.model_name
        if not stop and self.stop:
            params["ls_stop"] = self.stop

    def _base_identifying_params(self) -> dict[str, Any]:
        return {"engine": self.engine_name(), "base_url": self.base_url, "model_name": self.model_name}
