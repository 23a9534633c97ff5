"""Engine-neutral data model: messages, tools, structured-output formats, results and stream events.

Results and events are slotted dataclasses: they are built once per chunk on the streaming hot path,
where pydantic validation would cost more than the HTTP decoding itself.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Literal
from typing import TypeAlias

from ._embedding_types import Embeddings
from ._embedding_types import Reranking
from ._embedding_types import RerankResult

__all__ = [
    "ChatMessage",
    "Completion",
    "Embeddings",
    "End",
    "EngineInfo",
    "FinishReason",
    "Grammar",
    "HealthStatus",
    "HistoryChange",
    "JsonObject",
    "JsonSchema",
    "MessageInput",
    "Reasoning",
    "RecoveredCall",
    "Regex",
    "RerankResult",
    "Reranking",
    "ResponseFormat",
    "ResponseFormatInput",
    "Started",
    "StreamEvent",
    "Timings",
    "Token",
    "TokenInfo",
    "TokenLogprob",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolChoice",
    "ToolInput",
    "TopLogprob",
    "Usage",
]

FinishReason: TypeAlias = Literal["stop", "length", "tool_calls", "content_filter", "unknown"]
"""Normalized finish reasons; the engine's own value is kept next to it as ``raw_finish_reason``."""


class HealthStatus(str, enum.Enum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"  # up but not serving yet (loading) or reporting a failed check
    UNHEALTHY = "unhealthy"  # nothing answers


@dataclass(slots=True)
class ToolCall:
    """A complete tool call. ``arguments`` is the parsed JSON object, or None when ``raw_arguments``
    is not a JSON object (then ``error`` says why); ``raw_arguments`` is always the string form."""

    id: str
    name: str
    arguments: dict[str, Any] | None
    raw_arguments: str
    index: int = 0
    error: str | None = None

    @property
    def valid(self) -> bool:
        return self.arguments is not None

    def to_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.raw_arguments},
        }


@dataclass(slots=True)
class ChatMessage:
    """A chat message. Plain OpenAI-style dicts are accepted everywhere a message is."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None
    reasoning: str | None = None
    """An assistant turn's thinking, sent back in the field the engine reads (vLLM ``reasoning``,
    llama.cpp ``reasoning_content``; TGI has none, so it is left out there, never merged into content)."""


MessageInput: TypeAlias = "ChatMessage | Mapping[str, Any]"


@dataclass(slots=True)
class Tool:
    """A function tool. OpenAI-style dicts (``{"type": "function", "function": {...}}``) are accepted too."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None
    """Ask the engine to hold arguments to ``parameters`` (vLLM does only then; TGI always constrains)."""


ToolInput: TypeAlias = "Tool | Mapping[str, Any]"
ToolChoice: TypeAlias = 'Literal["auto", "none", "required"] | str | Mapping[str, Any]'
"""``"auto"``, ``"none"``, ``"required"``, a tool name, or an OpenAI-style named choice dict."""


@dataclass(slots=True, frozen=True)
class JsonSchema:
    """Constrain output to a JSON schema (a dict, or build one with :meth:`from_model`)."""

    schema: dict[str, Any]
    name: str = "response"
    strict: bool | None = None


@dataclass(slots=True, frozen=True)
class JsonObject:
    """Constrain output to any JSON object."""


@dataclass(slots=True, frozen=True)
class Regex:
    """Constrain output to a regular expression (TGI, vLLM)."""

    pattern: str


@dataclass(slots=True, frozen=True)
class Grammar:
    """Constrain output to a GBNF grammar (llama.cpp) or an EBNF/Lark grammar (vLLM)."""

    grammar: str


ResponseFormat: TypeAlias = "JsonSchema | JsonObject | Regex | Grammar"
ResponseFormatInput: TypeAlias = "ResponseFormat | Mapping[str, Any] | type"
"""A format object, a JSON-schema dict, an OpenAI ``response_format`` dict, or a pydantic model class."""


@dataclass(slots=True)
class Usage:
    """Token counts. ``reasoning_tokens`` (part of ``completion_tokens``) and ``cached_prompt_tokens``
    (part of ``prompt_tokens``, served from the prefix cache) are None when the engine does not say."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    reasoning_tokens: int | None = None
    cached_prompt_tokens: int | None = None


@dataclass(slots=True)
class Timings:
    """How long one request took, in seconds; every field is None when it is not known (never guessed).

    Measured by the client, for the attempt that answered: ``time_to_first_byte`` (request sent to response
    headers), ``time_to_first_token`` (to the first :class:`Token` or :class:`Reasoning` of a stream; None
    without a stream), ``total_time`` (to the end of the answer), ``tokens_per_second`` (from ``usage``:
    completion tokens over ``total_time`` for a whole answer; for a stream the tokens after the first over
    the time from first to last token) and, for streams, ``inter_token_p50``/``inter_token_max``: the gaps
    between network chunks that carried tokens.

    Reported by the server, as far as the engine tells: ``server_queue_time`` (TGI ``x-queue-time``),
    ``server_prompt_time`` (prefill: llama.cpp ``prompt_ms``), ``server_generation_time`` (decode: llama.cpp
    ``predicted_ms``, TGI ``x-inference-time``), ``server_total_time`` (TGI ``x-total-time``),
    ``server_tokens_per_second`` (llama.cpp ``predicted_per_second``, TGI 1 / ``x-time-per-token``),
    ``server_cached_tokens`` (prompt tokens reused from the cache: llama.cpp ``cache_n``). ``server`` holds
    every figure the engine sent under the engine's own names (llama.cpp ``timings``, TGI's ``x-*`` headers
    and ``/generate`` details such as ``seed``)."""

    time_to_first_byte: float | None = None
    time_to_first_token: float | None = None
    total_time: float | None = None
    tokens_per_second: float | None = None
    inter_token_p50: float | None = None
    inter_token_max: float | None = None
    server_queue_time: float | None = None
    server_prompt_time: float | None = None
    server_generation_time: float | None = None
    server_total_time: float | None = None
    server_tokens_per_second: float | None = None
    server_cached_tokens: int | None = None
    server: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The known figures only (None fields left out), ``server`` included when not empty."""
        out: dict[str, Any] = {}
        for name in self.__slots__:
            value = getattr(self, name)
            if value is not None and value != {}:
                out[name] = dict(value) if name == "server" else value
        return out


@dataclass(slots=True)
class TopLogprob:
    token: str
    logprob: float | None


@dataclass(slots=True)
class TokenLogprob:
    token: str
    logprob: float | None
    id: int | None = None
    top_logprobs: list[TopLogprob] = field(default_factory=list)


@dataclass(slots=True)
class Completion:
    """The result of ``chat``/``generate`` (and what a stream's :class:`End` assembles).

    ``content`` is the answer only; a reasoning model's thinking is in ``reasoning`` (None when there was
    none), whether the engine parsed it out or the client split it off at ``<think>`` tags."""

    content: str
    finish_reason: FinishReason
    raw_finish_reason: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage | None = None
    model: str | None = None
    id: str | None = None
    logprobs: list[TokenLogprob] | None = None
    engine: str | None = None
    reasoning: str | None = None
    timings: Timings | None = None
    """How long the request took, measured here and as the engine reported it (see :class:`Timings`)."""
    recovered: tuple[RecoveredCall, ...] = ()
    """Tool calls taken from markup the server's tool parser left in the content (see
    :class:`RecoveredCall`); empty when the engine parsed every call itself."""
    history_changes: tuple[HistoryChange, ...] = ()
    """What was changed in the message history to fit the server's chat template (see ``history=``);
    empty when the history was sent as given."""
    content_from_reasoning: bool = False
    """``response_format`` asked for JSON and the engine left the content empty: ``content`` is the JSON the
    reasoning ended with, checked against the schema (else :class:`~engine_clients.StructuredOutputError`)."""


@dataclass(slots=True, frozen=True)
class HistoryChange:
    """One change :func:`fit_history` made. ``index`` is the position, in the *original* history, of the
    message it concerns (for ``inserted_user``: the assistant message the user message was put before).

    ``kind``: ``"merged_system"``, ``"moved_system"``, ``"merged_consecutive"``, ``"inserted_user"``,
    ``"flattened_content"``, ``"filled_empty_content"`` or ``"renamed_tool_call_id"``."""

    kind: str
    index: int
    detail: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable form: ``{"kind", "index", "detail"}``."""
        return {"kind": self.kind, "index": self.index, "detail": self.detail}


@dataclass(slots=True, frozen=True)
class RecoveredCall:
    """A tool call the client recovered from tool-call markup leaked into the answer's content (tools were
    offered but the server's tool parser missed the call). The markup is gone from ``content``; the call is
    ``Completion.tool_calls[i]`` with ``i`` its ``index`` there (an invalid call when it was cut off)."""

    index: int
    markup: Literal["hermes", "mistral", "llama3", "json"]
    """``<tool_call>`` (Hermes, Qwen), ``[TOOL_CALLS]`` (Mistral), ``<|python_tag|>`` (Llama 3) or a bare
    JSON object."""
    source: str
    """The markup as the model wrote it."""
    repaired: bool = False
    """The arguments were not valid JSON and were repaired (with ``json-repair``): check them."""


@dataclass(slots=True)
class EngineInfo:
    engine: str
    model: str | None
    version: str | None
    max_input_tokens: int | None = None
    """Longest prompt the server accepts (tokens), as the engine publishes it."""
    max_total_tokens: int | None = None
    """Prompt plus output limit: the context window the engine enforces."""
    raw: dict[str, Any] = field(default_factory=dict)
    # Capabilities, as the server reports them; None when it does not say.
    image_inputs: bool | None = None
    """Images in chat messages (llama.cpp ``/props`` modalities.vision; TGI image-text-to-text models)."""
    audio_inputs: bool | None = None
    """Audio in chat messages (llama.cpp ``/props`` modalities.audio; always False on TGI)."""
    tool_calling: bool | None = None
    """The chat template handles tools (llama.cpp ``chat_template_caps``; TGI always)."""
    structured_output: bool | None = None
    """Constrained decoding to a JSON schema (grammar-based on all three engines)."""
    constrained_tool_arguments: bool | None = None
    """A named ``tool_choice``'s arguments are held to the tool's schema (vLLM: only for a strict tool, which
    the client sends for a named choice). False: they may not fit it; prefer JSON-schema output."""
    reasoning: bool | None = None
    """The model thinks before answering (a ``<think>`` chat template on llama.cpp)."""
    max_output_tokens: int | None = None
    """Most tokens one answer can have: the server's own cap (llama.cpp ``n_predict``), else the context
    window (an upper bound: the prompt takes its share)."""


@dataclass(slots=True)
class TokenInfo:
    id: int
    text: str | None = None


# ---- stream events, in the order a stream yields them -------------------------------------------


@dataclass(slots=True)
class Started:
    engine: str
    model: str | None
    id: str | None = None


@dataclass(slots=True)
class Reasoning:
    """A piece of the model's thinking. Never part of any :class:`Token`; ``index`` counts these pieces."""

    text: str
    index: int


@dataclass(slots=True)
class Token:
    text: str
    index: int
    id: int | None = None
    logprob: float | None = None
    top_logprobs: list[TopLogprob] | None = None


@dataclass(slots=True)
class ToolCallDelta:
    index: int
    id: str | None
    name: str | None
    arguments: str


@dataclass(slots=True)
class End:
    completion: Completion

    @property
    def finish_reason(self) -> FinishReason:
        return self.completion.finish_reason

    @property
    def usage(self) -> Usage | None:
        return self.completion.usage

    @property
    def content(self) -> str:
        return self.completion.content

    @property
    def reasoning(self) -> str | None:
        return self.completion.reasoning

    @property
    def tool_calls(self) -> list[ToolCall]:
        return self.completion.tool_calls


StreamEvent: TypeAlias = "Started | Reasoning | Token | ToolCallDelta | End"
