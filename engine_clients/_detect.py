"""``connect(url)`` / ``aconnect(url)``: find out which engine serves a URL and return its client.

Each engine has a discovery route the others lack, so a few short GETs settle it:

* TGI: ``GET /info`` answers ``model_id`` with ``router`` / ``max_total_tokens`` (TGI has no ``/version``);
* text-embeddings-inference: ``GET /info`` answers ``model_id`` with ``model_type`` (``embedding``,
  ``reranker`` or ``classifier``) and ``max_client_batch_size``;
* vLLM: ``GET /version`` answers ``{"version": ...}`` and ``GET /v1/models`` lists models with
  ``owned_by: "vllm"`` and ``max_model_len``;
* llama.cpp: ``GET /props`` answers ``default_generation_settings`` / ``build_info``; ``/v1/models`` entries
  are ``owned_by: "llamacpp"``; and while the model loads, *every* route answers
  ``503 {"error": {"type": "unavailable_error", ...}}``, a shape only llama-server uses;
* SGLang: ``/v1/models`` entries are ``owned_by: "sglang"`` (``ModelCard`` in
  ``sglang/srt/entrypoints/openai/protocol.py``; they also carry ``max_model_len``, so the owner is read
  before that vLLM hint). SGLang has no ``/info``, ``/props`` or ``/version``. Only when those four probes
  settle nothing, ``/v1/models`` gave no 200 and not every answer was 401/403/404, its own routes are
  asked: ``GET /model_info`` (``model_path`` + ``is_generation``) and ``GET /`` (``"SGLang is running"``),
  from ``http_server.py``. The other engines' detection never reaches them.

Probes are bounded by ``probe_timeout`` each, send the API key, never follow redirects and are never retried;
``engine=`` skips them. The engine knowledge here is discovery only: everything else stays in the dialects.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

import httpx

if TYPE_CHECKING:
    from pydantic import SecretStr

from ._clients import BaseClient
from ._clients import LlamaCppClient
from ._clients import SGLangClient
from ._clients import TEIClient
from ._clients import TGIClient
from ._clients import VLLMClient
from .errors import AuthenticationError
from .errors import EngineError
from .errors import EngineUnavailableError
from .errors import InvalidRequestError

__all__ = [
    "ENGINES",
    "EngineDetectionAuthError",
    "EngineDetectionError",
    "aconnect",
    "adetect_engine",
    "client_class",
    "connect",
    "detect_engine",
]

ENGINES: dict[str, type[BaseClient]] = {
    "tgi": TGIClient,
    "vllm": VLLMClient,
    "llamacpp": LlamaCppClient,
    "tei": TEIClient,
    "sglang": SGLangClient,
}
_ALIASES = {
    "tgi": "tgi",
    "text-generation-inference": "tgi",
    "vllm": "vllm",
    "llamacpp": "llamacpp",
    "llama.cpp": "llamacpp",
    "llama-cpp": "llamacpp",
    "llama_cpp": "llamacpp",
    "llama-server": "llamacpp",
    "tei": "tei",
    "text-embeddings-inference": "tei",
    "sglang": "sglang",
}
PROBE_TIMEOUT = 3.0
# In the order the sync path asks them; it stops as soon as the answers are conclusive.
PROBE_PATHS = ("/info", "/props", "/version", "/v1/models")
# SGLang's own routes, asked (in this order) only when PROBE_PATHS settled nothing (see _Evidence.fallback)
SGLANG_PROBE_PATHS = ("/model_info", "/")


class EngineDetectionError(EngineError):
    """A server answered at the URL, but not like TGI, vLLM or llama.cpp (pass ``engine=`` to skip detection).

    ``observed`` maps each probed path to the HTTP status it answered (or the transport error's name)."""

    def __init__(self, message: str, *, observed: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.observed = dict(observed or {})


def client_class(engine: str) -> type[BaseClient]:
    """The client class for an engine name (``"tgi"``, ``"vllm"``, ``"llamacpp"``, ``"tei"``, ``"sglang"``;
    ``"llama.cpp"`` too)."""
    key = _ALIASES.get(str(engine).strip().lower())
    if key is None:
        raise InvalidRequestError(f"unknown engine {engine!r}: expected one of {', '.join(ENGINES)}")
    return ENGINES[key]


# ---- the pure part: what each answer says ---------------------------------------------------------------


class _Evidence:
    """Accumulates probe answers and says which engine they point to."""

    def __init__(self) -> None:
        self.observed: dict[str, Any] = {}
        self.found: str | None = None
        self.version_seen = False
        self.models_seen = False  # /v1/models answered 200 (with or without a telling entry)
        self.models_owner: str | None = None
        self.reached = False  # some HTTP answer came back

    def add(self, path: str, status: int | None, body: Any, error: str | None = None) -> None:
        self.observed[path] = status if status is not None else error
        if status is None:
            return
        self.reached = True
        if self.found is not None:
            return
        if status == 503 and _llamacpp_loading(body):
            self.found = "llamacpp"
            return
        if status == 200 and path == "/" and body == "SGLang is running":  # http_server.py sglang_root
            self.found = "sglang"
        if status != 200 or not isinstance(body, Mapping):
            return
        if path == "/model_info":  # http_server.py model_info: SGLang only
            if isinstance(body.get("model_path"), str) and isinstance(body.get("is_generation"), bool):
                self.found = "sglang"
        elif path == "/info":
            if isinstance(body.get("model_id"), str) and (
                "model_type" in body and "max_client_batch_size" in body
            ):
                self.found = "tei"
            elif isinstance(body.get("model_id"), str) and (
                "router" in body or "max_total_tokens" in body or "max_input_tokens" in body
            ):
                self.found = "tgi"
        elif path == "/props":
            if isinstance(body.get("default_generation_settings"), Mapping) or "build_info" in body:
                self.found = "llamacpp"
        elif path == "/version":
            self.version_seen = isinstance(body.get("version"), str)
        elif path == "/v1/models":
            self.models_seen = True
            data = body.get("data")
            entries = [e for e in data if isinstance(e, Mapping)] if isinstance(data, list) else []
            owners = {e.get("owned_by") for e in entries}
            if "llamacpp" in owners:
                self.found = "llamacpp"
            elif "sglang" in owners:
                self.found = "sglang"
            elif "vllm" in owners or any("max_model_len" in e for e in entries):
                self.models_owner = "vllm"

    def fallback(self) -> bool:
        """Whether SGLang's own routes are worth asking: something answered, nothing was settled, there was
        no readable ``/v1/models`` (SGLang always serves one) and not every answer was 401/403/404 (SGLang
        guards its routes with the same key)."""
        statuses = {s for s in self.observed.values() if isinstance(s, int)}
        return (
            self.reached
            and self.verdict() is None
            and not self.models_seen
            and not statuses <= {401, 403, 404}
        )

    def conclusive(self) -> bool:
        return self.found is not None or (self.version_seen and self.models_owner == "vllm")

    def verdict(self) -> str | None:
        if self.found is not None:
            return self.found
        if self.version_seen and self.models_owner == "vllm":
            return "vllm"
        # /version alone: vLLM guards /v1 routes with its API key, so /v1/models may be unreadable
        if self.version_seen and not self.models_seen:
            return "vllm"
        if self.models_owner == "vllm":
            return "vllm"
        return None


def _llamacpp_loading(body: Any) -> bool:
    err = body.get("error") if isinstance(body, Mapping) else None
    return isinstance(err, Mapping) and err.get("type") == "unavailable_error"


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _headers(api_key: str | SecretStr | None) -> dict[str, str]:
    hdrs = {"user-agent": "llm-engine-clients/0.1", "accept": "application/json"}
    key = api_key if api_key is None or isinstance(api_key, str) else api_key.get_secret_value()
    if key:
        hdrs["authorization"] = f"Bearer {key}"
    return hdrs


def _conclude(base_url: str, ev: _Evidence, api_key: str | SecretStr | None = None) -> str:
    engine = ev.verdict()
    if engine is not None:
        return engine
    seen = ", ".join(f"{p} -> {s}" for p, s in ev.observed.items())
    if not ev.reached:
        raise EngineUnavailableError(f"no server answered at {base_url} while detecting its engine ({seen})")
    statuses = {s for s in ev.observed.values() if isinstance(s, int)}
    if statuses & {401, 403} and statuses <= {401, 403, 404}:
        raise _auth_error(
            base_url, seen, statuses, ev.observed, given=bool(_headers(api_key).get("authorization"))
        )
    raise EngineDetectionError(
        f"could not tell which engine serves {base_url} ({seen});"
        " pass engine='tgi'|'vllm'|'llamacpp'|'tei'|'sglang'",
        observed=ev.observed,
    )


class EngineDetectionAuthError(EngineDetectionError, AuthenticationError):
    """Detection met only 401/403 answers: the server wants an API key that was not given, or refused the
    one given. Both an :class:`EngineDetectionError` and an :class:`AuthenticationError`."""


def _auth_error(
    base_url: str, seen: str, statuses: set[int], observed: Mapping[str, Any], *, given: bool
) -> EngineDetectionAuthError:
    keys = " / ".join(f"{c.env_prefix}_API_KEY" for c in ENGINES.values())
    if not given:
        what = f"{base_url} requires an API key and none was given ({seen})"
        fix = f"pass api_key= (or set {keys}, or --api-key on the command line)"
    elif 403 in statuses and 401 not in statuses:
        what = f"{base_url} refused the API key given: it is not allowed here ({seen})"
        fix = "check the key's permissions, or the proxy in front of the server"
    else:
        what = f"{base_url} refused the API key given: it is wrong for this server ({seen})"
        fix = "pass the key the server was started with (--api-key)"
    return EngineDetectionAuthError(
        f"{what}. Fix: {fix}", observed=observed, status_code=401 if 401 in statuses else 403
    )


def _url(base_url: str) -> str:
    url = base_url.strip().rstrip("/")
    if url.endswith("/v1"):  # an OpenAI-style base URL: the discovery routes live at the root
        url = url[:-3]
    return url


def detect_engine(
    base_url: str,
    *,
    api_key: str | SecretStr | None = None,
    probe_timeout: float = PROBE_TIMEOUT,
    http_client: httpx.Client | None = None,
) -> str:
    """``"tgi"``, ``"vllm"`` or ``"llamacpp"``: the engine serving ``base_url``.

    Raises :class:`EngineUnavailableError` when nothing answers, :class:`EngineDetectionError` when
    something answers but matches no engine."""
    url = _url(base_url)
    ev = _Evidence()
    client = http_client or httpx.Client(timeout=probe_timeout, follow_redirects=False)
    try:
        for path in PROBE_PATHS:
            try:
                r = client.get(url + path, headers=_headers(api_key), timeout=probe_timeout)
            except httpx.HTTPError as exc:
                ev.add(path, None, None, type(exc).__name__)
                if isinstance(exc, httpx.ConnectError):
                    break  # nothing listens: the other routes will not answer either
                continue
            ev.add(path, r.status_code, _json(r))
            if ev.conclusive():
                break
        for path in SGLANG_PROBE_PATHS if ev.fallback() else ():
            try:
                r = client.get(url + path, headers=_headers(api_key), timeout=probe_timeout)
            except httpx.HTTPError as exc:
                ev.add(path, None, None, type(exc).__name__)
                continue
            ev.add(path, r.status_code, _json(r))
            if ev.conclusive():
                break
    finally:
        if http_client is None:
            client.close()
    return _conclude(url, ev, api_key)


async def adetect_engine(
    base_url: str,
    *,
    api_key: str | SecretStr | None = None,
    probe_timeout: float = PROBE_TIMEOUT,
    http_client: httpx.AsyncClient | None = None,
) -> str:
    """The async twin of :func:`detect_engine`; probes the routes concurrently."""
    url = _url(base_url)
    ev = _Evidence()
    client = http_client or httpx.AsyncClient(timeout=probe_timeout, follow_redirects=False)

    async def probe(path: str) -> tuple[str, int | None, Any, str | None]:
        try:
            r = await client.get(url + path, headers=_headers(api_key), timeout=probe_timeout)
        except httpx.HTTPError as exc:
            return path, None, None, type(exc).__name__
        return path, r.status_code, _json(r), None

    try:
        for path, status, body, error in await asyncio.gather(*(probe(p) for p in PROBE_PATHS)):
            ev.add(path, status, body, error)
        if ev.fallback():
            for path, status, body, error in await asyncio.gather(*(probe(p) for p in SGLANG_PROBE_PATHS)):
                ev.add(path, status, body, error)
    finally:
        if http_client is None:
            await client.aclose()
    return _conclude(url, ev, api_key)


def _resolve(base_url: str | None, engine: str | None) -> tuple[str | None, str | None]:
    """Fill in a missing URL from the one ``<ENGINE>_BASE_URL`` variable that is set."""
    if base_url or engine:
        return base_url, engine
    found = [
        (name, os.environ[f"{cls.env_prefix}_BASE_URL"])
        for name, cls in ENGINES.items()
        if os.environ.get(f"{cls.env_prefix}_BASE_URL")
    ]
    if len(found) != 1:
        names = ", ".join(f"{c.env_prefix}_BASE_URL" for c in ENGINES.values())
        raise InvalidRequestError(
            f"no base_url given and {'none' if not found else 'several'} of {names} set; pass base_url"
        )
    name, url = found[0]
    return url, name


def connect(
    base_url: str | None = None,
    *,
    engine: str | None = None,
    probe_timeout: float = PROBE_TIMEOUT,
    **kwargs: Any,
) -> BaseClient:
    """A client for the engine at ``base_url``: ``TGIClient``, ``VLLMClient`` or ``LlamaCppClient``.

    ``engine`` skips detection; ``kwargs`` go to the client (``api_key``, ``model``, ``timeout``, ...). The
    probes use the given ``api_key`` and ``http_client`` (when given)."""
    base_url, engine = _resolve(base_url, engine)
    if engine is None:
        assert base_url is not None
        engine = detect_engine(
            base_url,
            api_key=kwargs.get("api_key"),
            probe_timeout=probe_timeout,
            http_client=kwargs.get("http_client"),
        )
    return client_class(engine)(_url(base_url) if base_url else None, **kwargs)


async def aconnect(
    base_url: str | None = None,
    *,
    engine: str | None = None,
    probe_timeout: float = PROBE_TIMEOUT,
    **kwargs: Any,
) -> BaseClient:
    """The async twin of :func:`connect` (probes with an async client; the returned client does both)."""
    base_url, engine = _resolve(base_url, engine)
    if engine is None:
        assert base_url is not None
        engine = await adetect_engine(
            base_url,
            api_key=kwargs.get("api_key"),
            probe_timeout=probe_timeout,
            http_client=kwargs.get("async_http_client"),
        )
    return client_class(engine)(_url(base_url) if base_url else None, **kwargs)
