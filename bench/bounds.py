"""Scenario 6: each LangChain and LlamaIndex wrapper against its bound, timed in one process.

Per chunk, a wrapper pays at least its engine client's cost plus its framework's own (the no-op floor), so
``1 / (1/client + 1/floor)`` in tokens per CPU-second bounds it. Scenario 1 measures the three in separate
worker processes, minutes apart, and the ratio moves with the machine's load (0.73 to 0.94 for the same code
on one day). Here one worker process streams the engine client, the floor and the wrapper in turns
(A B C C B A ...; ``ctx.repeats`` streams of each), so that all three meet the same load, interpreter state
and allocator; each process gives one ratio, and the verdict is the median over ``ctx.rounds`` processes.
"""

from __future__ import annotations

import time
from typing import Any

from bench import report
from bench.clients import BY_NAME
from bench.runner import Ctx
from bench.runner import Row
from bench.runner import available
from bench.runner import median
from bench.runner import row
from bench.runner import run_worker
from bench.runner import say

__all__ = ["wrapper_bound"]

VARIANTS = ("client", "floor", "wrapper")


def wrapper_bound(ctx: Ctx, only: list[str] | None = None) -> dict[str, Any]:
    trios = [
        (ours, client, floor)
        for ours, client, floor, _, _ in report.BOUND_PAIRS
        if (only is None or ours in only) and all(available(ctx, BY_NAME[n]) for n in (ours, client, floor))
    ]
    tokens = ctx.tokens
    ratios: dict[str, list[float]] = {ours: [] for ours, _, _ in trios}
    rates: dict[str, dict[str, list[float]]] = {ours: {v: [] for v in VARIANTS} for ours, _, _ in trios}
    errors: dict[str, str] = {}
    t0 = time.perf_counter()
    for r in range(ctx.rounds):
        for ours, client, floor in trios:
            base = ctx.url(BY_NAME[client].dialect, tokens)
            names = dict(zip(VARIANTS, (client, floor, ours), strict=True))
            job = {
                "kind": "paired",
                "tokens": tokens,
                "repeats": ctx.repeats,
                "variants": {v: {"client": n, "base": base} for v, n in names.items()},
            }
            res = run_worker(ctx, job)
            if "error" in res:
                errors[ours] = res["error"]
                say(f"  ! {ours}: {res['error'][:300]}")
                continue
            got = {v: median([x["tokens_per_cpu_s"] for x in res["runs"][v]]) for v in VARIANTS}
            for v in VARIANTS:
                rates[ours][v].append(got[v])
            ratios[ours].append(got["wrapper"] * (1 / got["client"] + 1 / got["floor"]))
        say(f"  round {r + 1}/{ctx.rounds} done ({time.perf_counter() - t0:.0f} s)")

    rows: list[Row] = []
    summary: dict[str, dict[str, Any]] = {}
    for ours, client, floor in trios:
        rs = ratios[ours]
        if not rs:
            continue
        s = {
            "client": client,
            "floor": floor,
            "ratio": median(rs),
            "range": (min(rs), max(rs)),
            "n": len(rs),
            **{f"{v}_tokens_per_cpu_s": median(rates[ours][v]) for v in VARIANTS},
        }
        summary[ours] = s
        rows += [
            row("wrapper_bound", ours, "ratio", round(s["ratio"], 3)),
            row("wrapper_bound", ours, "ratio_min", round(s["range"][0], 3)),
            row("wrapper_bound", ours, "ratio_max", round(s["range"][1], 3)),
            *(
                row("wrapper_bound", ours, f"{v}_tokens_per_cpu_s", round(s[f"{v}_tokens_per_cpu_s"]))
                for v in VARIANTS
            ),
        ]
    detail = {
        "tokens": tokens,
        "rounds": ctx.rounds,
        "repeats_per_process": ctx.repeats,
        "wall_s": time.perf_counter() - t0,
        "summary": summary,
        "ratios": ratios,
        "errors": errors,
    }
    say(report.bound_table(detail))
    return {"rows": rows, "detail": detail}
