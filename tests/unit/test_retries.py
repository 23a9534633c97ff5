"""Retries inside one client's transport: what is retried, how long it waits, when it gives up, and what is
never retried (client errors, and any stream whose body has begun). Waits are recorded, not slept."""

from __future__ import annotations

import asyncio
import builtins
import email.utils
import time
from collections.abc import Awaitable
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import respx

from engine_clients import AuthenticationError
from engine_clients import BadRequestError
from engine_clients import EngineUnavailableError
from engine_clients import InternalServerError
from engine_clients import LlamaCppClient
from engine_clients import NotFoundError
from engine_clients import RateLimitError
from engine_clients import StreamError
from engine_clients import TimeoutError
from engine_clients import VLLMClient
from engine_clients._transport import MAX_RETRY_WAIT
from engine_clients._transport import parse_retry_after
from tests.support.mock_streams import BrokenStream
from tests.support.mock_streams import event_stream
from tests.support.mock_streams import sse

V = "http://vllm.test"
CHAT = f"{V}/v1/chat/completions"
OK = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
}
STREAM = sse(
    {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]},
    {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
)
MODES = ["sync", "async"]


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every back-off the transport would sleep, sync (time.sleep) or async (asyncio.sleep)."""
    recorded: list[float] = []

    async def fake_async_sleep(seconds: float, *args: Any) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(time, "sleep", recorded.append)
    monkeypatch.setattr(asyncio, "sleep", fake_async_sleep)
    return recorded


async def run(mode: str, sync: Callable[[], Any], coro: Callable[[], Awaitable[Any]]) -> Any:
    return sync() if mode == "sync" else await coro()


async def chat(mode: str, client: VLLMClient) -> Any:
    return await run(mode, lambda: client.chat("hi"), lambda: client.achat("hi"))


async def stream(mode: str, client: VLLMClient) -> list[Any]:
    async def consume() -> list[Any]:
        return [e async for e in client.achat_stream("hi")]

    return await run(mode, lambda: list(client.chat_stream("hi")), consume)


@pytest.mark.parametrize("mode", MODES)
@respx.mock
async def test_503_then_200_is_retried(mode: str, waits: list[float]) -> None:
    route = respx.post(CHAT).mock(
        side_effect=[httpx.Response(503, text="Service Unavailable"), httpx.Response(200, json=OK)]
    )
    assert (await chat(mode, VLLMClient(V))).content == "hi"
    assert route.call_count == 2
    assert len(waits) == 1 and 0.5 <= waits[0] <= 1.0  # exponential back-off with jitter, first step


@pytest.mark.parametrize("mode", MODES)
@respx.mock
async def test_502_504_and_timeouts_are_retried_too(mode: str, waits: list[float]) -> None:
    route = respx.post(CHAT).mock(
        side_effect=[
            httpx.Response(502, text="Bad Gateway"),
            httpx.Response(504, text="Gateway Timeout"),
            httpx.ReadTimeout("slow"),
            httpx.Response(200, json=OK),
        ]
    )
    assert (await chat(mode, VLLMClient(V, max_retries=3))).content == "hi"
    assert route.call_count == 4 and len(waits) == 3
    assert waits[0] >= 0.5 and max(waits) <= 8.5  # exponential back-off with jitter, bounded


@pytest.mark.parametrize("mode", MODES)
@respx.mock
async def test_429_with_retry_after_waits_that_long(mode: str, waits: list[float]) -> None:
    route = respx.post(CHAT).mock(
        side_effect=[
            httpx.Response(
                429, headers={"retry-after": "1"}, json={"error": "overloaded", "error_type": "overloaded"}
            ),
            httpx.Response(200, json=OK),
        ]
    )
    assert (await chat(mode, VLLMClient(V))).content == "hi"
    assert route.call_count == 2 and waits == [1.0]


@pytest.mark.parametrize("mode", MODES)
@respx.mock
async def test_retry_after_as_http_date_and_capped(mode: str, waits: list[float]) -> None:
    soon = email.utils.formatdate(time.time() + 3, usegmt=True)
    respx.post(CHAT).mock(
        side_effect=[
            httpx.Response(503, headers={"retry-after": soon}, text="busy"),
            httpx.Response(429, headers={"retry-after": "3600"}, text="busy"),
            httpx.Response(200, json=OK),
        ]
    )
    assert (await chat(mode, VLLMClient(V))).content == "hi"
    assert len(waits) == 2
    assert 1.0 <= waits[0] <= 3.0  # an HTTP date a few seconds ahead
    assert waits[1] == MAX_RETRY_WAIT  # an hour is capped at 30 s


def test_parse_retry_after() -> None:
    assert parse_retry_after({"retry-after": "2.5"}) == 2.5
    assert parse_retry_after({"retry-after": "-3"}) == 0.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # in the past


@pytest.mark.parametrize("mode", MODES)
@respx.mock
async def test_429_gives_up_as_rate_limit_error(mode: str, waits: list[float]) -> None:
    route = respx.post(CHAT).respond(429, headers={"retry-after": "2"}, json={"error": "overloaded"})
    with pytest.raises(RateLimitError) as info:
        await chat(mode, VLLMClient(V, max_retries=1))
    assert route.call_count == 2 and waits == [2.0] and info.value.retry_after == 2.0


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("max_retries", [0, 1, 4])
@respx.mock
async def test_connect_errors_exhaust_attempts_then_unavailable(
    mode: str, max_retries: int, waits: list[float]
) -> None:
    route = respx.post(CHAT).mock(side_effect=httpx.ConnectError("Connection refused"))
    retried: list[BaseException] = []
    client = VLLMClient(V, max_retries=max_retries)
    (client.sync_transport if mode == "sync" else client.async_transport).on_retry = retried.append
    with pytest.raises(EngineUnavailableError, match="ConnectError") as info:
        await chat(mode, client)
    assert route.call_count == max_retries + 1
    assert len(waits) == max_retries and len(retried) == max_retries
    assert isinstance(info.value.__cause__, httpx.ConnectError)


@pytest.mark.parametrize("mode", MODES)
@respx.mock
async def test_stream_open_is_retried_on_connect_errors(mode: str, waits: list[float]) -> None:
    route = respx.post(CHAT).mock(side_effect=[httpx.ConnectError("refused"), event_stream(STREAM)])
    events = await stream(mode, VLLMClient(V))
    assert events[-1].content == "hi" and route.call_count == 2


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (
            400,
            {"error": {"message": "bad", "type": "BadRequestError", "param": None, "code": 400}},
            BadRequestError,
        ),
        (401, {"error": "Unauthorized"}, AuthenticationError),
        (404, {"error": {"message": "no model", "type": "NotFoundError", "code": 404}}, NotFoundError),
        (422, {"error": "Input validation error", "error_type": "validation"}, BadRequestError),
        (
            500,
            {"error": {"message": "boom", "type": "InternalServerError", "code": 500}},
            InternalServerError,
        ),
    ],
)
@respx.mock
async def test_client_errors_and_500_are_never_retried(
    mode: str, status: int, body: Any, error: type[Exception], waits: list[float]
) -> None:
    route = respx.post(CHAT).respond(status, json=body)
    with pytest.raises(error):
        await chat(mode, VLLMClient(V, max_retries=5))
    assert route.call_count == 1 and waits == []
    route.reset()
    with pytest.raises(error):
        await stream(mode, VLLMClient(V, max_retries=5))
    assert route.call_count == 1 and waits == []


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "exc", [httpx.RemoteProtocolError("peer closed"), httpx.ReadError("reset"), httpx.ReadTimeout("stalled")]
)
@respx.mock
async def test_a_stream_whose_first_byte_arrived_is_never_retried(
    mode: str, exc: Exception, waits: list[float]
) -> None:
    body = sse({"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": "par"}}]}, done=False)
    route = respx.post(CHAT).mock(return_value=httpx.Response(200, stream=BrokenStream(body, exc)))
    with pytest.raises(StreamError) as info:
        await stream(mode, VLLMClient(V, max_retries=5))
    assert info.value.partial_text == "par"
    assert route.call_count == 1 and waits == []


@pytest.mark.parametrize("mode", MODES)
@respx.mock
async def test_a_stream_cut_right_after_its_headers_is_not_retried(mode: str, waits: list[float]) -> None:
    route = respx.post(CHAT).mock(
        return_value=httpx.Response(200, stream=BrokenStream(b"", httpx.RemoteProtocolError("peer closed")))
    )
    with pytest.raises(StreamError) as info:
        await stream(mode, VLLMClient(V, max_retries=5))
    assert info.value.partial_text == "" and route.call_count == 1 and waits == []


@pytest.mark.parametrize("mode", MODES)
@respx.mock
async def test_non_stream_timeouts_give_up_as_timeout_error(mode: str, waits: list[float]) -> None:
    route = respx.post(CHAT).mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(TimeoutError) as info:
        await chat(mode, VLLMClient(V, max_retries=2))
    assert isinstance(info.value, builtins.TimeoutError)
    assert route.call_count == 3 and len(waits) == 2


@respx.mock
def test_llamacpp_loading_503_is_retried(waits: list[float]) -> None:
    loading = {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}
    route = respx.post("http://llama.test/completion").mock(
        side_effect=[
            httpx.Response(503, json=loading),
            httpx.Response(503, json=loading),
            httpx.Response(
                200,
                json={
                    "content": "ok",
                    "stop": True,
                    "stop_type": "eos",
                    "tokens_evaluated": 1,
                    "tokens_predicted": 1,
                },
            ),
        ]
    )
    assert LlamaCppClient("http://llama.test").generate("x").content == "ok"
    assert route.call_count == 3 and len(waits) == 2
