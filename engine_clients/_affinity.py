"""Session affinity through a router: how a request tells the router in front of the engines which session
it belongs to, so that the router keeps the session on one replica (and its prompt cache warm).

Routers disagree on the wire. :class:`SessionAffinity` names the way, with a preset per router:

=================  ======================================  ==========================================
preset             what goes out with ``session_id="s1"``   router
=================  ======================================  ==========================================
``vllm-router``    header ``X-Session-ID: s1`` (default)     vllm-router (``--policy consistent_hash``)
``litellm``        header ``x-litellm-session-id: s1``       LiteLLM proxy
``dynamo``         header ``X-Dynamo-Session-ID: s1``        NVIDIA Dynamo frontend
``llm-d``          cookie ``llm-d-session`` the router set    llm-d inference gateway
=================  ======================================  ==========================================

Header routers hash the id themselves. A cookie router picks a replica on a session's first request and
says which in a ``Set-Cookie``; the client keeps one cookie jar per session (bounded, least recently used
dropped) and sends that session's cookie, and only it, with the session's later requests.

A transport-level concern only: no engine knows about it, and ``EnginePool``'s own affinity (llama.cpp
slots, see :meth:`~engine_clients.BaseClient.affinity_params`) is separate.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from http.cookies import CookieError
from http.cookies import SimpleCookie
from typing import ClassVar
from typing import Literal

from .errors import InvalidRequestError

__all__ = ["AffinityKind", "OnHeaders", "SessionAffinity", "SessionRouting"]

AffinityKind = Literal["header", "cookie"]
OnHeaders = Callable[[Iterable[tuple[str, str]]], None]
"""Called with a response's headers (name, value pairs, repeated names kept)."""


@dataclass(frozen=True, slots=True)
class SessionAffinity:
    """How a session id reaches the router: as the header ``name``, or through the cookie ``name`` that the
    router sets. ``SessionAffinity.preset("litellm")``, or build your own
    (``SessionAffinity("header", "X-My-Session")``)."""

    kind: AffinityKind = "header"
    name: str = "X-Session-ID"

    PRESETS: ClassVar[dict[str, tuple[AffinityKind, str]]] = {
        "vllm-router": ("header", "X-Session-ID"),
        "litellm": ("header", "x-litellm-session-id"),
        "dynamo": ("header", "X-Dynamo-Session-ID"),
        "llm-d": ("cookie", "llm-d-session"),
    }

    def __post_init__(self) -> None:
        if self.kind not in ("header", "cookie"):
            raise InvalidRequestError(f"SessionAffinity kind must be 'header' or 'cookie', not {self.kind!r}")
        if not self.name or any(c in self.name for c in " \t\r\n:;,="):
            raise InvalidRequestError(f"not a valid header or cookie name: {self.name!r}")

    @classmethod
    def preset(cls, router: str) -> SessionAffinity:
        """The affinity for a router by name: ``vllm-router``, ``litellm``, ``dynamo`` or ``llm-d``."""
        try:
            kind, name = cls.PRESETS[router.strip().lower()]
        except KeyError:
            raise InvalidRequestError(
                f"unknown router {router!r}: expected one of {', '.join(cls.PRESETS)} "
                "(or a SessionAffinity of your own)"
            ) from None
        return cls(kind, name)

    @classmethod
    def coerce(cls, value: SessionAffinity | str | None) -> SessionAffinity:
        if value is None:
            return cls()
        if isinstance(value, SessionAffinity):
            return value
        return cls.preset(value)

    def headers(self, session_id: str, cookie: str | None = None) -> dict[str, str]:
        """The request headers that carry ``session_id`` (cookie kind: ``cookie``, the session's own
        cookie value so far, or None before the router set one)."""
        if self.kind == "header":
            return {self.name: session_id}
        # An explicit (possibly empty) Cookie header: the HTTP client's shared jar never adds another
        # session's cookie to this request.
        return {"cookie": f"{self.name}={cookie}" if cookie else ""}


def _check_session_id(session_id: str) -> str:
    if not isinstance(session_id, str) or not session_id or any(c in session_id for c in "\r\n\0"):
        raise InvalidRequestError(f"session_id must be a non-empty single-line string, not {session_id!r}")
    return session_id


class SessionRouting:
    """A client's affinity and, for cookie routers, one cookie jar per session (thread-safe, bounded)."""

    def __init__(self, affinity: SessionAffinity, max_sessions: int = 10_000) -> None:
        self.affinity = affinity
        self.max_sessions = max_sessions
        self._cookies: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def cookie(self, session_id: str) -> str | None:
        with self._lock:
            return self._cookies.get(session_id)

    def route(self, session_id: str | None) -> tuple[dict[str, str] | None, OnHeaders | None]:
        """For the transport: the extra request headers, and for cookie routers a callback that files the
        router's ``Set-Cookie`` under this session. ``(None, None)`` without a session."""
        if session_id is None:
            return None, None
        sid = _check_session_id(session_id)
        if self.affinity.kind == "header":
            return self.affinity.headers(sid), None
        return self.affinity.headers(sid, self.cookie(sid)), self._observer(sid)

    def _observer(self, session_id: str) -> OnHeaders:
        def observe(headers: Iterable[tuple[str, str]]) -> None:
            value = self._from_set_cookie(v for k, v in headers if k.lower() == "set-cookie")
            if value is None:
                return
            with self._lock:
                self._cookies[session_id] = value
                self._cookies.move_to_end(session_id)
                while len(self._cookies) > self.max_sessions:
                    self._cookies.popitem(last=False)

        return observe

    def _from_set_cookie(self, lines: Iterable[str]) -> str | None:
        found = None
        for line in lines:
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(line)
            except CookieError:
                continue
            morsel = jar.get(self.affinity.name)
            if morsel is not None:
                found = morsel.value
        return found
