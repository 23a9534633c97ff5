"""Tables (printed and Markdown), the target checks, the charts and docs/benchmarks.md."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
DECODE_PNG = "bench_stream_decode.png"
CONC_PNG = "bench_concurrency.png"
CONC_LINES_PNG = "bench_concurrency_lines.png"

GROUP_ORDER = {"raw": 0, "ours": 1, "peer": 2, "floor": 3}


def _fmt(v: Any, digits: int = 0) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _table(headers: list[str], rows: list[list[str]], align: str = "") -> str:
    """A Markdown table that also reads well printed."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    align = align or "l" + "r" * (len(headers) - 1)

    def line(cells: list[str]) -> str:
        return (
            "| "
            + " | ".join(
                c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(cells, widths, align, strict=False)
            )
            + " |"
        )

    sep = (
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if a == "r" else ("-" * (w + 2))
            for w, a in zip(widths, align, strict=False)
        )
        + "|"
    )
    return "\n".join([line(headers), sep, *(line(r) for r in rows)])


# ---- scenario tables -------------------------------------------------------------------------------------


def _decode_sorted(summary: dict[str, dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return sorted(
        summary.items(), key=lambda kv: (kv[1]["mode"], GROUP_ORDER[kv[1]["group"]], -kv[1]["tokens_per_s"])
    )


def decode_table(summary: dict[str, dict[str, Any]]) -> str:
    peers = {
        "ChatOpenAI": "peer:langchain-openai:ChatOpenAI",
        "ChatHF": "peer:langchain-huggingface:ChatHuggingFace",
        "OpenAILike": "peer:llama-index:OpenAILike",
    }
    rows = []
    for name, s in _decode_sorted(summary):
        vs, vc = s.get("vs_peers", {}), s.get("vs_peers_cpu", {})

        def peer_ratio(
            key: str, s: dict[str, Any] = s, vs: dict[str, float] = vs, vc: dict[str, float] = vc
        ) -> str:
            p = peers[key] + (":async" if s["mode"] == "async" else "")
            return f"{vc[p]:.1f}x / {vs[p]:.1f}x" if p in vs and p in vc else "-"

        rows.append(
            [
                name,
                s["mode"],
                _fmt(s["tokens_per_s"]),
                f"{_fmt(s['min'])}-{_fmt(s['max'])}",
                _fmt(s["tokens_per_cpu_s"]),
                f"{s['vs_raw_cpu']:.2f}x / {s['vs_raw']:.2f}x" if "vs_raw" in s else "-",
                peer_ratio("ChatOpenAI"),
                peer_ratio("ChatHF"),
                peer_ratio("OpenAILike"),
                _fmt(s["peak_rss_mb"], 0),
                str(s["n"]),
            ]
        )
    return _table(
        [
            "client",
            "mode",
            "tokens/s (median)",
            "range",
            "tokens/CPU-s",
            "vs raw twin*",
            "vs ChatOpenAI*",
            "vs ChatHF*",
            "vs OpenAILike*",
            "RSS MB",
            "n",
        ],
        rows,
        "llrrrrrrrrr",
    )


def reasoning_table(detail: dict[str, Any]) -> str:
    """Scenario 5: each client on the plain stream and on the reasoning stream of the same token count."""
    target = detail.get("target", 0.9)
    rows = []
    items = sorted(detail["summary"].items(), key=lambda kv: (kv[1]["mode"], kv[0]))
    for name, s in items:
        p, q = s["plain"], s["reasoning"]
        lo, hi = s["ratio_cpu_range"]
        rows.append(
            [
                name,
                s["mode"],
                _fmt(p["tokens_per_s"]),
                _fmt(q["tokens_per_s"]),
                _fmt(p["tokens_per_cpu_s"]),
                _fmt(q["tokens_per_cpu_s"]),
                f"{s['ratio_cpu']:.3f}x / {s['ratio']:.3f}x",
                f"{lo:.2f}-{hi:.2f}",
                "met" if s["ratio_cpu"] >= target else "MISSED",
                str(s["n"]),
            ]
        )
    return _table(
        [
            "client (+reasoning stream shape)",
            "mode",
            "plain tokens/s",
            "reasoning tokens/s",
            "plain tokens/CPU-s",
            "reasoning tokens/CPU-s",
            "reasoning / plain*",
            "range (CPU)",
            f">= {target:g}x",
            "pairs",
        ],
        rows,
        "llrrrrrrlr",
    )


def codec_table(detail: dict[str, Any]) -> str:
    """Scenario 5, ``--instructions``: the engine codec's instructions per token, plain vs reasoning."""
    rows = []
    for key, c in sorted(detail.get("codec", {}).items()):
        if "error" in c:
            rows.append([key, "-", "-", c["error"][:80]])
        else:
            rows.append([key, _fmt(c["plain"]), _fmt(c["reasoning"]), f"{c['ratio']:.3f}x"])
    headers = [
        "stream shape",
        "plain: instructions/token",
        "reasoning: instructions/token",
        "plain / reasoning",
    ]
    return _table(headers, rows, "lrrr")


def concurrency_table(detail: dict[str, Any]) -> str:
    rows = []
    for name, per in detail["results"].items():
        for k, lv in sorted(per.items(), key=lambda kv: int(kv[0])):
            if int(k) == 0:
                continue
            rows.append(
                [
                    name,
                    str(k),
                    f"{lv['delay_ms']:g} ms",
                    f"{lv['wall_s']:.2f}",
                    f"{lv['ideal_s']:.2f}",
                    f"{lv['wall_over_ideal']:.2f}x",
                    _ms(lv.get("ttft_p50_s")),
                    _ms(lv.get("ttft_p90_s")),
                    _ms(lv.get("ttft_p99_s")),
                    str(lv["errors"]),
                    f"{lv['rss_peak_mb']:.0f} (+{lv['rss_delta_mb']:.0f})",
                ]
            )
    return _table(
        [
            "client",
            "streams",
            "delay/token",
            "wall s",
            "ideal s",
            "wall/ideal",
            "TTFT p50 ms",
            "p90 ms",
            "p99 ms",
            "errors",
            "peak RSS MB (+during)",
        ],
        rows,
        "lrrrrrrrrrr",
    )


def _tagged(tag: str) -> dict[str, Any] | None:
    """The concurrency run written with ``--tag TAG`` (``bench/results/concurrency-TAG.json``), if any."""
    try:
        data: dict[str, Any] = json.loads(
            (ROOT / "bench" / "results" / f"concurrency-{tag}.json").read_text()
        )
    except (OSError, ValueError):
        return None
    return data


def _when(data: dict[str, Any]) -> str:
    meta = data["meta"]
    return f"{meta.get('started', '?')}, load average {meta.get('machine_before', {}).get('loadavg')}"


def candidates_section() -> str:
    """Issue 22's transport candidates side by side in one run (``--tag candidates``): the raw loop of each
    HTTP library under the same streams, and the engine client on the default and the aiohttp path."""
    data = _tagged("candidates")
    if data is None:
        return ""
    return (
        "\n### The transport candidates in one run\n\n"
        "The raw loop of each candidate under the same streams (httpx + httpx-sse; httpx2, Pydantic's fork "
        "with httpcore's pool fixes; aiohttp through its own client; no HTTP library at all), next to the "
        'engine client on its default path and on `http_backend="aiohttp"` '
        f"({_when(data)}). httpx2 raises its own exceptions, not httpx's, so the engine client cannot take "
        "an httpx2 client as it takes an httpx one; its raw loop is what that candidate could reach at best."
        "\n\n" + concurrency_table(data["detail"]) + "\n"
    )


def sharding_section(limit: float = 1.10) -> str:
    """Streams per process that keep each client within ``limit`` x ideal, from a concurrency run at a fixed
    per-token delay (``--conc-delay-ms 78.1 --tag sharding``): the guide for sharding across processes."""
    data = _tagged("sharding")
    if data is None:
        return ""
    detail = data["detail"]
    keep = []
    for name, per in detail["results"].items():
        fit = [int(k) for k, lv in per.items() if int(k) and lv["wall_over_ideal"] <= limit]
        keep.append(f"`{name}` {max(fit):,}" if fit else f"`{name}` none of the levels run")
    delays = sorted({lv["delay_ms"] for per in detail["results"].values() for k, lv in per.items() if int(k)})
    return (
        f"\n### Streams per process within {limit:.2f}x ideal\n\n"
        f"The same scenario with a fixed per-token delay ({', '.join(f'{d:g}' for d in delays)} ms, as at "
        "1,000 streams above), so that fewer streams also offer less load, as when a fleet is split across "
        f"processes ({_when(data)}). Largest level within {limit:.2f}x: "
        + "; ".join(keep)
        + ". Beyond that, run more processes (one event loop each) and split the streams between them.\n\n"
        + concurrency_table(detail)
        + "\n"
    )


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.0f}"


def e2e_table(detail: dict[str, Any]) -> str:
    if "skipped" in detail:
        return f"(skipped: {detail['skipped']})"
    rows = []
    for name, s in detail["summary"].items():
        vs = "-"
        if "vs_raw" in s:
            lo, hi = s.get("vs_raw_range", (s["vs_raw"], s["vs_raw"]))
            vs = f"{s['vs_raw']:.3f}x ({lo:.2f}-{hi:.2f})"
        rows.append(
            [
                name,
                _fmt(s["tokens_per_s"]),
                f"{_fmt(s['min'])}-{_fmt(s['max'])}",
                vs,
                _fmt(s.get("cpu_ms_per_stream"), 1),
                _fmt(s["chunks"]),
                str(s["n"]),
            ]
        )
    return _table(
        [
            "client",
            "tokens/s (median)",
            "range",
            "vs raw loop, same round (range)",
            "client CPU ms/stream",
            "chunks/stream",
            "n",
        ],
        rows,
    )


def import_table(detail: dict[str, Any]) -> str:
    rows = [
        [
            "python -c pass (interpreter start-up, for reference)",
            f"{detail['startup_ms']:.0f}",
            "-",
            "-",
            "-",
            "-",
        ]
    ]
    for mod, r in detail["results"].items():
        if "error" in r:
            rows.append([mod, "error", "-", "-", "-", "-"])
            continue
        rows.append(
            [
                mod,
                f"{r['median_ms']:.0f}",
                f"{r['min_ms']:.0f}-{r['max_ms']:.0f}",
                "yes" if r["imports_langchain"] else "no",
                "yes" if r["imports_llama_index"] else "no",
                str(r["modules"]),
            ]
        )
    return _table(
        ["module", "import ms (median)", "range", "loads LangChain", "loads LlamaIndex", "modules"], rows
    )


# (wrapper, its engine client, its framework's no-op floor, the peer it is compared with, the peer's name)
_LC_FLOOR, _LC_AFLOOR = "floor:langchain-core:noop.stream", "floor:langchain-core:noop.astream"
_LI_FLOOR, _LI_AFLOOR = "floor:llama-index-core:noop.stream_chat", "floor:llama-index-core:noop.astream_chat"
_VLLM, _AVLLM = "engine_clients:VLLMClient.chat_stream", "engine_clients:VLLMClient.achat_stream"
_TGI, _LLAMA = "engine_clients:TGIClient.chat_stream", "engine_clients:LlamaCppClient.chat_stream"
BOUND_PAIRS = [
    ("langchain:ChatVLLM", _VLLM, _LC_FLOOR, "peer:langchain-openai:ChatOpenAI", "ChatOpenAI"),
    ("langchain:ChatVLLM:async", _AVLLM, _LC_AFLOOR, "peer:langchain-openai:ChatOpenAI:async", "ChatOpenAI"),
    ("langchain:ChatTGI", _TGI, _LC_FLOOR, "", ""),
    ("langchain:ChatLlamaCpp", _LLAMA, _LC_FLOOR, "", ""),
    ("llamaindex:VLLM", _VLLM, _LI_FLOOR, "peer:llama-index:OpenAILike", "OpenAILike"),
    ("llamaindex:VLLM:async", _AVLLM, _LI_AFLOOR, "peer:llama-index:OpenAILike:async", "OpenAILike"),
    ("llamaindex:TGI", _TGI, _LI_FLOOR, "", ""),
    ("llamaindex:LlamaCpp", _LLAMA, _LI_FLOOR, "", ""),
]


def bound_ratios(summary: dict[str, dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """wrapper -> (tokens/CPU-s, its bound): per chunk, a wrapper pays at least its engine client's cost plus
    its framework's own (the no-op floor), so 1 / (1/client + 1/floor) bounds it."""
    k = "tokens_per_cpu_s"
    out = {}
    for ours, client, floor, _, _ in BOUND_PAIRS:
        if ours in summary and client in summary and floor in summary:
            out[ours] = (summary[ours][k], 1 / (1 / summary[client][k] + 1 / summary[floor][k]))
    return out


def composition_note(summary: dict[str, dict[str, Any]]) -> str:
    """How close each integration is to what its framework allows (:func:`bound_ratios`)."""
    k = "tokens_per_cpu_s"
    bounds = bound_ratios(summary)
    lines = []
    for ours, client, floor, peer, peer_name in BOUND_PAIRS:
        if ours not in bounds:
            continue
        value, bound = bounds[ours]
        line = (
            f"- `{ours}`: {value:,.0f} tokens/CPU-s, {value / bound:.0%} of the {bound:,.0f} that "
            f"`{client.split(':', 1)[1]}` ({summary[client][k]:,.0f}) and the framework's own no-op floor "
            f"({summary[floor][k]:,.0f}) allow together"
        )
        if peer in summary:
            line += f"; {value / summary[peer][k]:.1f}x {peer_name}"
        lines.append(line + ".\n")
    if not lines:
        return ""
    return (
        "Per chunk, an integration pays at least the engine client's cost plus its framework's own (the "
        "no-op floor rows), so `1 / (1/client + 1/floor)` bounds what any wrapper over this client can "
        "reach:\n\n" + "".join(lines) + "\n"
    )


def bound_table(detail: dict[str, Any]) -> str:
    """Scenario 6: each wrapper's tokens per CPU-second over its bound, from one process per round."""
    rows = []
    for ours, x in detail.get("summary", {}).items():
        rows.append(
            [
                ours,
                _fmt(x["client_tokens_per_cpu_s"]),
                _fmt(x["floor_tokens_per_cpu_s"]),
                _fmt(x["wrapper_tokens_per_cpu_s"]),
                f"{x['ratio']:.3f}",
                f"{x['range'][0]:.3f}-{x['range'][1]:.3f}",
                str(x["n"]),
            ]
        )
    headers = [
        "wrapper",
        "client tok/CPU-s",
        "floor tok/CPU-s",
        "wrapper tok/CPU-s",
        "of bound",
        "range",
        "n",
    ]
    return _table(headers, rows, "lrrrrrr")


def bound_section(detail: dict[str, Any]) -> str:
    return (
        "\n## 6. Wrappers against their bound, in one process\n\n"
        "Per chunk a wrapper pays at least its engine client's cost plus its framework's own (the no-op "
        "floor), so `1 / (1/client + 1/floor)` tokens per CPU-second bounds it. Scenario 1 times the three "
        "in separate processes minutes apart, and the ratio moves with the machine's load; here one worker "
        "process streams the engine client, the floor and the wrapper in turns (A B C C B A, "
        f"{detail['repeats_per_process']} streams of {detail['tokens']:,} tokens each), so that all three "
        "meet the same load and interpreter state. Each process gives one ratio; the table shows the median "
        f"of {detail['rounds']} processes and their range.\n\n" + bound_table(detail) + "\n"
    )


# ---- targets ---------------------------------------------------------------------------------------------


def targets(results: dict[str, dict[str, Any]], basis: str = "cpu") -> list[dict[str, Any]]:
    """The issue's targets. Throughput ratios are judged on ``basis``: "cpu" (tokens per CPU-second of the
    worker process, i.e. throughput on one dedicated core; all of a client's threads count) or "wall"; the
    other figure is given in the note."""
    out: list[dict[str, Any]] = []
    key = "tokens_per_cpu_s" if basis == "cpu" else "tokens_per_s"
    other = "tokens_per_s" if basis == "cpu" else "tokens_per_cpu_s"
    other_name = "wall-clock" if basis == "cpu" else "per CPU-second"

    def add(
        name: str, measured: float | None, threshold: float, higher: bool = True, extra: str = ""
    ) -> None:
        holds = None if measured is None else (measured >= threshold if higher else measured <= threshold)
        out.append(
            {
                "name": name,
                "measured": None if measured is None else round(measured, 3),
                "threshold": threshold,
                "holds": holds,
                "note": extra,
            }
        )

    dec = results.get("stream_decode", {}).get("detail", {}).get("summary", {})

    def ratio(a: str, b: str, k: str = key) -> float | None:
        if a in dec and b in dec:
            return float(dec[a][k] / dec[b][k])
        return None

    def cpu_note(a: str, b: str) -> str:
        r = ratio(a, b, other)
        return f"{other_name}: {r:.2f}x" if r is not None else ""

    for ours, twin, label in [
        (
            "engine_clients:VLLMClient.chat_stream",
            "raw:httpx-sse+json",
            "engine client (sync) >= 0.8x raw loop",
        ),
        (
            "engine_clients:VLLMClient.achat_stream",
            "raw:httpx-sse+json:async",
            "engine client (async) >= 0.8x raw async loop",
        ),
        (
            "engine_clients:TGIClient.chat_stream",
            "raw:httpx-sse+json:tgi",
            "engine client, TGI chat >= 0.8x raw",
        ),
        (
            "engine_clients:LlamaCppClient.chat_stream",
            "raw:httpx-sse+json:llamacpp",
            "engine client, llama.cpp chat >= 0.8x raw",
        ),
        (
            "engine_clients:TGIClient.generate_stream",
            "raw:httpx-sse+json:tgi-generate",
            "engine client, TGI /generate_stream >= 0.8x raw",
        ),
        (
            "engine_clients:LlamaCppClient.generate_stream",
            "raw:httpx-sse+json:llamacpp-completion",
            "engine client, llama.cpp /completion >= 0.8x raw",
        ),
    ]:
        if ours in dec or (ours.endswith("chat_stream") and "VLLM" in ours):
            add(label, ratio(ours, twin), 0.8, extra=cpu_note(ours, twin))
    for ours, peer, th, label in [
        (
            "langchain:ChatVLLM",
            "peer:langchain-openai:ChatOpenAI",
            5.0,
            "LangChain ChatVLLM >= 5x ChatOpenAI",
        ),
        (
            "langchain:ChatVLLM",
            "peer:langchain-huggingface:ChatHuggingFace",
            3.5,
            "LangChain ChatVLLM >= 3.5x ChatHuggingFace",
        ),
        ("llamaindex:VLLM", "peer:llama-index:OpenAILike", 5.0, "LlamaIndex VLLM >= 5x OpenAILike"),
        # issue 22: every wrapper >= 3.5x its framework's OpenAI peer, sync and async
        (
            "langchain:ChatVLLM",
            "peer:langchain-openai:ChatOpenAI",
            3.5,
            "LangChain ChatVLLM >= 3.5x ChatOpenAI",
        ),
        (
            "langchain:ChatVLLM:async",
            "peer:langchain-openai:ChatOpenAI:async",
            3.5,
            "LangChain ChatVLLM.astream >= 3.5x ChatOpenAI.astream",
        ),
        ("llamaindex:VLLM", "peer:llama-index:OpenAILike", 3.5, "LlamaIndex VLLM >= 3.5x OpenAILike"),
        (
            "llamaindex:VLLM:async",
            "peer:llama-index:OpenAILike:async",
            3.5,
            "LlamaIndex VLLM.astream_chat >= 3.5x OpenAILike.astream_chat",
        ),
    ]:
        add(label, ratio(ours, peer), th, extra=cpu_note(ours, peer))
    wb = results.get("wrapper_bound", {}).get("detail", {}).get("summary", {})
    for ours, (value, bound) in bound_ratios(dec).items():
        if ours not in wb:  # scenario 6 (one process) decides where it ran
            add(
                f"{ours} >= 0.9 of its bound (engine client + framework floor, per CPU-s)", value / bound, 0.9
            )
    for ours, s in wb.items():
        lo, hi = s["range"]
        add(
            f"{ours} >= 0.9 of its bound (client, floor, wrapper in one process)",
            s["ratio"],
            0.9,
            extra=f"median of {s['n']} processes, {lo:.2f}-{hi:.2f}",
        )

    conc = results.get("concurrency", {}).get("detail", {}).get("results", {})
    ec = conc.get("engine_clients:VLLMClient.achat_stream", {})
    lv = ec.get("1000") or ec.get(1000)
    if lv:
        add(
            "1,000 concurrent streams: wall <= 1.25x ideal (engine client)",
            lv["wall_over_ideal"],
            1.25,
            higher=False,
            extra=f"{lv['errors']} errors; delay {lv['delay_ms']:g} ms/token" + _raw_1000(conc),
        )
        add("1,000 concurrent streams: zero errors (engine client)", float(lv["errors"]), 0.0, higher=False)
    else:
        add(
            "1,000 concurrent streams: wall <= 1.25x ideal (engine client)",
            None,
            1.25,
            higher=False,
            extra="not run (full mode only)",
        )

    _fast_transport_targets(conc, add)

    e2e = results.get("e2e_llamacpp", {}).get("detail", {}).get("summary", {})
    lc = e2e.get("langchain:ChatLlamaCpp")
    add(
        "end to end: ChatLlamaCpp.stream >= 0.95x raw loop (llama-server)",
        lc.get("vs_raw") if lc else None,
        0.95,
        extra="" if lc else "not run (full mode only)",
    )

    rd = results.get("reasoning_decode", {}).get("detail", {})
    rsum = rd.get("summary", {})
    rkey, rother = ("ratio_cpu", "ratio") if basis == "cpu" else ("ratio", "ratio_cpu")
    th = float(rd.get("target", 0.9))
    for name, label in [
        ("engine_clients:VLLMClient.chat_stream+think", "VLLMClient.chat_stream, delta.reasoning"),
        ("langchain:ChatVLLM+think", "LangChain ChatVLLM.stream, delta.reasoning"),
        ("engine_clients:TGIClient.chat_stream+think", "TGIClient.chat_stream, <think> splitter"),
        ("engine_clients:LlamaCppClient.chat_stream+think", "LlamaCppClient.chat_stream, reasoning_content"),
    ]:
        s = rsum.get(name)
        if s is None and "VLLM" not in name:
            continue  # the first two are always listed; the others when measured
        add(
            f"reasoning stream >= {th:g}x plain: {label}",
            s[rkey] if s else None,
            th,
            extra=(f"{other_name}: {s[rother]:.2f}x" if s else "not run"),
        )

    imp = results.get("import_time", {}).get("detail", {}).get("results", {}).get("engine_clients")
    if imp and "error" not in imp:
        add("import engine_clients <= 150 ms", imp["median_ms"], 150.0, higher=False)
        add(
            "import engine_clients loads neither LangChain nor LlamaIndex",
            float(imp["imports_langchain"] or imp["imports_llama_index"]),
            0.0,
            higher=False,
        )
    else:
        add("import engine_clients <= 150 ms", None, 150.0, higher=False)
    return out


def _fast_transport_targets(conc: dict[str, Any], add: Callable[..., None]) -> None:
    """Issue 22's targets at 1,000 streams: the aiohttp transport against ideal and against the raw aiohttp
    loop, and LangChain on it against ideal and in memory over the engine client; LangChain's own floor over
    the same raw loop (a minimal BaseChatModel) is in the notes, as what no LangChain model can beat here."""

    def at(name: str) -> dict[str, Any] | None:
        per = conc.get(name, {})
        lv: dict[str, Any] | None = per.get("1000") or per.get(1000)
        return lv

    fast, raw = at("engine_clients:VLLMClient.achat_stream:aiohttp"), at("raw:aiohttp+json:async")
    lc, floor = at("langchain:ChatVLLM:async:aiohttp"), at("floor:langchain-core:aiohttp.astream")
    if fast is None:
        return
    raw_note = f"raw aiohttp loop: {raw['wall_over_ideal']:.2f}x" if raw else ""
    add(
        "fast transport (aiohttp), 1,000 streams: wall <= 1.10x ideal",
        fast["wall_over_ideal"],
        1.10,
        higher=False,
        extra=raw_note,
    )
    if raw:
        add(
            "fast transport, 1,000 streams: wall <= 1.05x the raw aiohttp loop's",
            fast["wall_s"] / raw["wall_s"],
            1.05,
            higher=False,
        )
    if lc:
        floor_note = (
            f"LangChain's own floor over raw aiohttp: {floor['wall_over_ideal']:.2f}x" if floor else ""
        )
        add(
            "LangChain ChatVLLM (aiohttp), 1,000 streams: wall <= 1.3x ideal",
            lc["wall_over_ideal"],
            1.3,
            higher=False,
            extra=floor_note,
        )
        floor_mb = (
            f"LangChain's own floor: +{floor['rss_peak_mb'] - raw['rss_peak_mb']:.0f} MB over the raw loop"
            if floor and raw
            else ""
        )
        add(
            "LangChain ChatVLLM (aiohttp), 1,000 streams: peak RSS <= +100 MB over the engine client",
            lc["rss_peak_mb"] - fast["rss_peak_mb"],
            100.0,
            higher=False,
            extra=floor_mb,
        )


def _raw_1000(conc: dict[str, Any]) -> str:
    raw = conc.get("raw:httpx-sse+json:async", {})
    lv = raw.get("1000") or raw.get(1000)
    return f"; raw httpx loop: {lv['wall_over_ideal']:.2f}x" if lv else ""


def targets_table(ts: list[dict[str, Any]]) -> str:
    rows = []
    for t in ts:
        verdict = "n/a" if t["holds"] is None else ("HOLDS" if t["holds"] else "MISSED")
        rows.append(
            [t["name"], _fmt(t["measured"], 3) if t["measured"] is not None else "-", verdict, t["note"]]
        )
    return _table(["target", "measured", "verdict", "note"], rows, "lrll")


# ---- charts ----------------------------------------------------------------------------------------------

COLORS = {"raw": "#9e9e9e", "ours": "#1f77b4", "peer": "#ff7f0e", "floor": "#d9d9d9"}


def draw_decode(detail: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    items = list(_decode_sorted(detail["summary"]))
    items.sort(key=lambda kv: (kv[1]["mode"] != "sync", -kv[1]["tokens_per_cpu_s"]))
    labels = [
        s["label"] + (" [async]" if s["mode"] == "async" and "async" not in s["label"] else "")
        for _, s in items
    ]
    colors = [COLORS[s["group"]] for _, s in items]
    y = list(range(len(items)))[::-1]
    fig, axes = plt.subplots(1, 2, figsize=(13, 0.36 * len(items) + 1.8), sharey=True)
    panels = [
        ("tokens_per_cpu_s", "tokens per CPU-second of the client, thousands (one dedicated core)"),
        ("tokens_per_s", "wall-clock tokens/s, thousands - median, whiskers min-max"),
    ]
    for ax, (key, xlabel) in zip(axes, panels, strict=False):
        vals = [s[key] / 1000 for _, s in items]
        kw: dict[str, Any] = {}
        if key == "tokens_per_s":
            kw["xerr"] = [
                [(s["tokens_per_s"] - s["min"]) / 1000 for _, s in items],
                [(s["max"] - s["tokens_per_s"]) / 1000 for _, s in items],
            ]
            kw["error_kw"] = {"elinewidth": 0.8, "capsize": 2, "ecolor": "#444"}
        ax.barh(y, vals, color=colors, **kw)
        for yi, v in zip(y, vals, strict=False):
            ax.text(v, yi, f" {v:,.1f}k", va="center", fontsize=7)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, labels, fontsize=8)
    fig.legend(
        handles=[
            Patch(color=COLORS[g], label=lab)
            for g, lab in (
                ("raw", "raw httpx loop"),
                ("ours", "engine_clients + integrations"),
                ("peer", "peers"),
                ("floor", "framework floor, no HTTP"),
            )
        ],
        loc="lower center",
        ncol=4,
        fontsize=8,
        frameon=False,
    )
    fig.suptitle(
        f"Stream decode throughput: one stream of {detail['tokens']:,} tokens from the firehose "
        "(sync above, async below)",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_concurrency_lines(detail: dict[str, Any], path: Path) -> None:
    """Wall time over ideal against the number of streams, one line per client (log-log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = detail["results"]
    labels = detail.get("labels", {})
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for name, per in res.items():
        points = sorted((int(k), lv["wall_over_ideal"]) for k, lv in per.items() if int(k) > 0)
        if points:
            style = "--" if name.startswith("peer:") else ":" if name.startswith("raw:") else "-"
            ax.plot(*zip(*points, strict=True), style, marker="o", label=labels.get(name, name))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("concurrent streams")
    ax.set_ylabel("wall time / ideal (1.0 = no client overhead)")
    ax.set_title("Concurrent async streams of 64 tokens: wall time over ideal")
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_concurrency(detail: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = detail["results"]
    names = list(res)
    levels = sorted({int(k) for per in res.values() for k in per if int(k) > 0})
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.45 * len(names) + 2.2), sharey=True)
    width = 0.8 / max(1, len(levels))
    shades = ["#c6dbef", "#6baed6", "#2171b5", "#08306b"]
    y0 = list(range(len(names)))[::-1]
    for li, k in enumerate(levels):
        ys = [y - 0.4 + width * (li + 0.5) for y in y0]
        ratio = [(res[n].get(str(k)) or res[n].get(k) or {}).get("wall_over_ideal", 0) for n in names]
        ttft = [((res[n].get(str(k)) or res[n].get(k) or {}).get("ttft_p99_s") or 0) * 1000 for n in names]
        axes[0].barh(ys, ratio, height=width, color=shades[li % 4], label=f"{k} streams")
        axes[1].barh(ys, ttft, height=width, color=shades[li % 4], label=f"{k} streams")
    # log scales: peers that queue behind a connection limit are 10x off, ours within a few tens of percent
    axes[0].set_xscale("log")
    axes[1].set_xscale("log")
    ticks = [1, 1.5, 2, 3, 5, 10, 20]
    axes[0].set_xticks(ticks, [f"{t:g}" for t in ticks])
    axes[0].set_xlim(0.9, None)
    axes[0].axvline(1.0, color="k", lw=0.8)
    axes[0].axvline(1.25, color="r", lw=0.8, ls="--")
    axes[0].set_xlabel("wall time / ideal, log scale (1.0 = no client overhead; red: the 1.25 target)")
    axes[1].set_xlabel(f"TTFT p99, ms, log scale (server TTFT: {detail['ttft_ms']:g} ms)")
    labels = [detail.get("labels", {}).get(n, n) for n in names]
    axes[0].set_yticks(y0, labels, fontsize=8)
    axes[0].legend(fontsize=8, loc="lower right")
    for ax in axes:
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"Concurrent async streams of {detail['tokens']} tokens, paced by the firehose", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---- docs ------------------------------------------------------------------------------------------------


def write_docs(results: dict[str, dict[str, Any]], ts: list[dict[str, Any]], basis: str = "cpu") -> None:
    DOCS.mkdir(exist_ok=True)
    parts: list[str] = [HEADER]
    metas = {k: v.get("meta", {}) for k, v in results.items()}
    latest = max(metas.values(), key=lambda m: m.get("started", ""), default={})
    parts.append("## Environment of the latest run\n\n")
    mb = latest.get("machine_before", {})
    ma = latest.get("machine_after", {})
    v = latest.get("versions", {})
    parts.append(
        f"- {latest.get('started', '?')}, `{latest.get('mode', '?')}` mode, "
        f"{latest.get('elapsed_s', '?')} s; "
        f"{mb.get('cores', '?')} cores ({mb.get('cpu', '?')}), load average {mb.get('loadavg')} before and "
        f"{ma.get('loadavg')} after.\n"
        f"- Python {v.get('python')}, engine_clients {v.get('llm-engine-clients')} (git "
        f"{v.get('git', '?')}), "
        f"httpx {v.get('httpx')}, httpcore {v.get('httpcore')}, h11 {v.get('h11')}, httpx-sse "
        f"{v.get('httpx-sse')}, "
        f"orjson {v.get('orjson')}, langchain-core {v.get('langchain-core')}, llama-index-core "
        f"{v.get('llama-index-core')}; peers: openai {v.get('openai')}, langchain-openai "
        f"{v.get('langchain-openai')}, "
        f"langchain-huggingface {v.get('langchain-huggingface')}, huggingface_hub "
        f"{v.get('huggingface_hub')}, "
        f"llama-index-llms-openai-like {v.get('llama-index-llms-openai-like')}.\n"
    )
    for name, m in metas.items():
        if m.get("started") and m.get("started") != latest.get("started"):
            parts.append(
                f"- `{name}` comes from an earlier run ({m.get('started')}, {m.get('mode')} mode).\n"
            )
    for s, why in latest.get("skipped", {}).items():
        parts.append(f"- Skipped `{s}`: {why}\n")
    for n in latest.get("notes", []):
        parts.append(f"- {n}\n")
    parts.append(
        "\n## Targets\n\n"
        + (
            "Throughput ratios (scenario 1) are judged on tokens per CPU-second of the worker process - the "
            "throughput of one dedicated core, which is what the targets ask about and what other "
            "jobs on a shared "
            "machine disturb least; every thread of a client counts. The wall-clock ratio is in the note.\n\n"
            if basis == "cpu"
            else "Throughput ratios are judged on wall-clock tokens/s; the per-CPU-second ratio is in the "
            "note.\n\n"
        )
        + targets_table(ts)
        + "\n"
    )

    dec = results.get("stream_decode", {}).get("detail")
    if dec:
        draw_decode(dec, DOCS / DECODE_PNG)
        parts.append(
            f"\n## 1. Stream decode throughput\n\nOne stream of {dec['tokens']:,} tokens (one "
            "token per SSE event, "
            f"`{dec['framing']}` framing) per measurement; {dec['rounds']} alternated rounds of fresh worker "
            f"processes, {dec['repeats_per_process']} timed streams per process after a warm-up; medians. "
            "`tokens/s` is wall-clock; `tokens/CPU-s` divides by the worker's own CPU time, which "
            "is steadier on a "
            "busy machine. Ratio columns (*) read `per CPU-second / wall-clock`; they compare "
            "medians of the same run, "
            "sync clients with sync ones and async with async; ChatHF is ChatHuggingFace over "
            "HuggingFaceEndpoint. In quick "
            "mode peers and floors run in one process (one round) and the others in every round.\n"
            f"The firehose itself used {_fmt(dec.get('server_cpu_s'), 1)} CPU-s over the "
            f"{dec['wall_s']:.0f} s "
            "of the scenario.\n\n"
        )
        parts.append(decode_table(dec["summary"]) + "\n\n")
        parts.append(composition_note(dec["summary"]))
        parts.append(f"![stream decode throughput]({DECODE_PNG})\n")
        if dec.get("errors"):
            parts.append(
                "\nErrors: " + "; ".join(f"`{k}`: {v[:200]}" for k, v in dec["errors"].items()) + "\n"
            )
    conc = results.get("concurrency", {}).get("detail")
    if conc:
        draw_concurrency(conc, DOCS / CONC_PNG)
        draw_concurrency_lines(conc, DOCS / CONC_LINES_PNG)
        lv = ", ".join(
            f"{k} streams at {c['delay_ms']:g} ms/token (ideal {c['ideal_s']:.2f} s)"
            for k, c in conc["levels"].items()
        )
        parts.append(
            f"\n## 2. Concurrency\n\nN concurrent async streams of {conc['tokens']} tokens on one "
            "client object, "
            f"the firehose waiting {conc['ttft_ms']:g} ms before the first token and then pacing "
            f"tokens: {lv}. "
            "The pacing keeps the total offered load at 12,800 tokens/s at every level, so the scenario "
            "measures connection handling and scheduling under many open streams rather than single-core "
            "decode speed (scenario 1). Ideal = TTFT + tokens x delay. Peak RSS is the worker's (and, in "
            "brackets, its growth during the streams). One fresh process per client. Each level starts "
            "with a cold connection pool (the warm-up stream is cut, so its connection is dropped); with an "
            "idle keep-alive connection already pooled, httpx-based clients are much slower at 1,000 "
            "streams (httpcore's pool bookkeeping): `python -m bench.repro_warm_pool` shows it.\n\n"
        )
        parts.append(concurrency_table(conc) + "\n\n")
        parts.append(f"![concurrency]({CONC_PNG})\n\n![wall over ideal against streams]({CONC_LINES_PNG})\n")
        if conc.get("errors"):
            parts.append(
                "\nErrors: " + "; ".join(f"`{k}`: {v[:200]}" for k, v in conc["errors"].items()) + "\n"
            )
        parts.append(candidates_section())
        parts.append(sharding_section())
    e2e = results.get("e2e_llamacpp", {}).get("detail")
    if e2e and "skipped" not in e2e:
        parts.append(
            "\n## 3. End to end against llama-server\n\nThe scripted tiny GGUF served by the real "
            "llama-server "
            "(`engine_clients.testing.start_llama_server`, one slot), `max_tokens` "
            f"{e2e.get('max_tokens', '?')} with `ignore_eos`. The server's generation speed is the "
            "ceiling and "
            "drifts with the machine's load, so the clients take turns in one worker process (shuffled each "
            f"round; {e2e.get('workers', 1)} workers x {e2e.get('rounds', '?')} rounds) and each stream is "
            "compared with the raw loop's stream of the same round; the ratio is the median of those pairs. "
            "The verdict uses llama-server with `--threads 1`, so that the client has a core of "
            "its own as it "
            "would against a remote engine; with llama-server's default threads the 2 cores are "
            "shared and every "
            "CPU-millisecond the client spends is taken from generation (second table).\n"
        )
        for cfg in e2e.get("configs") or [{"label": "", "summary": e2e.get("summary", {})}]:
            parts.append(f"\n**{cfg['label']}**\n\n" + e2e_table(cfg) + "\n")
    elif e2e:
        parts.append(f"\n## 3. End to end against llama-server\n\nSkipped: {e2e['skipped']}\n")
    imp = results.get("import_time", {}).get("detail")
    rd = results.get("reasoning_decode", {}).get("detail")
    if imp:
        parts.append(
            f"\n## 4. Import time\n\nIn-process time of `import X` in a fresh interpreter (bytecode cached), "
            f"median of {imp['runs']} runs.\n\n"
        )
        parts.append(import_table(imp) + "\n\n")
        top = imp.get("engine_clients_top_cumulative_us") or []
        if top:
            parts.append(
                "Largest packages under `python -X importtime -c 'import engine_clients'` (cumulative, one "
                "run, us; nested packages count inside their importer too): "
                + ", ".join(f"`{t[2].strip()}` {t[1]:,}" for t in top[:8])
                + ".\n"
            )
    if rd:
        parts.append(reasoning_section(rd))
    wb = results.get("wrapper_bound", {}).get("detail")
    if wb:
        parts.append(bound_section(wb))
    parts.append(FOOTER)
    (DOCS / "benchmarks.md").write_text("".join(parts))


def reasoning_section(rd: dict[str, Any]) -> str:
    share = rd.get("think_share_pct", 50)
    target = rd.get("target", 0.9)
    summary = rd.get("summary", {})
    out = [
        "\n## 5. Reasoning streams\n\n"
        "Does a reasoning model's stream decode as fast as a plain one? Each client reads two firehose "
        f"streams of {rd['tokens']:,} events: a plain one (all answer) and a reasoning one whose first "
        f"{share}% is thinking, sent as each engine sends it: vLLM with a reasoning parser in "
        "`delta.reasoning` (`/vllm+think/...`), llama-server `--reasoning-format deepseek` in "
        "`delta.reasoning_content` (`/llamacpp+think/...`), TGI inside `delta.content` between `<think>` and "
        "`</think>`, which the client splits off (`/tgi+think/...`; `/vllm+thinktags/...` is vLLM without a "
        "reasoning parser). The tags and the `\\n\\n` after the close tag are tokens of their own, so both "
        "streams have the same event count and the rates compare token for token. The consumer is the same "
        "for both streams: it takes `Reasoning` and `Token` texts (LangChain: "
        "`additional_kwargs['reasoning_content']` and `content`; LlamaIndex: "
        "`additional_kwargs['thinking_delta']` and `delta`), and every timed stream is checked to deliver "
        "exactly the expected thinking and answer characters.\n\n"
        "Both streams run in one worker process per client and round, alternately (plain, reasoning, "
        f"reasoning, plain; {rd['repeats_per_process']} of each after a warm-up of each), {rd['rounds']} "
        "rounds with the clients in a shuffled order, one firehose. The ratio is the median of the pairs "
        "(each reasoning stream over the plain stream timed next to it in the same process); (*) reads "
        f"`per CPU-second / wall-clock`. Target: >= {target:g}x. Absolute rates belong to this scenario's "
        "own run (the machine's speed per CPU-second drifts between runs); compare them with section 1 "
        "only through ratios. The firehose used "
        f"{_fmt(rd.get('server_cpu_s'), 1)} CPU-s over the {rd['wall_s']:.0f} s of the scenario.\n\n",
        reasoning_table(rd) + "\n",
    ]
    if summary:
        low_name, low = min(summary.items(), key=lambda kv: kv[1]["ratio_cpu"])
        missed = [n for n, x in summary.items() if x["ratio_cpu"] < target]
        out.append(
            f"\nPer CPU-second, {len(summary) - len(missed)} of {len(summary)} clients meet {target:g}x"
            + (f" (missed: {', '.join(f'`{n}`' for n in missed)})" if missed else "")
            + f"; the lowest median is `{low_name}` at {low['ratio_cpu']:.3f}x (pairs "
            f"{low['ratio_cpu_range'][0]:.2f}-{low['ratio_cpu_range'][1]:.2f}).\n"
        )
    if rd.get("codec"):
        out.append(
            "\nThe engine layer alone, counted rather than timed (`--instructions`): instructions that "
            "engine_clients' SSE decoder and chat stream decoder execute per token on the same two bodies, "
            "no HTTP, under valgrind (a worker decoding the stream twice minus one decoding it once, both "
            "with `PYTHONHASHSEED=0`). The count does not move with the machine's load; `plain / reasoning` "
            "above 1 means the reasoning stream costs fewer instructions.\n\n" + codec_table(rd) + "\n"
        )
    if rd.get("errors"):
        out.append("\nErrors: " + "; ".join(f"`{k}`: {v[:200]}" for k, v in rd["errors"].items()) + "\n")
    return "".join(out)


HEADER = """# Benchmarks

Generated by `python -m bench` (see [Reproducing](#reproducing)); numbers are from the run noted below.
Every streaming figure comes from a local **firehose** server (`bench/firehose.py`, a raw `asyncio.Protocol`
in its own process, loopback only) that replays engine-shaped SSE (vLLM / TGI / llama.cpp chat chunks,
TGI `/generate_stream`, llama.cpp `/completion`, and reasoning models' thinking in each engine's own shape)
with prebuilt bodies, so that the client under test is the only variable. Each SSE event travels in its own
HTTP chunk, as the engines send them. Each measurement runs in a fresh worker process; clients alternate round
by round and the tables show medians.

**Caveat.** The machine has 2 cores shared with other jobs; load averages are recorded below. Absolute figures
move by +-20 % between runs; ratios measured in the same run are steadier, and the tokens per CPU-second
column is the least sensitive to other load.

"""

FOOTER = """
## Reproducing

```bash
bash bench/run.sh            # creates .bench-venv (package + bench/requirements.txt), runs all six scenarios
bash bench/run.sh --quick    # scenarios 1, 2 (64 and 256 streams), 4 and 5 (three clients), a few minutes
bash bench/run.sh --only reasoning_decode [--quick]   # scenario 5 alone (about 1 minute; quick: 3 clients)
bash bench/run.sh --only wrapper_bound [--clients langchain:ChatVLLM]  # scenario 6: wrappers vs their bound
```

`bench/run.sh` is `python3 -m venv .bench-venv && .bench-venv/bin/pip install -e '.[langchain,llamaindex]'
-r bench/requirements.txt && .bench-venv/bin/python -m bench "$@"`: the peers live in that venv only, never in
the project's own. Both modes write `bench/results/latest.json` (rows of `scenario`, `client`, `metric`,
`value`), one `bench/results/<scenario>.json` per scenario with the raw samples, `latest.meta.json`, this page
and its charts. Other options: `--only stream_decode,import_time`, `--clients NAME,...` (`--list` names
them), `--rounds`, `--tokens`, `--levels 64,256,1000`, `--conc-delay-ms`, `--framing coalesced` (64 KiB HTTP
chunks instead of one per event), `--basis wall` (judge throughput on wall-clock), `--llama-threads N`,
`--tag NAME` (write `<scenario>-NAME.json` only), `--profile CLIENT` (cProfile of one stream; for a `+think`
client one profile of the plain stream and one of the reasoning stream), `--no-docs`,
`--docs-only` (rebuild this page from the stored results). The first full run provisions llama-server and the
scripted GGUF for scenario 3 (minutes; cached afterwards). The firehose alone: `python -m bench.firehose
--port 8000`, then e.g. `curl -N -d '{"stream":true}' 127.0.0.1:8000/vllm/5/100/0/v1/chat/completions`
(`/vllm+think/8/...` for a reasoning answer, half of it thinking; `+think25` for a quarter).
"""
