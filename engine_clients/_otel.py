"""OpenTelemetry spans, one per request, following the GenAI semantic conventions (optional).

With ``opentelemetry-api`` installed (``pip install llm-engine-clients[otel]``), every ``chat``/``generate``
call and stream makes a CLIENT span named ``"{operation} {model}"`` through the globally configured tracer
provider: ``gen_ai.operation.name`` (``chat``, ``text_completion``), ``gen_ai.provider.name`` and
``gen_ai.system`` (the engine: ``tgi``, ``vllm``, ``llamacpp``), ``gen_ai.request.*`` (model, max_tokens,
temperature, top_p, top_k, seed, penalties, stop sequences), ``gen_ai.response.*`` (model, id,
finish_reasons), ``gen_ai.usage.input_tokens``/``output_tokens``, ``server.address``/``server.port``, and on
failure ``error.type`` with an ERROR status. The request's timings are added as ``engine_clients.*``
attributes (time to first token, tokens per second, ...). A stream's span ends at its ``End``, at its error,
or when the consumer closes the stream early.

Prompt and completion text are recorded (``gen_ai.input.messages``, ``gen_ai.output.messages``) only when
asked for: ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`` or ``client.trace_content = True``.

Without the package nothing here imports it: :func:`tracer` answers None after one failed import, and the
clients then take their untraced path (no wrapper around streams).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from contextlib import AbstractContextManager
from contextlib import nullcontext
from contextlib import suppress
from typing import Any
from urllib.parse import urlsplit

from .types import Completion

__all__ = ["Call", "active_tracer", "set_tracer_provider", "tracer"]

CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_UNSET: Any = object()
_TRACER: Any = _UNSET
_OWN_PROVIDER = False

_REQUEST_ATTRIBUTES = (
    ("max_tokens", "gen_ai.request.max_tokens"),
    ("temperature", "gen_ai.request.temperature"),
    ("top_p", "gen_ai.request.top_p"),
    ("top_k", "gen_ai.request.top_k"),
    ("seed", "gen_ai.request.seed"),
    ("frequency_penalty", "gen_ai.request.frequency_penalty"),
    ("presence_penalty", "gen_ai.request.presence_penalty"),
)
_TIMING_ATTRIBUTES = (
    "time_to_first_byte",
    "time_to_first_token",
    "total_time",
    "tokens_per_second",
    "inter_token_p50",
    "inter_token_max",
    "server_queue_time",
    "server_prompt_time",
    "server_generation_time",
    "server_cached_tokens",
)


def tracer() -> Any:
    """The package's tracer, or None when ``opentelemetry-api`` is not installed (looked up once)."""
    global _TRACER
    t = _TRACER
    if t is _UNSET:
        try:
            from opentelemetry import trace
        except ImportError:
            t = None
        else:
            t = trace.get_tracer("engine_clients", "0.1.0")
        _TRACER = t
    return t


def active_tracer() -> Any:
    """:func:`tracer`, or None also while no tracer provider is configured (spans would record nothing)."""
    t = tracer()
    if t is None or _OWN_PROVIDER:
        return t
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    return t


def set_tracer_provider(provider: Any) -> None:
    """Trace through ``provider`` instead of the global one (None: back to the global provider)."""
    global _TRACER, _OWN_PROVIDER
    _TRACER = _UNSET if provider is None else provider.get_tracer("engine_clients", "0.1.0")
    _OWN_PROVIDER = provider is not None


def capture_content(flag: bool | None) -> bool:
    if flag is not None:
        return flag
    return os.environ.get(CAPTURE_ENV, "").strip().lower() in ("true", "1", "yes")


class Call:
    """The span of one request: :meth:`open` starts it (None when tracing records nothing), then
    :meth:`done` or :meth:`fail` ends it."""

    __slots__ = ("capture", "span")

    def __init__(self, span: Any, capture: bool) -> None:
        self.span = span
        self.capture = capture

    @classmethod
    def open(
        cls,
        tracer: Any,
        *,
        operation: str,
        engine: str,
        base_url: str,
        model: str | None,
        sampling: Mapping[str, Any],
        prompt: Callable[[], Any],
        capture: bool | None,
    ) -> Call | None:
        from opentelemetry.trace import SpanKind

        attrs: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": engine,
            "gen_ai.system": engine,
        }
        if model:
            attrs["gen_ai.request.model"] = model
        for key, name in _REQUEST_ATTRIBUTES:
            value = sampling.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                attrs[name] = value
        stop = sampling.get("stop")
        if stop:
            attrs["gen_ai.request.stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        try:
            url = urlsplit(base_url)
            if url.hostname:
                attrs["server.address"] = url.hostname
            port = url.port or {"http": 80, "https": 443}.get(url.scheme)
            if port:
                attrs["server.port"] = port
        except ValueError:
            pass
        name = f"{operation} {model}" if model else operation
        span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attrs)
        if not span.is_recording():
            return None
        call = cls(span, capture_content(capture))
        if call.capture:
            # content that is not JSON (bytes in a part) is left out
            with suppress(TypeError, ValueError):
                span.set_attribute("gen_ai.input.messages", json.dumps(_input_messages(prompt())))
        return call

    def active(self) -> AbstractContextManager[Any]:
        """Make the span current while the request is sent (so HTTP client spans nest under it)."""
        from opentelemetry.trace import use_span

        manager: AbstractContextManager[Any] = use_span(
            self.span, end_on_exit=False, record_exception=False, set_status_on_exception=False
        )
        return manager

    def done(self, completion: Completion) -> None:
        span = self.span
        if completion.model:
            span.set_attribute("gen_ai.response.model", completion.model)
        if completion.id:
            span.set_attribute("gen_ai.response.id", completion.id)
        span.set_attribute("gen_ai.response.finish_reasons", [completion.finish_reason])
        usage = completion.usage
        if usage is not None:
            span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
            if usage.cached_prompt_tokens is not None:
                span.set_attribute("gen_ai.usage.cache_read.input_tokens", usage.cached_prompt_tokens)
            if usage.reasoning_tokens is not None:
                span.set_attribute("gen_ai.usage.reasoning.output_tokens", usage.reasoning_tokens)
        timings = completion.timings
        if timings is not None:
            for key in _TIMING_ATTRIBUTES:
                value = getattr(timings, key)
                if value is not None:
                    span.set_attribute(f"engine_clients.{key}", value)
        if self.capture:
            span.set_attribute("gen_ai.output.messages", json.dumps([_output_message(completion)]))
        span.end()

    def fail(self, exc: BaseException) -> None:
        from opentelemetry.trace import Status
        from opentelemetry.trace import StatusCode

        span = self.span
        span.set_attribute("error.type", type(exc).__name__)
        span.set_status(Status(StatusCode.ERROR, str(exc)[:500]))
        span.end()

    def closed(self) -> None:
        """The consumer stopped reading a stream before its end."""
        self.span.set_attribute("engine_clients.stream_closed_early", True)
        self.span.end()


def activate(call: Call | None) -> AbstractContextManager[Any]:
    return nullcontext() if call is None else call.active()


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "".join(
            p.get("text", "") for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str)
        )
    return ""


def _input_messages(prompt: Any) -> list[dict[str, Any]]:
    """The semantic conventions' ``gen_ai.input.messages`` shape: role and text/tool-call parts."""
    if isinstance(prompt, str):
        return [{"role": "user", "parts": [{"type": "text", "content": prompt}]}]
    out = []
    for m in prompt:
        parts: list[dict[str, Any]] = []
        text = _text(m.get("content"))
        if text:
            parts.append({"type": "text", "content": text})
        for tc in m.get("tool_calls") or ():
            fn = tc.get("function") or {}
            args = fn.get("arguments")
            parts.append({"type": "tool_call", "id": tc.get("id"), "name": fn.get("name"), "arguments": args})
        if m.get("role") == "tool":
            parts = [{"type": "tool_call_response", "id": m.get("tool_call_id"), "response": text}]
        out.append({"role": m.get("role"), "parts": parts})
    return out


def _output_message(completion: Completion) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if completion.reasoning:
        parts.append({"type": "reasoning", "content": completion.reasoning})
    if completion.content:
        parts.append({"type": "text", "content": completion.content})
    for tc in completion.tool_calls:
        parts.append({"type": "tool_call", "id": tc.id, "name": tc.name, "arguments": tc.raw_arguments})
    return {"role": "assistant", "parts": parts, "finish_reason": completion.finish_reason}
