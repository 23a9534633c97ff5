"""Build a tiny *vision* model for the real-engine tests: LLaVA-1.5 style, CLIP encoder + MLP projector.

Two modes, one per engine, sharing one vision tower (the same seeded random weights)::

    python _build_vision.py mmproj TEXT.gguf OUT.gguf          # llama.cpp environment (gguf, numpy)
    python _build_vision.py hf SCRIPTED_HF_DIR OUT_DIR          # vLLM environment (torch, transformers)

``mmproj`` writes a multimodal projector GGUF (``general.architecture = clip``, ``clip.projector_type = mlp``)
for ``llama-server --mmproj``; the text model stays the scripted tiny GGUF (``_build_gguf.py``), whose
``embedding_length`` it reads from ``TEXT.gguf`` so that the projector's output width matches.

``hf`` writes a ``LlavaForConditionalGeneration`` directory for vLLM: the scripted tiny Llama from
``SCRIPTED_HF_DIR`` (``_build_hf.py``) as its language model, the same CLIP tower, a CLIP image processor and
a tokenizer with an added ``<image>`` token.

The model, for both engines:

* vision tower: CLIP ViT, image 32x32, patch 8 (16 patches + class token), hidden 128, 2 heads (head_dim 64),
  FFN 256 (quick_gelu), 2 layers; the features come from the second-to-last layer (LLaVA's default), so one
  layer runs. Seeded random weights (numpy, seed 0), small enough that every activation stays finite;
* projector: Linear(128, n_text) -> GELU -> Linear(n_text, n_text), random;
* an image becomes 16 embeddings in the prompt (the class token is dropped), i.e. 16 more prompt tokens;
* the text model is the scripted one: its attention and FFN weights are zero, so the image embeddings do not
  change what it writes. Greedy output is `` Hello world.`` then EOS, with or without an image.

No file is downloaded: the weights are generated, the tokenizer is built with ``tokenizers`` and the image
processor is constructed from its parameters.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

IMAGE_SIZE = 32
PATCH_SIZE = 8
N_PATCHES = (IMAGE_SIZE // PATCH_SIZE) ** 2  # image tokens per image
V_HIDDEN = 128
V_HEADS = 2
V_FF = 256  # != V_HIDDEN: clip.cpp swaps ffn_up/ffn_down of old llava files when ffn_down's input is n_embd
V_LAYERS = 2
V_EPS = 1e-5
IMAGE_MEAN = [0.48145466, 0.4578275, 0.40821073]  # CLIP's
IMAGE_STD = [0.26862954, 0.26130258, 0.27577711]
IMAGE_TOKEN = "<image>"
SEED = 0


def vision_tower() -> dict[str, np.ndarray]:
    """The CLIP vision tower, with transformers' parameter names (``vision_model.`` prefix left out)."""
    rng = np.random.default_rng(SEED)

    def rand(*shape: int, scale: float = 0.02) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    w: dict[str, np.ndarray] = {
        "embeddings.class_embedding": rand(V_HIDDEN),
        "embeddings.patch_embedding.weight": rand(V_HIDDEN, 3, PATCH_SIZE, PATCH_SIZE),
        "embeddings.position_embedding.weight": rand(N_PATCHES + 1, V_HIDDEN),
        "pre_layrnorm.weight": np.ones(V_HIDDEN, np.float32),
        "pre_layrnorm.bias": np.zeros(V_HIDDEN, np.float32),
        "post_layernorm.weight": np.ones(V_HIDDEN, np.float32),
        "post_layernorm.bias": np.zeros(V_HIDDEN, np.float32),
    }
    for i in range(V_LAYERS):
        p = f"encoder.layers.{i}."
        for proj in ["q_proj", "k_proj", "v_proj", "out_proj"]:
            w[p + f"self_attn.{proj}.weight"] = rand(V_HIDDEN, V_HIDDEN)
            w[p + f"self_attn.{proj}.bias"] = rand(V_HIDDEN)
        for norm in ["layer_norm1", "layer_norm2"]:
            w[p + f"{norm}.weight"] = np.ones(V_HIDDEN, np.float32)
            w[p + f"{norm}.bias"] = np.zeros(V_HIDDEN, np.float32)
        w[p + "mlp.fc1.weight"] = rand(V_FF, V_HIDDEN)
        w[p + "mlp.fc1.bias"] = rand(V_FF)
        w[p + "mlp.fc2.weight"] = rand(V_HIDDEN, V_FF)
        w[p + "mlp.fc2.bias"] = rand(V_HIDDEN)
    return w


def projector(n_text: int) -> dict[str, np.ndarray]:
    """LLaVA's MLP projector (``multi_modal_projector.`` prefix left out) into a text model n_text wide."""
    rng = np.random.default_rng(SEED + 1)

    def rand(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    return {
        "linear_1.weight": rand(n_text, V_HIDDEN),
        "linear_1.bias": rand(n_text),
        "linear_2.weight": rand(n_text, n_text),
        "linear_2.bias": rand(n_text),
    }


# --- llama.cpp: the mmproj GGUF -----------------------------------------------------------------------------


def _gguf_name(hf: str) -> str | None:
    """clip.cpp's tensor name for a vision-tower parameter; None for those it does not use."""
    if hf.startswith("post_layernorm."):
        return None  # LLaVA takes the features before the final norm
    fixed = {
        "embeddings.class_embedding": "v.class_embd",
        "embeddings.patch_embedding.weight": "v.patch_embd.weight",
        "embeddings.position_embedding.weight": "v.position_embd.weight",
        "pre_layrnorm.weight": "v.pre_ln.weight",
        "pre_layrnorm.bias": "v.pre_ln.bias",
    }
    if hf in fixed:
        return fixed[hf]
    _, _, i, *rest = hf.split(".")  # encoder.layers.<i>.<module...>.<weight|bias>
    module, kind = ".".join(rest[:-1]), rest[-1]
    names = {
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.out_proj": "attn_out",
        "layer_norm1": "ln1",
        "layer_norm2": "ln2",
        "mlp.fc1": "ffn_up",
        "mlp.fc2": "ffn_down",
    }
    return f"v.blk.{i}.{names[module]}.{kind}"


def build_mmproj(text_gguf: str, out_path: str) -> None:
    import gguf

    reader = gguf.GGUFReader(text_gguf)
    arch = str(bytes(reader.fields["general.architecture"].parts[-1]), "utf-8")
    field = reader.fields[f"{arch}.embedding_length"]
    n_text = int(field.parts[field.data[0]][0])

    w = gguf.GGUFWriter(out_path, "clip")
    w.add_type("mmproj")
    w.add_name("scripted-vision-mmproj")
    w.add_description("tiny random CLIP encoder + LLaVA MLP projector (engine_clients.testing)")
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_bool("clip.has_vision_encoder", True)
    w.add_bool("clip.has_text_encoder", False)
    w.add_bool("clip.has_llava_projector", True)
    w.add_string("clip.projector_type", "mlp")
    w.add_bool("clip.use_gelu", False)  # quick_gelu, as in CLIP
    w.add_uint32("clip.vision.image_size", IMAGE_SIZE)
    w.add_uint32("clip.vision.patch_size", PATCH_SIZE)
    w.add_uint32("clip.vision.embedding_length", V_HIDDEN)
    w.add_uint32("clip.vision.feed_forward_length", V_FF)
    w.add_uint32("clip.vision.block_count", V_LAYERS)
    w.add_uint32("clip.vision.attention.head_count", V_HEADS)
    w.add_float32("clip.vision.attention.layer_norm_epsilon", V_EPS)
    w.add_uint32("clip.vision.projection_dim", n_text)
    w.add_array("clip.vision.image_mean", IMAGE_MEAN)
    w.add_array("clip.vision.image_std", IMAGE_STD)
    for hf, data in vision_tower().items():
        name = _gguf_name(hf)
        if name is not None:
            w.add_tensor(name, data)
    for hf, data in projector(n_text).items():
        layer, kind = hf.split(".")
        w.add_tensor(f"mm.{0 if layer == 'linear_1' else 2}.{kind}", data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# --- vLLM: a LlavaForConditionalGeneration directory --------------------------------------------------------


def build_hf(text_dir: str, out_dir: str) -> None:
    import torch
    from transformers import (
        AutoTokenizer,
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaForCausalLM,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tokenizer = AutoTokenizer.from_pretrained(text_dir)
    chat_template = tokenizer.chat_template
    text = LlamaForCausalLM.from_pretrained(text_dir, torch_dtype=torch.float32)
    tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    n_vocab = len(tokenizer)
    text_config = text.config
    n_text = text_config.hidden_size
    old_vocab = text_config.vocab_size
    assert image_token_id >= old_vocab, (image_token_id, old_vocab)
    text_config.vocab_size = n_vocab

    vision_config = CLIPVisionConfig(
        hidden_size=V_HIDDEN,
        intermediate_size=V_FF,
        num_hidden_layers=V_LAYERS,
        num_attention_heads=V_HEADS,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        hidden_act="quick_gelu",
        layer_norm_eps=V_EPS,
        projection_dim=n_text,
    )
    config = LlavaConfig(
        vision_config=vision_config,
        text_config=text_config,
        image_token_index=image_token_id,
        projector_hidden_act="gelu",
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        image_seq_length=N_PATCHES,
        tie_word_embeddings=False,
    )
    model = LlavaForConditionalGeneration(config)

    text_state = text.state_dict()
    tower, proj = vision_tower(), projector(n_text)
    state: dict[str, Any] = {}
    for name, tensor in model.state_dict().items():
        if name.startswith(("model.vision_tower.vision_model.", "vision_tower.vision_model.")):
            key = name.split("vision_model.", 1)[1]
            state[name] = torch.from_numpy(tower[key])
        elif "multi_modal_projector." in name:
            state[name] = torch.from_numpy(proj[name.split("multi_modal_projector.", 1)[1]])
        else:
            key = _text_key(name)
            src = text_state[key]
            if src.shape != tensor.shape:  # embed_tokens / lm_head: one more row (<image>), left zero
                grown = torch.zeros_like(tensor)
                grown[: src.shape[0]] = src
                src = grown
            state[name] = src
    model.load_state_dict(state, strict=True)
    model.save_pretrained(out_dir, safe_serialization=True)

    image_processor = CLIPImageProcessor(
        do_resize=True,
        size={"shortest_edge": IMAGE_SIZE},
        do_center_crop=True,
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        do_normalize=True,
        image_mean=IMAGE_MEAN,
        image_std=IMAGE_STD,
        do_convert_rgb=True,
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        image_token=IMAGE_TOKEN,
        num_additional_image_tokens=1,  # the class token (dropped by the "default" strategy)
        chat_template=chat_template,
    )
    processor.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def _text_key(name: str) -> str:
    """The scripted Llama's name for a Llava language-model parameter (transformers 4 or 5 layout)."""
    for prefix, repl in [
        ("model.language_model.", "model."),
        ("language_model.model.", "model."),
        ("language_model.lm_head.", "lm_head."),
    ]:
        if name.startswith(prefix):
            return repl + name[len(prefix) :]
    return name  # lm_head.weight


def main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[1] not in {"mmproj", "hf"}:
        print(f"usage: {argv[0]} mmproj TEXT.gguf OUT.gguf | hf SCRIPTED_HF_DIR OUT_DIR", file=sys.stderr)
        return 2
    if argv[1] == "mmproj":
        tmp = argv[3] + ".tmp"
        build_mmproj(argv[2], tmp)
        os.replace(tmp, argv[3])
    else:
        build_hf(argv[2], argv[3])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
