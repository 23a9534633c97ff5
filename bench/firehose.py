"""A loopback-only firehose server that replays engine-style SSE streams as fast as the socket allows.

It speaks just enough HTTP/1.1 (keep-alive, ``Content-Length`` request bodies, chunked responses) on a raw
``asyncio.Protocol``, so that the client under test is the only variable. Run it in its own process::

    python -m bench.firehose --port 0          # prints "PORT <n>" once listening on 127.0.0.1

Everything about a stream is chosen by the URL prefix, so that any client that takes a base URL can be
pointed at any stream shape without extra parameters::

    /{dialect}/{tokens}/{delay_ms}/{ttft_ms}/...route...

``dialect`` is ``vllm``, ``tgi``, ``llamacpp`` or ``sglang`` and selects the JSON shape of the chunks (as
each engine sends them); ``tokens`` is the number of content tokens; ``delay_ms`` the gap between tokens (0 =
the whole body is written at once and the kernel's socket buffers are the only limit) and ``ttft_ms`` the wait
before the first token.

A reasoning model's answer is asked for with a suffix on the dialect: ``vllm+think``, ``tgi+think``,
``llamacpp+think`` (optionally ``+think25``: the thinking's share of the tokens in percent, 50 by default).
The chat route then streams ``tokens`` events of which the first half (or that share) is thinking, sent as
each engine sends it: vLLM (with a reasoning parser) in ``delta.reasoning``, llama-server
(``--reasoning-format deepseek``) in ``delta.reasoning_content``, TGI inside ``delta.content`` between
``<think>`` and ``</think>`` (each tag one token of its own, as in Qwen3 / DeepSeek-R1 vocabularies, the
answer after a ``"\n\n"`` token).
``+thinktags`` puts the tags in the content on every dialect (an engine without a reasoning parser). The
event count is the same as without the suffix, so the two streams compare token for token. Routes other
than chat ignore the suffix. Routes (matched on the path's suffix, with or without the prefix):

* ``POST .../v1/chat/completions`` - OpenAI-compatible ``chat.completion.chunk`` events (vLLM / TGI Messages
  API / llama-server flavours), a usage chunk, ``[DONE]``;
* ``POST .../generate_stream`` - TGI's native token events, ending with ``generated_text`` + ``details``;
  on the ``sglang`` dialect ``POST .../generate`` is SGLang's native stream instead: every event carries
  the WHOLE text and ``output_ids`` so far (its default, without ``--incremental-streaming-output``), the
  last one ``meta_info.finish_reason`` as an object, then ``data: [DONE]``. Its body grows with the square
  of the token count (about 5.5 n^2 bytes), so the bench asks it for fewer tokens;
* ``POST .../completion`` - llama.cpp's native ``/completion`` events, ending with ``"stop": true``;
* ``POST .../v1/completions`` - legacy OpenAI text-completion chunks;
* ``GET .../v1/models``, ``/info``, ``/props``, ``/version``, ``/health``, ``/metrics`` - discovery.

A non-streamed POST (``"stream"`` absent or false in the JSON body) gets a single JSON answer with the same
text. Each SSE event is its own HTTP chunk, as uvicorn (vLLM), axum (TGI) and cpp-httplib (llama.cpp) send
them. Bodies are built once per shape and cached, so the server's per-request cost is a dict lookup and one
``transport.write``. Paced streams (``delay_ms`` > 0) are driven by one 1 ms ticker and a heap of due times
instead of one timer per token, which keeps a thousand concurrent paced streams cheap.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import os
import re
import signal
import socket
import sys
import time
from functools import lru_cache
from typing import Any

MODEL = "bench-model"
CREATED = 1732000000
# A recorded-looking token stream: short word pieces with leading spaces and punctuation, cycled.
WORDS = (
    " The",
    " quick",
    " brown",
    " fox",
    " jumps",
    " over",
    " the",
    " lazy",
    " dog",
    ".",
    " It",
    " was",
    " a",
    " bright",
    " cold",
    " day",
    " in",
    " April",
    ",",
    " and",
    " the",
    " clocks",
    " were",
    " striking",
    " thirteen",
    ".",
    "\n",
    " Hello",
    " world",
    "!",
)
PROMPT_TOKENS = 12
SGLANG_MAX_TOKENS = 8000  # SGLang's cumulative /generate stream: ~350 MB of events at this length
DIALECTS = ("vllm", "tgi", "llamacpp", "sglang")
THINK_MODES = ("think", "thinktags")  # the dialect suffix: the engine's own reasoning field, or <think> tags
THINK_SHARE = 50  # default percentage of a reasoning stream's tokens that are thinking
THINK_OPEN, THINK_CLOSE, THINK_GAP = "<think>", "</think>", "\n\n"
# where each engine puts server-parsed reasoning in a chat delta (and in a non-streamed message)
REASONING_FIELD = {"vllm": "reasoning", "llamacpp": "reasoning_content", "sglang": "reasoning_content"}
_THINK_RE = re.compile("(" + "|".join(sorted(THINK_MODES, key=len, reverse=True)) + r")(\d{1,2})?")


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _chunk(payload: bytes) -> bytes:
    """One HTTP/1.1 chunk."""
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def _sse(obj: Any, space: bool = True) -> bytes:
    data = obj if isinstance(obj, bytes) else _dumps(obj)
    return (b"data: " if space else b"data:") + data + b"\n\n"


def token_text(i: int) -> str:
    return WORDS[i % len(WORDS)]


def split_dialect(dialect: str) -> tuple[str, str, int]:
    """``"vllm+think25"`` -> ``("vllm", "think", 25)``; ``"tgi"`` -> ``("tgi", "", 0)``. Raises ValueError."""
    base, plus, mod = dialect.partition("+")
    if base not in DIALECTS or (plus and not mod):
        raise ValueError(dialect)
    if not mod:
        return base, "", 0
    m = _THINK_RE.fullmatch(mod)
    if m is None:
        raise ValueError(dialect)
    share = int(m.group(2)) if m.group(2) else THINK_SHARE
    if not 0 < share < 100:
        raise ValueError(dialect)
    return base, m.group(1), share


def reasoning_pieces(dialect: str, n: int) -> list[tuple[bool, str]]:
    """The ``n`` token texts of a chat answer as ``(is_server_reasoning, text)``: with no suffix all
    content; ``+think`` on vLLM / llama.cpp the first share in the engine's reasoning field; with tags (TGI's
    ``+think``, any ``+thinktags``) all content, the thinking block being ``<think>``, words, ``</think>``,
    then ``"\n\n"`` and the answer. Same count, and the same word texts at the same places, in every case."""
    base, mode, share = split_dialect(dialect)
    words = [token_text(i) for i in range(n)]
    if not mode:
        return [(False, t) for t in words]
    h = max(1, n * share // 100)
    if mode == "think" and base in REASONING_FIELD:
        return [(i < h, t) for i, t in enumerate(words)]
    if n < 4 or h < 2:
        raise ValueError(f"{dialect}: too few tokens ({n}) for a <think> block")
    words[0], words[h - 1] = THINK_OPEN, THINK_CLOSE
    if h < n:
        words[h] = THINK_GAP
    return [(False, t) for t in words]


def expected_split(dialect: str, n: int) -> tuple[str, str]:
    """``(reasoning, answer)`` a client should deliver for this stream: the reasoning field's text, or, with
    tags, the text between them without the whitespace that opens it, and the text after the close tag
    without its leading whitespace (the splitting rules of ``engine_clients.dialects.reasoning``: the
    whitespace around the open tag and right after the close tag is dropped)."""
    base, mode, _ = split_dialect(dialect)
    pieces = reasoning_pieces(dialect, n)
    if not mode:
        return "", "".join(t for _, t in pieces)
    if mode == "think" and base in REASONING_FIELD:
        return "".join(t for r, t in pieces if r), "".join(t for r, t in pieces if not r)
    text = "".join(t for _, t in pieces)
    inner, _, after = text.partition(THINK_CLOSE)
    return inner.lstrip().removeprefix(THINK_OPEN).lstrip(), after.lstrip()


# ---- event bodies, one list of SSE events per (dialect, route, tokens) ------------------------------------


def chat_events(dialect: str, n: int) -> list[bytes]:
    cid = "chatcmpl-bench0000000000000000"
    out: list[bytes] = []
    pieces = reasoning_pieces(dialect, n)
    dialect = split_dialect(dialect)[0]
    field = REASONING_FIELD.get(dialect, "")
    if dialect in ("vllm", "sglang"):  # SGLang's chat chunks are vLLM-like (protocol.py)

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": MODEL,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }

        out.append(_sse(chunk({"role": "assistant", "content": ""})))
        for thought, text in pieces:
            out.append(_sse(chunk({field: text} if thought else {"content": text})))
        out.append(_sse(chunk({}, "length")))
        out.append(
            _sse(
                {
                    "id": cid,
                    "object": "chat.completion.chunk",
                    "created": CREATED,
                    "model": MODEL,
                    "choices": [],
                    "usage": {
                        "prompt_tokens": PROMPT_TOKENS,
                        "total_tokens": PROMPT_TOKENS + n,
                        "completion_tokens": n,
                    },
                }
            )
        )
    elif dialect == "tgi":  # TGI's Messages API: role in every delta, usage null until the end, no id

        def chunk(content: str, finish: str | None = None, usage: Any = None) -> dict[str, Any]:
            return {
                "object": "chat.completion.chunk",
                "id": "",
                "created": CREATED,
                "model": MODEL,
                "system_fingerprint": "3.3.4-native",
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": content},
                        "logprobs": None,
                        "finish_reason": finish,
                    }
                ],
                "usage": usage,
            }

        for _, text in pieces:  # no reasoning parser on TGI: thinking stays in the content, in <think> tags
            out.append(_sse(chunk(text), space=False))
        out.append(_sse(chunk("", "length"), space=False))
        usage = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": n, "total_tokens": PROMPT_TOKENS + n}
        last = chunk("", None, usage)
        last["choices"] = []
        out.append(_sse(last, space=False))
    elif dialect == "llamacpp":  # llama-server: keys sorted, role only in the first delta, timings at the end

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                "choices": [{"finish_reason": finish, "index": 0, "delta": delta}],
                "created": CREATED,
                "id": cid,
                "model": MODEL,
                "system_fingerprint": "b6000-bench",
                "object": "chat.completion.chunk",
            }

        out.append(_sse(chunk({"role": "assistant", "content": None})))
        for thought, text in pieces:
            out.append(_sse(chunk({field: text} if thought else {"content": text})))
        last = chunk({}, "length")
        last["usage"] = {
            "completion_tokens": n,
            "prompt_tokens": PROMPT_TOKENS,
            "total_tokens": PROMPT_TOKENS + n,
        }
        last["timings"] = {"prompt_n": PROMPT_TOKENS, "prompt_ms": 1.0, "predicted_n": n, "predicted_ms": 1.0}
        out.append(_sse(last))
    else:
        raise ValueError(dialect)
    out.append(_sse(b"[DONE]", space=dialect != "tgi"))
    return out


def completions_events(n: int) -> list[bytes]:
    def chunk(text: str, finish: str | None = None) -> dict[str, Any]:
        return {
            "id": "cmpl-bench",
            "object": "text_completion",
            "created": CREATED,
            "model": MODEL,
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}],
        }

    out = [_sse(chunk(token_text(i))) for i in range(n)]
    out.append(_sse(chunk("", "length")))
    out.append(_sse(b"[DONE]"))
    return out


def generate_stream_events(n: int) -> list[bytes]:
    """TGI ``/generate_stream``: ``data:`` without a space, the last event carries the full text."""
    out = []
    for i in range(n):
        obj: dict[str, Any] = {
            "index": i + 1,
            "token": {"id": 1000 + i % 30000, "text": token_text(i), "logprob": -0.25, "special": False},
            "generated_text": None,
            "details": None,
            "top_tokens": None,
        }
        if i == n - 1:
            obj["generated_text"] = "".join(token_text(j) for j in range(n))
            obj["details"] = {
                "finish_reason": "length",
                "generated_tokens": n,
                "input_length": PROMPT_TOKENS,
                "seed": None,
            }
        out.append(_sse(obj, space=False))
    return out


def completion_events(n: int) -> list[bytes]:
    """llama.cpp native ``/completion``: ``"stop": false`` partials, then a final ``"stop": true`` object."""
    out = []
    for i in range(n):
        out.append(
            _sse(
                {
                    "index": 0,
                    "content": token_text(i),
                    "tokens": [1000 + i % 30000],
                    "stop": False,
                    "id_slot": 0,
                    "tokens_predicted": i + 1,
                    "tokens_evaluated": PROMPT_TOKENS,
                }
            )
        )
    out.append(
        _sse(
            {
                "index": 0,
                "content": "",
                "tokens": [],
                "id_slot": 0,
                "stop": True,
                "model": MODEL,
                "tokens_predicted": n,
                "tokens_evaluated": PROMPT_TOKENS,
                "stop_type": "limit",
                "stopping_word": "",
                "tokens_cached": 0,
                "timings": {"prompt_n": PROMPT_TOKENS, "predicted_n": n},
            }
        )
    )
    return out


def sglang_generate_events(n: int) -> list[bytes]:
    """SGLang ``/generate`` (sglang 0.5.23 ``tokenizer_manager.py``): cumulative ``text`` and ``output_ids``
    in every event, ``meta_info`` with running counts, ``finish_reason`` and ``e2e_latency`` at the end."""
    if n > SGLANG_MAX_TOKENS:
        raise ValueError(f"a cumulative stream of {n} tokens is about {5.5 * n * n / 1e9:.1f} GB")
    out, text, ids = [], "", ""
    for i in range(n):
        text += token_text(i)
        ids += ("," if i else "") + str(1000 + i % 30000)
        done = i == n - 1
        meta = {
            "id": "bench0000000000000000000000000000",
            "finish_reason": {"type": "length", "length": n} if done else None,
            "prompt_tokens": PROMPT_TOKENS,
            "weight_version": "default",
            "total_retractions": 0,
            "reasoning_tokens": 0,
            "completion_tokens": i + 1,
            "cached_tokens": 0,
        }
        if done:
            meta["e2e_latency"] = 0.5
        event = b'{"text":%s,"output_ids":[%s],"meta_info":%s}' % (_dumps(text), ids.encode(), _dumps(meta))
        out.append(_sse(event))
    out.append(_sse(b"[DONE]"))
    return out


@lru_cache(maxsize=64)
def stream_events(dialect: str, route: str, n: int) -> tuple[bytes, ...]:
    """The HTTP chunks (one per SSE event) of a streamed answer, without the terminating chunk."""
    if route == "chat":
        events = chat_events(dialect, n)
    elif split_dialect(dialect)[1]:  # the reasoning suffix is for the chat route only
        return stream_events(split_dialect(dialect)[0], route, n)
    elif route == "completions":
        events = completions_events(n)
    elif route == "generate_stream":
        events = sglang_generate_events(n) if dialect == "sglang" else generate_stream_events(n)
    elif route == "completion":
        events = completion_events(n)
    else:
        raise ValueError(route)
    return tuple(_chunk(e) for e in events)


FRAMING = {"mode": "event"}  # "event": one HTTP chunk per SSE event (as engines send); "coalesced": 64 KiB


@lru_cache(maxsize=64)
def stream_body(dialect: str, route: str, n: int) -> bytes:
    if FRAMING["mode"] == "coalesced":
        raw = b"".join(_unchunk(c) for c in stream_events(dialect, route, n))
        step = 1 << 16
        return b"".join(_chunk(raw[i : i + step]) for i in range(0, len(raw), step)) + b"0\r\n\r\n"
    return b"".join(stream_events(dialect, route, n)) + b"0\r\n\r\n"


def _unchunk(c: bytes) -> bytes:
    return c[c.index(b"\r\n") + 2 : -2]


def full_answer(dialect: str, route: str, n: int) -> bytes:
    usage = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": n, "total_tokens": PROMPT_TOKENS + n}
    if route == "chat":
        pieces = reasoning_pieces(dialect, n)
        message = {"role": "assistant", "content": "".join(t for r, t in pieces if not r)}
        if any(r for r, _ in pieces):
            message[REASONING_FIELD[split_dialect(dialect)[0]]] = "".join(t for r, t in pieces if r)
        return _dumps(
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion",
                "created": CREATED,
                "model": MODEL,
                "choices": [{"index": 0, "message": message, "finish_reason": "length"}],
                "usage": usage,
            }
        )
    text = "".join(token_text(i) for i in range(n))
    if route == "completions":
        return _dumps(
            {
                "id": "cmpl-bench",
                "object": "text_completion",
                "created": CREATED,
                "model": MODEL,
                "choices": [{"index": 0, "text": text, "finish_reason": "length"}],
                "usage": usage,
            }
        )
    if route == "generate_stream" and split_dialect(dialect)[0] == "sglang":
        finish = {"type": "length", "length": n}
        meta = {"id": "b", "finish_reason": finish, "prompt_tokens": PROMPT_TOKENS, "completion_tokens": n}
        return _dumps({"text": text, "output_ids": [1000 + i % 30000 for i in range(n)], "meta_info": meta})
    if route == "generate_stream":  # POST /generate
        return _dumps(
            {
                "generated_text": text,
                "details": {"finish_reason": "length", "generated_tokens": n, "prefill": [], "tokens": []},
            }
        )
    return _dumps(  # /completion
        {
            "content": text,
            "stop": True,
            "stop_type": "limit",
            "model": MODEL,
            "tokens_predicted": n,
            "tokens_evaluated": PROMPT_TOKENS,
        }
    )


DISCOVERY: dict[str, Any] = {
    "/v1/models": {
        "object": "list",
        "data": [
            {
                "id": MODEL,
                "object": "model",
                "created": CREATED,
                "owned_by": "bench",
                "root": MODEL,
                "max_model_len": 1_000_000,
            }
        ],
    },
    "/info": {
        "model_id": MODEL,
        "model_sha": None,
        "model_pipeline_tag": "text-generation",
        "max_concurrent_requests": 100_000,
        "max_input_tokens": 1_000_000,
        "max_total_tokens": 2_000_000,
        "version": "3.3.4",
        "router": "text-generation-router",
    },
    "/props": {
        "default_generation_settings": {"n_ctx": 1_000_000, "model": MODEL},
        "total_slots": 1024,
        "model_path": f"/models/{MODEL}.gguf",
        "chat_template": "",
        "build_info": "b6000-bench",
    },
    "/version": {"version": "0.11.0"},
    "/health": {"status": "ok"},
}
DISCOVERY["/v1/models"]["models"] = [{"name": MODEL, "model": MODEL}]  # llama-server lists both shapes
DISCOVERY["/models"] = DISCOVERY["/v1/models"]
DISCOVERY["/metrics"] = ""
_DISCOVERY_BODIES = {k: (v if isinstance(v, str) else json.dumps(v)).encode() for k, v in DISCOVERY.items()}


# ---- config parsing ---------------------------------------------------------------------------------------


def parse_path(path: str) -> tuple[str, int, float, float, str]:
    """-> (dialect, tokens, delay_s, ttft_s, route suffix)."""
    path = path.split("?", 1)[0]
    parts = path.split("/")
    dialect, tokens, delay, ttft = "vllm", 64, 0.0, 0.0
    if len(parts) > 1 and _is_dialect(parts[1]):
        dialect = parts[1]
        rest = parts[2:]
        nums: list[str] = []
        while rest and len(nums) < 3 and _is_num(rest[0]):
            nums.append(rest.pop(0))
        if nums:
            tokens = int(float(nums[0]))
        if len(nums) > 1:
            delay = float(nums[1]) / 1000.0
        if len(nums) > 2:
            ttft = float(nums[2]) / 1000.0
        suffix = "/" + "/".join(rest)
    else:
        suffix = path
    return dialect, tokens, delay, ttft, suffix.rstrip("/") or "/"


def _is_dialect(s: str) -> bool:
    try:
        split_dialect(s)
    except ValueError:
        return False
    return True


def _is_num(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def route_of(suffix: str) -> str | None:
    if suffix.endswith("/chat/completions"):
        return "chat"
    if suffix.endswith("/v1/completions") or suffix == "/completions":
        return "completions"
    if suffix.endswith("/generate_stream") or suffix.endswith("/generate"):
        return "generate_stream"
    if suffix.endswith("/completion"):
        return "completion"
    return None


# ---- the server -------------------------------------------------------------------------------------------

_HEAD_SSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\nconnection: keep-alive\r\n\r\n"
)


def _head(status: int, ctype: bytes, length: int) -> bytes:
    reason = {200: b"OK", 400: b"Bad Request", 404: b"Not Found"}.get(status, b"Error")
    return b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\nconnection: keep-alive\r\n\r\n" % (
        status,
        reason,
        ctype,
        length,
    )


class Pacer:
    """Drives paced streams: one heap of (due time, seq, stream) and a 1 ms ticker, not a timer per token."""

    TICK = 0.001

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.heap: list[tuple[float, int, PacedStream]] = []
        self.seq = 0
        self.handle: asyncio.TimerHandle | None = None

    def add(self, stream: PacedStream, due: float) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (due, self.seq, stream))
        if self.handle is None:
            self.handle = self.loop.call_at(max(due, self.loop.time()), self.tick)

    def tick(self) -> None:
        self.handle = None
        now = self.loop.time()
        heap = self.heap
        while heap and heap[0][0] <= now:
            _, _, s = heapq.heappop(heap)
            nxt = s.step(now)
            if nxt is not None:
                self.seq += 1
                heapq.heappush(heap, (nxt, self.seq, s))
        if heap:
            self.handle = self.loop.call_at(max(heap[0][0], now + self.TICK), self.tick)


class PacedStream:
    __slots__ = ("delay", "events", "i", "proto", "t0")

    def __init__(self, proto: FirehoseProtocol, events: tuple[bytes, ...], delay: float, t0: float) -> None:
        self.proto = proto
        self.events = events
        self.delay = delay
        self.i = 0
        self.t0 = t0  # due time of the first event

    def step(self, now: float) -> float | None:
        """Write every event due by ``now``; the next due time, or None when finished."""
        if self.proto.closed:
            return None
        events, n = self.events, len(self.events)
        # events due: first at t0, then one per delay
        due_count = min(n, int((now - self.t0) / self.delay) + 1) if self.delay > 0 else n
        if due_count <= self.i:
            due_count = self.i + 1
        out = b"".join(events[self.i : due_count])
        self.i = due_count
        if self.i >= n:
            self.proto.write(out + b"0\r\n\r\n")
            self.proto.stream_done()
            return None
        self.proto.write(out)
        return self.t0 + self.i * self.delay


class FirehoseProtocol(asyncio.Protocol):
    server: FirehoseServer

    def __init__(self, server: FirehoseServer) -> None:
        self.server = server
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.busy = False  # a streamed answer is being written; later pipelined requests wait

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections -= 1

    def write(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self.process()

    def stream_done(self) -> None:
        self.busy = False
        self.server.streams_done += 1
        if self.buf:
            self.process()

    def process(self) -> None:
        while not self.busy:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > 1 << 20:
                    self.reply(400, b'{"error":"header too large"}')
                    self.transport.close()  # type: ignore[union-attr]
                return
            head = self.buf[:end].decode("latin-1")
            lines = head.split("\r\n")
            try:
                method, target, _ = lines[0].split(" ", 2)
            except ValueError:
                self.reply(400, b'{"error":"bad request line"}')
                self.transport.close()  # type: ignore[union-attr]
                return
            length = 0
            chunked = False
            for line in lines[1:]:
                name, _, value = line.partition(":")
                lname = name.strip().lower()
                if lname == "content-length":
                    length = int(value.strip())
                elif lname == "transfer-encoding" and "chunked" in value.lower():
                    chunked = True
            body_start = end + 4
            if chunked:  # rare (no client here sends it); decode in one go when complete
                term = self.buf.find(b"\r\n0\r\n\r\n", body_start - 2)
                if term < 0:
                    return
                raw, rest = self.buf[body_start : term + 2], self.buf[term + 7 :]
                body = _dechunk(raw)
            else:
                if len(self.buf) < body_start + length:
                    return
                body, rest = self.buf[body_start : body_start + length], self.buf[body_start + length :]
            self.buf = rest
            self.handle(method, target, body)

    def reply(self, status: int, body: bytes, ctype: bytes = b"application/json") -> None:
        self.write(_head(status, ctype, len(body)) + body)

    def handle(self, method: str, target: str, body: bytes) -> None:
        dialect, tokens, delay, ttft, suffix = parse_path(target)
        self.server.requests += 1
        if suffix == "/__stats":  # the bench reads the server's own CPU time to show it is not the bottleneck
            t = os.times()
            stats = {
                "cpu_s": t.user + t.system,
                "connections": self.server.connections,
                "requests": self.server.requests,
                "streams_done": self.server.streams_done,
            }
            self.reply(200, _dumps(stats))
            return
        if method == "GET" or method == "HEAD":
            key = suffix if suffix in _DISCOVERY_BODIES else None
            if key is None:
                for k in _DISCOVERY_BODIES:
                    if suffix.endswith(k):
                        key = k
                        break
            if key is None:
                self.reply(404, b'{"error":"not found"}')
            else:
                ctype = b"text/plain" if key == "/metrics" else b"application/json"
                self.reply(200, _DISCOVERY_BODIES[key], ctype)
            return
        route = route_of(suffix)
        if route is None:
            if suffix.endswith("/tokenize"):
                self.reply(200, b'{"tokens":[1,2,3]}')
            else:
                self.reply(404, b'{"error":"not found"}')
            return
        try:
            req = json.loads(body) if body else {}
        except ValueError:
            self.reply(400, b'{"error":"invalid json"}')
            return
        stream = bool(req.get("stream")) or suffix.endswith("/generate_stream")
        try:
            if not stream:
                self.reply(200, full_answer(dialect, route, tokens))
                return
            stream_events(dialect, route, tokens)  # cached; a shape it cannot build is refused here
        except ValueError as exc:
            self.reply(400, _dumps({"error": f"cannot build this stream: {exc}"}))
            return
        self.busy = True
        loop = self.server.loop
        if delay <= 0:
            data = _HEAD_SSE + stream_body(dialect, route, tokens)
            if ttft > 0:
                self.write(_HEAD_SSE)  # headers now, as engines do, tokens after the TTFT
                loop.call_later(ttft, self._finish_burst, data[len(_HEAD_SSE) :])
            else:
                self.write(data)
                self.stream_done()
            return
        self.write(_HEAD_SSE)
        events = stream_events(dialect, route, tokens)
        t0 = loop.time() + ttft
        self.server.pacer.add(PacedStream(self, events, delay, t0), t0)

    def _finish_burst(self, data: bytes) -> None:
        self.write(data)
        self.stream_done()


def _dechunk(raw: bytes) -> bytes:
    out, i = [], 0
    while i < len(raw):
        j = raw.find(b"\r\n", i)
        size = int(raw[i:j].split(b";")[0], 16)
        if size == 0:
            break
        out.append(raw[j + 2 : j + 2 + size])
        i = j + 2 + size + 2
    return b"".join(out)


class FirehoseServer:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pacer = Pacer(loop)
        self.connections = 0
        self.requests = 0
        self.streams_done = 0

    def protocol(self) -> FirehoseProtocol:
        return FirehoseProtocol(self)


async def serve(host: str, port: int, ready: Any = None) -> None:
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("the firehose only listens on loopback")
    loop = asyncio.get_running_loop()
    fh = FirehoseServer(loop)
    server = await loop.create_server(fh.protocol, host, port, backlog=4096, reuse_address=True)
    bound = server.sockets[0].getsockname()[1]
    for d in DIALECTS:  # warm the body cache for the common shapes
        stream_body(d, "chat", 64)
    print(f"PORT {bound}", flush=True)
    if ready is not None:
        ready(bound)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument(
        "--framing",
        choices=("event", "coalesced"),
        default="event",
        help="event: one HTTP chunk per SSE event, as engines send them (default); coalesced: 64 KiB chunks",
    )
    ap.add_argument("--parent-pid", type=int, default=0, help="exit when this process goes away")
    args = ap.parse_args(argv)
    FRAMING["mode"] = args.framing
    if args.parent_pid:
        _watch_parent(args.parent_pid)
    # the stdlib loop, always: the server stays the same whether or not the bench venv has uvloop (which
    # the "...:uvloop" client rows use), so every run's numbers compare with the committed ones
    asyncio.run(serve(args.host, args.port))


def _watch_parent(pid: int) -> None:
    import threading

    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(pid, 0)
            except OSError:
                os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
