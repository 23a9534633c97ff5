"""Servers started by ``engine_clients.testing`` die with the Python process that started them, kill -9 included.

A child Python process starts a server and reports the server's process group; the test kills the child with
SIGKILL (no atexit, no finally, no fixture teardown runs) and then expects every process of that group, and
the server's watchdog, to be gone within a few seconds. Before the watchdog existed the server stayed up with
parent PID 1.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")

CHILD = textwrap.dedent(
    """
    import json, sys, time
    from engine_clients import testing

    start = {"llamacpp": testing.start_llama_server, "vllm": testing.start_vllm_server}[sys.argv[1]]
    server = start(**json.loads(sys.argv[2]))
    watchdog = getattr(server, "watchdog", None)
    print(json.dumps({"pid": server.process.pid, "watchdog": watchdog.pid if watchdog else None,
                      "url": server.base_url}), flush=True)
    time.sleep(3600)
    """
)
POLL_S = 0.1


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (process group, state) of every process we can see; zombies (state Z) count as gone."""
    table: dict[int, tuple[int, str]] = {}
    proc = Path("/proc")
    if proc.is_dir():
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp ...
            table[int(entry.name)] = (int(fields[2]), fields[0])
        return table
    out = subprocess.run(["ps", "-A", "-o", "pid=,pgid=,stat="], capture_output=True, text=True, check=True)
    for line in out.stdout.splitlines():
        pid, pgid, state = line.split(None, 2)
        table[int(pid)] = (int(pgid), state[:1])
    return table


def _alive(pgid: int, watchdog: int | None) -> list[int]:
    """Live processes of the server's group, plus the watchdog if it still runs."""
    return [
        pid
        for pid, (group, state) in _processes().items()
        if state != "Z" and (group == pgid or pid == watchdog)
    ]


def _read_report(child: subprocess.Popen[bytes], timeout: float, stderr: Path) -> dict[str, Any]:
    """The child's one-line JSON report, read within ``timeout`` seconds."""
    assert child.stdout is not None
    fd = child.stdout.fileno()
    deadline = time.monotonic() + timeout
    buf = b""
    while b"\n" not in buf and time.monotonic() < deadline:
        readable, _, _ = select.select([fd], [], [], POLL_S)
        if readable:
            chunk = os.read(fd, 4096)
            if not chunk:
                break  # the child exited
            buf += chunk
    if b"\n" in buf:
        report: dict[str, Any] = json.loads(buf.split(b"\n", 1)[0])
        return report
    child.kill()
    child.wait(timeout=10)
    err = stderr.read_text(errors="replace")[-3000:]
    raise AssertionError(f"the child did not report a running server (exit {child.returncode}):\n{err}")


@pytest.mark.parametrize(
    ("engine", "kwargs", "start_timeout"),
    [
        pytest.param("llamacpp", {"parallel": 1}, 120.0, id="llama-server"),
        pytest.param("vllm", {}, 300.0, id="vllm"),
    ],
)
def test_server_dies_with_its_parent_on_sigkill(
    engine: str, kwargs: dict[str, Any], start_timeout: float, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    request.getfixturevalue(f"{engine}_provisioned")
    stderr = tmp_path / "child.stderr"
    with open(stderr, "wb") as err:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, engine, json.dumps(kwargs)],
            stdout=subprocess.PIPE,
            stderr=err,
            cwd=tmp_path,  # import engine_clients as installed (or from PYTHONPATH), not from the cwd
            start_new_session=True,  # its own group: the kill below cannot reach pytest
        )
    pgid = watchdog = None
    try:
        report = _read_report(child, start_timeout, stderr)
        pgid = int(report["pid"])  # the launcher starts each server as the leader of a new process group
        watchdog = report["watchdog"]
        members = _alive(pgid, None)
        assert pgid in members
        print(f"\n{engine}: server group {pgid} = {sorted(members)}, watchdog {watchdog}")

        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        killed_at = time.monotonic()
        deadline = killed_at + 15.0  # vLLM gets SIGTERM and up to 5 s to shut down before SIGKILL
        left = _alive(pgid, watchdog)
        while left and time.monotonic() < deadline:
            time.sleep(POLL_S)
            left = _alive(pgid, watchdog)
        assert not left, f"still running 15 s after their parent was killed: {left}"
        print(f"{engine}: all gone {time.monotonic() - killed_at:.2f} s after kill -9 of their parent")
    finally:  # whatever happened, leak nothing into the rest of the run
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
        if child.stdout is not None:
            child.stdout.close()
        for pid in _alive(pgid, watchdog) if pgid is not None else []:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
