"""Redraw the README's pictures of the ``engine-clients`` command: ``docs/doctor.svg`` (the doctor's table on
the embedded llama-server) and ``docs/loadtest.png`` (a loadtest sweep on the same server).

    .venv/bin/python scripts/cli_pictures.py [--levels 1,2,4,8] [--requests 16]

Needs the ``[plot]`` extra (matplotlib). The figures depend on the machine; the README says which one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from engine_clients._cli.doctor import render
from engine_clients._cli.loadtest import plot
from engine_clients._doctor import diagnose
from engine_clients._loadtest import loadtest
from engine_clients.testing import start_llama_server

DOCS = Path(__file__).resolve().parent.parent / "docs"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--levels", default="1,2,4,8")
    parser.add_argument("--requests", type=int, default=16, help="requests per level")
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    with start_llama_server(parallel=max(levels)) as server:
        console = Console(record=True, width=150, force_terminal=True)
        render(diagnose(server.base_url), console)
        console.save_svg(str(DOCS / "doctor.svg"), title="engine-clients doctor")
        engine, results = loadtest(
            server.base_url, levels, requests=args.requests, max_tokens=args.max_tokens, ignore_eos=True
        )
        plot(results, str(DOCS / "loadtest.png"), f"engine-clients loadtest: {engine}, scripted tiny model")
    print(f"wrote {DOCS / 'doctor.svg'} and {DOCS / 'loadtest.png'}")


if __name__ == "__main__":
    main()
