"""vLLM's OpenAI-compatible server: the shared codec plus vLLM's sampling extras, ``structured_outputs``
(never the ``guided_*`` fields, which vLLM ≥ 0.12 silently ignores), ``/version`` and ``/tokenize``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from typing import ClassVar

from .._requests import GenerateRequest
from ..errors import InvalidRequestError
from ..types import EngineInfo
from ..types import Grammar
from ..types import JsonObject
from ..types import JsonSchema
from ..types import Regex
from ..types import ResponseFormat
from ..types import Timings
from ..types import TokenInfo
from .base import HttpRequest
from .base import _float
from .base import first_int
from .base import same_name
from .embeddings import EmbeddingCodec
from .fixes import FIXES
from .openai_compat import COMMON_CHAT_PARAMS
from .openai_compat import TEMPLATE_THINKING

__all__ = ["VLLMDialect"]

_VLLM_EXTRAS = {
    **same_name(
        "top_k min_p repetition_penalty min_tokens ignore_eos structured_outputs parallel_tool_calls"
    ),
}

_CTX_PATTERNS = [
    # vLLM 0.32 (seen here): "This model's maximum context length is 1024 tokens. However, your prompt
    #  contains at least 1025 input tokens, which exceeds this limit even without any output tokens."
    (
        re.compile(
            r"maximum context length is (\d+) tokens\. However, your prompt contains (?:at least )?(\d+)"
        ),
        "lp",
    ),
    # "This model's maximum context length is 1024 tokens. However, you requested 2000 tokens (1990 in
    #  the messages..."
    (
        re.compile(
            r"maximum context length is (\d+) tokens.*?requested (\d+) tokens(?: \((\d+) in the)?", re.S
        ),
        "lrp",
    ),
    # "'max_tokens' ... is too large: 10. This model's maximum context length is 1024 tokens and your
    #  request has 1020 input tokens"
    (
        re.compile(r"maximum context length is (\d+) tokens and your request has (\d+) input tokens", re.S),
        "lp",
    ),
    # "The decoder prompt (length 1500) is longer than the maximum model length of 1024."
    (re.compile(r"prompt \(length (\d+)\) is longer than the maximum model length of (\d+)"), "pl"),
]


_MM_FIX = str(FIXES["vllm"]["images"])  # the same sentence `engine-clients doctor` prints


class VLLMDialect(EmbeddingCodec):
    engine: ClassVar[str] = "vllm"
    # pooling runner: /v1/embeddings, /v1/rerank (Jina shape); truncate_prompt_tokens -1 = the model's limit
    truncate_field: ClassVar[tuple[str, Any] | None] = ("truncate_prompt_tokens", -1)
    default_embed_batch: ClassVar[int] = 64
    # vLLM 0.32 here: a text-only model answers 400 "<model> is not a multimodal model" to an image or an
    # audio part alike (so the kind is "media"); older versions and --limit-mm-per-prompt '{"image": 0}'
    # say "At most 0 image(s) may be provided in one prompt." (vllm/entrypoints/chat_utils.py).
    unsupported_inputs: ClassVar[tuple[tuple[re.Pattern[str], str | None, str], ...]] = (
        (re.compile(r"At most 0 (image|audio|video)\(s\) may be provided", re.I), None, _MM_FIX),
        (re.compile(r"is not a multimodal model", re.I), "media", _MM_FIX),
        (re.compile(r"\b(image|audio|video) modality is not supported", re.I), None, _MM_FIX),
    )
    chat_params: ClassVar[Mapping[str, str]] = {**COMMON_CHAT_PARAMS, **_VLLM_EXTRAS}
    generate_params: ClassVar[Mapping[str, str]] = {**COMMON_CHAT_PARAMS, **_VLLM_EXTRAS}
    # ChatCompletionRequest (vllm/entrypoints/openai/chat_completion/protocol.py): history messages carry
    # ``reasoning`` (an incoming ``reasoning_content`` is renamed to it); ``enable_thinking`` in
    # ``chat_template_kwargs`` wins over what ``reasoning_effort`` implies; ``thinking_token_budget`` >= 0.
    history_reasoning_field: ClassVar[str | None] = "reasoning"
    # --enable-lora: ``--lora-modules name=path`` are models named ``name`` with ``parent`` set in /v1/models
    # (an unknown one: 404 "The model `x` does not exist", see ``adapter_error``); loading at runtime needs
    # VLLM_ALLOW_RUNTIME_LORA_UPDATING=True; both routes answer plain text on success
    load_adapter_path: ClassVar[str | None] = "/v1/load_lora_adapter"
    unload_adapter_path: ClassVar[str | None] = "/v1/unload_lora_adapter"
    reasoning_fields: ClassVar[Mapping[str, tuple[str, ...]]] = {
        **TEMPLATE_THINKING,
        "thinking_budget": ("thinking_token_budget",),
    }
    # A named tool_choice: the tool parser's adjust_request (vllm/tool_parsers/abstract_tool_parser.py)
    # constrains the output with the tool's parameters (a JSON schema; in recent versions an xgrammar
    # structural tag, with VLLM_ENFORCE_STRICT_TOOL_CALLING on by default). The structural tag pins a tool's
    # arguments only when the tool is strict (structural_tag_registry._resolve_tool_strictness): otherwise
    # any JSON fits, as the bare "a" seen on 0.32 did. So the named tool goes out strict (see apply_tools).
    constrains_named_tools: ClassVar[bool | None] = True
    strict_pins_arguments = True

    def apply_chat_format(self, body: dict[str, Any], fmt: ResponseFormat) -> None:
        if isinstance(fmt, Regex):
            body["structured_outputs"] = {"regex": fmt.pattern}
        elif isinstance(fmt, Grammar):
            body["structured_outputs"] = {"grammar": fmt.grammar}
        else:
            super().apply_chat_format(body, fmt)

    def build_generate(self, req: GenerateRequest, stream: bool) -> HttpRequest:
        # Completions take ``logprobs`` as the number of top alternatives (0 = the sampled token only).
        if req.images:  # /v1/completions takes multimodal prompts only as engine-side embeddings
            raise InvalidRequestError("images need the chat route on vLLM", engine=self.engine)
        sampling = dict(req.sampling)
        want = sampling.pop("logprobs", None)
        top = sampling.pop("top_logprobs", None)
        request = super().build_generate(
            GenerateRequest(
                req.prompt, req.response_format, sampling, req.extra_body, req.model, adapter=req.adapter
            ),
            stream,
        )
        if want or top:
            request.json["logprobs"] = int(top or 0)
        return request

    def apply_generate_format(self, body: dict[str, Any], fmt: ResponseFormat) -> None:
        if isinstance(fmt, JsonSchema):
            body["structured_outputs"] = {"json": fmt.schema}
        elif isinstance(fmt, JsonObject):
            body["structured_outputs"] = {"json_object": True}
        elif isinstance(fmt, Regex):
            body["structured_outputs"] = {"regex": fmt.pattern}
        else:
            body["structured_outputs"] = {"grammar": fmt.grammar}

    def context_limits(self, message: str, obj: Any) -> tuple[int | None, int | None] | None:
        for pattern, order in _CTX_PATTERNS:
            found = first_int(pattern, message)
            if found:
                vals = dict(zip(order, found, strict=False))
                return vals.get("p", vals.get("r")), vals.get("l")
        return None

    def info_requests(self) -> list[HttpRequest]:
        return [HttpRequest("GET", "/v1/models"), HttpRequest("GET", "/version")]

    def parse_timings(self, bodies: list[Any], headers: Mapping[str, str] | None) -> Timings:
        """vLLM started with ``--enable-per-request-metrics`` (0.32) puts ``metrics`` on answers and on a
        stream's final usage chunk: ``queue_time_ms``, ``time_to_first_token_ms`` (scheduling to first
        token: the prefill), ``generation_time_ms`` (first to last token), ``mean_itl_ms``,
        ``tokens_per_second``. Without the flag vLLM reports no timings."""
        for body in reversed(bodies):
            raw = body.get("metrics") if isinstance(body, Mapping) else None
            if isinstance(raw, Mapping):
                t = Timings(server={k: v for k, v in raw.items() if _float(v) is not None})
                ms = {k: v / 1000 for k, v in t.server.items() if k.endswith("_ms")}
                t.server_queue_time = ms.get("queue_time_ms")
                t.server_prompt_time = ms.get("time_to_first_token_ms")
                t.server_generation_time = ms.get("generation_time_ms")
                t.server_tokens_per_second = _float(raw.get("tokens_per_second"))
                return t
        return Timings()

    def parse_info(self, bodies: list[Any]) -> EngineInfo:
        info = super().parse_info(bodies[:1])
        data = bodies[0].get("data") if isinstance(bodies[0], Mapping) else None
        first = data[0] if isinstance(data, list) and data and isinstance(data[0], Mapping) else {}
        limit = first.get("max_model_len")
        if isinstance(limit, int):
            info.max_total_tokens = limit
            info.max_input_tokens = limit
            info.max_output_tokens = limit
        # /v1/models says nothing about modalities, tool parsers or reasoning parsers (server flags):
        # those stay None; structured outputs are built in (xgrammar/guidance backends).
        info.structured_output = True
        version = bodies[1].get("version") if len(bodies) > 1 and isinstance(bodies[1], Mapping) else None
        info.version = version if isinstance(version, str) else None
        info.raw["version"] = bodies[1] if len(bodies) > 1 else None
        return info

    def build_tokenize(self, text: str, add_special_tokens: bool) -> HttpRequest:
        body = {"prompt": text, "add_special_tokens": add_special_tokens, "return_token_strs": True}
        if self.model:
            body["model"] = self.model
        return HttpRequest("POST", "/tokenize", body)

    def parse_tokenize(self, body: Any) -> list[TokenInfo]:
        self.check(
            isinstance(body, Mapping) and isinstance(body.get("tokens"), list), "tokenize answer", body
        )
        strs = body.get("token_strs") or []
        return [TokenInfo(int(t), strs[i] if i < len(strs) else None) for i, t in enumerate(body["tokens"])]
