"""What the framework wrappers share (``langchain-selfhosted`` and the ``llama-index-*-selfhosted``
packages): framework-neutral, free of I/O, written once here instead of once per wrapper distribution.

Private: not part of ``engine_clients``' API; it changes together with the wrappers.

* :data:`EngineClient`: what a wrapper talks through, one engine client or an ``EnginePool`` of replicas;
* :func:`connection_kwargs` / :func:`batch_options`: a wrapper's connection fields as client-constructor
  keywords, and its batching fields as ``embed``/``rerank`` keywords;
* :func:`think_tags_for`: the ``think_tags`` a client gets from the ``split_thinking``/``think_tags`` fields;
* :data:`HistoryPolicy` / :func:`chat_client_options`: a chat wrapper's ``history`` and ``recover_tool_calls``
  fields applied to the client it builds;
* :func:`completion_report`: what a chat answer says about its history and recovered tool calls, as the
  JSON-ready entries a wrapper adds to its response's metadata;
* :func:`canonical_engine`: ``"tgi"``, ``"vllm"`` or ``"llamacpp"`` for any engine name;
* :func:`closing_events` / :func:`aclosing_events`: however a stream loop ends (finished, failed, stopped
  early by the consumer), the engine's event stream is closed, which releases its HTTP connection.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from collections.abc import Iterator
from typing import TYPE_CHECKING
from typing import Any
from typing import Protocol

from ._clients import BaseClient
from ._detect import client_class
from ._history_policy import HistoryPolicy
from ._pool import EnginePool
from .dialects.reasoning import ThinkTags
from .types import Completion

if TYPE_CHECKING:
    from pydantic import SecretStr

__all__ = [
    "BatchSettings",
    "ConnectionSettings",
    "EngineClient",
    "HistoryPolicy",
    "aclosing_events",
    "batch_options",
    "canonical_engine",
    "chat_client_options",
    "closing_events",
    "completion_report",
    "connection_kwargs",
    "think_tags_for",
]

EngineClient = BaseClient | EnginePool
"""What a wrapper talks through: one engine client, or an ``EnginePool`` of replicas (same API)."""


class ConnectionSettings(Protocol):
    """A wrapper's connection fields (read only)."""

    @property
    def api_key(self) -> SecretStr | None: ...
    @property
    def model(self) -> str | None: ...
    @property
    def timeout(self) -> float | None: ...
    @property
    def max_retries(self) -> int: ...
    @property
    def default_headers(self) -> dict[str, str] | None: ...
    @property
    def http_backend(self) -> str | None: ...


class BatchSettings(Protocol):
    """An embedding or rerank wrapper's request fields (read only)."""

    @property
    def truncate(self) -> bool: ...
    @property
    def batch_size(self) -> int | None: ...
    @property
    def model(self) -> str | None: ...


def connection_kwargs(settings: ConnectionSettings) -> dict[str, Any]:
    """Keywords for an engine client's constructor (after ``base_url``) from a wrapper's connection fields."""
    return {
        "api_key": settings.api_key,
        "model": settings.model,
        "timeout": settings.timeout,
        "max_retries": settings.max_retries,
        "headers": settings.default_headers,
        "http_backend": settings.http_backend,
    }


def batch_options(settings: BatchSettings, **extra: Any) -> dict[str, Any]:
    """Keywords for ``embed``/``rerank`` (``extra``: ``top_n`` for rerank): ``batch_size`` and ``model`` only
    where set, so that the client's own defaults (the server's batch limit, the server's model) apply."""
    options: dict[str, Any] = {"truncate": settings.truncate, **extra}
    if settings.batch_size is not None:
        options["batch_size"] = settings.batch_size
    if settings.model is not None:
        options["model"] = settings.model
    return options


def think_tags_for(split_thinking: bool, think_tags: ThinkTags | None) -> ThinkTags | None:
    """The client's ``think_tags``: the tags given (default ``<think>``/``</think>``), or None (leave the
    content raw) when the wrapper does not split thinking out."""
    return (think_tags or ThinkTags()) if split_thinking else None


def chat_client_options(client: BaseClient, recover_tool_calls: bool) -> BaseClient:
    """``client`` (one a chat wrapper just built) set to recover tool calls from leaked markup or not (the
    dialect's ``recover_tool_calls``: the client's calls take no per-call switch). ``history`` is a
    constructor keyword: a wrapper passes it with :func:`connection_kwargs`' keywords."""
    client.dialect.recover_tool_calls = recover_tool_calls
    return client


def completion_report(completion: Completion) -> dict[str, Any]:
    """``{"history_changes": [...], "recovered_tool_calls": [...]}``, each key only when non-empty: the
    history changes as ``HistoryChange.as_dict()``, the recovered calls as ``{"index", "markup", "source",
    "repaired"}`` (``index``: the call's position in the answer's tool calls); ``"content_from_reasoning":
    True`` when the JSON answer was taken from the reasoning (``Completion.content_from_reasoning``)."""
    out: dict[str, Any] = {}
    if completion.history_changes:
        out["history_changes"] = [change.as_dict() for change in completion.history_changes]
    if completion.recovered:
        out["recovered_tool_calls"] = [dataclasses.asdict(call) for call in completion.recovered]
    if completion.content_from_reasoning:
        out["content_from_reasoning"] = True
    return out


def canonical_engine(name: str) -> str:
    """``"tgi"``, ``"vllm"`` or ``"llamacpp"`` for any engine name ``engine_clients`` knows
    (``"llama.cpp"``...); ``InvalidRequestError`` (a ``ValueError``) otherwise."""
    return client_class(name).dialect_class.engine


@contextlib.contextmanager
def closing_events(events: Iterator[Any]) -> Iterator[None]:
    """Close ``events`` (a client's ``*_stream`` result; pools may return plain iterators) on leaving."""
    try:
        yield
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()


@contextlib.asynccontextmanager
async def aclosing_events(events: AsyncIterator[Any]) -> AsyncIterator[None]:
    """:func:`closing_events` for async streams."""
    try:
        yield
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
