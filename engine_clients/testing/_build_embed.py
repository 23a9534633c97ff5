"""Build tiny *scripted* embedding and rerank GGUFs for llama-server (standalone script).

Runs under the llama.cpp environment's python, which has ``gguf`` and ``numpy``::

    python _build_embed.py embed OUT.gguf     # llama-server --embedding --pooling mean
    python _build_embed.py rerank OUT.gguf    # llama-server --rerank

Both are ``qwen3`` architecture models with a word-level WordPiece (``bert``) tokenizer: every word of
``WORDS`` is one token (``"\u2581paris"``), any other word falls back to single characters, text is
lowercased (the words are in ``_embed_words.py``). The weights are set by hand so that the numbers mean
something a test can check.

**Embedding model** (``embed``): one-hot token embeddings (``n_embd`` > vocabulary), attention and FFN
weights zero, so the last hidden state of every token is its (RMS-normalised) one-hot vector; [CLS] and
[SEP], which llama.cpp's WordPiece tokenizer always adds, have zero vectors. Mean pooling turns a text into
its bag of tokens, and llama-server's L2 normalisation makes the cosine similarity of two texts the cosine
of their token-count vectors: ``cos("paris weather", "weather in paris") = 2/sqrt(6)`` (0.816),
``cos("paris weather", "python code") = 0``. Retrieval by cosine has a right answer.

**Rerank model** (``rerank``): a causal two-layer cross-encoder whose score is the number of *keywords*
(the ``KEYWORDS`` of ``_embed_words.py``, not its ``STOPWORDS``) that occur twice in ``[CLS] query [SEP]
document`` - in practice the query words the document repeats - squashed into (0, 1). The prompt comes
from the GGUF's ``rerank`` chat template; llama-server reads the score with rank pooling (last token,
``cls_out`` with the labels ``yes``/``no``, softmax: the score is P(yes)), like a Qwen3-Reranker GGUF.

* Layer 1 attention (one head, RoPE switched off by a 1e6 linear RoPE scaling): token *i* attends with
  equal weight to ``[CLS]`` (an attention sink) and to every earlier copy of itself (keywords only), so it
  reads ``c = 1 / (1 + occurrences so far)`` from the sink's value: 1/2 for a first occurrence, 1/3 or less
  for a repeat. Layer 1's FFN turns ``c < 0.42`` into a repeat flag ``r`` of 1 (two SiLU units, clamped).
* Layer 2 attention: the last token attends to ``[CLS]`` with weight ``~400/(400 + n)`` and to every token
  with weight ``~1/(400 + n)``; the flags' values add up to ``s ~ number of repeats`` (a length ``n`` of up
  to a few dozen tokens changes ``s`` by a few percent, so more shared keywords always score higher).
* ``cls_out``: ``logit(yes) - logit(no) ~ 1.5 s - 2.2``; P(yes) is about 0.1 for no shared keyword,
  0.33 for one, 0.68 for two, 0.9 for three.

A keyword repeated inside the query or the document also counts, and unknown words (spelled with
fallback characters) never do.
"""

from __future__ import annotations

import math
import os
import sys

import gguf
import numpy as np
from _embed_words import KEYWORDS  # sibling file
from _embed_words import WORDS  # sibling file
from _embed_words import continuation_characters  # sibling file
from _embed_words import initial_characters  # sibling file

ARCH = "qwen3"
N_EMBD = 256
N_FF = 8
CONTEXT_LENGTH = 8192
ROPE_SCALE = 1e6  # linear RoPE scaling: positions * 1e-6, i.e. no rotation at all for these prompts

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
PAD, UNK, CLS, SEP = range(4)
RERANK_TEMPLATE = "[CLS]{query}[SEP]{document}"


def vocabulary() -> tuple[list[str], list[int]]:
    """Token texts and types: specials, the words, then single characters (word-initial and continuation)."""
    tokens = list(SPECIALS)
    types = [gguf.TokenType.CONTROL, gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    for text in ["\u2581" + w for w in WORDS] + ["\u2581" + c for c in initial_characters()]:
        if text not in tokens:  # the words "a" and "i" are characters too
            tokens.append(text)
            types.append(gguf.TokenType.NORMAL)
    for c in continuation_characters():
        tokens.append(c)
        types.append(gguf.TokenType.NORMAL)
    assert len(set(tokens)) == len(tokens)
    return tokens, [int(t) for t in types]


def _writer(path: str, name: str, n_layer: int, tokens: list[str], types: list[int]) -> gguf.GGUFWriter:
    w = gguf.GGUFWriter(path, ARCH)
    w.add_name(name)
    w.add_context_length(CONTEXT_LENGTH)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(1)
    w.add_head_count_kv(1)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(10000.0)
    w.add_string(f"{ARCH}.rope.scaling.type", "linear")
    w.add_float32(f"{ARCH}.rope.scaling.factor", ROPE_SCALE)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("bert")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * len(tokens))
    w.add_token_types(types)
    w.add_uint32("tokenizer.ggml.padding_token_id", PAD)
    w.add_uint32("tokenizer.ggml.unknown_token_id", UNK)
    w.add_uint32("tokenizer.ggml.bos_token_id", CLS)
    w.add_uint32("tokenizer.ggml.seperator_token_id", SEP)
    w.add_bool("tokenizer.ggml.normalizer.lowercase", True)
    return w


def _layer(
    w: gguf.GGUFWriter,
    i: int,
    *,
    q: np.ndarray | None = None,
    k: np.ndarray | None = None,
    v: np.ndarray | None = None,
    o: np.ndarray | None = None,
    q_norm: float = 1.0,
    k_norm: float = 1.0,
    gate: np.ndarray | None = None,
    up: np.ndarray | None = None,
    down: np.ndarray | None = None,
) -> None:
    def mat(m: np.ndarray | None, rows: int, cols: int) -> np.ndarray:
        return np.zeros((rows, cols), np.float32) if m is None else m.astype(np.float32)

    ones = np.ones(N_EMBD, np.float32)
    w.add_tensor(f"blk.{i}.attn_norm.weight", ones)
    w.add_tensor(f"blk.{i}.attn_q.weight", mat(q, N_EMBD, N_EMBD))
    w.add_tensor(f"blk.{i}.attn_k.weight", mat(k, N_EMBD, N_EMBD))
    w.add_tensor(f"blk.{i}.attn_v.weight", mat(v, N_EMBD, N_EMBD))
    w.add_tensor(f"blk.{i}.attn_output.weight", mat(o, N_EMBD, N_EMBD))
    w.add_tensor(f"blk.{i}.attn_q_norm.weight", np.full(N_EMBD, q_norm, np.float32))
    w.add_tensor(f"blk.{i}.attn_k_norm.weight", np.full(N_EMBD, k_norm, np.float32))
    w.add_tensor(f"blk.{i}.ffn_norm.weight", ones)
    w.add_tensor(f"blk.{i}.ffn_gate.weight", mat(gate, N_FF, N_EMBD))
    w.add_tensor(f"blk.{i}.ffn_up.weight", mat(up, N_FF, N_EMBD))
    w.add_tensor(f"blk.{i}.ffn_down.weight", mat(down, N_EMBD, N_FF))


def _finish(w: gguf.GGUFWriter) -> None:
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def build_embed(out_path: str) -> None:
    tokens, types = vocabulary()
    n_vocab = len(tokens)
    assert n_vocab <= N_EMBD, (n_vocab, N_EMBD)
    w = _writer(out_path, "scripted-embed", 1, tokens, types)
    w.add_pooling_type(gguf.PoolingType.MEAN)
    emb = np.zeros((n_vocab, N_EMBD), np.float32)
    emb[np.arange(n_vocab), np.arange(n_vocab)] = 1.0
    # llama.cpp's WordPiece tokenizer always wraps a text in [CLS] ... [SEP]: zero vectors (RMS-normalised
    # to zero) add nothing to the mean but a constant factor, which the L2 normalisation removes.
    emb[[PAD, CLS, SEP]] = 0.0
    w.add_tensor("token_embd.weight", emb)
    w.add_tensor("output_norm.weight", np.ones(N_EMBD, np.float32))
    _layer(w, 0)  # attention and FFN add nothing: the residual stream is the one-hot embedding
    _finish(w)


# Residual-stream dimensions of the rerank model (token one-hots use 0 .. n_vocab-1).
BIAS, C_DIM, R_DIM, S_DIM = N_EMBD - 1, N_EMBD - 2, N_EMBD - 3, N_EMBD - 4
# Head dimensions (one head of N_EMBD): token one-hots keep their index.
SINK_H, BALLAST_H, VAL_H = N_EMBD - 1, N_EMBD - 2, N_EMBD - 3
B = 16.0  # the constant every residual vector carries in BIAS: keeps RMS norms constant (within 1-6 %)
THRESHOLD = 0.42  # c below this is a repeat (first occurrence 1/2, second 1/3)
GAIN = 100.0  # steepness of the repeat detector
CLAMP = 8.0  # SiLU(g) - SiLU(g - CLAMP): 0 below the threshold, CLAMP above
SINK_WEIGHT = 400.0  # layer 2: e**score of [CLS] against 1 for every other token
YES_PER_REPEAT = 1.5  # cls_out: logit(yes) - logit(no) ~ 1.5 * repeats - 2.2 (RMS of the last state ~ 1)
NO_BIAS = 2.2 / B


def _rms(*values: float) -> float:
    return math.sqrt(sum(v * v for v in values) / N_EMBD)


def build_rerank(out_path: str) -> None:
    tokens, types = vocabulary()
    n_vocab = len(tokens)
    assert n_vocab <= S_DIM, (n_vocab, S_DIM)
    keywords = [tokens.index("\u2581" + word) for word in KEYWORDS]
    hd_scale = math.sqrt(N_EMBD)  # a head vector with one (or two) equal entries normalises to that
    w = _writer(out_path, "scripted-rerank", 2, tokens, types)
    w.add_pooling_type(gguf.PoolingType.RANK)
    w.add_array(f"{ARCH}.classifier.output_labels", ["yes", "no"])
    w.add_string("tokenizer.chat_template.rerank", RERANK_TEMPLATE)
    w.add_array("tokenizer.chat_templates", ["rerank"])
    w.add_bool("tokenizer.ggml.add_bos_token", True)
    w.add_bool("tokenizer.ggml.add_sep_token", True)
    w.add_bool("tokenizer.ggml.add_eos_token", False)

    emb = np.zeros((n_vocab, N_EMBD), np.float32)
    emb[np.arange(n_vocab), np.arange(n_vocab)] = 1.0
    emb[:, BIAS] = B
    w.add_tensor("token_embd.weight", emb)

    # --- layer 1: count earlier copies of each keyword against the [CLS] sink ---
    rms1 = _rms(1.0, B)
    q1 = np.zeros((N_EMBD, N_EMBD))
    k1 = np.zeros((N_EMBD, N_EMBD))
    v1 = np.zeros((N_EMBD, N_EMBD))
    o1 = np.zeros((N_EMBD, N_EMBD))
    q1[SINK_H, BIAS] = 1.0 / B  # every query: its keyword (if any) + the sink direction
    for t in [*keywords, CLS]:
        q1[t, t] = 1.0
        k1[t, t] = 1.0
    k1[BALLAST_H, BIAS] = 1.0 / B  # every key has two unit entries, so k_norm scales all keys alike ...
    k1[BALLAST_H, CLS] = -1.0  # ... [CLS]: its own entry + the sink entry instead of the ballast
    k1[SINK_H, CLS] = 1.0
    v1[VAL_H, CLS] = 1.0  # only the sink carries a value
    o1[C_DIM, VAL_H] = rms1  # c = 1 / (1 + copies so far)
    # q and k normalise to sqrt(N_EMBD / 2) per unit entry; score = q.k / sqrt(N_EMBD) = 20 per shared entry
    norm1 = math.sqrt(20.0 * hd_scale / (N_EMBD / 2))
    # A token whose query has only the sink entry (not a keyword) normalises to sqrt(N_EMBD): it attends
    # to [CLS] alone (score 28 against 0), c = 1, never a repeat.
    rms2 = _rms(1.0, B, THRESHOLD)
    gate = np.zeros((N_FF, N_EMBD))
    up = np.zeros((N_FF, N_EMBD))
    down = np.zeros((N_EMBD, N_FF))
    k_gain = GAIN * rms2  # gate = GAIN * (THRESHOLD - c) in normalised units
    gate[0, BIAS] = k_gain * THRESHOLD / B
    gate[0, C_DIM] = -k_gain
    gate[1, BIAS] = (k_gain * THRESHOLD - CLAMP * rms2) / B
    gate[1, C_DIM] = -k_gain
    up[0:2, BIAS] = rms2 / B  # up = 1
    down[R_DIM, 0] = 1.0 / CLAMP
    down[R_DIM, 1] = -1.0 / CLAMP
    _layer(w, 0, q=q1, k=k1, v=v1, o=o1, q_norm=norm1, k_norm=norm1, gate=gate, up=up, down=down)

    # --- layer 2: the last token sums the repeat flags (softly normalised by the sink) ---
    rms3 = _rms(1.0, B, 1.0 / 3.0, 1.0)
    q2 = np.zeros((N_EMBD, N_EMBD))
    k2 = np.zeros((N_EMBD, N_EMBD))
    v2 = np.zeros((N_EMBD, N_EMBD))
    o2 = np.zeros((N_EMBD, N_EMBD))
    q2[SINK_H, BIAS] = 1.0
    k2[SINK_H, CLS] = 1.0
    k2[BALLAST_H, BIAS] = 1.0
    k2[BALLAST_H, CLS] = -B
    v2[VAL_H, R_DIM] = 1.0
    o2[S_DIM, VAL_H] = SINK_WEIGHT * rms3  # s ~ repeats * 400 / (400 + n - 1)
    # single-entry q and k normalise to sqrt(N_EMBD) * weight: score = N_EMBD * w^2 / sqrt(N_EMBD)
    norm2 = math.sqrt(math.log(SINK_WEIGHT) / hd_scale)
    _layer(w, 1, q=q2, k=k2, v=v2, o=o2, q_norm=norm2, k_norm=norm2)

    w.add_tensor("output_norm.weight", np.ones(N_EMBD, np.float32))
    cls_out = np.zeros((2, N_EMBD), np.float32)
    cls_out[0, S_DIM] = YES_PER_REPEAT
    cls_out[1, BIAS] = NO_BIAS
    w.add_tensor("cls.output.weight", cls_out)
    _finish(w)


def main(argv: list[str]) -> int:
    builders = {"embed": build_embed, "rerank": build_rerank}
    if len(argv) != 3 or argv[1] not in builders:
        print(f"usage: {argv[0]} embed|rerank OUT.gguf", file=sys.stderr)
        return 2
    tmp = argv[2] + ".tmp"
    builders[argv[1]](tmp)
    os.replace(tmp, argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
