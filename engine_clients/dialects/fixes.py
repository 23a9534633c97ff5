"""What to change when a capability does not work on an engine: one sentence per (engine, capability), with
the section of ``docs/engines/<engine>.md`` that explains it. Pure data, no I/O.

Two readers, so they cannot disagree:

* the dialects: :class:`~engine_clients.UnsupportedInputError`'s message names the ``images`` fix, and a
  server error whose text names a missing flag (llama-server's "tools param requires --jinja flag", "does not
  support embeddings") gets ``Fix: ...`` appended (:func:`fix_for_error`, in ``Dialect.parse_error``);
* ``engine-clients doctor``, which prints the fix of each capability it finds missing (:func:`fix_for`).

Capabilities: ``auth``, ``chat``, ``tools``, ``tools_auto``, ``tool_arguments``, ``structured_output``,
``reasoning``, ``images``, ``embeddings``, ``embeddings_batch``, ``rerank``, ``tokenize``, ``timings``,
``cache``, ``context``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ERROR_FIXES", "FIXES", "Fix", "fix_for", "fix_for_error", "with_fix"]


@dataclass(frozen=True, slots=True)
class Fix:
    """What to change (a server flag or a client setting), and where the docs explain it."""

    text: str
    doc: str | None = None

    def __str__(self) -> str:
        return f"{self.text} (see {self.doc})" if self.doc else self.text


def _doc(engine: str, section: str) -> str:
    anchor = {"launch": "#1-launch-command", "troubleshooting": "#3-troubleshooting"}[section]
    return f"docs/engines/{engine}.md{anchor}"


def _fixes(engine: str, entries: dict[str, tuple[str, str]]) -> dict[str, Fix]:
    return {cap: Fix(text, _doc(engine, section)) for cap, (text, section) in entries.items()}


_MMPROJ = (
    "start llama-server with --mmproj <projector GGUF> (a multimodal projector for this model; audio needs"
    " one with an audio encoder), or use -hf with a repository that ships one"
)
_VLLM_MM = (
    "serve a model whose architecture takes this input (vLLM reads images and audio only for multimodal"
    " models), and check --limit-mm-per-prompt"
)

FIXES: dict[str, dict[str, Fix]] = {
    "llamacpp": _fixes(
        "llamacpp",
        {
            "auth": (
                "pass the key llama-server was started with (--api-key): api_key= in code, "
                "LLAMACPP_API_KEY in the environment, --api-key on the command line",
                "troubleshooting",
            ),
            "tools": (
                "start llama-server with --jinja and a chat template that handles tools (the model's own, or"
                " --chat-template-file)",
                "launch",
            ),
            "reasoning": (
                "start llama-server with --reasoning-format deepseek: the thinking then arrives apart"
                " from the answer (until then the client splits <think> out of the content)",
                "launch",
            ),
            "images": (_MMPROJ, "launch"),
            "embeddings": (
                "serve embeddings from a llama-server of their own: --embedding --pooling mean with an"
                " embedding model",
                "launch",
            ),
            "embeddings_batch": (
                "add --kv-unified: with --parallel > 1 and a KV cache per slot, llama-server pools texts of"
                " unequal length in one batch over their last chunk only",
                "launch",
            ),
            "rerank": (
                "serve reranking from a llama-server of its own: --rerank with a reranker model",
                "launch",
            ),
            "context": (
                "raise --ctx-size or lower --parallel: each request gets ctx-size / parallel tokens",
                "launch",
            ),
        },
    ),
    "vllm": _fixes(
        "vllm",
        {
            "auth": (
                "pass the key vLLM was started with (--api-key / VLLM_API_KEY): api_key= in code, "
                "VLLM_API_KEY in the environment, --api-key on the command line",
                "launch",
            ),
            "chat": (
                "this vLLM runs the pooling runner (--runner pooling): chat needs a generation model served"
                " without it",
                "launch",
            ),
            "tools_auto": (
                "start vLLM with --enable-auto-tool-choice --tool-call-parser <the model's parser> "
                "(hermes for Qwen2.5/Hermes templates)",
                "launch",
            ),
            "tool_arguments": (
                "send tools with strict=True (Tool(strict=True), or 'strict': true in the spec): vLLM"
                " constrains only strict tools' arguments to their schema",
                "launch",
            ),
            "reasoning": (
                "start vLLM with --reasoning-parser <the model's parser> (qwen3, deepseek_r1): the "
                "thinking then arrives apart from the answer (until then the client splits <think> "
                "out of the content)",
                "launch",
            ),
            "images": (_VLLM_MM, "launch"),
            "embeddings": (
                "serve an embedding model from a vLLM of its own: --runner pooling (--convert embed)",
                "launch",
            ),
            "rerank": (
                "serve a reranker or embedding model from a vLLM of its own: --runner pooling",
                "launch",
            ),
            "timings": (
                "start vLLM with --enable-per-request-metrics: the server then reports queue, prefill and"
                " decode times",
                "launch",
            ),
            "cache": (
                "start vLLM with --enable-prompt-tokens-details: cached prompt tokens are reported only then",
                "launch",
            ),
            "context": ("raise --max-model-len (memory permitting), or shorten the prompt", "launch"),
        },
    ),
    "tgi": _fixes(
        "tgi",
        {
            "auth": (
                "pass the key TGI was started with (--api-key): api_key= in code, TGI_API_KEY in the"
                " environment, --api-key on the command line",
                "troubleshooting",
            ),
            "structured_output": ("start TGI without --disable-grammar-support", "launch"),
            "images": (
                "serve a vision-language model (/info model_pipeline_tag image-text-to-text)",
                "launch",
            ),
            "embeddings": (
                "TGI serves no embeddings: run text-embeddings-inference (TEI) beside it",
                "launch",
            ),
            "rerank": (
                "TGI serves no reranking: run text-embeddings-inference (TEI) with a reranker",
                "launch",
            ),
            "context": ("raise --max-input-tokens and --max-total-tokens (memory permitting)", "launch"),
        },
    ),
    "sglang": _fixes(
        "sglang",
        {
            "auth": (
                "pass the key SGLang was started with (--api-key): api_key= in code, SGLANG_API_KEY in the"
                " environment, --api-key on the command line",
                "launch",
            ),
            "reasoning": (
                "start SGLang with --reasoning-parser <the model's parser> (qwen3, deepseek-r1): the"
                " thinking then arrives apart from the answer (until then the client splits <think> out of"
                " the content)",
                "launch",
            ),
            "cache": (
                "start SGLang with --enable-cache-report: chat answers report cached tokens only then",
                "launch",
            ),
            "context": ("raise --context-length (memory permitting), or shorten the prompt", "launch"),
        },
    ),
    "tei": {
        "auth": Fix(
            "pass the key TEI was started with (--api-key): api_key= in code, TEI_API_KEY in the environment,"
            " --api-key on the command line"
        ),
        "chat": Fix("TEI serves embeddings and reranking only: chat needs TGI, vLLM or llama-server"),
    },
}

# Server error texts that name what is missing, per engine: (pattern, capability whose fix applies).
ERROR_FIXES: dict[str, tuple[tuple[re.Pattern[str], str], ...]] = {
    "llamacpp": (
        (re.compile(r"requires --jinja", re.I), "tools"),
        (re.compile(r"does not support embeddings", re.I), "embeddings"),
        (re.compile(r"does not support reranking", re.I), "rerank"),
        (re.compile(r"\bimage input is not supported|does not support multimodal", re.I), "images"),
    ),
    "vllm": (
        (re.compile(r"requires --enable-auto-tool-choice", re.I), "tools_auto"),
        (re.compile(r"is not a multimodal model|At most 0 (?:image|audio|video)", re.I), "images"),
        (re.compile(r"does not support (?:the )?Chat Completions API", re.I), "chat"),
        (
            re.compile(r"does not support (?:the )?Embeddings API|embedding .*not supported", re.I),
            "embeddings",
        ),
    ),
    # router/src/validation.rs: a grammar sent to a TGI started with --disable-grammar-support
    "tgi": ((re.compile(r"grammar is not supported", re.I), "structured_output"),),
}


def fix_for(engine: str | None, capability: str) -> Fix | None:
    """The fix for ``capability`` on ``engine``, or None when the table has none."""
    return FIXES.get(engine or "", {}).get(capability)


def fix_for_error(engine: str | None, message: str) -> Fix | None:
    """The fix a server's error text points to (it names a missing flag), or None."""
    for pattern, capability in ERROR_FIXES.get(engine or "", ()):
        if pattern.search(message):
            return fix_for(engine, capability)
    return None


def with_fix(engine: str | None, message: str) -> str:
    """``message``, ending in ``Fix: ...`` when it names something :func:`fix_for_error` knows."""
    fix = fix_for_error(engine, message)
    if fix is None or "Fix:" in message:
        return message
    return f"{message.rstrip().rstrip('.')}. Fix: {fix}"
