"""What the chat models and the LLMs share: constructor fields and their validation, pickling, request
parameters, the server's tokenizer and tracing parameters. Engine-neutral: an engine class names its client
class and declares its own sampling fields (``Annotated[..., SAMPLING]``), nothing else;
:class:`AutoEngineMixin` finds the engine on first use.

How the engine client is built and reused, and model discovery: :mod:`._client`; the stream loops:
:mod:`._stream`."""

from __future__ import annotations

import os
from typing import Annotated
from typing import Any
from typing import ClassVar

from langchain_core.language_models import LangSmithParams
from pydantic import ConfigDict
from pydantic import Field
from pydantic import PrivateAttr
from pydantic import SecretStr
from pydantic import field_validator
from pydantic import model_validator

from engine_clients import PROBE_TIMEOUT
from engine_clients import BaseClient
from engine_clients import EngineError
from engine_clients import EnginePool
from engine_clients import ThinkTags
from engine_clients import adetect_engine
from engine_clients import client_class
from engine_clients import connect
from engine_clients import detect_engine
from engine_clients._wrapper_fields import ConnectionFields
from engine_clients._wrapper_support import canonical_engine

from ._client import EngineClient
from ._client import EngineClientMixin
from ._client import _ClientState
from .errors import translate_errors

__all__ = ["SAMPLING", "AutoEngineMixin", "EngineClient", "EngineModelMixin"]


class _Sampling:
    """Marks a field as a sampling parameter sent with every request under its own name (the engine
    layer maps names to wire fields and refuses names its engine does not have)."""

    def __repr__(self) -> str:
        return "SAMPLING"


SAMPLING = _Sampling()


class EngineModelMixin(ConnectionFields, EngineClientMixin):
    """Fields and plumbing shared by the chat models and the LLMs of every engine: the connection fields
    (``base_url``, ``api_key``, ``model``, ``timeout``, ``max_retries``, ``default_headers``,
    ``http_backend``: ``engine_clients``' shared wrapper fields), the engine client and model discovery
    (:class:`~langchain_selfhosted._client.EngineClientMixin`)."""

    model_config = ConfigDict(protected_namespaces=(), populate_by_name=True, arbitrary_types_allowed=True)

    client_class: ClassVar[type[BaseClient]]
    """The engine client the wrapper drives (``TGIClient``, ``VLLMClient``, ``LlamaCppClient``); auto-mode
    classes have none."""

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
    adapter: Annotated[str | None, SAMPLING] = None
    """A LoRA adapter the server serves, by name (``engine_clients`` spells it per engine; an unknown one
    raises ``AdapterNotFoundError``). Per call: ``invoke(..., adapter="sql")``."""
    adapter_scale: Annotated[float | None, SAMPLING] = None
    """The adapter's strength (llama.cpp only; 0 switches it off)."""

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

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "engine": self._configured_engine() or "auto",
            "base_url": self.base_url,
            "model_name": self.model_name,
            **self._default_params,
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
    """``"tgi"``, ``"vllm"``, ``"llamacpp"`` (``"llama.cpp"`` too) or ``"sglang"`` to skip detection; None:
    detect it."""
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
