"""Start real engine servers on 127.0.0.1 for tests and local experiments.

>>> from engine_clients.testing import start_llama_server
>>> with start_llama_server() as server:          # scripted tiny GGUF, provisioned on first use
...     httpx.post(f"{server.base_url}/v1/chat/completions", json={...})

Each server binds 127.0.0.1 on a free port, writes its stdout/stderr to ``server.log_path`` and is stopped
when the ``with`` block ends (SIGTERM to its process group, then SIGKILL), or at interpreter exit at the
latest. Servers never outlive the Python process that started them, however it ends (``kill -9`` included):
a small watchdog process per server (``_watchdog.py``) holds the read end of a pipe whose write end only
this process has; when this process dies the pipe closes and the watchdog stops the server's whole process
group (SIGTERM, then SIGKILL after 5 s), which takes vLLM's engine-core children with it.
Start-up failures raise :class:`EngineStartError` with the last lines of the server's log.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal

import httpx

from .provision import chat_template_path, ensure_llama_server, ensure_vllm, scripted_gguf, scripted_hf_model

__all__ = [
    "DEFAULT_CONTEXT",
    "DEFAULT_MODEL_NAME",
    "EngineServer",
    "EngineStartError",
    "start_llama_server",
    "start_vllm_server",
]

Engine = Literal["llamacpp", "vllm"]

DEFAULT_MODEL_NAME = "scripted-tiny"
DEFAULT_CONTEXT = 8192  # tokens per request: llama-server's context per slot, vLLM's max_model_len
_LOG_TAIL_LINES = 60
_POLL_INTERVAL_S = 0.25
_PORT_IN_USE_MARKERS = ("address already in use", "couldn't bind", "failed to bind", "errno 98")
_WATCHDOG = Path(__file__).resolve().parent / "_watchdog.py"
# the thinking template's kwargs on a vLLM thinking server: plain prompts unless a request asks for thinking
_VLLM_THINKING_DEFAULTS = {"enable_thinking": False, "plain_without_thinking": True}


class EngineStartError(RuntimeError):
    """A server process exited or did not become ready in time; the message ends with its log tail."""

    def __init__(self, message: str, log_path: Path | None = None) -> None:
        super().__init__(message)
        self.log_path = log_path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(collections.deque(f, maxlen=lines))
    except OSError:
        return ""


_running: set[EngineServer] = set()
_running_lock = threading.Lock()


@atexit.register
def _stop_all() -> None:
    with _running_lock:
        servers = list(_running)
    for server in servers:
        server.stop()


class EngineServer:
    """A running engine server process; a context manager that stops it on exit.

    Attributes: ``engine`` ("llamacpp" or "vllm"), ``base_url`` (``http://127.0.0.1:PORT``, no trailing slash,
    no ``/v1``), ``port``, ``model`` (the served model name to send as ``model``), ``api_key`` (or None),
    ``log_path`` (the server's combined stdout/stderr), ``process`` (the server; its pid is also its process
    group id) and ``watchdog`` (the process that stops the group if this Python process dies first).
    """

    def __init__(
        self,
        engine: Engine,
        process: subprocess.Popen[bytes],
        *,
        port: int,
        model: str,
        api_key: str | None,
        log_path: Path,
        watchdog: subprocess.Popen[bytes] | None = None,
    ) -> None:
        self.engine: Engine = engine
        self.process = process
        self.watchdog = watchdog
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.model = model
        self.api_key = api_key
        self.log_path = log_path
        with _running_lock:
            _running.add(self)

    def __repr__(self) -> str:
        return f"EngineServer({self.engine!r}, base_url={self.base_url!r}, model={self.model!r})"

    @property
    def openai_base_url(self) -> str:
        """``base_url + "/v1"``, the base URL OpenAI SDKs expect."""
        return self.base_url + "/v1"

    @property
    def headers(self) -> dict[str, str]:
        """``Authorization`` header for the server's API key (empty if it has none)."""
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of the server's log."""
        return _log_tail(self.log_path, lines)

    def is_running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server: SIGTERM to its process group, wait ``timeout`` s, then SIGKILL. Idempotent."""
        with _running_lock:
            _running.discard(self)
        if self.process.poll() is None:
            _signal_group(self.process, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.process, signal.SIGKILL)
                self.process.wait(timeout=timeout)
        # Children left behind by the server (e.g. vLLM's engine core) share its process group.
        _signal_group(self.process, signal.SIGKILL)
        _disarm(self.watchdog)

    def wait_ready(self, timeout: float, path: str = "/health") -> None:
        """Poll ``GET path`` until it answers 200; EngineStartError if the process exits or time runs out."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        with httpx.Client(timeout=httpx.Timeout(5.0, connect=2.0)) as client:
            while True:
                code = self.process.poll()
                if code is not None:
                    raise EngineStartError(
                        f"{self.engine} server exited with code {code} before it was ready; "
                        f"log {self.log_path}:\n{self.log_tail()}",
                        self.log_path,
                    )
                try:
                    response = client.get(self.base_url + path)
                    if response.status_code == 200:
                        return
                    last = f"HTTP {response.status_code}: {response.text[:200]}"
                except httpx.TransportError as exc:
                    last = f"{type(exc).__name__}: {exc}"
                if time.monotonic() >= deadline:
                    self.stop()
                    raise EngineStartError(
                        f"{self.engine} server not ready after {timeout:.0f} s (last: {last}); "
                        f"log {self.log_path}:\n{self.log_tail()}",
                        self.log_path,
                    )
                time.sleep(_POLL_INTERVAL_S)

    def __enter__(self) -> EngineServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def _start_watchdog(log: Path, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """The watchdog of one server (see ``_watchdog.py``); it learns the process group through its stdin."""
    return subprocess.Popen(
        [sys.executable, "-I", "-S", str(_WATCHDOG), str(log)],
        stdin=subprocess.PIPE,  # the write end stays here only (not inheritable, closed in other children)
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(env),
        start_new_session=True,  # out of reach of the terminal's Ctrl-C and of the server group's signals
    )


def _arm(watchdog: subprocess.Popen[bytes], pgid: int) -> None:
    assert watchdog.stdin is not None
    with contextlib.suppress(OSError):
        watchdog.stdin.write(f"{pgid}\n".encode())
        watchdog.stdin.flush()


def _disarm(watchdog: subprocess.Popen[bytes] | None) -> None:
    """The server was stopped here: tell its watchdog to exit without signalling anything."""
    if watchdog is None or watchdog.stdin is None or watchdog.stdin.closed:
        return
    with contextlib.suppress(OSError):
        watchdog.stdin.write(b"q")
        watchdog.stdin.flush()
    with contextlib.suppress(OSError):
        watchdog.stdin.close()
    with contextlib.suppress(subprocess.TimeoutExpired):
        watchdog.wait(timeout=5)


def _start(
    engine: Engine,
    build_cmd: Callable[[int], list[str]],
    *,
    model: str,
    api_key: str | None,
    env: Mapping[str, str] | None,
    log_path: Path | str | None,
    ready_timeout: float,
    attempts: int = 3,
) -> EngineServer:
    if log_path is None:
        fd, name = tempfile.mkstemp(prefix=f"engine-clients-{engine}-", suffix=".log")
        os.close(fd)
        log = Path(name)
    else:
        log = Path(log_path)
        log.parent.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ)
    full_env.pop("PYTHONPATH", None)
    if env:
        full_env.update(env)
    for attempt in range(1, attempts + 1):
        port = _free_port()
        cmd = build_cmd(port)
        # The watchdog first: then there is no moment at which the server runs unwatched.
        watchdog = _start_watchdog(log, full_env)
        try:
            with open(log, "ab") as out:
                out.write(f"$ {' '.join(cmd)}\n".encode())
                out.flush()
                process = subprocess.Popen(
                    cmd,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=full_env,
                    start_new_session=True,  # its own process group, so stop() reaches its children
                )
        except BaseException:
            _disarm(watchdog)
            raise
        _arm(watchdog, process.pid)
        server = EngineServer(
            engine, process, port=port, model=model, api_key=api_key, log_path=log, watchdog=watchdog
        )
        try:
            server.wait_ready(ready_timeout)
            return server
        except EngineStartError:
            server.stop()
            tail = server.log_tail().lower()
            if attempt < attempts and any(m in tail for m in _PORT_IN_USE_MARKERS):
                continue  # lost the race for the port: try another one
            raise
        except BaseException:
            server.stop()
            raise
    raise AssertionError("unreachable")


def start_llama_server(
    model_path: Path | str | None = None,
    *,
    model_name: str | None = None,
    ctx_size: int | None = None,
    parallel: int = 4,
    ctx_per_slot: int = DEFAULT_CONTEXT,
    api_key: str | None = None,
    thinking: bool = False,
    reasoning_format: str | None = None,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    log_path: Path | str | None = None,
    ready_timeout: float = 120.0,
    binary: Path | str | None = None,
) -> EngineServer:
    """Start llama.cpp's ``llama-server``; wait until ``/health`` answers 200 (it answers 503 while loading).

    ``model_path`` defaults to the scripted tiny GGUF (:func:`scripted_gguf`); ``binary`` to the provisioned
    one (:func:`ensure_llama_server`, which also restores its shared-library links). The server runs with
    ``--jinja``, ``--parallel parallel`` slots sharing ``--ctx-size ctx_size`` tokens (default
    ``parallel * ctx_per_slot``: 4 slots of 8,192 tokens, each request gets 8,192) and ``--alias model_name``
    (default: "scripted-tiny" for the scripted model, else the file name), plus ``extra_args``.

    ``thinking=True`` serves the thinking chat template (``--chat-template-file``, see
    :func:`chat_template_path`): the scripted model then answers ``<think>`` (in the prompt) ``"\nThe user
    says hello.\n</think>\n Hello world."``, and ``chat_template_kwargs: {"enable_thinking": false}`` turns
    the thinking off. ``reasoning_format`` is passed as ``--reasoning-format`` (``deepseek``: the thinking
    goes to ``reasoning_content``; ``none``: it stays in ``content``); None keeps the server's default.
    """
    exe = Path(binary) if binary is not None else ensure_llama_server()
    if model_path is None:
        gguf = scripted_gguf()
        name = model_name or DEFAULT_MODEL_NAME
    else:
        gguf = Path(model_path)
        name = model_name or gguf.name

    def cmd(port: int) -> list[str]:
        args = [
            str(exe),
            "--host", "127.0.0.1",
            "--port", str(port),
            "-m", str(gguf),
            "--alias", name,
            "--jinja",
            "--ctx-size", str(ctx_size if ctx_size is not None else parallel * ctx_per_slot),
            "--parallel", str(parallel),
        ]  # fmt: skip
        if thinking:
            args += ["--chat-template-file", str(chat_template_path(thinking=True))]
        if reasoning_format is not None:
            args += ["--reasoning-format", reasoning_format]
        if api_key:
            args += ["--api-key", api_key]
        return args + list(extra_args)

    return _start(
        "llamacpp",
        cmd,
        model=name,
        api_key=api_key,
        env=env,
        log_path=log_path,
        ready_timeout=ready_timeout,
    )


def start_vllm_server(
    model_dir: Path | str | None = None,
    *,
    served_model_name: str = DEFAULT_MODEL_NAME,
    max_model_len: int = DEFAULT_CONTEXT,
    api_key: str | None = None,
    tool_call_parser: str | None = "hermes",
    reasoning_parser: str | None = None,
    thinking: bool = False,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    log_path: Path | str | None = None,
    ready_timeout: float = 300.0,
    python: Path | str | None = None,
) -> EngineServer:
    """Start vLLM's OpenAI-compatible server (CPU build) and wait until ``/health`` answers 200.

    ``model_dir`` defaults to the scripted tiny HF model (:func:`scripted_hf_model`); ``python`` to the
    provisioned vLLM environment (:func:`ensure_vllm`). Runs ``python -m vllm.entrypoints.openai.api_server``
    with ``--dtype float32 --enforce-eager --max-model-len max_model_len``, auto tool choice with
    ``tool_call_parser`` (None disables it), offline (``HF_HUB_OFFLINE=1``) and a 1 GiB KV cache
    (``VLLM_CPU_KVCACHE_SPACE=1``); ``env`` and ``extra_args`` are added last. vLLM refuses connections
    until it is ready; it takes 35-60 s to start on 2 cores. On CPU it binds its worker to all cores but
    one (reserved for the API process) and runs one torch thread per bound core: 1 thread on 2 cores.
    Tools without ``"strict": true`` get tool calls whose arguments vLLM 0.32 does not constrain to the
    schema (pass ``extra_args=["--tool-strict-level", "parameter"]`` to constrain all of them).

    ``thinking=True`` makes it a reasoning server that still answers plainly by default: the thinking chat
    template (``--chat-template``, see :func:`chat_template_path`), ``--reasoning-parser reasoning_parser``
    (default ``qwen3``) and ``--default-chat-template-kwargs '{"enable_thinking": false,
    "plain_without_thinking": true}'``. Requests without ``chat_template_kwargs`` get exactly the plain prompt
    and answer (content " Hello world."); ``chat_template_kwargs: {"enable_thinking": true}`` (or a
    ``reasoning_effort`` other than "none") opens ``<think>`` and the answer comes back split into
    ``message.reasoning`` ("\nThe user says hello.\n") and ``content``. ``reasoning_parser`` alone adds just
    the parser flag.
    """
    exe = Path(python) if python is not None else ensure_vllm()
    if thinking and reasoning_parser is None:
        reasoning_parser = "qwen3"
    model = Path(model_dir) if model_dir is not None else scripted_hf_model()

    def cmd(port: int) -> list[str]:
        args = [
            str(exe), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(model),
            "--served-model-name", served_model_name,
            "--host", "127.0.0.1",
            "--port", str(port),
            "--dtype", "float32",
            "--enforce-eager",
            # usage.prompt_tokens_details.cached_tokens and per-request ``metrics`` (timings) on answers
            "--enable-prompt-tokens-details",
            "--enable-per-request-metrics",
            "--max-model-len", str(max_model_len),
        ]  # fmt: skip
        if tool_call_parser:
            args += ["--enable-auto-tool-choice", "--tool-call-parser", tool_call_parser]
        if reasoning_parser:
            args += ["--reasoning-parser", reasoning_parser]
        if thinking:
            args += [
                "--chat-template", str(chat_template_path(thinking=True)),
                "--default-chat-template-kwargs", json.dumps(_VLLM_THINKING_DEFAULTS),
            ]  # fmt: skip
        if api_key:
            args += ["--api-key", api_key]
        return args + list(extra_args)

    full_env = {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        **(env or {}),
    }
    return _start(
        "vllm",
        cmd,
        model=served_model_name,
        api_key=api_key,
        env=full_env,
        log_path=log_path,
        ready_timeout=ready_timeout,
    )
