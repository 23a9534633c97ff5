"""``EngineLLM``: the LlamaIndex LLM shared by :class:`TGI`, :class:`VLLM` and :class:`LlamaCpp`, and usable
directly in auto mode (the engine behind ``base_url`` detected on first use, or given as ``engine=``).

Every method is engine-neutral: it converts LlamaIndex types to OpenAI-style dicts and calls the
``engine_clients`` client (named by the subclass, detected, or given: a client or an ``EnginePool``), which
handles each engine's wire format. Subclasses only declare ``client_class``, their engine's own sampling
fields, and which fields go to which route.
"""

from __future__ import annotations

from typing import Any
from typing import ClassVar

import httpx
from llama_index.core.bridge.pydantic import Field
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.bridge.pydantic import SecretStr
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.llms.custom import CustomLLM

from engine_clients import PROBE_TIMEOUT
from engine_clients import BaseClient
from engine_clients import EngineInfo
from engine_clients import EnginePool
from engine_clients import ThinkTags
from engine_clients._wrapper_support import HistoryPolicy
from engine_clients._wrapper_support import canonical_engine

from ._chat import ChatLLM
from ._client import EngineClient
from ._client import EngineClientMixin
from ._completion import CompletionLLM
from ._metadata import METADATA_RETRY_S as METADATA_RETRY_S  # defined here before the split
from ._metadata import MetadataMixin
from ._metadata import _context_window as _context_window  # (imported from here by the tests)
from ._structured import StructuredOutputLLM
from ._tools import PARALLEL_IF_TAKEN
from ._tools import ToolCallingLLM
from ._tools import takes_chat_param

__all__ = ["COMMON_PARAMS", "EngineClient", "EngineLLM"]

dispatcher = get_dispatcher(__name__)

#: Thinking controls of reasoning models. Sent on both routes so that a native text route, which cannot honour
#: them, refuses them (InvalidRequestError) instead of dropping them.
REASONING_PARAMS: tuple[str, ...] = ("thinking", "reasoning_effort", "thinking_budget")
#: Fields sent on both routes of every engine (sampling, and the thinking controls).
COMMON_PARAMS: tuple[str, ...] = (
    "temperature",
    "max_tokens",
    "top_p",
    "seed",
    "stop",
    "frequency_penalty",
    "presence_penalty",
    "adapter",
    "adapter_scale",
    *REASONING_PARAMS,
)


class EngineLLM(
    EngineClientMixin,
    MetadataMixin,
    ChatLLM,
    CompletionLLM,
    ToolCallingLLM,
    StructuredOutputLLM,
    CustomLLM,
):
    """A LlamaIndex ``FunctionCallingLLM`` (and ``CustomLLM``) over a self-hosted inference server.

    Use :class:`~llama_index.llms.selfhosted.TGI`, :class:`~llama_index.llms.selfhosted.VLLM` or
    :class:`~llama_index.llms.selfhosted.LlamaCpp`, or ``EngineLLM`` itself in auto mode::

        llm = EngineLLM("http://127.0.0.1:8080")                 # engine detected on first use
        llm = EngineLLM("http://gpu:8000", engine="vllm", additional_kwargs={"top_k": 20})
        llm = EngineLLM(client=EnginePool(["http://a:8000", "http://b:8000"], engine="vllm"))

    * Auto mode: constructing does no I/O; the first call (or ``metadata``) probes the server's discovery
      routes (a few short GETs, ``probe_timeout`` s each; see ``engine_clients.connect``), the engine found is
      written to ``engine``, and every call talks its dialect. ``engine=`` skips the probes. Without
      ``base_url``, ``$<ENGINE>_BASE_URL`` of the ``engine`` given is used, or else the only
      ``TGI_BASE_URL``/``VLLM_BASE_URL``/``LLAMACPP_BASE_URL``/``SGLANG_BASE_URL`` set (naming the engine).
      Only the common sampling fields are typed: an engine's own go in ``additional_kwargs`` (refused before
      sending by an engine that lacks them), raw body fields in ``extra_body``.
    * ``client=``: a ready ``engine_clients`` client or ``EnginePool`` (any engine for ``EngineLLM``, the
      class's own for ``TGI``/``VLLM``/``LlamaCpp``); its connection, ``history`` and tool-call recovery
      settings are its own.

    * ``chat``/``stream_chat`` (and ``a``-prefixed twins, natively async) use the server's chat route with
      its chat template; tool calls come back as ``ToolCallBlock``s plus OpenAI-style dicts in
      ``message.additional_kwargs["tool_calls"]``; token usage is in ``raw["usage"]`` and
      ``additional_kwargs`` (what ``TokenCountingHandler`` reads).
    * ``complete(prompt)`` sends the prompt as one user turn through the chat route (this is a chat model).
      ``complete(prompt, formatted=True)`` sends the text verbatim to the engine's native text route (TGI
      ``/generate``, vLLM ``/v1/completions``, llama.cpp ``/completion``): no chat template. With
      ``is_chat_model=False`` LlamaIndex formats prompts itself (``completion_to_prompt``) and uses that
      route.
    * ``metadata`` is read from the server on first use and cached; constructing never touches the network.
    * ``structured_predict`` and its streaming/async forms use the engine's constrained decoding
      (``response_format`` = the output class) unless ``pydantic_program_mode`` says otherwise.

    This class declares the fields, the constructor, copying and pickling, and the request arguments; the
    methods come from one mixin per topic: the engine client (:mod:`._client`), ``metadata``
    (:mod:`._metadata`), chat (:mod:`._chat`), completion (:mod:`._completion`), tool calling
    (:mod:`._tools`) and structured output (:mod:`._structured`).
    """

    client_class: ClassVar[type[BaseClient]] = BaseClient
    #: Fields sent on the chat route and on the native text route (declared per engine).
    chat_params: ClassVar[tuple[str, ...]] = COMMON_PARAMS
    text_params: ClassVar[tuple[str, ...]] = COMMON_PARAMS

    base_url: str | None = Field(
        default=None, description="Server URL; defaults to the engine's *_BASE_URL environment variable."
    )
    engine: str | None = Field(
        default=None,
        description="'tgi', 'vllm', 'llamacpp' or 'sglang'. Fixed by TGI/VLLM/LlamaCpp/SGLang; on EngineLLM, "
        "None means: detect it on first use (then it is filled in).",
    )
    probe_timeout: float = Field(
        default=PROBE_TIMEOUT, gt=0, description="Seconds each engine-detection probe may take (auto mode)."
    )
    model: str | None = Field(
        default=None,
        description="Model id sent with requests (default: the server's only model); metadata.model_name.",
    )
    api_key: SecretStr | None = Field(
        default=None,
        exclude=True,
        repr=False,
        description="Bearer token; defaults to the engine's *_API_KEY environment variable.",
    )
    timeout: float | None = Field(default=None, description="Request timeout in seconds (client default).")
    max_retries: int = Field(default=2, ge=0, description="Retries of failed requests before output began.")
    headers: dict[str, str] | None = Field(
        default=None, exclude=True, repr=False, description="Extra HTTP headers sent with every request."
    )
    http_backend: str | None = Field(
        default=None,
        description="The async socket layer: 'httpx' or 'aiohttp' (faster for thousands of concurrent "
        "streams; pip install 'llm-engine-clients[aiohttp]'). None: $ENGINE_CLIENTS_HTTP_BACKEND, or httpx.",
    )
    temperature: float | None = Field(default=None, description="Sampling temperature (engine default).")
    max_tokens: int | None = Field(
        default=None, description="Most tokens to generate (engine default); also metadata.num_output."
    )
    top_p: float | None = Field(default=None, description="Nucleus sampling probability mass.")
    seed: int | None = Field(default=None, description="Sampling seed.")
    stop: str | list[str] | None = Field(default=None, description="Stop sequence(s).")
    frequency_penalty: float | None = Field(default=None, description="OpenAI-style frequency penalty.")
    presence_penalty: float | None = Field(default=None, description="OpenAI-style presence penalty.")
    adapter: str | None = Field(
        default=None,
        description="A LoRA adapter the server serves, by name (spelled per engine; an unknown one raises "
        "AdapterNotFoundError). Per call: chat(..., adapter='sql').",
    )
    adapter_scale: float | None = Field(
        default=None, description="The adapter's strength (llama.cpp only; 0 switches it off)."
    )
    thinking: bool | None = Field(
        default=None,
        description="Reasoning models: thinking on or off (the chat template's enable_thinking; None: the "
        "server's default). TGI has no field for it and refuses it.",
    )
    reasoning_effort: str | None = Field(
        default=None, description="Reasoning models: 'low', 'medium', 'high'."
    )
    thinking_budget: int | None = Field(
        default=None, description="Reasoning models: most thinking tokens (vLLM, llama.cpp)."
    )
    split_thinking: bool = Field(
        default=True,
        description="Split a model's <think>...</think> out of the answer text into a ThinkingBlock when the "
        "server has no reasoning parser (always on TGI; a no-op when the server did it). False: raw text.",
    )
    think_tags: ThinkTags | None = Field(
        default=None,
        exclude=True,
        description="Other tags than <think>/</think>, or ThinkTags(implicit_open=True) when the chat "
        "template opens the tag in the prompt (the output then starts inside the thinking).",
    )
    history: HistoryPolicy = Field(
        default="auto",
        description="How a chat history meets a strict chat template: 'auto' (sent as given; when the "
        "template refuses it, fitted and sent once more, and fitted from then on), 'fit' (always fitted), "
        "'mistral' (fitted, with 9-character tool-call ids), 'keep' (never changed: a refusal raises "
        "ChatTemplateError) or an engine_clients TemplateRules. Per call: chat(..., history='fit'). The "
        "changes are listed in additional_kwargs['history_changes'].",
    )
    recover_tool_calls: bool = Field(
        default=True,
        description="With tools, turn tool-call markup the server's tool parser left in the text "
        "(<tool_call>, [TOOL_CALLS], ...) into tool calls, listed in "
        "additional_kwargs['recovered_tool_calls']. False: the text stays as the server sent it.",
    )
    additional_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="More sampling parameters for every request, by the engine client's names "
        "(names an engine does not take are refused before sending).",
    )
    extra_body: dict[str, Any] | None = Field(
        default=None, description="Raw JSON fields merged into every request body."
    )
    context_window: int | None = Field(
        default=None, description="Overrides the context window read from the server."
    )
    is_chat_model: bool = Field(
        default=True,
        description="True: LlamaIndex talks to the chat route with chat messages. False: it formats prompts "
        "itself (completion_to_prompt) and complete() uses the native text route.",
    )
    is_function_calling_model: bool = Field(
        default=True,
        description="Whether the server was started with tool calling enabled (unset: what the server "
        "reports, where it says, e.g. llama.cpp's chat template capabilities; else True).",
    )

    _client: EngineClient | None = PrivateAttr(default=None)
    _http: tuple[httpx.Client | None, httpx.AsyncClient | None] = PrivateAttr(default=(None, None))
    _info: EngineInfo | None = PrivateAttr(default=None)
    _info_retry_at: float = PrivateAttr(default=0.0)

    def __init__(
        self,
        base_url: str | None = None,
        *,
        client: EngineClient | None = None,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
        **kwargs: Any,
    ) -> None:
        """``base_url`` (or the environment variable), sampling fields and connection settings; or a ready
        ``client`` (an ``engine_clients`` client or ``EnginePool``). ``http_client``/``async_http_client``
        are passed to the client, and used by the detection probes (custom transports, proxies, test mocks).
        Nothing is sent until the first call."""
        super().__init__(**{"base_url": base_url, **kwargs})  # the fields are declared on this class
        fixed = self.fixed_engine()
        if self.engine is not None:
            self.engine = canonical_engine(self.engine)
        if fixed is not None:
            if self.engine not in (None, fixed):
                raise ValueError(f"{type(self).__name__} is for {fixed}, not engine={self.engine!r}")
            self.engine = fixed
        if client is not None:
            self._adopt_client(client)
            return
        self._http = (http_client, async_http_client)
        if self.base_url is None or self.engine is not None:
            # no probing needed: the engine is known, or the environment names it (as connect() reads it)
            self._adopt(self._new_client(self.engine))

    @classmethod
    def class_name(cls) -> str:
        engine = cls.fixed_engine()
        return f"{engine}_llm" if engine is not None else "engine_llm"

    # -- copying and pickling: the client holds connections; copies share it, unpickling builds a new one --
    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> EngineLLM:
        memo = {} if memo is None else memo
        for shared in (self._client, *self._http):
            if shared is not None:
                memo[id(shared)] = shared
        return super().__deepcopy__(memo)

    def __getstate__(self) -> dict[Any, Any]:
        if isinstance(self._client, EnginePool):
            raise TypeError(
                f"{type(self).__name__} on an EnginePool cannot be pickled (the pool holds state)"
            )
        client, http = self._client, self._http
        self._client, self._http = None, (None, None)  # not picklable: left out quietly
        try:
            state: dict[Any, Any] = super().__getstate__()
        finally:
            self._client, self._http = client, http
        private = {**(state.get("__pydantic_private__") or {}), "_client": None, "_http": (None, None)}
        state["__pydantic_private__"] = private
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        if getattr(self, "_client", None) is None and (self.base_url is None or self.engine is not None):
            self._adopt(self._new_client(self.engine))

    # -- request arguments --------------------------------------------------------------------------------
    def _call_kwargs(
        self, params: tuple[str, ...], kwargs: dict[str, Any], engine: str | None = None
    ) -> dict[str, Any]:
        """Field defaults for the route, then ``additional_kwargs``, then the call's own kwargs (``None``
        unsets a default); ``extra_body`` dicts are merged. ``engine``: the one the request goes to."""
        out: dict[str, Any] = {name: getattr(self, name) for name in params}
        out.update(self.additional_kwargs)
        kwargs = dict(kwargs)
        parallel = kwargs.pop(PARALLEL_IF_TAKEN, None)
        if parallel is not None and takes_chat_param(engine, "parallel_tool_calls"):
            out["parallel_tool_calls"] = parallel
        out.update(kwargs)
        body = {**(self.extra_body or {}), **(out.pop("extra_body", None) or {})}
        if body:
            out["extra_body"] = body
        return {k: v for k, v in out.items() if v is not None}
