"""``engine-clients doctor [URL ...]``: a table of what works against each server and what to change
(``engine_clients/_doctor``), or ``--json`` for CI pipelines. Rich is imported here only, when it runs."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .._detect import ENGINES
from .._doctor import Report
from .._doctor import diagnose
from .._doctor import targets
from .._doctor.core import DEFAULT_BUDGET
from .._doctor.core import DEFAULT_REQUEST_TIMEOUT
from .._doctor.core import SYMBOLS
from ._plain import have_rich
from ._plain import table as plain_table

EPILOG = """\
Without URL it diagnoses every URL in TGI_BASE_URL, VLLM_BASE_URL, LLAMACPP_BASE_URL and TEI_BASE_URL
(comma-separated lists too). The key defaults to the engine's *_API_KEY variable.

Exit status: 0 when every server could be checked (each capability it lacks is a row, not an error); 1 when
a server could not be reached, identified or authenticated, or a --require'd capability is not ok; 2 on bad
arguments. --json prints one object per server (a list when there are several)."""


SUMMARY = "what works against a server, and the flag or setting that fixes what does not"


def add_arguments(doctor: argparse.ArgumentParser) -> None:
    doctor.add_argument("urls", nargs="*", metavar="URL", help="server base URL(s) (default: *_BASE_URL)")
    doctor.add_argument("--engine", choices=sorted(ENGINES), help="skip detection: the engine at every URL")
    doctor.add_argument(
        "--api-key", default=None, help="the servers' API key (default: the engine's *_API_KEY)"
    )
    doctor.add_argument("--json", action="store_true", help="print JSON instead of a table")
    doctor.add_argument(
        "--budget",
        type=float,
        default=DEFAULT_BUDGET,
        metavar="SECONDS",
        help=f"most time for one server, all checks together (default {DEFAULT_BUDGET:g})",
    )
    doctor.add_argument(
        "--request-timeout",
        type=float,
        default=DEFAULT_REQUEST_TIMEOUT,
        metavar="SECONDS",
        help=f"most time for one request (default {DEFAULT_REQUEST_TIMEOUT:g})",
    )
    doctor.add_argument(
        "--need-context", type=int, metavar="TOKENS", help="fail when the context window is smaller than this"
    )
    doctor.add_argument(
        "--only",
        default="",
        metavar="CHECKS",
        help="comma-separated checks to run: chat, streaming, tools, structured_output, reasoning, images,"
        " embeddings, rerank, tokenize (server info, the key and the context size always run)",
    )
    doctor.add_argument(
        "--require",
        default="",
        metavar="CAPS",
        help="comma-separated capabilities that must be ok (e.g. chat,tools,reasoning): exit 1 otherwise",
    )


def run(args: argparse.Namespace) -> int:
    todo = targets(args.urls, args.engine)
    if not todo:
        print("doctor: no URL given and no *_BASE_URL variable set", file=sys.stderr)
        return 2
    reports = []
    for url, engine in todo:
        with _progress(url, quiet=args.json) as step:
            reports.append(
                diagnose(
                    url,
                    engine=engine,
                    api_key=args.api_key,
                    budget=args.budget,
                    request_timeout=args.request_timeout,
                    need_context=args.need_context,
                    only={c.strip() for c in args.only.split(",") if c.strip()} or None,
                    progress=step,
                )
            )
    if args.json:
        dicts = [r.to_dict() for r in reports]
        print(json.dumps(dicts[0] if len(dicts) == 1 else dicts, indent=2))
    else:
        for report in reports:
            render(report)
    required = {c.strip() for c in args.require.split(",") if c.strip()}
    return 0 if all(_passes(r, required) for r in reports) else 1


def _passes(report: Report, required: set[str]) -> bool:
    if not report.reachable:
        return False
    return all(c.status in ("ok", "warn") for c in report.checks if c.capability in required) and all(
        report.check(cap) is not None for cap in required
    )


class _progress:
    """A transient spinner on stderr while one server is checked (nothing when quiet or not a terminal)."""

    def __init__(self, url: str, *, quiet: bool) -> None:
        self.url, self.quiet = url, quiet
        self.progress: Any = None

    def __enter__(self) -> Any:
        if not have_rich():
            return lambda label: None
        from rich.console import Console
        from rich.progress import Progress
        from rich.progress import SpinnerColumn
        from rich.progress import TextColumn
        from rich.progress import TimeElapsedColumn

        from .._doctor.checks import CHECKS

        console = Console(stderr=True)
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]doctor[/] {task.description}"),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=self.quiet or not console.is_terminal,
        )
        self.progress.start()
        task = self.progress.add_task(self.url, total=len(CHECKS) + 1)
        first = [True]

        def step(label: str) -> None:
            if not first[0]:
                self.progress.advance(task)
            first[0] = False
            self.progress.update(task, description=f"{self.url}: {label}")

        return step

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()


STYLE = {"ok": "green", "warn": "yellow", "fail": "red", "skip": "dim"}


def render(report: Report, console: Any = None) -> None:
    """The report as a table: capability, status, what was seen, the fix (with its docs section)."""
    if report.engine:
        what = f"{report.engine} {report.version or ''}, model {report.model}".replace(" ,", ",")
    else:
        what = "engine unknown"
    title = f"{report.url}: {what} ({report.elapsed_s:.1f} s)"
    if console is None and not have_rich():
        rows = [
            [c.label, SYMBOLS[c.status], c.seen, f"{c.fix.text} {c.fix.doc or ''}".strip() if c.fix else ""]
            for c in report.checks
        ]
        print(plain_table(title, ["capability", "", "seen", "fix"], rows))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = console or Console()
    table = Table(
        title=title,
        title_justify="left",
        expand=False,
    )
    table.add_column("capability", no_wrap=True)
    table.add_column("", justify="center", no_wrap=True)
    table.add_column("seen", overflow="fold", ratio=3)
    table.add_column("fix", overflow="fold", ratio=3)
    for check in report.checks:
        fix = Text()
        if check.fix is not None:
            fix.append(check.fix.text)
            if check.fix.doc:
                fix.append(f"\n{check.fix.doc}", style="dim")
        table.add_row(
            check.label,
            Text(SYMBOLS[check.status], style=STYLE[check.status]),
            Text(check.seen, style="dim" if check.status == "skip" else ""),
            fix,
        )
    console.print(table)
