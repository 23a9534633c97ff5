"""``python -m engine_clients.testing provision [--llamacpp] [--vllm] [--router] [--ray] [--no-models]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from collections.abc import Sequence
from pathlib import Path

from .provision import ProvisionError
from .provision import cache_root
from .provision import ensure_llama_server
from .provision import ensure_vllm
from .provision import scripted_gguf
from .provision import scripted_hf_model
from .provision import timed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine_clients.testing")
    sub = parser.add_subparsers(dest="command", required=True)
    prov = sub.add_parser("provision", help="install engines, build scripted models (default: both engines)")
    prov.add_argument("--llamacpp", action="store_true", help="llama-server and the scripted GGUF")
    prov.add_argument("--vllm", action="store_true", help="CPU vLLM and the scripted HF model")
    prov.add_argument("--router", action="store_true", help="vllm-router (the router tier's venv)")
    prov.add_argument("--ray", action="store_true", help="Ray Data with this project (the Ray tier's venv)")
    prov.add_argument("--no-models", action="store_true", help="install the engines only")
    args = parser.parse_args(argv)

    both = not (args.llamacpp or args.vllm or args.router or args.ray)
    steps: list[tuple[str, Callable[[], Path]]] = []
    if both or args.llamacpp:
        steps.append(("llama-server", ensure_llama_server))
        if not args.no_models:
            steps.append(("scripted GGUF", lambda: scripted_gguf()))
    if both or args.vllm:
        steps.append(("vLLM python", ensure_vllm))
        if not args.no_models:
            steps.append(("scripted HF model", lambda: scripted_hf_model()))

    if both or args.router:
        from .router import ensure_vllm_router

        steps.append(("vllm-router", ensure_vllm_router))
    if both or args.ray:
        from .ray_env import ensure_ray

        steps.append(("Ray", ensure_ray))

    print(f"cache: {cache_root()}", file=sys.stderr)
    results: list[tuple[str, Path, float]] = []
    for label, fn in steps:
        try:
            path, seconds = timed(label, fn)
        except ProvisionError as exc:
            print(f"FAILED {label}: {exc}", file=sys.stderr)
            return 1
        results.append((label, path, seconds))
    for label, path, seconds in results:
        print(f"{label:<18} {seconds:7.1f} s  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
