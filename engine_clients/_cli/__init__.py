"""The ``engine-clients`` command (also ``python -m engine_clients``): ``demo``, ``doctor``, ``serve`` and
``loadtest``. Thin: each subcommand calls the package's API. ``import engine_clients`` never imports this
package, and this package imports rich (and matplotlib, for ``loadtest --plot``) only when a command runs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import demo
from . import doctor
from . import loadtest
from . import serve

__all__ = ["main"]


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="engine-clients",
        description="Clients for self-hosted TGI, vLLM and llama.cpp servers: try one (demo), check what"
        " works against it (doctor), start a local one (serve), or load it (loadtest).",
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # each command module: SUMMARY, optionally EPILOG, add_arguments(parser) and run(args)
    for command in (demo, doctor, serve, loadtest):
        one = sub.add_parser(
            command.__name__.rpartition(".")[2],
            help=command.SUMMARY,
            description=command.SUMMARY[0].upper() + command.SUMMARY[1:] + ".",
            epilog=getattr(command, "EPILOG", None),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.add_arguments(one)
        one.set_defaults(run=command.run)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
