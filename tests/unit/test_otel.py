"""OpenTelemetry spans per request (GenAI semantic conventions), recorded with the SDK's in-memory exporter."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.trace import StatusCode

from engine_clients import BadRequestError
from engine_clients import End
from engine_clients import LlamaCppClient
from engine_clients import StreamError
from engine_clients import TGIClient
from engine_clients import VLLMClient
from engine_clients import _otel
from tests.support.mock_streams import BrokenStream
from tests.unit.test_timings import LLAMA_STREAM
from tests.unit.test_timings import Chunks
from tests.unit.test_timings import llama_answer

LLAMA = "http://llama.test:8080"
SSE = {"content-type": "text/event-stream"}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _otel.set_tracer_provider(provider)
    try:
        yield exporter
    finally:
        _otel.set_tracer_provider(None)


def only(exporter: InMemorySpanExporter) -> ReadableSpan:
    finished = exporter.get_finished_spans()
    assert len(finished) == 1, finished
    return finished[0]


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def assert_chat_span(span: ReadableSpan, *, model: str = "m") -> dict[str, Any]:
    a = attrs(span)
    assert span.name == f"chat {model}" and span.kind is SpanKind.CLIENT
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "llamacpp" and a["gen_ai.system"] == "llamacpp"
    assert a["gen_ai.request.model"] == model
    assert a["gen_ai.request.max_tokens"] == 8 and a["gen_ai.request.temperature"] == 0.5
    assert a["gen_ai.request.top_p"] == 0.9
    assert a["gen_ai.response.model"] == "m" and a["gen_ai.response.id"] == "chatcmpl-1"
    assert tuple(a["gen_ai.response.finish_reasons"]) == ("stop",)
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (21, 3)
    assert a["gen_ai.usage.cache_read.input_tokens"] == 20
    assert (a["server.address"], a["server.port"]) == ("llama.test", 8080)
    assert a["engine_clients.total_time"] >= 0 and a["engine_clients.server_cached_tokens"] == 20
    assert "error.type" not in a and span.status.status_code is not StatusCode.ERROR
    assert "gen_ai.input.messages" not in a and "gen_ai.output.messages" not in a  # content is opt-in
    return a


SAMPLING: dict[str, Any] = {"max_tokens": 8, "temperature": 0.5, "top_p": 0.9}


@respx.mock
def test_chat_span(spans: InMemorySpanExporter) -> None:
    respx.post(f"{LLAMA}/v1/chat/completions").mock(return_value=httpx.Response(200, json=llama_answer()))
    with LlamaCppClient(LLAMA, model="m") as client:
        client.chat("secret prompt", **SAMPLING)
    assert_chat_span(only(spans))


@respx.mock
def test_stream_span_ends_at_end(spans: InMemorySpanExporter) -> None:
    respx.post(f"{LLAMA}/v1/chat/completions").mock(
        return_value=httpx.Response(200, stream=Chunks(LLAMA_STREAM), headers=SSE)
    )
    with LlamaCppClient(LLAMA, model="m") as client:
        stream = client.chat_stream("hi", **SAMPLING)
        assert spans.get_finished_spans() == ()  # nothing sent yet: no span
        first = next(stream)
        assert first is not None and spans.get_finished_spans() == ()  # open while the stream runs
        rest = list(stream)
    assert isinstance(rest[-1], End)
    a = assert_chat_span(only(spans))
    assert a["engine_clients.time_to_first_token"] <= a["engine_clients.total_time"]


@respx.mock
async def test_async_chat_and_stream_spans(spans: InMemorySpanExporter) -> None:
    respx.post(f"{LLAMA}/v1/chat/completions").mock(
        side_effect=[
            httpx.Response(200, json=llama_answer()),
            httpx.Response(200, stream=Chunks(LLAMA_STREAM), headers=SSE),
        ]
    )
    async with LlamaCppClient(LLAMA, model="m") as client:
        await client.achat("hi", **SAMPLING)
        events = [e async for e in client.achat_stream("hi", **SAMPLING)]
    assert isinstance(events[-1], End)
    finished = spans.get_finished_spans()
    assert len(finished) == 2
    for span in finished:
        assert_chat_span(span)


@respx.mock
def test_error_span(spans: InMemorySpanExporter) -> None:
    respx.post(f"{LLAMA}/v1/chat/completions").mock(
        return_value=httpx.Response(400, json={"error": {"code": 400, "message": "bad", "type": "x"}})
    )
    with LlamaCppClient(LLAMA, model="m") as client, pytest.raises(BadRequestError):
        client.chat("hi", **SAMPLING)
    span = only(spans)
    assert attrs(span)["error.type"] == "BadRequestError"
    assert span.status.status_code is StatusCode.ERROR
    assert "gen_ai.usage.input_tokens" not in attrs(span)


@respx.mock
async def test_stream_cut_span_async(spans: InMemorySpanExporter) -> None:
    body = b"".join(LLAMA_STREAM[:3])
    respx.post(f"{LLAMA}/v1/chat/completions").mock(
        return_value=httpx.Response(
            200, stream=BrokenStream(body, httpx.RemoteProtocolError("peer closed")), headers=SSE
        )
    )
    async with LlamaCppClient(LLAMA, model="m") as client:
        with pytest.raises(StreamError):
            async for _ in client.achat_stream("hi"):
                pass
    span = only(spans)
    assert attrs(span)["error.type"] == "StreamError" and span.status.status_code is StatusCode.ERROR


@respx.mock
def test_stream_closed_early_ends_span(spans: InMemorySpanExporter) -> None:
    respx.post(f"{LLAMA}/v1/chat/completions").mock(
        return_value=httpx.Response(200, stream=Chunks(LLAMA_STREAM), headers=SSE)
    )
    with LlamaCppClient(LLAMA, model="m") as client:
        stream = client.chat_stream("hi")
        next(stream)
        stream.close()  # type: ignore[attr-defined]
    span = only(spans)
    assert attrs(span)["engine_clients.stream_closed_early"] is True
    assert "error.type" not in attrs(span)


@respx.mock
def test_text_completion_span_on_tgi(spans: InMemorySpanExporter) -> None:
    body = {
        "generated_text": "Hi",
        "details": {"finish_reason": "length", "generated_tokens": 1, "prefill": []},
    }
    respx.post("http://tgi.test/generate").mock(return_value=httpx.Response(200, json=body))
    with TGIClient("http://tgi.test") as client:
        client.generate("hello", max_tokens=1)
    span = only(spans)
    a = attrs(span)
    assert span.name == "text_completion"  # TGI serves one model and was given none
    assert a["gen_ai.operation.name"] == "text_completion" and a["gen_ai.provider.name"] == "tgi"
    assert "gen_ai.request.model" not in a and a["server.port"] == 80
    assert tuple(a["gen_ai.response.finish_reasons"]) == ("length",)


@respx.mock
def test_content_capture_is_opt_in(spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch) -> None:
    respx.post("http://vllm.test/v1/chat/completions").mock(
        return_value=httpx.Response(200, json=llama_answer())
    )
    monkeypatch.setenv(_otel.CAPTURE_ENV, "true")
    with VLLMClient("http://vllm.test") as client:
        client.chat([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}])
        client.trace_content = False  # the client flag wins over the environment
        client.chat("hello again")
    captured, plain = (attrs(s) for s in spans.get_finished_spans())
    messages = json.loads(captured["gen_ai.input.messages"])
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[1]["parts"] == [{"type": "text", "content": "hello"}]
    out = json.loads(captured["gen_ai.output.messages"])
    assert out == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Hi!"}], "finish_reason": "stop"}
    ]
    assert "gen_ai.input.messages" not in plain and "gen_ai.output.messages" not in plain


def test_no_configured_provider_means_no_wrapper() -> None:
    _otel.set_tracer_provider(None)
    if _otel.tracer() is not None:
        from opentelemetry import trace

        if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider):
            pytest.skip("a tracer provider is configured in this process")
    assert _otel.active_tracer() is None
    client = LlamaCppClient(LLAMA)
    stream = client.chat_stream("hi")
    assert stream.gi_code.co_name == "stream"  # type: ignore[attr-defined]  # the transport's own generator


def test_import_does_not_load_opentelemetry() -> None:
    code = "import sys, engine_clients; print(any(m.startswith('opentelemetry') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "False"
