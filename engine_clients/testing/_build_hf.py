"""Build a tiny *scripted* Hugging Face LlamaForCausalLM directory for vLLM (standalone script).

Runs under the vLLM environment's python (torch, safetensors, tokenizers and transformers come with vLLM)::

    python _build_hf.py OUT_DIR CHAT_TEMPLATE.jinja

Same idea as ``_build_gguf.py``: one-hot embeddings (hidden 128 > vocab), attention and MLP weights zero,
so ``lm_head`` is a bigram table (next token = NEXT[current token]) plus weak fallback preferences that apply
when a grammar masks the bigram's choice. 2 heads give head_dim 64 (vLLM's CPU attention backend refuses 16).

What vLLM 0.32 (``--enable-auto-tool-choice --tool-call-parser hermes``) answers with it, greedy:

* plain chat: `` Hello world.`` then EOS (``<|im_end|>``), finish_reason ``stop``;
* ``tool_choice: "required"`` or a named tool: vLLM forces ``<tool_call>\\n{"name": "NAME", "arguments": ``
  with an xgrammar structural tag, then the model writes the arguments, which the hermes parser returns as a
  tool call. By default vLLM leaves the arguments free (any JSON); the bigram ``" " -> "{"`` makes them an
  object, ``{"a": "a"}``, which does NOT follow the tool's schema. With ``"strict": true`` on the tool (or the
  server flag ``--tool-strict-level parameter``) vLLM pins them to the schema and they come out valid
  (strings ``"a"``, numbers ``1``, one-item arrays);
* ``response_format`` json_schema: schema-valid JSON (the grammar enforces it);
* thinking: after ``<think>`` (the last token of thinking_chat_template.jinja's generation prompt) the model
  writes ``"\nThe user says hello.\n"``, ``</think>``, ``"\n"`` and then the plain answer; vLLM's ``qwen3``
  reasoning parser (the launcher's choice) splits that into ``reasoning`` and ``content``.

Tokenizer: ``tokenizers`` WordLevel over single characters (plus `` Hello``/`` world`` and the thinking
words, only ever generated), ``<tool_call>``/``</tool_call>`` and ``<think>``/``</think>`` as added
non-special tokens (the hermes and reasoning parsers look them up; they stay in the decoded text), the chat
template stored in ``tokenizer_config.json``. ``max_position_embeddings`` is 32,768.
"""

from __future__ import annotations

import itertools
import json
import os
import sys

import torch
from tokenizers import Tokenizer
from tokenizers import decoders
from tokenizers import models
from tokenizers import pre_tokenizers
from transformers import LlamaConfig
from transformers import LlamaForCausalLM
from transformers import PreTrainedTokenizerFast

HIDDEN = 128
SPECIAL = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
ADDED = ["<tool_call>", "</tool_call>"]
THINK = ["<think>", "</think>"]  # added (not special) tokens: vLLM's reasoning parsers look them up
THINKING = ["\nThe", " user", " says", " hello.\n"]  # only ever generated, never produced by the tokenizer
MAX_POSITIONS = 32768  # the launcher serves --max-model-len 8192


def build(out_dir: str, chat_template: str) -> None:
    vocab: dict[str, int] = {}
    for t in [*SPECIAL, *ADDED, " Hello", " world"]:
        vocab[t] = len(vocab)
    for c in [chr(i) for i in range(32, 127)] + ["\n", "\t"]:
        vocab.setdefault(c, len(vocab))
    for t in [*THINK, *THINKING]:  # appended, so that the ids above stay what they were
        vocab[t] = len(vocab)
    n_vocab = len(vocab)
    assert n_vocab < HIDDEN, (n_vocab, HIDDEN)
    shared = HIDDEN - 1  # the dimension every embedding shares: carries the fallback preferences
    t = vocab.__getitem__
    eot, tool_open, tool_close = t("<|im_end|>"), t("<tool_call>"), t("</tool_call>")

    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")  # one token per character
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(SPECIAL)
    tok.add_tokens([*ADDED, *THINK])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="<|im_end|>", unk_token="<unk>", pad_token="<unk>"
    )
    fast.chat_template = chat_template
    fast.save_pretrained(out_dir)
    # transformers 5 writes the template to chat_template.jinja; older readers look in tokenizer_config.json.
    config_path = os.path.join(out_dir, "tokenizer_config.json")
    with open(config_path, encoding="utf-8") as f:
        tokenizer_config = json.load(f)
    tokenizer_config["chat_template"] = chat_template
    with open(config_path, "w", encoding="utf-8") as f:
        json.dump(tokenizer_config, f, indent=2, ensure_ascii=False)

    cfg = LlamaConfig(
        vocab_size=n_vocab,
        hidden_size=HIDDEN,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=MAX_POSITIONS,
        bos_token_id=t("<s>"),
        eos_token_id=eot,
        pad_token_id=t("<unk>"),
        tie_word_embeddings=False,
        rms_norm_eps=1e-5,
    )
    model = LlamaForCausalLM(cfg)
    # The script; everything not listed goes to EOS.
    nxt = {
        t("\n"): t(" Hello"),  # "...<|im_start|>assistant\n" -> " Hello"
        t(" Hello"): t(" world"),
        t(" world"): t("."),
        t("."): eot,
        tool_open: t("\n"),
        t(" "): t("{"),  # '"arguments": ' -> an object, also where vLLM leaves the arguments free
        t("a"): t('"'),  # a string the grammar opened is closed after one "a"
        # "...assistant\n<think>" -> "\nThe user says hello.\n</think>\n" -> " Hello world."
        **dict(itertools.pairwise([t("<think>"), *map(t, THINKING), t("</think>"), t("\n")])),
    }
    # Fallbacks when the grammar masks the bigram's choice (score = weight * 0.05), strongest first.
    # '"' above '{': a value left open becomes "a" instead of nesting forever; '}', ']' and '</tool_call>'
    # above ',': objects, arrays and calls close as soon as allowed; '1' starts numbers; whitespace is never
    # chosen freely.
    fallbacks = [
        (t("a"), 20.0),
        (t('"'), 15.0),
        (t("{"), 10.0),
        (t("}"), 5.0),
        (t("]"), 4.0),
        (tool_close, 3.5),
        (t(","), 3.0),
        (t("1"), 2.0),
        (tool_open, 0.5),  # where a call must start (required / named tool_choice)
        (t(" "), -10.0),
        (t("\n"), -10.0),
        (t("\t"), -10.0),
    ]
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.fill_(1.0 if "norm" in name else 0.0)  # attention and MLP contribute nothing
        emb = model.model.embed_tokens.weight
        emb[torch.arange(n_vocab), torch.arange(n_vocab)] = 1.0
        emb[:, shared] = 0.05
        out = model.lm_head.weight
        for cur in range(n_vocab):
            out[nxt.get(cur, eot), cur] += 30.0
        out[tool_open, t(".")] = 20.0  # second choice after ".": used when EOS is masked
        for tok_id, weight in fallbacks:
            out[tok_id, shared] = weight
    model.save_pretrained(out_dir, safe_serialization=True)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(f"usage: {argv[0]} OUT_DIR CHAT_TEMPLATE.jinja", file=sys.stderr)
        return 2
    with open(argv[2], encoding="utf-8") as f:
        template = f.read()
    build(argv[1], template)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
