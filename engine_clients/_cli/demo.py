"""``engine-clients demo``: the main job on the embedded default.

With no server configured it provisions and starts a local llama-server with the scripted tiny model, then
shows a streamed chat, a tool call and a structured output through this package (and through LangChain
when ``langchain-selfhosted`` is installed: it registers an ``engine_clients.demo`` entry point).
``--url`` (or ``TGI_BASE_URL``/``VLLM_BASE_URL``/``LLAMACPP_BASE_URL``) runs the same against a real
deployment; ``--model path.gguf`` serves your own GGUF locally.

Tools are sent with ``"strict": true``, so engines that constrain tool arguments (vLLM) constrain them to
the schema; a model that still answers arguments that do not fit gets a message, not a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any

from .. import BaseClient
from .. import LlamaCppClient
from .. import TGIClient
from .. import Token
from .. import VLLMClient
from .._doctor.chat import WEATHER_TOOL as _DOCTOR_TOOL
from ..types import ToolCall

CLIENTS: dict[str, type[BaseClient]] = {"tgi": TGIClient, "vllm": VLLMClient, "llamacpp": LlamaCppClient}
ENV = {"tgi": "TGI_BASE_URL", "vllm": "VLLM_BASE_URL", "llamacpp": "LLAMACPP_BASE_URL"}

# the doctor's weather tool, strict: vLLM constrains only strict tools' arguments to the schema
WEATHER_TOOL = {**_DOCTOR_TOOL, "function": {**_DOCTOR_TOOL["function"], "strict": True}}
CITY_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
}

EPILOG = """\
Without --url it uses the first of TGI_BASE_URL, VLLM_BASE_URL, LLAMACPP_BASE_URL that is set (with
TGI_API_KEY, VLLM_API_KEY or LLAMACPP_API_KEY), else it builds and starts a local llama-server with a
scripted tiny model (the first run compiles llama.cpp: ~7-12 min on 2 cores)."""


SUMMARY = "streamed chat, a tool call and structured output against a server"


def add_arguments(demo: argparse.ArgumentParser) -> None:
    demo.add_argument("--url", help="base URL of a running TGI / vLLM / llama-server (default: *_BASE_URL)")
    demo.add_argument("--engine", choices=sorted(CLIENTS), help="engine at --url (default: llamacpp)")
    demo.add_argument(
        "--api-key",
        default=None,
        help="the server's API key (default: TGI_API_KEY / VLLM_API_KEY / LLAMACPP_API_KEY for the engine)",
    )
    demo.add_argument("--model", help="a GGUF file to serve locally instead of the scripted tiny model")
    demo.add_argument("--no-langchain", action="store_true", help="use engine_clients only")


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


@contextlib.contextmanager
def target(args: argparse.Namespace) -> Iterator[tuple[str, str, str | None]]:
    """(engine, base_url, api_key): a configured server, or a local llama-server started for the demo."""
    if args.url:
        yield args.engine or "llamacpp", args.url, args.api_key
        return
    for engine, var in ENV.items():
        if os.environ.get(var) and (args.engine in (None, engine)):
            say(f"using {engine} at ${var}={os.environ[var]}")
            yield engine, os.environ[var], args.api_key
            return
    from ..testing import ensure_llama_server
    from ..testing import start_llama_server

    say("no server configured: provisioning a local llama-server (the first run builds llama.cpp, ~7-12 min)")
    binary = ensure_llama_server()
    say(f"starting llama-server with {args.model or 'the scripted tiny model'}")
    with start_llama_server(args.model, binary=binary) as server:
        print(f"   listening on {server.base_url} (log: {server.log_path})", flush=True)
        yield "llamacpp", server.base_url, None


def describe_call(call: ToolCall, schema: dict[str, Any]) -> str:
    """``name(args)``, or why the arguments cannot be used: never an exception."""
    problem = argument_problem(call.arguments, schema, call.error)
    shown = f"{call.name}({call.raw_arguments})"
    return f"{shown}  <- not usable: {problem}" if problem else shown


def argument_problem(
    args: dict[str, Any] | None, schema: dict[str, Any], error: str | None = None
) -> str | None:
    """Why ``args`` do not fit a flat object schema (unknown, missing or wrongly typed keys), else None."""
    if args is None:
        return f"the arguments are not a JSON object ({error or 'unparsable'})"
    props = schema.get("properties", {})
    unknown = sorted(set(args) - set(props))
    missing = sorted(set(schema.get("required", ())) - set(args))
    types: dict[str, type | tuple[type, ...]] = {
        "string": str,
        "integer": int,
        "number": (int, float),
        "boolean": bool,
        "object": dict,
        "array": list,
    }
    wrong = [
        k
        for k, v in args.items()
        if k in props and not isinstance(v, types.get(props[k].get("type"), object))
    ]
    parts = [f"unknown {unknown}" if unknown else "", f"missing {missing}" if missing else ""]
    parts.append(f"wrong type for {wrong}" if wrong else "")
    found = "; ".join(p for p in parts if p)
    return f"the model's arguments do not fit the tool's schema ({found})" if found else None


def run_engine_clients(engine: str, url: str, api_key: str | None) -> None:
    with CLIENTS[engine](url, api_key=api_key) as client:
        info = client.info()
        say(
            f"engine_clients {type(client).__name__}: {info.engine} {info.version}, model {info.model}, "
            f"context {info.max_total_tokens}"
        )
        say("streamed chat")
        for event in client.chat_stream("Say hello.", max_tokens=32, temperature=0):
            if isinstance(event, Token):
                print(event.text, end="", flush=True)
        print()
        say("tool call (tool_choice='get_weather', strict)")
        result = client.chat(
            "What's the weather in Paris?",
            tools=[WEATHER_TOOL],
            tool_choice="get_weather",
            max_tokens=128,
            temperature=0,
        )
        params = WEATHER_TOOL["function"]["parameters"]
        for call in result.tool_calls:
            print(f"   {describe_call(call, params)}  finish_reason={result.finish_reason}")
        say("structured output (JSON schema)")
        result = client.chat(
            "Name a city and its population.", response_format=CITY_SCHEMA, max_tokens=64, temperature=0
        )
        try:
            print(f"   {json.loads(result.content)}")
        except ValueError:
            print(f"   not JSON (finish_reason={result.finish_reason}): {result.content[:200]!r}")


def framework_demos() -> list[Any]:
    """Demos that installed integration packages register under the ``engine_clients.demo`` entry point
    group (``langchain-selfhosted`` registers one): the core finds them without importing any integration."""
    from importlib.metadata import entry_points

    return list(entry_points(group="engine_clients.demo"))


def run(args: argparse.Namespace) -> int:
    with target(args) as (engine, url, key):
        run_engine_clients(engine, url, key)
        demos = [] if args.no_langchain else framework_demos()
        if not demos and not args.no_langchain:
            say(
                "LangChain part skipped: langchain-selfhosted is not installed "
                "(pip install -e integrations/langchain, or pip install langchain-selfhosted)"
            )
        for entry in demos:
            entry.load()(engine, url, key)
    say("done")
    return 0
