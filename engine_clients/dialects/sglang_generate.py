"""SGLang's native ``POST /generate``: the answer's ``meta_info`` read into the package's types, and the
stream decoder that turns SGLang's cumulative stream text into deltas. Pure codec, no I/O.

Every shape here is read from the released ``sglang==0.5.23`` wheel:

* ``sglang/srt/entrypoints/http_server.py`` (``generate_request``): a stream is ``data: <json>`` events and a
  final ``data: [DONE]``; an error raised while streaming arrives inside the 200 stream as
  ``{"error": {"message", "type": "invalid_request_error", "code", "retryable"}}`` before ``[DONE]``;
* ``sglang/srt/managers/tokenizer_manager.py`` (``_handle_batch_output``, ``_stream_one_response``): each
  event is ``{text, output_ids, meta_info}``. Unless the server runs with ``--incremental-streaming-output``,
  ``text`` and ``output_ids`` are the WHOLE output so far, and so are the logprob lists in ``meta_info``;
  with the flag they are the new part only. The final event has ``meta_info.finish_reason`` (an object) and
  ``e2e_latency``. A request the scheduler aborts with an HTTP status ends with ``finish_reason`` ``{"type":
  "abort", "message", "status_code", "err_type"}`` (``_handle_abort_finish_reason``);
* ``sglang/srt/managers/schedule_batch.py`` (``FINISH_*.to_json``): ``{"type": "stop", "matched": <token id
  or string>}``, ``{"type": "length", "length": n}``, ``{"type": "abort", ...}``;
* ``sglang/srt/observability/req_time_stats.py`` (``convert_to_output_meta_info``): ``first_token_latency``,
  ``decode_throughput`` and wall-clock timestamps (``*_ts``), when the server collects them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

from .._sse import SSEEvent
from ..errors import EngineError
from ..errors import MalformedResponseError
from ..types import StreamEvent
from ..types import Timings
from ..types import TokenLogprob
from ..types import TopLogprob
from ..types import Usage
from .base import SHAPE_ERRORS
from .base import StreamDecoder
from .base import _float
from .base import _int
from .base import _opt_int
from .base import loads

if TYPE_CHECKING:
    from .base import Dialect

__all__ = ["GenerateStreamDecoder", "abort_error", "meta_logprobs", "meta_timings", "meta_usage"]


def meta_usage(meta: Mapping[str, Any]) -> Usage:
    """``meta_info`` token counts: ``cached_tokens`` is the prompt's prefix-cache hit, ``reasoning_tokens``
    the thinking part of the completion (counted by SGLang when a reasoning parser runs)."""
    p, c = _int(meta.get("prompt_tokens")), _int(meta.get("completion_tokens"))
    return Usage(p, c, p + c, _opt_int(meta.get("reasoning_tokens")), _opt_int(meta.get("cached_tokens")))


def meta_timings(meta: Mapping[str, Any]) -> Timings:
    """``e2e_latency`` (request received to finished, seconds) is the server's total; ``first_token_latency``
    (received to first token: queue and prefill) leaves the decode time; ``decode_throughput`` is tokens/s.
    Every numeric figure (timestamps included) is kept in ``server`` under SGLang's own name."""
    t = Timings(server={k: v for k, v in meta.items() if _is_time_key(k) and _float(v) is not None})
    total, first = _float(meta.get("e2e_latency")), _float(meta.get("first_token_latency"))
    t.server_total_time = total
    if total is not None and first is not None and total >= first:
        t.server_generation_time = total - first
    t.server_tokens_per_second = _float(meta.get("decode_throughput"))
    t.server_cached_tokens = _opt_int(meta.get("cached_tokens"))
    return t


def _is_time_key(key: str) -> bool:
    return key.endswith(("_latency", "_ts", "_throughput", "_time"))


def _entry(item: Any) -> TokenLogprob | None:
    """One ``[logprob, token_id, text]`` entry (text is null unless ``return_text_in_logprobs``)."""
    if not isinstance(item, list | tuple) or len(item) < 2:
        return None
    tid = item[1] if isinstance(item[1], int) and not isinstance(item[1], bool) else None
    text = item[2] if len(item) > 2 and isinstance(item[2], str) else ""
    return TokenLogprob(text, _float(item[0]), tid)


def meta_logprobs(meta: Mapping[str, Any], start: int = 0) -> list[TokenLogprob]:
    """``output_token_logprobs`` (with ``output_top_logprobs``) from position ``start`` on."""
    tokens = meta.get("output_token_logprobs")
    if not isinstance(tokens, list):
        return []
    tops = meta.get("output_top_logprobs")
    tops = tops if isinstance(tops, list) else []
    out = []
    for i in range(start, len(tokens)):
        entry = _entry(tokens[i])
        if entry is None:
            continue
        alts = tops[i] if i < len(tops) and isinstance(tops[i], list) else []
        entry.top_logprobs = [
            TopLogprob(e.token, e.logprob) for e in (_entry(a) for a in alts) if e is not None
        ]
        out.append(entry)
    return out


def abort_error(dialect: Dialect, finish: Mapping[str, Any]) -> EngineError | None:
    """The typed error of a ``{"type": "abort", "status_code": 4xx/5xx}`` finish (None for an abort without
    a status: ``/abort_request`` or a session's cleanup, which SGLang ends like a normal answer)."""
    status = finish.get("status_code")
    if finish.get("type") != "abort" or not isinstance(status, int) or not 400 <= status < 600:
        return None
    err = {"message": str(finish.get("message") or "Aborted"), "type": finish.get("err_type"), "code": status}
    return dialect.event_error({"error": err}, status)


class GenerateStreamDecoder(StreamDecoder):
    """``/generate`` streams. SGLang sends the whole text so far in every event (unless the server runs with
    ``--incremental-streaming-output``); the decoder remembers how many characters it has emitted and
    yields only the rest, so a stream costs O(total text) here, never a re-scan of what came before.

    Which of the two the server sends is read from the stream itself, in O(1) per event: with incremental
    output an event after the first carries fewer ``output_ids`` than ``meta_info.completion_tokens`` (the
    running count); cumulative events carry all of them."""

    def __init__(self, dialect: Dialect, model: str | None) -> None:
        super().__init__(dialect, model)
        self.sent = 0  # characters of the cumulative text already yielded
        self.logprobs_seen = 0  # entries of the cumulative logprob lists already read
        self.incremental = False

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        try:
            data = event.data
            if data == b"[DONE]":
                return [] if self.done else self.eof()
            obj = loads(data)
            if not isinstance(obj, Mapping):
                raise MalformedResponseError("unexpected /generate stream event", body=obj)
            if obj.get("error"):
                raise self.fail(self.dialect.event_error(obj, 400))
            meta = obj.get("meta_info")
            meta = meta if isinstance(meta, Mapping) else {}
            out: list[StreamEvent] = []
            if not self.started:
                self.start(out, None, meta.get("id"))
            finish = meta.get("finish_reason")
            if isinstance(finish, Mapping):
                err = abort_error(self.dialect, finish)
                if err is not None:
                    raise self.fail(err)
            if not self.incremental:
                ids, count = obj.get("output_ids"), meta.get("completion_tokens")
                self.incremental = isinstance(ids, list) and isinstance(count, int) and len(ids) < count
            text = obj.get("text")
            if isinstance(text, str) and text:
                piece = text if self.incremental else text[self.sent :]
                self.sent = len(text)
                if piece:
                    self.token(out, piece)
            self._logprobs(meta)
            if isinstance(finish, Mapping):
                kind = finish.get("type")
                self.raw_finish = kind if isinstance(kind, str) else None
                self.usage = meta_usage(meta)
                self.tails.append(obj)
                self.finished = True
                out += self.finish()
            return out
        except EngineError:
            raise
        except SHAPE_ERRORS as exc:  # a well-formed event of an unexpected shape
            raise self.fail(self.dialect.malformed(exc, data=event.data)) from None

    def _logprobs(self, meta: Mapping[str, Any]) -> None:
        tokens = meta.get("output_token_logprobs")
        if not isinstance(tokens, list):
            return
        start = 0 if self.incremental else self.logprobs_seen
        new = meta_logprobs(meta, start)
        self.logprobs_seen = len(tokens)
        if new:
            if self.logprobs is None:
                self.logprobs = []
            self.logprobs.extend(new)
