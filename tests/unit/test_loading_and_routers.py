"""Servers that are loading or switching models, and routers that cannot reach the replica they picked
(issue 19 items 4 and 5). Waits are recorded, not slept."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
import respx

from engine_clients import EnginePool
from engine_clients import EngineUnavailableError
from engine_clients import InternalServerError
from engine_clients import LlamaCppClient
from engine_clients import ModelLoadingError
from engine_clients import Timeouts
from engine_clients import UpstreamUnreachableError
from engine_clients import VLLMClient
from tests.support.mock_streams import event_stream
from tests.support.mock_streams import sse

L = "http://llama.test"
V = "http://vllm.test"
LOADING = {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}
DONE = {"content": "ok", "stop": True, "stop_type": "eos", "tokens_evaluated": 1, "tokens_predicted": 1}
OK = {
    "id": "c",
    "object": "chat.completion",
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
}
# vllm-router 0.1.17's answer while its health check has not yet dropped a dead worker (verified here).
ROUTER_500 = httpx.Response(
    500, text="Request failed: error sending request for url (http://127.0.0.1:1/v1/chat/completions)"
)
STREAM = sse(
    {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]},
    {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
)


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []

    async def fake_async_sleep(seconds: float, *args: Any) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(time, "sleep", recorded.append)
    monkeypatch.setattr(asyncio, "sleep", fake_async_sleep)
    return recorded


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_loading_server_is_polled_beyond_max_retries(mode: str, waits: list[float]) -> None:
    with respx.mock:
        route = respx.post(f"{L}/completion").mock(
            side_effect=[httpx.Response(503, json=LOADING)] * 5 + [httpx.Response(200, json=DONE)]
        )
        client = LlamaCppClient(L, max_retries=0)
        answer = client.generate("x") if mode == "sync" else await client.agenerate("x")
    assert answer.content == "ok"
    assert route.call_count == 6 and len(waits) == 5


def test_the_wait_for_a_loading_server_is_bounded_by_timeouts_load() -> None:
    with respx.mock:
        route = respx.post(f"{L}/completion").mock(return_value=httpx.Response(503, json=LOADING))
        client = LlamaCppClient(L, max_retries=5, timeout=Timeouts(load=0.5))
        with pytest.raises(ModelLoadingError) as info:
            client.generate("x")
    assert route.call_count == 1  # the next poll would end past the limit
    assert info.value.status_code == 503 and "Loading model" in str(info.value)


def test_loading_is_typed_only_where_the_engine_says_so() -> None:
    """vLLM's dialect knows no "Loading model" 503: it stays a plain EngineUnavailableError."""
    with respx.mock:
        respx.post(f"{V}/v1/chat/completions").mock(return_value=httpx.Response(503, json=LOADING))
        with pytest.raises(Exception) as info:
            VLLMClient(V, model="m", max_retries=0).chat("hi")
    assert not isinstance(info.value, ModelLoadingError)


def test_a_loading_replica_does_not_open_the_pools_breaker(waits: list[float]) -> None:
    with respx.mock:
        respx.post(f"{L}/completion").mock(
            side_effect=[httpx.Response(503, json=LOADING)] * 3 + [httpx.Response(200, json=DONE)] * 3
        )
        pool = EnginePool([L], engine="llamacpp", failure_threshold=1, max_retries=0)
        for _ in range(3):
            assert pool.generate("x").content == "ok"
        replica = pool.stats().replicas[0]
        pool.close()
    assert replica.state == "closed"


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
async def test_a_router_that_cannot_reach_its_pick_is_asked_again_without_the_sticky_route(
    mode: str, stream: bool, waits: list[float]
) -> None:
    ok = event_stream(STREAM) if stream else httpx.Response(200, json=OK)
    with respx.mock:
        route = respx.post(f"{V}/v1/chat/completions").mock(side_effect=[ROUTER_500, ROUTER_500, ok])
        client = VLLMClient(V, model="m", max_retries=0)
        if stream:
            events = (
                list(client.chat_stream("hi", session_id="s1"))
                if mode == "sync"
                else [e async for e in client.achat_stream("hi", session_id="s1")]
            )
            text = "".join(getattr(e, "text", "") for e in events)
        else:
            sync = mode == "sync"
            answer = client.chat("hi", session_id="s1") if sync else await client.achat("hi", session_id="s1")
            text = answer.content
    assert text == "hi"
    sent = [call.request.headers for call in route.calls]
    assert sent[0]["x-session-id"] == "s1"
    assert all("x-session-id" not in h for h in sent[1:])
    request_ids = [h["x-request-id"] for h in sent[1:]]
    assert len(set(request_ids)) == 2  # a fresh key each time, so a hashing router picks anew


def test_a_router_that_never_reaches_an_engine_raises_a_typed_500(waits: list[float]) -> None:
    with respx.mock:
        route = respx.post(f"{V}/v1/chat/completions").mock(return_value=ROUTER_500)
        with pytest.raises(UpstreamUnreachableError) as info:
            VLLMClient(V, model="m", max_retries=1).chat("hi", session_id="s1")
    assert isinstance(info.value, InternalServerError)
    assert route.call_count == 12  # the first try, 10 re-picks, then max_retries=1
    assert "error sending request" in str(info.value)


def test_an_engines_own_500_is_not_rerouted(waits: list[float]) -> None:
    with respx.mock:
        route = respx.post(f"{V}/v1/chat/completions").mock(
            return_value=httpx.Response(
                500, json={"error": {"message": "boom", "type": "InternalServerError"}}
            )
        )
        with pytest.raises(InternalServerError) as info:
            VLLMClient(V, model="m", max_retries=0).chat("hi", session_id="s1")
    assert not isinstance(info.value, UpstreamUnreachableError)
    assert route.call_count == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_stale_pooled_connection_is_resent_once_even_without_retries(
    mode: str, waits: list[float]
) -> None:
    """httpcore's "Server disconnected without sending a response": a keep-alive connection the server had
    closed; the request never reached it, so one resend on a fresh connection is safe and not a retry."""
    stale = httpx.RemoteProtocolError("Server disconnected without sending a response.")
    with respx.mock:
        route = respx.post(f"{V}/v1/chat/completions").mock(side_effect=[stale, httpx.Response(200, json=OK)])
        client = VLLMClient(V, model="m", max_retries=0)
        answer = client.chat("hi") if mode == "sync" else await client.achat("hi")
    assert answer.content == "hi" and route.call_count == 2 and waits == [0.0]


def test_only_one_resend_and_other_disconnects_are_not_resent(waits: list[float]) -> None:
    stale = httpx.RemoteProtocolError("Server disconnected without sending a response.")
    with respx.mock:
        route = respx.post(f"{V}/v1/chat/completions").mock(side_effect=[stale, stale])
        with pytest.raises(EngineUnavailableError):
            VLLMClient(V, model="m", max_retries=0).chat("hi")
        assert route.call_count == 2
    with respx.mock:
        refused = respx.post(f"{V}/v1/chat/completions").mock(side_effect=httpx.ConnectError("refused"))
        with pytest.raises(EngineUnavailableError):
            VLLMClient(V, model="m", max_retries=0).chat("hi")
        assert refused.call_count == 1
