"""Build a tiny *scripted* llama-architecture GGUF for llama-server (standalone script).

Runs under the llama.cpp environment's python, which has ``gguf`` and ``numpy``::

    python _build_gguf.py OUT.gguf CHAT_TEMPLATE.jinja

The weights are set by hand so that greedy decoding follows a script instead of noise:

* one-hot token embeddings (n_embd > vocab), every attention / FFN weight zero: the final hidden state is the
  embedding of the current token, so ``output.weight`` is a bigram table, next token = NEXT[current token];
* plain chat (the prompt ends with ``assistant\\n``) answers `` Hello world.`` and then EOS (``<|im_end|>``);
* when EOS is masked by a grammar that requires a tool call, ``.`` is followed by ``<tool_call>``; inside the
  JSON a small component shared by every embedding gives weak fallback preferences, so schema-constrained
  values come out short and valid: strings ``"a"``, numbers ``1``, arrays of one item, objects closed early;
* json_schema / response_format output is valid because llama-server's grammar enforces it;
* thinking: after ``<think>`` (the last token of thinking_chat_template.jinja's generation prompt) the model
  writes ``"\nThe user says hello.\n"``, ``</think>``, then ``"\n"`` and the plain answer `` Hello world.``;
  with thinking switched off that template ends in ``</think>\n\n``, so the answer comes directly. One file
  serves both templates (llama-server's ``--chat-template-file`` picks the thinking one).

``<tool_call>``, ``</tool_call>``, ``<think>``, ``</think>``, ``<|im_start|>`` and ``<|im_end|>`` are
USER_DEFINED tokens (not CONTROL): they stay in the detokenized text, where llama-server's tool-call and
reasoning parsers look for them, and its grammars (which also cover the generation prompt) can match them as
text. The SPM tokenizer has ``add_space_prefix = false``.
"""

from __future__ import annotations

import itertools
import os
import sys

import gguf
import numpy as np

N_EMBD = 512
N_FF = 64
CONTEXT_LENGTH = 32768  # n_ctx_train; the launcher gives each slot 8,192
THINKING = ["\nThe", "\u2581user", "\u2581says", "\u2581hello.\n"]  # only ever generated, never tokenized


def build(out_path: str, chat_template: str) -> None:
    tokens: list[str] = []
    types: list[int] = []

    def add(text: str, kind: int) -> int:
        tokens.append(text)
        types.append(int(kind))
        return len(tokens) - 1

    unk = add("<unk>", gguf.TokenType.UNKNOWN)
    bos = add("<s>", gguf.TokenType.CONTROL)
    add("</s>", gguf.TokenType.CONTROL)
    byte_tokens = [add(f"<0x{b:02X}>", gguf.TokenType.BYTE) for b in range(256)]
    tool_open = add("<tool_call>", gguf.TokenType.USER_DEFINED)
    tool_close = add("</tool_call>", gguf.TokenType.USER_DEFINED)
    add("<|im_start|>", gguf.TokenType.USER_DEFINED)
    eot = add("<|im_end|>", gguf.TokenType.USER_DEFINED)
    hello = add("\u2581Hello", gguf.TokenType.NORMAL)
    world = add("\u2581world", gguf.TokenType.NORMAL)
    ch: dict[str, int] = {}
    for c in [chr(i) for i in range(33, 127)] + ["\u2581", "\n"]:
        ch[c] = add(c, gguf.TokenType.NORMAL)
    # appended after the original vocabulary, so that the ids above stay what they were
    think_open = add("<think>", gguf.TokenType.USER_DEFINED)
    think_close = add("</think>", gguf.TokenType.USER_DEFINED)
    thinking = [add(text, gguf.TokenType.NORMAL) for text in THINKING]

    n_vocab = len(tokens)
    assert n_vocab < N_EMBD, (n_vocab, N_EMBD)
    shared = N_EMBD - 1  # the dimension every embedding shares: carries the fallback preferences

    emb = np.zeros((n_vocab, N_EMBD), np.float32)
    emb[np.arange(n_vocab), np.arange(n_vocab)] = 1.0
    emb[:, shared] = 0.05

    # The script. Everything not listed goes to EOS.
    nxt = {
        ch["\n"]: hello,  # "...<|im_start|>assistant\n" -> " Hello"
        hello: world,
        world: ch["."],
        ch["."]: eot,
        tool_open: ch["\n"],
        ch["a"]: ch['"'],  # a string the grammar opened is closed after one "a"
        # "...assistant\n<think>" -> "\nThe user says hello.\n</think>\n" -> " Hello world."
        **dict(itertools.pairwise([think_open, *thinking, think_close, ch["\n"]])),
    }
    out = np.zeros((n_vocab, N_EMBD), np.float32)
    for tok in range(n_vocab):
        out[nxt.get(tok, eot), tok] += 30.0
    out[tool_open, ch["."]] = 20.0  # second choice after ".": used when EOS is masked (a call is required)
    # Fallbacks when the grammar masks the bigram's choice, strongest first (score = weight * 0.05).
    # '"' above '{': a value left open by the schema becomes the string "a" instead of nesting forever;
    # '}', ']' and '</tool_call>' above ',': objects, arrays and calls close as soon as the grammar allows;
    # '1' starts numbers;
    # whitespace and byte tokens are never chosen freely.
    out[byte_tokens, shared] = -10.0
    for tok, weight in [
        (ch["a"], 20.0),
        (ch['"'], 15.0),
        (ch["{"], 10.0),
        (ch["}"], 5.0),
        (ch["]"], 4.0),
        (tool_close, 3.5),  # above ',': llama.cpp's grammar would let a call continue with ", {...}"
        (ch[","], 3.0),
        (ch["1"], 2.0),
        (ch["\u2581"], -10.0),
        (ch["\n"], -10.0),
    ]:
        out[tok, shared] = weight

    w = gguf.GGUFWriter(out_path, "llama")
    w.add_name("scripted-tiny")
    w.add_context_length(CONTEXT_LENGTH)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(1)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(4)
    w.add_head_count_kv(4)
    w.add_rope_dimension_count(N_EMBD // 4)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * n_vocab)
    w.add_token_types(types)
    w.add_bos_token_id(bos)
    w.add_eos_token_id(eot)
    w.add_unk_token_id(unk)
    w.add_add_bos_token(False)
    w.add_add_space_prefix(False)  # else "assistant" after a special token would become "\u2581assistant"
    w.add_chat_template(chat_template)

    def zeros(*shape: int) -> np.ndarray:
        return np.zeros(shape, np.float32)

    w.add_tensor("token_embd.weight", emb)
    w.add_tensor("output_norm.weight", np.ones(N_EMBD, np.float32))
    w.add_tensor("output.weight", out)
    w.add_tensor("blk.0.attn_norm.weight", np.ones(N_EMBD, np.float32))
    for name in ["attn_q", "attn_k", "attn_v", "attn_output"]:
        w.add_tensor(f"blk.0.{name}.weight", zeros(N_EMBD, N_EMBD))
    w.add_tensor("blk.0.ffn_norm.weight", np.ones(N_EMBD, np.float32))
    w.add_tensor("blk.0.ffn_gate.weight", zeros(N_FF, N_EMBD))
    w.add_tensor("blk.0.ffn_up.weight", zeros(N_FF, N_EMBD))
    w.add_tensor("blk.0.ffn_down.weight", zeros(N_EMBD, N_FF))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(f"usage: {argv[0]} OUT.gguf CHAT_TEMPLATE.jinja", file=sys.stderr)
        return 2
    with open(argv[2], encoding="utf-8") as f:
        template = f.read()
    tmp = argv[1] + ".tmp"
    build(tmp, template)
    os.replace(tmp, argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
