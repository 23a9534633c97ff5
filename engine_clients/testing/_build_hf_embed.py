"""Build a tiny *scripted* Hugging Face embedding model for vLLM's pooling runner (standalone script).

Runs under the vLLM environment's python (torch, safetensors, tokenizers and transformers come with vLLM)::

    python _build_hf_embed.py OUT_DIR

The same idea as the ``embed`` GGUF of ``_build_embed.py``: a ``LlamaModel`` (no LM head; vLLM's pooling
runner turns ``*Model`` architectures into embedding models) with one-hot token embeddings (hidden 256 >
vocabulary), attention and MLP weights zero, so every token's last hidden state is its RMS-normalised
one-hot vector. The sentence-transformers files (``modules.json``, ``1_Pooling/config.json``: mean pooling,
``2_Normalize``) tell vLLM to mean-pool and L2-normalise, so a text's embedding is its normalised bag of
words: ``cos("paris weather", "weather in paris") = 2/sqrt(6)``, ``cos("paris weather", "python code") = 0``.
vLLM scores pairs with such a model as a bi-encoder (cosine similarity) on ``/score`` and ``/rerank``.

Tokenizer: ``tokenizers`` WordPiece with BERT's normaliser (lowercase) and pre-tokenizer: every word of
``_embed_words.WORDS`` is one token, other words are spelled with single characters (``##x`` after the
first), no special tokens are added around a text. 4 heads of 64 (vLLM's CPU attention needs head_dim 64).
"""

from __future__ import annotations

import json
import os
import sys

import torch
from _embed_words import WORDS  # sibling file
from _embed_words import continuation_characters  # sibling file
from _embed_words import initial_characters  # sibling file
from tokenizers import Tokenizer
from tokenizers import models
from tokenizers import normalizers
from tokenizers import pre_tokenizers
from transformers import LlamaConfig
from transformers import LlamaModel
from transformers import PreTrainedTokenizerFast

HIDDEN = 256
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
MAX_POSITIONS = 2048


def build(out_dir: str) -> None:
    vocab: dict[str, int] = {}
    for text in [*SPECIALS, *WORDS, *initial_characters(), *("##" + c for c in continuation_characters())]:
        vocab.setdefault(text, len(vocab))
    n_vocab = len(vocab)
    assert n_vocab <= HIDDEN, (n_vocab, HIDDEN)

    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]", continuing_subword_prefix="##"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        model_max_length=MAX_POSITIONS,
    )
    fast.save_pretrained(out_dir)

    cfg = LlamaConfig(
        vocab_size=n_vocab,
        hidden_size=HIDDEN,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=MAX_POSITIONS,
        pad_token_id=vocab["[PAD]"],
        bos_token_id=vocab["[CLS]"],
        eos_token_id=vocab["[SEP]"],
        rms_norm_eps=1e-6,
    )
    cfg.architectures = ["LlamaModel"]
    model = LlamaModel(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.fill_(1.0 if "norm" in name else 0.0)  # attention and MLP contribute nothing
        model.embed_tokens.weight[torch.arange(n_vocab), torch.arange(n_vocab)] = 1.0
    model.save_pretrained(out_dir, safe_serialization=True)

    def dump(path: str, data: object) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)

    dump(
        os.path.join(out_dir, "modules.json"),
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
    )
    dump(
        os.path.join(out_dir, "1_Pooling", "config.json"),
        {
            "word_embedding_dimension": HIDDEN,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,
        },
    )
    os.makedirs(os.path.join(out_dir, "2_Normalize"), exist_ok=True)
    dump(os.path.join(out_dir, "sentence_bert_config.json"), {"max_seq_length": 512, "do_lower_case": False})


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} OUT_DIR", file=sys.stderr)
        return 2
    build(argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
