"""A fake SGLang server: a real HTTP server on 127.0.0.1 that answers like ``sglang==0.5.23`` (which cannot
run on CPU-only machines: its wheel pins CUDA), for tests of :class:`~engine_clients.SGLangClient` and
of everything built on it.

>>> from engine_clients import SGLangClient
>>> from engine_clients.testing.fake_sglang import start_fake_sglang
>>> with start_fake_sglang() as server:
...     print(SGLangClient(server.base_url).generate("Hi").content)
Hello world.

What it reproduces, each from the SGLang file named beside it in the code: the cumulative ``/generate``
stream (or deltas with ``incremental=True``, the server flag ``--incremental-streaming-output``), errors
inside 200 streams, the finish-reason object, an abort with a status, the bare-list rerank, ``/model_info``,
``/server_info`` (and their older names), ``/health`` (503 while ``starting``), ``/v1/models`` with
``owned_by: "sglang"``, ``GET /``, chat (streamed or not, ``reasoning_content`` with ``reasoning_parser``,
``tool_calls``), ``/v1/embeddings``, ``/v1/tokenize``, ``/abort_request``, ``/load_lora_adapter`` and
``/unload_lora_adapter`` with the loaded adapters in ``/v1/models`` (``lora=True``: ``--enable-lora``), the
API key (``api_key``), the ``/generate`` contract gate's 400 for an unknown ``sampling_params`` key, and
SGLang aborting a request whose client went away (recorded in ``disconnected``). Answers are scripted
(``_fake_sglang_answers.py``).

Bounded: request bodies over 8 MiB get 413, a held stream waits for its client at most ``hold_timeout``
seconds, threads are daemons, and the ``with`` block stops the server.
"""

from __future__ import annotations

import json
import select
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from . import _fake_sglang_answers as script

__all__ = ["FakeSGLang", "start_fake_sglang"]

MAX_BODY = 8 * 1024 * 1024
# sglang/api/v1/api_types.py _FIELDS_SamplingParams: the /generate contract gate rejects any other key
SAMPLING_FIELDS = (
    "max_new_tokens", "stop", "stop_token_ids", "stop_regex", "temperature", "top_p", "top_k", "min_p",
    "frequency_penalty", "presence_penalty", "repetition_penalty", "min_new_tokens", "n", "json_schema",
    "regex", "ebnf", "structural_tag", "ignore_eos", "skip_special_tokens", "spaces_between_special_tokens",
    "no_stop_trim", "stream_interval", "logit_bias", "sampling_seed", "custom_params", "beam_width",
    "watermark", "choice",
)  # fmt: skip
_GRAMMARS = ("json_schema", "regex", "ebnf", "structural_tag")


class FakeSGLang:
    """The server; ``base_url`` is ``http://127.0.0.1:PORT``. ``requests`` holds ``(method, path, body)``
    in arrival order, ``disconnected`` the rids of streams whose client went away before the end."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        thinking: bool = False,
        reasoning_parser: str | None = None,
        incremental: bool = False,
        cached_tokens: int = 0,
        hold_timeout: float = 10.0,
        vision: bool = False,
        lora: bool = False,
    ) -> None:
        self.api_key, self.thinking, self.reasoning_parser = api_key, thinking, reasoning_parser
        self.vision = vision  # /model_info has_image_understanding; without it images get a 400
        self.incremental, self.cached_tokens, self.hold_timeout = incremental, cached_tokens, hold_timeout
        self.starting = False  # /health answers 503 while True (http_server.py health_generate)
        self.lora = lora  # --enable-lora: /load_lora_adapter and /unload_lora_adapter work
        self.adapters: dict[str, str] = {}  # loaded adapters: name -> path (tokenizer_manager lora_registry)
        self.requests: list[tuple[str, str, Any]] = []
        self.disconnected: list[str] = []
        self.disconnect_seen = threading.Event()
        self._lock = threading.Lock()
        self._count = 0
        handler = type("Handler", (_Handler,), {"fake": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True

    def start(self) -> FakeSGLang:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)

    def __enter__(self) -> FakeSGLang:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def posts(self, path: str) -> list[Any]:
        """The JSON bodies POSTed to ``path``, in order."""
        with self._lock:
            return [b for m, p, b in self.requests if m == "POST" and p == path]

    def _record(self, method: str, path: str, body: Any) -> str:
        with self._lock:
            self.requests.append((method, path, body))
            self._count += 1
            return f"{self._count:032x}"  # tokenizer_manager.py: a uuid4 hex when the request names no rid

    def _gone(self, rid: str) -> None:
        with self._lock:
            self.disconnected.append(rid)
        self.disconnect_seen.set()


@contextmanager
def start_fake_sglang(**options: Any) -> Iterator[FakeSGLang]:
    """Run a :class:`FakeSGLang` (``options``: its keyword arguments) for the ``with`` block."""
    with FakeSGLang(**options) as server:
        yield server


class _Disconnected(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "uvicorn"
    sys_version = ""
    fake: FakeSGLang

    def setup(self) -> None:
        super().setup()  # each SSE event leaves at once, as from uvicorn (no Nagle delay on small writes)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    # -- plumbing --
    def _route(self, method: str) -> None:
        path = urlsplit(self.path).path
        size = int(self.headers.get("content-length") or 0)
        if size > MAX_BODY:
            self.close_connection = True
            return self._json(413, {"detail": "Request Entity Too Large"})
        raw = self.rfile.read(size) if size else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        rid = self.fake._record(method, path, body)
        if not self._authorized(path):  # utils/auth.py: {"error": "Unauthorized"}, 401
            return self._json(401, {"error": "Unauthorized"})
        handler = _ROUTES.get((method, path))
        if handler is None:  # FastAPI's default
            return self._json(404, {"detail": "Not Found"})
        if method == "POST" and not isinstance(body, dict):  # http_server.py validate_json_request
            return self._json(400, _error_response("Invalid JSON body", 400))
        handler(self, body, rid)

    def _authorized(self, path: str) -> bool:
        """utils/auth.py decide_request_auth: /health*, /ready, /metrics stay open; the rest needs the key."""
        key = self.fake.api_key
        if not key or path.startswith(("/health", "/ready", "/metrics")):
            return True
        return self.headers.get("authorization", "") == f"Bearer {key}"

    def _json(self, status: int, obj: Any) -> None:
        data = b"" if obj is None else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _sse(self, events: list[Any], rid: str, hold: int | None = None) -> None:
        """``data: <json>`` events, then ``data: [DONE]``, one HTTP chunk each (uvicorn's framing); after
        event number ``hold`` the stream waits for the client to go away."""
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        try:
            for i, event in enumerate(events):
                self._chunk(b"data: " + json.dumps(event).encode() + b"\n\n")
                if i == hold:
                    self._wait_for_client()
            self._chunk(b"data: [DONE]\n\n")
            self._chunk(b"")
        except (_Disconnected, BrokenPipeError, ConnectionResetError):
            # tokenizer_manager.py generate_request: the closed generator aborts the request
            self.close_connection = True
            self.fake._gone(rid)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _wait_for_client(self) -> None:
        """Hold the stream until the client closes the connection (at most ``hold_timeout`` s)."""
        readable, _, _ = select.select([self.connection], [], [], self.fake.hold_timeout)
        if readable:
            try:
                gone = self.connection.recv(1, socket.MSG_PEEK) == b""
            except OSError:
                gone = True
            if gone:
                raise _Disconnected

    # -- native routes (http_server.py) --
    def root(self, body: Any, rid: str) -> None:
        self._json(200, "SGLang is running")  # sglang_root

    def health(self, body: Any, rid: str) -> None:
        self._json(503 if self.fake.starting else 200, None)  # health_generate: an empty body

    def model_info(self, body: Any, rid: str) -> None:
        self._json(200, script.model_info(self.fake.thinking, self.fake.reasoning_parser, self.fake.vision))

    def server_info(self, body: Any, rid: str) -> None:
        self._json(200, script.server_info(self.fake.incremental, self.fake.reasoning_parser))

    def models(self, body: Any, rid: str) -> None:
        self._json(200, script.models(self.fake.adapters))

    def load_lora(self, body: Any, rid: str) -> None:
        self._json(*script.lora_update(self.fake.adapters, body, enabled=self.fake.lora, load=True))

    def unload_lora(self, body: Any, rid: str) -> None:
        self._json(*script.lora_update(self.fake.adapters, body, enabled=self.fake.lora, load=False))

    def abort(self, body: Any, rid: str) -> None:
        self._json(200, None)  # abort_request: Response(status_code=200)

    def tokenize(self, body: Any, rid: str) -> None:
        ids = script.token_ids(str(body.get("prompt") or ""))  # serving_tokenize.py TokenizeResponse
        self._json(200, {"tokens": ids, "count": len(ids), "max_model_len": script.CONTEXT_LENGTH})

    def generate(self, body: dict[str, Any], rid: str) -> None:
        gate = _contract_error(body)
        if gate is not None:  # generate_request: the api_contract.py gate answers 400 {"error": "<text>"}
            return self._json(400, {"error": gate})
        rid = str(body.get("rid") or rid)
        text, stream = str(body.get("text") or ""), bool(body.get("stream"))
        n = len(script.token_ids(text))
        if n >= script.CONTEXT_LENGTH:
            return self._fail(stream, script.context_error(n), rid, 400)
        events: list[Any] = script.generate_events(body, rid, self.fake.incremental, self.fake.cached_tokens)
        if "!error" in text:
            return self._fail(stream, "scripted failure", rid, 400, events[:1])
        if "!abort" in text:  # tokenizer_manager.py _handle_abort_finish_reason
            if not stream:
                return self._json(500, _error_response("scripted abort", 500, "500"))
            meta = {**events[0]["meta_info"], "finish_reason": _abort("scripted abort", 500)}
            events = [events[0], {"text": events[0]["text"], "output_ids": [], "meta_info": meta}]
        if not stream:
            return self._json(200, events[-1])
        self._sse(events, rid, hold=0 if "!hold" in text else None)

    def _fail(self, stream: bool, message: str, rid: str, code: int, before: list[Any] | None = None) -> None:
        """http_server.py generate_request: a ValueError is 400 ``{"error": {"message"}}`` (_create_error_
        response), or, once streaming, an event ``{"error": {message, type, code, retryable}}``."""
        if not stream:
            return self._json(code, {"error": {"message": message}})
        err = {"message": message, "type": "invalid_request_error", "code": code, "retryable": False}
        self._sse([*(before or []), {"error": err}], rid)

    # -- OpenAI-compatible routes (serving_chat.py, serving_embedding.py, serving_rerank.py) --
    def chat(self, body: dict[str, Any], rid: str) -> None:
        choice = body.get("tool_choice")
        forced = choice == "required" or isinstance(choice, dict)
        if forced and (body.get("response_format") or body.get("regex") or body.get("ebnf")):
            msg = (
                "tool_choice 'required' or a named tool cannot be combined with response_format, regex, or"
                " ebnf: the tool-call constraint and the output constraint cannot both be honored."
            )
            return self._json(400, _error_response(msg, 400))  # protocol.py to_sampling_params
        if not self.fake.vision and script.has_image(body.get("messages") or []):  # serving_chat.py
            return self._json(400, _error_response("image input is not supported for this model", 400))
        user = script.last_user_text(body.get("messages") or [])
        prompt = sum(len(script.token_ids(str(m.get("content")))) for m in body.get("messages") or [])
        if prompt >= script.CONTEXT_LENGTH:
            return self._json(400, _error_response(script.context_error(prompt), 400))
        plan = script.chat_plan(body, self.fake.thinking)
        cid, model = f"chatcmpl-{rid[-8:]}", body.get("model", "default")
        usage = script.chat_usage(prompt, plan)
        split = self.fake.reasoning_parser is not None and body.get("separate_reasoning", True)
        if plan["thought"] and not split:  # no parser: the thinking stays in the content
            plan["content"] = ["<think>", *plan["thought"], "</think>", "\n\n", *plan["content"]]
            plan["thought"] = []
        base = {"id": cid, "object": "chat.completion.chunk", "created": script.CREATED, "model": model}
        if not body.get("stream"):
            if "!error" in user:
                return self._json(400, _error_response("scripted failure", 400))
            return self._json(200, _chat_answer(base, plan, usage))
        events: list[Any] = [_chunk(base, {"role": "assistant", "content": ""})]  # the role chunk first
        if "!error" in user:  # serving_base.py create_streaming_error_response
            events.append({"error": _error_response("scripted failure", 400)})
            return self._sse(events, rid)
        events += [_chunk(base, {"reasoning_content": t}) for t in plan["thought"]]
        events += [_chunk(base, {"content": t}) for t in plan["content"]]
        if plan["call"]:
            call = {"id": "call_0", "index": 0, "type": "function", "function": plan["call"]}
            events.append(_chunk(base, {"tool_calls": [call]}))
        events.append(_chunk(base, {}, plan["finish"]))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append({**base, "choices": [], "usage": usage})
        self._sse(events, rid, hold=1 if "!hold" in user else None)  # after the first text

    def embeddings(self, body: dict[str, Any], rid: str) -> None:
        self._json(200, script.embeddings(body))

    def rerank(self, body: dict[str, Any], rid: str) -> None:
        if not str(body.get("query") or "").strip() or not body.get("documents"):
            return self._json(400, _error_response("Query cannot be empty", 400))  # _validate_request
        self._json(200, script.rerank(body))


_ROUTES = {
    ("GET", "/"): _Handler.root,
    ("GET", "/health"): _Handler.health,
    ("GET", "/health_generate"): _Handler.health,
    ("GET", "/model_info"): _Handler.model_info,
    ("GET", "/get_model_info"): _Handler.model_info,
    ("GET", "/server_info"): _Handler.server_info,
    ("GET", "/get_server_info"): _Handler.server_info,
    ("GET", "/v1/models"): _Handler.models,
    ("POST", "/abort_request"): _Handler.abort,
    ("POST", "/tokenize"): _Handler.tokenize,
    ("POST", "/v1/tokenize"): _Handler.tokenize,
    ("POST", "/generate"): _Handler.generate,
    ("POST", "/v1/chat/completions"): _Handler.chat,
    ("POST", "/v1/embeddings"): _Handler.embeddings,
    ("POST", "/v1/rerank"): _Handler.rerank,
    ("POST", "/load_lora_adapter"): _Handler.load_lora,
    ("POST", "/unload_lora_adapter"): _Handler.unload_lora,
}


def _error_response(message: str, code: int, kind: str = "BadRequestError") -> dict[str, Any]:
    """protocol.py ``ErrorResponse`` (serving_base.py ``create_error_response``)."""
    return {"object": "error", "message": message, "type": kind, "param": None, "code": code}


def _abort(message: str, status: int) -> dict[str, Any]:
    """schedule_batch.py ``FINISH_ABORT.to_json``."""
    return {"type": "abort", "message": message, "status_code": status, "err_type": "InternalServerError"}


def _contract_error(body: dict[str, Any]) -> str | None:
    """api_types.py ``decode_SamplingParams`` (serde's wording) and sampling_params.py ``verify``."""
    sp = body.get("sampling_params")
    if sp is None:
        return None
    if not isinstance(sp, dict):
        return "invalid type: sequence, expected struct SamplingParams"
    for key, value in sp.items():
        if key not in SAMPLING_FIELDS:
            listed = ", ".join(f"`{f}`" for f in SAMPLING_FIELDS)
            return f"unknown field `{key}`, expected one of {listed}"
        if key in _GRAMMARS and value is not None and not isinstance(value, str):
            return f"invalid type: {'map' if isinstance(value, dict) else 'sequence'}, expected a string"
    if sum(sp.get(k) is not None for k in _GRAMMARS) > 1:
        return "Only one of json_schema, regex, ebnf, or structural_tag can be set."
    return None


def _chunk(base: dict[str, Any], delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    """protocol.py ``DeltaMessage`` serializes ``role``, ``content``, ``reasoning_content`` even when null."""
    full = {"role": None, "content": None, "reasoning_content": None, **delta}
    choice = {"index": 0, "delta": full, "logprobs": None, "finish_reason": finish, "matched_stop": None}
    return {**base, "choices": [choice], "usage": None}


def _chat_answer(base: dict[str, Any], plan: dict[str, Any], usage: dict[str, Any]) -> dict[str, Any]:
    """protocol.py ``ChatCompletionResponse``."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(plan["content"]) or None,
        "reasoning_content": "".join(plan["thought"]) or None,
    }
    if plan["call"]:
        message["tool_calls"] = [{"id": "call_0", "index": 0, "type": "function", "function": plan["call"]}]
    choice = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": plan["finish"],
        "matched_stop": script.EOS_ID if plan["finish"] == "stop" else None,
    }
    return {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
