"""Stop a server's process group when the Python process that started it goes away (standalone script).

The launcher starts one watchdog per server, before the server itself::

    python -I -S _watchdog.py LOG_PATH    # stdin: a pipe whose write end only the launcher's process holds

and then writes the server's process-group id and a newline to the pipe. The watchdog runs in a session of its
own (so terminal signals meant for the test run do not reach it) and waits on the pipe:

* end of file - every write end is closed, i.e. the starting process exited, however it exited (``kill -9``
  included: the kernel closes a dead process's descriptors). The watchdog sends SIGTERM to the server's
  process group (vLLM's engine-core processes are in it), waits up to ``GRACE_S`` seconds for the group to
  empty, then sends SIGKILL, and exits;
* any byte - the launcher stopped the server itself (``EngineServer.stop``): exit without signalling;
* the process group is gone (the server exited or was killed and reaped): exit.

A pipe works on Linux and macOS alike and, unlike ``PR_SET_PDEATHSIG``, it does not depend on which *thread*
forked the server (the parent-death signal fires when that thread exits, e.g. a worker thread of an executor).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import time

GRACE_S = 5.0  # SIGTERM -> SIGKILL
POLL_S = 1.0  # how often the group's existence is checked while the parent lives


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _note(log_path: str, message: str) -> None:
    try:
        with open(log_path, "a", encoding="utf-8") as f:
            f.write(f"[engine-clients watchdog pid {os.getpid()}] {message}\n")
    except OSError:
        pass


def _read_pgid(fd: int) -> int | None:
    data = b""
    while b"\n" not in data:
        chunk = os.read(fd, 64)
        if not chunk:
            return None  # the launcher died before it could say which group to watch
        data += chunk
    try:
        return int(data.split(b"\n", 1)[0])
    except ValueError:
        return None


def _stop_group(pgid: int, log_path: str) -> None:
    _note(log_path, f"the process that started the server is gone; SIGTERM to process group {pgid}")
    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline:
        if not _group_alive(pgid):
            return
        time.sleep(0.05)
    _note(log_path, f"process group {pgid} still there after {GRACE_S:.0f} s; SIGKILL")
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def main(argv: list[str]) -> int:
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    log_path = argv[1] if len(argv) > 1 else os.devnull
    fd = sys.stdin.fileno()
    pgid = _read_pgid(fd)
    if pgid is None or pgid <= 1:
        return 0
    while True:
        readable, _, _ = select.select([fd], [], [], POLL_S)
        if readable:
            try:
                data = os.read(fd, 64)
            except OSError:
                data = b""
            if data:
                return 0  # disarmed: the launcher stopped the server itself
            _stop_group(pgid, log_path)
            return 0
        if not _group_alive(pgid):
            return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
