"""``EnginePool``: several replicas of one model behind the API of a single client.


Routing sends each request to the replica with the fewest requests in flight (ties rotate), optionally
keeping a session on one replica. Each replica has a concurrency limit, with a bounded wait queue in front
of the pool, and a circuit breaker: ``failure_threshold`` consecutive faults (connection refused, timeouts,
5xx, broken streams) open it, and after ``cooldown`` seconds one trial request is let through (half-open);
its success closes the breaker, its failure opens it again. Health checks (``check_health()``, or every
``health_interval`` seconds in a background thread) eject replicas that do not answer ready (their breaker
opens), and re-admit them as soon as they do; an ejected replica also gets a trial after ``cooldown``.

A request that fails with a connection error, a timeout, a 5xx or a 429 *before its first token* is sent to
another replica (each replica's own client has already retried it ``max_retries`` times); a stream that has
yielded a ``Reasoning``, ``Token`` or ``ToolCallDelta`` is never repeated elsewhere: its :class:`StreamError`
(with the partial text) reaches the caller, so output is never duplicated.

The pool knows no engine: session affinity asks each replica's client for its
:meth:`~engine_clients.BaseClient.affinity_params` (llama.cpp pins a slot and its prompt cache).
State is guarded by one ``threading.Lock`` held only for bookkeeping, so one pool serves threads and
event loops at once.

Each part reads on its own:

- ``_pool_core``: configuration, shared state, the wait for a free slot, health checks;
- ``_async/pool.py``: the request loops (failover, streams) and the client API, written once
  (``_sync/pool.py`` is generated from it);
- ``_pool_routing``: which replica an attempt goes to (least in flight, trials, session affinity);
- ``_pool_breaker``: the per-replica circuit breaker, and which errors count against a replica;
- ``_pool_health``: health checks and the background health thread;
- ``_pool_stats``: ``PoolStats``/``ReplicaStats`` and the counters behind them.
"""

from ._async.pool import AsyncPoolAPI
from ._pool_breaker import BreakerState
from ._pool_core import PoolExhaustedError
from ._pool_stats import Percentiles
from ._pool_stats import PoolStats
from ._pool_stats import ReplicaStats
from ._sync.pool import SyncPoolAPI

__all__ = ["BreakerState", "EnginePool", "Percentiles", "PoolExhaustedError", "PoolStats", "ReplicaStats"]


class EnginePool(SyncPoolAPI, AsyncPoolAPI):
    """Replicas of one model behind the API of a single client (``chat``/``achat``, the streams,
    ``generate``, ``health``, ``info``, ``tokenize``, ``close``; sync and async).

    ``replicas``: clients, base URLs, or one comma-separated string of URLs. URLs become clients of
    ``engine`` (``"tgi"``, ``"vllm"``, ``"llamacpp"``), or of the engine detected on first use (see
    :func:`connect`), with ``client_kwargs`` (``api_key``, ``model``, ``timeout``, ``max_retries``...). The
    pool closes the clients it built; clients passed in are left to their owner.

    ``max_concurrency``: requests in flight per replica (None: unlimited). When every usable replica is full,
    up to ``max_queue`` requests wait (each at most ``queue_timeout`` s) for a slot; beyond that
    :class:`PoolExhaustedError`. ``failure_threshold`` consecutive faults open a replica's breaker for
    ``cooldown`` s. ``max_attempts``: replicas one request may try (default: all). ``health_interval``:
    seconds between background health checks (None: only when ``check_health``/``health`` is called).
    ``session_slots``: slots per replica to spread sessions over (llama.cpp: its ``--parallel``); without it
    llama.cpp gets ``cache_prompt`` and picks the slot itself.
    """
