"""EnginePool against mocked replicas (respx): routing, queueing, breakers, failover, affinity, stats, health,
and the security properties of a pool holding an API key."""

from __future__ import annotations

import asyncio
import json
import pickle
import threading
import time
import zlib
from collections.abc import AsyncIterator
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx

from engine_clients import BadRequestError
from engine_clients import End
from engine_clients import EngineUnavailableError
from engine_clients import HealthStatus
from engine_clients import LlamaCppClient
from engine_clients import RateLimitError
from engine_clients import Started
from engine_clients import StreamError
from engine_clients import Token
from engine_clients import VLLMClient
from engine_clients._pool import EnginePool
from engine_clients._pool import Percentiles
from engine_clients._pool import PoolExhaustedError
from engine_clients._pool import PoolStats
from tests.support.mock_streams import BrokenStream
from tests.support.mock_streams import event_stream
from tests.support.mock_streams import sse

R = ["http://r0.test", "http://r1.test", "http://r2.test"]
CHAT = "/v1/chat/completions"
SECRET = "sk-very-secret-key-0123456789"


def chunk(content: str | None = None, finish: str | None = None, **delta: Any) -> dict[str, Any]:
    d: dict[str, Any] = dict(delta)
    if content is not None:
        d["content"] = content
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": 0, "delta": d, "finish_reason": finish}],
    }


USAGE = {
    "id": "chatcmpl-1",
    "object": "chat.completion.chunk",
    "model": "m",
    "choices": [],
    "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
}
STREAM = sse(chunk("", role="assistant"), chunk("Hello"), chunk(" world"), chunk(finish="stop"), USAGE)


def completion(text: str = "Hello world", prompt: int = 5, out: int = 2) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": out, "total_tokens": prompt + out},
    }


class Gate(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A stream that sends its first event, then waits for ``release`` before sending the rest."""

    def __init__(self, body: bytes = STREAM) -> None:
        head, _, tail = body.partition(b"\n\n")
        self.parts = [head + b"\n\n", tail]
        self.release = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        yield self.parts[0]
        assert self.release.wait(5)
        yield self.parts[1]

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.parts[0]
        for _ in range(1000):
            if self.release.is_set():
                break
            await asyncio.sleep(0.005)
        yield self.parts[1]


def pool(n: int = 3, **kwargs: Any) -> EnginePool:
    kwargs.setdefault("max_retries", 0)
    return EnginePool(R[:n], engine="vllm", **kwargs)


def calls(router: respx.MockRouter, url: str) -> int:
    return sum(1 for c in router.calls if str(c.request.url).startswith(url))


def served_by(router: respx.MockRouter) -> list[str]:
    return [f"{c.request.url.scheme}://{c.request.url.host}" for c in router.calls]


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record tenacity's back-off waits instead of sleeping them."""
    waits: list[float] = []
    monkeypatch.setattr(time, "sleep", waits.append)
    return waits


# ---- routing ---------------------------------------------------------------------------------------------


def test_least_outstanding_requests() -> None:
    gates = {u: [] for u in R}  # type: dict[str, list[Gate]]

    def stream(request: httpx.Request) -> httpx.Response:
        g = Gate()
        gates[f"http://{request.url.host}"].append(g)
        return httpx.Response(200, stream=g, headers={"content-type": "text/event-stream"})

    with respx.mock() as router, pool() as p:
        router.post(url__regex=r".*/v1/chat/completions").mock(side_effect=stream)
        s1, s2, s3 = (p.chat_stream("hi") for _ in range(3))
        for s in (s1, s2, s3):
            assert isinstance(next(s), Started)
        assert [len(gates[u]) for u in R] == [1, 1, 1]  # one each: never two on one while one is idle
        assert [r.in_flight for r in p.stats().replicas] == [1, 1, 1]
        first = served_by(router)[0]
        gates[first][0].release.set()
        assert [type(e) for e in s1][-1] is End  # s1 went to replica 0 (fresh pools start there)
        s4 = p.chat_stream("hi")
        assert isinstance(next(s4), Started)
        assert served_by(router)[-1] == first  # the only replica with nothing in flight
        for g in [g for gs in gates.values() for g in gs]:
            g.release.set()
        for s in (s2, s3, s4):
            assert isinstance(list(s)[-1], End)
        assert p.stats().in_flight == 0 and all(r.in_flight == 0 for r in p.stats().replicas)


def test_ties_rotate_across_replicas() -> None:
    with respx.mock() as router, pool() as p:
        router.post(url__regex=r".*/v1/chat/completions").respond(200, json=completion())
        for _ in range(9):
            p.chat("hi")
        assert [calls(router, u) for u in R] == [3, 3, 3]


async def test_least_outstanding_async() -> None:
    gates: list[Gate] = []

    def stream(request: httpx.Request) -> httpx.Response:
        gates.append(Gate())
        return httpx.Response(200, stream=gates[-1], headers={"content-type": "text/event-stream"})

    async with pool() as p:
        with respx.mock() as router:
            router.post(url__regex=r".*/v1/chat/completions").mock(side_effect=stream)
            streams = [p.achat_stream("hi") for _ in range(6)]
            for s in streams:
                assert isinstance(await s.__anext__(), Started)
            assert [r.in_flight for r in p.stats().replicas] == [2, 2, 2]
            for g in gates:
                g.release.set()
            for s in streams:
                assert isinstance([e async for e in s][-1], End)
            assert p.stats().in_flight == 0


# ---- concurrency limit and queue -----------------------------------------------------------------------


def test_queue_full_is_a_typed_error() -> None:
    gate = Gate()
    with respx.mock() as router, pool(1, max_concurrency=1, max_queue=0) as p:
        router.post(f"{R[0]}{CHAT}").mock(return_value=httpx.Response(200, stream=gate))
        s = p.chat_stream("hi")
        next(s)
        with pytest.raises(PoolExhaustedError) as info:
            p.chat("hi")
        assert isinstance(info.value, RateLimitError)
        assert "max_queue=0" in str(info.value)
        gate.release.set()
        list(s)
        assert p.stats().rejected == 1 and p.stats().failures == 1


def test_queue_wait_times_out() -> None:
    gate = Gate()
    with respx.mock() as router, pool(1, max_concurrency=1, max_queue=4, queue_timeout=0.1) as p:
        router.post(f"{R[0]}{CHAT}").mock(return_value=httpx.Response(200, stream=gate))
        s = p.chat_stream("hi")
        next(s)
        t = time.monotonic()
        with pytest.raises(PoolExhaustedError, match="queue_timeout"):
            p.chat("hi")
        assert 0.09 <= time.monotonic() - t < 1.0
        gate.release.set()
        list(s)


def test_queued_request_runs_when_a_slot_frees() -> None:
    gate = Gate()
    with respx.mock() as router, pool(1, max_concurrency=1, max_queue=1, queue_timeout=5) as p:
        router.post(f"{R[0]}{CHAT}").mock(
            side_effect=[httpx.Response(200, stream=gate), httpx.Response(200, json=completion("second"))]
        )
        s = p.chat_stream("hi")
        next(s)
        result: list[Any] = []
        waiter = threading.Thread(target=lambda: result.append(p.chat("hi")))
        waiter.start()
        for _ in range(200):
            if p.stats().queued == 1:
                break
            time.sleep(0.005)
        assert p.stats().queued == 1
        # a third request finds the one-place queue taken
        with pytest.raises(PoolExhaustedError):
            p.chat("hi")
        gate.release.set()
        list(s)
        waiter.join(5)
        assert result and result[0].content == "second"
        assert p.stats().queued == 0


async def test_queue_async() -> None:
    gate = Gate()
    async with pool(1, max_concurrency=1, max_queue=1, queue_timeout=5) as p:
        with respx.mock() as router:
            router.post(f"{R[0]}{CHAT}").mock(
                side_effect=[httpx.Response(200, stream=gate), httpx.Response(200, json=completion("second"))]
            )
            s = p.achat_stream("hi")
            await s.__anext__()
            waiter = asyncio.ensure_future(p.achat("hi"))
            for _ in range(100):
                await asyncio.sleep(0.002)
                if p.stats().queued:
                    break
            with pytest.raises(PoolExhaustedError):
                await p.achat("hi")
            gate.release.set()
            assert isinstance([e async for e in s][-1], End)
            assert (await asyncio.wait_for(waiter, 5)).content == "second"


async def test_cancelled_waiter_leaves_the_queue() -> None:
    gate = Gate()
    async with pool(1, max_concurrency=1, max_queue=1, queue_timeout=5) as p:
        with respx.mock() as router:
            router.post(f"{R[0]}{CHAT}").mock(return_value=httpx.Response(200, stream=gate))
            s = p.achat_stream("hi")
            await s.__anext__()
            waiter = asyncio.ensure_future(p.achat("hi"))
            await asyncio.sleep(0.02)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
            assert p.stats().queued == 0 and p.stats().cancelled == 1
            gate.release.set()
            await s.aclose()


# ---- circuit breaker -------------------------------------------------------------------------------------


def test_breaker_opens_after_n_failures_and_half_opens_after_cooldown() -> None:
    with respx.mock() as router, pool(1, failure_threshold=3, cooldown=0.1) as p:
        route = router.post(f"{R[0]}{CHAT}").mock(side_effect=httpx.ConnectError("refused"))
        for _ in range(3):
            with pytest.raises(EngineUnavailableError, match="ConnectError"):
                p.chat("hi")
        assert p.stats().replicas[0].state == "open"
        with pytest.raises(EngineUnavailableError, match="no usable replica") as info:
            p.chat("hi")  # fails fast: the replica is not called
        assert route.call_count == 3
        assert info.value.retry_after is not None and 0 < info.value.retry_after <= 0.1
        time.sleep(0.12)
        # half-open: one trial goes through; it fails, so the breaker opens again at once
        with pytest.raises(EngineUnavailableError, match="ConnectError"):
            p.chat("hi")
        assert route.call_count == 4 and p.stats().replicas[0].state == "open"
        with pytest.raises(EngineUnavailableError, match="no usable replica"):
            p.chat("hi")
        time.sleep(0.12)
        route.mock(side_effect=None, return_value=httpx.Response(200, json=completion()))
        assert p.chat("hi").content == "Hello world"  # the trial succeeds: closed again
        assert p.stats().replicas[0].state == "closed"
        assert p.stats().replicas[0].consecutive_failures == 0


def test_half_open_admits_one_trial_at_a_time() -> None:
    gate = Gate()
    with respx.mock() as router, pool(1, failure_threshold=1, cooldown=0.05) as p:
        route = router.post(f"{R[0]}{CHAT}").mock(side_effect=httpx.ConnectError("refused"))
        with pytest.raises(EngineUnavailableError):
            p.chat("hi")
        time.sleep(0.06)
        route.mock(side_effect=None, return_value=httpx.Response(200, stream=gate))
        s = p.chat_stream("hi")
        next(s)  # the trial is in flight
        assert p.stats().replicas[0].state == "half_open"
        with pytest.raises(EngineUnavailableError, match="no usable replica"):
            p.chat("hi")
        gate.release.set()
        list(s)
        assert p.stats().replicas[0].state == "closed"


def test_client_errors_do_not_open_the_breaker() -> None:
    with respx.mock() as router, pool(1, failure_threshold=2) as p:
        router.post(f"{R[0]}{CHAT}").respond(
            400, json={"error": {"message": "bad", "type": "BadRequestError", "param": None, "code": 400}}
        )
        for _ in range(4):
            with pytest.raises(BadRequestError):
                p.chat("hi")
        assert p.stats().replicas[0].state == "closed"
        assert router.calls.call_count == 4  # and 4xx are never failed over


def test_open_replica_is_skipped_while_others_serve() -> None:
    with respx.mock() as router, pool(2, failure_threshold=1, cooldown=60) as p:
        router.post(f"{R[0]}{CHAT}").mock(side_effect=httpx.ConnectError("refused"))
        router.post(f"{R[1]}{CHAT}").respond(200, json=completion())
        for _ in range(10):
            assert p.chat("hi").content == "Hello world"
        assert calls(router, R[0]) == 1 and calls(router, R[1]) == 10
        st = p.stats()
        assert (st.successes, st.failures, st.failovers) == (10, 0, 1)
        assert st.replicas[0].state == "open"


# ---- failover --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("slow"),
        httpx.Response(
            503, json={"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}
        ),
        httpx.Response(500, json={"error": {"message": "boom", "type": "InternalServerError", "code": 500}}),
        httpx.Response(429, json={"error": {"message": "busy", "type": "overloaded"}}),
        httpx.Response(
            200,
            stream=BrokenStream(
                sse(chunk("", role="assistant"), done=False), httpx.RemoteProtocolError("peer closed")
            ),
        ),
    ],
    ids=["connect", "connect-timeout", "503", "500", "429", "cut-before-first-token"],
)
@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_failover_before_the_first_token(failure: Any, mode: str) -> None:
    with respx.mock() as router:
        if isinstance(failure, Exception):
            router.post(f"{R[0]}{CHAT}").mock(side_effect=failure)
        else:
            router.post(f"{R[0]}{CHAT}").mock(return_value=failure)
        router.post(f"{R[1]}{CHAT}").mock(return_value=event_stream(STREAM))
        p = pool(2)
        if mode == "sync":
            events = list(p.chat_stream("hi"))
            p.close()
        else:
            events = [e async for e in p.achat_stream("hi")]
            await p.aclose()
        hosts = served_by(router)
    assert sum(isinstance(e, Started) for e in events) == 1  # the failed attempt's Started is not repeated
    assert [e.text for e in events if isinstance(e, Token)] == ["Hello", " world"]
    assert isinstance(events[-1], End) and events[-1].content == "Hello world"
    assert hosts == [R[0], R[1]]
    st = p.stats()
    assert (st.requests, st.successes, st.failures, st.failovers) == (1, 1, 0, 1)
    assert (st.replicas[0].failures, st.replicas[1].successes) == (1, 1)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_non_stream_failover(mode: str) -> None:
    with respx.mock() as router:
        router.post(f"{R[0]}{CHAT}").respond(502, text="Bad Gateway")
        router.post(f"{R[1]}{CHAT}").respond(200, json=completion("from r1"))
        p = pool(2)
        result = p.chat("hi") if mode == "sync" else await p.achat("hi")
        await p.aclose()
        assert result.content == "from r1" and served_by(router) == [R[0], R[1]]


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_no_failover_after_a_token(mode: str) -> None:
    body = sse(chunk("", role="assistant"), chunk("Hel"), chunk("lo"), done=False)
    with respx.mock(assert_all_called=False) as router:
        router.post(f"{R[0]}{CHAT}").mock(
            return_value=httpx.Response(
                200, stream=BrokenStream(body, httpx.RemoteProtocolError("peer closed"))
            )
        )
        other = router.post(f"{R[1]}{CHAT}").mock(return_value=event_stream(STREAM))
        p = pool(2)
        seen: list[Any] = []
        with pytest.raises(StreamError) as info:
            if mode == "sync":
                for e in p.chat_stream("hi"):
                    seen.append(e)
            else:
                async for e in p.achat_stream("hi"):
                    seen.append(e)
        await p.aclose()
    assert info.value.partial_text == "Hello"
    assert [e.text for e in seen if isinstance(e, Token)] == ["Hel", "lo"]
    assert not other.called  # never repeated elsewhere: no duplicated output
    st = p.stats()
    assert (st.failures, st.failovers, st.replicas[0].failures) == (1, 0, 1)


def test_failover_gives_up_with_the_last_error_when_every_replica_fails() -> None:
    with respx.mock() as router, pool(3) as p:
        router.post(url__regex=r".*/v1/chat/completions").mock(side_effect=httpx.ConnectError("refused"))
        with pytest.raises(EngineUnavailableError, match="ConnectError"):
            p.chat("hi")
        assert sorted(served_by(router)) == R  # each replica tried once
        assert p.stats().failovers == 2


def test_max_attempts_bounds_failover() -> None:
    with respx.mock() as router, pool(3, max_attempts=2) as p:
        router.post(url__regex=r".*/v1/chat/completions").mock(side_effect=httpx.ConnectError("refused"))
        with pytest.raises(EngineUnavailableError):
            p.chat("hi")
        assert router.calls.call_count == 2


def test_generate_and_tokenize_and_info_go_through_the_pool() -> None:
    with respx.mock() as router, pool(2) as p:
        router.post(f"{R[0]}/v1/completions").mock(side_effect=httpx.ConnectError("refused"))
        router.post(f"{R[1]}/v1/completions").respond(
            200,
            json={
                "id": "cmpl-1",
                "object": "text_completion",
                "model": "m",
                "choices": [{"index": 0, "text": "abc", "finish_reason": "length"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4},
            },
        )
        router.post(url__regex=r".*/tokenize").respond(
            200, json={"count": 2, "max_model_len": 1024, "tokens": [1, 2], "token_strs": ["a", "b"]}
        )
        router.get(url__regex=r".*/v1/models").respond(
            200,
            json={
                "object": "list",
                "data": [{"id": "m", "object": "model", "owned_by": "vllm", "max_model_len": 1024}],
            },
        )
        router.get(url__regex=r".*/version").respond(200, json={"version": "0.32.0"})
        assert p.generate("x", max_tokens=3).content == "abc"
        assert [t.id for t in p.tokenize("ab")] == [1, 2]
        info = p.info()
        assert (info.engine, info.model, info.version, info.max_total_tokens) == ("vllm", "m", "0.32.0", 1024)
        assert p.engine == "vllm"


# ---- session affinity ------------------------------------------------------------------------------------


def test_session_affinity_sticks_and_moves_when_the_replica_fails() -> None:
    bodies: list[tuple[str, dict[str, Any]]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        bodies.append((f"http://{request.url.host}", json.loads(request.content)))
        return httpx.Response(200, json=completion())

    clients = [LlamaCppClient(u, max_retries=0) for u in R]
    with respx.mock() as router, EnginePool(clients, session_slots=4) as p:
        route = router.post(url__regex=r".*/v1/chat/completions").mock(side_effect=answer)
        for _ in range(6):
            p.chat("hi", session_id="alice")
            p.chat("hi")  # unrelated traffic rotates over all replicas meanwhile
        alice = [b for b in bodies if "id_slot" in b[1]]
        assert len(alice) == 6 and len({host for host, _ in alice}) == 1
        slot = zlib.crc32(b"alice") % 4
        assert all(b["id_slot"] == slot and b["cache_prompt"] is True for _, b in alice)
        assert all("id_slot" not in b and "cache_prompt" not in b for _, b in bodies if "id_slot" not in b)
        # the session's replica dies: the session moves, once, and stays on its new replica
        home = alice[0][0]

        def die_on_home(request: httpx.Request) -> httpx.Response:
            if f"http://{request.url.host}" == home:
                raise httpx.ConnectError("refused")
            return answer(request)

        route.mock(side_effect=die_on_home)
        bodies.clear()
        for _ in range(4):
            assert p.chat("hi", session_id="alice").content == "Hello world"
        hosts = [h for h, _ in bodies]
        assert home not in hosts and len(set(hosts)) == 1
    for c in clients:
        c.close()


def test_affinity_params_stay_in_the_engine_classes() -> None:
    assert VLLMClient("http://v.test").affinity_params(3) == {}
    assert LlamaCppClient("http://l.test").affinity_params(3) == {"id_slot": 3, "cache_prompt": True}
    assert LlamaCppClient("http://l.test").affinity_params(-1) == {"cache_prompt": True}


def test_session_without_slots_lets_llamacpp_choose_and_caller_params_win() -> None:
    seen: list[dict[str, Any]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json=completion())

    with respx.mock() as router, EnginePool(R[:2], engine="llamacpp") as p:
        router.post(url__regex=r".*/v1/chat/completions").mock(side_effect=answer)
        p.chat("hi", session_id="bob")
        p.chat("hi", session_id="bob", id_slot=1, cache_prompt=False)
    assert seen[0]["cache_prompt"] is True and "id_slot" not in seen[0]
    assert (seen[1]["id_slot"], seen[1]["cache_prompt"]) == (1, False)


def test_full_sticky_replica_spills_without_losing_the_session() -> None:
    gate = Gate()
    with respx.mock() as router, pool(2, max_concurrency=1) as p:
        router.post(f"{R[0]}{CHAT}").mock(
            side_effect=[httpx.Response(200, stream=gate), httpx.Response(200, json=completion("r0"))]
        )
        router.post(f"{R[1]}{CHAT}").respond(200, json=completion("r1"))
        s = p.chat_stream("hi", session_id="carol")  # carol's home: r0
        next(s)
        assert p.chat("hi", session_id="carol").content == "r1"  # r0 is full: served elsewhere this once
        gate.release.set()
        list(s)
        assert p.chat("hi", session_id="carol").content == "r0"  # and back home


# ---- statistics ------------------------------------------------------------------------------------------


def test_stats_numbers(no_sleep: list[float]) -> None:
    with respx.mock() as router, pool(2, max_retries=1) as p:
        router.post(f"{R[0]}{CHAT}").mock(
            side_effect=[
                httpx.Response(503, text="loading"),
                httpx.Response(200, json=completion(prompt=5, out=2)),
                httpx.Response(200, json=completion(prompt=5, out=2)),
                httpx.Response(
                    400, json={"error": {"message": "bad", "type": "BadRequestError", "code": 400}}
                ),
            ]
        )
        router.post(f"{R[1]}{CHAT}").mock(
            side_effect=[
                event_stream(STREAM),
                httpx.Response(200, json=completion(prompt=7, out=3)),
            ]
        )
        p.chat("hi")  # r0: 503, retried, 200
        assert [e for e in p.chat_stream("hi")][-1].content == "Hello world"  # r1: stream
        p.chat("hi")  # r0
        p.chat("hi")  # r1
        with pytest.raises(BadRequestError):
            p.chat("hi")  # r0: 400
        st = p.stats()
    assert isinstance(st, PoolStats)
    assert (st.requests, st.successes, st.failures, st.failovers, st.rejected) == (5, 4, 1, 0, 0)
    assert (st.retries, st.in_flight, st.queued) == (1, 0, 0)
    assert (st.tokens_in, st.tokens_out) == (5 + 5 + 5 + 7, 2 + 2 + 2 + 3)
    r0, r1 = st.replicas
    assert (r0.requests, r0.successes, r0.failures, r0.retries) == (3, 2, 1, 1)
    assert (r1.requests, r1.successes, r1.failures, r1.retries) == (2, 2, 0, 0)
    assert (r0.tokens_in, r0.tokens_out, r1.tokens_in, r1.tokens_out) == (10, 4, 12, 5)
    assert st.latency.count == 4 and r0.latency.count == 2 and r1.latency.count == 2
    assert st.ttft.count == 1 and r1.ttft.count == 1 and r0.ttft.count == 0
    assert st.latency.p50 is not None and st.latency.p99 is not None
    assert 0 <= st.latency.p50 <= st.latency.p90 <= st.latency.p99  # type: ignore[operator]
    assert (r0.state, r0.engine, r0.url) == ("closed", "vllm", R[0])
    assert len(no_sleep) == 1  # one back-off wait for the 503 retry
    d = st.to_dict()
    assert d["replicas"][0]["latency"]["count"] == 2 and d["tokens_out"] == 9


def test_percentiles_nearest_rank() -> None:
    assert Percentiles.of([]) == Percentiles(0, None, None, None)
    p = Percentiles.of([float(i) for i in range(1, 101)])
    assert (p.count, p.p50, p.p90, p.p99) == (100, 50.0, 90.0, 99.0)
    assert Percentiles.of([3.0]).p99 == 3.0


def test_closed_stream_counts_as_cancelled_and_frees_the_slot() -> None:
    gate = Gate()
    gate.release.set()
    with respx.mock() as router, pool(1, max_concurrency=1) as p:
        router.post(f"{R[0]}{CHAT}").mock(return_value=httpx.Response(200, stream=gate))
        s = p.chat_stream("hi")
        next(s)
        assert p.stats().replicas[0].in_flight == 1
        s.close()
        st = p.stats()
        assert (st.in_flight, st.cancelled, st.failures, st.replicas[0].in_flight) == (0, 1, 0, 0)
        assert st.replicas[0].state == "closed"


def test_threads_share_one_pool() -> None:
    with respx.mock() as router, pool(3, max_concurrency=2, queue_timeout=10) as p:
        router.post(url__regex=r".*/v1/chat/completions").respond(200, json=completion())
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(20):
                    p.chat("hi")
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        st = p.stats()
    assert not errors
    assert (st.requests, st.successes, st.in_flight, st.queued) == (160, 160, 0, 0)
    assert sum(r.requests for r in st.replicas) == 160


# ---- health ----------------------------------------------------------------------------------------------


def test_health_ejects_and_readmits() -> None:
    with respx.mock() as router, pool(2, cooldown=60) as p:
        h0 = router.get(f"{R[0]}/health").respond(503)
        router.get(f"{R[1]}/health").respond(200)
        router.post(url__regex=r".*/v1/chat/completions").respond(200, json=completion())
        assert p.health() is HealthStatus.DEGRADED
        assert p.check_health() == {R[0]: HealthStatus.DEGRADED, R[1]: HealthStatus.HEALTHY}
        st = p.stats().replicas
        assert (st[0].state, st[0].health, st[1].state) == ("open", HealthStatus.DEGRADED, "closed")
        for _ in range(4):
            p.chat("hi")
        assert calls(router, f"{R[0]}{CHAT}") == 0
        h0.respond(200)
        assert p.health() is HealthStatus.HEALTHY
        assert p.stats().replicas[0].state == "closed"
        for _ in range(4):
            p.chat("hi")
        assert calls(router, f"{R[0]}{CHAT}") == 2


async def test_health_async_and_unreachable() -> None:
    async with pool(2) as p:
        with respx.mock() as router:
            router.get(f"{R[0]}/health").mock(side_effect=httpx.ConnectError("refused"))
            router.get(f"{R[1]}/health").mock(side_effect=httpx.ConnectError("refused"))
            assert await p.ahealth() is HealthStatus.UNHEALTHY
            with pytest.raises(EngineUnavailableError, match="no usable replica"):
                await p.achat("hi")


def test_background_health_checks() -> None:
    with respx.mock() as router, pool(2, health_interval=0.02, cooldown=60) as p:
        h0 = router.get(f"{R[0]}/health").respond(503)
        router.get(f"{R[1]}/health").respond(200)
        router.post(url__regex=r".*/v1/chat/completions").respond(200, json=completion())
        p.chat("hi")  # first use starts the checker
        for _ in range(100):
            if p.stats().replicas[0].state == "open":
                break
            time.sleep(0.01)
        assert p.stats().replicas[0].state == "open"
        h0.respond(200)
        for _ in range(100):
            if p.stats().replicas[0].state == "closed":
                break
            time.sleep(0.01)
        assert p.stats().replicas[0].state == "closed"
    assert p._health_thread is not None and not p._health_thread.is_alive()


# ---- construction ----------------------------------------------------------------------------------------


def test_urls_without_engine_are_detected_on_first_use() -> None:
    with respx.mock(assert_all_called=False) as router:
        router.get("http://r0.test/props").respond(200, json={"default_generation_settings": {"n_ctx": 64}})
        router.get(url__startswith="http://r0.test").respond(404)
        router.post(f"{R[0]}{CHAT}").respond(200, json=completion())
        with EnginePool("http://r0.test, ") as p:
            assert p.clients == [None] and p.engine is None
            p.chat("hi")
            assert isinstance(p.clients[0], LlamaCppClient) and p.engine == "llamacpp"


def test_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_BASE_URL", " http://a.test:8000 ,http://b.test:8000/,")
    monkeypatch.setenv("VLLM_API_KEY", SECRET)
    with EnginePool.from_env("vllm") as p:
        assert p.replicas == ["http://a.test:8000", "http://b.test:8000"]
        assert all(isinstance(c, VLLMClient) for c in p.clients)
        assert all(c is not None and c.api_key is not None for c in p.clients)
    monkeypatch.delenv("VLLM_BASE_URL")
    with pytest.raises(Exception, match="VLLM_BASE_URL"):
        EnginePool.from_env("vllm")


def test_given_clients_are_not_closed_by_the_pool() -> None:
    client = VLLMClient(R[0])
    transport = client.sync_transport
    with EnginePool([client]):
        pass
    assert not transport.client.is_closed
    client.close()
    with EnginePool(R[:1], engine="vllm") as p:
        owned = p.clients[0]
        assert owned is not None
        t = owned.sync_transport
    assert t.client.is_closed


# ---- security --------------------------------------------------------------------------------------------


def test_api_key_never_in_repr_str_errors_or_pickles() -> None:
    p = EnginePool(R[:2], engine="vllm", api_key=SECRET, max_retries=0)
    assert SECRET not in repr(p) and SECRET not in str(p)
    assert SECRET not in repr(p.replicas) and SECRET not in repr(p.stats())
    with pytest.raises(TypeError) as info:
        pickle.dumps(p)
    assert SECRET not in str(info.value)
    for c in p.clients:
        assert c is not None and SECRET not in repr(c)
        with pytest.raises(TypeError):
            pickle.dumps(c)
    with respx.mock() as router:
        router.post(url__regex=r".*/v1/chat/completions").mock(side_effect=httpx.ConnectError("refused"))
        with pytest.raises(EngineUnavailableError) as err:
            p.chat("hi")
    text = f"{err.value!s} {err.value!r} {err.value.body!r} {err.value.__dict__!r}"
    assert SECRET not in text
    assert SECRET not in repr(pickle.loads(pickle.dumps(err.value)).__dict__)
    p.close()


def test_credentials_in_replica_urls_are_redacted_by_the_pool() -> None:
    with EnginePool([f"http://user:{SECRET}@r0.test:8000/x", R[1]], engine="vllm") as p:
        assert p.replicas == ["http://r0.test:8000/x", R[1]]
        assert SECRET not in repr(p) and SECRET not in repr(p.stats())


def test_authorization_not_forwarded_to_another_host_on_redirect() -> None:
    seen: list[httpx.Request] = []
    # httpx never follows redirects unless asked; even a caller's client that follows them drops the header
    # when the redirect leaves the origin.
    with respx.mock() as router:
        router.post(f"{R[0]}{CHAT}").respond(307, headers={"location": f"http://evil.test{CHAT}"})
        router.post(f"http://evil.test{CHAT}").mock(
            side_effect=lambda r: seen.append(r) or httpx.Response(200, json=completion())
        )
        plain = VLLMClient(R[0], api_key=SECRET, max_retries=0)
        with pytest.raises(Exception):  # noqa: B017 - a 307 is not a chat answer
            plain.chat("hi")
        assert not seen  # not followed at all by default
        following = VLLMClient(R[0], api_key=SECRET, http_client=httpx.Client(follow_redirects=True))
        assert following.chat("hi").content == "Hello world"
        assert len(seen) == 1 and "authorization" not in seen[0].headers
        first = router.calls[-2].request
        assert first.headers["authorization"] == f"Bearer {SECRET}"
    plain.close()


async def test_tls_verification_is_on_by_default() -> None:
    import ssl

    client = VLLMClient("https://r0.test")
    for http in (client.sync_transport.client, client.async_transport.client):
        ctx = http._transport._pool._ssl_context  # type: ignore[attr-defined]
        assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname is True
    await client.aclose()
    with EnginePool(["https://r0.test"], engine="tgi") as p:
        c = p.clients[0]
        assert c is not None
        ctx = c.sync_transport.client._transport._pool._ssl_context  # type: ignore[attr-defined]
        assert ctx.verify_mode == ssl.CERT_REQUIRED
