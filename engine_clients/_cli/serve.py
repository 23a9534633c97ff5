"""``engine-clients serve``: the test kit's llama-server in the foreground, to try the package from a shell.

It provisions llama-server (the first run compiles llama.cpp) and a scripted tiny model of the kind asked
for, or serves your own GGUF, prints the URL and the variables to export, and runs until Ctrl-C or SIGTERM.
The server is stopped with its whole process group on the way out; if this process is killed outright, the
launcher's watchdog stops it (``engine_clients/testing/_process.py``), so no server outlives the command.
"""

from __future__ import annotations

import argparse
import signal
import time
from types import FrameType
from typing import Any

KINDS = ("chat", "thinking", "vision", "embed", "rerank")
# the llama-server flags each kind needs when serving your own GGUF (--model)
KIND_FLAGS = {
    "chat": [],
    "thinking": ["--reasoning-format", "deepseek"],
    "vision": [],  # pass --mmproj FILE after --
    "embed": ["--embedding", "--pooling", "mean", "--kv-unified"],
    "rerank": ["--rerank"],
}

EPILOG = """\
kinds (scripted tiny models, built on first use):
  chat      answers " Hello world.", makes schema-valid tool calls, fills JSON schemas (--jinja)
  thinking  the same with a <think> chat template and --reasoning-format deepseek
  vision    the chat model with a projector (--mmproj): images add 16 prompt tokens
  embed     --embedding --pooling mean: bag-of-words vectors
  rerank    --rerank: scores grow with shared keywords

Arguments after -- go to llama-server, e.g.: engine-clients serve --model my.gguf -- --mmproj proj.gguf"""


SUMMARY = "start a local llama-server in the foreground (scripted tiny model or your GGUF)"


def add_arguments(serve: argparse.ArgumentParser) -> None:
    serve.add_argument("--kind", choices=KINDS, default="chat", help="which scripted model (default: chat)")
    serve.add_argument("--model", help="serve this GGUF file instead of a scripted model")
    serve.add_argument("--api-key", default=None, help="require this API key (llama-server --api-key)")
    serve.add_argument("--parallel", type=int, default=4, help="slots (default 4)")
    serve.add_argument(
        "--ctx-per-slot", type=int, default=8192, help="context tokens per request (default 8192)"
    )
    serve.add_argument("llama_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def _start(args: argparse.Namespace) -> Any:
    from .. import testing

    extra = [a for a in args.llama_args if a != "--"]
    if args.api_key:
        extra += ["--api-key", args.api_key]
    if args.model:
        return testing.start_llama_server(
            args.model,
            parallel=args.parallel,
            ctx_per_slot=args.ctx_per_slot,
            extra_args=[*KIND_FLAGS[args.kind], *extra],
        )
    if args.kind in ("chat", "thinking"):
        thinking = args.kind == "thinking"
        return testing.start_llama_server(
            parallel=args.parallel,
            ctx_per_slot=args.ctx_per_slot,
            thinking=thinking,
            reasoning_format="deepseek" if thinking else None,
            extra_args=extra,
        )
    start = {
        "vision": testing.start_llama_vision_server,
        "embed": testing.start_llama_embed_server,
        "rerank": testing.start_llama_rerank_server,
    }[args.kind]
    return start(extra_args=extra)


class _Stop(Exception):
    """SIGTERM, turned into an exception so the server is stopped on the way out."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def run(args: argparse.Namespace) -> int:
    from ..testing import ensure_llama_server

    print("provisioning llama-server (the first run compiles llama.cpp: ~7-12 min on 2 cores)...", flush=True)
    ensure_llama_server()
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        with _start(args) as server:
            what = args.model or f"the scripted {args.kind} model"
            print(f"llama-server serving {what} as {server.model!r}", flush=True)
            print(f"  listening on {server.base_url} (pid {server.process.pid}, log {server.log_path})")
            print(f"  export LLAMACPP_BASE_URL={server.base_url}")
            if args.api_key:
                print(f"  export LLAMACPP_API_KEY={args.api_key}")
            print("  try: engine-clients doctor    (Ctrl-C stops the server)", flush=True)
            while server.is_running():
                time.sleep(0.5)
            print(f"llama-server exited with code {server.process.returncode}:\n{server.log_tail(20)}")
            return 1
    except (KeyboardInterrupt, _Stop):
        print("\nstopped", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
