"""A router tier for integration tests: ``vllm-router`` in front of engine replicas.

``vllm-router`` (PyPI, a Rust router with a Python launcher, manylinux abi3 wheel) is installed into its own
cached virtual environment, ``<cache>/vllm-router`` (about 130 MB, under a minute cold), and started like
the engines, through the launcher (its own process group, a watchdog, stopped with the ``with`` block):

>>> from engine_clients.testing import start_llama_server
>>> from engine_clients.testing.router import start_vllm_router
>>> with start_llama_server() as a, start_llama_server() as b:
...     with start_vllm_router([a.base_url, b.base_url], policy="consistent_hash") as router:
...         client = LlamaCppClient(router.base_url)

Under ``consistent_hash`` the router hashes a session key, read from the ``X-Session-ID`` header (also
``session-id``, ``x-user-id``...), onto a ring of the workers. ``$ENGINE_CLIENTS_VLLM_ROUTER`` (the path of
an existing ``vllm-router`` executable) skips the installation.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import httpx

from ._process import EngineServer
from ._process import _free_port
from ._process import _start
from .provision import ProvisionError
from .provision import _create_venv
from .provision import _locked
from .provision import _probe
from .provision import _run
from .provision import _say
from .provision import _venv_python
from .provision import cache_root

__all__ = [
    "VLLM_ROUTER_VERSION",
    "RouterPolicy",
    "ensure_vllm_router",
    "llama_server_metrics",
    "start_vllm_router",
]

VLLM_ROUTER_VERSION = "0.1.17"

RouterPolicy = Literal[
    "random",
    "round_robin",
    "cache_aware",
    "kv_aware",
    "power_of_two",
    "consistent_hash",
    "sticky_least_loaded",
]

_ROUTER_PROBE = "import vllm_router_rs, vllm_router.version as v; print(v.__version__)"


def _router_executable(python: Path) -> Path | None:
    out = _probe(python, _ROUTER_PROBE, timeout=60)
    if out != VLLM_ROUTER_VERSION:
        return None
    exe = python.parent / "vllm-router"
    return exe if exe.is_file() and os.access(exe, os.X_OK) else None


def ensure_vllm_router() -> Path:
    """Install ``vllm-router`` (pinned) if needed and return its executable.

    ``$ENGINE_CLIENTS_VLLM_ROUTER`` overrides the install."""
    override = os.environ.get("ENGINE_CLIENTS_VLLM_ROUTER")
    if override:
        path = Path(override).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ProvisionError(f"ENGINE_CLIENTS_VLLM_ROUTER={override} is not an executable file")
        return path
    python = _venv_python(cache_root() / "vllm-router")
    exe = _router_executable(python)
    if exe is not None:
        return exe
    with _locked("vllm-router"):
        exe = _router_executable(python)
        if exe is not None:
            return exe
        _create_venv(python.parent.parent, "vllm-router")
        _say(f"installing vllm-router=={VLLM_ROUTER_VERSION} (a Rust wheel, about 130 MB with its launcher)")
        _run(
            [python, "-m", "pip", "install", f"vllm-router=={VLLM_ROUTER_VERSION}"],
            prefix="vllm-router pip",
        )
        exe = _router_executable(python)
        if exe is None:
            raise ProvisionError(f"vllm-router was installed in {python.parent.parent} but does not import")
    return exe


def start_vllm_router(
    worker_urls: Sequence[str],
    *,
    policy: RouterPolicy = "consistent_hash",
    engine: Literal["llamacpp", "vllm"] = "llamacpp",
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    log_path: Path | str | None = None,
    ready_timeout: float = 60.0,
    executable: Path | str | None = None,
) -> EngineServer:
    """Start ``vllm-router --worker-urls ... --policy policy`` on a free port; wait until ``/health``
    answers 200 (the router answers it once its workers do).

    Returns an :class:`EngineServer` whose ``engine`` is the engine *behind* the router (the API a client
    speaks through it) and whose ``model`` is the workers' (the scripted model's name). The router's own
    log (``log_path``) shows which worker each request went to. ``extra_args`` go last (e.g.
    ``["--health-check-interval-secs", "1"]``)."""
    if not worker_urls:
        raise ValueError("start_vllm_router needs at least one worker URL")
    exe = Path(executable) if executable is not None else ensure_vllm_router()
    model = _served_model(worker_urls[0])

    def cmd(port: int) -> list[str]:
        return [
            str(exe),
            "--host", "127.0.0.1",
            "--port", str(port),
            "--worker-urls", *worker_urls,
            "--policy", policy,
            # its Prometheus exporter has a fixed default port: a second router would fail to start
            "--prometheus-host", "127.0.0.1",
            "--prometheus-port", str(_free_port()),
            *extra_args,
        ]  # fmt: skip

    if log_path is None:
        fd, name = tempfile.mkstemp(prefix="engine-clients-vllm-router-", suffix=".log")
        os.close(fd)
        log_path = name
    return _start(
        engine,
        cmd,
        model=model,
        api_key=None,
        env=env,
        log_path=log_path,
        ready_timeout=ready_timeout,
    )


def _served_model(worker_url: str) -> str:
    """The model id the first worker serves (what a client sends as ``model`` through the router)."""
    try:
        body = httpx.get(worker_url.rstrip("/") + "/v1/models", timeout=10).json()
        return str(body["data"][0]["id"])
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise ProvisionError(f"cannot read the served model from {worker_url}/v1/models: {exc}") from exc


def llama_server_metrics(base_url: str) -> dict[str, float]:
    """One llama-server's own counters from ``GET /metrics`` (started with ``--metrics``), by name:
    ``llamacpp:tokens_predicted_total``, ``llamacpp:prompt_tokens_total``, ``llamacpp:n_decode_total``...
    The server's account of the work it did, independent of any client or router in front of it."""
    response = httpx.get(base_url.rstrip("/") + "/metrics", timeout=10)
    response.raise_for_status()
    out: dict[str, float] = {}
    for line in response.text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            continue
    return out
