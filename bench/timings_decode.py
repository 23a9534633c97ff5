"""Stream decode with per-request timings on vs. off, and import time with/without opentelemetry (issue 15).

    python -m bench.timings_decode [--tokens 20000] [--repeats 6] [--out bench/results/timings_decode.json]

One process, one firehose, one client per dialect; the variants are timed in alternating order (A B B A ...)
so that they meet the same interpreter state and machine load:

* ``timed``: ``client.chat_stream`` as shipped (the transport stamps each network chunk and puts
  :class:`~engine_clients.Timings` on the End; opentelemetry is installed but no tracer provider is set, so no
  span wrapper either);
* ``untimed``: the same transport loop without the clock (the loop as it was before timings), for reference;
* ``traced``: ``client.chat_stream`` with an SDK tracer provider set (a recording span per stream, no
  exporter), to show what tracing costs when it is on.

Import time: ``import engine_clients`` in fresh interpreters, median of N, with opentelemetry importable and
with it hidden (a path entry whose ``opentelemetry`` package raises ImportError). Rows follow the bench's
``{"scenario", "client", "metric", "value"}`` format.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MESSAGES = [{"role": "user", "content": "Tell me a story."}]
CLASSES = {"vllm": "VLLMClient", "tgi": "TGIClient", "llamacpp": "LlamaCppClient"}


def row(scenario: str, client: str, metric: str, value: Any) -> dict[str, Any]:
    return {"scenario": scenario, "client": client, "metric": metric, "value": value}


def untimed_stream(client: Any, http: Any, decoder: Any) -> Iterator[Any]:
    """The transport's stream loop without timings (what it was before issue 15)."""
    from engine_clients._sse import SSEDecoder
    from engine_clients._transport import _drain

    transport = client.sync_transport
    response, _ = transport._open(http, None, None)
    sse = SSEDecoder(transport._max_event, transport._max_stream)
    try:
        chunks = response.iter_bytes()
        for chunk in chunks:
            for event in sse.feed(chunk):
                yield from decoder.feed(event)
                if decoder.done:
                    _drain(chunks)
                    return
        yield from decoder.eof()
    finally:
        response.close()


def variants(client: Any) -> dict[str, Callable[[], Iterator[Any]]]:
    from engine_clients import _otel

    def timed() -> Iterator[Any]:
        _otel.set_tracer_provider(None)
        return client.chat_stream(MESSAGES, max_tokens=100000)

    def untimed() -> Iterator[Any]:
        http = client.build_chat(MESSAGES, max_tokens=100000, stream=True)
        return untimed_stream(client, http, client._decoder(True, None))

    out = {"timed": timed, "untimed": untimed}
    try:
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError:
        return out
    provider = TracerProvider()

    def traced() -> Iterator[Any]:
        _otel.set_tracer_provider(provider)
        return client.chat_stream(MESSAGES, max_tokens=100000)

    out["traced"] = traced
    return out


def drain(it: Iterator[Any]) -> int:
    from engine_clients import End
    from engine_clients import Token

    n = 0
    for ev in it:
        if type(ev) is Token:
            n += 1
        elif type(ev) is End:
            break
    return n


def decode(port: int, dialect: str, tokens: int, repeats: int) -> list[dict[str, Any]]:
    import engine_clients

    base = f"http://127.0.0.1:{port}/{dialect}/{tokens}/0/0"
    client = getattr(engine_clients, CLASSES[dialect])(base, model="bench-model", timeout=600.0)
    vs = variants(client)
    names = list(vs)
    for name in names:  # warm-up
        drain(vs[name]())
    rates: dict[str, list[float]] = {n: [] for n in names}
    cpu_rates: dict[str, list[float]] = {n: [] for n in names}
    order = [n for r in range(repeats) for n in (names if r % 2 == 0 else names[::-1])]  # A B C C B A ...
    for name in order:
        gc.collect()
        c0, t0 = time.process_time(), time.perf_counter()
        n = drain(vs[name]())
        rates[name].append(n / (time.perf_counter() - t0))
        cpu_rates[name].append(n / max(time.process_time() - c0, 1e-9))
    rows = []
    for name in names:
        rows.append(
            row(
                "timings_decode",
                f"{dialect}:{name}",
                "tokens_per_s",
                round(statistics.median(rates[name]), 1),
            )
        )
        rows.append(
            row(
                "timings_decode",
                f"{dialect}:{name}",
                "tokens_per_cpu_s",
                round(statistics.median(cpu_rates[name]), 1),
            )
        )
    for metric, table in (("ratio_vs_untimed", rates), ("ratio_vs_untimed_cpu", cpu_rates)):
        base_rate = statistics.median(table["untimed"])
        for name in names:
            ratio = statistics.median(table[name]) / base_rate
            rows.append(row("timings_decode", f"{dialect}:{name}", metric, round(ratio, 3)))
    client.close()
    return rows


def import_ms(runs: int, hide_otel: bool) -> float:
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        if hide_otel:
            pkg = Path(tmp, "opentelemetry")
            pkg.mkdir()
            (pkg / "__init__.py").write_text("raise ImportError('hidden for the bench')\n")
            env["PYTHONPATH"] = tmp + os.pathsep + env.get("PYTHONPATH", "")
        code = (
            "import time; t = time.perf_counter(); import engine_clients; d = time.perf_counter() - t;"
            "import sys; assert not any(m.startswith('opentelemetry') for m in sys.modules); print(d)"
        )
        times = []
        for _ in range(runs):
            cmd = [sys.executable, "-c", code]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            times.append(float(out.stdout.strip()) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=6)
    ap.add_argument("--dialects", default="vllm,llamacpp,tgi")
    ap.add_argument("--import-runs", type=int, default=15)
    ap.add_argument("--out", default="bench/results/timings_decode.json")
    args = ap.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.firehose", "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        port = int(line.split()[1])
        rows: list[dict[str, Any]] = []
        for dialect in args.dialects.split(","):
            rows += decode(port, dialect, args.tokens, args.repeats)
    finally:
        server.terminate()
        server.wait(timeout=10)
    for hide in (False, True):
        ms = import_ms(args.import_runs, hide)
        label = "engine_clients (opentelemetry " + ("hidden)" if hide else "installed)")
        rows.append(row("import_time", label, "import_ms", round(ms, 1)))
    for r in rows:
        print(f"{r['scenario']:16} {r['client']:40} {r['metric']:18} {r['value']}")
    Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
