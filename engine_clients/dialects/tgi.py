"""Hugging Face TGI: the Messages API (OpenAI-compatible with TGI's own grammar objects) and the native
``/generate`` + ``/generate_stream`` routes.

Quirks handled here: ``response_format`` is TGI's grammar object ``{"type", "value"}`` and schemas with
``$defs`` are refused (inlined here, or refused before sending when recursive); tool definitions follow the
spec's ``arguments`` key; ``stop`` must be a list; ``/generate_stream`` reports errors as events in a 200
stream and ends with the event carrying ``generated_text`` (no ``[DONE]``); the EOS token arrives with
``special: true`` and is not text; tool streams repeat ``id`` and carry no ``finish_reason``.

Reasoning models: TGI has no reasoning parser, so thinking arrives inside ``content`` and the client's
``<think>`` splitter takes it out (before anything reads the content, so JSON after the thinking parses).
TGI's ``ChatRequest`` has no ``chat_template_kwargs``, ``reasoning_effort`` or budget field: the thinking
controls are refused before sending, and a past turn's reasoning is left out of the history (its
``Message`` has no field for it; it is never merged into the content).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from typing import ClassVar

from .._requests import ChatRequest
from .._requests import GenerateRequest
from .._sse import SSEEvent
from ..errors import EngineError
from ..errors import InvalidRequestError
from ..errors import MalformedResponseError
from ..types import Completion
from ..types import EngineInfo
from ..types import JsonSchema
from ..types import Regex
from ..types import ResponseFormat
from ..types import StreamEvent
from ..types import Timings
from ..types import TokenInfo
from ..types import Tool
from ..types import Usage
from .base import SHAPE_ERRORS
from .base import HttpRequest
from .base import StreamDecoder
from .base import _float
from .base import _int
from .base import first_int
from .base import loads
from .base import logprob_list
from .base import normalize_finish
from .base import same_name
from .base import top_list
from .fixes import FIXES
from .openai_compat import COMMON_CHAT_PARAMS
from .openai_compat import ChatStreamDecoder
from .openai_compat import OpenAICompatDialect
from .openai_compat import _maybe_json

__all__ = ["TGIDialect", "inline_schema_refs"]

_GENERATE = {
    "max_tokens": "max_new_tokens",
    "top_logprobs": "top_n_tokens",
    **same_name(
        "temperature top_p top_k seed stop repetition_penalty frequency_penalty typical_p truncate "
        "watermark decoder_input_details top_n_tokens grammar do_sample best_of return_full_text "
        "adapter_id"
    ),
}
_CTX = [
    # "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. Given: 4000 `inputs` tokens
    #  and 200 `max_new_tokens`"
    (re.compile(r"must be <= (\d+)\. Given: (\d+) `inputs` tokens"), "lp"),
    # "Input validation error: `inputs` must have less than 1024 tokens. Given: 2000"
    (re.compile(r"`inputs` must have less than (\d+) tokens\. Given: (\d+)"), "lp"),
]


def inline_schema_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """Replace local ``$ref``s by their ``$defs``/``definitions`` targets (TGI refuses ``$defs``)."""
    defs: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        if isinstance(schema.get(key), Mapping):
            defs.update({f"#/{key}/{k}": v for k, v in schema[key].items()})

    def walk(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, Mapping):
            ref = node.get("$ref")
            if isinstance(ref, str):
                if ref not in defs:
                    raise InvalidRequestError(f"TGI cannot take the schema reference {ref!r}", engine="tgi")
                if ref in seen:
                    raise InvalidRequestError(
                        f"TGI cannot take a recursive schema ({ref} refers to itself)", engine="tgi"
                    )
                merged = {**defs[ref], **{k: v for k, v in node.items() if k != "$ref"}}
                return walk(merged, (*seen, ref))
            return {k: walk(v, seen) for k, v in node.items() if k not in ("$defs", "definitions")}
        if isinstance(node, list):
            return [walk(v, seen) for v in node]
        return node

    out: dict[str, Any] = walk(schema, ())
    return out


# router/src/validation.rs: ValidationError::UnsupportedModality, 422 "{0} modality is not supported by model"
_TGI_MM_FIX = str(FIXES["tgi"]["images"])  # the same sentence `engine-clients doctor` prints
# router/src/lib.rs MessageChunk: the Messages API takes text and image_url parts only
_TGI_PARTS = ("text", "image_url")


class TGIDialect(OpenAICompatDialect):
    engine: ClassVar[str] = "tgi"
    unsupported_inputs: ClassVar[tuple[tuple[re.Pattern[str], str | None, str], ...]] = (
        (re.compile(r"\b(image|audio|video) modality is not supported", re.I), None, _TGI_MM_FIX),
    )
    chat_params: ClassVar[Mapping[str, str]] = {**COMMON_CHAT_PARAMS, "tool_prompt": "tool_prompt"}
    generate_params: ClassVar[Mapping[str, str]] = _GENERATE
    # TGI reads ``model`` as a LoRA adapter id: send it only when the caller set one per request.
    send_model: ClassVar[bool] = False
    # the router's tool grammar holds the chosen tool's arguments to its schema (tools need grammar support)
    constrains_named_tools: ClassVar[bool | None] = True

    def build_chat(self, req: ChatRequest, stream: bool) -> HttpRequest:
        if req.response_format is not None and req.tools:
            raise InvalidRequestError("TGI refuses response_format together with tools", engine=self.engine)
        request = super().build_chat(req, stream)  # an adapter goes in ``model`` (the router's adapter id)
        if req.model and req.adapter is None:
            request.json["model"] = req.model
        return request

    def encode_messages(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for m in super().encode_messages(messages):  # past reasoning left out: TGI's Message has no field
            content = m.get("content")
            for part in content if isinstance(content, list) else ():
                kind = part.get("type") if isinstance(part, Mapping) else None
                if kind not in _TGI_PARTS:
                    shown = "audio" if kind == "input_audio" else str(kind)
                    raise self.refuse_input(shown, "its Messages API (text and image_url parts only)")
            if m.get("tool_calls"):
                # TGI's message is content XOR tool_calls: text spoken before a call is dropped from history
                m = {k: v for k, v in m.items() if k != "content"}
            out.append(m)
        return out

    def encode_tool(self, tool: Tool) -> dict[str, Any]:
        fn: dict[str, Any] = {"name": tool.name, "arguments": inline_schema_refs(tool.parameters)}
        if tool.description is not None:
            fn["description"] = tool.description
        return {"type": "function", "function": fn}

    def named_tool_choice(self, name: str) -> dict[str, Any]:
        return {"function": {"name": name}}  # TGI's ToolChoice object: {"function": FunctionName}, no "type"

    def grammar(self, fmt: ResponseFormat) -> dict[str, Any]:
        if isinstance(fmt, JsonSchema):
            return {"type": "json", "value": inline_schema_refs(fmt.schema)}
        if isinstance(fmt, Regex):
            return {"type": "regex", "value": fmt.pattern}
        raise self.unsupported(
            f"{type(fmt).__name__} output constraints (TGI grammars are JSON schemas or regexes)"
        )

    def apply_chat_format(self, body: dict[str, Any], fmt: ResponseFormat) -> None:
        body["response_format"] = self.grammar(fmt)

    def parse_tool_call(self, index: int, tc: Mapping[str, Any]) -> Any:
        fn = tc.get("function") or {}
        if "arguments" not in fn and "parameters" in fn:  # TGI <= 2.0 shape
            fn = {**fn, "arguments": fn["parameters"]}
        return super().parse_tool_call(index, {**tc, "function": fn})

    def chat_stream_decoder(self, request: HttpRequest | None = None) -> StreamDecoder:
        return TGIChatStreamDecoder(self, self.model, request)

    def context_limits(self, message: str, obj: Any) -> tuple[int | None, int | None] | None:
        for pattern, _ in _CTX:
            found = first_int(pattern, message)
            if found:
                return found[1], found[0]
        return None

    # -- native /generate --
    def build_generate(self, req: GenerateRequest, stream: bool) -> HttpRequest:
        sampling = dict(req.sampling)
        sampling.pop("logprobs", None)  # token logprobs always come with details
        if sampling.get("temperature") == 0:  # TGI refuses 0; greedy decoding is what 0 means
            sampling.pop("temperature")
            sampling.setdefault("do_sample", False)
        params: dict[str, Any] = {"details": True}
        self.apply_sampling(params, sampling, self.generate_params, "/generate")
        if req.response_format is not None:
            params["grammar"] = self.grammar(req.response_format)
        if req.adapter is not None:  # an unknown adapter_id silently runs the base model (not checkable)
            self.refuse_scale(req.adapter)
            params["adapter_id"] = req.adapter.name
        params.update(req.extra_body.get("parameters", {}))
        # TGI's VLMs read images inside ``inputs`` as markdown, ``![](<http(s) or data: URL>)`` (the form its
        # Messages API renders image_url parts to); they go before the text, in order.
        inputs = "".join(f"![]({url})" for url in req.images) + req.prompt
        body: dict[str, Any] = {"inputs": inputs, "parameters": params}
        body.update({k: v for k, v in req.extra_body.items() if k != "parameters"})
        return HttpRequest("POST", "/generate_stream" if stream else "/generate", body, stream)

    def parse_generate(self, body: Any) -> Completion:
        if isinstance(body, list) and len(body) == 1:  # POST / answers a one-element list
            body = body[0]
        self.check(
            isinstance(body, Mapping) and isinstance(body.get("generated_text"), str), "/generate", body
        )
        details = body.get("details") if isinstance(body.get("details"), Mapping) else {}
        raw = details.get("finish_reason")
        tokens = details.get("tokens") or []
        prompt = len(details.get("prefill") or [])
        completion = _int(details.get("generated_tokens")) or len(tokens)
        return Completion(
            content=body["generated_text"],
            finish_reason=normalize_finish(raw, False),
            raw_finish_reason=raw,
            usage=Usage(prompt, completion, prompt + completion) if details else None,
            model=self.model,
            logprobs=logprob_list(tokens, "text") or None,
            engine=self.engine,
        )

    def generate_stream_decoder(self) -> StreamDecoder:
        return GenerateStreamDecoder(self, self.model)

    def parse_timings(self, bodies: list[Any], headers: Mapping[str, str] | None) -> Timings:
        """router/src/server.rs: non-streamed answers carry ``x-compute-time`` (seconds) and
        ``x-total-time``, ``x-validation-time``, ``x-queue-time``, ``x-inference-time``,
        ``x-time-per-token`` (whole milliseconds), ``x-prompt-tokens``, ``x-generated-tokens``; streams only
        ``x-compute-type``/``x-compute-characters``. ``/generate`` details add ``generated_tokens``, ``seed``
        and ``prefill`` (``input_length`` in streams)."""
        t = Timings()
        raw = t.server
        for name in _TGI_TIME_HEADERS if headers else ():
            value = _number(headers.get(name)) if headers is not None else None
            if value is not None:
                raw[name] = value
        for body in bodies:
            if isinstance(body, list) and len(body) == 1:
                body = body[0]
            details = body.get("details") if isinstance(body, Mapping) else None
            if isinstance(details, Mapping):
                for key in ("generated_tokens", "seed", "input_length"):
                    if isinstance(details.get(key), int):
                        raw[key] = details[key]
                if isinstance(details.get("prefill"), list):
                    raw["prefill_tokens"] = len(details["prefill"])
        ms = {k: raw[k] / 1000 for k in _TGI_MS_HEADERS if k in raw}
        t.server_queue_time = ms.get("x-queue-time")
        t.server_generation_time = ms.get("x-inference-time")
        t.server_total_time = ms.get("x-total-time", raw.get("x-compute-time"))
        generated, inference = raw.get("x-generated-tokens"), ms.get("x-inference-time")
        if generated and inference:
            t.server_tokens_per_second = generated / inference
        elif ms.get("x-time-per-token"):
            t.server_tokens_per_second = 1 / ms["x-time-per-token"]
        return t

    # -- discovery --
    def adapters_request(self, model: str | None = None) -> HttpRequest:
        raise self.unsupported("listing its adapters (/info does not name the LORA_ADAPTERS it loaded)")

    def info_requests(self) -> list[HttpRequest]:
        return [HttpRequest("GET", "/info")]

    def parse_info(self, bodies: list[Any]) -> EngineInfo:
        info = bodies[0]
        self.check(isinstance(info, Mapping), "/info answer", info)
        max_in = info.get("max_input_tokens", info.get("max_input_length"))
        max_total = info.get("max_total_tokens")
        total = max_total if isinstance(max_total, int) else None
        tag = info.get("model_pipeline_tag")
        return EngineInfo(
            engine=self.engine,
            model=info.get("model_id"),
            version=info.get("version"),
            max_input_tokens=max_in if isinstance(max_in, int) else None,
            max_total_tokens=total,
            raw=dict(info),
            # the Hub's pipeline tag: VLMs are image-text-to-text; the Messages API has no audio part
            image_inputs=tag == "image-text-to-text" if isinstance(tag, str) else None,
            audio_inputs=False,
            tool_calling=True,  # TGI's router builds tool grammars itself, whatever the template
            constrained_tool_arguments=self.constrains_named_tools,
            # grammar support can be turned off with --disable-grammar-support, which /info does not show
            structured_output=None,
            max_output_tokens=total - 1 if total else None,  # at least one prompt token
        )

    def build_tokenize(self, text: str, add_special_tokens: bool) -> HttpRequest:
        return HttpRequest("POST", "/tokenize", {"inputs": text})

    def parse_tokenize(self, body: Any) -> list[TokenInfo]:
        self.check(isinstance(body, list), "tokenize answer", body)
        return [TokenInfo(int(t["id"]), t.get("text")) for t in body if isinstance(t, Mapping)]


_TGI_MS_HEADERS = (
    "x-total-time",
    "x-validation-time",
    "x-queue-time",
    "x-inference-time",
    "x-time-per-token",
)
_TGI_TIME_HEADERS = ("x-compute-time", *_TGI_MS_HEADERS, "x-prompt-tokens", "x-generated-tokens")


def _number(value: str | None) -> float | int | None:
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        pass
    try:
        f = float(value)
    except ValueError:
        return None
    return f if f == f and f not in (float("inf"), float("-inf")) else None


class TGIChatStreamDecoder(ChatStreamDecoder):
    """TGI tool streams never carry a finish_reason; ``[DONE]`` (or the call closing) completes them."""

    def eof(self) -> list[StreamEvent]:
        # TGI < 2.2 sends no [DONE]; a tool call whose arguments parse is complete.
        if not self.done and self.tools and not self.finished and all(c.valid for c in self.tool_calls()):
            self.finished = True
        return super().eof()


class GenerateStreamDecoder(StreamDecoder):
    """``/generate_stream``: one event per token, the last with ``generated_text`` and ``details``."""

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        try:
            if event.event == "error":
                raise self.fail(self.dialect.event_error(_maybe_json(event.data)))
            obj = loads(event.data)
            if not isinstance(obj, Mapping):
                raise MalformedResponseError("unexpected /generate_stream event", body=obj)
            if obj.get("error"):
                raise self.fail(self.dialect.event_error(obj, 422))
            out: list[StreamEvent] = []
            if not self.started:
                self.start(out)
            tok = obj.get("token")
            if isinstance(tok, Mapping) and not tok.get("special"):
                text = tok.get("text")
                if isinstance(text, str) and text:
                    tid = tok.get("id")
                    top = top_list(obj, "top_tokens", "text")
                    self.token(
                        out, text, tid if isinstance(tid, int) else None, _float(tok.get("logprob")), top
                    )
            if obj.get("generated_text") is not None:
                self.tails.append(obj)
                details = obj.get("details")
                if not isinstance(details, Mapping):
                    details = {}
                raw = details.get("finish_reason")
                self.raw_finish = raw if isinstance(raw, str) else None
                p, c = _int(details.get("input_length")), _int(details.get("generated_tokens")) or self.index
                self.usage = Usage(p, c, p + c)
                self.finished = True
                out.append(self.end())
            return out
        except EngineError:
            raise
        except SHAPE_ERRORS as exc:  # a well-formed event of an unexpected shape
            raise self.fail(self.dialect.malformed(exc, data=event.data)) from None
