"""The ``engine-clients`` command as a newcomer runs it, on real servers: ``doctor`` prints its table (and
``--json``), ``demo`` exits 0 on llama-server and on vLLM, ``serve`` starts, answers and stops on Ctrl-C or
SIGTERM leaving no process behind, and ``loadtest`` sweeps two concurrency levels in bounded time.

All but ``serve`` run the command in this process (``engine_clients._cli.main``, what the console script
and ``python -m engine_clients`` call; ``tests/unit/test_cli.py`` checks both entry points): a subprocess
per run would cost seconds of imports each."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from engine_clients import LlamaCppClient
from engine_clients._cli import main
from engine_clients.testing import EngineServer

CLI = [sys.executable, "-m", "engine_clients"]
ENV_URLS = ("TGI_BASE_URL", "VLLM_BASE_URL", "LLAMACPP_BASE_URL", "TEI_BASE_URL")


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """Run the command in this process (as ``engine-clients ARGS``): (exit status, stdout)."""
    monkeypatch.setenv("COLUMNS", "200")
    for var in ENV_URLS:
        monkeypatch.delenv(var, raising=False)

    def run(*args: str, **env: str) -> tuple[int, str]:
        for var, value in env.items():
            monkeypatch.setenv(var, value)
        capsys.readouterr()
        code = main(list(args))
        return code, capsys.readouterr().out

    return run


def test_doctor_prints_the_table_and_json(llama_server: EngineServer, cli: Any) -> None:
    code, out = cli("doctor", LLAMACPP_BASE_URL=llama_server.base_url)
    assert code == 0
    assert f"{llama_server.base_url}: llamacpp" in out
    for text in (
        "✓",
        "✗",
        "tools: tool_choice='required'",
        "--mmproj",
        "docs/engines/llamacpp.md#1-launch-command",
    ):
        assert text in out
    code, out = cli("doctor", llama_server.base_url, "--json", "--only", "chat", "--require", "chat,tokenize")
    assert code == 1  # tokenize was required but not run
    report = json.loads(out)
    assert report["engine"] == "llamacpp" and [c["label"] for c in report["checks"]] == [
        "server info",
        "API key",
        "context size",
        "chat",
        "server timings",
        "prompt cache hits",
    ]


def test_demo_on_llama_server(llama_server: EngineServer, cli: Any) -> None:
    code, out = cli("demo", "--url", llama_server.base_url, "--engine", "llamacpp")
    assert code == 0, out
    assert "Hello world." in out and "get_weather(" in out and "not usable" not in out
    assert "== LangChain ChatLlamaCpp" in out


def test_demo_on_vllm(vllm_server: EngineServer, cli: Any) -> None:
    code, out = cli("demo", "--url", vllm_server.base_url, "--engine", "vllm")
    assert code == 0, out
    assert "get_weather(" in out
    assert "not usable" not in out  # strict tools: the arguments fit the schema
    assert "== LangChain ChatVLLM" in out


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_serve_answers_and_stops_leaving_nothing(llamacpp_provisioned: None, sig: signal.Signals) -> None:
    proc = subprocess.Popen(
        [*CLI, "serve", "--parallel", "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    url = pid = None
    deadline = time.monotonic() + 120
    seen = []
    while time.monotonic() < deadline and url is None:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if "listening on" in line:
            pid = int(line.split("(pid ")[1].split(",")[0])
        if "export LLAMACPP_BASE_URL=" in line:
            url = line.split("=", 1)[1].strip()
    assert url is not None and pid is not None, "".join(seen)
    try:
        with LlamaCppClient(url) as client:
            assert client.chat("hi", max_tokens=8, temperature=0).content == " Hello world."
        proc.send_signal(sig)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 0, "".join(seen) + rest
    assert "stopped" in rest
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (_gone(pid) and _group_gone(pid)):
        time.sleep(0.1)
    assert _gone(pid) and _group_gone(pid)


def test_loadtest_two_levels(llama_server: EngineServer, tmp_path: Path, cli: Any) -> None:
    plot = tmp_path / "sweep.png"
    args = ["--concurrency", "1,2", "--requests", "4", "--max-tokens", "16", "--json", "--plot", str(plot)]
    code, out = cli("loadtest", llama_server.base_url, *args)
    assert code == 0
    result = json.loads(out)
    assert result["engine"] == "llamacpp"
    assert [lv["concurrency"] for lv in result["levels"]] == [1, 2]
    for lv in result["levels"]:
        assert (lv["requests"], lv["errors"]) == (4, 0), lv.get("error_sample")  # say which error, if any
        assert lv["output_tokens"] == 4 * 4  # " Hello world." is 4 tokens, then end of sequence
        assert lv["ttft"]["p50"] > 0 and lv["itl"]["p50"] is not None and lv["output_tokens_per_s"] > 0
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:4] == b"\x89PNG"
    code, out = cli("loadtest", llama_server.base_url, "--concurrency", "2", "--duration", "1")
    assert code == 0 and "output tok/s" in out
