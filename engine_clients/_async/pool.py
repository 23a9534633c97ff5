"""The pool's request loops and its client API: queue for a replica, call it, fail over before output.

A stream that has yielded a ``Reasoning``, ``Token`` or ``ToolCallDelta`` never fails over: its error (with
the partial text) reaches the caller, so output is never duplicated. The state these loops share (routing,
queueing, breakers, counters) is in ``engine_clients/_pool_core.py``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any
from typing import cast

from typing_extensions import Self

from .._clients import BaseClient
from .._detect import aconnect
from .._pool_breaker import FAILOVER
from .._pool_breaker import caller_outcome
from .._pool_breaker import outcome
from .._pool_core import PoolCore
from .._pool_health import overall
from .._pool_routing import NoReplica
from .._pool_routing import Replica
from ..errors import EngineError
from ..types import Completion
from ..types import Embeddings
from ..types import End
from ..types import EngineInfo
from ..types import HealthStatus
from ..types import Reasoning
from ..types import Reranking
from ..types import Started
from ..types import StreamEvent
from ..types import Token
from ..types import TokenInfo
from ..types import ToolCallDelta
from ..types import Usage

__all__ = ["AsyncPoolAPI"]


class AsyncPoolAPI(PoolCore):
    """The calls of :class:`~engine_clients.EnginePool`."""

    # -- clients: built from URLs on first use when the engine must be detected --
    async def _aclient(self, r: Replica) -> BaseClient:
        client = r.client
        if client is None:
            client = self._adopt(r, await aconnect(r.url, **self._connect_kwargs))
        self._count_retries(r, client.async_transport)
        return client

    # -- the request loops; the stream loop never fails over after output --
    async def _anext_replica(
        self, tried: set[int], session_id: str | None, last: EngineError | None
    ) -> Replica:
        try:
            return await self._aacquire(tried, session_id)
        except NoReplica as exc:
            err = self._no_replica(exc, last)
            raise err from err.__cause__  # the last replica's own error, its cause kept

    async def _acall(
        self, op: str, args: tuple[Any, ...], kwargs: dict[str, Any], session_id: str | None
    ) -> Any:
        start = self._begin()
        tried: set[int] = set()
        last: EngineError | None = None
        try:
            while True:
                r = await self._anext_replica(tried, session_id, last)
                t0 = time.monotonic()
                try:
                    client = await self._aclient(r)
                    result = await getattr(client, op)(*args, **self._kwargs(client, kwargs, session_id))
                except BaseException as exc:
                    self._release(r, outcome(exc), t0)
                    if isinstance(exc, FAILOVER) and len(tried) + 1 < self._limit():
                        tried.add(r.index)
                        last = exc
                        continue
                    raise
                self._release(r, "ok", t0, getattr(result, "usage", None))
                self._end(True, start, failovers=len(tried))
                return result
        except BaseException as exc:
            self._end(caller_outcome(exc), start, failovers=len(tried))
            raise

    async def _astream(
        self, op: str, args: tuple[Any, ...], kwargs: dict[str, Any], session_id: str | None
    ) -> AsyncIterator[StreamEvent]:
        start = self._begin()
        tried: set[int] = set()
        last: EngineError | None = None
        started = False  # a Started event went out: a failed-over stream's own Started is dropped
        first: float | None = None  # when the first output event went out: no failover after it
        try:
            while True:
                r = await self._anext_replica(tried, session_id, last)
                t0 = time.monotonic()
                usage: Usage | None = None
                inner: Any = None  # the client's generator
                try:
                    client = await self._aclient(r)
                    inner = getattr(client, op)(*args, **self._kwargs(client, kwargs, session_id))
                    async for event in inner:
                        if isinstance(event, Started):
                            if started:
                                continue
                            started = True
                        elif first is None and isinstance(event, Token | Reasoning | ToolCallDelta):
                            first = time.monotonic()
                        elif isinstance(event, End):
                            usage = event.completion.usage
                        yield event
                except BaseException as exc:
                    self._release(r, outcome(exc), t0)
                    if first is None and isinstance(exc, FAILOVER) and len(tried) + 1 < self._limit():
                        tried.add(r.index)
                        last = exc
                        continue
                    raise
                finally:
                    if inner is not None:
                        await inner.aclose()
                self._release(r, "ok", t0, usage, None if first is None else first - t0)
                self._end(True, start, None if first is None else first - start, len(tried))
                return
        except BaseException as exc:
            self._end(caller_outcome(exc), start, failovers=len(tried))
            raise

    # -- the client API --
    async def achat(self, messages: Any, *, session_id: str | None = None, **kwargs: Any) -> Completion:
        """:meth:`BaseClient.achat` on the least busy replica (or the session's); fails over before output."""
        return cast(Completion, await self._acall("achat", (messages,), kwargs, session_id))

    def achat_stream(
        self, messages: Any, *, session_id: str | None = None, **kwargs: Any
    ) -> AsyncIterator[StreamEvent]:
        return self._astream("achat_stream", (messages,), kwargs, session_id)

    async def agenerate(self, prompt: str, *, session_id: str | None = None, **kwargs: Any) -> Completion:
        return cast(Completion, await self._acall("agenerate", (prompt,), kwargs, session_id))

    def agenerate_stream(
        self, prompt: str, *, session_id: str | None = None, **kwargs: Any
    ) -> AsyncIterator[StreamEvent]:
        return self._astream("agenerate_stream", (prompt,), kwargs, session_id)

    async def ainfo(self) -> EngineInfo:
        return cast(EngineInfo, await self._acall("ainfo", (), {}, None))

    async def atokenize(self, text: str, *, add_special_tokens: bool = True) -> list[TokenInfo]:
        return cast(
            list[TokenInfo],
            await self._acall("atokenize", (text,), {"add_special_tokens": add_special_tokens}, None),
        )

    # embeddings and rerank: routed, retried and failed over like chat (LlamaCppClient, VLLMClient, TEIClient)
    async def aembed(self, texts: Any, **kwargs: Any) -> Embeddings:
        """:meth:`LlamaCppClient.aembed` (or vLLM's, TEI's) on the least busy replica."""
        return cast(Embeddings, await self._acall("aembed", (texts,), kwargs, None))

    async def arerank(self, query: str, documents: Any, **kwargs: Any) -> Reranking:
        return cast(Reranking, await self._acall("arerank", (query, documents), kwargs, None))

    # -- health (see _pool_health) and lifecycle --
    async def ahealth(self) -> HealthStatus:
        """HEALTHY when every replica is, UNHEALTHY when none answers, else DEGRADED (checks all replicas)."""
        return overall(list((await self.acheck_health()).values()))

    async def aclose(self) -> None:
        """Stop health checks and close the clients the pool built."""
        await self._health_loop.ajoin(timeout=10)
        for r in self._replicas:
            if r.owned and r.client is not None:
                await r.client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
