"""Distributed batch work: what gets shipped to worker processes, and a Ray Data job on a local cluster.

* A LangChain model pickles without any socket, lock, event loop or HTTP client, even after it was used;
  the copy builds its own client on first use.
* A model or client used before a fork opens a connection of its own in the child (never the parent's
  pooled socket), and a model shipped to a fresh (spawned) process works there.
* ``ray_label_job.py`` labels a few hundred rows twice (LangChain model, EnginePool) with ``map_batches`` and
  a callable class against two llama-server replicas: every row is answered exactly once, bad rows carry
  their own error, and the work lands on both replicas.
* The Ray, Spark and Dask jobs of ``docs/scale-out.md`` run as written against the same replicas.
"""

from __future__ import annotations

import asyncio
import collections
import io
import json
import multiprocessing
import os
import pickle
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_selfhosted import ChatLlamaCpp

from engine_clients import LlamaCppClient
from engine_clients.testing import EngineServer
from engine_clients.testing import start_llama_server
from engine_clients.testing.ray_env import run_ray_job
from engine_clients.testing.router import llama_server_metrics
from tests.support.doc_examples import Example
from tests.support.doc_examples import example
from tests.support.doc_examples import substitute

pytestmark = pytest.mark.integration

JOB = Path(__file__).resolve().parent / "ray_label_job.py"
ROWS = 300
BAD = [7, 150, 299]
WORK = "llamacpp:tokens_predicted_total"
JOB_TIMEOUT_S = 600  # about 90 s on an idle 2-core machine
DOC_JOB_TIMEOUT_S = 300


@dataclass
class Replicas:
    servers: tuple[EngineServer, ...]

    @property
    def urls(self) -> list[str]:
        return [s.base_url for s in self.servers]

    def work(self) -> list[float]:
        return [llama_server_metrics(u).get(WORK, 0.0) for u in self.urls]


@pytest.fixture(scope="module")
def replicas(ray_provisioned: None) -> Iterator[Replicas]:
    with (
        start_llama_server(parallel=2, extra_args=["--metrics"]) as a,
        start_llama_server(parallel=2, extra_args=["--metrics"]) as b,
    ):
        yield Replicas((a, b))


# ---- what a pickle carries ----------------------------------------------------------------------------

_FORBIDDEN = (
    socket.socket,
    type(threading.Lock()),
    type(threading.RLock()),
    threading.Condition,
    asyncio.AbstractEventLoop,
    httpx.Client,
    httpx.AsyncClient,
    LlamaCppClient,
)


class _CheckingPickler(pickle.Pickler):
    """Pickles normally, but fails on any object that holds a live resource."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, _FORBIDDEN):
            raise AssertionError(f"the pickle would carry a {type(obj).__name__}")
        return NotImplemented


def checked_dumps(obj: Any) -> bytes:
    buf = io.BytesIO()
    _CheckingPickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return buf.getvalue()


def test_a_used_model_pickles_without_live_state(replicas: Replicas) -> None:
    model = ChatLlamaCpp(base_url=replicas.urls[0], temperature=0, max_tokens=16)
    assert model.invoke("hi").content.strip() == "Hello world."  # it has a client and a pooled connection
    asyncio.run(model.ainvoke("hi"))  # and an async one, bound to a loop that is gone now
    copy = pickle.loads(checked_dumps(model))
    assert copy.client is not model.client  # built anew, on first use
    assert copy.invoke("hi").content.strip() == "Hello world."


def test_a_client_itself_refuses_to_be_pickled(replicas: Replicas) -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(LlamaCppClient(replicas.urls[0]))


# ---- after fork, in fresh processes -------------------------------------------------------------------


def _socket_inodes() -> set[str]:
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            out.add(target)
    return out


def _ask_in_child(ask: Any, conn: Any) -> None:
    """Runs in the child: answer, and say whether a socket was opened here for it."""
    try:
        before = _socket_inodes()
        text = ask()
        conn.send((text, bool(_socket_inodes() - before), None))
    except BaseException as exc:
        conn.send(("", False, repr(exc)))
    finally:
        conn.close()


def _run_forked(ask: Any) -> tuple[str, bool, str | None]:
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_ask_in_child, args=(ask, child))
    proc.start()
    child.close()
    try:
        if not parent.poll(120):
            raise AssertionError("the forked child did not answer within 120 s")
        result: tuple[str, bool, str | None] = parent.recv()
        return result
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()
            proc.join(10)


def test_after_fork_a_model_opens_its_own_connection(replicas: Replicas) -> None:
    model = ChatLlamaCpp(base_url=replicas.urls[0], temperature=0, max_tokens=16)
    assert model.invoke("hi").content.strip() == "Hello world."  # the parent's pooled connection exists
    text, opened, error = _run_forked(lambda: str(model.invoke("hi").content))
    assert error is None, error
    assert text.strip() == "Hello world."
    assert opened, "the child reused the parent's pooled socket instead of opening its own"
    assert model.invoke("hi").content.strip() == "Hello world."  # the parent's connection is still good


def test_after_fork_a_client_opens_its_own_connection(replicas: Replicas) -> None:
    client = LlamaCppClient(replicas.urls[1])
    assert client.chat("hi", temperature=0, max_tokens=16).content.strip() == "Hello world."
    text, opened, error = _run_forked(lambda: client.chat("hi", temperature=0, max_tokens=16).content)
    assert error is None, error
    assert text.strip() == "Hello world." and opened
    assert client.chat("hi", temperature=0, max_tokens=16).content.strip() == "Hello world."


def _label_in_fresh_process(model: ChatLlamaCpp) -> tuple[int, str]:
    return os.getpid(), str(model.invoke("hi").content).strip()


def test_a_model_shipped_to_fresh_processes(replicas: Replicas) -> None:
    model = ChatLlamaCpp(base_url=replicas.urls[0], temperature=0, max_tokens=16)
    model.invoke("hi")
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.map(_label_in_fresh_process, [model] * 4, chunksize=1)
    assert {text for _, text in results} == {"Hello world."}
    assert os.getpid() not in {pid for pid, _ in results}


# ---- the Ray Data job ---------------------------------------------------------------------------------


@pytest.mark.timeout(JOB_TIMEOUT_S + 60)
def test_ray_data_job_labels_every_row_exactly_once(replicas: Replicas, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    before = replicas.work()
    done = run_ray_job(
        JOB,
        ["--replicas", *replicas.urls, "--rows", str(ROWS), "--bad", *map(str, BAD), "--out", str(out)],
        timeout=JOB_TIMEOUT_S,
    )
    assert done.returncode == 0 and out.is_file(), f"rc={done.returncode}\n{done.stderr[-6000:]}"
    report = json.loads(out.read_text())
    for kind in ("langchain", "client"):
        job = report[kind]
        rows = job["rows"]
        counts = collections.Counter(r["id"] for r in rows)
        assert sorted(counts) == list(range(ROWS)), f"{kind}: rows missing"
        assert max(counts.values()) == 1, (
            f"{kind}: rows answered twice: {[i for i, c in counts.items() if c > 1]}"
        )
        by_id = {r["id"]: r for r in rows}
        for i in range(ROWS):
            row = by_id[i]
            if i in BAD:
                assert row["label"] == "" and row["error_type"], f"{kind}: bad row {i} has no error: {row}"
                assert "context" in row["error"].lower(), row
            else:
                assert row["label"] == "Hello world." and row["error"] == "", f"{kind}: row {i}: {row}"
        pids = {r["pid"] for r in rows}
        assert report["driver_pid"] not in pids and 1 <= len(pids) <= 2, pids  # the two actors did the work
        assert not any(r["arrived_with_client"] for r in rows)
    assert report["langchain"]["shipped_bytes"] < 100_000
    after = replicas.work()
    assert all(b > a for a, b in zip(before, after, strict=True)), "both replicas should have done work"
    print(
        f"\nRay {report['ray']}: init {report['init_seconds']:.1f} s, langchain job "
        f"{report['langchain']['seconds']:.1f} s, client job {report['client']['seconds']:.1f} s, "
        f"driver total {report['total_seconds']:.1f} s"
    )


# ---- the docs' batch jobs (docs/scale-out.md), as written -----------------------------------------------


def _run_doc_job(block: Example, replicas: Replicas, tmp_path: Path) -> str:
    """Run a docs block with the batch frameworks' python, its two replica URLs replaced by ours; its output."""
    code = substitute(block.code, {"http://a:8080": replicas.urls[0], "http://b:8080": replicas.urls[1]})
    script = tmp_path / "doc_job.py"
    script.write_text(code)
    done = run_ray_job(script, [], timeout=DOC_JOB_TIMEOUT_S)
    assert done.returncode == 0, f"{block.id}: rc={done.returncode}\n{done.stderr[-6000:]}"
    return done.stdout


@pytest.mark.timeout(DOC_JOB_TIMEOUT_S + 60)
def test_the_docs_ray_data_job_runs(replicas: Replicas, tmp_path: Path) -> None:
    before = replicas.work()
    out = _run_doc_job(example("ray-data-job"), replicas, tmp_path)
    assert out.count("'label': ' Hello world.'") == 3 and out.count("'error': ''") == 3, out[-3000:]
    assert all(b > a for a, b in zip(before, replicas.work(), strict=True)), "both replicas should work"


@pytest.mark.timeout(DOC_JOB_TIMEOUT_S + 60)
def test_the_docs_spark_job_runs(replicas: Replicas, tmp_path: Path) -> None:
    out = _run_doc_job(example("spark-job"), replicas, tmp_path)
    assert "[(1, ' Hello world.'), (2, ' Hello world.')]" in out, out[-3000:]


@pytest.mark.timeout(DOC_JOB_TIMEOUT_S + 60)
def test_the_docs_dask_job_runs(replicas: Replicas, tmp_path: Path) -> None:
    out = _run_doc_job(example("dask-job"), replicas, tmp_path)
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["0"], ["1"])]
    assert rows == [["0", "a", "cat", "Hello", "world."], ["1", "a", "dog", "Hello", "world."]], out[-3000:]
