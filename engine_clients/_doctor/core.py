"""``engine-clients doctor URL``: what works against a server, and what to change where it does not.

:func:`diagnose` detects the engine (``connect()``'s probes), then tries each capability with one small real
request through this package's own client: chat, streaming, usage in streams, tools under each
``tool_choice``, structured output, the reasoning split, images, embeddings, rerank, tokenize, timings and
cache hits, the context size and the API key. Each :class:`Check` says what was seen and, when something is
missing, the fix: the server flag or client setting from ``engine_clients/dialects/fixes.py``, the table the
typed errors' hints come from. The checks themselves are in ``chat.py`` and ``checks.py``.

Every request is bounded (``request_timeout`` and what is left of ``budget``), none is retried, and once the
budget is spent the remaining checks are reported as skipped. Nothing here prints: the CLI
(``engine_clients/_cli/doctor.py``) renders a :class:`Report` as a table or as JSON.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Literal

import httpx

from .._clients import BaseClient
from .._detect import ENGINES
from .._detect import _url
from .._detect import client_class
from .._detect import detect_engine
from .._http import Timeouts
from ..dialects.fixes import Fix
from ..dialects.fixes import fix_for
from ..dialects.fixes import fix_for_error
from ..errors import AuthenticationError
from ..errors import EngineError
from ..errors import EngineUnavailableError
from ..types import Completion
from ..types import EngineInfo

__all__ = ["Check", "Report", "Status", "diagnose"]

Status = Literal["ok", "warn", "fail", "skip"]
SYMBOLS: dict[str, str] = {"ok": "✓", "warn": "◐", "fail": "✗", "skip": "-"}

DEFAULT_BUDGET = 60.0
DEFAULT_REQUEST_TIMEOUT = 20.0


@dataclass(slots=True)
class Check:
    """One row: ``capability`` (a key of the fixes table), a ``label``, the ``status`` (``ok``; ``warn``:
    works with a caveat; ``fail``; ``skip``: not applicable or not tried), what was ``seen``, the ``fix``."""

    capability: str
    label: str
    status: Status
    seen: str
    fix: Fix | None = None

    def to_dict(self) -> dict[str, Any]:
        fix = {"text": self.fix.text, "doc": self.fix.doc} if self.fix else None
        return {
            "capability": self.capability,
            "label": self.label,
            "status": self.status,
            "seen": self.seen,
            "fix": fix,
        }


@dataclass(slots=True)
class Report:
    """What :func:`diagnose` found at ``url``."""

    url: str
    engine: str | None = None
    version: str | None = None
    model: str | None = None
    checks: list[Check] = field(default_factory=list)
    elapsed_s: float = 0.0

    def check(self, capability: str) -> Check | None:
        """The first check of ``capability`` (None when it was not reported)."""
        return next((c for c in self.checks if c.capability == capability), None)

    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    @property
    def reachable(self) -> bool:
        """The server answered, was identified and accepted the key: the capability checks ran."""
        return self.engine is not None and not any(
            c.status == "fail" for c in self.checks if c.capability in ("reach", "auth")
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "engine": self.engine,
            "version": self.version,
            "model": self.model,
            "elapsed_s": round(self.elapsed_s, 3),
            "checks": [c.to_dict() for c in self.checks],
        }


Progress = Callable[[str], None]


class Budget:
    """The deadline of one diagnosis; each request gets what is left of it, at most ``per_request``."""

    def __init__(self, total: float, per_request: float) -> None:
        self.deadline = time.monotonic() + total
        self.per_request = per_request

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def limit(self) -> float:
        return max(0.0, min(self.per_request, self.left()))

    def spent(self) -> bool:
        return self.left() < 0.5


class Session:
    """One server under diagnosis: the engine, its info, and a client per check bounded by the budget."""

    def __init__(
        self,
        url: str,
        engine: str,
        api_key: str | None,
        budget: Budget,
        http: httpx.Client,
        report: Report,
    ) -> None:
        self.url, self.engine, self.api_key, self.budget = url, engine, api_key, budget
        self.http = http
        self.report = report
        self.info: EngineInfo | None = None
        self.first: Completion | None = None  # the first chat answer (its timings are a check of their own)
        self.chat_failed = False  # then the checks that need chat are skipped

    @property
    def model(self) -> str | None:
        return self.info.model if self.info else None

    @contextmanager
    def client(self, *, think_tags: Any = None, api_key: str | None = None) -> Iterator[BaseClient]:
        """A client with no retries whose every time limit is the budget left (at most one request's);
        ``think_tags`` None: the content stays raw (so a split seen is the server's); ``api_key=""``: none."""
        t = max(self.budget.limit(), 0.5)
        timeouts = Timeouts(connect=min(t, 5.0), read=t, chunk=t, write=t, pool=t, load=0.0)
        cls = client_class(self.engine)
        with cls(
            self.url,
            api_key=self.api_key if api_key is None else api_key,
            model=self.model,
            timeout=timeouts,
            max_retries=0,
            think_tags=think_tags,
            http_client=self.http,
        ) as client:
            yield client

    def fix(self, capability: str, error: BaseException | None = None) -> Fix | None:
        """The fix the error's text points to, else the capability's own."""
        found = fix_for_error(self.engine, str(error)) if error is not None else None
        return found or fix_for(self.engine, capability)


def _short(error: BaseException, limit: int = 160) -> str:
    # the fix has a column of its own
    text = re.split(r"\. (?:Fix: |This server cannot take [\w ]+ input: )", str(error))[0]
    text = f"{type(error).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _env_urls() -> list[tuple[str, str]]:
    """(url, engine) for each URL in a set ``<ENGINE>_BASE_URL`` (comma-separated lists included)."""
    out = []
    for name, cls in ENGINES.items():
        for url in os.environ.get(f"{cls.env_prefix}_BASE_URL", "").split(","):
            if url.strip():
                out.append((url.strip(), name))
    return out


def targets(urls: list[str], engine: str | None) -> list[tuple[str, str | None]]:
    """What to diagnose: the URLs given (with ``engine``, or detected), else every ``*_BASE_URL``."""
    if urls:
        return [(u, engine) for u in urls]
    return [(u, engine or e) for u, e in _env_urls()]


def _detect(url: str, api_key: str | None, budget: Budget, http: httpx.Client) -> tuple[str, str | None]:
    """(engine, key): detection with the key given; without one, with the one ``*_API_KEY`` set, if only
    that gets past a server that refused the bare probes (the engine's client would send it too)."""
    timeout = min(3.0, budget.limit())
    try:
        return detect_engine(url, api_key=api_key, probe_timeout=timeout, http_client=http), api_key
    except AuthenticationError:
        names = [f"{c.env_prefix}_API_KEY" for c in ENGINES.values()]
        keys = {os.environ[n] for n in names if os.environ.get(n)}
        if api_key is not None or len(keys) != 1:
            raise
        key = keys.pop()
        return detect_engine(url, api_key=key, probe_timeout=timeout, http_client=http), key


def diagnose(
    url: str,
    *,
    engine: str | None = None,
    api_key: str | None = None,
    budget: float = DEFAULT_BUDGET,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    need_context: int | None = None,
    only: set[str] | None = None,
    progress: Progress | None = None,
) -> Report:
    """Diagnose the server at ``url`` (``engine`` skips detection).

    ``need_context``: the prompt size, in tokens, your application needs (a smaller context window is a
    failure). ``only``: run just these checks (names in ``engine_clients._doctor.checks.CHECKS``; ``info``,
    which reads the server's info, the key and the context size, always runs). ``progress`` is called with
    each check's label before it runs. Never raises for what the server answers: that is the report."""
    from .checks import CHECKS

    started = time.monotonic()
    report = Report(_url(url))
    clock = Budget(budget, request_timeout)
    say = progress or (lambda _label: None)
    with httpx.Client(follow_redirects=False) as http:
        say("detecting the engine")
        try:
            if engine:
                found = client_class(engine).dialect_class.engine
            else:
                found, api_key = _detect(url, api_key, clock, http)
        except AuthenticationError as exc:
            fix = fix_for(engine, "auth") or Fix(
                str(exc).partition(". Fix: ")[2] or "pass the server's API key"
            )
            report.checks.append(Check("auth", "API key", "fail", _short(exc), fix))
        except EngineUnavailableError as exc:
            report.checks.append(Check("reach", "server reachable", "fail", _short(exc)))
        except EngineError as exc:
            report.checks.append(
                Check("reach", "engine detected", "fail", _short(exc), Fix("pass --engine to skip detection"))
            )
        else:
            report.engine = found
            session = Session(report.url, found, api_key, clock, http, report)
            for label, run in CHECKS:
                if not report.reachable:
                    break
                if only is not None and label != "info" and label not in only:
                    continue
                if clock.spent():
                    report.checks.append(Check(label, label, "skip", "time budget spent"))
                    continue
                say(label)
                try:
                    run(session, need_context)
                except Exception as exc:  # an answer this package could not handle: a row, not a crash
                    report.checks.append(
                        Check(label, label, "fail", f"the check itself failed: {_short(exc)}")
                    )
    report.elapsed_s = time.monotonic() - started
    return report
