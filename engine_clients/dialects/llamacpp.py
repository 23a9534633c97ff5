"""llama.cpp's llama-server: OpenAI routes for chat, the native ``/completion`` for text, ``/props``.

Quirks handled here: a named ``tool_choice`` is silently treated as ``"auto"`` by llama-server, so a named
choice is sent as only that tool with ``"required"``; ``/completion`` streams end with ``"stop": true`` and
no ``[DONE]``; errors inside streams may come as an SSE ``error:`` field (see the SSE decoder).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from typing import ClassVar

from .._requests import GenerateRequest
from .._requests import NamedToolChoice
from .._sse import SSEEvent
from ..errors import EngineError
from ..errors import InvalidRequestError
from ..errors import MalformedResponseError
from ..errors import UnsupportedInputError
from ..types import Completion
from ..types import EngineInfo
from ..types import FinishReason
from ..types import Grammar
from ..types import JsonObject
from ..types import JsonSchema
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
from .base import same_name
from .embeddings import EmbeddingCodec
from .fixes import FIXES
from .llamacpp_models import LlamaCppModelsCodec
from .openai_compat import COMMON_CHAT_PARAMS
from .openai_compat import TEMPLATE_THINKING
from .openai_compat import _maybe_json

__all__ = ["LlamaCppDialect"]

_NATIVE = {
    "repetition_penalty": "repeat_penalty",
    **same_name("top_k min_p typical_p n_probs cache_prompt id_slot grammar json_schema parallel_tool_calls"),
}
_COMPLETION = {
    **{k: v for k, v in COMMON_CHAT_PARAMS.items() if k not in ("logprobs", "top_logprobs")},
    **_NATIVE,
    "max_tokens": "n_predict",
}
# llama.cpp's stop_type on /completion
_STOP_TYPE: dict[str, FinishReason] = {"eos": "stop", "word": "stop", "limit": "length"}
_CTX = re.compile(r"request \((\d+) tokens\) exceeds the available context size \((\d+) tokens\)")
# pooled embeddings and rerank need one physical batch per input
_UBATCH = re.compile(r"input \((\d+) tokens\) is too large to process.*?current batch size: (\d+)", re.S)


_MMPROJ_FIX = str(FIXES["llamacpp"]["images"])  # the same sentence `engine-clients doctor` prints


class LlamaCppDialect(LlamaCppModelsCodec, EmbeddingCodec):
    engine: ClassVar[str] = "llamacpp"
    # embeddings: /v1/embeddings and /v1/rerank (--embedding / --rerank); no truncation field (an input over
    # the physical batch, --ubatch-size, gets 500 "input (N tokens) is too large to process ...")
    truncate_field: ClassVar[tuple[str, Any] | None] = None
    # tools/server (verified here): HTTP 500 "image input is not supported - hint: ... provide the mmproj",
    # "audio input is not supported ..."; /completion with multimodal_data: "... does not support multimodal"
    unsupported_inputs: ClassVar[tuple[tuple[re.Pattern[str], str | None, str], ...]] = (
        (re.compile(r"\b(image|audio|video) input is not supported", re.I), None, _MMPROJ_FIX),
        (re.compile(r"does not support multimodal", re.I), "media", _MMPROJ_FIX),
    )
    chat_params: ClassVar[Mapping[str, str]] = {**COMMON_CHAT_PARAMS, **_NATIVE}
    generate_params: ClassVar[Mapping[str, str]] = _COMPLETION
    # tools/server/server-common.cpp (chat params): ``chat_template_kwargs.enable_thinking`` (a JSON bool),
    # ``reasoning_effort`` ("none" turns thinking off, other values reach the template), and
    # ``thinking_budget_tokens`` (newer builds also read the alias ``reasoning_budget_tokens``; some builds
    # let a server-wide ``--reasoning-budget`` win). common/chat.cpp reads history ``reasoning_content``.
    history_reasoning_field: ClassVar[str | None] = "reasoning_content"
    reasoning_fields: ClassVar[Mapping[str, tuple[str, ...]]] = {
        **TEMPLATE_THINKING,
        "thinking_budget": ("thinking_budget_tokens",),
    }
    # common/chat.cpp builds the tool-call grammar from the tools' parameter schemas (strict or not); under
    # "required", which a named choice becomes here, it applies from the first token (verified here)
    constrains_named_tools: ClassVar[bool | None] = True

    def apply_tools(
        self, body: dict[str, Any], tools: list[Tool], choice: str | NamedToolChoice | None
    ) -> None:
        if isinstance(choice, NamedToolChoice):  # llama-server ignores named choices: force that one tool
            tools = [t for t in tools if t.name == choice.name]
            choice = "required"
        super().apply_tools(body, tools, choice)

    def apply_chat_format(self, body: dict[str, Any], fmt: ResponseFormat) -> None:
        if isinstance(fmt, Grammar):
            body["grammar"] = fmt.grammar
        else:
            super().apply_chat_format(body, fmt)

    # -- native /completion --
    def build_generate(self, req: GenerateRequest, stream: bool) -> HttpRequest:
        sampling = dict(req.sampling)
        want = sampling.pop("logprobs", None)
        top = sampling.pop("top_logprobs", None)
        body: dict[str, Any] = {"prompt": self.multimodal_prompt(req) if req.images else req.prompt}
        if req.model or self.model:  # a router routes /completion by it too; one server ignores it
            body["model"] = req.model or self.model
        self.apply_sampling(body, sampling, self.generate_params, "/completion")
        if (want or top) and "n_probs" not in body:
            body["n_probs"] = int(top or 1)
        if req.response_format is not None:
            self.apply_generate_format(body, req.response_format)
        if stream:
            body["stream"] = True
        self.apply_adapter(body, req.adapter)
        body.update(req.extra_body)
        return HttpRequest("POST", "/completion", body, stream)

    # /completion takes images as ``{"prompt_string": ..., "multimodal_data": [base64, ...]}``, one media
    # marker per item in the text. The marker is ``/props`` ``media_marker`` (random per server start in
    # current builds; the fixed ``<__media__>`` of older ones is plain text to them), read once by the client.
    def media_probe(self, images: tuple[str, ...]) -> HttpRequest | None:
        _inline_images(images)
        return HttpRequest("GET", "/props")

    def parse_media_probe(self, body: Any) -> str:
        props = body if isinstance(body, Mapping) else {}
        modalities = props.get("modalities")
        marker = props.get("media_marker")
        if not (isinstance(modalities, Mapping) and modalities.get("vision") is True):
            raise UnsupportedInputError(
                "This server cannot take image input (/props reports no vision modality): " + _MMPROJ_FIX,
                kind="image",
                engine=self.engine,
            )
        if not isinstance(marker, str) or not marker:
            raise UnsupportedInputError(
                "This llama-server reports no media_marker in /props, so /completion cannot place images;"
                " use chat, or a newer llama-server",
                kind="image",
                engine=self.engine,
            )
        return marker

    def multimodal_prompt(self, req: GenerateRequest) -> dict[str, Any]:
        data = _inline_images(req.images)
        if not req.media_marker:
            raise InvalidRequestError(
                "images on /completion need the server's media marker (read from /props by generate)",
                engine=self.engine,
            )
        return {"prompt_string": req.media_marker * len(data) + req.prompt, "multimodal_data": data}

    def apply_generate_format(self, body: dict[str, Any], fmt: ResponseFormat) -> None:
        if isinstance(fmt, JsonSchema):
            body["json_schema"] = fmt.schema
        elif isinstance(fmt, JsonObject):
            body["json_schema"] = {"type": "object"}
        elif isinstance(fmt, Grammar):
            body["grammar"] = fmt.grammar
        else:
            raise self.unsupported("regex output constraints (use a GBNF Grammar)")

    def parse_generate(self, body: Any) -> Completion:
        self.check(
            isinstance(body, Mapping) and isinstance(body.get("content"), str), "/completion answer", body
        )
        raw = body.get("stop_type")
        prompt, completion = _int(body.get("tokens_evaluated")), _int(body.get("tokens_predicted"))
        return Completion(
            content=body["content"],
            finish_reason=_STOP_TYPE.get(raw, "stop") if isinstance(raw, str) else "stop",
            raw_finish_reason=raw if isinstance(raw, str) else None,
            usage=Usage(prompt, completion, prompt + completion, cached_prompt_tokens=_cache_n(body)),
            model=body.get("model") or self.model,
            logprobs=logprob_list(body.get("completion_probabilities")),
            engine=self.engine,
        )

    def generate_stream_decoder(self) -> StreamDecoder:
        return NativeCompletionStreamDecoder(self, self.model)

    def parse_timings(self, bodies: list[Any], headers: Mapping[str, str] | None) -> Timings:
        """llama-server's ``timings`` object (non-stream answers, the last stream event): ``prompt_n``,
        ``prompt_ms``, ``predicted_n``, ``predicted_ms``, ``predicted_per_second``, ``cache_n``, ..."""
        for body in reversed(bodies):
            raw = body.get("timings") if isinstance(body, Mapping) else None
            if isinstance(raw, Mapping):
                return llamacpp_timings(raw)
        return Timings()

    def is_loading(self, message: str, etype: str | None) -> bool:
        # server.cpp answers every route 503 {"message": "Loading model", "type": "unavailable_error"} until
        # the model is in memory; router mode says the same while it swaps models in.
        return "loading model" in message.lower()

    def context_limits(self, message: str, obj: Any) -> tuple[int | None, int | None] | None:
        err = obj.get("error") if isinstance(obj, Mapping) else None
        if isinstance(err, Mapping) and (err.get("type") == "exceed_context_size_error" or "n_ctx" in err):
            p, n = err.get("n_prompt_tokens"), err.get("n_ctx")
            return (p if isinstance(p, int) else None, n if isinstance(n, int) else None)
        found = first_int(_CTX, message) or first_int(_UBATCH, message)
        if found:
            return found[0], found[1]
        if "exceeds the available context size" in message or (
            "context size" in message and "exceed" in message
        ):
            return None, None
        return None

    def info_requests(self) -> list[HttpRequest]:
        return [HttpRequest("GET", "/v1/models"), self.props_request()]

    def parse_info(self, bodies: list[Any]) -> EngineInfo:
        info = super().parse_info(bodies[:1])
        props = bodies[1] if len(bodies) > 1 and isinstance(bodies[1], Mapping) else {}
        settings = props.get("default_generation_settings")
        n_ctx = settings.get("n_ctx") if isinstance(settings, Mapping) else None
        if isinstance(n_ctx, int) and n_ctx > 0:  # per-slot context: the limit a request actually gets
            info.max_total_tokens = n_ctx
            info.max_input_tokens = n_ctx
        build = props.get("build_info")
        info.version = build if isinstance(build, str) else None
        info.raw["props"] = props
        self.capabilities(info, props)
        self.router_info(info, bodies[0], props)
        return info

    def capabilities(self, info: EngineInfo, props: Mapping[str, Any]) -> None:
        """From ``/props``: ``modalities`` (a --mmproj projector), ``chat_template_caps`` (what the Jinja
        template handles), the template itself (``<think>``) and the server's ``n_predict`` cap."""
        if not props:
            return
        modalities = props.get("modalities")
        if isinstance(modalities, Mapping):
            info.image_inputs = _opt_bool(modalities.get("vision"))
            info.audio_inputs = _opt_bool(modalities.get("audio"))
        caps = props.get("chat_template_caps")
        if isinstance(caps, Mapping):
            info.tool_calling = _opt_bool(caps.get("supports_tool_calls", caps.get("supports_tools")))
        template = props.get("chat_template")
        if isinstance(template, str) and template:
            info.reasoning = "<think>" in template
        info.structured_output = True  # json_schema / grammar on every route, built into llama-server
        settings = props.get("default_generation_settings")
        params = settings.get("params") if isinstance(settings, Mapping) else None
        n_predict = params.get("n_predict") if isinstance(params, Mapping) else None
        if isinstance(n_predict, int) and not isinstance(n_predict, bool) and n_predict > 0:
            info.max_output_tokens = n_predict
        else:
            info.max_output_tokens = info.max_total_tokens

    def build_tokenize(self, text: str, add_special_tokens: bool) -> HttpRequest:
        return HttpRequest(
            "POST", "/tokenize", {"content": text, "add_special": add_special_tokens, "with_pieces": True}
        )

    def parse_tokenize(self, body: Any) -> list[TokenInfo]:
        self.check(
            isinstance(body, Mapping) and isinstance(body.get("tokens"), list), "tokenize answer", body
        )
        out = []
        for t in body["tokens"]:
            if isinstance(t, Mapping):
                piece = t.get("piece")
                out.append(TokenInfo(int(t["id"]), piece if isinstance(piece, str) else None))
            else:
                out.append(TokenInfo(int(t)))
        return out


def _inline_images(images: tuple[str, ...]) -> list[str]:
    """The base64 payloads of ``data:`` URLs; /completion cannot fetch an http(s) URL."""
    out = []
    for url in images:
        if not url[:5].lower() == "data:":
            raise InvalidRequestError(
                f"llama-server's /completion takes inline images only, not {url[:60]!r}: pass bytes, a local"
                " path or a data URL (or use chat, where the server fetches http(s) URLs)",
                engine="llamacpp",
            )
        out.append(url.partition(",")[2])
    return out


def _cache_n(body: Mapping[str, Any]) -> int | None:
    """Prompt tokens reused from the cache on ``/completion`` (its answers have no OpenAI usage)."""
    timings = body.get("timings")
    n = timings.get("cache_n") if isinstance(timings, Mapping) else None
    return n if isinstance(n, int) and not isinstance(n, bool) else None


def llamacpp_timings(raw: Mapping[str, Any]) -> Timings:
    t = Timings(server={k: v for k, v in raw.items() if _float(v) is not None})
    prompt_ms, predicted_ms = _float(raw.get("prompt_ms")), _float(raw.get("predicted_ms"))
    t.server_prompt_time = prompt_ms / 1000 if prompt_ms is not None else None
    t.server_generation_time = predicted_ms / 1000 if predicted_ms is not None else None
    t.server_tokens_per_second = _float(raw.get("predicted_per_second"))
    t.server_cached_tokens = _cache_n({"timings": raw})
    return t


class NativeCompletionStreamDecoder(StreamDecoder):
    """``/completion`` streams: partial objects with ``"stop": false``, a final one with ``"stop": true``."""

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        try:
            if event.event == "error":
                raise self.fail(self.dialect.event_error(_maybe_json(event.data)))
            if event.data == b"[DONE]":
                return [] if self.done else [self.end()]
            obj = loads(event.data)
            if not isinstance(obj, Mapping):
                raise MalformedResponseError("unexpected /completion stream event", body=obj)
            if obj.get("error"):
                raise self.fail(self.dialect.event_error(obj))
            out: list[StreamEvent] = []
            if not self.started:
                self.start(out, obj.get("model"))
            text = obj.get("content")
            if text and isinstance(text, str):
                probs = logprob_list(obj.get("completion_probabilities"))
                if probs and len(probs) == 1:
                    self.token(out, text, probs[0].id, probs[0].logprob, probs[0].top_logprobs)
                else:
                    self.token(out, text)
            if obj.get("stop") is True:
                self.tails.append(obj)
                model = obj.get("model")
                if isinstance(model, str) and model:
                    self.model = model
                raw = obj.get("stop_type")
                self.raw_finish = raw if isinstance(raw, str) else None
                p, c = _int(obj.get("tokens_evaluated")), _int(obj.get("tokens_predicted"))
                self.usage = Usage(p, c, p + c, cached_prompt_tokens=_cache_n(obj))
                self.finished = True
                end = self.end()
                end.completion.finish_reason = _STOP_TYPE.get(self.raw_finish or "", "stop")
                out.append(end)
            return out
        except EngineError:
            raise
        except SHAPE_ERRORS as exc:  # a well-formed event of an unexpected shape
            raise self.fail(self.dialect.malformed(exc, data=event.data)) from None


def _opt_bool(v: Any) -> bool | None:
    return v if isinstance(v, bool) else None
