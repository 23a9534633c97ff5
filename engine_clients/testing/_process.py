"""The process side of the test kit's servers: start one on a free port, watch it, wait until it answers,
stop it (see :mod:`engine_clients.testing.launcher` for the guarantees). Engine-specific command lines are in
``launcher.py``, ``router.py`` and ``_lora.py``."""

from __future__ import annotations

import atexit
import collections
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Literal

import httpx

__all__ = ["Engine", "EngineServer", "EngineStartError"]

Engine = Literal["llamacpp", "vllm"]
_LOG_TAIL_LINES = 60
_POLL_INTERVAL_S = 0.25
_PORT_IN_USE_MARKERS = ("address already in use", "couldn't bind", "failed to bind", "errno 98")
_WATCHDOG = Path(__file__).resolve().parent / "_watchdog.py"


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
