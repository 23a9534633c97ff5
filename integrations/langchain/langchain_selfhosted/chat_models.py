"""LangChain chat models for self-hosted engines: :class:`ChatTGI`, :class:`ChatVLLM`, :class:`ChatLlamaCpp`,
:class:`ChatSGLang`, and :class:`ChatEngine`, which finds out which of them serves a URL on first use.

One implementation (:class:`_BaseChatEngine`) over ``engine_clients``; the engine classes only name their
client and declare their engine's own sampling fields. Every engine difference (wire fields, tool-choice
emulation, grammar formats, error shapes) lives in ``engine_clients``. Each also takes ``client=``: a ready
client or an ``EnginePool`` of replicas.

>>> from langchain_selfhosted import ChatLlamaCpp
>>> llm = ChatLlamaCpp(base_url="http://127.0.0.1:8080", temperature=0)
>>> for chunk in llm.stream("Hello"):
...     print(chunk.content, end="")
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from contextlib import aclosing
from operator import itemgetter
from typing import Annotated
from typing import Any
from typing import Literal
from typing import cast

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models import LangSmithParams
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.model_profile import ModelProfile
from langchain_core.messages import AIMessage
from langchain_core.messages import BaseMessage
from langchain_core.output_parsers import JsonOutputKeyToolsParser
from langchain_core.output_parsers import JsonOutputParser
from langchain_core.output_parsers import PydanticOutputParser
from langchain_core.output_parsers.base import OutputParserLike
from langchain_core.output_parsers.openai_tools import PydanticToolsParser
from langchain_core.outputs import ChatGeneration
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.outputs import ChatResult
from langchain_core.runnables import Runnable
from langchain_core.runnables import RunnableMap
from langchain_core.runnables import RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import BaseModel
from pydantic import model_validator
from typing_extensions import Self

from engine_clients import Completion
from engine_clients import LlamaCppClient
from engine_clients import SGLangClient
from engine_clients import TGIClient
from engine_clients import VLLMClient

from ._base import SAMPLING
from ._base import AutoEngineMixin
from ._chat_options import ChatClientOptions
from ._convert import StreamConverter
from ._convert import completion_to_message
from ._convert import to_openai_messages
from ._params import LlamaCppParams
from ._params import SGLangParams
from ._params import VLLMParams
from ._profile import LazyProfile
from ._stream import ChunkStream
from ._stream import astream_chunks
from ._stream import stream_chunks
from .errors import translate_errors

__all__ = ["ChatEngine", "ChatLlamaCpp", "ChatSGLang", "ChatTGI", "ChatVLLM"]

_CALL_ARGS = ("tools", "tool_choice", "response_format", "model", "history")
_CHOICE_WORDS = ("auto", "none", "any", "required")
StructuredMethod = Literal["json_schema", "function_calling", "json_mode"]


class _BaseChatEngine(ChatClientOptions, BaseChatModel):
    """Shared implementation of the engine chat models (see the module docstring)."""

    presence_penalty: Annotated[float | None, SAMPLING] = None
    thinking: Annotated[bool | None, SAMPLING] = None
    """Reasoning models: turn thinking on or off (the chat template's ``enable_thinking``; None: the
    server's default). Each engine gets its own field; TGI's chat route has none and refuses it."""
    reasoning_effort: Annotated[str | None, SAMPLING] = None
    """Reasoning models: ``"low"``, ``"medium"``, ``"high"`` (engine-specific values pass through)."""
    thinking_budget: Annotated[int | None, SAMPLING] = None
    """Reasoning models: most thinking tokens, where the engine has a budget (vLLM, llama.cpp)."""
    streaming: bool = False
    """Use the streaming route for ``invoke`` too (tokens reach callbacks as they arrive)."""
    stream_usage: bool = True
    """Attach ``usage_metadata`` to the last chunk of a stream."""

    # -- profile: the server's capabilities, read on first use ----------------------------------------
    def _resolve_model_profile(self) -> ModelProfile | None:
        return cast(ModelProfile, LazyProfile())

    @model_validator(mode="after")
    def _attach_profile(self) -> Self:
        if isinstance(self.profile, LazyProfile):  # after langchain-core's own checks: no I/O while built
            self.profile.attach(self._engine_info)
        return self

    # -- identity / tracing --------------------------------------------------------------------------
    @property
    def _llm_type(self) -> str:
        return f"{self._configured_engine() or 'auto'}-chat"

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        self._patch_ls_params(params, stop, kwargs)
        return params

    # -- generation ----------------------------------------------------------------------------------
    def _chat_args(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        kwargs = dict(kwargs)
        kwargs.pop("stream_usage", None)
        return {"messages": to_openai_messages(messages), **self._request(stop, kwargs, _CALL_ARGS)}

    def _result(self, completion: Completion, model_name: str | None) -> ChatResult:
        message = completion_to_message(completion, model_name)
        llm_output: dict[str, Any] = {"model_name": message.response_metadata.get("model_name")}
        if completion.usage is not None:  # what callback handlers that count tokens read
            llm_output["token_usage"] = dataclasses.asdict(completion.usage)
        info = {"finish_reason": completion.finish_reason}
        return ChatResult(
            generations=[ChatGeneration(message=message, generation_info=info)], llm_output=llm_output
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        args = self._chat_args(messages, stop, kwargs)
        with translate_errors():
            completion = self.client.chat(**args)
        # Model discovery after the answer: a request refused before sending costs no round trip.
        return self._result(completion, args.get("model") or self._ensure_model())

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        args = self._chat_args(messages, stop, kwargs)
        with translate_errors():
            completion = await (await self._aclient()).achat(**args)
        return self._result(completion, args.get("model") or await self._aensure_model())

    def _chunk_stream(self, args: dict[str, Any], kwargs: dict[str, Any]) -> ChunkStream[ChatGenerationChunk]:
        usage = kwargs.get("stream_usage", self.stream_usage)
        return ChunkStream(StreamConverter(args.get("model"), include_usage=usage).feed, args.get("model"))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        args = self._chat_args(messages, stop, kwargs)
        chunks = self._chunk_stream(args, kwargs)
        yield from stream_chunks(self, lambda client: client.chat_stream(**args), chunks, run_manager)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        args = self._chat_args(messages, stop, kwargs)
        chunks = self._chunk_stream(args, kwargs)
        stream = astream_chunks(self, lambda client: client.achat_stream(**args), chunks, run_manager)
        async with aclosing(stream):  # stopped early: the engine stream is closed now, not when collected
            async for chunk in stream:
                yield chunk

    # -- tools ---------------------------------------------------------------------------------------
    def bind_tools(
        self,
        tools: Sequence[Mapping[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | bool | Mapping[str, Any] | None = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (LangChain tools, functions, Pydantic classes, TypedDicts, OpenAI tool dicts).

        ``tool_choice``: ``"auto"``, ``"none"``, ``"any"``/``"required"``/``True`` (must call a tool), a tool
        name, or an OpenAI-style ``{"type": "function", "function": {"name": ...}}``. The engine layer maps
        each onto what the engine supports (llama.cpp: a named choice sends only that tool, required).
        """
        formatted = [convert_to_openai_tool(t, strict=strict) for t in tools]
        if tool_choice is not None and tool_choice is not False:
            _check_choice(tool_choice, [t["function"]["name"] for t in formatted])
            kwargs["tool_choice"] = tool_choice
        elif tool_choice is False:
            kwargs["tool_choice"] = "none"
        return super().bind(tools=formatted, **kwargs)

    # -- structured output ---------------------------------------------------------------------------
    def with_structured_output(
        self,
        schema: Mapping[str, Any] | type,
        *,
        method: StructuredMethod = "json_schema",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """Answers parsed into ``schema`` (a Pydantic class, a TypedDict or a JSON schema dict).

        ``method``:

        * ``"json_schema"`` (default): the engine's constrained decoding (``response_format``), so the output
          is schema-valid by construction;
        * ``"function_calling"``: the schema as a forced (named) tool call, whose arguments the engine holds
          to the schema (vLLM: the tool goes out strict unless ``strict=False``; see
          ``profile["constrained_tool_arguments"]``);
        * ``"json_mode"``: any JSON object (describe the keys in the prompt). TGI has no JSON-object mode
          and refuses it (``InvalidRequestError``): use ``"json_schema"`` there.

        Pydantic schemas give Pydantic objects, others dicts; streaming yields growing partial results.
        ``include_raw=True`` returns ``{"raw", "parsed", "parsing_error"}`` instead of raising on bad output.
        """
        if kwargs:
            raise ValueError(f"unsupported arguments {sorted(kwargs)}")
        is_pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
        llm: Runnable[LanguageModelInput, BaseMessage]
        parser: OutputParserLike[Any]
        ls_format = {"kwargs": {"method": method, "strict": strict}, "schema": schema}
        if method == "function_calling":
            name = convert_to_openai_tool(schema)["function"]["name"]
            llm = self.bind_tools(
                [schema], tool_choice=name, strict=strict, ls_structured_output_format=ls_format
            )
            parser = (
                PydanticToolsParser(tools=[cast(Any, schema)], first_tool_only=True)
                if is_pydantic
                else JsonOutputKeyToolsParser(key_name=name, first_tool_only=True)
            )
        elif method in ("json_schema", "json_mode"):
            fmt = _response_format(schema, strict) if method == "json_schema" else {"type": "json_object"}
            llm = self.bind(response_format=fmt, ls_structured_output_format=ls_format)
            parser = (
                PydanticOutputParser(pydantic_object=cast(Any, schema)) if is_pydantic else JsonOutputParser()
            )
        else:
            raise ValueError(
                f"method must be 'json_schema', 'function_calling' or 'json_mode', not {method!r}"
            )
        if not include_raw:
            return llm | parser
        parse = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser, parsing_error=lambda _: None)
        fallback = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parse.with_fallbacks([fallback], exception_key="parsing_error")


def _check_choice(choice: str | bool | Mapping[str, Any], names: list[str]) -> None:
    if isinstance(choice, str) and choice not in _CHOICE_WORDS and choice not in names:
        raise ValueError(
            f"tool_choice {choice!r} is neither {', '.join(_CHOICE_WORDS)} nor a bound tool {names}"
        )


def _response_format(schema: Mapping[str, Any] | type, strict: bool | None) -> dict[str, Any]:
    """An OpenAI-style ``response_format``; the engine layer turns it into the engine's grammar."""
    if isinstance(schema, Mapping) and schema.get("type") == "json_schema" and "json_schema" in schema:
        return dict(schema)  # already a response_format
    try:
        fn = convert_to_openai_tool(schema, strict=strict)["function"]
        name, body = fn["name"], fn.get("parameters") or {"type": "object", "properties": {}}
    except (ValueError, TypeError, KeyError):  # an untitled JSON schema: use it as is
        if not isinstance(schema, Mapping):
            raise
        name, body = str(schema.get("title") or "response"), dict(schema)
    json_schema: dict[str, Any] = {"name": name, "schema": body}
    if strict is not None:
        json_schema["strict"] = strict
    return {"type": "json_schema", "json_schema": json_schema}


# ---- engines --------------------------------------------------------------------------------------------


class ChatTGI(_BaseChatEngine):
    """Chat model on Hugging Face Text Generation Inference's Messages API.

    ``base_url`` / ``api_key`` default to ``$TGI_BASE_URL`` / ``$TGI_API_KEY``. TGI's chat route has no
    ``top_k`` or repetition penalty (use :class:`~langchain_selfhosted.TGILLM` on ``/generate`` for
    those), no JSON-object mode (``with_structured_output(method="json_mode")`` is refused), and refuses
    ``response_format`` together with tools. A per-call ``model=...`` is sent as TGI's ``model`` field, which
    TGI reads as a LoRA adapter id.
    """

    client_class = TGIClient

    tool_prompt: Annotated[str | None, SAMPLING] = None
    """Text TGI puts before the tool definitions in the prompt."""


class ChatVLLM(VLLMParams, _BaseChatEngine):
    """Chat model on vLLM's OpenAI-compatible server.

    ``base_url`` / ``api_key`` default to ``$VLLM_BASE_URL`` / ``$VLLM_API_KEY``. Tool calling needs the
    server started with ``--enable-auto-tool-choice --tool-call-parser ...``; vLLM does not make non-strict
    tool arguments follow their schema, so such calls may land in ``invalid_tool_calls`` (a named
    ``tool_choice`` goes out strict by itself).
    """

    client_class = VLLMClient


class ChatLlamaCpp(LlamaCppParams, _BaseChatEngine):
    """Chat model on llama.cpp's ``llama-server`` (start it with ``--jinja`` for tool calling).

    ``base_url`` / ``api_key`` default to ``$LLAMACPP_BASE_URL`` / ``$LLAMACPP_API_KEY``.
    """

    client_class = LlamaCppClient


class ChatSGLang(SGLangParams, _BaseChatEngine):
    """Chat model on SGLang's OpenAI-compatible server (``python -m sglang.launch_server``).

    ``base_url`` / ``api_key`` default to ``$SGLANG_BASE_URL`` / ``$SGLANG_API_KEY`` (no ``/v1``). Tool
    calling needs ``--tool-call-parser ...``, separate thinking ``--reasoning-parser ...``. SGLang has no
    thinking budget on its chat route (``thinking_budget`` is refused). ``Regex``/``Grammar`` from
    ``engine_clients`` as ``response_format`` become SGLang's ``regex``/``ebnf``.
    """

    client_class = SGLangClient


class ChatEngine(AutoEngineMixin, _BaseChatEngine):
    """Chat model on whichever engine serves ``base_url`` (TGI, vLLM, llama.cpp or SGLang), detected on first
    use.

    >>> from langchain_selfhosted import ChatEngine
    >>> ChatEngine(base_url="http://127.0.0.1:8080").invoke("Hello")     # engine found by probing, once
    >>> ChatEngine(base_url=url, engine="vllm", model_kwargs={"top_k": 20})  # no probing

    Constructing does no I/O: the first call probes the server's discovery routes (a few short GETs,
    ``probe_timeout`` s each; see ``engine_clients.connect``), then every call talks that engine's dialect.
    ``engine=`` skips the probes. Without ``base_url``, ``$<ENGINE>_BASE_URL`` of the ``engine`` given is
    used, or else the only ``TGI_BASE_URL``/``VLLM_BASE_URL``/``LLAMACPP_BASE_URL``/``SGLANG_BASE_URL`` set
    (naming the engine).

    Only the sampling fields every engine takes are typed here; an engine's own (``top_k``, ``min_p``,
    ``repetition_penalty``, ``tool_prompt``...) go in ``model_kwargs`` or per call, and are refused before
    sending by an engine that lacks them. ``client=`` takes a ready client or ``EnginePool``
    (``ChatEngine(client=EnginePool([...], engine="vllm"))``).
    """
