"""The bench driver: starts the firehose, runs each scenario's measurements in fresh worker processes
(alternating clients round by round, medians over rounds), prints tables, writes JSON, draws the charts."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from bench import report
from bench.clients import BY_NAME
from bench.clients import SPECS
from bench.clients import Spec

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SCENARIOS = (
    "stream_decode",
    "concurrency",
    "e2e_llamacpp",
    "import_time",
    "reasoning_decode",
    "wrapper_bound",
)

Row = dict[str, Any]


def row(scenario: str, client: str, metric: str, value: Any) -> Row:
    return {"scenario": scenario, "client": client, "metric": metric, "value": value}


def say(msg: str) -> None:
    print(msg, flush=True)


def median(xs: list[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


# ---- environment -----------------------------------------------------------------------------------------


def worker_env() -> dict[str, str]:
    env = dict(os.environ)
    # This machine sets PYTHONDONTWRITEBYTECODE; users' machines cache bytecode, so the workers do too.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("LANGCHAIN_TRACING_V2", "false")
    return env


def versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in (
        "llm-engine-clients",
        "httpx",
        "httpcore",
        "h11",
        "httpx-sse",
        "orjson",
        "pydantic",
        "langchain-core",
        "llama-index-core",
        "openai",
        "langchain-openai",
        "langchain-huggingface",
        "huggingface_hub",
        "llama-index-llms-openai-like",
        "matplotlib",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    with contextlib.suppress(Exception):
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "engine_clients", "integrations"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        out["git"] = sha + ("+dirty" if dirty else "")
    return out


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"cores": os.cpu_count(), "platform": platform.platform()}
    with contextlib.suppress(OSError):
        info["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    return info


# ---- worker processes ------------------------------------------------------------------------------------


@dataclass
class Ctx:
    quick: bool
    python: str
    env: dict[str, str]
    framing: str = "event"
    base_port: int = 0
    rounds: int = 5
    tokens: int = 20_000
    repeats: int = 2
    llama_threads: int = 0  # 0: both set-ups (1 thread, then llama-server's default)
    instructions: bool = False  # scenario 5: also count the engine codec's instructions under valgrind
    checked: dict[str, str | None] | None = None  # client -> why it cannot run (None: it can)
    notes: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def url(self, dialect: str, tokens: int, delay_ms: float = 0, ttft_ms: float = 0) -> str:
        return f"http://127.0.0.1:{self.base_port}/{dialect}/{tokens}/{delay_ms:g}/{ttft_ms:g}"


def run_worker(ctx: Ctx, job: dict[str, Any], timeout: float = 300.0) -> dict[str, Any]:
    try:
        done = subprocess.run(
            [ctx.python, "-m", "bench.worker", json.dumps(job)],
            cwd=ROOT,
            env=ctx.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"worker timed out after {timeout:.0f} s"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("@@RESULT "):
            return dict(json.loads(line[len("@@RESULT ") :]))
    tail = (done.stderr or done.stdout)[-1500:]
    return {"error": f"worker exited {done.returncode} without a result: {tail}"}


@contextlib.contextmanager
def firehose(ctx: Ctx) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [
            ctx.python,
            "-m",
            "bench.firehose",
            "--port",
            "0",
            "--framing",
            ctx.framing,
            "--parent-pid",
            str(os.getpid()),
        ],
        cwd=ROOT,
        env=ctx.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"the firehose did not start: {line!r}")
        ctx.base_port = int(line.split()[1])
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


def server_cpu(ctx: Ctx) -> float | None:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ctx.base_port}/__stats", timeout=5) as r:
            return float(json.loads(r.read())["cpu_s"])
    except Exception:
        return None


def available(ctx: Ctx, spec: Spec) -> bool:
    """Integrations that do not import (yet) are skipped with a note, never failed. Checked once per run, in
    one subprocess for every client that needs an integration (the driver itself imports none of them)."""
    if not spec.needs:
        return True
    if ctx.checked is None:
        names = [s.name for s in SPECS if s.needs]
        code = (
            "import json; from bench.clients import BY_NAME, missing_needs; "
            f"print(json.dumps({{n: missing_needs(BY_NAME[n]) for n in {names!r}}}))"
        )
        done = subprocess.run(
            [ctx.python, "-c", code], cwd=ROOT, env=ctx.env, capture_output=True, text=True, check=False
        )
        try:
            ctx.checked = json.loads(done.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            why = (done.stderr or done.stdout).strip()[-300:]
            ctx.checked = dict.fromkeys(names, f"the check failed: {why}")
    why = ctx.checked.get(spec.name)
    if why is None:
        return True
    if spec.name not in ctx.skipped:
        ctx.skipped[spec.name] = why
        say(f"  note: skipping {spec.name}: {why}")
    return False


# ---- scenario 1: stream decode throughput ----------------------------------------------------------------

QUICK_DECODE = [
    "raw:httpx-sse+json",
    "raw:httpx-sse+json:async",
    "engine_clients:VLLMClient.chat_stream",
    "engine_clients:VLLMClient.achat_stream",
    "raw:httpx-sse+json:sglang-generate",
    "engine_clients:SGLangClient.generate_stream",
    "langchain:ChatVLLM",
    "llamaindex:VLLM",
    "peer:openai",
    "peer:langchain-openai:ChatOpenAI",
    "peer:langchain-huggingface:ChatHuggingFace",
    "peer:huggingface_hub:InferenceClient",
    "peer:llama-index:OpenAILike",
]


def expected_chars(tokens: int) -> int:
    from bench.firehose import token_text

    return sum(len(token_text(i)) for i in range(tokens))


def stream_decode(ctx: Ctx, only: list[str] | None = None) -> dict[str, Any]:
    names = only or (QUICK_DECODE if ctx.quick else [s.name for s in SPECS if s.scenario == "stream_decode"])
    specs = [BY_NAME[n] for n in names if available(ctx, BY_NAME[n])]
    rounds = ctx.rounds
    samples: dict[str, list[dict[str, Any]]] = {s.name: [] for s in specs}
    rss: dict[str, list[float]] = {s.name: [] for s in specs}
    errors: dict[str, str] = {}
    rng = random.Random(7)
    srv0 = server_cpu(ctx)
    t0 = time.perf_counter()
    for r in range(rounds):
        order = list(specs)
        rng.shuffle(order)  # alternate: every client once per round, in a different order each round
        for spec in order:
            if ctx.quick and spec.group in ("peer", "floor") and r > 0:
                continue  # quick mode: peers once (their gap to ours is wide); raw and ours every round
            tokens = spec.tokens or ctx.tokens  # SGLang's cumulative stream asks for fewer
            job = {
                "kind": "decode",
                "client": spec.name,
                "base": ctx.url(spec.dialect, tokens),
                "tokens": tokens,
                "expect_chars": expected_chars(tokens),
                "repeats": 1 if ctx.quick and spec.group in ("peer", "floor") else ctx.repeats,
            }
            res = run_worker(ctx, job)
            if "error" in res:
                errors[spec.name] = res["error"]
                say(f"  ! {spec.name}: {res['error'][:300]}")
                continue
            samples[spec.name].extend(res["runs"])
            rss[spec.name].append(res["peak_rss_mb"])
        say(f"  round {r + 1}/{rounds} done ({time.perf_counter() - t0:.0f} s)")
    srv1 = server_cpu(ctx)
    wall = time.perf_counter() - t0

    rows: list[Row] = []
    summary: dict[str, dict[str, Any]] = {}
    for spec in specs:
        runs = samples[spec.name]
        if not runs:
            continue
        tps = [x["tokens_per_s"] for x in runs]
        cps = [x["tokens_per_cpu_s"] for x in runs]
        summary[spec.name] = {
            "group": spec.group,
            "mode": spec.mode,
            "dialect": spec.dialect,
            "route": spec.route,
            "label": spec.title,
            "twin": spec.twin,
            "tokens_per_s": median(tps),
            "tokens_per_cpu_s": median(cps),
            "min": min(tps),
            "max": max(tps),
            "n": len(tps),
            "peak_rss_mb": median(rss[spec.name]),
        }
    for name, s in summary.items():
        c = name
        rows += [
            row("stream_decode", c, "tokens_per_s", round(s["tokens_per_s"], 1)),
            row("stream_decode", c, "tokens_per_cpu_s", round(s["tokens_per_cpu_s"], 1)),
            row("stream_decode", c, "tokens_per_s_min", round(s["min"], 1)),
            row("stream_decode", c, "tokens_per_s_max", round(s["max"], 1)),
            row("stream_decode", c, "samples", s["n"]),
            row("stream_decode", c, "peak_rss_mb", round(s["peak_rss_mb"], 1)),
        ]
        twin = summary.get(s["twin"]) if s["twin"] else None
        if twin:
            s["vs_raw"] = s["tokens_per_s"] / twin["tokens_per_s"]
            s["vs_raw_cpu"] = s["tokens_per_cpu_s"] / twin["tokens_per_cpu_s"]
            rows.append(row("stream_decode", c, "ratio_vs_raw", round(s["vs_raw"], 3)))
            rows.append(row("stream_decode", c, "ratio_vs_raw_cpu", round(s["vs_raw_cpu"], 3)))
        if s["group"] in ("ours", "raw"):
            for pname, p in summary.items():
                if p["group"] == "peer" and p["mode"] == s["mode"] and p["dialect"] == "vllm":
                    ratio = s["tokens_per_s"] / p["tokens_per_s"]
                    s.setdefault("vs_peers", {})[pname] = ratio
                    s.setdefault("vs_peers_cpu", {})[pname] = s["tokens_per_cpu_s"] / p["tokens_per_cpu_s"]
                    rows.append(row("stream_decode", c, f"ratio_vs:{pname}", round(ratio, 2)))
                    rows.append(
                        row(
                            "stream_decode",
                            c,
                            f"ratio_cpu_vs:{pname}",
                            round(s["tokens_per_cpu_s"] / p["tokens_per_cpu_s"], 2),
                        )
                    )
    srv_cpu = (srv1 - srv0) if srv0 is not None and srv1 is not None else None
    if srv_cpu is not None:
        rows.append(row("stream_decode", "firehose", "server_cpu_s", round(srv_cpu, 2)))
    detail = {
        "tokens": ctx.tokens,
        "rounds": rounds,
        "repeats_per_process": ctx.repeats,
        "framing": ctx.framing,
        "wall_s": wall,
        "server_cpu_s": srv_cpu,
        "summary": summary,
        "samples": samples,
        "errors": errors,
    }
    say(report.decode_table(summary))
    return {"rows": rows, "detail": detail}


# ---- scenario 5: reasoning streams vs plain streams -------------------------------------------------------

QUICK_REASONING = [
    "engine_clients:VLLMClient.chat_stream+think",
    "langchain:ChatVLLM+think",
    "engine_clients:TGIClient.chat_stream+think",
]
REASONING_TARGET = 0.9


def reasoning_decode(ctx: Ctx, only: list[str] | None = None) -> dict[str, Any]:
    """Each client decodes a plain stream and a reasoning stream (the first half thinking, sent as the engine
    sends it) of the same token count, alternately in one worker process per round (A B B A), clients in a
    shuffled order each round, all against the one firehose. The verdict is the median of the paired ratios
    (reasoning stream / plain stream, each pair from one process)."""
    from bench.firehose import expected_split

    names = only or (
        QUICK_REASONING if ctx.quick else [s.name for s in SPECS if s.scenario == "reasoning_decode"]
    )
    specs = [BY_NAME[n] for n in names if available(ctx, BY_NAME[n])]
    rounds, tokens = ctx.rounds, ctx.tokens
    samples: dict[str, dict[str, list[dict[str, Any]]]] = {}
    pairs: dict[str, list[dict[str, float]]] = {s.name: [] for s in specs}
    rss: dict[str, list[float]] = {s.name: [] for s in specs}
    errors: dict[str, str] = {}
    rng = random.Random(11)
    srv0 = server_cpu(ctx)
    t0 = time.perf_counter()
    for r in range(rounds):
        order = list(specs)
        rng.shuffle(order)
        for spec in order:
            variants = {}
            for v, dialect in (("plain", spec.dialect), ("reasoning", f"{spec.dialect}+{spec.think}")):
                thought, answer = expected_split(dialect, tokens)
                variants[v] = {"base": ctx.url(dialect, tokens), "expect": [len(thought), len(answer)]}
            job = {
                "kind": "paired",
                "client": spec.name,
                "tokens": tokens,
                "repeats": ctx.repeats,
                "variants": variants,
            }
            res = run_worker(ctx, job)
            if "error" in res:
                errors[spec.name] = res["error"]
                say(f"  ! {spec.name}: {res['error'][:300]}")
                continue
            got = samples.setdefault(spec.name, {"plain": [], "reasoning": []})
            for v in got:
                got[v].extend(res["runs"][v])
            # pair the i-th plain stream with the i-th reasoning stream of the same process
            for p, q in zip(res["runs"]["plain"], res["runs"]["reasoning"], strict=False):
                pairs[spec.name].append(
                    {
                        "wall": q["tokens_per_s"] / p["tokens_per_s"],
                        "cpu": q["tokens_per_cpu_s"] / p["tokens_per_cpu_s"],
                    }
                )
            rss[spec.name].append(res["peak_rss_mb"])
        say(f"  round {r + 1}/{rounds} done ({time.perf_counter() - t0:.0f} s)")
    srv1 = server_cpu(ctx)
    wall = time.perf_counter() - t0

    rows: list[Row] = []
    summary: dict[str, dict[str, Any]] = {}
    for spec in specs:
        got = samples.get(spec.name)
        if not got or not got["plain"] or not got["reasoning"]:
            continue
        ps = pairs[spec.name]
        s: dict[str, Any] = {
            "label": spec.title,
            "mode": spec.mode,
            "dialect": spec.dialect,
            "think": spec.think,
            "n": len(ps),
            "peak_rss_mb": median(rss[spec.name]),
        }
        for v in ("plain", "reasoning"):
            s[v] = {
                "tokens_per_s": median([x["tokens_per_s"] for x in got[v]]),
                "tokens_per_cpu_s": median([x["tokens_per_cpu_s"] for x in got[v]]),
                "min": min(x["tokens_per_s"] for x in got[v]),
                "max": max(x["tokens_per_s"] for x in got[v]),
                "split": got[v][-1]["split"],
            }
        s["ratio"] = median([x["wall"] for x in ps])
        s["ratio_cpu"] = median([x["cpu"] for x in ps])
        s["ratio_range"] = (min(x["wall"] for x in ps), max(x["wall"] for x in ps))
        s["ratio_cpu_range"] = (min(x["cpu"] for x in ps), max(x["cpu"] for x in ps))
        summary[spec.name] = s
        c = spec.name
        for v in ("plain", "reasoning"):
            rows += [
                row("reasoning_decode", c, f"{v}_tokens_per_s", round(s[v]["tokens_per_s"], 1)),
                row("reasoning_decode", c, f"{v}_tokens_per_cpu_s", round(s[v]["tokens_per_cpu_s"], 1)),
            ]
        rows += [
            row("reasoning_decode", c, "ratio", round(s["ratio"], 3)),
            row("reasoning_decode", c, "ratio_cpu", round(s["ratio_cpu"], 3)),
            row("reasoning_decode", c, "ratio_min", round(s["ratio_range"][0], 3)),
            row("reasoning_decode", c, "ratio_max", round(s["ratio_range"][1], 3)),
            row("reasoning_decode", c, "ratio_cpu_min", round(s["ratio_cpu_range"][0], 3)),
            row("reasoning_decode", c, "ratio_cpu_max", round(s["ratio_cpu_range"][1], 3)),
            row("reasoning_decode", c, "pairs", s["n"]),
        ]
    srv_cpu = (srv1 - srv0) if srv0 is not None and srv1 is not None else None
    if srv_cpu is not None:
        rows.append(row("reasoning_decode", "firehose", "server_cpu_s", round(srv_cpu, 2)))
    codec: dict[str, dict[str, Any]] = {}
    if ctx.instructions:
        shapes = sorted({(s.dialect, s.think) for s in specs if s.name.startswith("engine_clients:")})
        codec = codec_instructions(ctx, shapes, tokens)
        for key, c in codec.items():
            if "error" in c:
                errors[f"codec {key}"] = c["error"]
                continue
            rows += [
                row("reasoning_decode", f"codec:{key}", "plain_instructions_per_token", round(c["plain"], 1)),
                row(
                    "reasoning_decode",
                    f"codec:{key}",
                    "reasoning_instructions_per_token",
                    round(c["reasoning"], 1),
                ),
                row("reasoning_decode", f"codec:{key}", "ratio_instructions", round(c["ratio"], 3)),
            ]
    detail = {
        "tokens": tokens,
        "rounds": rounds,
        "repeats_per_process": ctx.repeats,
        "framing": ctx.framing,
        "think_share_pct": _think_share(),
        "target": REASONING_TARGET,
        "wall_s": wall,
        "server_cpu_s": srv_cpu,
        "summary": summary,
        "pairs": pairs,
        "samples": samples,
        "codec": codec,
        "errors": errors,
    }
    say(report.reasoning_table(detail))
    if codec:
        say(report.codec_table(detail))
    return {"rows": rows, "detail": detail}


def codec_instructions(ctx: Ctx, shapes: list[tuple[str, str]], tokens: int) -> dict[str, dict[str, Any]]:
    """Instructions the engine layer's codec (SSE decoder + chat stream decoder, no HTTP) executes per token
    of the plain and of the reasoning stream, counted by valgrind (cachegrind without cache simulation):
    a worker decoding the stream twice minus one decoding it once, both with ``PYTHONHASHSEED=0`` so that
    everything but the second decode executes the same instructions. Unlike time, the count does not move
    with the machine's load."""
    import re as _re

    from bench.firehose import expected_split

    if shutil.which("valgrind") is None:
        say("  note: --instructions needs valgrind (apt-get install valgrind); skipped")
        return {}
    out: dict[str, dict[str, Any]] = {}
    env = {**ctx.env, "PYTHONHASHSEED": "0"}  # the same hashes in both processes: their difference is exact
    for dialect, think in shapes:
        key = f"{dialect}+{think}"
        got: dict[str, float] = {}
        try:
            for v, d in (("plain", dialect), ("reasoning", key)):
                ir = []
                for k in (1, 2):
                    job = json.dumps({"kind": "codec", "dialect": d, "tokens": tokens, "k": k})
                    done = subprocess.run(
                        ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
                         ctx.python, "-m", "bench.worker", job],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False,
                    )  # fmt: skip
                    m = _re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
                    if m is None or "@@RESULT" not in done.stdout or '"error"' in done.stdout:
                        raise RuntimeError((done.stderr or done.stdout).strip()[-300:])
                    split = json.loads(done.stdout.split("@@RESULT ", 1)[1])["split"]
                    want = [len(x) for x in expected_split(d, tokens)]
                    if split != want:
                        raise RuntimeError(f"{d}: decoded (reasoning, answer) {split}, expected {want}")
                    ir.append(int(m.group(1).replace(",", "")))
                got[v] = (ir[1] - ir[0]) / tokens
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            out[key] = {"error": f"{type(exc).__name__}: {exc}"}
            say(f"  ! codec {key}: {exc}")
            continue
        out[key] = {**got, "ratio": got["plain"] / got["reasoning"]}
        say(f"  codec {key}: {got['plain']:,.0f} / {got['reasoning']:,.0f} instructions per token")
    return out


def _think_share() -> int:
    from bench.firehose import THINK_SHARE

    return THINK_SHARE


# ---- scenario 2: concurrency -----------------------------------------------------------------------------

CONC_CLIENTS = [
    "raw:asyncio-protocol:async",
    "raw:aiohttp+json:async",
    "raw:httpx2+json:async",
    "raw:httpx-sse+json:async",
    "engine_clients:VLLMClient.achat_stream",
    "engine_clients:VLLMClient.achat_stream:aiohttp",
    "langchain:ChatVLLM:async",
    "langchain:ChatVLLM:async:aiohttp",
    "langchain:ChatVLLM:abatch:aiohttp",
    "floor:langchain-core:aiohttp.astream",
    "llamaindex:VLLM:async",
    "peer:openai:async",
    "peer:openai:aiohttp:async",
    "peer:langchain-openai:ChatOpenAI:async",
    "peer:huggingface_hub:AsyncInferenceClient",
    "peer:langchain-huggingface:ChatHuggingFace:async",
    "peer:llama-index:OpenAILike:async",
    "raw:asyncio-protocol:async:uvloop",
    "raw:aiohttp+json:async:uvloop",
    "engine_clients:VLLMClient.achat_stream:uvloop",
    "engine_clients:VLLMClient.achat_stream:aiohttp:uvloop",
    "langchain:ChatVLLM:async:aiohttp:uvloop",
]
QUICK_CONC = [
    "raw:asyncio-protocol:async",
    "raw:aiohttp+json:async",
    "raw:httpx-sse+json:async",
    "engine_clients:VLLMClient.achat_stream",
    "engine_clients:VLLMClient.achat_stream:aiohttp",
    "langchain:ChatVLLM:async",
    "llamaindex:VLLM:async",
    "peer:langchain-openai:ChatOpenAI:async",
    "peer:llama-index:OpenAILike:async",
]
CONC_TOKENS = 64
CONC_TTFT_MS = 50.0


def conc_delay_ms(streams: int, fixed: float | None) -> float:
    """5 ms per token at 64 streams, and the same offered load (12,800 tokens/s in all) at higher counts:
    the scenario measures how clients hold up under many open streams, not their single-core decode speed
    (scenario 1 does that), so the total token rate is kept within what one Python core can parse."""
    if fixed is not None:
        return fixed
    return round(5.0 * streams / 64, 1)


def concurrency(
    ctx: Ctx, levels: list[int], fixed_delay: float | None, only: list[str] | None
) -> dict[str, Any]:
    names = only or (QUICK_CONC if ctx.quick else CONC_CLIENTS)
    specs = [BY_NAME[n] for n in names if available(ctx, BY_NAME[n])]
    results: dict[str, dict[int, dict[str, Any]]] = {}
    errors: dict[str, str] = {}
    lv_cfg = {
        k: {
            "delay_ms": conc_delay_ms(k, fixed_delay),
            "ideal_s": (CONC_TTFT_MS + CONC_TOKENS * conc_delay_ms(k, fixed_delay)) / 1000,
        }
        for k in levels
    }
    t0 = time.perf_counter()
    for spec in specs:
        job = {
            "kind": "concurrency",
            "client": spec.name,
            "levels": [
                {
                    "base": ctx.url("vllm", CONC_TOKENS, lv_cfg[k]["delay_ms"], CONC_TTFT_MS),
                    "streams": k,
                    "tokens": CONC_TOKENS,
                }
                for k in levels
            ],
        }
        s0 = server_cpu(ctx)
        res = run_worker(ctx, job, timeout=600)
        s1 = server_cpu(ctx)
        if "error" in res:
            errors[spec.name] = res["error"]
            say(f"  ! {spec.name}: {res['error'][:300]}")
            continue
        results[spec.name] = {}
        for lv in res["levels"]:
            k = lv["streams"]
            lv["ideal_s"] = lv_cfg[k]["ideal_s"]
            lv["delay_ms"] = lv_cfg[k]["delay_ms"]
            lv["wall_over_ideal"] = lv["wall_s"] / lv["ideal_s"]
            results[spec.name][k] = lv
        if s0 is not None and s1 is not None:
            results[spec.name][0] = {"server_cpu_s": s1 - s0}
        say(f"  {spec.name}: done ({time.perf_counter() - t0:.0f} s)")
    rows: list[Row] = []
    for name, per in results.items():
        for k, lv in per.items():
            if k == 0:
                rows.append(row("concurrency", name, "server_cpu_s", round(lv["server_cpu_s"], 2)))
                continue
            for metric in (
                "wall_s",
                "ideal_s",
                "wall_over_ideal",
                "ttft_p50_s",
                "ttft_p90_s",
                "ttft_p99_s",
                "errors",
                "rss_peak_mb",
                "rss_delta_mb",
                "cpu_s",
                "cpu_us_per_event",
                "loop_lag_p99_ms",
                "loop_lag_max_ms",
            ):
                v = lv.get(metric)
                if v is not None:
                    rows.append(
                        row("concurrency", name, f"{metric}@{k}", round(v, 4) if isinstance(v, float) else v)
                    )
    detail = {
        "levels": lv_cfg,
        "tokens": CONC_TOKENS,
        "ttft_ms": CONC_TTFT_MS,
        "results": results,
        "errors": errors,
        "labels": {s.name: s.title for s in specs},
        "groups": {s.name: s.group for s in specs},
    }
    say(report.concurrency_table(detail))
    return {"rows": rows, "detail": detail}


# ---- scenario 3: end to end against llama-server ---------------------------------------------------------

E2E_CLIENTS = [
    "raw:httpx-sse+json:llamacpp",
    "engine_clients:LlamaCppClient.chat_stream",
    "langchain:ChatLlamaCpp",
]
E2E_MAX_TOKENS = 512


def e2e(ctx: Ctx, rounds: int) -> dict[str, Any]:
    """Tokens/s of each client against the real llama-server. The server sets the pace and its speed drifts
    with the machine's load, so the clients take turns inside one worker process (shuffled every round) and
    each is compared with the raw loop of the same round; the verdict is the median of those paired ratios.
    Fresh worker processes repeat this so that one bad start does not decide alone.

    Two server set-ups: ``--threads 1`` (the verdict: the client has a core of its own, as it would against a
    remote engine) and llama-server's default threads, which on a 2-core machine share both cores with the
    client, so any client CPU is taken from generation (informative)."""
    try:
        from engine_clients.testing import DEFAULT_MODEL_NAME
        from engine_clients.testing import scripted_gguf
        from engine_clients.testing import start_llama_server
    except Exception as exc:
        return _skip("e2e_llamacpp", f"engine_clients.testing does not import: {exc}")
    specs = [BY_NAME[n] for n in E2E_CLIENTS if available(ctx, BY_NAME[n])]
    say("  provisioning llama-server and the scripted GGUF (minutes on the first run) ...")
    try:
        gguf = scripted_gguf()
    except Exception as exc:
        return _skip("e2e_llamacpp", f"could not provision the scripted GGUF: {type(exc).__name__}: {exc}")
    opts = {"max_tokens": E2E_MAX_TOKENS, "extra_body": {"ignore_eos": True}}
    raw_name = E2E_CLIENTS[0]
    workers = 2 if ctx.quick else 3
    configs = [ctx.llama_threads] if ctx.llama_threads else [1, 0]
    rows: list[Row] = []
    detail: dict[str, Any] = {
        "max_tokens": E2E_MAX_TOKENS,
        "rounds": rounds,
        "workers": workers,
        "configs": [],
    }
    for threads in configs:
        label = (
            "server --threads 1"
            if threads == 1
            else (f"server --threads {threads}" if threads else "server default threads (shares the cores)")
        )
        suffix = "" if threads == configs[0] else f"@threads={threads or 'default'}"
        extra = ["--threads", str(threads)] if threads else []
        try:
            server = start_llama_server(
                gguf, model_name=DEFAULT_MODEL_NAME, parallel=1, ctx_size=2048, extra_args=extra
            )
        except Exception as exc:
            return _skip(
                "e2e_llamacpp", f"could not start llama-server: {type(exc).__name__}: {str(exc)[:500]}"
            )
        all_rounds: list[dict[str, dict[str, float]]] = []
        errors: dict[str, str] = {}
        with server:
            for w in range(workers):
                job = {
                    "kind": "interleaved",
                    "clients": [s.name for s in specs],
                    "base": server.base_url,
                    "opts": opts,
                    "rounds": rounds,
                    "seed": w,
                }
                res = run_worker(ctx, job, timeout=600)
                if "error" in res:
                    errors[f"worker {w}"] = res["error"]
                    say(f"  ! e2e worker {w}: {res['error'][:300]}")
                    continue
                all_rounds += res["rounds"]
                say(f"  {label}: worker {w + 1}/{workers} ({rounds} interleaved rounds) done")
        summary: dict[str, dict[str, Any]] = {}
        for spec in specs:
            got = [r[spec.name] for r in all_rounds if spec.name in r]
            if not got:
                continue
            tps = [g["tokens_per_s"] for g in got]
            sm: dict[str, Any] = {
                "label": spec.title,
                "group": spec.group,
                "tokens_per_s": median(tps),
                "min": min(tps),
                "max": max(tps),
                "n": len(tps),
                "chunks": median([g["chunks"] for g in got]),
                "cpu_ms_per_stream": median([g["cpu_s"] * 1000 for g in got]),
            }
            if spec.name != raw_name:
                paired = [
                    r[spec.name]["tokens_per_s"] / r[raw_name]["tokens_per_s"]
                    for r in all_rounds
                    if spec.name in r and raw_name in r
                ]
                if paired:
                    sm["vs_raw"] = median(paired)
                    sm["vs_raw_range"] = (min(paired), max(paired))
            summary[spec.name] = sm
            rows += [
                row("e2e_llamacpp", spec.name, "tokens_per_s" + suffix, round(sm["tokens_per_s"], 1)),
                row("e2e_llamacpp", spec.name, "samples" + suffix, sm["n"]),
                row("e2e_llamacpp", spec.name, "chunks" + suffix, sm["chunks"]),
                row(
                    "e2e_llamacpp",
                    spec.name,
                    "client_cpu_ms_per_stream" + suffix,
                    round(sm["cpu_ms_per_stream"], 1),
                ),
            ]
            if "vs_raw" in sm:
                rows.append(row("e2e_llamacpp", spec.name, "ratio_vs_raw" + suffix, round(sm["vs_raw"], 3)))
        cfg = {
            "threads": threads or "default",
            "label": label,
            "summary": summary,
            "errors": errors,
            "rounds_data": all_rounds,
        }
        detail["configs"].append(cfg)
        if threads == configs[0]:
            detail["summary"] = summary  # the verdict's set-up
        say(f"  {label}:\n" + report.e2e_table(cfg))
    return {"rows": rows, "detail": detail}


def _skip(scenario: str, why: str) -> dict[str, Any]:
    say(f"  note: {scenario} skipped: {why}")
    return {"rows": [row(scenario, "-", "skipped", 1)], "detail": {"skipped": why}}


# ---- scenario 4: import time -----------------------------------------------------------------------------

OURS_IMPORTS = ["engine_clients", "langchain_selfhosted", "llama_index.llms.selfhosted"]
PEER_IMPORTS = [
    "openai",
    "huggingface_hub",
    "langchain_openai",
    "langchain_huggingface",
    "llama_index.llms.openai_like",
]
# "engine_clients [no click]": as in a bare `pip install llm-engine-clients`, where click is absent: httpx
# imports its command-line module (and click, when installed) from its __init__; LlamaIndex brings click in.
_NO_CLICK = " [no click]"
_IMPORT_CODE = (
    "import sys, time, json\n"
    "{prelude}"
    "t = time.perf_counter()\n"
    "import {mod}\n"
    "dt = time.perf_counter() - t\n"
    "mods = list(sys.modules)\n"
    "print(json.dumps({{'s': dt, 'langchain': any(m.split('.')[0].startswith('langchain') for m in mods),"
    " 'llama_index': any(m.split('.')[0] == 'llama_index' for m in mods), 'modules': len(mods)}}))\n"
)


def import_time(ctx: Ctx, runs: int, peers: bool) -> dict[str, Any]:
    mods = [*OURS_IMPORTS, "engine_clients" + _NO_CLICK, *(PEER_IMPORTS if peers else [])]
    results: dict[str, dict[str, Any]] = {}
    # the interpreter's own start-up, for reference
    startup = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([ctx.python, "-c", "pass"], env=ctx.env, check=False)
        startup.append(time.perf_counter() - t)
    for mod in mods:
        bare = mod.removesuffix(_NO_CLICK)
        prelude = "sys.modules['click'] = None\n" if mod.endswith(_NO_CLICK) else ""
        code = _IMPORT_CODE.format(mod=bare, prelude=prelude)
        # one untimed run first: writes the bytecode cache, as a user's second import would find it
        first = subprocess.run(
            [ctx.python, "-c", code], cwd=ROOT, env=ctx.env, capture_output=True, text=True
        )
        if first.returncode != 0:
            results[mod] = {"error": first.stderr.strip()[-300:]}
            say(f"  ! import {mod}: {first.stderr.strip()[-200:]}")
            continue
        times, info = [], {}
        for _ in range(runs):
            done = subprocess.run(
                [ctx.python, "-c", code], cwd=ROOT, env=ctx.env, capture_output=True, text=True
            )
            info = json.loads(done.stdout.strip().splitlines()[-1])
            times.append(info["s"])
        results[mod] = {
            "median_ms": median(times) * 1000,
            "min_ms": min(times) * 1000,
            "max_ms": max(times) * 1000,
            "runs": len(times),
            "imports_langchain": info["langchain"],
            "imports_llama_index": info["llama_index"],
            "modules": info["modules"],
            "group": "peer" if mod in PEER_IMPORTS else "ours",
        }
    # where engine_clients' import time goes (cumulative, top entries), from -X importtime
    top: list[tuple[int, int, str]] = []
    done = subprocess.run(
        [ctx.python, "-X", "importtime", "-c", "import engine_clients"],
        cwd=ROOT,
        env=ctx.env,
        capture_output=True,
        text=True,
    )
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "self" not in line:
            parts = line[len("import time:") :].split("|")
            with contextlib.suppress(ValueError):
                top.append((int(parts[0]), int(parts[1]), parts[2].rstrip()))
    # top-level packages (no dot) other than engine_clients itself and the interpreter's own start-up
    direct = [
        t
        for t in top
        if "." not in t[2].strip() and t[2].strip() not in ("engine_clients", "site", "encodings")
    ]
    rows: list[Row] = [row("import_time", "python -c pass", "startup_ms", round(median(startup) * 1000, 1))]
    for mod, r in results.items():
        if "error" in r:
            rows.append(row("import_time", mod, "error", 1))
            continue
        rows += [
            row("import_time", mod, "import_ms", round(r["median_ms"], 1)),
            row("import_time", mod, "import_ms_min", round(r["min_ms"], 1)),
            row("import_time", mod, "imports_langchain", int(r["imports_langchain"])),
            row("import_time", mod, "imports_llama_index", int(r["imports_llama_index"])),
            row("import_time", mod, "modules_loaded", r["modules"]),
        ]
    detail = {
        "runs": runs,
        "startup_ms": median(startup) * 1000,
        "results": results,
        "engine_clients_top_cumulative_us": sorted(direct, key=lambda t: -t[1])[:15],
        "engine_clients_top_self_us": sorted(top, key=lambda t: -t[0])[:15],
    }
    say(report.import_table(detail))
    return {"rows": rows, "detail": detail}


# ---- profile ---------------------------------------------------------------------------------------------


def profile(ctx: Ctx, client: str, tokens: int) -> None:
    """cProfile one stream of ``client``; a reasoning_decode client (``...+think``) is profiled on its plain
    stream and on its reasoning stream, one file each, so that the two can be compared function by
    function."""
    import pstats

    spec = BY_NAME[client]
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = f"profile-{client.replace(':', '_').replace('+', '_')}"
    variants = {"": spec.dialect}
    if spec.think:
        variants = {"-plain": spec.dialect, "-reasoning": f"{spec.dialect}+{spec.think}"}
    for tag, dialect in variants.items():
        out = RESULTS / f"{stem}{tag}.pstats"
        job = {
            "kind": "decode",
            "client": client,
            "base": ctx.url(dialect, tokens),
            "tokens": tokens,
            "profile": str(out),
        }
        if spec.think:  # tags are not delivered: check the characters, not the chunk count
            from bench.firehose import expected_split

            job["expect_chars"] = sum(map(len, expected_split(dialect, tokens)))
        res = run_worker(ctx, job)
        say(f"== {dialect}: " + json.dumps({k: v for k, v in res.items() if k != "traceback"})[:500])
        st = pstats.Stats(str(out))
        st.sort_stats("tottime").print_stats(30)
        st.sort_stats("cumulative").print_stats(30)


# ---- main ------------------------------------------------------------------------------------------------


def _check_env() -> None:
    missing = []
    for mod in ("httpx_sse", "orjson", "matplotlib", "engine_clients"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        sys.exit(
            f"missing {', '.join(missing)}: run the bench from its own venv, e.g. `bash bench/run.sh` "
            "(creates .bench-venv with the package and bench/requirements.txt)"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description="engine_clients benchmark suite")
    ap.add_argument(
        "--quick", action="store_true", help="scenarios 1, 2 (up to 256 streams), 4 and 5 with fewer clients"
    )
    ap.add_argument("--only", default="", help=f"comma-separated scenarios out of {', '.join(SCENARIOS)}")
    ap.add_argument("--clients", default="", help="comma-separated client names (scenarios 1, 2, 5 and 6)")
    ap.add_argument("--rounds", type=int, default=None, help="alternated rounds (default 5, quick 3)")
    ap.add_argument(
        "--tokens", type=int, default=20_000, help="tokens per stream in scenarios 1 and 5 (>= 20000)"
    )
    ap.add_argument("--repeats", type=int, default=2, help="timed streams per worker process")
    ap.add_argument(
        "--levels", default="", help="concurrency levels (default 100,500,1000,2000; quick 64,256)"
    )
    ap.add_argument("--conc-delay-ms", type=float, default=None, help="fixed per-token delay for scenario 2")
    ap.add_argument("--framing", choices=("event", "coalesced"), default="event")
    ap.add_argument(
        "--llama-threads",
        type=int,
        default=0,
        help="scenario 3: only this llama-server --threads (default: 1 for the verdict, then the server's "
        "default)",
    )
    ap.add_argument(
        "--basis",
        choices=("cpu", "wall"),
        default="cpu",
        help="throughput verdicts on tokens per CPU-second of the worker (default: one dedicated core, "
        "steady on a shared machine) or on wall-clock tokens/s",
    )
    ap.add_argument(
        "--tag",
        default="",
        help="write bench/results/<scenario>-<tag>.json only (latest.json and the docs are left alone)",
    )
    ap.add_argument(
        "--instructions",
        action="store_true",
        help="scenario 5: also count the engine codec's instructions per token under valgrind (minutes)",
    )
    ap.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md and charts")
    ap.add_argument("--list", action="store_true", help="list the clients and exit")
    ap.add_argument(
        "--docs-only", action="store_true", help="rebuild latest.json and the docs from bench/results/*.json"
    )
    ap.add_argument("--profile", metavar="CLIENT", help="cProfile one decode stream of CLIENT and exit")
    args = ap.parse_args(argv)

    if args.docs_only:  # rebuild latest.json, the targets and the docs from the stored scenario results
        everything = _all_results()
        rows = [r for name in SCENARIOS for r in everything.get(name, {}).get("rows", [])]
        targets = report.targets(everything, basis=args.basis)
        rows += _target_rows(targets)
        _write_json(RESULTS / "latest.json", rows)
        report.write_docs(everything, targets, basis=args.basis)
        say(report.targets_table(targets) + "\n\nrebuilt bench/results/latest.json and docs/benchmarks.md")
        return 0
    if args.list:
        for s in SPECS:
            scen = "" if s.scenario == "stream_decode" else f"[{s.scenario}] "
            say(f"{s.name:55s} {s.group:5s} {s.mode:5s} {s.dialect:8s} {scen}{s.title}")
        return 0
    _check_env()
    ctx = Ctx(quick=args.quick, python=sys.executable, env=worker_env(), framing=args.framing)
    ctx.rounds = args.rounds or (3 if args.quick else 5)
    ctx.tokens = args.tokens
    ctx.repeats = args.repeats
    ctx.llama_threads = args.llama_threads
    ctx.instructions = args.instructions
    if ctx.tokens < 20_000:
        ctx.notes.append(
            f"scenarios 1 and 5 ran with {ctx.tokens} tokens per stream (the spec asks for >= 20,000)"
        )
    scenarios = [s.strip() for s in args.only.split(",") if s.strip()] or (
        ["stream_decode", "concurrency", "import_time", "reasoning_decode"] if args.quick else list(SCENARIOS)
    )
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        ap.error(f"unknown scenarios {sorted(unknown)}")
    clients = [c.strip() for c in args.clients.split(",") if c.strip()] or None
    for c in clients or ():
        if c not in BY_NAME:
            ap.error(f"unknown client {c!r} (see --list)")
    levels = [int(x) for x in args.levels.split(",") if x.strip()] or (
        [64, 256] if args.quick else [100, 500, 1000, 2000]
    )

    started = time.time()
    meta: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "mode": "quick" if args.quick else "full",
        "argv": sys.argv[1:] if argv is None else argv,
        "machine_before": machine(),
        "versions": versions(),
        "framing": ctx.framing,
    }
    say(
        f"engine_clients bench ({meta['mode']}): {', '.join(scenarios)}; load average "
        f"{meta['machine_before'].get('loadavg')} on {meta['machine_before']['cores']} cores"
    )
    if args.profile:
        with firehose(ctx):
            profile(ctx, args.profile, ctx.tokens)
        return 0

    out: dict[str, dict[str, Any]] = {}
    with firehose(ctx):
        if "stream_decode" in scenarios:
            say(f"\n== 1. stream decode: {ctx.tokens} tokens/stream, {ctx.rounds} alternated rounds ==")
            only = [c for c in clients or [] if BY_NAME[c].scenario == "stream_decode"] or None
            out["stream_decode"] = stream_decode(ctx, only)
        if "reasoning_decode" in scenarios:
            say(
                f"\n== 5. reasoning streams: {ctx.tokens} tokens/stream (half thinking) vs plain, "
                f"{ctx.rounds} rounds =="
            )
            only = [c for c in clients or [] if BY_NAME[c].scenario == "reasoning_decode"] or None
            out["reasoning_decode"] = reasoning_decode(ctx, only)
        if "wrapper_bound" in scenarios:
            from bench.bounds import wrapper_bound

            say(
                f"\n== 6. wrappers against their bound: client, floor, wrapper in one process, "
                f"{ctx.rounds} rounds =="
            )
            only = [c for c in clients or [] if c in {p[0] for p in report.BOUND_PAIRS}] or None
            out["wrapper_bound"] = wrapper_bound(ctx, only)
        if "concurrency" in scenarios:
            say(f"\n== 2. concurrency: {levels} streams x {CONC_TOKENS} tokens ==")
            conc = [c for c in clients or [] if BY_NAME[c].scenario in ("stream_decode", "concurrency")]
            only = [c for c in conc if BY_NAME[c].mode == "async"] or None
            out["concurrency"] = concurrency(ctx, levels, args.conc_delay_ms, only)
    if "e2e_llamacpp" in scenarios:
        say("\n== 3. end to end against llama-server ==")
        out["e2e_llamacpp"] = e2e(ctx, args.rounds or (6 if args.quick else 12))
    if "import_time" in scenarios:
        say("\n== 4. import time ==")
        out["import_time"] = import_time(ctx, runs=5 if args.quick else 9, peers=not args.quick)

    meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    meta["elapsed_s"] = round(time.time() - started, 1)
    meta["machine_after"] = machine()
    meta["notes"] = ctx.notes
    meta["skipped"] = ctx.skipped

    RESULTS.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    if args.tag:
        for name, res in out.items():
            path = RESULTS / f"{name}-{args.tag}.json"
            _write_json(path, {"meta": meta, "rows": res["rows"], "detail": res["detail"]})
            say(f"wrote {path.relative_to(ROOT)}")
        return 0
    for name, res in out.items():
        _write_json(RESULTS / f"{name}.json", {"meta": meta, "rows": res["rows"], "detail": res["detail"]})
    # latest.json: the latest rows of every scenario (this run's, and earlier runs' for scenarios not run now)
    everything = _all_results()
    for name in SCENARIOS:
        rows += everything.get(name, {}).get("rows", [])
    targets = report.targets(everything, basis=args.basis)
    rows += _target_rows(targets)
    _write_json(RESULTS / "latest.json", rows)
    _write_json(RESULTS / "latest.meta.json", meta)
    say("\n" + report.targets_table(targets))
    if not args.no_docs:
        report.write_docs(_all_results(), targets, basis=args.basis)
        say(f"\nwrote bench/results/latest.json, docs/benchmarks.md and the charts ({meta['elapsed_s']} s)")
    else:
        say(f"\nwrote bench/results/latest.json ({meta['elapsed_s']} s)")
    return 0


def _target_rows(targets: list[dict[str, Any]]) -> list[Row]:
    out = [
        row("targets", t["name"], "holds", None if t["holds"] is None else int(t["holds"])) for t in targets
    ]
    out += [
        row("targets", t["name"], "measured", t["measured"]) for t in targets if t["measured"] is not None
    ]
    return out


def _all_results() -> dict[str, dict[str, Any]]:
    """The latest result of every scenario (from this run or an earlier one), for targets and docs."""
    out = {}
    for name in SCENARIOS:
        p = RESULTS / f"{name}.json"
        if p.exists():
            with contextlib.suppress(ValueError, OSError):
                out[name] = json.loads(p.read_text())
    return out


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str) + "\n")
    shutil.move(str(tmp), path)
