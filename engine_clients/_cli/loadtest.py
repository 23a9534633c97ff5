"""``engine-clients loadtest URL``: a concurrency sweep (``engine_clients/_loadtest.py``) with a progress
bar, a table at the end, ``--json`` and ``--plot FILE.png`` (matplotlib: the ``[plot]`` extra)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .._detect import ENGINES
from .._loadtest import DEFAULT_PROMPT
from .._loadtest import LevelResult
from .._loadtest import loadtest
from ._plain import have_rich
from ._plain import table as plain_table

SUMMARY = "a sweep of concurrency levels: TTFT, inter-token latency, output tokens/s, errors"


def add_arguments(lt: argparse.ArgumentParser) -> None:
    lt.add_argument("url", metavar="URL", help="server base URL")
    lt.add_argument("--engine", choices=sorted(ENGINES), help="skip detection")
    lt.add_argument("--api-key", default=None, help="the server's API key (default: the engine's *_API_KEY)")
    lt.add_argument(
        "--concurrency", default="1,2,4,8", metavar="LEVELS", help="comma-separated levels (default 1,2,4,8)"
    )
    lt.add_argument("--requests", type=int, default=None, help="requests per level (default: 4 x the level)")
    lt.add_argument(
        "--duration", type=float, default=None, metavar="SECONDS", help="seconds per level instead"
    )
    lt.add_argument("--max-tokens", type=int, default=64, help="output tokens asked per request (default 64)")
    lt.add_argument(
        "--ignore-eos", action="store_true", help="always generate --max-tokens (vLLM, llama.cpp)"
    )
    lt.add_argument("--prompt", default=DEFAULT_PROMPT, help="the prompt every request sends")
    lt.add_argument("--timeout", type=float, default=120.0, help="most seconds to wait for any chunk")
    lt.add_argument("--json", action="store_true", help="print JSON instead of a table")
    lt.add_argument("--plot", metavar="FILE.png", help="draw the sweep (needs matplotlib: the [plot] extra)")


def _levels(text: str) -> list[int]:
    levels = [int(x) for x in text.split(",") if x.strip()]
    if not levels or min(levels) < 1:
        raise SystemExit("loadtest: --concurrency takes positive integers, e.g. 1,2,4")
    return levels


def run(args: argparse.Namespace) -> int:
    levels = _levels(args.concurrency)
    if args.plot:
        _need_matplotlib()
    per_level = {k: args.requests or (None if args.duration else 4 * k) for k in levels}
    if have_rich():
        engine, results = _sweep_with_progress(args, levels, per_level)
    else:
        engine, results = _sweep(args, levels, per_level, lambda k: None, lambda: None)
    if args.json:
        print(
            json.dumps(
                {"url": args.url, "engine": engine, "levels": [r.to_dict() for r in results]}, indent=2
            )
        )
    else:
        render(args.url, engine, results)
    if args.plot:
        plot(results, args.plot, f"{engine} at {args.url}")
        if not args.json:
            print(f"plot written to {args.plot}")
    return 1 if any(r.errors == r.requests for r in results) else 0


def _sweep_with_progress(
    args: argparse.Namespace, levels: list[int], per_level: dict[int, int | None]
) -> tuple[str, list[LevelResult]]:
    from rich.console import Console
    from rich.progress import BarColumn
    from rich.progress import MofNCompleteColumn
    from rich.progress import Progress
    from rich.progress import TextColumn
    from rich.progress import TimeElapsedColumn

    console = Console(stderr=True)
    progress = Progress(
        TextColumn("[bold]loadtest[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=args.json or not console.is_terminal,
    )
    tasks: dict[int, Any] = {}

    def on_level(k: int) -> None:
        for other in tasks.values():
            progress.update(other, visible=False)
        tasks[k] = progress.add_task(f"concurrency {k}", total=per_level[k])

    def on_done() -> None:
        if tasks:
            progress.advance(list(tasks.values())[-1])

    with progress:
        result: tuple[str, list[LevelResult]] = _sweep(args, levels, per_level, on_level, on_done)
    return result


def _sweep(args: argparse.Namespace, levels: list[int], per_level: dict[int, int | None], *hooks: Any) -> Any:
    on_level, on_done = hooks
    requests = args.requests if args.duration is not None else {k: n for k, n in per_level.items() if n}
    return loadtest(
        args.url, levels, requests=requests, duration=args.duration, **_common(args, on_level, on_done)
    )


def _common(args: argparse.Namespace, on_level: Any, on_done: Any) -> dict[str, Any]:
    return {
        "engine": args.engine,
        "api_key": args.api_key,
        "prompt": args.prompt,
        "max_tokens": args.max_tokens,
        "ignore_eos": args.ignore_eos,
        "timeout": args.timeout,
        "on_level": on_level,
        "on_done": on_done,
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:,.1f}"


COLUMNS = (
    "concurrency",
    "requests",
    "errors",
    "TTFT p50 ms",
    "TTFT p99 ms",
    "ITL p50 ms",
    "ITL p99 ms",
    "TPOT mean ms",
    "output tok/s",
    "req/s",
)


def render(url: str, engine: str, results: list[LevelResult], console: Any = None) -> None:
    title = f"loadtest {engine} at {url}"
    rows = [
        [
            str(r.concurrency),
            str(r.requests),
            str(r.errors),
            _ms(r.ttft.p50),
            _ms(r.ttft.p99),
            _ms(r.itl.p50),
            _ms(r.itl.p99),
            _ms(r.tpot.mean),
            f"{r.output_tokens_per_s:,.1f}",
            f"{r.requests_per_s:,.2f}",
        ]
        for r in results
    ]
    if console is None and not have_rich():
        print(plain_table(title, COLUMNS, rows))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, title_justify="left")
        for name in COLUMNS:
            table.add_column(name, justify="right")
        for row in rows:
            table.add_row(*row[:2], f"[red]{row[2]}[/]" if row[2] != "0" else "0", *row[3:])
        (console or Console()).print(table)
    for r in results:
        if r.errors:
            print(
                f"concurrency {r.concurrency}: {r.errors} errors, e.g. {r.error_sample[0]}", file=sys.stderr
            )


def _need_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise SystemExit('loadtest --plot needs matplotlib: pip install "llm-engine-clients[plot]"') from None


def plot(results: list[LevelResult], path: str, title: str) -> None:
    """TTFT and inter-token latency (p50, p99), output tokens/s and errors against concurrency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = [r.concurrency for r in results]

    def ms(values: list[float | None]) -> list[float]:
        return [float("nan") if v is None else v * 1000 for v in values]

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    axes[0].plot(ks, ms([r.ttft.p50 for r in results]), "o-", label="p50")
    axes[0].plot(ks, ms([r.ttft.p99 for r in results]), "o--", label="p99")
    axes[0].set_title("time to first token (ms)")
    axes[1].plot(ks, ms([r.itl.p50 for r in results]), "o-", label="p50")
    axes[1].plot(ks, ms([r.itl.p99 for r in results]), "o--", label="p99")
    axes[1].set_title("inter-token latency (ms)")
    axes[2].plot(ks, [r.output_tokens_per_s for r in results], "o-", label="output tokens/s")
    errors = [r.errors for r in results]
    if any(errors):
        axes[2].bar(ks, errors, alpha=0.3, color="red", label="errors")
    axes[2].set_title("output tokens per second")
    for ax in axes:
        ax.set_xlabel("concurrency")
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
