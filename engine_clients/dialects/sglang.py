"""SGLang: the OpenAI-compatible routes (the shared codec plus SGLang's extras) and the native ``/generate``.

Read from the released ``sglang==0.5.23`` wheel (no live engine: its wheel pins CUDA); the file named
beside each rule is the source:

* chat (``srt/entrypoints/openai/protocol.py`` ``ChatCompletionRequest``): ``max_completion_tokens``
  (``max_tokens`` is deprecated there), the sampling extras ``top_k``, ``min_p``, ``min_tokens``,
  ``repetition_penalty``...; ``Regex`` and ``Grammar`` go in the top-level ``regex`` and ``ebnf`` fields, JSON
  schemas in ``response_format``; thinking on/off in ``chat_template_kwargs`` (``normalize_reasoning_inputs``
  sets both ``enable_thinking`` and ``thinking``: models read one or the other), ``reasoning_effort``; no
  thinking budget on chat (``max_thinking_tokens`` exists on ``/generate`` only, behind
  ``--enable-strict-thinking``), so ``thinking_budget`` is refused. A past turn's thinking goes back as the
  message's ``reasoning_content``. ``tool_choice`` ``"required"`` or a named tool together with an output
  constraint is refused before sending, as ``to_sampling_params`` would refuse it;
* reasoning comes back in ``reasoning_content`` when the server runs with ``--reasoning-parser``
  (``serving_chat.py``), tool calls in ``tool_calls`` with ``--tool-call-parser``;
* ``/generate`` (``srt/managers/io_struct.py`` ``GenerateReqInput``, ``srt/sampling/sampling_params.py``
  ``SamplingParams``, and the contract gate ``sglang/api/v1/api_types.py`` that answers 400 to an unknown
  ``sampling_params`` key): ``text``, ``sampling_params`` (``max_new_tokens``, ``sampling_seed``,
  ``min_new_tokens``, ..., at most one of ``json_schema`` (a JSON *string*), ``regex``, ``ebnf``), and at the
  top level ``stream``, ``return_logprob``, ``top_logprobs_num``, ``lora_path``, ``rid``. The answer and
  its stream are read in ``sglang_generate.py``;
* discovery (``srt/entrypoints/http_server.py``): ``/v1/models`` (``max_model_len``), ``/model_info``
  (parsers, modalities) and ``/server_info`` (``version``), with the older names ``/get_model_info`` and
  ``/get_server_info`` asked when those answer 404; ``/v1/tokenize``; ``/health`` (503 while starting);
* embeddings ``/v1/embeddings`` (``EmbeddingRequest``: no truncation field, so ``truncate`` is refused) and
  rerank ``/v1/rerank`` (``V1RerankReqInput``; ``serving_rerank.py`` answers a bare list sorted by score).

Cancelling needs no ``/abort_request``: SGLang aborts a request whose client went away. ``http_server.py``
gives every ``/generate`` stream a background ``create_abort_task``, and ``tokenizer_manager.py``'s
``generate_request`` aborts the dispatched request when its generator is closed (``except BaseException``
→ ``_release_req_states_on_failure``) and polls ``request.is_disconnected()`` for non-streamed requests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from typing import ClassVar

from .._requests import AdapterChoice
from .._requests import ChatRequest
from .._requests import GenerateRequest
from .._requests import NamedToolChoice
from .._requests import ReasoningControls
from ..errors import InvalidRequestError
from ..types import Completion
from ..types import EngineInfo
from ..types import Grammar
from ..types import JsonObject
from ..types import JsonSchema
from ..types import Regex
from ..types import Reranking
from ..types import RerankResult
from ..types import ResponseFormat
from ..types import Timings
from ..types import TokenInfo
from ..types import Usage
from .base import HttpRequest
from .base import StreamDecoder
from .base import _guard
from .base import _int
from .base import first_int
from .base import normalize_finish
from .base import same_name
from .embeddings import EmbeddingCodec
from .embeddings import _doc_text
from .embeddings import _score
from .openai_compat import COMMON_CHAT_PARAMS
from .openai_compat import TEMPLATE_THINKING
from .sglang_generate import GenerateStreamDecoder
from .sglang_generate import abort_error
from .sglang_generate import meta_logprobs
from .sglang_generate import meta_timings
from .sglang_generate import meta_usage

__all__ = ["SGLangDialect"]

# ChatCompletionRequest's SGLang extensions (protocol.py), by the names callers pass
_CHAT_EXTRAS = {
    "max_tokens": "max_completion_tokens",
    **same_name(
        "max_completion_tokens top_k min_p min_tokens repetition_penalty stop_token_ids stop_regex "
        "ignore_eos no_stop_trim skip_special_tokens logit_bias parallel_tool_calls "
        "continue_final_message separate_reasoning stream_reasoning lora_path rid priority"
    ),
}
# /generate: caller name -> SamplingParams key (sampling_params.py; the api_types.py gate rejects others)
_SAMPLING = {
    "max_tokens": "max_new_tokens",
    "seed": "sampling_seed",
    "min_tokens": "min_new_tokens",
    "stream_interval": "stream_interval",  # an event every N tokens: fewer cumulative events
    **same_name(
        "max_new_tokens temperature top_p top_k min_p stop stop_token_ids stop_regex "
        "frequency_penalty presence_penalty repetition_penalty min_new_tokens ignore_eos "
        "skip_special_tokens spaces_between_special_tokens no_stop_trim logit_bias"
    ),
}
# /generate: caller name -> GenerateReqInput top-level field (io_struct.py)
_TOP_LEVEL = {
    "logprobs": "return_logprob",
    "top_logprobs": "top_logprobs_num",
    **same_name("lora_path rid priority session_id"),
}
_CTX = [
    # tokenizer_manager.py _validate_one_request: "The input (N tokens) is longer than the model's context
    #  length (L tokens)."
    (re.compile(r"input \((\d+) tokens\) is longer than the model's context length \((\d+) tokens\)"), "pl"),
    # "Requested token count exceeds the model's maximum context length of L tokens. You requested a total
    #  of T tokens: N tokens from the input messages and M tokens for the completion."
    (re.compile(r"maximum context length of (\d+) tokens\..*?: (\d+) tokens from the input", re.S), "lp"),
    # managers/utils.py validate_input_length: "Input length (N tokens) exceeds the maximum allowed length
    #  (L tokens)."
    (re.compile(r"Input length \((\d+) tokens\) exceeds the maximum allowed length \((\d+) tokens\)"), "pl"),
]
_MM_FIX = "serve a multimodal model (GET /model_info has_image_understanding / has_audio_understanding)"


class SGLangDialect(EmbeddingCodec):
    engine: ClassVar[str] = "sglang"
    chat_params: ClassVar[Mapping[str, str]] = {**COMMON_CHAT_PARAMS, **_CHAT_EXTRAS}
    generate_params: ClassVar[Mapping[str, str]] = {**_SAMPLING, **_TOP_LEVEL}
    history_reasoning_field: ClassVar[str | None] = "reasoning_content"
    reasoning_fields: ClassVar[Mapping[str, tuple[str, ...]]] = TEMPLATE_THINKING
    # serving_chat.py: ValueError("image input is not supported for this model") -> 400
    unsupported_inputs: ClassVar[tuple[tuple[re.Pattern[str], str | None, str], ...]] = (
        (re.compile(r"\b(image|audio|video) input is not supported", re.I), None, _MM_FIX),
    )
    # http_server.py: {lora_name, lora_path, pinned?} / {lora_name}
    load_adapter_path: ClassVar[str | None] = "/load_lora_adapter"
    unload_adapter_path: ClassVar[str | None] = "/unload_lora_adapter"
    rerank_takes_model: ClassVar[bool] = False

    def error_fields(self, obj: Any, text: str) -> tuple[str, str | None]:
        # the adapter routes answer a refusal with io_struct.py LoRAUpdateOutput, 400: {"success": false,
        # "error_message": "LoRA is not enabled. Please set `--enable-lora` to enable LoRA.", ...}
        if (
            isinstance(obj, Mapping)
            and obj.get("success") is False
            and isinstance(obj.get("error_message"), str)
        ):
            return obj["error_message"], None
        return super().error_fields(obj, text)

    # -- chat --
    def build_chat(self, req: ChatRequest, stream: bool) -> HttpRequest:
        forced = req.tool_choice == "required" or isinstance(req.tool_choice, NamedToolChoice)
        if req.tools and forced and req.response_format is not None:
            raise InvalidRequestError(
                "SGLang refuses tool_choice 'required' or a named tool together with response_format, regex"
                " or ebnf (protocol.py to_sampling_params)",
                engine=self.engine,
            )
        return super().build_chat(req, stream)

    def apply_adapter(self, body: dict[str, Any], choice: AdapterChoice | None) -> None:
        """OpenAI routes: ``model="base:adapter"`` (serving_base.py; a bare ``model="adapter"`` silently runs
        the base model), or ``lora_path`` when the base model's name is not known here."""
        if choice is None:
            return
        self.refuse_scale(choice)
        base = body.get("model")
        if isinstance(base, str) and base and base != choice.name:
            body["model"] = f"{base.split(':', 1)[0]}:{choice.name}"
        else:
            body.pop("model", None)
            body["lora_path"] = choice.name

    def apply_reasoning(self, body: dict[str, Any], ctl: ReasoningControls, extra: Mapping[str, Any]) -> None:
        super().apply_reasoning(body, ctl, extra)
        if ctl.thinking is not None:  # DeepSeek-V3 / Kimi templates read "thinking", Qwen3 "enable_thinking"
            self.set_control(body, extra, ("chat_template_kwargs", "thinking"), ctl.thinking, "thinking")

    def apply_chat_format(self, body: dict[str, Any], fmt: ResponseFormat) -> None:
        if isinstance(fmt, Regex):
            body["regex"] = fmt.pattern
        elif isinstance(fmt, Grammar):
            body["ebnf"] = fmt.grammar
        else:
            super().apply_chat_format(body, fmt)

    # -- native /generate --
    def build_generate(self, req: GenerateRequest, stream: bool) -> HttpRequest:
        if req.images:
            raise InvalidRequestError(
                "images need the chat route on SGLang (/generate wants the model's own image tokens in the"
                " text)",
                engine=self.engine,
            )
        sampling: dict[str, Any] = {}
        top: dict[str, Any] = {}
        for name, value in req.sampling.items():
            if value is None:
                continue
            if name in _SAMPLING:
                sampling[_SAMPLING[name]] = value
            elif name in _TOP_LEVEL:
                top[_TOP_LEVEL[name]] = value
            else:
                raise self.unsupported(
                    f"the sampling parameter {name!r} on /generate (supported: "
                    f"{', '.join(sorted(self.generate_params))}; pass extra_body for anything else)"
                )
        if req.response_format is not None:
            sampling.update(self.generate_format(req.response_format))
        body: dict[str, Any] = {"text": req.prompt, "sampling_params": sampling}
        if top.pop("return_logprob", None) or "top_logprobs_num" in top:
            body["return_logprob"] = True
            body["return_text_in_logprobs"] = True
        body.update(top)
        model = req.model
        if model and ":" in model:  # "base:adapter" names a LoRA adapter, as on the OpenAI routes
            body.setdefault("lora_path", model.split(":", 1)[1])
        if req.adapter is not None:  # GenerateReqInput.lora_path: the adapter's name
            self.refuse_scale(req.adapter)
            body["lora_path"] = req.adapter.name
        if stream:
            body["stream"] = True
        extra = dict(req.extra_body)
        more = extra.pop("sampling_params", None)
        if isinstance(more, Mapping):
            sampling.update(more)
        body.update(extra)
        return HttpRequest("POST", "/generate", body, stream)

    def generate_format(self, fmt: ResponseFormat) -> dict[str, str]:
        """The ``sampling_params`` constraint: ``json_schema`` is a JSON string, not an object."""
        if isinstance(fmt, JsonSchema):
            return {"json_schema": json.dumps(fmt.schema)}
        if isinstance(fmt, JsonObject):  # what serving_chat.py sends for response_format json_object
            return {"json_schema": '{"type": "object"}'}
        if isinstance(fmt, Regex):
            return {"regex": fmt.pattern}
        return {"ebnf": fmt.grammar}

    def parse_generate(self, body: Any) -> Completion:
        if isinstance(body, list) and len(body) == 1:
            body = body[0]
        self.check(isinstance(body, Mapping) and isinstance(body.get("text"), str), "/generate answer", body)
        meta = body.get("meta_info")
        meta = meta if isinstance(meta, Mapping) else {}
        finish = meta.get("finish_reason")
        kind = None
        if isinstance(finish, Mapping):
            err = abort_error(self, finish)
            if err is not None:
                raise err
            kind = finish.get("type") if isinstance(finish.get("type"), str) else None
        rid = meta.get("id")
        return Completion(
            content=body["text"],
            finish_reason=normalize_finish(kind, False),
            raw_finish_reason=kind,
            usage=meta_usage(meta) if meta else None,
            model=self.model,
            id=rid if isinstance(rid, str) and rid else None,
            logprobs=meta_logprobs(meta) or None,
            engine=self.engine,
        )

    def generate_stream_decoder(self) -> StreamDecoder:
        return GenerateStreamDecoder(self, self.model)

    def parse_timings(self, bodies: list[Any], headers: Mapping[str, str] | None) -> Timings:
        """``/generate`` answers (and a stream's final event) carry ``meta_info`` timings; the OpenAI
        routes carry none."""
        for body in reversed(bodies):
            if isinstance(body, list) and len(body) == 1:
                body = body[0]
            meta = body.get("meta_info") if isinstance(body, Mapping) else None
            if isinstance(meta, Mapping):
                return meta_timings(meta)
        return Timings()

    def context_limits(self, message: str, obj: Any) -> tuple[int | None, int | None] | None:
        for pattern, order in _CTX:
            found = first_int(pattern, message)
            if found:
                vals = dict(zip(order, found, strict=False))
                return vals.get("p"), vals.get("l")
        return None

    # -- discovery --
    def info_requests(self) -> list[HttpRequest]:
        return [
            HttpRequest("GET", "/v1/models"),
            HttpRequest("GET", "/model_info", fallback=HttpRequest("GET", "/get_model_info")),
            HttpRequest("GET", "/server_info", fallback=HttpRequest("GET", "/get_server_info")),
        ]

    def parse_info(self, bodies: list[Any]) -> EngineInfo:
        info = super().parse_info(bodies[:1])
        models = bodies[0].get("data") if isinstance(bodies[0], Mapping) else None
        first = models[0] if isinstance(models, list) and models and isinstance(models[0], Mapping) else {}
        model_info = bodies[1] if len(bodies) > 1 and isinstance(bodies[1], Mapping) else {}
        server = bodies[2] if len(bodies) > 2 and isinstance(bodies[2], Mapping) else {}
        limit = first.get("max_model_len", server.get("context_length"))
        if isinstance(limit, int) and not isinstance(limit, bool):
            info.max_total_tokens = limit
            info.max_input_tokens = limit - 1  # tokenizer_manager.py refuses input_tokens >= context_len
            info.max_output_tokens = limit - 1
        version = server.get("version")
        info.version = version if isinstance(version, str) else None
        info.model = info.model or _str(model_info.get("served_model_name") or model_info.get("model_path"))
        info.image_inputs = _bool(model_info.get("has_image_understanding"))
        info.audio_inputs = _bool(model_info.get("has_audio_understanding"))
        if model_info:
            info.tool_calling = True if model_info.get("tool_call_parser") else None
            info.reasoning = True if model_info.get("reasoning_parser") else None
        backend = server.get("grammar_backend")
        info.structured_output = backend != "none"
        info.raw.update({"model_info": bodies[1] if len(bodies) > 1 else None})
        info.raw["server_info"] = bodies[2] if len(bodies) > 2 else None
        return info

    def build_tokenize(self, text: str, add_special_tokens: bool) -> HttpRequest:
        body: dict[str, Any] = {"prompt": text, "add_special_tokens": add_special_tokens}
        if self.model:
            body["model"] = self.model
        return HttpRequest("POST", "/v1/tokenize", body)

    def parse_tokenize(self, body: Any) -> list[TokenInfo]:
        """``TokenizeResponse`` (protocol.py): ``{tokens, count, max_model_len}``: ids, no token text."""
        ok = isinstance(body, Mapping) and isinstance(body.get("tokens"), list)
        self.check(ok, "tokenize answer", body)
        return [TokenInfo(int(t)) for t in body["tokens"]]

    # -- rerank --
    def rerank_body(self, query: str, documents: list[str], top_n: int | None) -> dict[str, Any]:
        """``V1RerankReqInput`` has no ``model`` (one model per server: ``rerank_takes_model``) and no
        truncation field; the documents are not asked back (the client has them)."""
        return {**super().rerank_body(query, documents, top_n), "return_documents": False}

    @_guard
    def parse_rerank(self, body: Any) -> Reranking:
        """A bare list of ``{score, document?, index, meta_info?}``, best first (serving_rerank.py)."""
        self.check(isinstance(body, list), "rerank answer (a list)", body)
        results = [
            RerankResult(int(r["index"]), _score(r["score"]), _doc_text(r.get("document"))) for r in body
        ]
        metas = [r.get("meta_info") for r in body if isinstance(r.get("meta_info"), Mapping)]
        prompt = sum(_int(m.get("prompt_tokens")) for m in metas)
        usage = Usage(prompt, 0, prompt) if metas else None
        return Reranking(results, None, usage, self.engine)


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def _bool(v: Any) -> bool | None:
    return v if isinstance(v, bool) else None
