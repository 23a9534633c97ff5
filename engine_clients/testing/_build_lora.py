"""Build a tiny LoRA adapter for the *scripted* models (standalone script; nothing is downloaded).

Two modes, one per engine::

    python _build_lora.py gguf BASE.gguf OUT.gguf WORD NAME    # llama.cpp environment (gguf, numpy)
    python _build_lora.py peft BASE_DIR OUT_DIR WORD           # any Python 3.10+ (standard library only)

The scripted models (``_build_gguf.py``, ``_build_hf.py``) have zero attention and MLP weights, so the hidden
state that reaches the output projection is the (normalised) one-hot embedding of the current token and
``output.weight`` / ``lm_head`` is a bigram table. The adapter adds a low-rank delta to that table only: for
each step of the chain `` Hello`` -> space -> W -> O -> R -> D -> ``.`` it raises the next token's logit by
twice the base model's bigram weight. The base chain then ends ``.`` -> EOS as before, so with the adapter
applied the plain chat answer is ``" Hello WORD."`` instead of ``" Hello world."``; at scale 0 (or without
the adapter) it is unchanged. WORD must not repeat a character (a bigram has one successor per token) and
its characters must be printable ASCII, which both vocabularies hold as single tokens.

``gguf`` writes a llama.cpp LoRA GGUF (``general.type = adapter``, ``adapter.type = lora``,
``adapter.lora.alpha`` = rank, so the scale is 1; ``adapter.lora.task_name`` = NAME) with the tensors
``output.weight.lora_a`` (rank x n_embd) and ``output.weight.lora_b`` (n_vocab x rank), for
``llama-server --lora OUT.gguf``.

``peft`` writes a PEFT directory for ``vllm --enable-lora --lora-modules name=OUT_DIR``:
``adapter_config.json`` (``target_modules: ["lm_head"]``, ``r`` = ``lora_alpha`` = rank) and
``adapter_model.safetensors`` with ``base_model.model.lm_head.lora_A.weight`` / ``lora_B.weight`` (float32,
written by hand: the format is an 8-byte header length, a JSON header and the raw little-endian data).
"""

from __future__ import annotations

import array
import itertools
import json
import os
import struct
import sys
from typing import Any

RANK = 8  # enough for a WORD of up to 7 characters; vLLM's default --max-lora-rank is 16
BOOST = 60.0  # the base bigram weight is 30: the adapter's successor wins by a wide margin


def chain(word: str) -> list[str]:
    """The answer's steps after `` Hello`` as text pieces: a space, the word's characters, ``.``."""
    if not word or len(set(word)) != len(word) or "." in word or " " in word:
        raise ValueError(f"WORD must be non-empty, without repeated characters, '.' or spaces: {word!r}")
    if not all(33 <= ord(c) < 127 for c in word):
        raise ValueError(f"WORD must be printable ASCII: {word!r}")
    if len(word) + 1 > RANK:
        raise ValueError(f"WORD has more than {RANK - 1} characters: {word!r}")
    return [" ", *word, "."]


def transitions(ids: dict[str, int], hello: str, space: str, word: str) -> list[tuple[int, int]]:
    """(current token id, next token id) for each step of the adapter's chain."""
    steps = [hello, *(space if p == " " else p for p in chain(word))]
    return [(ids[a], ids[b]) for a, b in itertools.pairwise(steps)]


def factors(pairs: list[tuple[int, int]], n_in: int, n_out: int) -> tuple[list[float], list[float]]:
    """Row-major ``A`` (RANK x n_in) and ``B`` (n_out x RANK), ``B @ A`` = BOOST at each (next, current)."""
    a = [0.0] * (RANK * n_in)
    b = [0.0] * (n_out * RANK)
    for r, (cur, nxt) in enumerate(pairs):
        a[r * n_in + cur] = 1.0
        b[nxt * RANK + r] = BOOST
    return a, b


# --- llama.cpp ---------------------------------------------------------------------------------------------


def build_gguf(base: str, out: str, word: str, name: str) -> None:
    import gguf  # type: ignore[import-not-found]
    import numpy as np

    reader = gguf.GGUFReader(base)
    field = reader.fields["tokenizer.ggml.tokens"]
    tokens = [bytes(field.parts[i]).decode("utf-8") for i in field.data]
    ids = {t: i for i, t in enumerate(tokens)}
    output = next(t for t in reader.tensors if t.name == "output.weight")
    n_embd, n_vocab = (int(x) for x in output.shape[:2])  # ggml order: ne[0] = n_embd, ne[1] = n_vocab
    pairs = transitions(ids, "\u2581Hello", "\u2581", word)
    a, b = factors(pairs, n_embd, n_vocab)
    w = gguf.GGUFWriter(out, "llama")
    w.add_type(gguf.GGUFType.ADAPTER)
    w.add_name(f"scripted-tiny-lora-{name}")
    w.add_string(gguf.Keys.Adapter.TYPE, "lora")
    w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(RANK))
    w.add_string(gguf.Keys.Adapter.LORA_TASK_NAME, name)
    # numpy (rows, cols) is ggml (ne[1], ne[0]): lora_a ne = [n_embd, rank], lora_b ne = [rank, n_vocab]
    w.add_tensor("output.weight.lora_a", np.array(a, np.float32).reshape(RANK, n_embd))
    w.add_tensor("output.weight.lora_b", np.array(b, np.float32).reshape(n_vocab, RANK))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# --- PEFT (vLLM) -------------------------------------------------------------------------------------------


def _hf_vocab(base: str) -> dict[str, int]:
    with open(os.path.join(base, "tokenizer.json"), encoding="utf-8") as f:
        tok = json.load(f)
    ids: dict[str, int] = dict(tok["model"]["vocab"])
    for added in tok.get("added_tokens", ()):
        ids[added["content"]] = added["id"]
    return ids


def write_safetensors(path: str, tensors: dict[str, tuple[list[int], list[float]]]) -> None:
    """float32 tensors ``name -> (shape, row-major values)`` in the safetensors format."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    blobs = []
    offset = 0
    for name, (shape, values) in tensors.items():
        data = array.array("f", values)
        if sys.byteorder != "little":
            data.byteswap()
        raw = data.tobytes()
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for raw in blobs:
            f.write(raw)


def build_peft(base: str, out: str, word: str) -> None:
    with open(os.path.join(base, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    hidden, n_vocab = int(config["hidden_size"]), int(config["vocab_size"])
    pairs = transitions(_hf_vocab(base), " Hello", " ", word)
    a, b = factors(pairs, hidden, n_vocab)
    os.makedirs(out, exist_ok=True)
    write_safetensors(
        os.path.join(out, "adapter_model.safetensors"),
        {
            "base_model.model.lm_head.lora_A.weight": ([RANK, hidden], a),
            "base_model.model.lm_head.lora_B.weight": ([n_vocab, RANK], b),
        },
    )
    adapter_config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": os.path.abspath(base),
        "r": RANK,
        "lora_alpha": RANK,
        "lora_dropout": 0.0,
        "bias": "none",
        "target_modules": ["lm_head"],
        "fan_in_fan_out": False,
        "inference_mode": True,
        "use_rslora": False,
        "use_dora": False,
        "modules_to_save": None,
    }
    with open(os.path.join(out, "adapter_config.json"), "w", encoding="utf-8") as f:
        json.dump(adapter_config, f, indent=2)


def main(argv: list[str]) -> int:
    if len(argv) == 6 and argv[1] == "gguf":
        tmp = argv[3] + ".tmp"
        build_gguf(argv[2], tmp, argv[4], argv[5])
        os.replace(tmp, argv[3])
        return 0
    if len(argv) == 5 and argv[1] == "peft":
        build_peft(argv[2], argv[3], argv[4])
        return 0
    print(f"usage: {argv[0]} gguf BASE.gguf OUT.gguf WORD NAME | peft BASE_DIR OUT_DIR WORD", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
